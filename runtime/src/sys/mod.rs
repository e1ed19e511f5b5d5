//! Thin, unsafe-free-to-call wrappers over the system calls the runtime needs.
//!
//! This layer gives the rest of the crate:
//! - [`syscall!`], which turns a `-1`/`errno` return into an [`io::Error`];
//! - [`eventfd`], the wake-up fd a core listens to for wakes sent from other threads;
//! - [`memlock_limit`], the current `RLIMIT_MEMLOCK`, for error messages;
//! - [`setup_error`], which turns a failed `io_uring_setup` into an error that says
//!   what blocked io_uring and how to fix it;
//! - [`probe`], what this kernel's io_uring supports, asked once per process;
//! - [`uring`], `io_uring_enter` with every flag decided by the caller;
//! - [`affinity`], the CPUs a thread may run on, read and restored;
//! - [`dup`], a close-on-exec duplicate of an fd;
//! - [`page_size`], the size of a memory page;
//! - [`socket`], socket addresses in the kernel's layout and the socket calls that
//!   stay synchronous (bind, listen, options).
//!
//! Nothing here knows about futures or tasks.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

pub(crate) mod affinity;
pub(crate) mod probe;
mod setup;
pub(crate) mod socket;
pub(crate) mod uring;

pub(crate) use setup::setup_error;

/// Calls a libc function and turns a `-1` return into the thread's `errno`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: every use passes arguments that are valid for the call, as each
        // call site's own comment explains.
        #[allow(clippy::macro_metavars_in_unsafe)]
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use syscall;

/// A close-on-exec eventfd with a zero counter.
///
/// It is blocking on purpose: the ring reads it, and io_uring answers a read of an
/// `O_NONBLOCK` fd that has nothing to give with `-EAGAIN` instead of waiting.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // eventfd takes plain integers; no memory is passed.
    let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC))?;
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter, waking whoever reads it.
pub(crate) fn eventfd_signal(fd: std::os::fd::RawFd) {
    let one: u64 = 1;
    // The pointer is to a live local u64 of the 8 bytes eventfd expects. The counter
    // would have to reach 2^64-2 for this to block; EBADF cannot happen while the
    // inbox owns the fd.
    let _ = syscall!(write(fd, (&one as *const u64).cast(), 8));
}

/// The soft `RLIMIT_MEMLOCK` in bytes (`None` if unlimited or unknown).
pub(crate) fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // getrlimit writes into the rlimit we pass, which lives for the call.
    syscall!(getrlimit(libc::RLIMIT_MEMLOCK, &mut lim)).ok()?;
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// The size of a memory page (`sysconf(_SC_PAGESIZE)`; 4096 if it cannot say).
pub(crate) fn page_size() -> usize {
    // sysconf takes a plain integer.
    let size = syscall!(sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096);
    usize::try_from(size).unwrap_or(4096)
}

/// A close-on-exec duplicate of `fd`, which keeps the file open as long as it lives.
pub(crate) fn dup(fd: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    // fcntl(F_DUPFD_CLOEXEC) takes plain integers.
    let new = syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, 0))?;
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Empties a non-blocking eventfd's counter (the readiness backend's wake-up fd).
pub(crate) fn eventfd_drain(fd: std::os::fd::RawFd) {
    let mut value: u64 = 0;
    // The pointer is to a live local u64 of the 8 bytes an eventfd read fills; the fd
    // is non-blocking, so an empty counter fails with EAGAIN instead of waiting.
    let _ = syscall!(read(fd, (&mut value as *mut u64).cast(), 8));
}
