//! One file per opcode: each defines the op's owned resources and implements
//! [`Completable`](super::Completable) for them.

mod close;
mod nop;
mod read;
mod write;

pub(crate) use close::Close;
pub(crate) use nop::Nop;
pub(crate) use read::Read;
pub(crate) use write::Write;
