//! tokio's single-threaded set-up: a current-thread runtime with a `LocalSet`,
//! `tokio::net` sockets, one task per connection spawned with `spawn_local`.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{self, LocalSet};

use super::http::{self, READ_BUFFER};
use super::Protocol;

/// Serves `protocol` on `addr` until killed; calls `listening` once bound.
pub fn serve(protocol: Protocol, addr: SocketAddr, listening: &dyn Fn()) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    LocalSet::new().block_on(&rt, async move {
        let listener = TcpListener::bind(addr).await?;
        listening();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            task::spawn_local(async move {
                // A connection's error (a reset) ends that connection only.
                let _ = match protocol {
                    Protocol::Echo => echo(stream).await,
                    Protocol::Http => answer(stream).await,
                };
            });
        }
    })
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0; READ_BUFFER];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn answer(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0; READ_BUFFER];
    let mut filled = 0;
    let mut out = Vec::new();
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let Ok(parsed) = http::parse(&buf[..filled]) else {
            return Ok(());
        };
        if parsed.requests > 0 {
            http::respond(parsed.requests, &mut out);
            stream.write_all(&out).await?;
            buf.copy_within(parsed.consumed..filled, 0);
            filled -= parsed.consumed;
        }
    }
}
