//! Files, read and written through the ring with owned buffers at explicit offsets.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{self, ops, Op};

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
