//! TCP, UDP and Unix sockets with owned-buffer I/O through the ring.
//!
//! Every operation takes its buffer by value and hands it back with the result, as in
//! [`buf`](crate::buf): `let (result, buf) = stream.read(buf).await;`. A dropped
//! future never frees memory the kernel may still write, and a dropped accept or
//! connect whose connection arrives anyway closes it.
//!
//! A listener shares its port with nobody ([`TcpListener::bind`], as in the standard
//! library). To serve one port on every core, [`TcpListener::bind_per_core`] makes
//! one listener per core, sharing the port among themselves only (`SO_REUSEPORT`),
//! and the kernel spreads connections over them:
//!
//! ```no_run
//! use runtime::net::TcpListener;
//!
//! let mut rt = runtime::Builder::new().build()?;
//! let listeners = TcpListener::bind_per_core("127.0.0.1:8080", rt.handle().core_count())?;
//! rt.run_on_all(move |core| {
//!     let listener = listeners.take(core);
//!     async move {
//!         let listener = listener?;
//!         loop {
//!             let (stream, _peer) = listener.accept().await?;
//!             runtime::spawn(async move {
//!                 let mut buf = Vec::with_capacity(4096);
//!                 loop {
//!                     let (n, b) = stream.read(buf).await;
//!                     match n {
//!                         Ok(0) | Err(_) => break,
//!                         Ok(_) => {}
//!                     }
//!                     let (written, mut b) = stream.write_all(b).await;
//!                     if written.is_err() {
//!                         break;
//!                     }
//!                     b.clear();
//!                     buf = b;
//!                 }
//!             });
//!         }
//!         #[allow(unreachable_code)]
//!         Ok::<(), std::io::Error>(())
//!     }
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Sockets are `!Send`: each belongs to the core (thread) that made or adopted it,
//! since only that core's ring can queue its close behind the operations it queued.
//! To hand a connection to another core, turn it into a standard socket
//! (`into_std`) and adopt it there (`from_std`).
//!
//! ```compile_fail
//! fn send<T: Send>(_: T) {}
//! send(runtime::net::TcpListener::bind("127.0.0.1:0").unwrap());
//! ```
//!
//! Streams of connections ([`TcpListener::incoming`], multishot accept) and of
//! received data ([`TcpStream::recv_stream`], multishot receive into the core's
//! provided buffers) implement `futures_core::Stream`.
//!
//! Each data call returns a named future ([`Read`], [`Write`], [`ReadExact`],
//! [`WriteAll`], [`Accept`], ...): one state machine around the op it submits, which a
//! struct can hold and name without boxing. Each borrows its socket, is `Unpin` and,
//! like the socket, `!Send`. Connecting and closing stay `async fn`s.

use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::buf::RecvBuf;

mod futures;
mod socket;
mod tcp;
mod udp;
mod unix;

pub use futures::{
    Accept, Read, ReadExact, ReadVectored, RecvFrom, SendTo, SendZc, ShutdownFuture, Write,
    WriteAll, WriteVectored,
};
pub use tcp::{CoreListeners, TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use socket::{IncomingState, RecvStreamState, Socket};

/// The addresses `addr` names (a name is looked up with the system resolver, which
/// blocks; pass an IP address on a hot path).
fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// Tries `f` on each address in turn; the last error if none worked.
fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in resolve(addr)? {
        match f(addr) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// `e`, or for a TCP address in use, an [`io::ErrorKind::AddrInUse`] error that says
/// which address and why.
fn in_use(addr: &SocketAddr, e: io::Error) -> io::Error {
    in_use_because(
        addr,
        "another program listens there, or another listener of this one",
        e,
    )
}

/// `e`, or for an address in use (`EADDRINUSE`), an [`io::ErrorKind::AddrInUse`]
/// error naming `what` with `hint`.
fn in_use_because(what: &dyn std::fmt::Display, hint: &str, e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(libc::EADDRINUSE) {
        return e;
    }
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("{what}: address in use; {hint}"),
    )
}

fn domain_of(addr: &SocketAddr) -> i32 {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// A socket type a listener's accepted sockets become.
trait Accepted: Sized {
    fn from_socket(socket: Socket) -> Self;
}

/// The connections a listener accepts, as a `Stream` (multishot accept: one
/// submission for any number of connections). Made by [`TcpListener::incoming`] and
/// [`UnixListener::incoming`].
///
/// An error (say, too many open files) is yielded and accepting goes on; the stream
/// ends only if the listener's accepts are cancelled. Dropping it cancels the accept;
/// a connection that arrives anyway is closed.
#[must_use = "streams do nothing unless polled"]
pub struct Incoming<'a, S> {
    state: IncomingState,
    _listener: PhantomData<Borrows<'a, S>>,
}

/// Borrows the listener for `'a` and yields `S`s (without owning one).
type Borrows<'a, S> = (&'a (), fn() -> S);

impl<S> Incoming<'_, S> {
    fn new(state: IncomingState) -> Self {
        Incoming {
            state,
            _listener: PhantomData,
        }
    }
}

impl<S: Accepted> Stream for Incoming<'_, S> {
    type Item = io::Result<S>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<S>>> {
        self.state
            .poll_next(cx)
            .map(|next| next.map(|r| r.map(S::from_socket)))
    }
}

impl<S> std::fmt::Debug for Incoming<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.state.fmt(f)
    }
}

/// Data as it arrives on a stream socket, as a `Stream` of [`RecvBuf`] (multishot
/// receive into the core's provided buffers: one submission, no buffer tied up while
/// waiting). Made by [`TcpStream::recv_stream`] and [`UnixStream::recv_stream`].
///
/// It ends at end of stream, or after yielding an error. When every provided buffer is
/// held, it waits for one to come back and goes on: no data is lost. Dropping it
/// cancels the receive; buffers filled meanwhile go back to the ring.
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a> {
    state: RecvStreamState,
    _stream: PhantomData<&'a ()>,
}

impl Stream for RecvStream<'_> {
    type Item = io::Result<RecvBuf>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<RecvBuf>>> {
        self.state.poll_next(cx)
    }
}

impl std::fmt::Debug for RecvStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.state.fmt(f)
    }
}

/// The owned-buffer I/O of a connected stream socket, shared by `TcpStream` and
/// `UnixStream`. Each call returns its named future (see [`Read`]).
macro_rules! stream_io {
    () => {
        /// Reads into `buf` (up to its capacity, `bytes_total`); returns how many bytes
        /// came, and the buffer with its length set to that (see
        /// [`buf`](crate::buf#what-a-read-does-to-the-buffers-length)). `Ok(0)` means
        /// the peer closed its side (or `buf` has no room).
        #[inline]
        pub fn read<B: IoBufMut>(&self, buf: B) -> $crate::net::Read<'_, B> {
            $crate::net::Read::new(&self.socket, buf)
        }

        /// Fills `buf` to its capacity (`bytes_total`), reading as often as needed. The
        /// stream ending first is an `UnexpectedEof` error; the buffer holds what came.
        /// Dropping the future part-way hands nothing back (see
        /// [`ReadExact`](crate::net::ReadExact)).
        #[inline]
        pub fn read_exact<B: IoBufMut>(&self, buf: B) -> $crate::net::ReadExact<'_, B> {
            $crate::net::ReadExact::new(&self.socket, buf)
        }

        /// Sends `buf`'s initialised bytes; returns how many the kernel took, which may
        /// be fewer.
        #[inline]
        pub fn write<B: IoBuf>(&self, buf: B) -> $crate::net::Write<'_, B> {
            $crate::net::Write::new(&self.socket, buf)
        }

        /// Sends all of `buf`'s initialised bytes, resubmitting after short sends.
        ///
        /// A peer that reset the connection is an error (`ConnectionReset` or
        /// `BrokenPipe`), never a signal.
        #[inline]
        pub fn write_all<B: IoBuf>(&self, buf: B) -> $crate::net::WriteAll<'_, B> {
            $crate::net::WriteAll::new(&self.socket, buf)
        }

        /// Reads into several buffers in order (one `recvmsg`); returns the total.
        #[inline]
        pub fn read_vectored<B: IoBufMut>(&self, bufs: Vec<B>) -> $crate::net::ReadVectored<'_, B> {
            $crate::net::ReadVectored::new(&self.socket, bufs)
        }

        /// Sends the initialised bytes of several buffers in order (one `sendmsg`);
        /// returns the total the kernel took, which may be fewer.
        #[inline]
        pub fn write_vectored<B: IoBuf>(&self, bufs: Vec<B>) -> $crate::net::WriteVectored<'_, B> {
            $crate::net::WriteVectored::new(&self.socket, bufs)
        }

        /// Data as it arrives, in the core's provided buffers: see [`RecvStream`].
        ///
        /// Needs Linux 6.0 and `Builder::recv_buffers` (on by default); otherwise the
        /// stream's first item is an error that says so.
        pub fn recv_stream(&self) -> RecvStream<'_> {
            RecvStream {
                state: self.socket.recv_stream(),
                _stream: std::marker::PhantomData,
            }
        }

        /// Sends `buf` without copying it into the kernel (`IORING_OP_SEND_ZC`, Linux
        /// 6.0). The future resolves once the kernel no longer reads the buffer (its
        /// notification), which may be after the peer acknowledged the data: worth it
        /// for large buffers, slower than [`write`](Self::write) for small ones.
        /// Returns how many bytes were sent, which may be fewer.
        #[inline]
        pub fn send_zc<B: IoBuf>(&self, buf: B) -> $crate::net::SendZc<'_, B> {
            $crate::net::SendZc::new(&self.socket, buf)
        }

        /// Shuts down the read half, the write half (the peer reads end of stream), or
        /// both.
        #[inline]
        pub fn shutdown(&self, how: std::net::Shutdown) -> $crate::net::ShutdownFuture<'_> {
            $crate::net::ShutdownFuture::new(&self.socket, how)
        }

        /// Closes the socket through the ring and reports the kernel's answer
        /// (dropping it closes it too, without an answer).
        pub async fn close(self) -> io::Result<()> {
            self.socket.close().await
        }

        /// The pending socket error (`SO_ERROR`), cleared by reading it.
        pub fn take_error(&self) -> io::Result<Option<io::Error>> {
            self.socket.take_error()
        }
    };
}
use stream_io;

/// `AsFd`/`AsRawFd` and `Debug` for a socket type with a `socket` field.
macro_rules! socket_traits {
    ($ty:ident) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.socket)
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.socket.raw()
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.socket)
                    .finish()
            }
        }
    };
}
use socket_traits;

/// The owned-buffer traits of `io/` (which holds traits only) for the stream types,
/// forwarding to their inherent calls.
macro_rules! owned_io {
    ($($ty:ty),*) => {$(
        impl crate::io::AsyncReadOwned for $ty {
            fn read<B: crate::buf::IoBufMut>(&self, buf: B) -> impl std::future::Future<Output = crate::buf::BufResult<usize, B>> {
                <$ty>::read(self, buf)
            }
            fn read_exact<B: crate::buf::IoBufMut>(&self, buf: B) -> impl std::future::Future<Output = crate::buf::BufResult<(), B>> {
                <$ty>::read_exact(self, buf)
            }
        }

        impl crate::io::AsyncWriteOwned for $ty {
            fn write<B: crate::buf::IoBuf>(&self, buf: B) -> impl std::future::Future<Output = crate::buf::BufResult<usize, B>> {
                <$ty>::write(self, buf)
            }
            fn write_all<B: crate::buf::IoBuf>(&self, buf: B) -> impl std::future::Future<Output = crate::buf::BufResult<(), B>> {
                <$ty>::write_all(self, buf)
            }
        }
    )*};
}

owned_io!(TcpStream, UnixStream);
