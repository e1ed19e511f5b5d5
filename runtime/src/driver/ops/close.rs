use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_CLOSE`. Queued behind any SQE that names the fd, so the fd number is
/// not freed (and reused) before those ops have taken their reference to the file.
#[derive(Debug)]
pub(crate) struct Close {
    /// Closed by `Drop` if the kernel never ran the close (not queued, or cancelled).
    fd: Option<OwnedFd>,
}

impl Close {
    pub(crate) fn new(fd: OwnedFd) -> Close {
        Close { fd: Some(fd) }
    }
}

// SAFETY: the SQE carries no pointer, only the fd, which the op owns (an `OwnedFd`)
// until the kernel has closed it. `complete` gives up ownership without closing when
// the kernel ran the close (which released the fd even on error), and keeps it, to be
// closed by `Drop`, only when the close never ran: the fd is closed exactly once.
unsafe impl Completable for Close {
    type Output = io::Result<()>;

    /// A close whose future is dropped still closes: the fd must not stay open.
    const RUN_IF_DROPPED: bool = true;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let fd = self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        opcode::Close::new(types::Fd(fd)).build()
    }

    fn complete(mut self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        let ran = match &result {
            Ok(_) => true,
            // Cancelled before it ran, or never submitted (no OS error): still open.
            Err(e) => !matches!(e.raw_os_error(), Some(libc::ECANCELED) | None),
        };
        if ran {
            // The kernel released the fd (Linux does so even when close reports an
            // error); closing it again could close someone else's file.
            let _ = self.fd.take().map(IntoRawFd::into_raw_fd);
        }
        result.map(drop)
    }
}
