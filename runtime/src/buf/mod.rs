//! Owned buffers: memory the kernel may read or write while an operation is in flight.
//!
//! An operation takes its buffer by value and hands it back with the result
//! ([`BufResult`]). While the kernel holds the buffer, the operation owns it: if the
//! future is dropped early, the buffer moves into the driver's op slot and is freed
//! only after the operation's final completion (see `docs/cancellation.md`).
//!
//! The traits are `unsafe` because the driver trusts them: the pointer must stay valid
//! and at the same address while the value lives, even when the value itself moves
//! (a `Vec`'s heap block does not move when the `Vec` does; an inline array would).
//!
//! # What a read does to the buffer's length
//!
//! A read fills the buffer from its start, up to its capacity (`bytes_total`: a
//! `Vec`'s `capacity()`, not its `len()`), and then **sets the length to the number of
//! bytes read**, so the buffer handed back holds exactly what came:
//!
//! ```
//! # runtime::Builder::new().cores(1).pin(false).build().unwrap().block_on(async {
//! # let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
//! # let b = runtime::net::UnixStream::from_std(b).unwrap();
//! # std::io::Write::write_all(&mut &a, b"hello").unwrap();
//! let (n, buf) = b.read(vec![0; 20]).await;
//! assert_eq!(n.unwrap(), 5);
//! assert_eq!(buf, b"hello"); // length 5, not 20; the capacity is still 20
//! # });
//! ```
//!
//! So `vec![0; N]` and `Vec::with_capacity(N)` read the same; `Ok(0)` leaves an empty
//! buffer. This holds for `Vec<u8>`, `BytesMut`, [`AlignedBuf`] and [`FixedBuf`], for
//! every read (stream reads, `recv`, `recv_from`, `read_at`), and for each buffer of
//! a vectored read (buffers past the data come back empty). A `Box<[u8]>` cannot
//! change its length: use the count. A read into a [`Slice`] changes only the bytes
//! of that window: the underlying buffer's length grows to cover what was read and
//! never shrinks, so a read into `buf.slice(len..)` appends and bytes after the
//! window are kept; `read_exact` fills a whole buffer this way.

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::pin::Pin;
use std::task::{Context, Poll};

mod aligned;
pub(crate) mod fixed;
mod kernel;
pub(crate) mod ring;
mod slice;

pub use aligned::AlignedBuf;
pub use fixed::{FixedBuf, FixedBufPool, GetFixedBuf};
pub(crate) use kernel::KernelBox;
pub use ring::RecvBuf;
pub use slice::Slice;

/// Which io_uring ring something is for: the id of the driver that owns the ring,
/// unique over the process's life (never reused), so a registered buffer can tell
/// whether an SQE being built is for the ring it is registered with.
///
/// The driver passes its own to every op's `prepare`; this layer only compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingId(u64);

impl RingId {
    /// The ring of the driver with id `id`.
    pub(crate) const fn new(id: u64) -> RingId {
        RingId(id)
    }
}

mod sealed {
    /// The ring an SQE is being built for, as [`IoBuf::fixed_index`] asks it. Only this
    /// crate can make one, which keeps `fixed_index` to this crate: only its own
    /// buffers are registered with a ring.
    ///
    /// [`IoBuf::fixed_index`]: super::IoBuf::fixed_index
    #[derive(Debug, Clone, Copy)]
    pub struct OnRing(pub(crate) super::RingId);
}
pub(crate) use sealed::OnRing;

/// The loop behind every `read_exact`/`write_all`, as a state machine their named
/// futures hold: one op at a time on the rest of the buffer (bytes `done..total`, as a
/// [`Slice`]) until `total` bytes are done. An op that does nothing ends it with
/// `stalled(done, total)`; an interrupted op is retried; another error ends it. The
/// buffer comes back in every case, with what the ops put in it.
///
/// The first op starts at the first poll, not when the loop is made, so what it names
/// (a registered file's slot, say) is chosen on the ring that runs it. Dropping the
/// loop drops the op in flight, which withdraws or cancels it; the buffer then goes
/// with the op, and nothing is handed back.
pub(crate) struct UntilDone<O, B> {
    done: usize,
    total: usize,
    /// The op on the rest, which owns the buffer until it completes.
    op: Option<O>,
    /// The buffer while no op is in flight: before the first poll, and between an
    /// op's end and the next one's start. With `op`, `None` once the outcome is out.
    buf: Option<B>,
}

/// What a step of an [`UntilDone`] loop starts on the rest of the buffer: an op, or
/// the outcome at once when the call refuses the transfer before the kernel sees it.
pub(crate) type Start<O, B> = Result<O, BufResult<usize, Slice<B>>>;

impl<O, B> UntilDone<O, B>
where
    B: IoBuf,
    O: Future<Output = BufResult<usize, Slice<B>>> + Unpin,
{
    /// A loop over the first `total` bytes of `buf`.
    pub(crate) fn new(buf: B, total: usize) -> UntilDone<O, B> {
        UntilDone {
            done: 0,
            total,
            op: None,
            buf: Some(buf),
        }
    }

    /// Drives the loop: `start(rest, done)` makes the op on the rest, `stalled(done,
    /// total)` the error for an op that did nothing.
    ///
    /// # Panics
    ///
    /// If polled again after it resolved.
    #[inline]
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        mut start: impl FnMut(Slice<B>, usize) -> Start<O, B>,
        stalled: impl FnOnce(usize, usize) -> io::Error,
    ) -> Poll<BufResult<(), B>> {
        loop {
            let (result, rest) = if let Some(op) = &mut self.op {
                let out = match Pin::new(op).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(out) => out,
                };
                // Dropped where it completed, so the compiler sees it owns nothing.
                self.op = None;
                out
            } else {
                let buf = self
                    .buf
                    .take()
                    .expect("a read_exact or write_all future was polled after it completed");
                if self.done >= self.total {
                    return Poll::Ready((Ok(()), buf));
                }
                match start(buf.slice(self.done..self.total), self.done) {
                    Ok(op) => {
                        // `op` was `None`, which owns nothing: forgetting it skips a
                        // call to the drop glue of a running op.
                        std::mem::forget(self.op.replace(op));
                        continue;
                    }
                    Err(out) => out,
                }
            };
            let buf = rest.into_inner();
            match result {
                Ok(0) => return Poll::Ready((Err(stalled(self.done, self.total)), buf)),
                Ok(n) => {
                    self.done += n;
                    if self.done >= self.total {
                        return Poll::Ready((Ok(()), buf));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready((Err(e), buf)),
            }
            self.buf = Some(buf);
        }
    }
}

impl<O, B> fmt::Debug for UntilDone<O, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match (&self.op, &self.buf) {
            (Some(_), _) => "in flight",
            (None, Some(_)) => "idle",
            (None, None) => "finished",
        };
        f.debug_struct("UntilDone")
            .field("done", &self.done)
            .field("total", &self.total)
            .field("stage", &stage)
            .finish()
    }
}

/// Marks the first `n` bytes of `bufs`, taken in order, initialised: how a vectored
/// read that reported `n` bytes filled its buffers.
///
/// # Safety
///
/// The kernel must have written `n` bytes into the buffers' memory in order, each
/// buffer to its `bytes_total` before the next.
pub(crate) unsafe fn mark_filled<B: IoBufMut>(bufs: &mut [B], n: usize) {
    let mut left = n;
    for buf in bufs {
        let filled = left.min(buf.bytes_total());
        // SAFETY: `filled` bytes of this buffer are part of the `n` written, by the
        // caller's promise.
        unsafe { buf.set_init(filled) };
        left -= filled;
    }
}

/// The result of an owned-buffer operation: the outcome and the buffer, handed back
/// whether the operation succeeded or not.
pub type BufResult<T, B> = (std::io::Result<T>, B);

/// A buffer the kernel may read from.
///
/// # Safety
///
/// `stable_ptr` must point to `bytes_total` bytes that stay valid and at the same
/// address for as long as the value lives, wherever the value is moved; the first
/// `bytes_init` of them are initialised.
pub unsafe trait IoBuf: Unpin + 'static {
    /// Pointer to the start of the buffer.
    fn stable_ptr(&self) -> *const u8;

    /// Number of initialised bytes (what a write sends).
    fn bytes_init(&self) -> usize;

    /// Capacity in bytes (how much a read may fill).
    fn bytes_total(&self) -> usize;

    /// The buffer's index in the registered-buffer table of `ring`, the ring an SQE is
    /// being built for, if it is a registered buffer of that ring; ops then use
    /// `READ_FIXED`/`WRITE_FIXED`. Only this crate's [`FixedBuf`] answers.
    #[doc(hidden)]
    fn fixed_index(&self, _ring: OnRing) -> Option<u16> {
        None
    }

    /// A view of `range` of this buffer, which owns the buffer until
    /// [`Slice::into_inner`].
    ///
    /// # Panics
    ///
    /// If the range is out of bounds of the buffer's capacity.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("range end overflows"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes_total(),
        };
        assert!(
            begin <= end && end <= self.bytes_total(),
            "slice {begin}..{end} out of bounds of a buffer of {} bytes",
            self.bytes_total()
        );
        Slice::new(self, begin, end)
    }
}

/// A buffer the kernel may write into.
///
/// # Safety
///
/// As for [`IoBuf`]; in addition `stable_mut_ptr` points to the same memory as
/// `stable_ptr`, writable for `bytes_total` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Mutable pointer to the start of the buffer.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that a read filled the first `pos` bytes: a buffer with a length
    /// (`Vec<u8>`, `BytesMut`, [`AlignedBuf`], [`FixedBuf`]) takes `pos` as its length,
    /// so it holds exactly what was read (see [the module docs](self)); a [`Slice`]
    /// only grows its buffer's length to cover the bytes read.
    ///
    /// # Safety
    ///
    /// The first `pos` bytes must really be initialised, and `pos <= bytes_total()`.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap block does not move when the Vec moves, and it is not
// reallocated unless the Vec is grown, which needs `&mut` access the op does not give
// while in flight. `len` bytes are initialised, `capacity` are allocated.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for IoBuf; as_mut_ptr points to the same block, writable to capacity.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the caller promises `pos` bytes are initialised and within
        // `bytes_total` = capacity.
        unsafe { self.set_len(pos) };
    }
}

// SAFETY: a boxed slice's block does not move with the box; all of it is initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for IoBuf; the block is writable for its whole length.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: static memory never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static memory never moves or goes away.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(feature = "bytes")]
mod bytes_impls {
    use super::{IoBuf, IoBufMut};

    // SAFETY: a Bytes points to memory that does not move or change while any handle
    // to it lives (shared heap storage or a static); all `len` bytes are initialised.
    unsafe impl IoBuf for bytes::Bytes {
        fn stable_ptr(&self) -> *const u8 {
            self.as_ptr()
        }
        fn bytes_init(&self) -> usize {
            self.len()
        }
        fn bytes_total(&self) -> usize {
            self.len()
        }
    }

    // SAFETY: a BytesMut's storage is a heap block that does not move with the value
    // and is not reallocated unless it is grown, which needs `&mut` access the op does
    // not give while in flight; `len` bytes are initialised, `capacity` allocated.
    unsafe impl IoBuf for bytes::BytesMut {
        fn stable_ptr(&self) -> *const u8 {
            self.as_ptr()
        }
        fn bytes_init(&self) -> usize {
            self.len()
        }
        fn bytes_total(&self) -> usize {
            self.capacity()
        }
    }

    // SAFETY: as for IoBuf; the block is writable to its capacity.
    unsafe impl IoBufMut for bytes::BytesMut {
        fn stable_mut_ptr(&mut self) -> *mut u8 {
            self.as_mut_ptr()
        }
        unsafe fn set_init(&mut self, pos: usize) {
            // SAFETY: the caller promises `pos` bytes are initialised and within
            // `bytes_total` = capacity.
            unsafe { self.set_len(pos) };
        }
    }
}
