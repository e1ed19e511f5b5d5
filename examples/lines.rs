//! A line protocol with tokio-util's `Framed` and `LinesCodec` over
//! `runtime::io::Compat`: the server answers each line it gets, the client sends lines
//! and prints the answers.
//!
//! Commands, one per line: `upper TEXT` (answers `TEXT` in capitals), `rev TEXT`
//! (answers it reversed), `quit` (answers `bye` and closes). Anything else gets an
//! `error: ...` line.
//!
//! ```text
//! cargo run --example lines                    # a server and a client in one process
//! cargo run --example lines -- server [ADDR]   # serve on ADDR (default 127.0.0.1:7979)
//! cargo run --example lines -- client [ADDR] [LINE]...
//! ```
//!
//! The server can also be tried with `nc 127.0.0.1 7979`.

use std::io;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use runtime::io::Compat;
use runtime::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LinesCodec};

const DEFAULT_ADDR: &str = "127.0.0.1:7979";
/// Longest line taken; a longer one is an error that ends the connection.
const MAX_LINE: usize = 4096;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "demo".to_string());
    let addr = |arg: Option<String>| -> io::Result<SocketAddr> {
        let text = arg.unwrap_or_else(|| DEFAULT_ADDR.to_string());
        text.parse()
            .map_err(|_| invalid(&format!("bad address {text:?}")))
    };
    let mut rt = runtime::Builder::new().cores(1).build()?;
    match mode.as_str() {
        "server" => {
            let listener = TcpListener::bind(addr(args.next())?)?;
            println!("lines: listening on {}", listener.local_addr()?);
            rt.block_on(serve(listener))
        }
        "client" => {
            let addr = addr(args.next())?;
            let lines: Vec<String> = args.collect();
            rt.block_on(client(addr, lines))
        }
        "demo" => rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let server = runtime::spawn(async move {
                // One connection is enough for the demo.
                let (stream, _) = listener.accept().await?;
                answer(stream).await
            });
            client(addr, Vec::new()).await?;
            server.await?
        }),
        _ => Err(invalid(&format!(
            "unknown mode {mode:?}; usage: lines [server [ADDR] | client [ADDR] [LINE]...]"
        ))),
    }
}

/// Accepts connections and answers each in a task of its own, until killed.
async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        runtime::spawn(async move {
            if let Err(e) = answer(stream).await {
                eprintln!("lines: {peer}: {e}");
            }
        });
    }
}

/// Answers one connection's lines until it says `quit` or closes.
async fn answer(stream: TcpStream) -> io::Result<()> {
    let codec = LinesCodec::new_with_max_length(MAX_LINE);
    let mut lines = Framed::new(Compat::new(stream), codec);
    while let Some(line) = lines.next().await {
        let line = line.map_err(io::Error::other)?;
        let (command, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match command {
            "upper" => text.to_uppercase(),
            "rev" => text.chars().rev().collect(),
            "quit" => {
                lines.send("bye").await.map_err(io::Error::other)?;
                break;
            }
            _ => format!("error: unknown command {command:?} (upper, rev, quit)"),
        };
        lines.send(reply).await.map_err(io::Error::other)?;
    }
    // Closing flushes and shuts the write half, so the peer sees the end.
    SinkExt::<String>::close(&mut lines)
        .await
        .map_err(io::Error::other)
}

/// Sends `lines` (a few samples if empty) and then `quit`, printing each answer.
async fn client(addr: SocketAddr, mut lines: Vec<String>) -> io::Result<()> {
    if lines.is_empty() {
        lines = ["upper hello, lines", "rev stressed", "shout"]
            .map(String::from)
            .to_vec();
    }
    lines.push("quit".to_string());
    let stream = TcpStream::connect(addr).await?;
    let mut framed = Framed::new(
        Compat::new(stream),
        LinesCodec::new_with_max_length(MAX_LINE),
    );
    for line in lines {
        framed.send(line.as_str()).await.map_err(io::Error::other)?;
        match framed.next().await {
            Some(reply) => println!("> {line}\n< {}", reply.map_err(io::Error::other)?),
            None => return Err(io::Error::other("the server closed the connection")),
        }
    }
    Ok(())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}
