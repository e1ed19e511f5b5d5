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

mod owned;

// `Compat` and the trait that says what it wraps live in a module of their own above
// `net` and `fs`, whose types they name; this module holds only the owned-buffer traits.
pub use crate::compat::{Compat, CompatIo};
pub use owned::{AsyncReadOwned, AsyncWriteOwned};
