//! Files, read and written through the ring with owned buffers at explicit offsets,
//! and the operations on paths (open, stat, rename, links, directories).
//!
//! Every call goes through the ring. Where this kernel's io_uring lacks the opcode
//! (see [`Probe::supports`](crate::Probe::supports)), the path functions and
//! [`File::set_len`] make the blocking system call on the core's thread instead, as
//! each one's documentation says.
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

use io_uring::opcode;

use crate::buf::{until_done, BufResult, IoBuf, IoBufMut};
use crate::driver::{self, ops, Op};

mod dir;
mod metadata;
mod open_options;

pub use dir::{
    create_dir, create_dir_all, hard_link, metadata, read, remove_dir, remove_file, rename,
    symlink, symlink_metadata, write,
};
pub use metadata::Metadata;
pub use open_options::OpenOptions;

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
    /// `!Send`, for the reason given on sockets: only this core's ring can queue the
    /// close behind an op that names the fd and has not been submitted yet.
    _core_bound: std::marker::PhantomData<*const ()>,
}

impl File {
    /// Takes ownership of an open standard file (or any owned fd).
    pub fn from_std(file: impl Into<OwnedFd>) -> File {
        File {
            fd: Some(file.into()),
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

    /// Reads into `buf` from byte `pos` of the file; fills at most `buf.bytes_total()`
    /// bytes and returns how many. `Ok(0)` means end of file.
    ///
    /// For fds without a position (pipes, sockets), `pos` is ignored.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        Op::new(ops::Read::new(self.raw(), buf, pos)).await
    }

    /// Writes the initialised bytes of `buf` at byte `pos`; returns how many were
    /// written, which may be fewer than asked.
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        Op::new(ops::Write::new(self.raw(), buf, pos)).await
    }

    /// Fills all of `buf` (`bytes_total` bytes) from byte `pos` on, resubmitting after
    /// short reads; end of file first is `UnexpectedEof` (the bytes read so far are
    /// in the buffer handed back).
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let stalled = |done, total| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("end of file after {done} of {total} bytes"),
            )
        };
        let read = |rest, done: usize| self.read_at(rest, pos + done as u64);
        until_done(buf, total, read, stalled).await
    }

    /// Writes all of `buf`'s initialised bytes at byte `pos` on, resubmitting after
    /// short writes; a write that takes nothing is `WriteZero`.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let stalled = |done, total| {
            io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the file took no more bytes after {done} of {total}"),
            )
        };
        let write = |rest, done: usize| self.write_at(rest, pos + done as u64);
        until_done(buf, total, write, stalled).await
    }

    /// Flushes the file's data and metadata to the device (`IORING_OP_FSYNC`).
    pub async fn sync_all(&self) -> io::Result<()> {
        Op::new(ops::Fsync::new(self.raw(), false)).await
    }

    /// Flushes the file's data, and only the metadata needed to read it back, to the
    /// device (`IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC`, like `fdatasync(2)`).
    pub async fn sync_data(&self) -> io::Result<()> {
        Op::new(ops::Fsync::new(self.raw(), true)).await
    }

    /// Allocates disk space for `len` bytes at `offset` (`IORING_OP_FALLOCATE`, mode
    /// 0); the file grows if that range ends past its end.
    pub async fn fallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        Op::new(ops::Fallocate::new(self.raw(), offset, len, 0)).await
    }

    /// Truncates or extends (with zeroes) the file to `len` bytes.
    ///
    /// Goes through the ring (`IORING_OP_FTRUNCATE`) on Linux 6.9 and later; on older
    /// kernels it calls `ftruncate(2)` on this core's thread, which blocks the core for
    /// the duration of the call.
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        if dir::ring_has(opcode::Ftruncate::CODE) {
            return Op::new(ops::Ftruncate::new(self.raw(), len)).await;
        }
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

    /// Closes the file through the ring and reports the kernel's answer.
    pub async fn close(mut self) -> io::Result<()> {
        let fd = self.fd.take().expect("a File owns its fd until closed");
        Op::new(ops::Close::new(fd)).await
    }
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
        f.debug_struct("File").field("fd", &self.raw()).finish()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        // Outside a running core no op can be queued on this fd: a File never leaves
        // its thread, and a core submits everything it queued before `block_on`
        // returns (and drains it all at shutdown). A plain close is safe then; dropping
        // the OwnedFd does it.
        if let Some(driver) = driver::current() {
            // If the queue is wedged, the close op is dropped unqueued and its fd with
            // it: nothing the kernel was given names it.
            let _ = driver.submit_detached(ops::Close::new(fd));
        }
    }
}
