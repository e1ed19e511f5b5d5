//! I/O traits: the owned-buffer calls as traits ([`AsyncReadOwned`],
//! [`AsyncWriteOwned`]), and the poll-based traits over the runtime's streams.
//!
//! [`Compat`] wraps a [`TcpStream`](crate::net::TcpStream),
//! [`UnixStream`](crate::net::UnixStream) or [`File`](crate::fs::File) and implements
//! `futures_io::{AsyncRead, AsyncBufRead, AsyncWrite}` (feature `futures-io`) and
//! `tokio::io::{AsyncRead, AsyncBufRead, AsyncWrite}` (feature `tokio`: the traits
//! only, no tokio runtime), so hyper, `tokio-util` codecs and the copy helpers run on
//! top. `docs/guide.md` says when to use it and when the owned-buffer calls are the
//! better fit.
//!
//! [`AsyncFd`] is readiness for a file descriptor the runtime does not drive itself (a
//! pipe, a netlink socket, a device, another library's fd): wait until it is
//! [readable](AsyncFd::readable) or [writable](AsyncFd::writable), then make your own
//! non-blocking call ([`ReadyGuard::try_io`]). The API says nothing of the backend
//! that waits.

mod async_fd;
mod owned;

// `Compat` and the trait that says what it wraps live in a module of their own above
// `net` and `fs`, whose types they name; this module holds the owned-buffer traits and
// `AsyncFd`, which uses the driver only.
pub use crate::compat::{Compat, CompatIo};
pub use async_fd::{AsyncFd, Readable, ReadyGuard, TryIoError, Writable};
pub use owned::{AsyncReadOwned, AsyncWriteOwned};
