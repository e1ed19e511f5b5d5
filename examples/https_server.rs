//! HTTPS on every core: at start it makes a self-signed certificate for `localhost`
//! and `127.0.0.1`, binds one listener per core on one port
//! (`TcpListener::bind_per_core`), and serves each connection in a task of its own:
//! a TLS handshake (rustls on the `ring` provider, through tokio-rustls), then hyper's
//! HTTP/2 if ALPN chose `h2`, or HTTP/1.1 with keep-alive otherwise. `GET /` answers
//! `hello over HTTP/2` (or `HTTP/1.1`); other paths get `404`, other methods `405`.
//! A handshake that fails or does not finish within 10 s (`--handshake-timeout`; a
//! plain-HTTP client, garbage, a silent peer) closes only that connection. An HTTP/2
//! connection pings its peer every 20 s and closes if no answer comes within 20 s;
//! an HTTP/1.1 one closes when the next request's headers take longer than hyper's
//! 30 s. Ctrl-C stops it.
//!
//! `cargo run --release --example https_server [-- --port 8443 --cores N]`, then
//! `curl -k https://127.0.0.1:8443/` or `curl -k --http2 https://localhost:8443/`
//! (`-k`: the certificate is self-signed, new at every start).
//!
//! The layers: `runtime::io::Compat<TcpStream>` gives the socket tokio's
//! `AsyncRead`/`AsyncWrite`, tokio-rustls runs TLS over them, and hyper-util's
//! `TokioIo` turns the TLS stream into `hyper::rt::Read`/`Write`. HTTP/2's streams
//! run on this core through `runtime::hyper::LocalExecutor`, hyper's timeouts on
//! `runtime::hyper::CoreTimer`.

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use runtime::hyper::{CoreTimer, LocalExecutor};
use runtime::io::Compat;
use runtime::net::{TcpListener, TcpStream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

const USAGE: &str = "usage: https_server [--port PORT] [--cores N] [--handshake-timeout SECONDS]";

/// How long a client has to finish its TLS handshake, unless `--handshake-timeout`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an HTTP/2 connection pings its peer, and how long it waits for the
/// answer before it closes the connection (a peer that vanished without a FIN).
const H2_PING: Duration = Duration::from_secs(20);

struct Args {
    port: u16,
    cores: Option<usize>,
    handshake_timeout: Duration,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let args = parse_args()?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config()?));
    let mut builder = runtime::Builder::new();
    if let Some(cores) = args.cores {
        builder = builder.cores(cores);
    }
    let mut rt = builder.build()?;
    let cores = rt.handle().core_count();
    let listeners = TcpListener::bind_per_core(("127.0.0.1", args.port), cores)
        .map_err(|e| io::Error::new(e.kind(), format!("could not listen: {e}")))?;
    let port = listeners.local_addr().port();
    let plural = if cores == 1 { "core" } else { "cores" };
    println!("listening on https://127.0.0.1:{port}/ on {cores} {plural}; Ctrl-C stops");
    io::Write::flush(&mut io::stdout())?;

    let handshake = args.handshake_timeout;
    let served =
        rt.run_on_all(move |core| serve(listeners.take(core), acceptor.clone(), handshake));
    let mut total = 0;
    for (core, served) in served.into_iter().enumerate() {
        let served = served.map_err(|e| io::Error::new(e.kind(), format!("core {core}: {e}")))?;
        println!("core {core}: {served} requests");
        total += served;
    }
    println!("stopped after {total} requests");
    Ok(())
}

/// A server configuration with a new self-signed certificate for `localhost` and
/// `127.0.0.1`, offering `h2` and `http/1.1` by ALPN.
fn tls_config() -> io::Result<rustls::ServerConfig> {
    let names = vec![String::from("localhost"), String::from("127.0.0.1")];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| io::Error::other(format!("making a certificate: {e}")))?;
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key))
        .map_err(|e| io::Error::other(format!("TLS configuration: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves on this core until Ctrl-C; returns how many requests it answered.
async fn serve(
    listener: io::Result<TcpListener>,
    acceptor: TlsAcceptor,
    handshake: Duration,
) -> io::Result<u64> {
    let listener = listener?;
    // Made before the accept loop starts, so an early Ctrl-C is not missed.
    let stop = runtime::signal::ctrl_c();
    let served = Rc::new(Cell::new(0u64));
    let count = served.clone();
    let accepting = runtime::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    let acceptor = acceptor.clone();
                    runtime::spawn(connection(stream, acceptor, handshake, count.clone()));
                }
                // Out of fds, say: go on after a pause rather than spin.
                Err(e) => {
                    eprintln!("accept: {e}");
                    runtime::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    stop.await?;
    // Open connections end when the runtime shuts down.
    accepting.abort();
    Ok(served.get())
}

/// One connection: the handshake, then HTTP/2 or HTTP/1.1 as ALPN decided, until the
/// peer closes it.
async fn connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    handshake: Duration,
    served: Rc<Cell<u64>>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("set_nodelay: {e}");
    }
    // A failed handshake is the client's problem (plain HTTP, garbage, an unknown
    // CA on its side): rustls has sent its alert, and dropping the stream closes it.
    let tls = match runtime::time::timeout(handshake, acceptor.accept(Compat::new(stream))).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) | Err(_) => return,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let service = service_fn(move |request: Request<Incoming>| {
        served.set(served.get() + 1);
        hello(request)
    });
    let io = TokioIo::new(tls);
    // A connection's error (a reset peer, a malformed request) ends only it.
    let result = if h2 {
        http2::Builder::new(LocalExecutor::new())
            .timer(CoreTimer::new())
            .keep_alive_interval(H2_PING)
            .keep_alive_timeout(H2_PING)
            .serve_connection(io, service)
            .await
    } else {
        http1::Builder::new()
            .timer(CoreTimer::new())
            .keep_alive(true)
            .serve_connection(io, service)
            .await
    };
    if let Err(e) = result {
        if !peer_went_away(&e) {
            eprintln!("connection: {e}");
        }
    }
}

/// Whether `e` only says the peer closed or reset the connection: not worth a line.
fn peer_went_away(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(e) = source {
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

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = if request.uri().path() != "/" {
        (StatusCode::NOT_FOUND, String::from("not found\n"))
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, String::from("only GET\n"))
    } else {
        let version = match request.version() {
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP",
        };
        (StatusCode::OK, format!("hello over {version}\n"))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

fn parse_args() -> io::Result<Args> {
    let mut parsed = Args {
        port: 8443,
        cores: None,
        handshake_timeout: HANDSHAKE_TIMEOUT,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(v)) => {
                parsed.port = v.parse().map_err(|_| usage(&format!("bad port {v:?}")))?;
            }
            ("--cores", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => parsed.cores = Some(n),
                _ => return Err(usage(&format!("bad core count {v:?}"))),
            },
            ("--handshake-timeout", Some(v)) => match v.parse::<f64>() {
                Ok(secs) if secs > 0.0 && secs <= 3600.0 => {
                    parsed.handshake_timeout = Duration::from_secs_f64(secs);
                }
                _ => return Err(usage(&format!("bad handshake timeout {v:?}"))),
            },
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok(parsed)
}

fn usage(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{why}; {USAGE}"))
}
