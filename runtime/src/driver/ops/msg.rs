use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{mark_filled, BufResult, IoBuf, IoBufMut, RingId};
use crate::driver::Completable;
use crate::sys::socket::SockAddr;

/// The `msghdr` of a sendmsg/recvmsg and what it points to, each in its own heap
/// block so the pointers stay valid while the op moves (rule 1).
struct Header {
    msg: Box<libc::msghdr>,
    iovecs: Box<[libc::iovec]>,
    addr: Option<Box<SockAddr>>,
}

impl Header {
    fn new(iovecs: Vec<libc::iovec>, addr: Option<SockAddr>) -> Header {
        let mut iovecs = iovecs.into_boxed_slice();
        let mut addr = addr.map(Box::new);
        // SAFETY: msghdr is plain old data; zeroes are "no name, no control data".
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_iov = iovecs.as_mut_ptr();
        msg.msg_iovlen = iovecs.len();
        if let Some(addr) = &mut addr {
            msg.msg_name = addr.as_mut_ptr().cast();
            msg.msg_namelen = addr.len;
        }
        Header { msg, iovecs, addr }
    }
}

/// `IORING_OP_SENDMSG` with `MSG_NOSIGNAL`: the initialised bytes of several owned
/// buffers, to an address (unconnected datagram sockets) or the connected peer.
pub(crate) struct SendMsg<B> {
    fd: RawFd,
    bufs: Vec<B>,
    header: Header,
}

impl<B: IoBuf> SendMsg<B> {
    pub(crate) fn new(fd: RawFd, bufs: Vec<B>, addr: Option<SockAddr>) -> SendMsg<B> {
        let iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.stable_ptr().cast_mut().cast(),
                iov_len: b.bytes_init(),
            })
            .collect();
        SendMsg {
            fd,
            bufs,
            header: Header::new(iovecs, addr),
        }
    }
}

impl<B: IoBuf> Completable for SendMsg<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::SendMsg::new(types::Fd(self.fd), &*self.header.msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        drop(self.header.iovecs);
        (result.map(|n| n as usize), self.bufs)
    }
}

/// `IORING_OP_RECVMSG` into several owned buffers, in order, with the sender's address.
pub(crate) struct RecvMsg<B> {
    fd: RawFd,
    bufs: Vec<B>,
    header: Header,
}

impl<B: IoBufMut> RecvMsg<B> {
    pub(crate) fn new(fd: RawFd, mut bufs: Vec<B>) -> RecvMsg<B> {
        let iovecs = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            })
            .collect();
        RecvMsg {
            fd,
            bufs,
            header: Header::new(iovecs, Some(SockAddr::empty())),
        }
    }
}

impl<B: IoBufMut> Completable for RecvMsg<B> {
    type Output = BufResult<(usize, SockAddr), Vec<B>>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::RecvMsg::new(types::Fd(self.fd), &mut *self.header.msg).build()
    }

    fn complete(mut self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        let result = result.map(|n| {
            // SAFETY: the kernel fills the iovecs in order and reported `n` bytes.
            unsafe { mark_filled(&mut self.bufs, n as usize) };
            let mut addr = *self.header.addr.take().expect("recvmsg has an address");
            addr.len = self.header.msg.msg_namelen;
            (n as usize, addr)
        });
        (result, self.bufs)
    }
}
