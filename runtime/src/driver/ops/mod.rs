//! One file per opcode: each defines the op's owned resources and implements
//! [`Completable`](super::Completable) (one CQE) or [`Multishot`](super::Multishot)
//! (several) for them.

mod accept;
mod cancel_fd;
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
pub(crate) use cancel_fd::CancelFd;
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

pub(crate) use fallocate::Fallocate;
pub(crate) use fsync::Fsync;
pub(crate) use ftruncate::Ftruncate;
pub(crate) use link::{LinkAt, SymlinkAt};
pub(crate) use mkdir::MkDirAt;
pub(crate) use open::OpenAt;
pub(crate) use rename::RenameAt;
pub(crate) use statx::Statx;
pub(crate) use unlink::UnlinkAt;
