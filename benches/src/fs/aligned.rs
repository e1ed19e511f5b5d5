//! A heap block aligned for `O_DIRECT`, for the peers that bring no aligned
//! buffer of their own: monoio (through its `IoBufMut`) and the blocking
//! `pread` of [`tokio_blocking`](super::tokio_blocking).

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// `len` zeroed bytes at an address aligned to `align`, owned.
#[derive(Debug)]
pub struct AlignedBlock {
    ptr: NonNull<u8>,
    layout: Layout,
    /// Bytes a read has filled (what monoio calls initialised).
    filled: usize,
}

// SAFETY: the block is owned memory with no thread affinity, like a Box<[u8]>.
unsafe impl Send for AlignedBlock {}
// SAFETY: shared access only reads through `&self`.
unsafe impl Sync for AlignedBlock {}

impl AlignedBlock {
    /// Allocates `len` zeroed bytes aligned to `align` (a power of two).
    ///
    /// # Panics
    ///
    /// If `len` is 0, `align` is not a power of two, or memory runs out.
    pub fn new(len: usize, align: usize) -> AlignedBlock {
        assert!(len > 0, "an aligned block needs at least one byte");
        let layout = Layout::from_size_align(len, align).expect("alignment is a power of two");
        // SAFETY: the layout has a non-zero size (checked above).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBlock {
            ptr,
            layout,
            filled: 0,
        }
    }

    /// The block's capacity in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Never: a block has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A pointer to the first byte, for a read to fill.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// All of the block's bytes, for a read to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the block holds `len` initialised (zeroed at allocation)
        // bytes, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    /// The bytes the last read filled.
    pub fn filled(&self) -> &[u8] {
        // SAFETY: the block holds `len` initialised (zeroed, then read into)
        // bytes and `filled <= len`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.filled) }
    }

    /// Records that a read filled the first `n` bytes.
    pub fn set_filled(&mut self, n: usize) {
        self.filled = n.min(self.len());
    }
}

impl Drop for AlignedBlock {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very layout and is
        // freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: the block never moves or reallocates; `write_ptr` points to `len`
// writable bytes for as long as the value lives, wherever it is moved.
unsafe impl monoio::buf::IoBufMut for AlignedBlock {
    fn write_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn bytes_total(&mut self) -> usize {
        self.len()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        self.set_filled(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::AlignedBlock;

    #[test]
    fn blocks_are_aligned_and_zeroed() {
        for _ in 0..8 {
            let mut block = AlignedBlock::new(4096, 4096);
            assert_eq!(block.as_mut_ptr() as usize % 4096, 0);
            block.set_filled(4096);
            assert!(block.filled().iter().all(|&b| b == 0));
        }
    }
}
