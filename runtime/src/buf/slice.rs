use super::{IoBuf, IoBufMut, OnRing};

/// A range of an owned buffer, for reading into or writing from part of it.
///
/// Made by [`IoBuf::slice`]; [`Slice::into_inner`] gives the whole buffer back.
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B: IoBuf> Slice<B> {
    pub(super) fn new(buf: B, begin: usize, end: usize) -> Slice<B> {
        Slice { buf, begin, end }
    }

    /// Offset of the slice's start in the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Offset just past the slice's end in the buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The underlying buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }

    /// Gives the whole buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

// SAFETY: the slice's memory is a sub-range of `buf`'s, which is stable by B's contract;
// `new` checked `begin <= end <= buf.bytes_total()`.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: begin <= bytes_total, so the offset stays inside (or one past) the block.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
    fn fixed_index(&self, ring: OnRing) -> Option<u16> {
        // A fixed op may name any range inside the registered buffer.
        self.buf.fixed_index(ring)
    }
}

// SAFETY: as for IoBuf, with B's writable memory.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: as in stable_ptr.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // The bytes before `begin` are initialised only as far as B already knew, so
        // the mark moves only when the slice starts inside B's initialised part; and
        // only forwards: B's own `set_init` takes its argument as the new length, and
        // bytes of B past this window must not be cut off.
        let init = self.buf.bytes_init();
        if init >= self.begin && init < self.begin + pos {
            // SAFETY: the caller promises `pos` bytes from `begin` are initialised, and
            // the bytes before `begin` are (checked just above).
            unsafe { self.buf.set_init(self.begin + pos) };
        }
    }
}
