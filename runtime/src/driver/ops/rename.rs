use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_RENAMEAT` relative to the working directory. The op owns both paths.
#[derive(Debug)]
pub(crate) struct RenameAt {
    from: CString,
    to: CString,
}

impl RenameAt {
    pub(crate) fn new(from: CString, to: CString) -> RenameAt {
        RenameAt { from, to }
    }
}

// SAFETY: the SQE's two pointers are the paths `from` and `to`, NUL-terminated
// `CString`s the op owns: their bytes are heap blocks that stay put when the op moves
// and are freed only with the op, after the final CQE; the kernel only reads them, and
// Rust never writes them.
unsafe impl Completable for RenameAt {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::RenameAt::new(cwd, self.from.as_ptr(), cwd, self.to.as_ptr()).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
