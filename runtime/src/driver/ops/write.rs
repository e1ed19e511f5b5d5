use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{BufResult, IoBuf};
use crate::driver::Completable;

/// `IORING_OP_WRITE` of an owned buffer's initialised bytes at an offset
/// (`u64::MAX`: the file position).
#[derive(Debug)]
pub(crate) struct Write<B> {
    fd: RawFd,
    buf: B,
    offset: u64,
}

impl<B: IoBuf> Write<B> {
    pub(crate) fn new(fd: RawFd, buf: B, offset: u64) -> Write<B> {
        Write { fd, buf, offset }
    }
}

impl<B: IoBuf> Completable for Write<B> {
    type Output = BufResult<usize, B>;

    fn prepare(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Write::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> BufResult<usize, B> {
        (result.map(|n| n as usize), self.buf)
    }
}
