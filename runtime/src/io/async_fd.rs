//! [`AsyncFd`]: readiness of a file descriptor the runtime does not drive itself, one
//! one-shot poll operation per wait (the type's docs say how it waits and what the
//! caller must do).
//!
//! Each direction records the readiness the last poll found, until a caller clears it.
//! The futures that wait borrow the `AsyncFd`, so each was dropped (its poll withdrawn
//! or cancelled) before the `AsyncFd` can go; what is left to wait for then is the
//! last CQE of a poll that was cancelled in the kernel, which `Waits::drop` does.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::driver::{self, ops, Op};
use crate::sys::probe::Probe;

/// What a wait for reading asks the kernel for. `POLLERR` and `POLLHUP` are reported
/// whether asked for or not; they are named so that the intent is plain. `POLLRDHUP`:
/// a socket whose peer shut down its sending side.
const READ_EVENTS: u32 = (libc::POLLIN | libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP) as u32;
/// What a wait for writing asks the kernel for.
const WRITE_EVENTS: u32 = (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) as u32;

/// A file descriptor the runtime does not drive itself, registered for readiness: wait
/// until it is readable or writable, then make your own non-blocking call on it.
///
/// Some fds have no operation of their own in the ring, or belong to a library that
/// makes its own system calls: a pipe from a child process, a netlink or packet
/// socket, an inotify instance, a device, the fd of a C library with a non-blocking
/// API. `T` is whatever owns the fd (an [`OwnedFd`](std::os::fd::OwnedFd), a standard
/// socket, another library's type); the `AsyncFd` neither reads nor writes nor closes
/// it: dropping the `AsyncFd` drops `T`, and [`into_inner`](AsyncFd::into_inner) hands
/// it back. Wait with [`readable`](AsyncFd::readable) or
/// [`writable`](AsyncFd::writable); make the call in [`ReadyGuard::try_io`], which
/// turns `WouldBlock` into "clear the readiness and wait again":
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// use runtime::io::AsyncFd;
///
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// let (ours, mut theirs) = UnixStream::pair()?;
/// ours.set_nonblocking(true)?; // the caller's part: AsyncFd only waits
/// let ours = AsyncFd::new(ours)?;
///
/// theirs.write_all(b"hello")?;
/// let mut buf = [0; 16];
/// let n = loop {
///     let mut ready = ours.readable().await?;
///     match ready.try_io(|mut stream| stream.read(&mut buf)) {
///         Ok(result) => break result?,
///         // Not readable after all: the readiness is cleared; wait again.
///         Err(_would_block) => continue,
///     }
/// };
/// assert_eq!(&buf[..n], b"hello");
///
/// // An empty socket buffer has room: writable at once.
/// let mut ready = ours.writable().await?;
/// let n = ready.try_io(|mut stream| stream.write(b"ping")).unwrap()?;
/// assert_eq!(n, 4);
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
///
/// # How it waits
///
/// Each wait is one one-shot poll of the fd (on io_uring, an `IORING_OP_POLL_ADD` for
/// `POLLIN` or `POLLOUT`), an operation like any other: dropping the future that waits
/// cancels it. Errors and hang-ups (`POLLERR`, `POLLHUP`) count as ready either way,
/// so that the caller's own call runs and sees the error or the end of the stream.
///
/// An `AsyncFd` remembers, per direction, that the fd was found ready, until a caller
/// clears it ([`ReadyGuard::clear_ready`], or [`ReadyGuard::try_io`] on `WouldBlock`):
/// meanwhile `readable` (or `writable`) resolves at once, with no operation at all. A
/// reader that reads until `WouldBlock` pays one poll per burst of data, not one per
/// read. Clearing when the fd is in fact ready costs a poll, never a lost wake-up:
/// each poll looks at the fd's state when it starts, and resolves at once if it is
/// ready.
///
/// # The caller's part
///
/// - The fd must be in non-blocking mode (`O_NONBLOCK`: `set_nonblocking(true)` on a
///   standard socket, `pipe2(O_NONBLOCK)`, `fcntl(F_SETFL)`). Readiness is a hint, and
///   a blocking call on an fd that turns out not to be ready blocks the whole core.
///   `AsyncFd` leaves the fd's flags alone.
/// - The fd must stay open, with the same number (`inner.as_raw_fd()` is read once, in
///   [`new`](AsyncFd::new)), for as long as the `AsyncFd` lives.
///
/// # One core
///
/// An `AsyncFd` is `!Send`, as the runtime's sockets are: a poll of its fd may wait in
/// its core's submission queue until the next turn of the ring, and only that core can
/// withdraw or cancel it. Any task of that core may wait on it, several at once (each
/// `readable`/`writable` future has a poll of its own). To move the fd to another
/// core, take it out with [`into_inner`](AsyncFd::into_inner) and wrap it anew there.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
/// send(runtime::io::AsyncFd::new(ours).unwrap());
/// ```
pub struct AsyncFd<T: AsRawFd> {
    // Declared before `inner`, so dropped before it: every poll of the fd is over
    // before `T`'s drop may close the fd.
    waits: Waits,
    inner: T,
}

/// The fd's two directions, and what ties them to their core.
struct Waits {
    fd: RawFd,
    read: Direction,
    write: Direction,
    /// `!Send` and `!Sync`: the ops on the fd belong to this thread's core.
    _core_bound: PhantomData<*const ()>,
}

/// One direction (reading or writing) of an [`AsyncFd`].
struct Direction {
    events: u32,
    /// A poll found the fd ready this way, and nobody has cleared it since.
    ready: Cell<bool>,
    /// The poll behind [`AsyncFd::poll_read_ready`] or
    /// [`AsyncFd::poll_write_ready`], between two calls. Taken out while it is polled,
    /// so that no borrow is held while the driver runs.
    op: Cell<Option<Op<ops::PollAdd>>>,
}

impl Direction {
    fn new(events: u32) -> Direction {
        Direction {
            events,
            ready: Cell::new(false),
            op: Cell::new(None),
        }
    }
}

/// Which of the two directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Read,
    Write,
}

impl Waits {
    fn way(&self, way: Way) -> &Direction {
        match way {
            Way::Read => &self.read,
            Way::Write => &self.write,
        }
    }
}

impl Drop for Waits {
    fn drop(&mut self) {
        // Drops the ops of `poll_*_ready`: withdrawn if still queued, else cancelled.
        drop((self.read.op.take(), self.write.op.take()));
        // Every future that waited borrowed the `AsyncFd`, so each was dropped before
        // this, its op withdrawn or cancelled. A cancelled poll may still be in the
        // kernel, holding a reference to the file (a pipe's write end stays open for
        // the reader while it does); wait for its last CQE, as a socket's `into_std`
        // does, so nothing of ours outlives the hand-off of the fd.
        // On the readiness backend, the fd also leaves the core's epoll set.
        if let Some(driver) = driver::current() {
            if !driver.is_ring() || driver.has_orphans(self.fd) {
                driver.release_fd(self.fd);
            }
        }
    }
}

/// The error of [`AsyncFd::new`] where the kernel lacks the poll operation.
fn poll_add_missing() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "AsyncFd needs IORING_OP_POLL_ADD, which this kernel's io_uring does not list \
         (the probe says it is unsupported)",
    )
}

impl<T: AsRawFd> AsyncFd<T> {
    /// Registers `inner`'s fd for readiness. Nothing reaches the kernel until a wait.
    ///
    /// The fd should be in non-blocking mode already (`O_NONBLOCK`): `AsyncFd` leaves
    /// its flags alone, and a blocking call on it would block the whole core.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `inner.as_raw_fd()` is negative; `Unsupported` if the
    /// kernel's io_uring has no `IORING_OP_POLL_ADD`; the probe's error if io_uring
    /// cannot be used at all. On error, `inner` is dropped.
    pub fn new(inner: T) -> io::Result<AsyncFd<T>> {
        let fd = inner.as_raw_fd();
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("AsyncFd::new: {fd} is not a file descriptor (it is negative)"),
            ));
        }
        driver::fresh_fd(fd);
        // The readiness backend waits with epoll; a ring needs its poll opcode.
        if crate::backend() != Some(crate::Backend::Epoll) {
            if let Ok(probe) = Probe::get() {
                if !probe.supports(io_uring::opcode::PollAdd::CODE) {
                    return Err(poll_add_missing());
                }
            }
        }
        Ok(AsyncFd {
            waits: Waits {
                fd,
                read: Direction::new(READ_EVENTS),
                write: Direction::new(WRITE_EVENTS),
                _core_bound: PhantomData,
            },
            inner,
        })
    }

    /// The value that owns the fd.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The value that owns the fd, mutably. It must keep the fd open, under the same
    /// number (see the type's docs).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Hands back the value that owns the fd, and with it the fd.
    ///
    /// It waits for nothing the caller started: every wait on the fd was dropped
    /// before (each borrows the `AsyncFd`), so its poll was withdrawn or cancelled.
    /// A poll cancelled while in the kernel may not be over yet; this returns only
    /// once it is (it takes one turn of the ring), so no poll of the runtime's
    /// outlives the hand-off and, say, keeps a pipe's write end open after its new
    /// owner closes it. Outside the core's thread nothing can be waited for: the
    /// core cancels such a poll at its next turn.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    ///
    /// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
    /// let (ours, _theirs) = UnixStream::pair()?;
    /// ours.set_nonblocking(true)?;
    /// let ours = runtime::io::AsyncFd::new(ours)?;
    /// // ... wait on it here; then take it out again, to send it to another thread:
    /// let stream: UnixStream = ours.into_inner();
    /// std::thread::spawn(move || drop(stream)).join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn into_inner(self) -> T {
        let AsyncFd { waits, inner } = self;
        drop(waits);
        inner
    }

    /// Waits until the fd is readable (or reports an error or a hang-up), and resolves
    /// to a guard that says so; see [`ReadyGuard::try_io`] for the usual loop.
    ///
    /// Resolves at once if readiness was found before and not cleared since. Dropping
    /// the future before it resolves cancels its poll.
    pub fn readable(&self) -> Readable<'_, T> {
        Readable(Wait::new(self, Way::Read))
    }

    /// Waits until the fd is writable (or reports an error or a hang-up); as
    /// [`readable`](AsyncFd::readable).
    pub fn writable(&self) -> Writable<'_, T> {
        Writable(Wait::new(self, Way::Write))
    }

    /// Polls for read readiness, for hand-written futures and poll-based traits.
    ///
    /// The poll of the fd it starts is kept in the `AsyncFd` between calls (dropping
    /// the `AsyncFd` cancels it). Only the task of the latest call is woken: two tasks
    /// that wait at once should each use [`readable`](AsyncFd::readable), whose
    /// futures each have their own.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    ///
    /// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
    /// let (ours, mut theirs) = UnixStream::pair()?;
    /// ours.set_nonblocking(true)?;
    /// let ours = runtime::io::AsyncFd::new(ours)?;
    /// theirs.write_all(b"x")?;
    /// let guard = poll_fn(|cx| ours.poll_read_ready(cx)).await?;
    /// drop(guard);
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn poll_read_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<ReadyGuard<'a, T>>> {
        self.poll_ready(Way::Read, cx)
    }

    /// Polls for write readiness; as [`poll_read_ready`](AsyncFd::poll_read_ready).
    pub fn poll_write_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<ReadyGuard<'a, T>>> {
        self.poll_ready(Way::Write, cx)
    }

    fn poll_ready(&self, way: Way, cx: &mut Context<'_>) -> Poll<io::Result<ReadyGuard<'_, T>>> {
        let direction = self.waits.way(way);
        let mut op = direction.op.take();
        let result = self.poll_wait(way, &mut op, cx);
        // Put back only a poll still in flight; a finished one is gone.
        direction.op.set(op);
        result
    }

    /// One poll of a wait for `way` whose op (if any yet) is `op`: ready at once if
    /// readiness is recorded and no op was started; else the op's outcome, recorded.
    fn poll_wait(
        &self,
        way: Way,
        op: &mut Option<Op<ops::PollAdd>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<ReadyGuard<'_, T>>> {
        let direction = self.waits.way(way);
        let running = match op {
            Some(running) => running,
            None if direction.ready.get() => {
                // Ready with no operation at all: a loop over this must still let the
                // core's other tasks and the ring have their turn.
                ready!(crate::coop::poll_proceed(cx));
                return Poll::Ready(Ok(ReadyGuard { fd: self, way }));
            }
            None => op.insert(Op::new(ops::PollAdd::new(self.waits.fd, direction.events))),
        };
        let result = ready!(Pin::new(running).poll(cx));
        *op = None;
        Poll::Ready(result.map(|_events| {
            direction.ready.set(true);
            ReadyGuard { fd: self, way }
        }))
    }
}

impl<T: AsRawFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.waits.fd
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .field("readable", &self.waits.read.ready.get())
            .field("writable", &self.waits.write.ready.get())
            .finish()
    }
}

/// The state both waiting futures share: the `AsyncFd`, and the poll once started.
struct Wait<'a, T: AsRawFd> {
    fd: &'a AsyncFd<T>,
    way: Way,
    op: Option<Op<ops::PollAdd>>,
}

impl<'a, T: AsRawFd> Wait<'a, T> {
    fn new(fd: &'a AsyncFd<T>, way: Way) -> Wait<'a, T> {
        Wait { fd, way, op: None }
    }

    #[inline]
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyGuard<'a, T>>> {
        self.fd.poll_wait(self.way, &mut self.op, cx)
    }
}

impl<T: AsRawFd> fmt::Debug for Wait<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("fd", &self.fd.waits.fd)
            .field("polling", &self.op.is_some())
            .finish()
    }
}

/// The future of [`AsyncFd::readable`]: resolves once the fd is readable, to a
/// [`ReadyGuard`]. `Unpin`, and `!Send` like the `AsyncFd` it borrows; dropping it
/// cancels its poll.
#[must_use = "futures do nothing unless awaited"]
pub struct Readable<'a, T: AsRawFd>(Wait<'a, T>);

impl<T: AsRawFd> fmt::Debug for Readable<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Readable").field(&self.0).finish()
    }
}

impl<'a, T: AsRawFd> Future for Readable<'a, T> {
    type Output = io::Result<ReadyGuard<'a, T>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll(cx)
    }
}

/// The future of [`AsyncFd::writable`]: resolves once the fd is writable, to a
/// [`ReadyGuard`]. `Unpin`, and `!Send` like the `AsyncFd` it borrows; dropping it
/// cancels its poll.
#[must_use = "futures do nothing unless awaited"]
pub struct Writable<'a, T: AsRawFd>(Wait<'a, T>);

impl<T: AsRawFd> fmt::Debug for Writable<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Writable").field(&self.0).finish()
    }
}

impl<'a, T: AsRawFd> Future for Writable<'a, T> {
    type Output = io::Result<ReadyGuard<'a, T>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll(cx)
    }
}

/// Proof that an [`AsyncFd`] was found readable (from [`readable`](AsyncFd::readable))
/// or writable (from [`writable`](AsyncFd::writable)).
///
/// Readiness stays recorded when the guard is dropped, so the next wait that way
/// resolves at once; clear it ([`clear_ready`](ReadyGuard::clear_ready)) once a call
/// said `WouldBlock`, or let [`try_io`](ReadyGuard::try_io) do so.
pub struct ReadyGuard<'a, T: AsRawFd> {
    fd: &'a AsyncFd<T>,
    way: Way,
}

impl<'a, T: AsRawFd> ReadyGuard<'a, T> {
    /// Forgets the readiness this guard stands for: the next wait that way polls the
    /// fd again. Call it when the fd said `WouldBlock`.
    pub fn clear_ready(&mut self) {
        self.fd.waits.way(self.way).ready.set(false);
    }

    /// Keeps the readiness recorded (what dropping the guard does anyway).
    pub fn retain_ready(self) {}

    /// Runs `f`, a non-blocking call on the fd's owner; if it fails with `WouldBlock`,
    /// clears readiness and returns `Err(TryIoError)`: wait again and retry. Any other
    /// outcome, success or error, comes back in `Ok`.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::unix::net::UnixStream;
    ///
    /// use runtime::io::AsyncFd;
    ///
    /// /// Reads what is there, waiting until something is.
    /// async fn read_some(fd: &AsyncFd<UnixStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    ///     loop {
    ///         let mut ready = fd.readable().await?;
    ///         if let Ok(result) = ready.try_io(|mut stream| stream.read(buf)) {
    ///             return result;
    ///         }
    ///     }
    /// }
    /// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
    /// # let (a, b) = UnixStream::pair()?;
    /// # a.set_nonblocking(true)?;
    /// # let a = AsyncFd::new(a)?;
    /// # drop(b);
    /// # assert_eq!(read_some(&a, &mut [0; 8]).await?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn try_io<R>(
        &mut self,
        f: impl FnOnce(&'a T) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        match f(&self.fd.inner) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.clear_ready();
                Err(TryIoError(()))
            }
            result => Ok(result),
        }
    }

    /// The `AsyncFd` this guard is for.
    pub fn get_ref(&self) -> &'a AsyncFd<T> {
        self.fd
    }

    /// The value that owns the fd.
    pub fn get_inner(&self) -> &'a T {
        &self.fd.inner
    }
}

impl<T: AsRawFd> fmt::Debug for ReadyGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyGuard")
            .field("fd", &self.fd.waits.fd)
            .field("way", &self.way)
            .finish()
    }
}

/// What [`ReadyGuard::try_io`] returns when the call said `WouldBlock`: readiness was
/// cleared, so wait again before retrying.
#[derive(Debug)]
pub struct TryIoError(());

impl fmt::Display for TryIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the file descriptor was not ready after all; wait for it again")
    }
}

impl std::error::Error for TryIoError {}

#[cfg(test)]
mod tests {
    #[test]
    fn a_kernel_without_poll_add_is_told_by_name() {
        let e = super::poll_add_missing();
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("IORING_OP_POLL_ADD"), "{e}");
    }
}
