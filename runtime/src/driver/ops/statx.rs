use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_STATX`: `path` relative to `dirfd` (with `AT_EMPTY_PATH` and an empty
/// path, the fd itself). The op owns the path and the boxed `statx` the kernel fills.
pub(crate) struct Statx {
    dirfd: RawFd,
    path: CString,
    flags: i32,
    buf: Box<libc::statx>,
}

impl Statx {
    pub(crate) fn new(dirfd: RawFd, path: CString, flags: i32) -> Statx {
        Statx {
            dirfd,
            path,
            flags,
            // SAFETY: statx is plain old data; all zeroes is a valid value.
            buf: Box::new(unsafe { std::mem::zeroed() }),
        }
    }
}

impl Completable for Statx {
    type Output = io::Result<Box<libc::statx>>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let buf: *mut libc::statx = &mut *self.buf;
        opcode::Statx::new(
            types::Fd(self.dirfd),
            self.path.as_ptr(),
            buf.cast::<types::statx>(),
        )
        .flags(self.flags)
        .mask(crate::fs::STATX_MASK)
        .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        result.map(|_| self.buf)
    }
}
