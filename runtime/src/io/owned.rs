//! The owned-buffer calls as traits, for code generic over the stream it reads and
//! writes.

use std::future::Future;

use crate::buf::{BufResult, IoBuf, IoBufMut};

/// Reading into owned buffers: the trait behind the `read`/`read_exact` methods of
/// [`TcpStream`](crate::net::TcpStream) and [`UnixStream`](crate::net::UnixStream).
///
/// ```
/// use runtime::buf::IoBufMut;
/// use runtime::io::AsyncReadOwned;
///
/// /// Reads a 4-byte big-endian length, then that many bytes, from any stream.
/// async fn read_frame<S: AsyncReadOwned>(stream: &S) -> std::io::Result<Vec<u8>> {
///     let (r, len) = stream.read_exact(Vec::with_capacity(4)).await;
///     r?;
///     let len = u32::from_be_bytes(len[..4].try_into().unwrap()) as usize;
///     let (r, body) = stream.read_exact(Vec::with_capacity(len)).await;
///     r.map(|()| body)
/// }
/// ```
pub trait AsyncReadOwned {
    /// Reads into `buf` (up to its capacity) and sets its length to the count read
    /// (see [`buf`](crate::buf#what-a-read-does-to-the-buffers-length)); `Ok(0)` is
    /// the end of the stream.
    fn read<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>>;

    /// Fills all of `buf`'s capacity; an end first is `UnexpectedEof`.
    fn read_exact<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<(), B>>;
}

/// Writing from owned buffers: the trait behind the `write`/`write_all` methods of
/// [`TcpStream`](crate::net::TcpStream) and [`UnixStream`](crate::net::UnixStream).
pub trait AsyncWriteOwned {
    /// Writes some of `buf`'s initialised bytes; returns how many.
    fn write<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>>;

    /// Writes all of `buf`'s initialised bytes.
    fn write_all<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<(), B>>;
}
