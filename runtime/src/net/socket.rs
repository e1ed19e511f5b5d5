//! The fd and owned-buffer operations every socket type shares.

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::buf::RecvBuf;
use crate::driver::{self, ops, MultiOp, Op};
use crate::sys::probe::Probe;
use crate::sys::socket::{self as sys, SockAddr};

/// A socket fd. Dropping it closes it through the ring, behind every SQE already
/// queued (rule 5), so the fd number is not reused while an op may still name it.
/// The ops on it have been cancelled by then: an op's future borrows the socket, so it
/// was dropped first, which withdrew the op (not yet submitted) or queued its cancel.
///
/// It is `!Send`: an SQE naming the fd may sit in this core's submission queue until
/// the next ring turn, and only this core's ring can queue the close behind it. A
/// socket dropped on another thread would close the fd at once, and the queued op
/// could then act on whatever file reuses the number.
pub(crate) struct Socket {
    fd: Option<OwnedFd>,
    _core_bound: PhantomData<*const ()>,
}

impl Socket {
    pub(crate) fn from_fd(fd: OwnedFd) -> Socket {
        driver::fresh_fd(fd.as_raw_fd());
        Socket::from_known_fd(fd)
    }

    /// A socket of an fd the runtime had already (a connect's own socket).
    fn from_known_fd(fd: OwnedFd) -> Socket {
        Socket {
            fd: Some(fd),
            _core_bound: PhantomData,
        }
    }

    /// Takes over a socket made elsewhere, clearing `O_NONBLOCK` (see
    /// [`sys::set_blocking`]).
    pub(crate) fn adopt(fd: OwnedFd) -> io::Result<Socket> {
        sys::set_blocking(&fd)?;
        Ok(Socket::from_fd(fd))
    }

    /// A new socket: through `IORING_OP_SOCKET` where the kernel has it, else socket(2).
    pub(crate) async fn new(domain: i32, ty: i32) -> io::Result<Socket> {
        let fd = if driver::op_available(io_uring::opcode::Socket::CODE) {
            Op::new(ops::Socket::new(domain, ty)).await?
        } else {
            sys::socket(domain, ty)?
        };
        Ok(Socket::from_fd(fd))
    }

    /// A new socket made synchronously (for binds, which are synchronous).
    pub(crate) fn new_sync(domain: i32, ty: i32) -> io::Result<Socket> {
        sys::socket(domain, ty).map(Socket::from_fd)
    }

    fn owned(&self) -> &OwnedFd {
        self.fd
            .as_ref()
            .expect("a socket owns its fd until dropped")
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.owned().as_raw_fd()
    }

    pub(crate) fn bind(&self, addr: &SockAddr) -> io::Result<()> {
        sys::bind(self.owned(), addr)
    }

    pub(crate) fn listen(&self, backlog: i32) -> io::Result<()> {
        sys::listen(self.owned(), backlog)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SockAddr> {
        sys::name(self.raw(), false)
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SockAddr> {
        sys::name(self.raw(), true)
    }

    /// Connects a new stream socket; the op owns it until the CQE (a dropped connect
    /// closes the half-open socket then).
    pub(crate) async fn connect_new(domain: i32, ty: i32, addr: SockAddr) -> io::Result<Socket> {
        let socket = Socket::new(domain, ty).await?;
        let fd = socket.into_fd();
        Op::new(ops::Connect::new(fd, addr))
            .await
            .map(Socket::from_known_fd)
    }

    /// Connects this (datagram) socket; it stays open whatever happens to the future.
    pub(crate) async fn connect(&self, addr: SockAddr) -> io::Result<()> {
        Op::new(ops::Connect::new(self.raw(), addr)).await.map(drop)
    }

    /// The fd, for an op that takes the socket over (a connect owns its new socket).
    pub(crate) fn into_fd(mut self) -> OwnedFd {
        self.fd.take().expect("a socket owns its fd until dropped")
    }

    /// The fd, leaving the runtime (`into_std`): first every SQE queued on this core
    /// goes to the kernel while the fd is still ours, and every op dropped in flight
    /// on it has had its last CQE, so nothing of ours touches the fd (or whatever file
    /// takes its number after its new owner closes it) from then on.
    pub(crate) fn into_std_fd(self) -> OwnedFd {
        let fd = self.into_fd();
        if let Some(driver) = driver::current() {
            driver.release_fd(fd.as_raw_fd());
        }
        fd
    }

    /// Closes the socket through the ring, behind every SQE already queued, and
    /// reports the kernel's answer. (The ops on it were cancelled when their futures,
    /// which borrow the socket, were dropped.)
    pub(crate) async fn close(mut self) -> io::Result<()> {
        let fd = self.fd.take().expect("a socket owns its fd until dropped");
        Op::new(ops::Close::new(fd)).await
    }

    pub(crate) fn recv_stream(&self) -> RecvStreamState {
        RecvStreamState::new(self.raw())
    }

    pub(crate) fn incoming(&self) -> IncomingState {
        IncomingState::new(self.raw())
    }

    pub(crate) fn set_opt<T: Copy>(&self, level: i32, name: i32, value: T) -> io::Result<()> {
        sys::set_opt(self.raw(), level, name, value)
    }

    pub(crate) fn opt<T: Copy + Default>(&self, level: i32, name: i32) -> io::Result<T> {
        sys::get_opt(self.raw(), level, name)
    }

    pub(crate) fn set_flag(&self, level: i32, name: i32, on: bool) -> io::Result<()> {
        self.set_opt(level, name, libc::c_int::from(on))
    }

    pub(crate) fn flag(&self, level: i32, name: i32) -> io::Result<bool> {
        self.opt::<libc::c_int>(level, name).map(|v| v != 0)
    }

    /// Where the hop limit of this socket's family lives: `IP_TTL` for IPv4,
    /// `IPV6_UNICAST_HOPS` for IPv6.
    fn ttl_option(&self) -> io::Result<(i32, i32)> {
        Ok(match self.local_addr()?.family() {
            libc::AF_INET6 => (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
            _ => (libc::IPPROTO_IP, libc::IP_TTL),
        })
    }

    pub(crate) fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let (level, name) = self.ttl_option()?;
        let ttl = libc::c_int::try_from(ttl).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TTL {ttl} is out of range"),
            )
        })?;
        self.set_opt(level, name, ttl)
    }

    pub(crate) fn ttl(&self) -> io::Result<u32> {
        let (level, name) = self.ttl_option()?;
        self.opt::<libc::c_int>(level, name)
            .map(|v| v.max(0) as u32)
    }

    /// `SO_KEEPALIVE`, with the idle time before the first probe (`TCP_KEEPIDLE`,
    /// whole seconds, at least 1) when on.
    pub(crate) fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.set_flag(libc::SOL_SOCKET, libc::SO_KEEPALIVE, idle.is_some())?;
        if let Some(idle) = idle {
            let secs = libc::c_int::try_from(idle.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
            self.set_opt(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
        }
        Ok(())
    }

    pub(crate) fn keepalive(&self) -> io::Result<Option<Duration>> {
        if !self.flag(libc::SOL_SOCKET, libc::SO_KEEPALIVE)? {
            return Ok(None);
        }
        let secs: libc::c_int = self.opt(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)?;
        Ok(Some(Duration::from_secs(secs.max(0) as u64)))
    }

    /// `SO_ERROR`: the pending error, cleared by reading it.
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        let errno: libc::c_int = self.opt(libc::SOL_SOCKET, libc::SO_ERROR)?;
        Ok((errno != 0).then(|| io::Error::from_raw_os_error(errno)))
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.owned().as_fd()
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fd {
            Some(fd) => write!(f, "{}", fd.as_raw_fd()),
            None => f.write_str("closed"),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            // One SQE, whatever else is in flight on the core (no cancel-by-fd sweep:
            // the ops on this fd were cancelled one by one as their futures went).
            driver::close(fd);
        }
    }
}

/// The state behind a `recv_stream`: a multishot receive, re-armed when the kernel
/// ends it early (`-ENOBUFS` when every provided buffer is taken, or for reasons of
/// its own), ended by end of stream or an error.
///
/// After `-ENOBUFS` it re-arms only if the core's ring has a buffer free by its own
/// count (buffers held by `RecvBuf`s or named by CQEs other streams have not taken yet
/// are not), so it never spins against an empty ring. While none is free it receives
/// into a buffer of its own, one plain receive at a time: a stream whose reader leaves
/// its completions unread, holding every buffer, slows the others down but never
/// stalls them.
pub(crate) struct RecvStreamState {
    fd: RawFd,
    op: Option<MultiOp<ops::RecvMulti>>,
    /// The plain receive made while the ring has no buffer free.
    fallback: Option<Op<ops::Recv<Vec<u8>>>>,
    ended: bool,
    /// The last end was `-ENOBUFS`: re-arm only once a buffer is free.
    starved: bool,
}

impl RecvStreamState {
    fn new(fd: RawFd) -> RecvStreamState {
        RecvStreamState {
            fd,
            op: None,
            fallback: None,
            ended: false,
            starved: false,
        }
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<RecvBuf>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            if let Some(fallback) = &mut self.fallback {
                let (result, buf) = match Pin::new(fallback).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(out) => out,
                };
                self.fallback = None;
                return Poll::Ready(match result {
                    Ok(0) => {
                        self.ended = true;
                        None
                    }
                    Ok(_) => Some(Ok(RecvBuf::owned(buf))),
                    Err(e) => {
                        self.ended = true;
                        Some(Err(e))
                    }
                });
            }
            let op = match &mut self.op {
                Some(op) => op,
                None => {
                    let ring = match driver::current() {
                        None => Err(driver::no_runtime()),
                        // The readiness backend receives into the pooled buffers itself.
                        Some(driver)
                            if driver.is_ring()
                                && !Probe::get().is_ok_and(Probe::multishot_recv) =>
                        {
                            Err(io::Error::new(
                                io::ErrorKind::Unsupported,
                                "multishot receive needs Linux 6.0 or newer; use read instead",
                            ))
                        }
                        Some(driver) => driver.recv_ring().cloned(),
                    };
                    match ring {
                        Ok(ring) => self
                            .op
                            .insert(MultiOp::new(ops::RecvMulti::new(self.fd, ring))),
                        Err(e) => {
                            self.ended = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
            };
            if op.is_done() {
                if self.starved {
                    let ring = op.data().ring();
                    if ring.available() == 0 {
                        let buf = Vec::with_capacity(ring.size() as usize);
                        self.fallback = Some(Op::new(ops::Recv::new(self.fd, buf)));
                        continue;
                    }
                    self.starved = false;
                }
                op.rearm();
            }
            match op.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                // Ended; the next turn of the loop re-arms it.
                Poll::Ready(None) => {}
                Poll::Ready(Some(Ok(ops::Received::Data(buf)))) => {
                    return Poll::Ready(Some(Ok(buf)))
                }
                Poll::Ready(Some(Ok(ops::Received::Eof))) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.starved = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    if op.is_done() {
                        self.ended = true;
                    }
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl fmt::Debug for RecvStreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvStream")
            .field("fd", &self.fd)
            .field("ended", &self.ended)
            .finish()
    }
}

/// The state behind an `incoming` stream: a multishot accept where the kernel has a
/// sound one, re-armed whenever the kernel ends it; one accept at a time otherwise.
/// Errors (say `EMFILE`) are yielded and accepting goes on; it ends only when the
/// listener's ops are cancelled.
pub(crate) struct IncomingState {
    fd: RawFd,
    accept: Accepting,
}

enum Accepting {
    Multi(MultiOp<ops::AcceptMulti>),
    Single(Option<Op<ops::Accept>>),
    Ended,
}

impl IncomingState {
    fn new(fd: RawFd) -> IncomingState {
        // The readiness backend repeats plain accepts as a stream; a ring needs the
        // kernel's multishot accept (asking the probe there would set up a ring).
        let multi = match crate::backend() {
            Some(crate::Backend::Epoll) => true,
            _ => Probe::get().is_ok_and(Probe::multishot_accept),
        };
        let accept = if multi {
            Accepting::Multi(MultiOp::new(ops::AcceptMulti::new(fd)))
        } else {
            Accepting::Single(None)
        };
        IncomingState { fd, accept }
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Socket>>> {
        loop {
            let result = match &mut self.accept {
                Accepting::Ended => return Poll::Ready(None),
                Accepting::Multi(op) => {
                    if op.is_done() {
                        op.rearm();
                    }
                    match op.poll_next(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(None) => continue,
                        Poll::Ready(Some(Err(e)))
                            if op.is_done() && e.raw_os_error() == Some(libc::EINVAL) =>
                        {
                            // This kernel refuses multishot accept: one at a time.
                            self.accept = Accepting::Single(None);
                            continue;
                        }
                        Poll::Ready(Some(result)) => result,
                    }
                }
                Accepting::Single(slot) => {
                    let op = slot.get_or_insert_with(|| Op::new(ops::Accept::new(self.fd)));
                    match Pin::new(op).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(result) => {
                            *slot = None;
                            result.map(|(fd, _addr)| fd)
                        }
                    }
                }
            };
            return Poll::Ready(Some(match result {
                Ok(fd) => Ok(Socket::from_fd(fd)),
                Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
                    self.accept = Accepting::Ended;
                    return Poll::Ready(None);
                }
                Err(e) => Err(e),
            }));
        }
    }
}

impl fmt::Debug for IncomingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.accept {
            Accepting::Multi(_) => "multishot",
            Accepting::Single(_) => "single",
            Accepting::Ended => "ended",
        };
        f.debug_struct("Incoming")
            .field("fd", &self.fd)
            .field("mode", &mode)
            .finish()
    }
}
