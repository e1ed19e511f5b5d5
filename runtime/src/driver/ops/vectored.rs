use std::io;

use io_uring::{opcode, squeue::Entry};

use super::FileRef;
use crate::buf::{mark_filled, BufResult, IoBuf, IoBufMut, KernelBox, RingId};
use crate::driver::Completable;

/// `IORING_OP_READV` into several owned buffers, in order, from an offset. The iovec
/// array is a heap block of its own, held raw, so its address stays put and valid
/// while the op moves (rule 1).
pub(crate) struct Readv<B> {
    file: FileRef,
    bufs: Vec<B>,
    /// Each iovec points into one of `bufs`.
    iovecs: KernelBox<[libc::iovec]>,
    offset: u64,
}

impl<B: IoBufMut> Readv<B> {
    pub(crate) fn new(file: impl Into<FileRef>, mut bufs: Vec<B>, offset: u64) -> Readv<B> {
        let iovecs = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.stable_mut_ptr().cast(),
                iov_len: b.bytes_total(),
            })
            .collect::<Box<[_]>>();
        Readv {
            file: file.into(),
            bufs,
            iovecs: KernelBox::from_box(iovecs),
            offset,
        }
    }
}

// SAFETY: the SQE's one pointer is the iovec array, the op's `KernelBox`, with its
// length as the count: a heap block that stays allocated and in place until the op is
// dropped, after the final CQE, read by the kernel and written by nobody after `new`.
// Each iovec points to one of `bufs` (its `stable_mut_ptr`, for its `bytes_total`
// bytes): memory writable for that length and stable wherever the buffer moves, by
// `IoBufMut`'s contract, and the op owns the buffers until then. Nothing reads what
// the kernel writes before `complete`, which marks as initialised only the `n` bytes
// the CQE reports, in iovec order.
unsafe impl<B: IoBufMut> Completable for Readv<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let len = u32::try_from(self.iovecs.get().len()).unwrap_or(u32::MAX);
        let entry = opcode::Readv::new(
            self.file.fd(),
            self.iovecs.as_ptr().cast::<libc::iovec>(),
            len,
        )
        .offset(self.offset)
        .build();
        self.file.mark(entry)
    }

    fn complete(mut self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        let result = result.map(|n| {
            // SAFETY: the kernel fills the iovecs in order and reported `n` bytes.
            unsafe { mark_filled(&mut self.bufs, n as usize) };
            n as usize
        });
        (result, self.bufs)
    }
}

/// `IORING_OP_WRITEV` of several owned buffers' initialised bytes, in order, at an
/// offset.
pub(crate) struct Writev<B> {
    file: FileRef,
    bufs: Vec<B>,
    /// Each iovec points into one of `bufs`.
    iovecs: KernelBox<[libc::iovec]>,
    offset: u64,
}

impl<B: IoBuf> Writev<B> {
    pub(crate) fn new(file: impl Into<FileRef>, bufs: Vec<B>, offset: u64) -> Writev<B> {
        let iovecs = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.stable_ptr().cast_mut().cast(),
                iov_len: b.bytes_init(),
            })
            .collect::<Box<[_]>>();
        Writev {
            file: file.into(),
            bufs,
            iovecs: KernelBox::from_box(iovecs),
            offset,
        }
    }
}

// SAFETY: the SQE's one pointer is the iovec array, the op's `KernelBox`, with its
// length as the count: a heap block that stays allocated and in place until the op is
// dropped, after the final CQE, read by the kernel and written by nobody after `new`.
// Each iovec points to one of `bufs` (its `stable_ptr`, for its `bytes_init` bytes):
// initialised memory of that length, stable wherever the buffer moves, by `IoBuf`'s
// contract, and the op owns the buffers, giving nobody a way to change them, until
// then. The kernel only reads it all.
unsafe impl<B: IoBuf> Completable for Writev<B> {
    type Output = BufResult<usize, Vec<B>>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let len = u32::try_from(self.iovecs.get().len()).unwrap_or(u32::MAX);
        let entry = opcode::Writev::new(
            self.file.fd(),
            self.iovecs.as_ptr().cast::<libc::iovec>(),
            len,
        )
        .offset(self.offset)
        .build();
        self.file.mark(entry)
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        (result.map(|n| n as usize), self.bufs)
    }
}
