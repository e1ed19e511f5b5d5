//! glommio: a `LocalExecutor` fixed to the server's CPU, `glommio::net`
//! sockets (unbuffered), one task per connection.

use std::io;
use std::net::SocketAddr;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

use super::http::{self, READ_BUFFER};
use super::{Protocol, SERVER_CPU};

/// Serves `protocol` on `addr` until killed; calls `listening` once bound.
pub fn serve(protocol: Protocol, addr: SocketAddr, listening: &dyn Fn()) -> io::Result<()> {
    let executor = LocalExecutorBuilder::new(Placement::Fixed(SERVER_CPU))
        .name("glommio-server")
        .make()
        .map_err(|err| io::Error::other(format!("cannot start glommio: {err}")))?;
    executor.run(async move {
        let listener = TcpListener::bind(addr).map_err(io::Error::from)?;
        listening();
        loop {
            let stream = listener.accept().await.map_err(io::Error::from)?;
            stream.set_nodelay(true).map_err(io::Error::from)?;
            glommio::spawn_local(async move {
                let _ = match protocol {
                    Protocol::Echo => echo(stream).await,
                    Protocol::Http => answer(stream).await,
                };
            })
            .detach();
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
