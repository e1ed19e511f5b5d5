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

// Without either trait feature nothing calls the poll functions yet.
#[cfg_attr(not(any(feature = "futures-io", feature = "tokio")), allow(dead_code))]
mod compat;
mod owned;

pub use compat::Compat;
pub use owned::{AsyncReadOwned, AsyncWriteOwned};

mod sealed {
    pub trait Sealed {}
}

/// A stream [`Compat`] can wrap: the runtime's sockets and files.
pub trait CompatIo: std::os::fd::AsRawFd + Unpin + sealed::Sealed {
    /// Whether reads and writes ignore offsets (sockets, `SHUT_WR` on close) rather
    /// than follow a cursor (files).
    #[doc(hidden)]
    const STREAM: bool;
}

impl sealed::Sealed for crate::net::TcpStream {}
impl CompatIo for crate::net::TcpStream {
    const STREAM: bool = true;
}

impl sealed::Sealed for crate::net::UnixStream {}
impl CompatIo for crate::net::UnixStream {
    const STREAM: bool = true;
}

impl sealed::Sealed for crate::fs::File {}
impl CompatIo for crate::fs::File {
    const STREAM: bool = false;
}
