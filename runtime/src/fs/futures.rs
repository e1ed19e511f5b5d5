//! The futures of the `File` calls, one named type each: a state machine around the
//! op it submits.
//!
//! Each borrows its file for `'a`, is `Unpin` (a struct may hold one and poll it with
//! `Pin::new`) and is `!Send`, as the file is. The op is made at the first poll, not
//! when the call is made: only then is the ring that runs it known, and with it
//! whether the op may name a registered file by its slot. Checks that refuse a call
//! before the kernel sees it (the `O_DIRECT` rules) run then too, and resolve the
//! future at once. Dropping one before it resolves drops its op: withdrawn if the
//! kernel has not seen it yet, else cancelled, and the buffer is freed once the kernel
//! is done with it (`docs/cancellation.md`).

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::opcode;

use super::File;
use crate::buf::{BufResult, IoBuf, IoBufMut, Slice, UntilDone};
use crate::driver::{ops, Completable, Op};

/// A call on a file that becomes one op at its first poll (module docs).
enum OnFile<'a, A, T: Completable> {
    /// Not polled yet: the file and the call's arguments.
    Call(&'a File, A),
    Running(Op<T>),
    /// Resolved at the first poll, without an op.
    Finished,
}

impl<'a, A, T: Completable> OnFile<'a, A, T> {
    fn new(file: &'a File, args: A) -> OnFile<'a, A, T> {
        OnFile::Call(file, args)
    }

    /// Polls the op, first making it with `start`, which may refuse the call with
    /// the output at once.
    #[inline]
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        start: impl FnOnce(&'a File, A) -> Result<T, T::Output>,
    ) -> Poll<T::Output> {
        if let OnFile::Call(..) = self {
            let OnFile::Call(file, args) = std::mem::replace(self, OnFile::Finished) else {
                unreachable!("the call was just matched")
            };
            match start(file, args) {
                // `self` is `Finished`, which owns nothing: forgetting it skips a call
                // to the drop glue of a running op.
                Ok(op) => std::mem::forget(std::mem::replace(self, OnFile::Running(Op::new(op)))),
                Err(out) => return Poll::Ready(out),
            }
        }
        match self {
            OnFile::Running(op) => Pin::new(op).poll(cx),
            _ => panic!("a file operation's future was polled after it completed"),
        }
    }
}

impl<A, T: Completable> fmt::Debug for OnFile<'_, A, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnFile::Call(file, _) => f.debug_tuple("Call").field(file).finish(),
            OnFile::Running(op) => op.fmt(f),
            OnFile::Finished => f.write_str("Finished"),
        }
    }
}

/// The future of [`File::read_at`]: one read into `B` at an offset. It resolves to
/// how many bytes came (`0` at end of file), and the buffer.
///
/// A type that keeps a read in flight across its own polls can hold one:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// use runtime::fs::{File, ReadAt};
///
/// /// A read of a file's first bytes, as their sum.
/// struct Checksum<'a> {
///     read: ReadAt<'a, Vec<u8>>,
/// }
///
/// impl Future for Checksum<'_> {
///     type Output = std::io::Result<u32>;
///
///     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
///         Pin::new(&mut self.read)
///             .poll(cx)
///             .map(|(n, buf)| n.map(|n| buf[..n].iter().map(|&b| u32::from(b)).sum()))
///     }
/// }
///
/// # runtime::Builder::new().cores(1).pin(false).build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("rt-doc-readat-{}", std::process::id()));
/// runtime::fs::write(&path, [1u8, 2, 3]).await.unwrap();
/// let file = File::open(&path).await.unwrap();
/// let sum = Checksum { read: file.read_at(Vec::with_capacity(16), 0) };
/// assert_eq!(sum.await.unwrap(), 6);
/// # runtime::fs::remove_file(&path).await.unwrap();
/// # });
/// ```
///
/// Like its file, it stays on its thread:
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let file = runtime::fs::File::from_std(std::fs::File::open("/dev/null").unwrap());
/// send(file.read_at(Vec::with_capacity(16), 0));
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct ReadAt<'a, B: IoBufMut> {
    call: OnFile<'a, (B, u64), ops::Read<B>>,
}

impl<'a, B: IoBufMut> ReadAt<'a, B> {
    #[inline]
    pub(super) fn new(file: &'a File, buf: B, pos: u64) -> ReadAt<'a, B> {
        ReadAt {
            call: OnFile::new(file, (buf, pos)),
        }
    }
}

impl<B: IoBufMut> Future for ReadAt<'_, B> {
    type Output = BufResult<usize, B>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.call.poll(cx, |file, (buf, pos)| {
            if let Err(e) = file.check_direct(buf.stable_ptr(), buf.bytes_total(), pos) {
                return Err((Err(e), buf));
            }
            Ok(ops::Read::new(file.target(), buf, pos))
        })
    }
}

/// The future of [`File::write_at`]: one write of `B`'s initialised bytes at an
/// offset. It resolves to how many were written, and the buffer.
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAt<'a, B: IoBuf> {
    call: OnFile<'a, (B, u64), ops::Write<B>>,
}

impl<'a, B: IoBuf> WriteAt<'a, B> {
    #[inline]
    pub(super) fn new(file: &'a File, buf: B, pos: u64) -> WriteAt<'a, B> {
        WriteAt {
            call: OnFile::new(file, (buf, pos)),
        }
    }
}

impl<B: IoBuf> Future for WriteAt<'_, B> {
    type Output = BufResult<usize, B>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.call.poll(cx, |file, (buf, pos)| {
            if let Err(e) = file.check_direct(buf.stable_ptr(), buf.bytes_init(), pos) {
                return Err((Err(e), buf));
            }
            Ok(ops::Write::new(file.target(), buf, pos))
        })
    }
}

/// The future of [`File::read_vectored_at`]: one `readv` into several buffers in
/// order. It resolves to the total read, and the buffers.
#[must_use = "futures do nothing unless awaited"]
pub struct ReadVectoredAt<'a, B: IoBufMut> {
    call: OnFile<'a, (Vec<B>, u64), ops::Readv<B>>,
}

impl<'a, B: IoBufMut> ReadVectoredAt<'a, B> {
    #[inline]
    pub(super) fn new(file: &'a File, bufs: Vec<B>, pos: u64) -> ReadVectoredAt<'a, B> {
        ReadVectoredAt {
            call: OnFile::new(file, (bufs, pos)),
        }
    }
}

impl<B: IoBufMut> Future for ReadVectoredAt<'_, B> {
    type Output = BufResult<usize, Vec<B>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.call.poll(cx, |file, (bufs, pos)| {
            for buf in &bufs {
                if let Err(e) = file.check_direct(buf.stable_ptr(), buf.bytes_total(), pos) {
                    return Err((Err(e), bufs));
                }
            }
            Ok(ops::Readv::new(file.target(), bufs, pos))
        })
    }
}

/// The future of [`File::write_vectored_at`]: one `writev` of several buffers'
/// initialised bytes in order. It resolves to the total written, and the buffers.
#[must_use = "futures do nothing unless awaited"]
pub struct WriteVectoredAt<'a, B: IoBuf> {
    call: OnFile<'a, (Vec<B>, u64), ops::Writev<B>>,
}

impl<'a, B: IoBuf> WriteVectoredAt<'a, B> {
    #[inline]
    pub(super) fn new(file: &'a File, bufs: Vec<B>, pos: u64) -> WriteVectoredAt<'a, B> {
        WriteVectoredAt {
            call: OnFile::new(file, (bufs, pos)),
        }
    }
}

impl<B: IoBuf> Future for WriteVectoredAt<'_, B> {
    type Output = BufResult<usize, Vec<B>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.call.poll(cx, |file, (bufs, pos)| {
            for buf in &bufs {
                if let Err(e) = file.check_direct(buf.stable_ptr(), buf.bytes_init(), pos) {
                    return Err((Err(e), bufs));
                }
            }
            Ok(ops::Writev::new(file.target(), bufs, pos))
        })
    }
}

/// The future of [`File::read_exact_at`]: reads until `B` is full (its
/// `bytes_total`), one read at a time on the rest. End of file first is an
/// `UnexpectedEof` error; the buffer comes back in every case, with what was read.
///
/// Dropped part-way, it cancels the read in flight and hands nothing back (the
/// buffer is freed once the kernel is done with it).
#[must_use = "futures do nothing unless awaited"]
pub struct ReadExactAt<'a, B: IoBufMut> {
    file: &'a File,
    pos: u64,
    run: UntilDone<Op<ops::Read<Slice<B>>>, B>,
}

impl<'a, B: IoBufMut> ReadExactAt<'a, B> {
    #[inline]
    pub(super) fn new(file: &'a File, buf: B, pos: u64) -> ReadExactAt<'a, B> {
        let total = buf.bytes_total();
        ReadExactAt {
            file,
            pos,
            run: UntilDone::new(buf, total),
        }
    }
}

impl<B: IoBufMut> Future for ReadExactAt<'_, B> {
    type Output = BufResult<(), B>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (file, pos) = (this.file, this.pos);
        let start = |rest: Slice<B>, done: usize| {
            // With O_DIRECT only the end of the file makes a read stop off a block
            // boundary; reading on from there would be a misaligned transfer.
            if file.direct.is_some_and(|a| done % a.offset != 0) {
                return Err((Ok(0), rest));
            }
            let at = pos + done as u64;
            if let Err(e) = file.check_direct(rest.stable_ptr(), rest.bytes_total(), at) {
                return Err((Err(e), rest));
            }
            Ok(Op::new(ops::Read::new(file.target(), rest, at)))
        };
        this.run.poll(cx, start, file_ended)
    }
}

#[cold]
fn file_ended(done: usize, total: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("end of file after {done} of {total} bytes"),
    )
}

/// The future of [`File::write_all_at`]: writes all of `B`'s initialised bytes, one
/// write at a time on the rest after a short one. A write that takes nothing is a
/// `WriteZero` error; the buffer comes back in every case.
///
/// Dropped part-way, it cancels the write in flight and hands nothing back; how much
/// of the buffer reached the file is not known.
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAllAt<'a, B: IoBuf> {
    file: &'a File,
    pos: u64,
    run: UntilDone<Op<ops::Write<Slice<B>>>, B>,
}

impl<'a, B: IoBuf> WriteAllAt<'a, B> {
    #[inline]
    pub(super) fn new(file: &'a File, buf: B, pos: u64) -> WriteAllAt<'a, B> {
        let total = buf.bytes_init();
        WriteAllAt {
            file,
            pos,
            run: UntilDone::new(buf, total),
        }
    }
}

impl<B: IoBuf> Future for WriteAllAt<'_, B> {
    type Output = BufResult<(), B>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (file, pos) = (this.file, this.pos);
        let start = |rest: Slice<B>, done: usize| {
            let at = pos + done as u64;
            if let Err(e) = file.check_direct(rest.stable_ptr(), rest.bytes_init(), at) {
                return Err((Err(e), rest));
            }
            Ok(Op::new(ops::Write::new(file.target(), rest, at)))
        };
        this.run.poll(cx, start, file_full)
    }
}

#[cold]
fn file_full(done: usize, total: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::WriteZero,
        format!("the file took no more bytes after {done} of {total}"),
    )
}

/// The future of [`File::sync_all`] and [`File::sync_data`] (`IORING_OP_FSYNC`).
#[must_use = "futures do nothing unless awaited"]
pub struct Fsync<'a> {
    /// The argument is `datasync`.
    call: OnFile<'a, bool, ops::Fsync>,
}

impl<'a> Fsync<'a> {
    #[inline]
    pub(super) fn new(file: &'a File, datasync: bool) -> Fsync<'a> {
        Fsync {
            call: OnFile::new(file, datasync),
        }
    }
}

impl Future for Fsync<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.call.poll(cx, |file, datasync| {
            Ok(ops::Fsync::new(file.target(), datasync))
        })
    }
}

/// The future of [`File::fallocate`] (`IORING_OP_FALLOCATE`).
#[must_use = "futures do nothing unless awaited"]
pub struct Fallocate<'a> {
    op: Op<ops::Fallocate>,
    _file: PhantomData<&'a File>,
}

impl<'a> Fallocate<'a> {
    #[inline]
    pub(super) fn new(file: &'a File, offset: u64, len: u64) -> Fallocate<'a> {
        Fallocate {
            op: Op::new(ops::Fallocate::new(file.raw(), offset, len, 0)),
            _file: PhantomData,
        }
    }
}

impl Future for Fallocate<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.op).poll(cx)
    }
}

/// The future of [`File::set_len`]: `IORING_OP_FTRUNCATE` where the kernel has it,
/// else `ftruncate(2)` on this core's thread at the first poll.
#[must_use = "futures do nothing unless awaited"]
pub struct SetLen<'a> {
    call: OnFile<'a, u64, ops::Ftruncate>,
}

impl<'a> SetLen<'a> {
    #[inline]
    pub(super) fn new(file: &'a File, len: u64) -> SetLen<'a> {
        SetLen {
            call: OnFile::new(file, len),
        }
    }
}

impl Future for SetLen<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.call.poll(cx, |file, len| {
            if crate::driver::op_available(opcode::Ftruncate::CODE) {
                Ok(ops::Ftruncate::new(file.raw(), len))
            } else {
                Err(file.set_len_blocking(len))
            }
        })
    }
}

/// `Debug` for each future: its call's state, never the buffer (which `B` need not
/// print, and which the kernel may be writing).
macro_rules! debug_call {
    ($name:literal, $ty:ty, $field:ident $(, $gen:ident: $bound:path)*) => {
        impl<$($gen: $bound),*> fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name).field(stringify!($field), &self.$field).finish()
            }
        }
    };
}
debug_call!("ReadAt", ReadAt<'_, B>, call, B: IoBufMut);
debug_call!("WriteAt", WriteAt<'_, B>, call, B: IoBuf);
debug_call!("ReadVectoredAt", ReadVectoredAt<'_, B>, call, B: IoBufMut);
debug_call!("WriteVectoredAt", WriteVectoredAt<'_, B>, call, B: IoBuf);
debug_call!("ReadExactAt", ReadExactAt<'_, B>, run, B: IoBufMut);
debug_call!("WriteAllAt", WriteAllAt<'_, B>, run, B: IoBuf);
debug_call!("Fsync", Fsync<'_>, call);
debug_call!("Fallocate", Fallocate<'_>, op);
debug_call!("SetLen", SetLen<'_>, call);
