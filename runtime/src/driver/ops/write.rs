use std::io;

use io_uring::{opcode, squeue::Entry};

use super::FileRef;
use crate::buf::{BufResult, IoBuf, OnRing, RingId};
use crate::driver::Completable;

/// `IORING_OP_WRITE` of an owned buffer's initialised bytes at an offset
/// (`u64::MAX`: the file position); `IORING_OP_WRITE_FIXED` when the buffer is
/// registered with this ring.
#[derive(Debug)]
pub(crate) struct Write<B> {
    file: FileRef,
    buf: B,
    offset: u64,
}

impl<B: IoBuf> Write<B> {
    pub(crate) fn new(file: impl Into<FileRef>, buf: B, offset: u64) -> Write<B> {
        Write {
            file: file.into(),
            buf,
            offset,
        }
    }
}

// SAFETY: the SQE's one pointer is the buffer's `stable_ptr`, with a length of at
// most its `bytes_init`: by `IoBuf`'s contract, initialised memory of that length that
// stays valid and in place wherever the op moves, and the op owns the buffer, giving
// nobody a way to change it, until it is dropped, after the final CQE; the kernel only
// reads it. `WRITE_FIXED` names a registered buffer only with the index `fixed_index`
// gave for `ring`, the ring the SQE is for, and the pointer and length lie inside it.
unsafe impl<B: IoBuf> Completable for Write<B> {
    type Output = BufResult<usize, B>;

    fn prepare(&mut self, ring: RingId) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        let fd = self.file.fd();
        let entry = match self.buf.fixed_index(OnRing(ring)) {
            Some(index) => opcode::WriteFixed::new(fd, self.buf.stable_ptr(), len, index)
                .offset(self.offset)
                .build(),
            None => opcode::Write::new(fd, self.buf.stable_ptr(), len)
                .offset(self.offset)
                .build(),
        };
        self.file.mark(entry)
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> BufResult<usize, B> {
        (result.map(|n| n as usize), self.buf)
    }
}
