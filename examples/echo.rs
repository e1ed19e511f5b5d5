//! A TCP echo server on every core: each core has its own listener on one port
//! (`TcpListener::bind_per_core`; a port another program holds is an error), takes
//! connections from a multishot accept, and echoes what arrives from a multishot
//! receive: the kernel fills the core's provided buffers and each one is written back
//! as it is, with no copy. Ctrl-C stops it cleanly.
//!
//! `cargo run --release --example echo [-- PORT]` (default 7878), then e.g.
//! `echo hi | nc 127.0.0.1 7878`.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;

use futures_core::Stream;
use runtime::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let port = match std::env::args().nth(1) {
        Some(port) => port
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "usage: echo [PORT]"))?,
        None => 7878,
    };
    let mut rt = runtime::Builder::new().build()?;
    let cores = rt.handle().core_count();
    let listeners = TcpListener::bind_per_core(("127.0.0.1", port), cores)?;
    let plural = if cores == 1 { "core" } else { "cores" };
    println!(
        "echoing on {} on {cores} {plural}; Ctrl-C stops",
        listeners.local_addr()
    );
    let results = rt.run_on_all(move |core| {
        let listener = listeners.take(core);
        async move {
            let listener = listener?;
            let stop = runtime::signal::ctrl_c();
            let accepting = runtime::spawn(async move {
                let mut incoming = listener.incoming();
                while let Some(stream) = poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx)).await {
                    match stream {
                        Ok(stream) => drop(runtime::spawn(echo(stream))),
                        Err(e) => eprintln!("accept: {e}"),
                    }
                }
            });
            stop.await?;
            accepting.abort();
            io::Result::Ok(())
        }
    });
    results.into_iter().collect::<io::Result<Vec<()>>>()?;
    println!("stopped");
    Ok(())
}

/// Writes back every buffer the peer sends until it closes its side.
async fn echo(stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut received = stream.recv_stream();
    while let Some(buf) = poll_fn(|cx| Pin::new(&mut received).poll_next(cx)).await {
        let Ok(buf) = buf else { return };
        // The provided buffer goes back to the ring when write_all hands it back and
        // it is dropped.
        let (written, _buf) = stream.write_all(buf).await;
        if written.is_err() {
            return;
        }
    }
}
