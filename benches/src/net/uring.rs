//! tokio-uring: its `TcpListener` and `TcpStream` with owned buffers, on its
//! own ring driven by a current-thread tokio runtime, one task per connection.

use std::io;
use std::net::SocketAddr;

use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::{TcpListener, TcpStream};

use super::http::{self, READ_BUFFER};
use super::Protocol;

/// Serves `protocol` on `addr` until killed; calls `listening` once bound.
pub fn serve(protocol: Protocol, addr: SocketAddr, listening: &dyn Fn()) -> io::Result<()> {
    tokio_uring::start(async move {
        let listener = TcpListener::bind(addr)?;
        listening();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio_uring::spawn(async move {
                let _ = match protocol {
                    Protocol::Echo => echo(stream).await,
                    Protocol::Http => answer(stream).await,
                };
            });
        }
    })
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
