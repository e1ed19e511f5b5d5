//! The per-core pool of registered ("fixed") buffers.
//!
//! At start each core maps one block of `count × size` bytes (each buffer starts on a
//! page, so every one is also aligned for `O_DIRECT`) and registers each buffer with
//! its ring (`IORING_REGISTER_BUFFERS`). The kernel pins the pages once, instead of
//! mapping the user memory on every operation; an op on a [`FixedBuf`] names the
//! buffer by index (`READ_FIXED`/`WRITE_FIXED`).
//!
//! A [`FixedBuf`] is taken with [`FixedBufPool::get`], which waits while every buffer
//! is out, and goes back to its pool when dropped: at once if no op holds it, or after
//! the final CQE of the op that does (an op owns its buffer until then).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{IoBuf, IoBufMut, OnRing, RingId};

/// The kernel's limit on registered buffers per ring (`IORING_MAX_REG_BUFFERS`).
pub(crate) const MAX_COUNT: usize = 1 << 14;
/// The kernel's limit on the size of one registered buffer.
pub(crate) const MAX_SIZE: usize = 1 << 30;

/// Checks `Builder::fixed_buffers`' arguments; the pool itself is made per core.
pub(crate) fn check_config(count: u16, size: usize) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    if usize::from(count) > MAX_COUNT || size == 0 || size > MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "fixed_buffers({count}, {size}): io_uring registers at most {MAX_COUNT} \
                 buffers of 1 byte to 1 GiB each"
            ),
        ));
    }
    Ok(())
}

/// The memory and free list of one core's pool. Shared (`Rc`) by the driver and every
/// [`FixedBuf`] taken from it, so the memory outlives both the registration and any op
/// still holding a buffer.
pub(crate) struct Pool {
    /// The ring the buffers are registered with: a `FixedBuf` is used as fixed only in
    /// SQEs for that ring.
    ring: RingId,
    mem: NonNull<u8>,
    map_len: usize,
    size: usize,
    stride: usize,
    count: u16,
    free: RefCell<Vec<u16>>,
    /// Tasks waiting in [`FixedBufPool::get`], oldest first; a returned buffer is handed
    /// straight to the first one still waiting.
    waiters: RefCell<VecDeque<Rc<Waiter>>>,
}

#[derive(Default)]
struct Waiter {
    handed: Cell<Option<u16>>,
    waker: Cell<Option<Waker>>,
    gone: Cell<bool>,
}

impl Pool {
    /// Maps `count` buffers of `size` bytes, each starting on a page, for the ring of
    /// driver `ring`.
    pub(crate) fn new(count: u16, size: usize, ring: u64) -> io::Result<Pool> {
        let page = crate::sys::page_size();
        let stride = size.div_ceil(page) * page;
        let map_len = stride * usize::from(count);
        // SAFETY: an anonymous private mapping at an address of the kernel's choice
        // touches no existing memory.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // A forked child must not get a copy of memory the kernel has pinned for this
        // ring (it would copy the whole pool at the fork for nothing: the child cannot
        // use the ring). Best effort: a failure only costs that copy.
        // SAFETY: the range is exactly the mapping just made, which nothing else uses.
        let _ = unsafe { libc::madvise(mem, map_len, libc::MADV_DONTFORK) };
        Ok(Pool {
            ring: RingId::new(ring),
            mem: NonNull::new(mem.cast()).expect("mmap returned a null mapping"),
            map_len,
            size,
            stride,
            count,
            free: RefCell::new((0..count).rev().collect()),
            waiters: RefCell::new(VecDeque::new()),
        })
    }

    /// One iovec per buffer, for `IORING_REGISTER_BUFFERS`.
    pub(crate) fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.count)
            .map(|index| libc::iovec {
                iov_base: self.addr(index).cast(),
                iov_len: self.size,
            })
            .collect()
    }

    /// Bytes of locked memory the registration needs.
    pub(crate) fn locked_bytes(&self) -> usize {
        self.map_len
    }

    fn addr(&self, index: u16) -> *mut u8 {
        // SAFETY: index < count, so the offset stays inside the mapping.
        unsafe { self.mem.as_ptr().add(usize::from(index) * self.stride) }
    }

    /// Takes buffer `index` back: hands it to the oldest task still waiting, or frees
    /// it.
    fn put_back(&self, index: u16) {
        let waiter = {
            let mut waiters = self.waiters.borrow_mut();
            loop {
                match waiters.pop_front() {
                    Some(w) if w.gone.get() => continue,
                    other => break other,
                }
            }
        };
        match waiter {
            Some(w) => {
                w.handed.set(Some(index));
                if let Some(waker) = w.waker.take() {
                    waker.wake();
                }
            }
            None => self.free.borrow_mut().push(index),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; no FixedBuf is left (each holds an Rc to the
        // pool) and the driver, which unregisters the buffers before letting go of its
        // Rc, is gone: nothing, kernel included, uses the memory any more.
        unsafe { libc::munmap(self.mem.as_ptr().cast(), self.map_len) };
    }
}

/// The registered-buffer pool of the core this task runs on.
///
/// Set up by [`Builder::fixed_buffers`](crate::Builder::fixed_buffers); cheap to clone.
///
/// ```
/// # runtime::Builder::new().cores(1).pin(false).fixed_buffers(4, 4096).build().unwrap()
/// # .block_on(async {
/// use runtime::buf::FixedBufPool;
///
/// let pool = FixedBufPool::current().unwrap();
/// let mut buf = pool.get().await;
/// buf.extend_from_slice(b"registered");
/// assert_eq!(&buf[..], b"registered");
/// assert_eq!(pool.available(), 3);
/// drop(buf);
/// assert_eq!(pool.available(), 4);
/// # });
/// ```
#[derive(Clone)]
pub struct FixedBufPool {
    pool: Rc<Pool>,
}

impl FixedBufPool {
    // `FixedBufPool::current()`, which asks the driver for this core's pool, is defined
    // with the runtime (`runtime/mod.rs`): this layer does not see the driver.

    /// A handle on `pool`.
    pub(crate) fn from_pool(pool: Rc<Pool>) -> FixedBufPool {
        FixedBufPool { pool }
    }

    /// Takes a buffer, waiting while all of them are out. Buffers are handed out in
    /// the order the callers asked.
    pub fn get(&self) -> GetFixedBuf {
        GetFixedBuf {
            pool: self.pool.clone(),
            waiter: None,
        }
    }

    /// Takes a buffer if one is free now.
    pub fn try_get(&self) -> Option<FixedBuf> {
        let index = self.pool.free.borrow_mut().pop()?;
        Some(FixedBuf::new(self.pool.clone(), index))
    }

    /// How many buffers the pool has.
    pub fn capacity(&self) -> usize {
        usize::from(self.pool.count)
    }

    /// How many buffers are free now.
    pub fn available(&self) -> usize {
        self.pool.free.borrow().len()
    }

    /// The size of each buffer in bytes.
    pub fn buf_size(&self) -> usize {
        self.pool.size
    }
}

impl fmt::Debug for FixedBufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBufPool")
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .field("buf_size", &self.buf_size())
            .finish()
    }
}

/// The future of [`FixedBufPool::get`].
#[must_use = "futures do nothing unless awaited"]
pub struct GetFixedBuf {
    pool: Rc<Pool>,
    waiter: Option<Rc<Waiter>>,
}

impl Future for GetFixedBuf {
    type Output = FixedBuf;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FixedBuf> {
        let this = &mut *self;
        if let Some(waiter) = &this.waiter {
            if let Some(index) = waiter.handed.take() {
                this.waiter = None;
                return Poll::Ready(FixedBuf::new(this.pool.clone(), index));
            }
            waiter.waker.set(Some(cx.waker().clone()));
            return Poll::Pending;
        }
        // Nobody is queued ahead when a buffer is free: a returned buffer goes to the
        // queue first, so the free list is non-empty only with an empty queue.
        if let Some(index) = this.pool.free.borrow_mut().pop() {
            return Poll::Ready(FixedBuf::new(this.pool.clone(), index));
        }
        let waiter = Rc::new(Waiter::default());
        waiter.waker.set(Some(cx.waker().clone()));
        this.pool.waiters.borrow_mut().push_back(waiter.clone());
        this.waiter = Some(waiter);
        Poll::Pending
    }
}

impl Drop for GetFixedBuf {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.gone.set(true);
            // A buffer handed over but never taken goes on to the next in line.
            if let Some(index) = waiter.handed.take() {
                self.pool.put_back(index);
            }
        }
    }
}

impl fmt::Debug for GetFixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetFixedBuf")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// A registered buffer from this core's [`FixedBufPool`]; reads and writes on it use
/// `READ_FIXED`/`WRITE_FIXED`. It has a capacity ([`FixedBufPool::buf_size`]) and a
/// length (the initialised bytes: what a write sends, what `Deref` shows), like a
/// `Vec<u8>` that cannot grow. Dropping it returns it to the pool.
///
/// Its memory starts on a page boundary, so with a size that is a multiple of the
/// device's block size it also suits `O_DIRECT`.
pub struct FixedBuf {
    pool: Rc<Pool>,
    index: u16,
    len: usize,
}

impl FixedBuf {
    fn new(pool: Rc<Pool>, index: u16) -> FixedBuf {
        FixedBuf {
            pool,
            index,
            len: 0,
        }
    }

    /// The buffer's index in the ring's registered-buffer table.
    pub fn buf_index(&self) -> u16 {
        self.index
    }

    /// Number of initialised bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is initialised.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.pool.size
    }

    /// Forgets the contents (length 0).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shortens the contents to `len` bytes (no effect if already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends `data`.
    ///
    /// # Panics
    ///
    /// If the buffer's capacity would be exceeded.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let start = self.len;
        self.set_len(start + data.len());
        self[start..].copy_from_slice(data);
    }

    /// Sets the length to `len`; the bytes between the old and the new length keep
    /// what they held (the pool's memory is zeroed when mapped, so every byte is
    /// initialised, if perhaps with an earlier user's data).
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
}

impl Deref for FixedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: every byte of the mapping is initialised (zeroed when mapped), len <=
        // size, and only this FixedBuf (borrowed here) may touch the buffer: no op
        // holds it while we can be borrowed.
        unsafe { std::slice::from_raw_parts(self.pool.addr(self.index), self.len) }
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.pool.addr(self.index), self.len) }
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        self.pool.put_back(self.index);
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.index)
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

// SAFETY: the buffer is a fixed range of the pool's mapping, which the Rc keeps alive
// and in place however the FixedBuf moves; `len` bytes are initialised.
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.pool.addr(self.index)
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.pool.size
    }
    fn fixed_index(&self, ring: OnRing) -> Option<u16> {
        // Only the ring this pool is registered with knows the index.
        (ring.0 == self.pool.ring).then_some(self.index)
    }
}

// SAFETY: as for IoBuf; the mapping is writable.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.pool.addr(self.index)
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // A read's count becomes the length (see the `buf` module docs).
        self.len = pos;
    }
}
