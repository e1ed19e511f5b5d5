//! One file per opcode: each defines the op's owned resources and implements
//! [`Completable`](super::Completable) (one CQE) or [`Multishot`](super::Multishot)
//! (several) for them.

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
