use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;
use crate::sys::socket::SockAddr;

/// `IORING_OP_CONNECT`. The op owns the address and the socket (`F` is an `OwnedFd`
/// for a new stream socket, so that a dropped connect closes its half-connected socket
/// after the CQE; a `RawFd` for a datagram socket the caller keeps).
pub(crate) struct Connect<F> {
    fd: F,
    addr: Box<SockAddr>,
}

impl<F: AsRawFd> Connect<F> {
    pub(crate) fn new(fd: F, addr: SockAddr) -> Connect<F> {
        Connect {
            fd,
            addr: Box::new(addr),
        }
    }
}

impl<F: AsRawFd + Unpin + 'static> Completable for Connect<F> {
    /// The connected socket; on failure it is dropped (an `OwnedFd` is closed).
    type Output = io::Result<F>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::Connect::new(
            types::Fd(self.fd.as_raw_fd()),
            self.addr.as_ptr(),
            self.addr.len,
        )
        .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<F> {
        result.map(|_| self.fd)
    }
}
