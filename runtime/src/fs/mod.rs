//! Files, read and written through the ring with owned buffers at explicit offsets,
//! and the operations on paths (open, stat, rename, links, directories).
//!
//! Every call goes through the ring. Where this kernel's io_uring lacks the opcode
//! (see [`Probe::supports`](crate::Probe::supports)), the path functions and
//! [`File::set_len`] make the blocking system call on the core's thread instead, as
//! each one's documentation says.
//!
//! `File`'s reads, writes, syncs, `fallocate` and `set_len` return named futures
//! ([`ReadAt`], [`WriteAt`], [`ReadExactAt`], [`WriteAllAt`], [`Fsync`], ...): one
//! state machine around the op, which a struct can hold and name without boxing. Each
//! borrows the file, is `Unpin` and, like the file, `!Send`; its op is made at its
//! first poll. Opening, `metadata`, `close` and the path functions stay `async fn`s.
//!
//! ```
//! # runtime::Builder::new().cores(1).pin(false).build().unwrap().block_on(async {
//! use runtime::fs::File;
//!
//! let path = std::env::temp_dir().join(format!("rt-doc-fs-{}", std::process::id()));
//! let file = File::create(&path).await.unwrap();
//! let (result, _) = file.write_all_at(b"hello, ring".to_vec(), 0).await;
//! result.unwrap();
//! file.sync_data().await.unwrap();
//! file.close().await.unwrap();
//!
//! let file = File::open(&path).await.unwrap();
//! let (result, buf) = file.read_exact_at(Vec::with_capacity(5), 0).await;
//! result.unwrap();
//! assert_eq!(buf, b"hello");
//! assert_eq!(file.metadata().await.unwrap().len(), 11);
//! file.close().await.unwrap();
//! runtime::fs::remove_file(&path).await.unwrap();
//! # });
//! ```

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::{Rc, Weak};

use crate::buf::{AlignedBuf, IoBuf, IoBufMut};
use crate::driver::ops::FileRef;
use crate::driver::{self, ops, Driver, Op};

mod dir;
mod futures;
mod metadata;
mod open_options;
mod read_dir;

pub use dir::{
    create_dir, create_dir_all, hard_link, metadata, read, remove_dir, remove_file, rename,
    symlink, symlink_metadata, write,
};
pub use futures::{
    Fallocate, Fsync, ReadAt, ReadExactAt, ReadVectoredAt, SetLen, WriteAllAt, WriteAt,
    WriteVectoredAt,
};
pub use metadata::{DioAlignment, Metadata};
pub use open_options::OpenOptions;
pub use read_dir::{read_dir, DirEntry, FileType, ReadDir};

/// An open file (or any fd that supports `read`/`write` at an offset: a pipe, an
/// eventfd).
///
/// Dropping it closes the fd through the ring, behind any operation already queued on
/// it, so an fd number is never reused while an op may still name it. For the same
/// reason it stays on the thread that made it:
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(runtime::fs::File::from_std(std::fs::File::open("/dev/null").unwrap()));
/// ```
pub struct File {
    fd: Option<OwnedFd>,
    /// What `O_DIRECT` asks of this file's I/O; `None` when it was not opened with it.
    direct: Option<DioAlignment>,
    /// The slot of a ring's registered-file table the file is in, if any.
    fixed: Option<FixedSlot>,
    /// `!Send`, for the reason given on sockets: only this core's ring can queue the
    /// close behind an op that names the fd and has not been submitted yet.
    _core_bound: std::marker::PhantomData<*const ()>,
}

/// A file's place in a registered-file table.
struct FixedSlot {
    slot: u32,
    /// The id of the driver whose table it is: ops use the slot only on that ring.
    ring: u64,
    driver: Weak<Driver>,
}

impl File {
    /// Takes ownership of an open standard file (or any owned fd).
    ///
    /// An fd opened with `O_DIRECT` gets its alignment checks (see
    /// [`OpenOptions::direct`]); asking the kernel for the alignment is a blocking
    /// `statx(2)` then.
    pub fn from_std(file: impl Into<OwnedFd>) -> File {
        let fd = file.into();
        let direct = direct_alignment_sync(fd.as_raw_fd());
        File::new(fd, direct)
    }

    pub(crate) fn new(fd: OwnedFd, direct: Option<DioAlignment>) -> File {
        driver::fresh_fd(fd.as_raw_fd());
        File {
            fd: Some(fd),
            direct,
            fixed: None,
            _core_bound: std::marker::PhantomData,
        }
    }

    /// Opens the file at `path` for reading.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens the file at `path` for writing, creating it (mode `0o666` less the umask)
    /// or truncating it.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// What ops name: the registered slot on the ring that has it, else the fd.
    #[inline]
    fn target(&self) -> FileRef {
        match &self.fixed {
            Some(fixed) if fixed.ring == driver::current_id() => FileRef::Fixed(fixed.slot),
            _ => FileRef::Fd(self.raw()),
        }
    }

    /// For a file opened with `O_DIRECT`: an error that explains the rule when a
    /// transfer of `len` bytes at `pos` from memory at `addr` breaks it. The kernel's
    /// own answer would be a bare `EINVAL`.
    #[inline]
    fn check_direct(&self, addr: *const u8, len: usize, pos: u64) -> io::Result<()> {
        match self.direct {
            None => Ok(()),
            Some(align) => misaligned(align, addr, len, pos),
        }
    }

    /// Reads into `buf` from byte `pos` of the file; fills at most `buf.bytes_total()`
    /// bytes and returns how many, with the buffer's length set to that (see
    /// [`buf`](crate::buf#what-a-read-does-to-the-buffers-length)). `Ok(0)` means end
    /// of file.
    ///
    /// A [`FixedBuf`](crate::buf::FixedBuf) is read into with `IORING_OP_READ_FIXED`.
    /// On a file opened with [`OpenOptions::direct`], a misaligned offset, length or
    /// buffer is an `InvalidInput` error that says which and what the rule is.
    ///
    /// For fds without a position (pipes, sockets), `pos` is ignored.
    #[inline]
    pub fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> ReadAt<'_, B> {
        ReadAt::new(self, buf, pos)
    }

    /// Writes the initialised bytes of `buf` at byte `pos`; returns how many were
    /// written, which may be fewer than asked.
    ///
    /// A [`FixedBuf`](crate::buf::FixedBuf) is written with `IORING_OP_WRITE_FIXED`;
    /// `O_DIRECT` alignment is checked as for [`read_at`](File::read_at).
    #[inline]
    pub fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> WriteAt<'_, B> {
        WriteAt::new(self, buf, pos)
    }

    /// Reads into several buffers in order, from byte `pos` on (`IORING_OP_READV`):
    /// each is filled to its `bytes_total` before the next. Returns the total read.
    #[inline]
    pub fn read_vectored_at<B: IoBufMut>(&self, bufs: Vec<B>, pos: u64) -> ReadVectoredAt<'_, B> {
        ReadVectoredAt::new(self, bufs, pos)
    }

    /// Writes the initialised bytes of several buffers in order at byte `pos` on
    /// (`IORING_OP_WRITEV`). Returns the total written, which may be fewer than asked.
    #[inline]
    pub fn write_vectored_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> WriteVectoredAt<'_, B> {
        WriteVectoredAt::new(self, bufs, pos)
    }

    /// Fills all of `buf` (`bytes_total` bytes) from byte `pos` on, resubmitting after
    /// short reads; end of file first is `UnexpectedEof` (the bytes read so far are
    /// in the buffer handed back). Dropping the future part-way hands nothing back
    /// (see [`ReadExactAt`]).
    #[inline]
    pub fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> ReadExactAt<'_, B> {
        ReadExactAt::new(self, buf, pos)
    }

    /// Writes all of `buf`'s initialised bytes at byte `pos` on, resubmitting after
    /// short writes; a write that takes nothing is `WriteZero`.
    #[inline]
    pub fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> WriteAllAt<'_, B> {
        WriteAllAt::new(self, buf, pos)
    }

    /// Flushes the file's data and metadata to the device (`IORING_OP_FSYNC`).
    #[inline]
    pub fn sync_all(&self) -> Fsync<'_> {
        Fsync::new(self, false)
    }

    /// Flushes the file's data, and only the metadata needed to read it back, to the
    /// device (`IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC`, like `fdatasync(2)`).
    #[inline]
    pub fn sync_data(&self) -> Fsync<'_> {
        Fsync::new(self, true)
    }

    /// Allocates disk space for `len` bytes at `offset` (`IORING_OP_FALLOCATE`, mode
    /// 0); the file grows if that range ends past its end.
    #[inline]
    pub fn fallocate(&self, offset: u64, len: u64) -> Fallocate<'_> {
        Fallocate::new(self, offset, len)
    }

    /// Truncates or extends (with zeroes) the file to `len` bytes.
    ///
    /// Goes through the ring (`IORING_OP_FTRUNCATE`) on Linux 6.9 and later; on older
    /// kernels it calls `ftruncate(2)` on this core's thread, which blocks the core for
    /// the duration of the call.
    #[inline]
    pub fn set_len(&self, len: u64) -> SetLen<'_> {
        SetLen::new(self, len)
    }

    /// `ftruncate(2)`, for kernels whose ring lacks `IORING_OP_FTRUNCATE`.
    fn set_len_blocking(&self, len: u64) -> io::Result<()> {
        let len = libc::off_t::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("length {len} is too large for a file"),
            )
        })?;
        // ftruncate takes plain integers; the fd is owned by `self`.
        crate::sys::syscall!(ftruncate(self.raw(), len)).map(drop)
    }

    /// The file's metadata (`IORING_OP_STATX` on the fd with `AT_EMPTY_PATH`).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        dir::statx(self.raw(), CString::default(), libc::AT_EMPTY_PATH).await
    }

    /// What `O_DIRECT` asks of I/O on this file: for a file opened with it, what was
    /// found at open; otherwise what `statx` says now (or the guess described on
    /// [`OpenOptions::direct`]).
    pub async fn dio_alignment(&self) -> io::Result<DioAlignment> {
        match self.direct {
            Some(align) => Ok(align),
            None => Ok(self.metadata().await?.dio_alignment_or_guess()),
        }
    }

    /// An empty buffer for `O_DIRECT` I/O on this file: its memory aligned as the
    /// file's device asks, and at least to a page, and its capacity `len` rounded up
    /// to a whole number of blocks (see [`dio_alignment`](File::dio_alignment)).
    ///
    /// ```
    /// # runtime::Builder::new().cores(1).pin(false).build().unwrap().block_on(async {
    /// use runtime::fs::OpenOptions;
    ///
    /// let path = std::env::temp_dir().join(format!("rt-doc-direct-{}", std::process::id()));
    /// let file = OpenOptions::new().read(true).write(true).create(true).direct(true)
    ///     .open(&path).await.unwrap();
    /// let mut buf = file.aligned_buf(100).await.unwrap(); // a block or more
    /// buf.set_len(buf.capacity());
    /// buf.fill(7);
    /// let (result, buf) = file.write_all_at(buf, 0).await;
    /// result.unwrap();
    ///
    /// // A 100-byte read is not a whole block: refused, and the error says why.
    /// let (result, _) = file.read_at(Vec::with_capacity(100), 0).await;
    /// assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    ///
    /// let (result, back) = file.read_at(file.aligned_buf(buf.len()).await.unwrap(), 0).await;
    /// assert_eq!(result.unwrap(), buf.len());
    /// assert!(back.iter().all(|&b| b == 7));
    /// # runtime::fs::remove_file(&path).await.unwrap();
    /// # });
    /// ```
    pub async fn aligned_buf(&self, len: usize) -> io::Result<AlignedBuf> {
        let align = self.dio_alignment().await?;
        let capacity = len.div_ceil(align.offset).max(1) * align.offset;
        // A device may accept 512-byte alignment, but a 4 KiB buffer that straddles
        // two pages costs the kernel a second page to pin and map on every transfer
        // (measured: 15-20% of the reads per second at queue depth 32).
        AlignedBuf::with_capacity(capacity, align.memory.max(crate::sys::page_size()))
    }

    /// Puts the file in this core's registered-file table, so the kernel finds it
    /// without looking up the fd on each op (the table's size is
    /// [`Builder::fixed_files`](crate::Builder::fixed_files)). Ops on this core's ring
    /// then name the slot; the fd stays open for everything else. The slot is emptied
    /// through the ring, behind the ops queued before, when the file is dropped or
    /// closed.
    ///
    /// Fails if the table is full or missing (the error says why), or when the file
    /// is already in another core's table.
    pub fn register(&mut self) -> io::Result<()> {
        let driver = driver::current().ok_or_else(driver::no_runtime)?;
        if let Some(fixed) = &self.fixed {
            if fixed.ring == driver.id() {
                return Ok(());
            }
            return Err(io::Error::other(
                "the file is registered with another runtime's ring",
            ));
        }
        let table = driver.files()?;
        let slot = table.take().ok_or_else(|| {
            io::Error::other(
                "every slot of this core's registered-file table is in use: \
                 Builder::fixed_files sets its size",
            )
        })?;
        // The slot is free only once its last FILES_UPDATE has completed, so no op
        // queued on this ring names it: setting it at once, outside the queue, is safe.
        if let Err(e) = driver.update_file(slot, self.raw()) {
            table.put_back(slot);
            return Err(e);
        }
        self.fixed = Some(FixedSlot {
            slot,
            ring: driver.id(),
            driver: Rc::downgrade(&driver),
        });
        Ok(())
    }

    /// Whether the file is in a registered-file table ([`register`](File::register)).
    pub fn is_registered(&self) -> bool {
        self.fixed.is_some()
    }

    /// Empties the file's registered slot, if any, through its ring: queued behind every
    /// op already queued there, so they still find the file.
    fn release_slot(&mut self) {
        let Some(fixed) = self.fixed.take() else {
            return;
        };
        // A ring that is gone took its table with it.
        let Some(driver) = fixed.driver.upgrade() else {
            return;
        };
        if let Ok(table) = driver.files() {
            // Refused only while the ring shuts down, and its table goes with it.
            let _ = driver.submit_detached(ops::FilesUpdate::clear(table.clone(), fixed.slot));
        }
    }

    /// Closes the file through the ring and reports the kernel's answer.
    pub async fn close(mut self) -> io::Result<()> {
        self.release_slot();
        let fd = self.fd.take().expect("a File owns its fd until closed");
        Op::new(ops::Close::new(fd)).await
    }
}

/// The error for a transfer of `len` bytes at `pos` from memory at `addr` that breaks
/// `O_DIRECT`'s `align`, if it does.
fn misaligned(align: DioAlignment, addr: *const u8, len: usize, pos: u64) -> io::Result<()> {
    let (mem, off) = (align.memory, align.offset);
    let broken = if pos % off as u64 != 0 {
        format!("the file offset {pos} is not a multiple of {off}")
    } else if len % off != 0 {
        format!("the length {len} is not a multiple of {off}")
    } else if addr as usize % mem != 0 {
        format!("the buffer's address {addr:p} is not a multiple of {mem}")
    } else {
        return Ok(());
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "misaligned O_DIRECT transfer: {broken}. A file opened with O_DIRECT \
             reads and writes whole blocks of its device: the file offset and the \
             length must be multiples of {off} bytes and the buffer must start at a \
             multiple of {mem} bytes in memory. File::aligned_buf makes a buffer \
             that fits; FixedBufs of a multiple of {off} bytes fit too."
        ),
    ))
}

/// The `O_DIRECT` alignment of `fd` if it was opened with `O_DIRECT`, from a blocking
/// `statx(2)`.
fn direct_alignment_sync(fd: RawFd) -> Option<DioAlignment> {
    // fcntl(F_GETFL) takes plain integers.
    let flags = crate::sys::syscall!(fcntl(fd, libc::F_GETFL)).ok()?;
    if flags & libc::O_DIRECT == 0 {
        return None;
    }
    Some(match dir::statx_blocking(fd, c"", libc::AT_EMPTY_PATH) {
        Ok(meta) => meta.dio_alignment_or_guess(),
        Err(_) => DioAlignment {
            memory: 4096,
            offset: 4096,
        },
    })
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
            .as_ref()
            .expect("a File owns its fd until closed")
            .as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.raw())
            .field("direct", &self.direct)
            .field("slot", &self.fixed.as_ref().map(|f| f.slot))
            .finish()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        self.release_slot();
        if let Some(fd) = self.fd.take() {
            // Through the ring behind every SQE queued on the fd, or at once where no
            // core runs (nothing can be queued then).
            driver::close(fd);
        }
    }
}
