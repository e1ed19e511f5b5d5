use io_uring::{opcode, squeue::Entry, types};
use std::io;

use super::FileRef;
use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_FSYNC` of the whole file; `datasync` sets `IORING_FSYNC_DATASYNC`
/// (like `fdatasync(2)`).
#[derive(Debug)]
pub(crate) struct Fsync {
    file: FileRef,
    datasync: bool,
}

impl Fsync {
    pub(crate) fn new(file: impl Into<FileRef>, datasync: bool) -> Fsync {
        Fsync {
            file: file.into(),
            datasync,
        }
    }
}

// SAFETY: the SQE carries no pointer, only the file (an fd or a registered-file slot)
// and flags, so there is no memory for the kernel to use after the op is gone.
unsafe impl Completable for Fsync {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let flags = if self.datasync {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        let entry = opcode::Fsync::new(self.file.fd()).flags(flags).build();
        self.file.mark(entry)
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
