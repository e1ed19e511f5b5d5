use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{KernelBox, RingId};
use crate::driver::Completable;

/// `IORING_OP_STATX`: `path` relative to `dirfd` (with `AT_EMPTY_PATH` and an empty
/// path, the fd itself), asking for the fields in `mask` (`STATX_*`). The op owns the
/// path and the `statx` the kernel fills, and resolves to a copy of it.
pub(crate) struct Statx {
    dirfd: RawFd,
    path: CString,
    flags: i32,
    mask: u32,
    /// Written by the kernel.
    buf: KernelBox<libc::statx>,
}

impl Statx {
    pub(crate) fn new(dirfd: RawFd, path: CString, flags: i32, mask: u32) -> Statx {
        Statx {
            dirfd,
            path,
            flags,
            mask,
            // SAFETY: statx is plain old data; all zeroes is a valid value.
            buf: KernelBox::new(unsafe { std::mem::zeroed() }),
        }
    }
}

// SAFETY: the SQE carries two pointers. The path: a NUL-terminated `CString` the op
// owns, whose bytes are a heap block that stays put when the op moves; the kernel only
// reads it. The `statx` buffer: the op's `KernelBox<libc::statx>`, a heap block of the
// full struct the kernel writes, allocated and in place until the op is dropped, after
// the final CQE; its pointer is the block's own, and nothing reads the block before
// `complete`, which copies it out only for a successful CQE. Both are freed only with
// the op.
unsafe impl Completable for Statx {
    type Output = io::Result<libc::statx>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::Statx::new(
            types::Fd(self.dirfd),
            self.path.as_ptr(),
            self.buf.as_mut_ptr().cast::<types::statx>(),
        )
        .flags(self.flags)
        .mask(self.mask)
        .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        result.map(|_| self.buf.into_inner())
    }
}
