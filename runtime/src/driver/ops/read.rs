use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{BufResult, IoBufMut};
use crate::driver::Completable;

/// `IORING_OP_READ` into an owned buffer at an offset (`u64::MAX`: the file position).
#[derive(Debug)]
pub(crate) struct Read<B> {
    fd: RawFd,
    buf: B,
    offset: u64,
}

impl<B: IoBufMut> Read<B> {
    pub(crate) fn new(fd: RawFd, buf: B, offset: u64) -> Read<B> {
        Read { fd, buf, offset }
    }
}

impl<B: IoBufMut> Completable for Read<B> {
    type Output = BufResult<usize, B>;

    fn prepare(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        opcode::Read::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .offset(self.offset)
            .build()
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
