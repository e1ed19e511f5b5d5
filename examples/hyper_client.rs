//! hyper's client on the runtime's native hyper traits (feature `hyper`): for HTTP/1.1
//! and then HTTP/2 (h2c with prior knowledge), one connection each, N GET requests in
//! turn; for each protocol it prints the first answer's status and body length, then
//! how long the requests took.
//!
//! Start a server (`cargo run --release --example hyper_server`), then
//! `cargo run --release --example hyper_client [-- http://127.0.0.1:8080/ --requests 10000 --only h1|h2]`.
//!
//! The connection is a `runtime::io::Compat<TcpStream>`. hyper's connection task
//! (`conn` below) does the reading and writing; it runs as a task of its own on this
//! core while the `SendRequest` half hands it requests. HTTP/2 spawns its own tasks
//! through `runtime::hyper::LocalExecutor`.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response, Uri};
use runtime::hyper::{CoreTimer, LocalExecutor};
use runtime::io::Compat;
use runtime::net::TcpStream;

struct Args {
    uri: Uri,
    requests: u64,
    h1: bool,
    h2: bool,
}

/// One side of a connection, whichever protocol it speaks.
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> hyper::Result<Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        }
    }
}

fn main() -> io::Result<()> {
    let args = parse_args()?;
    let mut rt = runtime::Builder::new().cores(1).build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> io::Result<()> {
    if args.h1 {
        run_one(&args.uri, args.requests, false).await?;
    }
    if args.h2 {
        run_one(&args.uri, args.requests, true).await?;
    }
    Ok(())
}

/// `requests` GETs of `uri` over one connection, HTTP/2 if `h2`.
async fn run_one(uri: &Uri, requests: u64, h2: bool) -> io::Result<()> {
    let name = if h2 { "HTTP/2" } else { "HTTP/1.1" };
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map_or_else(|| host.to_string(), |a| a.to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();

    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let io = Compat::new(stream);
    let (mut sender, conn) = if h2 {
        let (sender, conn) = http2::Builder::new(LocalExecutor::new())
            .timer(CoreTimer::new())
            .handshake(io)
            .await
            .map_err(io::Error::other)?;
        (Sender::H2(sender), runtime::spawn(conn))
    } else {
        let (sender, conn) = http1::handshake(io).await.map_err(io::Error::other)?;
        (Sender::H1(sender), runtime::spawn(conn))
    };

    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..requests {
        let request = Request::get(path.as_str())
            .header(hyper::header::HOST, authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(io::Error::other)?;
        let response = sender.send(request).await.map_err(io::Error::other)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        if i == 0 {
            println!("{name}: {status}, {} body bytes", body.len());
        }
        if !status.is_success() {
            return Err(io::Error::other(format!("request {i}: {status}")));
        }
        bytes += body.len();
    }
    let elapsed = start.elapsed();
    println!(
        "{name}: {requests} requests on one connection in {:.3} s ({:.0} requests/s, {bytes} body bytes)",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    // Dropping the sender lets the connection task finish.
    drop(sender);
    conn.await
        .map_err(|e| io::Error::other(format!("the connection task: {e:?}")))?
        .map_err(io::Error::other)
}

fn parse_args() -> io::Result<Args> {
    let mut parsed = Args {
        uri: Uri::from_static("http://127.0.0.1:8080/"),
        requests: 1000,
        h1: true,
        h2: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--requests" => {
                let v = args.next().unwrap_or_default();
                parsed.requests = v
                    .parse()
                    .map_err(|_| usage(&format!("bad request count {v:?}")))?;
            }
            "--only" => match args.next().as_deref() {
                Some("h1") => parsed.h2 = false,
                Some("h2") => parsed.h1 = false,
                other => return Err(usage(&format!("bad protocol {other:?}"))),
            },
            url if !url.starts_with("--") => {
                // A bare `host:port` means plain HTTP to it.
                let url = if url.contains("://") {
                    url.to_string()
                } else {
                    format!("http://{url}/")
                };
                parsed.uri = url
                    .parse()
                    .map_err(|e| usage(&format!("bad URL {url:?}: {e}")))?;
                if parsed.uri.scheme_str() != Some("http") {
                    return Err(usage("only http:// URLs are supported"));
                }
            }
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok(parsed)
}

fn usage(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{why}; usage: hyper_client [URL] [--requests N] [--only h1|h2]"),
    )
}
