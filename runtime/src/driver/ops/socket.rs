use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{opcode, squeue::Entry};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_SOCKET` (Linux 5.19): a close-on-exec socket made by the ring. If its
/// future is gone when the CQE comes, the new socket is closed (rule 2).
#[derive(Debug)]
pub(crate) struct Socket {
    domain: i32,
    ty: i32,
}

impl Socket {
    pub(crate) fn new(domain: i32, ty: i32) -> Socket {
        Socket { domain, ty }
    }
}

// SAFETY: the SQE carries no pointer (domain, type, protocol: numbers). The fd of a
// successful CQE is a socket the kernel made for this op, owned by nobody else, and
// `complete` wraps it in the one `OwnedFd` that will close it.
unsafe impl Completable for Socket {
    type Output = io::Result<OwnedFd>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::Socket::new(self.domain, self.ty | libc::SOCK_CLOEXEC, 0).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<OwnedFd> {
        // SAFETY: a successful socket op returns a new fd that nobody else owns.
        result.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
