use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_SHUTDOWN`: shuts down the read, write or both halves of a connection.
#[derive(Debug)]
pub(crate) struct Shutdown {
    fd: RawFd,
    how: i32,
}

impl Shutdown {
    pub(crate) fn new(fd: RawFd, how: i32) -> Shutdown {
        Shutdown { fd, how }
    }
}

// SAFETY: the SQE carries no pointer (the fd and `how`: plain numbers), so there is no memory for the
// kernel to use after the op is gone.
unsafe impl Completable for Shutdown {
    type Output = io::Result<()>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::Shutdown::new(types::Fd(self.fd), self.how).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
