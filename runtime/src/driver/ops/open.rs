use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_OPENAT` relative to the working directory. The op owns the path (a
/// `CString`, whose heap block stays put when the op moves). If the future is gone when
/// the CQE comes, the opened file is closed (rule 2).
#[derive(Debug)]
pub(crate) struct OpenAt {
    path: CString,
    flags: i32,
    mode: libc::mode_t,
}

impl OpenAt {
    /// `flags` are passed as given: the caller adds `O_CLOEXEC`.
    pub(crate) fn new(path: CString, flags: i32, mode: libc::mode_t) -> OpenAt {
        OpenAt { path, flags, mode }
    }
}

// SAFETY: the SQE's one pointer is the path, a NUL-terminated `CString` the op owns:
// its bytes are a heap block that stays put when the op moves and is freed only with
// the op, after the final CQE; the kernel only reads it, and Rust never writes it. The
// fd of a successful CQE is a file the kernel opened for this op, owned by nobody else,
// and `complete` wraps it in the one `OwnedFd` that will close it.
unsafe impl Completable for OpenAt {
    type Output = io::Result<OwnedFd>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<OwnedFd> {
        // SAFETY: a successful openat returns a new fd that nobody else owns.
        result.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
