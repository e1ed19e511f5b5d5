//! Waiting for Ctrl-C (`SIGINT`) through the ring.
//!
//! [`ctrl_c`] returns a future that resolves at the next `SIGINT` the process receives
//! after the call. It works on any core, and any number of futures (up to
//! [`MAX_WAITERS`] at once) may wait together: each resolves on the next `SIGINT`.
//!
//! # Ctrl-C is caught for the life of the process
//!
//! The first call to [`ctrl_c`] installs a process-wide `SIGINT` handler, and it is
//! never removed. From then on Ctrl-C no longer ends the process, even when no future
//! is waiting: a `SIGINT` that finds no waiter does nothing. A program that still
//! wants to stop on a later Ctrl-C must do so itself, for example by keeping a
//! [`ctrl_c`] future alive and exiting when it resolves.
//!
//! # How a signal reaches a future
//!
//! - **The handler.** Installed once with `sigaction(SIGINT, SA_RESTART)`, so that a
//!   blocking system call the signal interrupts in other code resumes instead of
//!   failing with `EINTR`. It replaces whatever `SIGINT` disposition the process had.
//!   It uses only async-signal-safe steps: atomic loads and stores and `write(2)`. It
//!   writes 1 to every eventfd in the waiter table, and restores `errno` before
//!   returning.
//! - **The waiter table.** A fixed array of [`MAX_WAITERS`] atomic slots, each empty
//!   or holding the eventfd of one waiting future. A future takes a free slot when it
//!   is created, so a signal sent after [`ctrl_c`] returns is never missed.
//! - **The wait.** A future reads its eventfd *through the ring*, into an owned 8-byte
//!   buffer, like any other read. Its core parks in `io_uring_enter` as usual; no
//!   thread is started and nothing polls.
//!
//! # Why an eventfd is never written after it is closed
//!
//! The handler may run on any thread at any moment, so a future must not close its
//! eventfd while a handler could still write to that fd number: the number could by
//! then belong to another file. The handler announces itself in a counter, raised
//! before it reads the table and lowered after its last write. A future that goes
//! away first empties its slot, then waits (spinning; a handler is a few syscalls
//! long) until the counter is zero, and only then lets the fd be closed. All of it is
//! sequentially consistent, so of the two orders (the handler raises the counter, then
//! reads the slot; the future empties the slot, then reads the counter) at least one
//! sees the other: either the handler finds the slot empty, or the future sees the
//! handler running and waits for it to finish.
//!
//! The eventfd is closed through the ring, behind the read that names it (as
//! [`File`]'s drop does), and the read's buffer belongs to the read op until its
//! final CQE, so a future dropped mid-wait leaks no fd and frees nothing the kernel
//! may still write.
//!
//! # Why not `signalfd`
//!
//! A `signalfd` only receives a signal that is blocked on *every* thread of the
//! process; any thread that leaves it unblocked takes the default action instead, and
//! for `SIGINT` that ends the process. The runtime blocks signals only on the threads
//! it starts; it cannot do so for the main thread before it runs, nor for threads
//! other libraries start. A handler works whatever the other threads do.

use std::fmt;
use std::future::Future;
use std::hint;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};

use crate::driver::{ops, Op};
use crate::fs::File;
use crate::sys::syscall;

/// How many [`ctrl_c`] futures may be alive at once, in the whole process.
pub const MAX_WAITERS: usize = 64;

/// An empty slot of the waiter table.
const EMPTY: i32 = -1;

/// The eventfds the handler writes to, one per live [`CtrlC`].
static WAITERS: [AtomicI32; MAX_WAITERS] = [const { AtomicI32::new(EMPTY) }; MAX_WAITERS];

/// How many handler calls are running now, on any thread.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Whether the handler was installed: `Err` holds the `errno` of a failed `sigaction`.
static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// The `SIGINT` handler: wakes every waiting future. Async-signal-safe: atomics and
/// `write(2)` only, and `errno` is left as it was found.
extern "C" fn on_sigint(_signal: libc::c_int) {
    IN_HANDLER.fetch_add(1, SeqCst);
    // SAFETY: `__errno_location` returns a pointer to this thread's `errno`, valid for
    // as long as the thread runs.
    let errno = unsafe { *libc::__errno_location() };
    let one: u64 = 1;
    for slot in &WAITERS {
        let fd = slot.load(SeqCst);
        if fd != EMPTY {
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

/// Installs [`on_sigint`] for `SIGINT`, once per process.
fn install_handler() -> io::Result<()> {
    let installed = INSTALLED.get_or_init(|| {
        // SAFETY: `sigaction` is a plain C struct for which all zeroes is a valid value
        // (no handler, no flags, an empty mask); the fields that matter are set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // sigemptyset writes into the mask of the live struct we pass.
        syscall!(sigemptyset(&mut action.sa_mask))
            // sigaction reads the struct we pass; the old action is not asked for.
            .and_then(|_| syscall!(sigaction(libc::SIGINT, &action, std::ptr::null_mut())))
            .map(drop)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
    });
    installed.map_err(|errno| {
        let cause = io::Error::from_raw_os_error(errno);
        io::Error::new(
            cause.kind(),
            format!("could not install the SIGINT handler (sigaction failed: {cause})"),
        )
    })
}

/// One slot of the waiter table, holding the eventfd the handler writes to.
struct Registration {
    slot: usize,
    /// Closed through the ring when the registration is dropped, after the slot was
    /// emptied and no handler can still hold the fd number.
    eventfd: File,
}

impl Registration {
    /// Installs the handler if need be, makes an eventfd and puts it in a free slot.
    fn new() -> io::Result<Registration> {
        install_handler()?;
        // Blocking on purpose: the ring reads it, and a read of an empty non-blocking
        // eventfd would fail with EAGAIN instead of waiting.
        let fd = crate::sys::eventfd()?;
        let raw = fd.as_raw_fd();
        for (slot, cell) in WAITERS.iter().enumerate() {
            if cell.compare_exchange(EMPTY, raw, SeqCst, SeqCst).is_ok() {
                return Ok(Registration {
                    slot,
                    eventfd: File::from_std(fd),
                });
            }
        }
        // No slot took it and no op names it: the plain close of `fd`'s drop is safe.
        Err(io::Error::other(format!(
            "too many Ctrl-C waiters: at most {MAX_WAITERS} ctrl_c futures may be alive \
             at once in one process; await one future and share its result instead"
        )))
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

/// Waits for the next Ctrl-C (`SIGINT`) the process receives after this call.
///
/// The future resolves once per `SIGINT`; to wait for another, call `ctrl_c` again.
/// Several futures may wait at once, on any cores, and each resolves on the next
/// signal. A signal that came before the call does not count.
///
/// The first call installs a `SIGINT` handler that stays for the life of the process:
/// from then on Ctrl-C no longer ends the program by itself (see the
/// [module docs](self)).
///
/// # Errors
///
/// The future resolves to an error if the handler could not be installed, if
/// [`MAX_WAITERS`] futures are already alive, if no eventfd could be made, or if it
/// is polled outside a runtime.
///
/// # Examples
///
/// A server loop that stops cleanly on Ctrl-C, with a two-way select written with
/// [`std::future::poll_fn`]:
///
/// ```no_run
/// use std::future::{poll_fn, Future};
/// use std::pin::{pin, Pin};
/// use std::task::Poll;
/// use std::time::Duration;
///
/// #[runtime::main]
/// async fn main() -> std::io::Result<()> {
///     // Made before the loop, so a Ctrl-C that comes while a request is being handled
///     // is not missed.
///     let mut ctrl_c = runtime::signal::ctrl_c();
///     loop {
///         let mut next = pin!(next_request());
///         let request = poll_fn(|cx| {
///             if let Poll::Ready(res) = Pin::new(&mut ctrl_c).poll(cx) {
///                 return Poll::Ready(res.map(|()| None));
///             }
///             next.as_mut().poll(cx).map(|request| Ok(Some(request)))
///         })
///         .await?;
///         match request {
///             Some(request) => println!("handling request {request}"),
///             None => break,
///         }
///     }
///     println!("Ctrl-C: stopping");
///     Ok(())
/// }
///
/// /// Stands in for `listener.accept()`.
/// async fn next_request() -> u64 {
///     runtime::time::sleep(Duration::from_secs(1)).await;
///     42
/// }
/// ```
pub fn ctrl_c() -> CtrlC {
    let state = match Registration::new() {
        Ok(registration) => State::Waiting {
            read: None,
            registration,
        },
        Err(e) => State::Failed(e),
    };
    CtrlC { state }
}

/// The future of [`ctrl_c`].
///
/// It holds a slot of the process-wide waiter table from its creation until it
/// resolves or is dropped. It is not `Send`: once polled, it waits on the ring of the
/// core that polled it.
#[must_use = "futures do nothing unless awaited"]
pub struct CtrlC {
    state: State,
}

enum State {
    /// Registered; `read` is the ring read of the eventfd, made at the first poll.
    /// Fields drop in order: the read (handed to the driver until its CQE if in
    /// flight) before the registration, whose drop closes the fd behind it.
    Waiting {
        read: Option<Op<ops::Read<Vec<u8>>>>,
        registration: Registration,
    },
    /// Registration failed; the error is given at the first poll.
    Failed(io::Error),
    Done,
}

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let State::Waiting { read, registration } = &mut this.state else {
                return match std::mem::replace(&mut this.state, State::Done) {
                    State::Failed(e) => Poll::Ready(Err(e)),
                    _ => panic!("a ctrl_c future was polled after it completed"),
                };
            };
            let fd = registration.eventfd.as_raw_fd();
            // An eventfd has no position: `u64::MAX` reads "at the file position".
            let op = read.get_or_insert_with(|| {
                Op::new(ops::Read::new(fd, Vec::with_capacity(8), u64::MAX))
            });
            let (result, _counter) = ready!(Pin::new(op).poll(cx));
            *read = None;
            match result {
                // The read was interrupted before it took the count: read again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => {
                    // Frees the slot and closes the eventfd; the read's CQE is in.
                    this.state = State::Done;
                    return Poll::Ready(result.map(drop));
                }
            }
        }
    }
}

impl fmt::Debug for CtrlC {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("CtrlC");
        match &self.state {
            State::Waiting { read, registration } => s
                .field("state", &"waiting")
                .field("slot", &registration.slot)
                .field("eventfd", &registration.eventfd.as_raw_fd())
                .field("read", read),
            State::Failed(e) => s.field("state", &"failed").field("error", e),
            State::Done => s.field("state", &"done"),
        };
        s.finish()
    }
}
