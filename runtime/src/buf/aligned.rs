//! A heap buffer with a chosen alignment, for `O_DIRECT` I/O.

use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::{IoBuf, IoBufMut};

/// A buffer whose memory starts at a multiple of a chosen alignment: what `O_DIRECT`
/// asks of the memory side of a transfer.
///
/// Like a `Vec<u8>` that cannot grow: a capacity fixed at creation and a length (the
/// initialised bytes: what a write sends, what `Deref` shows). Its memory is zeroed
/// when allocated, so any length up to the capacity may be set
/// ([`set_len`](AlignedBuf::set_len)).
///
/// [`File::aligned_buf`](crate::fs::File::aligned_buf) makes one that fits a file's
/// device.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    /// The allocation: at least one byte, even for a capacity of 0.
    layout: Layout,
    capacity: usize,
    len: usize,
}

impl AlignedBuf {
    /// An empty buffer of `capacity` bytes starting at a multiple of `align`.
    ///
    /// Fails with `InvalidInput` if `align` is not a power of two or the size does not
    /// fit in memory.
    pub fn with_capacity(capacity: usize, align: usize) -> io::Result<AlignedBuf> {
        let layout = Layout::from_size_align(capacity.max(1), align).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "an aligned buffer of {capacity} bytes at alignment {align}: the \
                     alignment must be a power of two and the size fit in memory"
                ),
            )
        })?;
        // SAFETY: the layout's size is at least 1.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        Ok(AlignedBuf {
            ptr,
            layout,
            capacity,
            len: 0,
        })
    }

    /// A buffer of `len` zero bytes (length and capacity `len`) starting at a multiple
    /// of `align`.
    pub fn zeroed(len: usize, align: usize) -> io::Result<AlignedBuf> {
        let mut buf = AlignedBuf::with_capacity(len, align)?;
        buf.len = len;
        Ok(buf)
    }

    /// Number of initialised bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The alignment of the memory.
    pub fn align(&self) -> usize {
        self.layout.align()
    }

    /// Sets the length to `len`; the bytes between the old and the new length keep
    /// what they held (zero if never written).
    ///
    /// # Panics
    ///
    /// If `len` is beyond the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "length {len} beyond the capacity {}",
            self.capacity()
        );
        self.len = len;
    }

    /// Forgets the contents (length 0).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `data`.
    ///
    /// # Panics
    ///
    /// If the capacity would be exceeded.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let start = self.len;
        self.set_len(start + data.len());
        self[start..].copy_from_slice(data);
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in with_capacity with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the whole allocation is initialised (zeroed at allocation), and
        // len <= capacity.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("align", &self.align())
            .finish()
    }
}

// SAFETY: the allocation does not move when the AlignedBuf does and lives until it is
// dropped; all of it is initialised.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for IoBuf; the allocation is writable.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // A read's count becomes the length (see the `buf` module docs).
        self.len = pos;
    }
}
