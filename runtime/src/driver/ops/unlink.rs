use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_UNLINKAT` relative to the working directory (`AT_REMOVEDIR` in `flags`
/// removes a directory). The op owns the path.
#[derive(Debug)]
pub(crate) struct UnlinkAt {
    path: CString,
    flags: i32,
}

impl UnlinkAt {
    pub(crate) fn new(path: CString, flags: i32) -> UnlinkAt {
        UnlinkAt { path, flags }
    }
}

// SAFETY: the SQE's one pointer is the path, a NUL-terminated `CString` the op owns:
// its bytes are a heap block that stays put when the op moves and is freed only with
// the op, after the final CQE; the kernel only reads it, and Rust never writes it.
unsafe impl Completable for UnlinkAt {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
