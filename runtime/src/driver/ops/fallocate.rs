use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_FALLOCATE` of `len` bytes at `offset` with a `fallocate(2)` mode.
#[derive(Debug)]
pub(crate) struct Fallocate {
    fd: RawFd,
    offset: u64,
    len: u64,
    mode: i32,
}

impl Fallocate {
    pub(crate) fn new(fd: RawFd, offset: u64, len: u64, mode: i32) -> Fallocate {
        Fallocate {
            fd,
            offset,
            len,
            mode,
        }
    }
}

// SAFETY: the SQE carries no pointer (the fd, an offset, a length and a mode: plain numbers), so there is no memory for the
// kernel to use after the op is gone.
unsafe impl Completable for Fallocate {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::Fallocate::new(types::Fd(self.fd), self.len)
            .offset(self.offset)
            .mode(self.mode)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
