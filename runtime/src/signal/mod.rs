//! Waiting for Unix signals through the ring: [`ctrl_c`] (`SIGINT`), [`terminate`]
//! (`SIGTERM`, what `docker stop` and Kubernetes send) and [`signal`] for any
//! [`SignalKind`].
//!
//! Each returns a [`Signal`] listener, registered before the call returns: a signal
//! sent after that is never missed, one sent before does not count. Awaiting the
//! listener resolves at its first signal; [`Signal::recv`] waits for each next one,
//! and a signal that comes while nobody waits is kept for the next `recv`. Signals
//! that come before a wait has returned count as one, as the kernel merges a standard
//! signal that is already pending. Any number of listeners, up to [`MAX_WAITERS`],
//! may wait at once, for one signal or several, on any cores: each wakes on every
//! signal of its kind.
//!
//! A service that drains on the first `SIGINT` or `SIGTERM`, whichever comes, makes
//! both listeners before it starts serving and waits for either:
//!
//! ```
//! use std::future::poll_fn;
//! use std::task::Poll;
//!
//! use runtime::signal::{ctrl_c, terminate, Signal, SignalKind};
//!
//! /// Resolves at the first signal of either listener, and says which it was.
//! async fn stop_requested(a: &mut Signal, b: &mut Signal) -> std::io::Result<SignalKind> {
//!     poll_fn(|cx| {
//!         if let Poll::Ready(res) = a.poll_recv(cx) {
//!             return Poll::Ready(res.map(|()| a.kind()));
//!         }
//!         b.poll_recv(cx).map(|res| res.map(|()| b.kind()))
//!     })
//!     .await
//! }
//!
//! #[runtime::main(cores = 1)]
//! async fn main() -> std::io::Result<()> {
//!     // Before serving, so that a stop request while starting up is not missed.
//!     let (mut interrupt, mut terminate) = (ctrl_c(), terminate());
//!
//!     // What `docker stop` does, from another thread.
//!     std::thread::spawn(|| {
//!         // SAFETY: kill takes plain integers; the SIGTERM handler is installed.
//!         unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
//!     });
//!
//!     let signal = stop_requested(&mut interrupt, &mut terminate).await?;
//!     assert_eq!(signal, SignalKind::terminate());
//!     println!("{signal}: draining");
//!     Ok(())
//! }
//! ```
//!
//! # A listened-to signal is caught for the life of the process
//!
//! The first listener for a signal installs a handler for it, for the whole process,
//! and the handler is never removed. From then on that signal's default action no
//! longer happens, even when no listener is left: `SIGTERM` and `SIGINT` no longer end
//! the process, `SIGQUIT` no longer dumps core, `SIGTSTP` no longer stops it; a signal
//! that finds no listener does nothing. A program that must still stop on a later
//! signal does it itself, for example by keeping a listener and exiting when it
//! wakes. (Docker and Kubernetes send `SIGKILL` when their grace period is over; that
//! one cannot be caught.)
//!
//! The handler replaces whatever the process had for that signal: the default action,
//! `SIG_IGN` (as `nohup` leaves `SIGHUP`), or another library's handler, which is not
//! called any more. A program the process starts with `exec` gets the default action
//! back for a caught signal. No thread's signal mask is changed.
//!
//! # Which signals can be waited for
//!
//! A listener for one of these fails with [`InvalidInput`](io::ErrorKind::InvalidInput),
//! with a message that names the signal and says why, and changes nothing:
//!
//! - `SIGKILL` and `SIGSTOP`: the kernel lets no process catch them.
//! - `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGTRAP`, `SIGSYS`: each reports a
//!   fault of the instruction a thread was running. A handler that returns would
//!   hide the fault or run the instruction again; they keep their disposition, so a
//!   fault still ends the process (and Rust's stack overflow report still works).
//! - `SIGABRT`: `abort()` sends it to end the process, and it must stay fatal.
//! - Numbers that are no signal (0, negative, above `SIGRTMAX`), and the first
//!   realtime numbers, which the C library keeps for its threads (below `SIGRTMIN`).
//!
//! Every other signal can be waited for, the realtime ones included:
//! `SignalKind::from_raw(libc::SIGRTMIN() + n)`. A realtime signal that is sent
//! several times before a wait returns also counts as one.
//!
//! # Limits
//!
//! - At most [`MAX_WAITERS`] listeners are alive at once in the process, all signals
//!   together; the next one fails with an error that says so, and a dropped listener
//!   frees its place. A thread-per-core server that listens on every core takes one
//!   place per core and signal; one listener that tells the other cores over a
//!   [`channel`](crate::channel) takes one.
//! - A [`Signal`] is not `Send`: once polled, it waits on the ring of the core that
//!   polled it. Each listener holds one eventfd until it is dropped.
//!
//! ```compile_fail
//! fn send<T: Send>(_: T) {}
//! send(runtime::signal::terminate());
//! ```
//!
//! # How a signal reaches a listener
//!
//! - **The handler** (`registry.rs` holds its proof) writes 1 to the eventfd of each
//!   listener of that signal, with only async-signal-safe steps (atomics and
//!   `write(2)`), and is installed with `SA_RESTART`, so that a blocking system call
//!   the signal interrupts in other code resumes instead of failing with `EINTR`.
//! - **The waiter table**, a fixed array of [`MAX_WAITERS`] atomic slots shared by all
//!   signals, each empty or holding one listener's signal number and eventfd. A
//!   listener takes its slot when it is made; it empties it, and waits for any
//!   running handler to finish, before its eventfd is closed, so that no handler ever
//!   writes to a closed (and maybe reused) fd number.
//! - **The wait**: a listener reads its eventfd *through the ring*, into an owned
//!   8-byte buffer, like any other read. Its core parks in `io_uring_enter` as usual;
//!   no thread is started and nothing polls. The eventfd's counter keeps the signals
//!   that come between two waits.
//!
//! # Why not `signalfd`
//!
//! A `signalfd` only receives a signal that is blocked on *every* thread of the
//! process; a thread that leaves it unblocked takes its disposition instead, and for
//! `SIGTERM` that ends the process. A library cannot block a signal in the main
//! thread before that thread runs, nor in threads other libraries start, and a
//! blocked signal stays blocked in programs started with `exec`. A handler works
//! whatever the threads' masks are.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::driver::{ops, Op};

mod kind;
mod registry;

pub use kind::SignalKind;
use registry::Registration;

/// How many [`Signal`] listeners may be alive at once, in the whole process, for all
/// signals together.
pub const MAX_WAITERS: usize = 256;

/// Listens for `kind`: the returned [`Signal`] resolves at the next `kind` signal the
/// process receives after this call, and [`Signal::recv`] waits for each next one.
///
/// The first listener for a signal installs a handler that stays for the life of the
/// process: from then on the signal no longer has its default effect, even once no
/// listener is left (see the [module docs](self)).
///
/// # Errors
///
/// The listener resolves to an error, at its first poll:
///
/// - [`InvalidInput`](io::ErrorKind::InvalidInput) if `kind` cannot be waited for
///   (`SIGKILL`, `SIGSTOP`, the fault signals, `SIGABRT`, a number that is no signal;
///   see the [module docs](self#which-signals-can-be-waited-for));
/// - if the handler could not be installed, if [`MAX_WAITERS`] listeners are already
///   alive, or if no eventfd could be made;
/// - at each poll outside a runtime.
///
/// # Examples
///
/// Reloading on each `SIGHUP`:
///
/// ```
/// use runtime::signal::{signal, SignalKind};
///
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// let mut reload = signal(SignalKind::hangup());
/// for _ in 0..2 {
///     // SAFETY: kill takes plain integers; the SIGHUP handler is installed.
///     unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
///     reload.recv().await?;
///     println!("SIGHUP: reloading the configuration");
/// }
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub fn signal(kind: SignalKind) -> Signal {
    let state = match Registration::new(kind) {
        Ok(registration) => State::Listening {
            read: None,
            registration,
        },
        Err(e) => State::Failed(e),
    };
    Signal { kind, state }
}

/// Listens for Ctrl-C (`SIGINT`): `signal(SignalKind::interrupt())`.
///
/// Awaiting it resolves at the next `SIGINT` the process receives after this call; a
/// signal that came before does not count. Several listeners may wait at once, on any
/// cores, and each resolves on the next signal.
///
/// The first call installs a `SIGINT` handler that stays for the life of the process:
/// from then on Ctrl-C no longer ends the program by itself (see the
/// [module docs](self)).
///
/// # Errors
///
/// As [`signal`]'s: the handler could not be installed, [`MAX_WAITERS`] listeners are
/// already alive, no eventfd could be made, or it is polled outside a runtime.
///
/// # Examples
///
/// A server loop that stops cleanly on Ctrl-C, with a two-way select written with
/// [`std::future::poll_fn`]:
///
/// ```no_run
/// use std::future::{poll_fn, Future};
/// use std::pin::pin;
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
///             if let Poll::Ready(res) = ctrl_c.poll_recv(cx) {
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
pub fn ctrl_c() -> Signal {
    signal(SignalKind::interrupt())
}

/// Listens for `SIGTERM`, the request to stop that `kill PID`, `docker stop`,
/// Kubernetes and systemd send: `signal(SignalKind::terminate())`.
///
/// Awaiting it resolves at the next `SIGTERM` the process receives after this call.
/// Make it before the service starts, so that a stop request during start-up is kept;
/// the [module docs](self) show a drain on the first `SIGTERM` or `SIGINT`.
///
/// The first call installs a `SIGTERM` handler that stays for the life of the process:
/// from then on `SIGTERM` no longer ends the program by itself, and the program must
/// exit on its own once it has drained (the orchestrator's `SIGKILL` at the end of its
/// grace period still ends it).
///
/// # Errors
///
/// As [`signal`]'s: the handler could not be installed, [`MAX_WAITERS`] listeners are
/// already alive, no eventfd could be made, or it is polled outside a runtime.
pub fn terminate() -> Signal {
    signal(SignalKind::terminate())
}

/// A listener for one kind of signal, made by [`signal`], [`ctrl_c`] or [`terminate`].
///
/// It counts the signals of its kind from its creation until it is dropped. As a
/// future it resolves at the first one; [`recv`](Signal::recv) and
/// [`poll_recv`](Signal::poll_recv) wait for each next one, and a signal that comes
/// while nobody waits is kept for the next wait. Signals that come before a wait has
/// returned count as one.
///
/// It holds a slot of the process-wide table of [`MAX_WAITERS`] and one eventfd until
/// it is dropped. It is not `Send`: once polled, it waits on the ring of the core
/// that polled it.
#[must_use = "a signal listener does nothing unless awaited"]
pub struct Signal {
    kind: SignalKind,
    state: State,
}

enum State {
    /// Registered; `read` is the ring read of the eventfd while a wait is under way.
    /// Fields drop in order: the read (handed to the driver until its CQE if in
    /// flight) before the registration, whose drop closes the fd behind it.
    Listening {
        read: Option<Op<ops::Read<Vec<u8>>>>,
        registration: Registration,
    },
    /// Registration failed; every poll gives the error.
    Failed(io::Error),
}

impl Signal {
    /// The signal this listener waits for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// Waits for the next signal of this listener's kind, or takes the one that came
    /// since the last wait returned (or since the listener was made).
    ///
    /// Dropping the returned future before it resolves loses no signal: the next wait
    /// picks it up.
    ///
    /// # Errors
    ///
    /// The listener could not be registered (see [`signal`]), or this is polled
    /// outside a runtime.
    pub async fn recv(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next signal of this listener's kind: [`recv`](Signal::recv) for
    /// code that polls by hand, such as a select written with
    /// [`std::future::poll_fn`].
    ///
    /// After it returns `Ready`, the next call starts a new wait. Only the waker of the
    /// latest call is woken.
    ///
    /// # Errors
    ///
    /// As [`recv`](Signal::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (read, registration) = match &mut self.state {
            State::Listening { read, registration } => (read, registration),
            State::Failed(e) => return Poll::Ready(Err(copy_error(e))),
        };
        loop {
            let fd = registration.eventfd();
            // An eventfd has no position: `u64::MAX` reads "at the file position".
            let op = read.get_or_insert_with(|| {
                Op::new(ops::Read::new(fd, Vec::with_capacity(8), u64::MAX))
            });
            // The read takes the whole counter: every signal since the last read.
            let (result, _counter) = ready!(Pin::new(op).poll(cx));
            *read = None;
            match result {
                // The read was interrupted before it took the count: read again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result.map(drop)),
            }
        }
    }
}

/// The same error again, for a listener polled after it failed (`io::Error` is not
/// `Clone`).
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Resolves at the listener's next signal, as [`Signal::recv`]; `(&mut signal).await`
/// waits once more.
impl Future for Signal {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_recv(cx)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Signal");
        s.field("kind", &self.kind);
        match &self.state {
            State::Listening { read, registration } => s
                .field("state", &"listening")
                .field("slot", &registration.slot())
                .field("eventfd", &registration.eventfd())
                .field("read", read),
            State::Failed(e) => s.field("state", &"failed").field("error", e),
        };
        s.finish()
    }
}
