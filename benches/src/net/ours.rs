//! `runtime`: one core (`Builder::new().cores(1)`), connections taken from
//! the listener's multishot accept (`TcpListener::incoming`), one task per
//! connection spawned with `runtime::spawn`.
//!
//! - `ours` (echo) and `ours-inproc` (HTTP) read into an owned `Vec` with
//!   `TcpStream::read` and answer with `write_all`.
//! - `ours-multishot` (echo) receives with `TcpStream::recv_stream` (multishot
//!   receive into the core's provided buffers, `Builder::recv_buffers`) and
//!   sends each `RecvBuf` back as it is, with no copy.
//!
//! The HTTP benchmark's `ours` is not in this file: it is the project's `hello`
//! example, run as a process of its own.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};

use futures_core::Stream;
use runtime::buf::IoBuf;
use runtime::net::{TcpListener, TcpStream};

use super::http::{self, READ_BUFFER};
use super::Protocol;

/// Provided buffers for `ours-multishot`: as many as the runtime's default
/// (256 of 4 KiB), so a 4 KiB message fits in one.
const RECV_BUFFERS: (u16, u32) = (256, 4096);

/// Serves `protocol` on `addr` with owned-buffer reads until killed; calls
/// `listening` once bound.
pub fn serve(protocol: Protocol, addr: SocketAddr, listening: &dyn Fn()) -> io::Result<()> {
    let mut rt = runtime::Builder::new().cores(1).build()?;
    rt.block_on(accept_loop(addr, listening, move |stream| async move {
        match protocol {
            Protocol::Echo => echo(stream).await,
            Protocol::Http => answer(stream).await,
        }
    }))
}

/// Serves echo on `addr` with multishot receives until killed; calls
/// `listening` once bound.
pub fn serve_multishot(
    protocol: Protocol,
    addr: SocketAddr,
    listening: &dyn Fn(),
) -> io::Result<()> {
    if protocol != Protocol::Echo {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "ours-multishot serves echo only",
        ));
    }
    let (count, size) = RECV_BUFFERS;
    let mut rt = runtime::Builder::new()
        .cores(1)
        .recv_buffers(count, size)
        .build()?;
    rt.block_on(accept_loop(addr, listening, echo_multishot))
}

/// Binds `addr`, says so, and spawns `connection(stream)` for every
/// connection. A connection's error (a reset) ends that connection only.
async fn accept_loop<F, Fut>(
    addr: SocketAddr,
    listening: &dyn Fn(),
    connection: F,
) -> io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>> + 'static,
{
    let listener = TcpListener::bind(addr)?;
    listening();
    let mut incoming = pin!(listener.incoming());
    while let Some(stream) = next(incoming.as_mut()).await {
        let stream = stream?;
        stream.set_nodelay(true)?;
        let served = connection(stream);
        runtime::spawn(async move {
            let _ = served.await;
        });
    }
    Err(io::Error::other("the listener's accept stream ended"))
}

async fn echo(stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(READ_BUFFER);
    loop {
        buf.clear();
        let (n, read) = stream.read(buf).await;
        if n? == 0 {
            return Ok(());
        }
        let (written, sent) = stream.write_all(read).await;
        written?;
        buf = sent;
    }
}

async fn echo_multishot(stream: TcpStream) -> io::Result<()> {
    let mut received = pin!(stream.recv_stream());
    while let Some(data) = next(received.as_mut()).await {
        // The buffer goes back to the ring when the write hands it back and it
        // is dropped.
        let (written, _) = stream.write_all(data?).await;
        written?;
    }
    Ok(())
}

async fn answer(stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(READ_BUFFER);
    let mut out = Vec::new();
    loop {
        // Read after what is already there: an unfinished request.
        let filled = buf.len();
        let (n, read) = stream.read(buf.slice(filled..)).await;
        buf = read.into_inner();
        if n? == 0 {
            return Ok(());
        }
        let Ok(parsed) = http::parse(&buf) else {
            return Ok(());
        };
        if parsed.requests > 0 {
            http::respond(parsed.requests, &mut out);
            let (written, sent) = stream.write_all(out).await;
            written?;
            out = sent;
            buf.drain(..parsed.consumed);
        }
    }
}

/// The next item of a stream.
async fn next<S: Stream>(mut stream: Pin<&mut S>) -> Option<S::Item> {
    poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}
