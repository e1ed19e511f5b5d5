//! The futures of the socket calls, one named type each: a state machine around the
//! op it submits, with nothing between the caller's poll and the op's.
//!
//! Each borrows its socket for `'a`, is `Unpin` (a struct may hold one and poll it
//! with `Pin::new`) and is `!Send`, as the socket is. Nothing reaches the kernel before
//! the first poll. Dropping one before it resolves drops its op: withdrawn if the
//! kernel has not seen it yet, else cancelled, and whatever the op owns (the buffer)
//! is freed once the kernel is done with it (`docs/cancellation.md`).

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::socket::Socket;
use super::{Accepted, TcpStream, UnixStream};
use crate::buf::{BufResult, IoBuf, IoBufMut, Slice, UntilDone};
use crate::driver::{ops, MultiOp, Op};
use crate::sys::socket::SockAddr;

/// Defines a socket call's future that is its one op and nothing else: the struct
/// (borrowing the socket for `'a`), its constructor from the socket and the call's
/// argument, and a `Future` impl that polls the op. The doc comment written before
/// the invocation goes on the struct.
macro_rules! socket_op_future {
    (
        $(#[$doc:meta])*
        $name:ident<B: $bound:ident>, $op:ty, $output:ty,
        |$socket:ident, $arg:ident: $arg_ty:ty| $make:expr
    ) => {
        $(#[$doc])*
        #[must_use = "futures do nothing unless awaited"]
        pub struct $name<'a, B: $bound> {
            op: Op<$op>,
            _socket: PhantomData<&'a Socket>,
        }

        impl<'a, B: $bound> $name<'a, B> {
            #[inline]
            pub(super) fn new($socket: &'a Socket, $arg: $arg_ty) -> $name<'a, B> {
                $name {
                    op: Op::new($make),
                    _socket: PhantomData,
                }
            }
        }

        impl<B: $bound> Future for $name<'_, B> {
            type Output = $output;

            #[inline]
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                Pin::new(&mut self.op).poll(cx)
            }
        }
    };
}

/// Borrows the socket for `'a`, for an output made of a `T` (which it does not own).
type BorrowsFor<'a, T> = PhantomData<(&'a Socket, fn() -> T)>;

socket_op_future! {
    /// The future of [`TcpStream::read`], [`UnixStream::read`],
    /// [`UdpSocket::recv`](super::UdpSocket::recv) and
    /// [`UnixDatagram::recv`](super::UnixDatagram::recv): one receive into `B`. It
    /// resolves to how many bytes came, and the buffer.
    ///
    /// A type that keeps a read in flight across its own polls can hold one:
    ///
    /// ```
    /// use std::future::Future;
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll};
    ///
    /// use runtime::net::{Read, UnixStream};
    ///
    /// /// The first message on a stream, as a length.
    /// struct FirstMessage<'a> {
    ///     read: Read<'a, Vec<u8>>,
    /// }
    ///
    /// impl Future for FirstMessage<'_> {
    ///     type Output = std::io::Result<usize>;
    ///
    ///     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
    ///         Pin::new(&mut self.read).poll(cx).map(|(n, _buf)| n)
    ///     }
    /// }
    ///
    /// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
    /// let (a, b) = UnixStream::pair().unwrap();
    /// let first = FirstMessage { read: a.read(Vec::with_capacity(64)) };
    /// b.write_all(b"ping".to_vec()).await.0.unwrap();
    /// assert_eq!(first.await.unwrap(), 4);
    /// # });
    /// ```
    ///
    /// Like its socket, it stays on its thread:
    ///
    /// ```compile_fail
    /// fn send<T: Send>(_: T) {}
    /// let (a, _b) = runtime::net::UnixStream::pair().unwrap();
    /// send(a.read(Vec::with_capacity(64)));
    /// ```
    Read<B: IoBufMut>, ops::Recv<B>, BufResult<usize, B>,
    |socket, buf: B| ops::Recv::new(socket.raw(), buf)
}

socket_op_future! {
    /// The future of [`TcpStream::write`], [`UnixStream::write`],
    /// [`UdpSocket::send`](super::UdpSocket::send) and
    /// [`UnixDatagram::send`](super::UnixDatagram::send): one send of `B`'s initialised
    /// bytes. It resolves to how many the kernel took, and the buffer.
    ///
    /// Dropped before the kernel saw it, it sends nothing; dropped later, the send is
    /// cancelled, and may have sent part of the buffer or all of it.
    Write<B: IoBuf>, ops::Send<B>, BufResult<usize, B>,
    |socket, buf: B| ops::Send::new(socket.raw(), buf)
}

/// The future of [`TcpStream::read_vectored`] and [`UnixStream::read_vectored`]: one
/// `recvmsg` into several buffers in order. It resolves to the total, and the buffers.
#[must_use = "futures do nothing unless awaited"]
pub struct ReadVectored<'a, B: IoBufMut> {
    op: Op<ops::RecvMsg<B>>,
    _socket: PhantomData<&'a Socket>,
}

impl<'a, B: IoBufMut> ReadVectored<'a, B> {
    #[inline]
    pub(super) fn new(socket: &'a Socket, bufs: Vec<B>) -> ReadVectored<'a, B> {
        ReadVectored {
            op: Op::new(ops::RecvMsg::new(socket.raw(), bufs)),
            _socket: PhantomData,
        }
    }
}

impl<B: IoBufMut> Future for ReadVectored<'_, B> {
    type Output = BufResult<usize, Vec<B>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.op)
            .poll(cx)
            .map(|(result, bufs)| (result.map(|(n, _peer)| n), bufs))
    }
}

socket_op_future! {
    /// The future of [`TcpStream::write_vectored`] and [`UnixStream::write_vectored`]:
    /// one `sendmsg` of several buffers' initialised bytes in order. It resolves to the
    /// total the kernel took, and the buffers.
    WriteVectored<B: IoBuf>, ops::SendMsg<B>, BufResult<usize, Vec<B>>,
    |socket, bufs: Vec<B>| ops::SendMsg::new(socket.raw(), bufs, None)
}

/// The future of [`TcpStream::read_exact`] and [`UnixStream::read_exact`]: receives
/// until `B` is full (its `bytes_total`), one receive at a time on the rest. The
/// stream ending first is an `UnexpectedEof` error; the buffer comes back in every
/// case, with what came.
///
/// Dropped part-way, it cancels the receive in flight and hands nothing back: the
/// buffer, and the bytes already taken from the stream into it, are lost (the buffer
/// is freed once the kernel is done with it).
#[must_use = "futures do nothing unless awaited"]
pub struct ReadExact<'a, B: IoBufMut> {
    fd: RawFd,
    run: UntilDone<Op<ops::Recv<Slice<B>>>, B>,
    _socket: PhantomData<&'a Socket>,
}

impl<'a, B: IoBufMut> ReadExact<'a, B> {
    #[inline]
    pub(super) fn new(socket: &'a Socket, buf: B) -> ReadExact<'a, B> {
        let total = buf.bytes_total();
        ReadExact {
            fd: socket.raw(),
            run: UntilDone::new(buf, total),
            _socket: PhantomData,
        }
    }
}

impl<B: IoBufMut> Future for ReadExact<'_, B> {
    type Output = BufResult<(), B>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let fd = this.fd;
        this.run.poll(
            cx,
            |rest, _| Ok(Op::new(ops::Recv::new(fd, rest))),
            stream_ended,
        )
    }
}

#[cold]
fn stream_ended(filled: usize, total: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the stream ended after {filled} of {total} bytes"),
    )
}

/// The future of [`TcpStream::write_all`] and [`UnixStream::write_all`]: sends all of
/// `B`'s initialised bytes, one send at a time on the rest after a short one. A send
/// that takes nothing is a `WriteZero` error; a peer that reset the connection is
/// `ConnectionReset` or `BrokenPipe`. The buffer comes back in every case.
///
/// Dropped part-way, it cancels the send in flight and hands nothing back; how much
/// of the buffer went out is not known.
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAll<'a, B: IoBuf> {
    fd: RawFd,
    run: UntilDone<Op<ops::Send<Slice<B>>>, B>,
    _socket: PhantomData<&'a Socket>,
}

impl<'a, B: IoBuf> WriteAll<'a, B> {
    #[inline]
    pub(super) fn new(socket: &'a Socket, buf: B) -> WriteAll<'a, B> {
        let total = buf.bytes_init();
        WriteAll {
            fd: socket.raw(),
            run: UntilDone::new(buf, total),
            _socket: PhantomData,
        }
    }
}

impl<B: IoBuf> Future for WriteAll<'_, B> {
    type Output = BufResult<(), B>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let fd = this.fd;
        this.run.poll(
            cx,
            |rest, _| Ok(Op::new(ops::Send::new(fd, rest))),
            socket_full,
        )
    }
}

#[cold]
fn socket_full(sent: usize, total: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::WriteZero,
        format!("the socket took no more bytes after {sent} of {total}"),
    )
}

/// The future of [`TcpStream::shutdown`] and [`UnixStream::shutdown`]
/// (`IORING_OP_SHUTDOWN`). Named so as not to be taken for
/// [`std::net::Shutdown`], the half it is given.
#[must_use = "futures do nothing unless awaited"]
pub struct ShutdownFuture<'a> {
    op: Op<ops::Shutdown>,
    _socket: PhantomData<&'a Socket>,
}

impl<'a> ShutdownFuture<'a> {
    #[inline]
    pub(super) fn new(socket: &'a Socket, how: std::net::Shutdown) -> ShutdownFuture<'a> {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        ShutdownFuture {
            op: Op::new(ops::Shutdown::new(socket.raw(), how)),
            _socket: PhantomData,
        }
    }
}

impl Future for ShutdownFuture<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.op).poll(cx)
    }
}

/// The future of [`TcpListener::accept`](super::TcpListener::accept) (`S` is
/// [`TcpStream`]) and [`UnixListener::accept`](super::UnixListener::accept) (`S` is
/// [`UnixStream`]): one connection and its peer's address.
///
/// Dropped before it resolves, it cancels the accept; a connection the kernel accepts
/// anyway is closed.
#[must_use = "futures do nothing unless awaited"]
pub struct Accept<'a, S> {
    op: Op<ops::Accept>,
    _listener: BorrowsFor<'a, S>,
}

impl<'a, S> Accept<'a, S> {
    #[inline]
    pub(super) fn new(listener: &'a Socket) -> Accept<'a, S> {
        Accept {
            op: Op::new(ops::Accept::new(listener.raw())),
            _listener: PhantomData,
        }
    }
}

/// `Future` for `Accept<'_, $stream>`, whose peer address `to_addr` reads.
macro_rules! accept_future {
    ($stream:ty, $addr:ty, $to_addr:ident) => {
        impl Future for Accept<'_, $stream> {
            type Output = io::Result<($stream, $addr)>;

            #[inline]
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                Pin::new(&mut self.op).poll(cx).map(|result| {
                    let (fd, addr) = result?;
                    // Made first, so a bad address closes the connection with it.
                    let stream = <$stream>::from_socket(Socket::from_fd(fd));
                    Ok((stream, addr.$to_addr()?))
                })
            }
        }
    };
}
accept_future!(TcpStream, std::net::SocketAddr, to_inet);
accept_future!(UnixStream, std::os::unix::net::SocketAddr, to_unix);

/// The future of [`UdpSocket::send_to`](super::UdpSocket::send_to) and
/// [`UnixDatagram::send_to`](super::UnixDatagram::send_to): one datagram of `B`'s
/// initialised bytes to an address (`sendmsg`). It resolves to how many bytes were
/// sent, and the buffer; an address that cannot be one (a Unix path too long, say)
/// is an error at the first poll, with the buffer.
#[must_use = "futures do nothing unless awaited"]
pub struct SendTo<'a, B: IoBuf> {
    state: SendToState<B>,
    _socket: PhantomData<&'a Socket>,
}

enum SendToState<B: IoBuf> {
    Sending(Op<ops::SendMsg<B>>),
    /// The address was refused before anything was sent; taken by the first poll.
    Refused(Option<(io::Error, B)>),
}

impl<'a, B: IoBuf> SendTo<'a, B> {
    #[inline]
    pub(super) fn new(socket: &'a Socket, buf: B, addr: io::Result<SockAddr>) -> SendTo<'a, B> {
        let state = match addr {
            Ok(addr) => SendToState::Sending(Op::new(ops::SendMsg::new(
                socket.raw(),
                vec![buf],
                Some(addr),
            ))),
            Err(e) => SendToState::Refused(Some((e, buf))),
        };
        SendTo {
            state,
            _socket: PhantomData,
        }
    }
}

impl<B: IoBuf> Future for SendTo<'_, B> {
    type Output = BufResult<usize, B>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            SendToState::Sending(op) => Pin::new(op).poll(cx).map(|(result, mut bufs)| {
                let buf = bufs.pop().expect("sendmsg hands its buffer back");
                (result, buf)
            }),
            SendToState::Refused(refused) => {
                let (e, buf) = refused
                    .take()
                    .expect("a send_to future was polled after it completed");
                Poll::Ready((Err(e), buf))
            }
        }
    }
}

/// The future of [`UdpSocket::recv_from`](super::UdpSocket::recv_from) (`A` is
/// [`std::net::SocketAddr`], the default) and
/// [`UnixDatagram::recv_from`](super::UnixDatagram::recv_from) (`A` is
/// [`std::os::unix::net::SocketAddr`]): one datagram into `B` (`recvmsg`). It
/// resolves to the datagram's length and sender, and the buffer.
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFrom<'a, B: IoBufMut, A = std::net::SocketAddr> {
    op: Op<ops::RecvMsg<B>>,
    _socket: BorrowsFor<'a, A>,
}

impl<'a, B: IoBufMut, A> RecvFrom<'a, B, A> {
    #[inline]
    pub(super) fn new(socket: &'a Socket, buf: B) -> RecvFrom<'a, B, A> {
        RecvFrom {
            op: Op::new(ops::RecvMsg::new(socket.raw(), vec![buf])),
            _socket: PhantomData,
        }
    }
}

/// `Future` for `RecvFrom<'_, B, $addr>`, whose sender `to_addr` reads.
macro_rules! recv_from_future {
    ($addr:ty, $to_addr:ident) => {
        impl<B: IoBufMut> Future for RecvFrom<'_, B, $addr> {
            type Output = BufResult<(usize, $addr), B>;

            #[inline]
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                Pin::new(&mut self.op).poll(cx).map(|(result, mut bufs)| {
                    let buf = bufs.pop().expect("recvmsg hands its buffer back");
                    (result.and_then(|(n, addr)| Ok((n, addr.$to_addr()?))), buf)
                })
            }
        }
    };
}
recv_from_future!(std::net::SocketAddr, to_inet);
recv_from_future!(std::os::unix::net::SocketAddr, to_unix);

/// The future of [`TcpStream::send_zc`] and [`UnixStream::send_zc`]: a zero-copy send,
/// whose result comes first and whose buffer comes back only with the kernel's
/// notification that it let go of it (rule 4 of `docs/cancellation.md`).
///
/// Dropped before it resolves, it cancels the send; the buffer is freed after the
/// notification.
#[must_use = "futures do nothing unless awaited"]
pub struct SendZc<'a, B: IoBuf> {
    op: MultiOp<ops::SendZc<B>>,
    sent: Option<io::Result<usize>>,
    _socket: PhantomData<&'a Socket>,
}

impl<'a, B: IoBuf> SendZc<'a, B> {
    #[inline]
    pub(super) fn new(socket: &'a Socket, buf: B) -> SendZc<'a, B> {
        SendZc {
            op: MultiOp::new(ops::SendZc::new(socket.raw(), buf)),
            sent: None,
            _socket: PhantomData,
        }
    }
}

impl<B: IoBuf> Future for SendZc<'_, B> {
    type Output = BufResult<usize, B>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match this.op.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(ops::ZcEvent::Sent(result))) => this.sent = Some(result),
                Poll::Ready(Some(ops::ZcEvent::Released)) => {}
                Poll::Ready(None) => {
                    let buf = this
                        .op
                        .data_mut()
                        .and_then(ops::SendZc::take_buf)
                        .expect("a finished zero-copy send hands its buffer back");
                    let result = this.sent.take().unwrap_or_else(|| {
                        Err(io::Error::other(
                            "the zero-copy send ended without a result",
                        ))
                    });
                    return Poll::Ready((result, buf));
                }
            }
        }
    }
}

/// `Debug` for each future: its op's state, never the buffer (which `B` need not
/// print, and which the kernel may be writing).
macro_rules! debug_op {
    ($name:literal, $ty:ty, $field:ident $(, $gen:ident: $bound:path)*) => {
        impl<$($gen: $bound),*> fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name).field(stringify!($field), &self.$field).finish()
            }
        }
    };
}
debug_op!("Read", Read<'_, B>, op, B: IoBufMut);
debug_op!("Write", Write<'_, B>, op, B: IoBuf);
debug_op!("ReadVectored", ReadVectored<'_, B>, op, B: IoBufMut);
debug_op!("WriteVectored", WriteVectored<'_, B>, op, B: IoBuf);
debug_op!("ReadExact", ReadExact<'_, B>, run, B: IoBufMut);
debug_op!("WriteAll", WriteAll<'_, B>, run, B: IoBuf);
debug_op!("ShutdownFuture", ShutdownFuture<'_>, op);
debug_op!("Accept", Accept<'_, S>, op, S: Sized);
debug_op!("RecvFrom", RecvFrom<'_, B, A>, op, B: IoBufMut, A: Sized);
debug_op!("SendZc", SendZc<'_, B>, op, B: IoBuf);

impl<B: IoBuf> fmt::Debug for SendTo<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SendTo");
        match &self.state {
            SendToState::Sending(op) => d.field("op", op),
            SendToState::Refused(refused) => d.field("refused", &refused.as_ref().map(|(e, _)| e)),
        };
        d.finish()
    }
}
