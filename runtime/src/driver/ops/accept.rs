use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{KernelBox, RingId};
use crate::driver::{Completable, Multishot};
use crate::sys::socket::SockAddr;

/// `IORING_OP_ACCEPT`: one connection and its peer's address. If the future is gone
/// when the CQE comes, the accepted socket is closed (rule 2).
pub(crate) struct Accept {
    fd: RawFd,
    /// The address and its length, both written by the kernel.
    addr: KernelBox<SockAddr>,
}

impl Accept {
    pub(crate) fn new(fd: RawFd) -> Accept {
        Accept {
            fd,
            addr: KernelBox::new(SockAddr::empty()),
        }
    }
}

// SAFETY: the SQE carries two pointers, both into the op's `KernelBox<SockAddr>`, a
// heap block that stays allocated and in place until the op is dropped, after the
// final CQE: the address buffer (`storage`, the whole `sockaddr_storage`) and its
// length (`len`, which holds the buffer's size on the way in). The kernel writes both.
// They are raw field pointers from the block's own pointer, with no reference in
// between, and nothing reads the block before `complete`, which reads it only for a
// successful CQE. That CQE's fd is a connection the kernel accepted for this op, owned
// by nobody else, and `complete` wraps it in the one `OwnedFd` that will close it.
unsafe impl Completable for Accept {
    type Output = io::Result<(OwnedFd, SockAddr)>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let addr = self.addr.as_mut_ptr();
        // SAFETY: `addr` points to the live SockAddr the KernelBox owns; the fields are
        // projected without making a reference.
        let (storage, len) = unsafe {
            (
                ptr::addr_of_mut!((*addr).storage).cast::<libc::sockaddr>(),
                ptr::addr_of_mut!((*addr).len),
            )
        };
        opcode::Accept::new(types::Fd(self.fd), storage, len)
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> Self::Output {
        // SAFETY: a successful accept returns a new fd that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(result? as i32) };
        Ok((fd, self.addr.into_inner()))
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

// SAFETY: the SQE carries no pointer (no address is asked for: both are null). Each
// successful CQE carries a connection the kernel accepted for this op, owned by nobody
// else, which `item` wraps in the one `OwnedFd` that will close it.
unsafe impl Multishot for AcceptMulti {
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
