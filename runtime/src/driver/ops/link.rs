use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_LINKAT` relative to the working directory: a new hard link `to` for the
/// file at `from`. The op owns both paths.
#[derive(Debug)]
pub(crate) struct LinkAt {
    from: CString,
    to: CString,
}

impl LinkAt {
    pub(crate) fn new(from: CString, to: CString) -> LinkAt {
        LinkAt { from, to }
    }
}

// SAFETY: the SQE's two pointers are the paths `from` and `to`, NUL-terminated
// `CString`s the op owns: their bytes are heap blocks that stay put when the op moves
// and are freed only with the op, after the final CQE; the kernel only reads them, and
// Rust never writes them.
unsafe impl Completable for LinkAt {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let cwd = types::Fd(libc::AT_FDCWD);
        opcode::LinkAt::new(cwd, self.from.as_ptr(), cwd, self.to.as_ptr()).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}

/// `IORING_OP_SYMLINKAT` relative to the working directory: a symbolic link at `link`
/// whose content is `target`. The op owns both strings.
#[derive(Debug)]
pub(crate) struct SymlinkAt {
    target: CString,
    link: CString,
}

impl SymlinkAt {
    pub(crate) fn new(target: CString, link: CString) -> SymlinkAt {
        SymlinkAt { target, link }
    }
}

// SAFETY: the SQE's two pointers are the strings `target` and `link`, NUL-terminated
// `CString`s the op owns: their bytes are heap blocks that stay put when the op moves
// and are freed only with the op, after the final CQE; the kernel only reads them, and
// Rust never writes them.
unsafe impl Completable for SymlinkAt {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::SymlinkAt::new(
            types::Fd(libc::AT_FDCWD),
            self.target.as_ptr(),
            self.link.as_ptr(),
        )
        .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
