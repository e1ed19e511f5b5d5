use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_MKDIRAT` relative to the working directory. The op owns the path.
#[derive(Debug)]
pub(crate) struct MkDirAt {
    path: CString,
    mode: libc::mode_t,
}

impl MkDirAt {
    pub(crate) fn new(path: CString, mode: libc::mode_t) -> MkDirAt {
        MkDirAt { path, mode }
    }
}

// SAFETY: the SQE's one pointer is the path, a NUL-terminated `CString` the op owns:
// its bytes are a heap block that stays put when the op moves and is freed only with
// the op, after the final CQE; the kernel only reads it, and Rust never writes it.
unsafe impl Completable for MkDirAt {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .mode(self.mode)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
