use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::driver::Completable;

/// `IORING_OP_ASYNC_CANCEL` of every op on an fd (`IORING_ASYNC_CANCEL_FD | ALL`,
/// Linux 5.19): queued before a socket's close, so that no op keeps the socket open
/// (rule 5).
#[derive(Debug)]
pub(crate) struct CancelFd {
    fd: RawFd,
}

impl CancelFd {
    pub(crate) fn new(fd: RawFd) -> CancelFd {
        CancelFd { fd }
    }
}

impl Completable for CancelFd {
    /// How many ops were cancelled.
    type Output = io::Result<u32>;

    fn prepare(&mut self) -> Entry {
        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(self.fd)).all()).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<u32> {
        match result {
            // Nothing was in flight.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(0),
            other => other,
        }
    }
}
