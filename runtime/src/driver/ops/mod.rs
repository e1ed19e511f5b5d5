//! One file per opcode: each defines the op's owned resources and implements
//! [`Completable`](super::Completable) (one CQE) or [`Multishot`](super::Multishot)
//! (several) for them. Both traits are `unsafe`: each `unsafe impl` carries a
//! `// SAFETY:` comment that names every pointer its SQE holds and why the memory
//! behind it stays valid, and untouched by Rust, until the final CQE.

use std::os::fd::RawFd;

use io_uring::squeue::{Entry, Flags};
use io_uring::types;

mod accept;
mod close;
mod connect;
mod msg;
mod nop;
mod poll;
mod read;
mod recv_multi;
mod send;
mod send_zc;
mod shutdown;
mod socket;
mod write;

pub(crate) use accept::{Accept, AcceptMulti};
pub(crate) use close::Close;
pub(crate) use connect::Connect;
pub(crate) use msg::{RecvMsg, SendMsg};
pub(crate) use nop::Nop;
pub(crate) use poll::PollAdd;
pub(crate) use read::Read;
pub(crate) use recv_multi::{Received, RecvMulti};
pub(crate) use send::{Recv, Send};
pub(crate) use send_zc::{SendZc, ZcEvent};
pub(crate) use shutdown::Shutdown;
pub(crate) use socket::Socket;
pub(crate) use write::Write;

mod fallocate;
mod fsync;
mod ftruncate;
mod link;
mod mkdir;
mod open;
mod rename;
mod statx;
mod unlink;
mod vectored;

pub(crate) use fallocate::Fallocate;
pub(crate) use fsync::Fsync;
pub(crate) use ftruncate::Ftruncate;
pub(crate) use link::{LinkAt, SymlinkAt};
pub(crate) use mkdir::MkDirAt;
pub(crate) use open::OpenAt;
pub(crate) use rename::RenameAt;
pub(crate) use statx::Statx;
pub(crate) use unlink::UnlinkAt;
pub(crate) use vectored::{Readv, Writev};
mod files_update;
pub(crate) use files_update::FilesUpdate;

/// The file an op names: a plain fd, or a slot of the ring's registered-file table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileRef {
    Fd(RawFd),
    Fixed(u32),
}

impl FileRef {
    /// The number for the SQE's `fd` field: the fd, or the slot.
    fn fd(self) -> types::Fd {
        match self {
            FileRef::Fd(fd) => types::Fd(fd),
            FileRef::Fixed(slot) => types::Fd(slot as RawFd),
        }
    }

    /// Marks `entry` (built with [`fd`](FileRef::fd)) as naming a registered file when
    /// it does (`IOSQE_FIXED_FILE`).
    fn mark(self, entry: Entry) -> Entry {
        match self {
            FileRef::Fd(_) => entry,
            FileRef::Fixed(_) => entry.flags(Flags::FIXED_FILE),
        }
    }
}

impl From<RawFd> for FileRef {
    fn from(fd: RawFd) -> FileRef {
        FileRef::Fd(fd)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::net::SocketAddr;
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::ptr;
    use std::rc::Rc;

    use io_uring::opcode;
    use io_uring::squeue::Entry;

    use super::{Accept, PollAdd, Read, Recv, RecvMsg, Send, Statx, Write};
    use crate::buf::fixed::Pool;
    use crate::buf::{FixedBuf, FixedBufPool, IoBuf, RingId};
    use crate::driver::Completable;
    use crate::sys::socket::SockAddr;

    const RING: RingId = RingId::new(7);
    const OTHER: RingId = RingId::new(8);

    /// Two buffers of a pool for ring 7: mapped, not registered (these ops only build
    /// their SQEs).
    fn bufs() -> (FixedBuf, FixedBuf) {
        let pool = FixedBufPool::from_pool(Rc::new(Pool::new(2, 4096, 7).unwrap()));
        (pool.try_get().unwrap(), pool.try_get().unwrap())
    }

    fn opcode_of(op: &mut impl Completable, ring: RingId) -> u32 {
        op.prepare(ring).get_opcode()
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps the pool with mmap and madvise")]
    fn ops_on_a_fixed_buf_use_the_fixed_opcodes_only_for_its_own_ring() {
        let (read_fixed, write_fixed) = (
            u32::from(opcode::ReadFixed::CODE),
            u32::from(opcode::WriteFixed::CODE),
        );
        let (a, b) = bufs();
        let mut read = Read::new(-1, a, 0);
        assert_eq!(opcode_of(&mut read, RING), read_fixed);
        assert_eq!(opcode_of(&mut read, OTHER), u32::from(opcode::Read::CODE));
        let mut write = Write::new(-1, b.slice(..), 0);
        assert_eq!(opcode_of(&mut write, RING), write_fixed);
        assert_eq!(opcode_of(&mut write, OTHER), u32::from(opcode::Write::CODE));

        let (a, b) = bufs();
        let mut recv = Recv::new(-1, a);
        assert_eq!(opcode_of(&mut recv, RING), read_fixed);
        assert_eq!(opcode_of(&mut recv, OTHER), u32::from(opcode::Recv::CODE));
        let mut send = Send::new(-1, b);
        assert_eq!(opcode_of(&mut send, RING), write_fixed);
        assert_eq!(opcode_of(&mut send, OTHER), u32::from(opcode::Send::CODE));

        // A plain buffer is never fixed; no ring has id 0.
        let mut plain = Read::new(-1, Vec::with_capacity(8), 0);
        assert_eq!(opcode_of(&mut plain, RING), u32::from(opcode::Read::CODE));
        let (a, _) = bufs();
        let mut outside = Read::new(-1, a, 0);
        let none = RingId::new(0);
        assert_eq!(opcode_of(&mut outside, none), u32::from(opcode::Read::CODE));
    }

    // The tests below stand in for the kernel: they build an op's SQE, move the op the
    // way the driver may while the kernel holds the SQE (into a slot, out of it), then
    // read and write through the addresses in the SQE and complete the op. They need
    // no ring, so they run under Miri too (`cargo +nightly miri test -p runtime --lib --
    // driver::ops buf::`), which checks that those addresses are still valid for the
    // accesses after the moves: with the `statx` buffer in a `Box`, as it was, Miri
    // reports the kernel's write as undefined behaviour.

    /// The SQE as the kernel reads it (`struct io_uring_sqe`): `off`/`addr2` is word 1,
    /// `addr` word 2, `len` the low half of word 3.
    fn sqe_words(entry: Entry) -> [u64; 8] {
        // SAFETY: an Entry is a `repr(C)` wrapper of the kernel's 64-byte SQE, whose
        // fields are all plain integers.
        unsafe { std::mem::transmute::<Entry, [u64; 8]>(entry) }
    }

    /// Moves `op` as the driver may while its SQE is in flight: into an abandoned op's
    /// slot (a `Box<dyn Any>` here) and out again.
    fn moved<T: 'static>(op: T) -> T {
        let slot: Box<dyn std::any::Any> = Box::new(op);
        let mut slab = vec![*slot.downcast::<T>().unwrap()];
        slab.pop().unwrap()
    }

    /// Writes `addr` through `name`/`len` as accept and recvmsg do.
    ///
    /// # Safety
    ///
    /// `name` must be valid for a write of `*len` bytes, `len` for a read and a write.
    unsafe fn kernel_writes_addr(name: *mut u8, len: *mut libc::socklen_t, addr: SocketAddr) {
        let addr = SockAddr::from_inet(&addr);
        // SAFETY: by the caller's promise; `addr.len` fits in the buffer, which is
        // never smaller than a sockaddr_storage in these ops.
        unsafe {
            assert!(addr.len <= len.read());
            ptr::copy_nonoverlapping(addr.as_ptr().cast::<u8>(), name, addr.len as usize);
            len.write(addr.len);
        }
    }

    #[test]
    fn made_up_cqe_flags_read_as_the_kernels_do() {
        use crate::driver::{CQE_BUFFER_SHIFT, CQE_F_BUFFER, CQE_F_MORE, CQE_F_NOTIF};
        let flags = CQE_F_BUFFER | CQE_F_MORE | 7 << CQE_BUFFER_SHIFT;
        assert_eq!(io_uring::cqueue::buffer_select(flags), Some(7));
        assert!(io_uring::cqueue::more(flags));
        assert!(!io_uring::cqueue::notif(flags));
        assert!(io_uring::cqueue::notif(CQE_F_NOTIF));
        assert!(!io_uring::cqueue::more(CQE_F_NOTIF));
    }

    #[test]
    fn statx_resolves_to_what_the_kernel_wrote_through_its_sqe() {
        let mask = libc::STATX_SIZE | libc::STATX_TYPE;
        let mut op = Statx::new(-1, CString::new("file").unwrap(), 0, mask);
        let sqe = sqe_words(op.prepare(RING));
        assert_eq!(sqe[3] as u32, mask, "the mask the caller asked for");
        let op = moved(op);
        let stat = sqe[1] as *mut libc::statx;
        // SAFETY: the SQE's statx buffer, valid until the op is dropped (rule 1).
        unsafe {
            ptr::addr_of_mut!((*stat).stx_mask).write(mask);
            ptr::addr_of_mut!((*stat).stx_size).write(1234);
        }
        let stat = op.complete(Ok(0), 0).unwrap();
        assert_eq!((stat.stx_mask, stat.stx_size), (mask, 1234));
    }

    #[test]
    fn accept_resolves_to_the_address_the_kernel_wrote_through_its_sqe() {
        let mut op = Accept::new(-1);
        let sqe = sqe_words(op.prepare(RING));
        let (name, len) = (sqe[2] as *mut u8, sqe[1] as *mut libc::socklen_t);
        let op = moved(op);
        let peer: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        // SAFETY: the SQE's address buffer and length, valid until the op is dropped.
        unsafe {
            assert_eq!(
                len.read() as usize,
                std::mem::size_of::<libc::sockaddr_storage>()
            );
            kernel_writes_addr(name, len, peer);
        }
        // The "accepted" fd: one end of a pair, which the output now owns.
        let (ours, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let raw = ours.into_raw_fd();
        let (fd, addr) = op.complete(Ok(raw as u32), 0).unwrap();
        assert_eq!(fd.as_raw_fd(), raw);
        assert_eq!(addr.to_inet().unwrap(), peer);
    }

    #[test]
    fn recvmsg_resolves_to_the_bytes_and_address_the_kernel_wrote_through_its_sqe() {
        let mut op = RecvMsg::new(-1, vec![Vec::with_capacity(4), Vec::with_capacity(8)]);
        let sqe = sqe_words(op.prepare(RING));
        let msg = sqe[2] as *mut libc::msghdr;
        let op = moved(op);
        let from: SocketAddr = "[::1]:53".parse().unwrap();
        // SAFETY: the SQE's msghdr, and the iovecs and address it points to, all valid
        // until the op is dropped; the iovecs point into the op's buffers.
        unsafe {
            let iov = ptr::addr_of!((*msg).msg_iov).read();
            assert_eq!(ptr::addr_of!((*msg).msg_iovlen).read(), 2);
            let first = iov.read();
            let second = iov.add(1).read();
            assert_eq!((first.iov_len, second.iov_len), (4, 8));
            ptr::copy_nonoverlapping(b"abcd".as_ptr(), first.iov_base.cast::<u8>(), 4);
            ptr::copy_nonoverlapping(b"ef".as_ptr(), second.iov_base.cast::<u8>(), 2);
            let name = ptr::addr_of!((*msg).msg_name).read().cast::<u8>();
            kernel_writes_addr(name, ptr::addr_of_mut!((*msg).msg_namelen), from);
        }
        let (result, bufs) = op.complete(Ok(6), 0);
        let (n, addr) = result.unwrap();
        assert_eq!(n, 6);
        assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"abcd"[..], &b"ef"[..]));
        assert_eq!(addr.to_inet().unwrap(), from);
    }

    #[test]
    fn poll_add_is_one_shot_on_its_fd_for_its_events_and_reports_the_mask() {
        let events = (libc::POLLIN | libc::POLLERR | libc::POLLHUP) as u32;
        let mut op = PollAdd::new(5, events);
        assert_eq!(
            Completable::fd(&op),
            Some(5),
            "a hand-off of fd 5 waits for it"
        );
        let entry = op.prepare(RING);
        assert_eq!(entry.get_opcode(), u32::from(opcode::PollAdd::CODE));
        let sqe = sqe_words(entry);
        // `fd` is the high half of word 0; `len` (IORING_POLL_ADD_MULTI when multishot)
        // the low half of word 3 and `poll32_events` its high half.
        assert_eq!((sqe[0] >> 32) as i32, 5);
        assert_eq!(sqe[3] as u32, 0, "one-shot: the poll ends with its one CQE");
        assert_eq!((sqe[3] >> 32) as u32, events);
        assert_eq!(
            sqe[1] | sqe[2],
            0,
            "no offset, no address: nothing for the kernel to use"
        );
        let mask = libc::POLLHUP as u32;
        assert_eq!(moved(op).complete(Ok(mask), 0).unwrap(), mask);
        let err = PollAdd::new(5, events)
            .complete(Err(std::io::Error::from_raw_os_error(libc::EBADF)), 0)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }
}
