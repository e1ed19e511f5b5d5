//! hyper's HTTP/1.1 client over `runtime::io::Compat`: one keep-alive connection, N
//! GET requests in turn, the first answer printed and then how long they all took.
//!
//! Start a server (`cargo run --release --example hyper_server`, or `hello`), then
//! `cargo run --release --example hyper_client [-- http://127.0.0.1:8080/ --requests 10000]`.
//!
//! hyper's connection task (`conn` below) does the reading and writing; it runs as a
//! task of its own on this core while the `SendRequest` half hands it requests.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use runtime::io::Compat;
use runtime::net::TcpStream;

struct Args {
    uri: Uri,
    requests: u64,
}

fn main() -> io::Result<()> {
    let args = parse_args()?;
    let mut rt = runtime::Builder::new().cores(1).build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> io::Result<()> {
    let Args { uri, requests } = args;
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map_or_else(|| host.to_string(), |a| a.to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();

    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(Compat::new(stream)))
        .await
        .map_err(io::Error::other)?;
    let conn = runtime::spawn(conn);

    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..requests {
        let request = Request::get(path.as_str())
            .header(hyper::header::HOST, authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(io::Error::other)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        if i == 0 {
            println!("{status}");
            println!("{}", String::from_utf8_lossy(&body));
        }
        if !status.is_success() {
            return Err(io::Error::other(format!("request {i}: {status}")));
        }
        bytes += body.len();
    }
    let elapsed = start.elapsed();
    println!(
        "{requests} requests on one connection in {:.3} s ({:.0} requests/s, {bytes} body bytes)",
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
        format!("{why}; usage: hyper_client [URL] [--requests N]"),
    )
}
