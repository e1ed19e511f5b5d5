//! hyper's HTTP/1.1 and HTTP/2 server on every core, on the runtime's native hyper
//! traits (feature `hyper`): every core listens on one port
//! (`TcpListener::bind_per_core`; a port another program holds is an error), accepts
//! its share of the connections, and serves each in a task of its own with hyper-util's
//! `auto` connection, which reads the first bytes and speaks HTTP/2 to a client that
//! opens with the HTTP/2 preface (h2c with prior knowledge), HTTP/1.1 to any other.
//! Every request gets `Hello, world!`. Ctrl-C stops it and prints how many requests
//! each core answered.
//!
//! `cargo run --release --example hyper_server [-- --port 8080 --host 127.0.0.1 --cores N]`,
//! then `curl http://127.0.0.1:8080/`, `curl --http2-prior-knowledge http://127.0.0.1:8080/`,
//! `wrk http://127.0.0.1:8080/`, `h2load -n 10000 -m 100 http://127.0.0.1:8080/` or
//! `cargo run --release --example hyper_client`.
//!
//! The connection is a `runtime::io::Compat<TcpStream>`, which implements
//! `hyper::rt::Read` and `Write` itself; HTTP/2's streams run on this core through
//! `runtime::hyper::LocalExecutor`, and hyper's timeouts on `runtime::hyper::CoreTimer`.

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;
use runtime::hyper::{CoreTimer, LocalExecutor};
use runtime::io::Compat;
use runtime::net::{TcpListener, TcpStream};

struct Args {
    host: String,
    port: u16,
    cores: Option<usize>,
}

fn main() -> io::Result<()> {
    let args = parse_args()?;
    let mut builder = runtime::Builder::new();
    if let Some(cores) = args.cores {
        builder = builder.cores(cores);
    }
    let mut rt = builder.build()?;
    // One call for every core: port 0 picks one port they all share.
    let listeners =
        TcpListener::bind_per_core((args.host.as_str(), args.port), rt.handle().core_count())?;
    let addr = listeners.local_addr();
    let cores = rt.handle().core_count();
    println!(
        "listening on http://{addr}/ on {cores} core{}; Ctrl-C stops",
        if cores == 1 { "" } else { "s" }
    );

    let served = rt.run_on_all(move |core| serve(listeners.take(core)));
    let mut total = 0;
    for (core, served) in served.into_iter().enumerate() {
        let served = served?;
        println!("core {core}: {served} requests");
        total += served;
    }
    println!("stopped after {total} requests");
    Ok(())
}

/// Serves on this core until Ctrl-C; returns how many requests it answered.
async fn serve(listener: io::Result<TcpListener>) -> io::Result<u64> {
    let listener = listener?;
    // Made before the accept loop starts, so an early Ctrl-C is not missed.
    let stop = runtime::signal::ctrl_c();
    let served = Rc::new(Cell::new(0u64));
    let count = served.clone();
    let accepting = runtime::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    runtime::spawn(connection(stream, count.clone()));
                }
                // Out of fds, say: go on after a pause rather than spin.
                Err(e) => {
                    eprintln!("accept: {e}");
                    runtime::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
    stop.await?;
    // Open connections end when the runtime shuts down.
    accepting.abort();
    Ok(served.get())
}

/// One connection, served by hyper until the peer closes it.
async fn connection(stream: TcpStream, served: Rc<Cell<u64>>) {
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("set_nodelay: {e}");
    }
    let service = service_fn(move |request: Request<Incoming>| {
        served.set(served.get() + 1);
        hello(request)
    });
    let mut builder = auto::Builder::new(LocalExecutor::new());
    builder.http1().timer(CoreTimer::new());
    builder.http2().timer(CoreTimer::new());
    // A connection's error (a reset peer, a malformed request) ends only it.
    if let Err(e) = builder.serve_connection(Compat::new(stream), service).await {
        if !peer_went_away(&*e) {
            eprintln!("connection: {e}");
        }
    }
}

/// Whether `e` only says the peer closed or reset the connection: not worth a line.
/// (Shutting down a socket the peer has reset fails with `ENOTCONN`.)
fn peer_went_away(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_incomplete_message() {
                return true;
            }
        }
        if let Some(e) = e.downcast_ref::<io::Error>() {
            if matches!(
                e.kind(),
                io::ErrorKind::NotConnected
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, world!")));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

fn parse_args() -> io::Result<Args> {
    let mut parsed = Args {
        host: String::from("127.0.0.1"),
        port: 8080,
        cores: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(v)) => {
                parsed.port = v.parse().map_err(|_| usage(&format!("bad port {v:?}")))?;
            }
            ("--host", Some(v)) => parsed.host = v,
            ("--cores", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => parsed.cores = Some(n),
                _ => return Err(usage(&format!("bad core count {v:?}"))),
            },
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok(parsed)
}

fn usage(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{why}; usage: hyper_server [--port PORT] [--host ADDRESS] [--cores N]"),
    )
}
