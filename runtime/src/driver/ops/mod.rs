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
    use std::rc::Rc;

    use io_uring::opcode;

    use super::{Read, Recv, Send, Write};
    use crate::buf::fixed::Pool;
    use crate::buf::{FixedBuf, FixedBufPool, IoBuf, RingId};
    use crate::driver::Completable;

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
}
