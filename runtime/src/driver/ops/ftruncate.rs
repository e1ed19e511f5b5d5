use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_FTRUNCATE` (Linux 6.9): sets the file's length.
#[derive(Debug)]
pub(crate) struct Ftruncate {
    fd: RawFd,
    len: u64,
}

impl Ftruncate {
    pub(crate) fn new(fd: RawFd, len: u64) -> Ftruncate {
        Ftruncate { fd, len }
    }
}

// SAFETY: the SQE carries no pointer (the fd and a length: plain numbers), so there is no memory for the
// kernel to use after the op is gone.
unsafe impl Completable for Ftruncate {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::Ftruncate::new(types::Fd(self.fd), self.len).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
