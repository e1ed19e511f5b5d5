//! The provided-buffer ring: buffers the kernel picks from when data arrives, so a
//! multishot recv needs no buffer of its own while it waits.
//!
//! # Ownership (rule 1 of the design)
//!
//! Each core has one [`BufRing`], registered with its ring under group id 0. Its
//! memory is two page-aligned blocks that never move: the ring of `entries`
//! descriptors shared with the kernel, and `count` buffers of `size` bytes. A buffer is
//! at any time in exactly one of two hands:
//!
//! - **the kernel's**: its descriptor sits between the kernel's head and our tail. The
//!   kernel may write into it until it posts the CQE that names its buffer id.
//! - **a CQE's**: the kernel filled it and posted a CQE naming it, which waits in the
//!   queue of a stream that has not taken it yet.
//! - **a [`RecvBuf`]'s**: the CQE named it; the kernel will not touch it again until it
//!   is published anew, which only `RecvBuf`'s drop does. So the bytes a `RecvBuf` shows
//!   are stable and readable without synchronisation.
//!
//! The ring counts the buffers in the last two hands, so a stream that found it empty
//! (`-ENOBUFS`) knows without asking the kernel whether re-arming could succeed; while
//! none is free it receives into a buffer of its own instead (see `RecvStreamState`),
//! so a stream that leaves its completions unread never stalls another.
//!
//! The tail is written by this core only (with a release store, so the kernel sees the
//! descriptor before the tail that publishes it); the head is the kernel's. The blocks
//! are freed when the last `RecvBuf` and the driver have let go of the `Rc<BufRing>`,
//! which is after the driver unregistered the ring (or the ring fd was closed).

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// The group id of each core's provided-buffer ring.
pub(crate) const GROUP: u16 = 0;

/// One core's provided buffers (see the module docs).
pub(crate) struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_layout: Layout,
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    /// Descriptor slots in the ring: a power of two, at least `count`.
    entries: u16,
    count: u16,
    size: u32,
    /// Our copy of the tail we last published.
    tail: Cell<u16>,
    /// Buffers held by `RecvBuf`s.
    out: Cell<u16>,
    /// Buffers named by CQEs that no op has taken yet.
    in_cqes: Cell<u16>,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes and publishes them all.
    pub(crate) fn new(count: u16, size: u32) -> io::Result<BufRing> {
        if count == 0 || count > 32_768 || size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "recv_buffers({count}, {size}): the count must be 1 to 32768 and the size \
                     more than 0"
                ),
            ));
        }
        let entries = count.next_power_of_two();
        let page = crate::sys::page_size();
        let ring_layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            page,
        )
        .map_err(io::Error::other)?;
        let bufs_layout = Layout::from_size_align(usize::from(count) * size as usize, page)
            .map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (count, entries and size are >= 1).
        let ring = NonNull::new(unsafe { alloc::alloc_zeroed(ring_layout) }.cast::<BufRingEntry>())
            .ok_or_else(|| alloc_failed(ring_layout))?;
        // SAFETY: as above.
        let bufs = match NonNull::new(unsafe { alloc::alloc(bufs_layout) }) {
            Some(bufs) => bufs,
            None => {
                // SAFETY: `ring` was allocated just above with this layout.
                unsafe { alloc::dealloc(ring.as_ptr().cast(), ring_layout) };
                return Err(alloc_failed(bufs_layout));
            }
        };
        let this = BufRing {
            ring,
            ring_layout,
            bufs,
            bufs_layout,
            entries,
            count,
            size,
            tail: Cell::new(0),
            out: Cell::new(0),
            in_cqes: Cell::new(0),
        };
        for bid in 0..count {
            this.publish(bid);
        }
        Ok(this)
    }

    /// Address of the descriptor ring, for `IORING_REGISTER_PBUF_RING`.
    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring.as_ptr() as u64
    }

    /// Descriptor slots in the ring.
    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    /// The size of each buffer.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Buffers the kernel may still pick: neither held by a `RecvBuf` nor named by a
    /// CQE waiting to be taken.
    pub(crate) fn available(&self) -> u16 {
        self.count
            .saturating_sub(self.out.get())
            .saturating_sub(self.in_cqes.get())
    }

    /// A CQE naming a buffer was reaped; [`take`](Self::take) follows when an op takes
    /// it.
    pub(crate) fn named_by_cqe(&self) {
        self.in_cqes.set(self.in_cqes.get().saturating_add(1));
    }

    /// Takes buffer `bid`, which the kernel filled with `len` bytes (a CQE named it).
    ///
    /// `None` for an id or length out of range (a kernel that broke its word): the
    /// buffer, if any, is published again rather than trusted.
    pub(crate) fn take(self: &Rc<Self>, bid: u16, len: u32) -> Option<RecvBuf> {
        self.in_cqes.set(self.in_cqes.get().saturating_sub(1));
        if bid >= self.count || len > self.size {
            if bid < self.count {
                self.publish(bid);
            }
            return None;
        }
        self.out.set(self.out.get() + 1);
        Some(RecvBuf(Held::Ring {
            ring: self.clone(),
            bid,
            len,
        }))
    }

    fn give_back(&self, bid: u16) {
        self.out.set(self.out.get() - 1);
        self.publish(bid);
    }

    /// Hands buffer `bid` to the kernel: fills the descriptor at the tail, then moves
    /// the tail past it.
    fn publish(&self, bid: u16) {
        let tail = self.tail.get();
        let slot = usize::from(tail & (self.entries - 1));
        // SAFETY: `slot` < entries, inside the ring block; the descriptor at the tail is
        // not read by the kernel until the tail moves past it (below). `bid` < count,
        // so the buffer address is inside the buffer block.
        unsafe {
            let entry = &mut *self.ring.as_ptr().add(slot);
            entry.set_addr(self.buf_ptr(bid) as u64);
            entry.set_len(self.size);
            entry.set_bid(bid);
        }
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // SAFETY: the tail field overlays the first descriptor's reserved half-word, in
        // the ring block that lives as long as self; the kernel reads it atomically.
        unsafe {
            let tail_ptr = BufRingEntry::tail(self.ring.as_ptr()).cast_mut();
            (*tail_ptr.cast::<AtomicU16>()).store(tail, Ordering::Release);
        }
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: callers pass bid < count, so the offset stays inside the buffer block.
        unsafe {
            self.bufs
                .as_ptr()
                .add(usize::from(bid) * self.size as usize)
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the blocks were allocated with these layouts in `new`; the last Rc is
        // gone, so no RecvBuf points into them, and the driver unregistered the ring (or
        // closed it) before letting go of its Rc, so the kernel does not either.
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            alloc::dealloc(self.bufs.as_ptr(), self.bufs_layout);
        }
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("count", &self.count)
            .field("size", &self.size)
            .field("out", &self.out.get())
            .field("in_cqes", &self.in_cqes.get())
            .finish()
    }
}

fn alloc_failed(layout: Layout) -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "could not allocate {} bytes for receive buffers",
            layout.size()
        ),
    )
}

/// Bytes a multishot receive delivered, in one of the core's provided buffers (see
/// `Builder::recv_buffers`). Dropping it hands the buffer back to the kernel.
///
/// It derefs to the received bytes. Hold it only as long as needed: while every buffer
/// is held (by `RecvBuf`s, or by completions a stream has not read yet), receive
/// streams on the core receive into buffers of their own, one receive at a time,
/// which costs an allocation and a ring round trip per chunk.
pub struct RecvBuf(Held);

enum Held {
    /// One of the ring's buffers, `len` bytes filled.
    Ring {
        ring: Rc<BufRing>,
        bid: u16,
        len: u32,
    },
    /// A buffer of the stream's own, received into while the ring had none free.
    Owned(Vec<u8>),
}

impl RecvBuf {
    /// Bytes received into a buffer of the stream's own.
    pub(crate) fn owned(bytes: Vec<u8>) -> RecvBuf {
        RecvBuf(Held::Owned(bytes))
    }

    /// Whether the bytes are in one of the core's provided buffers; `false` when they
    /// were received into a buffer of the stream's own because every provided buffer
    /// was taken (a sign that `Builder::recv_buffers` is too small for the load, or
    /// that some stream leaves its data unread).
    pub fn is_provided(&self) -> bool {
        matches!(self.0, Held::Ring { .. })
    }

    /// The received bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            // SAFETY: the CQE that named this buffer reported `len` <= size bytes
            // written; the kernel will not write into it again until our drop
            // publishes it.
            Held::Ring { ring, bid, len } => unsafe {
                std::slice::from_raw_parts(ring.buf_ptr(*bid), *len as usize)
            },
            Held::Owned(bytes) => bytes,
        }
    }
}

impl Deref for RecvBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for RecvBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Held::Ring { bid, len, .. } => f
                .debug_struct("RecvBuf")
                .field("bid", bid)
                .field("len", len)
                .finish(),
            Held::Owned(bytes) => f
                .debug_struct("RecvBuf")
                .field("owned", &bytes.len())
                .finish(),
        }
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        if let Held::Ring { ring, bid, .. } = &self.0 {
            ring.give_back(*bid);
        }
    }
}

// SAFETY: the received bytes live in the ring's buffer block, which does not move and
// stays allocated while this RecvBuf holds its Rc, and none of it is written while
// the RecvBuf exists (module docs); or in the RecvBuf's own Vec, whose heap block does
// not move with it.
unsafe impl super::IoBuf for RecvBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.as_slice().as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.as_slice().len()
    }
    fn bytes_total(&self) -> usize {
        self.as_slice().len()
    }
}
