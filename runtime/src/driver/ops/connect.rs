use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::{KernelBox, RingId};
use crate::driver::Completable;
use crate::sys::socket::SockAddr;

/// `IORING_OP_CONNECT`. The op owns the address and the socket (`F` is an `OwnedFd`
/// for a new stream socket, so that a dropped connect closes its half-connected socket
/// after the CQE; a `RawFd` for a datagram socket the caller keeps).
pub(crate) struct Connect<F> {
    fd: F,
    /// The address, read by the kernel.
    addr: KernelBox<SockAddr>,
}

impl<F: AsRawFd> Connect<F> {
    pub(crate) fn new(fd: F, addr: SockAddr) -> Connect<F> {
        Connect {
            fd,
            addr: KernelBox::new(addr),
        }
    }
}

// SAFETY: the SQE's one pointer is the address (`storage` of the op's
// `KernelBox<SockAddr>`), a heap block that stays allocated and in place until the op
// is dropped, after the final CQE; its length goes by value (a `SockAddr`'s length
// never exceeds its `storage`, and the kernel refuses one longer than a
// `sockaddr_storage` with `EINVAL`). The pointer is a raw field pointer from the
// block's own, and nothing writes the block after `prepare`; the kernel only reads it.
unsafe impl<F: AsRawFd + Unpin + 'static> Completable for Connect<F> {
    /// The connected socket; on failure it is dropped (an `OwnedFd` is closed).
    type Output = io::Result<F>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let len = self.addr.get().len;
        let addr = self.addr.as_ptr();
        // SAFETY: `addr` points to the live SockAddr the KernelBox owns; the field is
        // projected without making a reference.
        let storage = unsafe { ptr::addr_of!((*addr).storage) }.cast::<libc::sockaddr>();
        opcode::Connect::new(types::Fd(self.fd.as_raw_fd()), storage, len).build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<F> {
        result.map(|_| self.fd)
    }
}
