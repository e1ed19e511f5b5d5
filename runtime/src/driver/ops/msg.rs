use std::io;
use std::os::fd::RawFd;
use std::ptr;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{mark_filled, BufResult, IoBuf, IoBufMut, KernelBox, RingId};
use crate::driver::Completable;
use crate::sys::socket::SockAddr;

/// The `msghdr` of a sendmsg/recvmsg and what it points to, each in a heap block of
/// its own that stays put while the op moves, and is held raw because the kernel
/// reads it (sendmsg) or writes it (recvmsg: the address, its length in the header)
/// while the op moves (rule 1).
struct Header {
    msg: KernelBox<libc::msghdr>,
    /// Each iovec points into one of the op's buffers.
    #[expect(
        dead_code,
        reason = "owned for the kernel, which reads it through `msg_iov`"
    )]
    iovecs: KernelBox<[libc::iovec]>,
    addr: Option<KernelBox<SockAddr>>,
}

impl Header {
    fn new(iovecs: Vec<libc::iovec>, addr: Option<SockAddr>) -> Header {
        let mut iovecs = KernelBox::from_box(iovecs.into_boxed_slice());
        let mut addr = addr.map(KernelBox::new);
        // SAFETY: msghdr is plain old data; zeroes are "no name, no control data".
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iovecs.as_mut_ptr().cast::<libc::iovec>();
        msg.msg_iovlen = iovecs.get().len();
        if let Some(addr) = &mut addr {
            msg.msg_namelen = addr.get().len;
            let addr = addr.as_mut_ptr();
            // SAFETY: `addr` points to the live SockAddr the KernelBox owns; the field
            // is projected without making a reference.
            msg.msg_name = unsafe { ptr::addr_of_mut!((*addr).storage) }.cast();
        }
        Header {
            msg: KernelBox::new(msg),
            iovecs,
            addr,
        }
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

// SAFETY: the SQE's one pointer is the `msghdr`, which points on: to the iovec array
// (`msg_iov`, `msg_iovlen` entries), each iovec to one of `bufs` (its `stable_ptr`, for
// its `bytes_init` bytes), and to the destination address if any (`msg_name`, the
// `storage` of a `SockAddr`, for `msg_namelen` bytes, at most its size); no control
// data. The header, the array and the address are the op's `KernelBox`es, heap blocks
// that stay allocated and in place until the op is dropped, after the final CQE; their
// pointers are the blocks' own (raw, never through a reference). Each buffer's memory
// is stable wherever it moves by `IoBuf`'s contract, and the op owns the buffers until
// then. The kernel only reads all of it, and nothing writes any of it after `new`.
unsafe impl<B: IoBuf> Completable for SendMsg<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::SendMsg::new(types::Fd(self.fd), self.header.msg.as_ptr())
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> Self::Output {
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

// SAFETY: the SQE's one pointer is the `msghdr`, which points on: to the iovec array
// (`msg_iov`, `msg_iovlen` entries), each iovec to one of `bufs` (its `stable_mut_ptr`,
// for its `bytes_total` bytes), and to the address buffer (`msg_name`, the whole
// `storage` of a `SockAddr`, its size in `msg_namelen`); no control data. The kernel
// reads the header and the array, and writes the buffers, the address and
// `msg_namelen`/`msg_flags` in the header. The header, the array and the address are
// the op's `KernelBox`es, heap blocks that stay allocated and in place until the op is
// dropped, after the final CQE; their pointers are the blocks' own (raw, never through
// a reference). Each buffer's memory is stable and writable wherever it moves by
// `IoBufMut`'s contract, and the op owns the buffers until then. Nothing reads what
// the kernel writes before `complete`, which, for a successful CQE, marks as
// initialised only the `n` bytes it reports and reads the address with the length the
// kernel put in the header.
unsafe impl<B: IoBufMut> Completable for RecvMsg<B> {
    type Output = BufResult<(usize, SockAddr), Vec<B>>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::RecvMsg::new(types::Fd(self.fd), self.header.msg.as_mut_ptr()).build()
    }

    fn complete(mut self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        let result = result.map(|n| {
            // SAFETY: the kernel fills the iovecs in order and reported `n` bytes.
            unsafe { mark_filled(&mut self.bufs, n as usize) };
            let mut addr = self
                .header
                .addr
                .take()
                .expect("recvmsg has an address")
                .into_inner();
            addr.len = self.header.msg.get().msg_namelen;
            (n as usize, addr)
        });
        (result, self.bufs)
    }
}
