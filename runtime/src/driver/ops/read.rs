use std::io;

use io_uring::{opcode, squeue::Entry};

use super::FileRef;
use crate::buf::{BufResult, IoBufMut, OnRing, RingId};
use crate::driver::Completable;

/// `IORING_OP_READ` into an owned buffer at an offset (`u64::MAX`: the file position);
/// `IORING_OP_READ_FIXED` when the buffer is registered with this ring.
#[derive(Debug)]
pub(crate) struct Read<B> {
    file: FileRef,
    buf: B,
    offset: u64,
}

impl<B: IoBufMut> Read<B> {
    pub(crate) fn new(file: impl Into<FileRef>, buf: B, offset: u64) -> Read<B> {
        Read {
            file: file.into(),
            buf,
            offset,
        }
    }
}

// SAFETY: the SQE's one pointer is the buffer's `stable_mut_ptr`, with a length of
// at most its `bytes_total`: by `IoBufMut`'s contract, memory writable for that length
// that stays valid and in place wherever the op moves, and the op owns the buffer
// until it is dropped, after the final CQE. Nothing reads those bytes before
// `complete`, which marks as initialised only the `n` the CQE reports written.
// `READ_FIXED` names a registered buffer only with the index `fixed_index` gave for
// `ring`, the ring the SQE is for, and the pointer and length lie inside that buffer.
unsafe impl<B: IoBufMut> Completable for Read<B> {
    type Output = BufResult<usize, B>;

    fn prepare(&mut self, ring: RingId) -> Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        let fd = self.file.fd();
        let entry = match self.buf.fixed_index(OnRing(ring)) {
            Some(index) => opcode::ReadFixed::new(fd, self.buf.stable_mut_ptr(), len, index)
                .offset(self.offset)
                .build(),
            None => opcode::Read::new(fd, self.buf.stable_mut_ptr(), len)
                .offset(self.offset)
                .build(),
        };
        self.file.mark(entry)
    }

    fn complete(mut self, result: io::Result<u32>, _flags: u32) -> BufResult<usize, B> {
        let result = result.map(|n| {
            let n = n as usize;
            // SAFETY: the kernel reported writing `n` bytes from the buffer's start.
            unsafe { self.buf.set_init(n) };
            n
        });
        (result, self.buf)
    }
}
