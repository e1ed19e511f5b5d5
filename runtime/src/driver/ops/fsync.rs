use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::driver::Completable;

/// `IORING_OP_FSYNC` of the whole file; `datasync` sets `IORING_FSYNC_DATASYNC`
/// (like `fdatasync(2)`).
#[derive(Debug)]
pub(crate) struct Fsync {
    fd: RawFd,
    datasync: bool,
}

impl Fsync {
    pub(crate) fn new(fd: RawFd, datasync: bool) -> Fsync {
        Fsync { fd, datasync }
    }
}

impl Completable for Fsync {
    type Output = io::Result<()>;

    fn prepare(&mut self) -> Entry {
        let flags = if self.datasync {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        opcode::Fsync::new(types::Fd(self.fd)).flags(flags).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
