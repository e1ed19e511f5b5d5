//! The process-wide half of signal listening: the handlers and the table of eventfds
//! they write.
//!
//! # The handler
//!
//! One function, [`on_signal`], is installed for every signal number that gets a
//! listener, on that number's first listener, with `sigaction(SA_RESTART)` (a blocking
//! system call the signal interrupts in other code resumes instead of failing with
//! `EINTR`) and an empty mask. It is never uninstalled: a listener's drop cannot know
//! whether another one is about to be made, and restoring the default action of
//! `SIGTERM` between two listeners would let a signal in that gap end the process.
//! Whether each install worked is kept, so a failure is reported to every later
//! listener of that number too.
//!
//! The handler uses only async-signal-safe steps: atomic loads and stores and
//! `write(2)`. It writes 1 to the eventfd of every slot that names its signal, and
//! restores `errno` before returning. Handlers of different signals may nest on one
//! thread or run at once on several; nothing below depends on them running alone.
//!
//! # The waiter table
//!
//! [`WAITERS`] is a fixed array of [`MAX_WAITERS`] atomic slots, shared by all
//! signals. A slot is [`EMPTY`] or holds one listener's signal number (high 32 bits)
//! and eventfd (low 32 bits), written and cleared in one atomic store, so a handler
//! never sees a signal paired with another listener's fd. A listener takes a slot
//! (compare-and-swap from `EMPTY`) when it is made and empties it when it is dropped;
//! in between nobody else writes the slot. The table is scanned in full by each
//! handler call: a few hundred atomic loads, once per delivered signal.
//!
//! # Why an eventfd is never written after it is closed
//!
//! The handler may run on any thread at any moment, so a listener must not close its
//! eventfd while a handler could still write to that fd number: the number could by
//! then belong to another file. The handler announces itself in [`IN_HANDLER`],
//! raised before it reads the table and lowered after its last write. A listener that
//! goes away first empties its slot, then waits (spinning; a handler is a few system
//! calls long) until the counter is zero, and only then lets the fd be closed. All of
//! it is sequentially consistent, so of the two orders (the handler raises the
//! counter, then reads the slot; the listener empties the slot, then reads the
//! counter) at least one sees the other: either the handler finds the slot empty, or
//! the listener sees the handler running and waits for it to finish.
//!
//! The spin cannot wait on itself: a handler that interrupts the spinning thread runs
//! to its end before the spin resumes, and the handler never drops a listener.
//!
//! The eventfd is closed through the ring, behind the read that names it (as
//! [`File`]'s drop does), and the read's buffer belongs to the read op until its final
//! CQE, so a listener dropped mid-wait leaks no fd and frees nothing the kernel may
//! still write.

use std::hint;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;

use super::{SignalKind, MAX_WAITERS};
use crate::fs::File;
use crate::sys::syscall;

/// An empty slot. A taken slot is never 0: its signal number is at least 1.
const EMPTY: u64 = 0;

/// One past the highest signal number of any Linux architecture (127, on MIPS).
const SIGNALS: usize = 128;

/// The listeners' signals and eventfds, one slot per live listener.
static WAITERS: [AtomicU64; MAX_WAITERS] = [const { AtomicU64::new(EMPTY) }; MAX_WAITERS];

/// How many handler calls are running now, on any thread.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Per signal number, whether [`on_signal`] was installed: `Err` holds the `errno` of
/// a failed `sigaction`.
static INSTALLED: [OnceLock<Result<(), i32>>; SIGNALS] = [const { OnceLock::new() }; SIGNALS];

/// A taken slot's value: the signal above, the fd below.
fn pack(signal: i32, fd: RawFd) -> u64 {
    (u64::from(signal as u32) << 32) | u64::from(fd as u32)
}

/// The handler of every listened-to signal: wakes each listener of `signal`.
/// Async-signal-safe: atomics and `write(2)` only, and `errno` is left as it was found.
extern "C" fn on_signal(signal: libc::c_int) {
    IN_HANDLER.fetch_add(1, SeqCst);
    // SAFETY: `__errno_location` returns a pointer to this thread's `errno`, valid for
    // as long as the thread runs.
    let errno = unsafe { *libc::__errno_location() };
    let one: u64 = 1;
    for slot in &WAITERS {
        let taken = slot.load(SeqCst);
        if taken != EMPTY && (taken >> 32) as i32 == signal {
            let fd = taken as u32 as RawFd;
            // SAFETY: the pointer is to a live local u64 of the 8 bytes an eventfd write
            // takes. `fd` is open: its owner empties the slot and then waits for
            // `IN_HANDLER` to drop to zero before closing it (see the module docs).
            // An eventfd write blocks only if the counter would reach 2^64 - 1.
            unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        }
    }
    // SAFETY: as above, this thread's `errno`, restored for the code the signal
    // interrupted.
    unsafe { *libc::__errno_location() = errno };
    IN_HANDLER.fetch_sub(1, SeqCst);
}

/// Installs [`on_signal`] for `kind`, once per process. `kind` has passed
/// [`SignalKind::check`].
fn install_handler(kind: SignalKind) -> io::Result<()> {
    let signal = kind.as_raw();
    let Some(installed) = usize::try_from(signal).ok().and_then(|i| INSTALLED.get(i)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{kind} is beyond the signals this runtime can listen to"),
        ));
    };
    let installed = installed.get_or_init(|| {
        // SAFETY: `sigaction` is a plain C struct for which all zeroes is a valid value
        // (no handler, no flags, an empty mask); the fields that matter are set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // sigemptyset writes into the mask of the live struct we pass.
        syscall!(sigemptyset(&mut action.sa_mask))
            // sigaction reads the struct we pass; the old action is not asked for.
            .and_then(|_| syscall!(sigaction(signal, &action, std::ptr::null_mut())))
            .map(drop)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
    });
    installed.map_err(|errno| {
        let cause = io::Error::from_raw_os_error(errno);
        io::Error::new(
            cause.kind(),
            format!("could not install the {kind} handler (sigaction failed: {cause})"),
        )
    })
}

/// One slot of the waiter table, holding the eventfd the handler writes to.
pub(super) struct Registration {
    slot: usize,
    /// Closed through the ring when the registration is dropped, after the slot was
    /// emptied and no handler can still hold the fd number.
    eventfd: File,
}

impl Registration {
    /// Checks `kind`, installs its handler if need be, makes an eventfd and puts it in
    /// a free slot. From then on every `kind` signal adds to the eventfd's counter.
    pub(super) fn new(kind: SignalKind) -> io::Result<Registration> {
        kind.check()?;
        install_handler(kind)?;
        // Blocking on purpose: the ring reads it, and a read of an empty non-blocking
        // eventfd would fail with EAGAIN instead of waiting.
        let fd = crate::sys::eventfd().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("could not make the eventfd of a {kind} listener: {e}"),
            )
        })?;
        let taken = pack(kind.as_raw(), fd.as_raw_fd());
        for (slot, cell) in WAITERS.iter().enumerate() {
            if cell.compare_exchange(EMPTY, taken, SeqCst, SeqCst).is_ok() {
                return Ok(Registration {
                    slot,
                    eventfd: File::new(fd, None),
                });
            }
        }
        // No slot took it and no op names it: the plain close of `fd`'s drop is safe.
        Err(io::Error::other(format!(
            "too many signal listeners: at most {MAX_WAITERS} (ctrl_c, terminate and \
             signal, all signals together) may be alive at once in one process, and a \
             {kind} listener would be one more; keep one listener per signal and share \
             what it sees (a channel to the other cores), or drop those no longer needed"
        )))
    }

    /// The slot taken in the waiter table.
    pub(super) fn slot(&self) -> usize {
        self.slot
    }

    /// The eventfd the handler writes to.
    pub(super) fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        WAITERS[self.slot].store(EMPTY, SeqCst);
        // A handler that read the slot before it was emptied may be about to write to
        // the fd: it must be done before the fd number can be closed and reused.
        while IN_HANDLER.load(SeqCst) != 0 {
            hint::spin_loop();
        }
        // `eventfd` is dropped next, which closes it through the ring.
    }
}
