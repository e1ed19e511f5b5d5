//! hyper's HTTP/1.1 server, the same service on two runtimes:
//!
//! - `hyper-ours`: `runtime` on one core (`Builder::new().cores(1)`), connections
//!   from the listener's multishot accept, each served by
//!   `http1::Builder::serve_connection` over `Compat<TcpStream>` (hyper's own I/O
//!   traits, feature `hyper`: one adapter, no `TokioIo`) in a task spawned with
//!   `runtime::spawn`;
//! - `hyper-tokio-ct`: tokio's current-thread runtime with a `LocalSet`,
//!   `tokio::net` sockets, `TokioIo<TcpStream>`, a task per connection spawned with
//!   `spawn_local`.
//!
//! Both send exactly [`RESPONSE`](super::http::RESPONSE): the service sets
//! `Content-Length` and `Content-Type` in that order, hyper writes header names in
//! title case and leaves out its `Date` header. Apart from that, hyper runs with its
//! defaults. HTTP only: there is no hyper echo server.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;

use bytes::Bytes;
use futures_core::Stream;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use runtime::io::Compat;

use super::Protocol;

/// The body of every response.
const BODY: &[u8] = b"Hello, world!";

/// Serves HTTP with hyper on `runtime` until killed; calls `listening` once bound.
pub fn serve_ours(protocol: Protocol, addr: SocketAddr, listening: &dyn Fn()) -> io::Result<()> {
    http_only(protocol)?;
    let mut rt = runtime::Builder::new().cores(1).build()?;
    rt.block_on(async move {
        let listener = runtime::net::TcpListener::bind(addr)?;
        listening();
        let mut incoming = pin!(listener.incoming());
        while let Some(stream) = poll_fn(|cx| incoming.as_mut().poll_next(cx)).await {
            let stream = stream?;
            stream.set_nodelay(true)?;
            runtime::spawn(connection(Compat::new(stream)));
        }
        Err(io::Error::other("the listener's accept stream ended"))
    })
}

/// Serves HTTP with hyper on tokio's current-thread runtime until killed; calls
/// `listening` once bound.
pub fn serve_tokio_ct(
    protocol: Protocol,
    addr: SocketAddr,
    listening: &dyn Fn(),
) -> io::Result<()> {
    http_only(protocol)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        listening();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::task::spawn_local(connection(TokioIo::new(stream)));
        }
    })
}

/// Serves one connection until the peer closes it. A connection's error (a reset)
/// ends that connection only.
async fn connection<I: Read + Write + Unpin + 'static>(io: I) {
    let _ = http1::Builder::new()
        .title_case_headers(true)
        .auto_date_header(false)
        .serve_connection(io, service_fn(hello))
        .await;
}

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(BODY.len()));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

fn http_only(protocol: Protocol) -> io::Result<()> {
    match protocol {
        Protocol::Http => Ok(()),
        Protocol::Echo => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the hyper servers serve HTTP only",
        )),
    }
}
