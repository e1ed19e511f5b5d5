//! Poll-based I/O over the runtime's owned-buffer streams: [`Compat`] implements the
//! `futures-io` and `tokio` `AsyncRead`/`AsyncBufRead`/`AsyncWrite` traits (features
//! `futures-io`, `tokio`) over a [`TcpStream`](crate::net::TcpStream),
//! [`UnixStream`](crate::net::UnixStream) or [`File`](crate::fs::File).
//!
//! It sits above `net` and `fs` (it names their types) and the driver (it keeps the
//! driver's ops in flight across polls); users reach it as `runtime::io::Compat`, and
//! the sealed [`CompatIo`], which says what it can wrap, as `runtime::io::CompatIo`.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::buf::{BufResult, IoBuf, Slice};
use crate::driver::{ops, Op};

mod sealed {
    pub trait Sealed {}
}

/// A stream [`Compat`] can wrap: the runtime's sockets and files.
pub trait CompatIo: std::os::fd::AsRawFd + Unpin + sealed::Sealed {
    /// Whether reads and writes ignore offsets (sockets, `SHUT_WR` on close) rather
    /// than follow a cursor (files).
    #[doc(hidden)]
    const STREAM: bool;
}

impl sealed::Sealed for crate::net::TcpStream {}
impl CompatIo for crate::net::TcpStream {
    const STREAM: bool = true;
}

impl sealed::Sealed for crate::net::UnixStream {}
impl CompatIo for crate::net::UnixStream {
    const STREAM: bool = true;
}

impl sealed::Sealed for crate::fs::File {}
impl CompatIo for crate::fs::File {
    const STREAM: bool = false;
}

/// Bytes a read asks the kernel for, unless [`Compat::with_capacity`] says otherwise.
const READ_CAPACITY: usize = 16 * 1024;
/// The most a write takes into the write buffer at once, by default.
const WRITE_CAPACITY: usize = 64 * 1024;

/// Poll-based I/O over an owned-buffer stream: `futures_io::AsyncRead`,
/// `AsyncBufRead` and `AsyncWrite` (feature `futures-io`) and `tokio::io::AsyncRead`
/// and `AsyncWrite` (feature `tokio`), for hyper, codecs and copy helpers.
///
/// A poll-based read lends the runtime a `&mut [u8]` only for the duration of one
/// poll, but the kernel writes into a buffer until its completion, which may come
/// after the caller has gone. So `Compat` owns one buffer per direction and keeps the
/// operation in flight across polls:
///
/// - **Reads** go into the read buffer (up to its capacity, 16 KiB by default) and are
///   copied out as the caller asks. A read future dropped between polls loses nothing:
///   the operation stays in flight inside `Compat`, and what the kernel delivers is
///   there for the next read. `AsyncBufRead` hands out the buffer itself.
/// - **Writes** copy into the write buffer (up to 64 KiB at a time), start sending and
///   report the bytes as written at once; the next write, `flush` or `close`/
///   `shutdown` waits for the send to finish (resubmitting short writes) and reports
///   its error, if any. `flush` returns when the kernel has taken every byte.
/// - **Close** (`poll_close`, `poll_shutdown`) flushes, then shuts down the write half
///   of a socket (`IORING_OP_SHUTDOWN`); for a file it only flushes.
///
/// Over a [`File`](crate::fs::File), `Compat` reads and writes sequentially from a
/// cursor that starts at 0 ([`set_position`](Compat::set_position) moves it).
///
/// Dropping a `Compat` with operations in flight cancels them (the buffers stay with
/// the operations until their completions) and then closes the stream; buffered data
/// that was not flushed is lost, as with any buffered writer.
pub struct Compat<T: CompatIo> {
    // Field order matters: the ops drop (and queue their cancels) before the stream
    // queues its close.
    read: Reader,
    write: Writer,
    shutdown: Shutdown,
    io: T,
    /// For files: the offset of the next byte the caller reads or writes.
    pos: u64,
}

struct Reader {
    op: Option<ReadOp>,
    /// The buffer while no read owns it; bytes `start..len()` are not yet taken.
    buf: Option<Vec<u8>>,
    start: usize,
    capacity: usize,
}

struct Writer {
    op: Option<WriteOp>,
    /// The buffer while no write owns it.
    buf: Option<Vec<u8>>,
    /// For files: the offset its first byte goes to.
    offset: u64,
    capacity: usize,
    /// An error of a write whose bytes were already reported as written: the next
    /// call returns it.
    error: Option<io::Error>,
}

enum Shutdown {
    No,
    InFlight(Op<ops::Shutdown>),
    Done,
}

enum ReadOp {
    Stream(Op<ops::Recv<Vec<u8>>>),
    File(Op<ops::Read<Vec<u8>>>),
}

impl ReadOp {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<BufResult<usize, Vec<u8>>> {
        match self {
            ReadOp::Stream(op) => Pin::new(op).poll(cx),
            ReadOp::File(op) => Pin::new(op).poll(cx),
        }
    }
}

enum WriteOp {
    Stream(Op<ops::Send<Slice<Vec<u8>>>>),
    File(Op<ops::Write<Slice<Vec<u8>>>>),
}

impl WriteOp {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<BufResult<usize, Slice<Vec<u8>>>> {
        match self {
            WriteOp::Stream(op) => Pin::new(op).poll(cx),
            WriteOp::File(op) => Pin::new(op).poll(cx),
        }
    }
}

impl<T: CompatIo> Compat<T> {
    /// Wraps `io` with a 16 KiB read buffer and up to 64 KiB taken per write.
    pub fn new(io: T) -> Compat<T> {
        Compat::with_capacity(io, READ_CAPACITY, WRITE_CAPACITY)
    }

    /// Wraps `io`, reading up to `read` bytes per operation and taking up to `write`
    /// bytes per write call (each at least 1).
    pub fn with_capacity(io: T, read: usize, write: usize) -> Compat<T> {
        Compat {
            read: Reader {
                op: None,
                buf: None,
                start: 0,
                capacity: read.max(1),
            },
            write: Writer {
                op: None,
                buf: None,
                offset: 0,
                capacity: write.max(1),
                error: None,
            },
            shutdown: Shutdown::No,
            io,
            pos: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The wrapped stream, for calls that do not read or write (options, addresses).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Unwraps the stream. Operations in flight are cancelled, and bytes read but not
    /// yet taken or written but not yet flushed are dropped: flush first, and read
    /// only what the protocol says is there.
    pub fn into_inner(self) -> T {
        let Compat {
            read,
            write,
            shutdown,
            io,
            ..
        } = self;
        drop((read, write, shutdown));
        io
    }

    /// For a file: the offset of the next byte read or written.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// For a file: moves the cursor to `pos`. Bytes read ahead are dropped; a write
    /// in flight finishes where it was going. A read in flight is cancelled.
    pub fn set_position(&mut self, pos: u64) {
        self.read.op = None;
        self.read.start = 0;
        if let Some(buf) = &mut self.read.buf {
            buf.clear();
        }
        self.pos = pos;
    }

    /// Bytes read and not yet taken.
    fn buffered(&self) -> usize {
        self.read
            .buf
            .as_ref()
            .map_or(0, |b| b.len() - self.read.start)
    }

    /// Fills the read buffer if it is empty and returns what it holds (empty: end of
    /// stream).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        while self.buffered() == 0 {
            if self.read.op.is_none() {
                if !T::STREAM {
                    // A file has one cursor: what is being written goes first.
                    ready!(self.poll_drain(cx))?;
                }
                let mut buf = self
                    .read
                    .buf
                    .take()
                    .unwrap_or_else(|| Vec::with_capacity(self.read.capacity));
                buf.clear();
                self.read.start = 0;
                let fd = self.io.as_raw_fd();
                self.read.op = Some(if T::STREAM {
                    ReadOp::Stream(Op::new(ops::Recv::new(fd, buf)))
                } else {
                    // The cursor is where the caller is; nothing is buffered ahead.
                    ReadOp::File(Op::new(ops::Read::new(fd, buf, self.pos)))
                });
            }
            let op = self.read.op.as_mut().expect("a read is in flight");
            let (result, buf) = ready!(op.poll(cx));
            self.read.op = None;
            self.read.buf = Some(buf);
            self.read.start = 0;
            match result {
                Ok(0) => return Poll::Ready(Ok(&[])),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let buf = self
            .read
            .buf
            .as_ref()
            .expect("buffered bytes have a buffer");
        Poll::Ready(Ok(&buf[self.read.start..]))
    }

    /// Marks `n` buffered bytes as taken.
    fn take(&mut self, n: usize) {
        let n = n.min(self.buffered());
        self.read.start += n;
        if !T::STREAM {
            self.pos += n as u64;
        }
    }

    #[cfg(feature = "futures-io")]
    fn poll_read_into(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let data = ready!(self.poll_fill(cx))?;
        let n = data.len().min(out.len());
        out[..n].copy_from_slice(&data[..n]);
        self.take(n);
        Poll::Ready(Ok(n))
    }

    /// Starts sending `buf[from..]` (for a file, to `write.offset + from`).
    fn start_write(&mut self, buf: Vec<u8>, from: usize) {
        let fd = self.io.as_raw_fd();
        let end = buf.len();
        let at = self.write.offset + from as u64;
        let rest = buf.slice(from..end);
        self.write.op = Some(if T::STREAM {
            WriteOp::Stream(Op::new(ops::Send::new(fd, rest)))
        } else {
            WriteOp::File(Op::new(ops::Write::new(fd, rest, at)))
        });
    }

    /// Drives the write in flight to its end (short writes resubmitted), then reports
    /// the first error of the writes already reported as done.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(op) = &mut self.write.op {
            let (result, slice) = ready!(op.poll(cx));
            self.write.op = None;
            let (begin, end) = (slice.begin(), slice.end());
            let buf = slice.into_inner();
            let done = match result {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("the stream took no more bytes after {begin} of {end}"),
                )),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
                Err(e) => Err(e),
            };
            match done {
                Ok(n) if begin + n < end => self.start_write(buf, begin + n),
                Ok(_) => self.write.buf = Some(buf),
                Err(e) => {
                    self.write.buf = Some(buf);
                    self.write.error.get_or_insert(e);
                }
            }
        }
        match self.write.error.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Takes as much of `data` (the parts in order) as the write buffer holds and
    /// starts sending it.
    fn poll_write_from<'a>(
        &mut self,
        cx: &mut Context<'_>,
        data: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> Poll<io::Result<usize>> {
        let total: usize = data.clone().map(<[u8]>::len).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        ready!(self.poll_drain(cx))?;
        if !T::STREAM && (self.read.op.is_some() || self.buffered() > 0) {
            // Bytes read ahead are past the cursor; the write goes at the cursor.
            let pos = self.pos;
            self.set_position(pos);
        }
        let mut buf = self
            .write
            .buf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(total.min(self.write.capacity)));
        buf.clear();
        for part in data {
            let room = self.write.capacity - buf.len();
            if room == 0 {
                break;
            }
            buf.extend_from_slice(&part[..part.len().min(room)]);
        }
        let n = buf.len();
        self.write.offset = self.pos;
        if !T::STREAM {
            self.pos += n as u64;
        }
        self.start_write(buf, 0);
        // Submits the write and registers the waker; a failure is reported by the next
        // call, as the bytes are reported as taken now.
        if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
            self.write.error = Some(e);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        if !T::STREAM {
            return Poll::Ready(Ok(()));
        }
        loop {
            match &mut self.shutdown {
                Shutdown::Done => return Poll::Ready(Ok(())),
                Shutdown::No => {
                    let fd = self.io.as_raw_fd();
                    self.shutdown =
                        Shutdown::InFlight(Op::new(ops::Shutdown::new(fd, libc::SHUT_WR)));
                }
                Shutdown::InFlight(op) => {
                    let result = ready!(Pin::new(op).poll(cx));
                    self.shutdown = Shutdown::Done;
                    // A peer that reset the connection first leaves nothing to shut
                    // down: the write half is closed either way.
                    return Poll::Ready(match result {
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
                        other => other,
                    });
                }
            }
        }
    }
}

impl<T: CompatIo + fmt::Debug> fmt::Debug for Compat<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compat")
            .field("io", &self.io)
            .field("buffered", &self.buffered())
            .field("reading", &self.read.op.is_some())
            .field("writing", &self.write.op.is_some())
            .finish()
    }
}

#[cfg(feature = "futures-io")]
mod futures_io_impls {
    use super::*;

    impl<T: CompatIo> futures_io::AsyncRead for Compat<T> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_read_into(cx, buf)
        }
    }

    impl<T: CompatIo> futures_io::AsyncBufRead for Compat<T> {
        fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
            self.get_mut().poll_fill(cx)
        }

        fn consume(self: Pin<&mut Self>, amt: usize) {
            self.get_mut().take(amt);
        }
    }

    impl<T: CompatIo> futures_io::AsyncWrite for Compat<T> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_from(cx, std::iter::once(buf))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut()
                .poll_write_from(cx, bufs.iter().map(|b| &**b))
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_drain(cx)
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_close_inner(cx)
        }
    }
}

#[cfg(feature = "tokio")]
mod tokio_impls {
    use super::*;

    impl<T: CompatIo> tokio::io::AsyncRead for Compat<T> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let this = self.get_mut();
            let data = ready!(this.poll_fill(cx))?;
            let n = data.len().min(buf.remaining());
            buf.put_slice(&data[..n]);
            this.take(n);
            Poll::Ready(Ok(()))
        }
    }

    impl<T: CompatIo> tokio::io::AsyncBufRead for Compat<T> {
        fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
            self.get_mut().poll_fill(cx)
        }

        fn consume(self: Pin<&mut Self>, amt: usize) {
            self.get_mut().take(amt);
        }
    }

    impl<T: CompatIo> tokio::io::AsyncWrite for Compat<T> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_from(cx, std::iter::once(buf))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut()
                .poll_write_from(cx, bufs.iter().map(|b| &**b))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_drain(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_close_inner(cx)
        }
    }
}

/// hyper's own I/O traits: why they are implemented here, on `Compat`, is told in
/// [`crate::hyper`].
#[cfg(feature = "hyper")]
mod hyper_impls {
    use super::*;

    impl<T: CompatIo> ::hyper::rt::Read for Compat<T> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: ::hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let this = self.get_mut();
            let data = ready!(this.poll_fill(cx))?;
            let n = data.len().min(buf.remaining());
            buf.put_slice(&data[..n]);
            this.take(n);
            Poll::Ready(Ok(()))
        }
    }

    impl<T: CompatIo> ::hyper::rt::Write for Compat<T> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_from(cx, std::iter::once(buf))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut()
                .poll_write_from(cx, bufs.iter().map(|b| &**b))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_drain(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_close_inner(cx)
        }
    }
}
