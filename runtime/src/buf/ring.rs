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
//! descriptor before the tail that publishes it); the head is the kernel's. The tail
//! is the last half-word of descriptor 0 (the kernel's `struct io_uring_buf_ring`
//! overlays it on that descriptor's reserved field), which the kernel may read at any
//! moment: so no reference to a descriptor is ever made, only raw writes of the three
//! fields that are ours (`addr`, `len`, `bid`), and atomic stores of the tail. The blocks
//! are freed when the last `RecvBuf` and the driver have let go of the `Rc<BufRing>`,
//! which is after the driver unregistered the ring (or the ring fd was closed).

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

/// The group id of each core's provided-buffer ring.
pub(crate) const GROUP: u16 = 0;

/// One descriptor of the ring, laid out as the kernel's `struct io_uring_buf`. In
/// descriptor 0, `resv` is the ring's tail (module docs): never written as part of a
/// descriptor.
#[repr(C)]
struct BufDesc {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<BufDesc>() == 16);

/// One core's provided buffers (see the module docs).
pub(crate) struct BufRing {
    ring: NonNull<BufDesc>,
    ring_layout: Layout,
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    /// Descriptor slots in the ring: a power of two, at least `count`.
    entries: u16,
    count: u16,
    size: u32,
    /// Our copy of the tail we last published.
    tail: Cell<u16>,
    /// On the readiness backend, where no kernel takes buffers, the head that
    /// [`pop`](Self::pop) takes them from in the kernel's place.
    head: Cell<u16>,
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
        let ring_layout =
            Layout::from_size_align(usize::from(entries) * std::mem::size_of::<BufDesc>(), page)
                .map_err(io::Error::other)?;
        let bufs_layout = Layout::from_size_align(usize::from(count) * size as usize, page)
            .map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (count, entries and size are >= 1).
        let ring = NonNull::new(unsafe { alloc::alloc_zeroed(ring_layout) }.cast::<BufDesc>())
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
            head: Cell::new(0),
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

    /// The readiness backend, which plays the kernel's part for an unregistered ring:
    /// the next published buffer (its id, address and size), taken from the head as
    /// the kernel would. A receive into it that made no CQE hands it back with
    /// [`unpop`](Self::unpop) before anything else touches the ring.
    pub(crate) fn pop(&self) -> Option<(u16, *mut u8, u32)> {
        let head = self.head.get();
        if head == self.tail.get() {
            return None;
        }
        let slot = usize::from(head & (self.entries - 1));
        // SAFETY: `slot` < entries, inside the ring block; the descriptor between head
        // and tail was written by `publish`; no kernel reads this ring (it is not
        // registered on this backend), and the field is read through a raw place.
        let bid = unsafe { ptr::addr_of!((*self.ring.as_ptr().add(slot)).bid).read() };
        if bid >= self.count {
            return None;
        }
        self.head.set(head.wrapping_add(1));
        Some((bid, self.buf_ptr(bid), self.size))
    }

    /// Puts back the buffer the last [`pop`](Self::pop) took.
    pub(crate) fn unpop(&self) {
        self.head.set(self.head.get().wrapping_sub(1));
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
        let addr = self.buf_ptr(bid) as u64;
        // SAFETY: `slot` < entries, so `desc` is inside the ring block, which lives as
        // long as self. The kernel does not read the descriptor at the tail until the
        // tail moves past it (below), and at most `count` <= `entries` buffers are
        // published at once, so it is not one the kernel still has to take. Each field
        // is written through a raw place projection: no reference covers the
        // descriptor, whose `resv` in slot 0 is the tail the kernel reads. `bid` <
        // count, so `addr` is inside the buffer block.
        unsafe {
            let desc = self.ring.as_ptr().add(slot);
            ptr::addr_of_mut!((*desc).addr).write(addr);
            ptr::addr_of_mut!((*desc).len).write(self.size);
            ptr::addr_of_mut!((*desc).bid).write(bid);
        }
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // SAFETY: the tail is an aligned u16 in the ring block, which outlives this
        // borrow; it is only ever accessed atomically (our stores, the kernel's
        // acquire loads).
        unsafe { AtomicU16::from_ptr(self.tail_ptr()) }.store(tail, Ordering::Release);
    }

    /// The ring's tail: the reserved half-word of descriptor 0.
    fn tail_ptr(&self) -> *mut u16 {
        // SAFETY: descriptor 0 is inside the ring block (entries >= 1); the field is
        // projected without making a reference.
        unsafe { ptr::addr_of_mut!((*self.ring.as_ptr()).resv) }
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

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use io_uring::types::BufRingEntry;

    use super::{BufDesc, BufRing};

    /// The descriptor at `slot`, read field by field.
    fn desc(ring: &BufRing, slot: usize) -> (u64, u32, u16) {
        assert!(slot < usize::from(ring.entries));
        // SAFETY: `slot` < entries: inside the ring block; no kernel writes it here.
        unsafe {
            let d = ring.ring.as_ptr().add(slot);
            (
                std::ptr::addr_of!((*d).addr).read(),
                std::ptr::addr_of!((*d).len).read(),
                std::ptr::addr_of!((*d).bid).read(),
            )
        }
    }

    fn tail(ring: &BufRing) -> u16 {
        // SAFETY: the tail is only accessed atomically; see `publish`.
        unsafe { std::sync::atomic::AtomicU16::from_ptr(ring.tail_ptr()) }
            .load(std::sync::atomic::Ordering::Acquire)
    }

    #[test]
    fn the_descriptors_and_the_tail_are_where_the_kernel_looks() {
        assert_eq!(
            std::mem::size_of::<BufDesc>(),
            std::mem::size_of::<BufRingEntry>()
        );
        let ring = BufRing::new(2, 64).unwrap();
        // SAFETY: the ring block's base, as the io-uring crate asks.
        let theirs = unsafe { BufRingEntry::tail(ring.ring.as_ptr().cast::<BufRingEntry>()) };
        assert_eq!(theirs, ring.tail_ptr().cast_const());
    }

    #[test]
    fn publishing_fills_the_descriptor_at_the_tail_then_moves_the_tail_past_it() {
        let ring = Rc::new(BufRing::new(3, 64).unwrap());
        assert_eq!(ring.entries, 4);
        assert_eq!(tail(&ring), 3, "every buffer is published at start");
        for bid in 0..3 {
            let want = (ring.buf_ptr(bid) as u64, 64, bid);
            assert_eq!(desc(&ring, usize::from(bid)), want);
        }

        // The kernel fills buffer 1 and names it in a CQE.
        let bytes = b"received";
        // SAFETY: buffer 1 is inside the buffer block and 64 bytes long; nothing else
        // touches it (this test stands in for the kernel).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ring.buf_ptr(1), bytes.len()) };
        ring.named_by_cqe();
        let buf = ring.take(1, bytes.len() as u32).unwrap();
        assert_eq!(&buf[..], bytes);
        assert_eq!(ring.available(), 2);
        drop(buf);
        assert_eq!(ring.available(), 3);
        assert_eq!(desc(&ring, 3), (ring.buf_ptr(1) as u64, 64, 1));
        assert_eq!(tail(&ring), 4);

        // The next one wraps to descriptor 0, whose last half-word is the tail.
        ring.named_by_cqe();
        drop(ring.take(2, 0).unwrap());
        assert_eq!(desc(&ring, 0), (ring.buf_ptr(2) as u64, 64, 2));
        assert_eq!(tail(&ring), 5, "the descriptor write left the tail alone");
    }

    #[test]
    fn a_buffer_id_or_length_out_of_range_is_not_trusted() {
        let ring = Rc::new(BufRing::new(3, 64).unwrap());
        ring.named_by_cqe();
        assert!(ring.take(3, 1).is_none(), "no buffer 3");
        assert_eq!(tail(&ring), 3, "nothing to give back");
        ring.named_by_cqe();
        assert!(ring.take(0, 65).is_none(), "longer than a buffer");
        // Buffer 0 went back to the kernel at once: published at the tail.
        assert_eq!(desc(&ring, 3), (ring.buf_ptr(0) as u64, 64, 0));
        assert_eq!(tail(&ring), 4);
        assert_eq!(ring.available(), 3);
    }
}
