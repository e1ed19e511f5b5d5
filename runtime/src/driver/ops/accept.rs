use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::{Completable, Multishot};
use crate::sys::socket::SockAddr;

/// `IORING_OP_ACCEPT`: one connection and its peer's address. If the future is gone
/// when the CQE comes, the accepted socket is closed (rule 2).
pub(crate) struct Accept {
    fd: RawFd,
    addr: Box<SockAddr>,
}

impl Accept {
    pub(crate) fn new(fd: RawFd) -> Accept {
        Accept {
            fd,
            addr: Box::new(SockAddr::empty()),
        }
    }
}

impl Completable for Accept {
    type Output = io::Result<(OwnedFd, SockAddr)>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let addr = &mut *self.addr;
        opcode::Accept::new(types::Fd(self.fd), addr.as_mut_ptr(), &mut addr.len)
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        // SAFETY: a successful accept returns a new fd that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(result? as i32) };
        Ok((fd, *self.addr))
    }
}

/// Multishot `IORING_OP_ACCEPT` (Linux 5.19): a CQE per connection until it ends. An
/// accepted socket nobody takes (the stream was dropped) is closed (rule 2).
#[derive(Debug)]
pub(crate) struct AcceptMulti {
    fd: RawFd,
}

impl AcceptMulti {
    pub(crate) fn new(fd: RawFd) -> AcceptMulti {
        AcceptMulti { fd }
    }
}

impl Multishot for AcceptMulti {
    type Item = io::Result<OwnedFd>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::AcceptMulti::new(types::Fd(self.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    fn item(&mut self, result: io::Result<u32>, _flags: u32) -> io::Result<OwnedFd> {
        // SAFETY: each successful CQE of a multishot accept carries a new fd that
        // nobody else owns.
        result.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
