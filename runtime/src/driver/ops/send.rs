use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{BufResult, IoBuf, IoBufMut, OnRing, RingId};
use crate::driver::Completable;

/// `IORING_OP_SEND` of an owned buffer's initialised bytes, with `MSG_NOSIGNAL`: a
/// peer that went away is an `EPIPE` error, never a `SIGPIPE`.
///
/// A buffer registered with this ring goes out with `IORING_OP_WRITE_FIXED` instead,
/// which has no flags: a write to a reset peer raises `SIGPIPE` then, which Rust
/// programs ignore (the standard library sets it to `SIG_IGN` before `main`).
#[derive(Debug)]
pub(crate) struct Send<B> {
    fd: RawFd,
    buf: B,
}

impl<B: IoBuf> Send<B> {
    pub(crate) fn new(fd: RawFd, buf: B) -> Send<B> {
        Send { fd, buf }
    }
}

// SAFETY: the SQE's one pointer is the buffer's `stable_ptr`, with a length of at
// most its `bytes_init`: by `IoBuf`'s contract, initialised memory of that length that
// stays valid and in place wherever the op moves, and the op owns the buffer, giving
// nobody a way to change it, until it is dropped, after the final CQE; the kernel only
// reads it. `WRITE_FIXED` names a registered buffer only with the index `fixed_index`
// gave for `ring`, the ring the SQE is for, and the pointer and length lie inside it.
unsafe impl<B: IoBuf> Completable for Send<B> {
    type Output = BufResult<usize, B>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, ring: RingId) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        let fd = types::Fd(self.fd);
        match self.buf.fixed_index(OnRing(ring)) {
            Some(index) => opcode::WriteFixed::new(fd, self.buf.stable_ptr(), len, index)
                .offset(u64::MAX)
                .build(),
            None => opcode::Send::new(fd, self.buf.stable_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
        }
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> BufResult<usize, B> {
        (result.map(|n| n as usize), self.buf)
    }
}

/// `IORING_OP_RECV` into an owned buffer; `IORING_OP_READ_FIXED` into a buffer
/// registered with this ring.
#[derive(Debug)]
pub(crate) struct Recv<B> {
    fd: RawFd,
    buf: B,
}

impl<B: IoBufMut> Recv<B> {
    pub(crate) fn new(fd: RawFd, buf: B) -> Recv<B> {
        Recv { fd, buf }
    }
}

// SAFETY: the SQE's one pointer is the buffer's `stable_mut_ptr`, with a length of
// at most its `bytes_total`: by `IoBufMut`'s contract, memory writable for that length
// that stays valid and in place wherever the op moves, and the op owns the buffer
// until it is dropped, after the final CQE. Nothing reads those bytes before
// `complete`, which marks as initialised only the `n` the CQE reports written.
// `READ_FIXED` names a registered buffer only with the index `fixed_index` gave for
// `ring`, the ring the SQE is for, and the pointer and length lie inside that buffer.
unsafe impl<B: IoBufMut> Completable for Recv<B> {
    type Output = BufResult<usize, B>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, ring: RingId) -> Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        let fd = types::Fd(self.fd);
        match self.buf.fixed_index(OnRing(ring)) {
            Some(index) => opcode::ReadFixed::new(fd, self.buf.stable_mut_ptr(), len, index)
                .offset(u64::MAX)
                .build(),
            None => opcode::Recv::new(fd, self.buf.stable_mut_ptr(), len).build(),
        }
    }

    fn complete(mut self, result: io::Result<u32>, _flags: u32) -> BufResult<usize, B> {
        let result = result.map(|n| {
            let n = n as usize;
            // SAFETY: the kernel reported writing `n` bytes from the buffer's start.
            unsafe { self.buf.set_init(n) };
            n
        });
        (result, self.buf)
    }
}
