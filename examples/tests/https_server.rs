//! The `https_server` example end to end: the test starts the real binary (`--port 0`;
//! the address is read from its first line of output) and talks to it as clients
//! would: rustls with ALPN `http/1.1` (two requests on one connection) and `h2` (hyper's
//! client on tokio's current_thread runtime), a plain-HTTP client and garbage (closed,
//! without harm to the next client), curl where installed, and Ctrl-C. Every wait is
//! bounded, so a server that hangs fails the test; the server is killed at the end
//! even when an assertion fails.
//!
//! The binary is found as `hello_http` finds `hello`: `cargo test -p examples` builds
//! it into `examples/` of the profile's directory, beside this test's `deps/`.

#[path = "support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use example_bin::example;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const BOUND: Duration = Duration::from_secs(20);

/// The running server, killed when dropped; `lines` has what it prints.
struct Server {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `https_server` on `cores` cores and waits for its address.
fn start_server(cores: usize) -> Server {
    start_server_with(cores, &[])
}

/// Starts `https_server` on `cores` cores with `extra` arguments.
fn start_server_with(cores: usize, extra: &[&str]) -> Server {
    let mut child = Command::new(example("https_server"))
        .args(["--port", "0", "--cores", &cores.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("https_server starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        lines,
    };
    let line = server
        .lines
        .recv_timeout(BOUND)
        .expect("https_server prints its address");
    let plural = if cores == 1 { "core" } else { "cores" };
    assert!(
        line.ends_with(&format!("/ on {cores} {plural}; Ctrl-C stops")),
        "unexpected first line {line:?}"
    );
    server.addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("https://"))
        .and_then(|w| w.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    server
}

/// Test-only: accepts any certificate (the server's is self-signed and new at every
/// start), but still checks that the handshake is signed by the certificate's key, so
/// the TLS exchange itself is verified. Never use this outside a test.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

fn connector(alpn: &[&[u8]]) -> TlsConnector {
    let provider: CryptoProvider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to the server offering `alpn`; returns it with the protocol the
/// server chose.
async fn tls_connect(
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> (TlsStream<tokio::net::TcpStream>, Option<Vec<u8>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = connector(alpn)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let chosen = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (tls, chosen)
}

/// Runs `test` on a tokio current_thread runtime, bounded.
fn block_on<F: std::future::Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async { tokio::time::timeout(BOUND, test).await })
        .unwrap_or_else(|_| panic!("not done after {BOUND:?}"))
}

fn get(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::new())
        .unwrap()
}

async fn answer(
    response: hyper::Result<hyper::Response<hyper::body::Incoming>>,
) -> (StatusCode, String) {
    let response = response.expect("an answer");
    let status = response.status();
    let body = response.into_body().collect().await.expect("the body");
    (
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    )
}

/// Two requests over HTTP/1.1 on one TLS connection; returns what they got.
async fn http1_twice(addr: SocketAddr) -> Vec<(StatusCode, String)> {
    let (tls, chosen) = tls_connect(addr, &[b"http/1.1"]).await;
    assert_eq!(chosen.as_deref(), Some(&b"http/1.1"[..]), "ALPN");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let mut answers = Vec::new();
    for _ in 0..2 {
        sender.ready().await.expect("the connection stays open");
        answers.push(answer(sender.send_request(get("/")).await).await);
    }
    answers
}

#[test]
fn http1_by_alpn_answers_two_requests_on_one_connection() {
    let server = start_server(2);
    let answers = block_on(http1_twice(server.addr));
    let hello = (StatusCode::OK, String::from("hello over HTTP/1.1\n"));
    assert_eq!(answers, [hello.clone(), hello]);
}

#[test]
fn http2_by_alpn_answers_on_one_connection() {
    let server = start_server(2);
    let answers = block_on(async {
        let (tls, chosen) = tls_connect(server.addr, &[b"h2", b"http/1.1"]).await;
        assert_eq!(chosen.as_deref(), Some(&b"h2"[..]), "ALPN");
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        let mut answers = Vec::new();
        for path in ["/", "/", "/missing"] {
            let uri = format!("https://localhost{path}");
            answers.push(answer(sender.send_request(get(&uri)).await).await);
        }
        answers
    });
    let hello = (StatusCode::OK, String::from("hello over HTTP/2\n"));
    let missing = (StatusCode::NOT_FOUND, String::from("not found\n"));
    assert_eq!(answers, [hello.clone(), hello, missing]);
}

/// Sends `bytes` over plain TCP and reads until the server closes the connection;
/// returns what it read.
fn send_plain(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.write_all(bytes).expect("send");
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        // Closed with unread bytes of ours: a reset, which is a close too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
    got
}

#[test]
fn plain_http_and_garbage_are_closed_and_the_next_tls_client_is_served() {
    let server = start_server(1);
    let plain = send_plain(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !plain.starts_with(b"HTTP/"),
        "a plain-HTTP client got an HTTP answer: {:?}",
        String::from_utf8_lossy(&plain)
    );
    send_plain(server.addr, &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3]);
    send_plain(server.addr, &[0xaa; 4096]);
    // One that gives up at once, before its first byte.
    drop(std::net::TcpStream::connect(server.addr).expect("connect"));

    let answers = block_on(http1_twice(server.addr));
    assert_eq!(answers[0], (StatusCode::OK, "hello over HTTP/1.1\n".into()));
}

#[test]
fn a_silent_client_is_closed_after_the_handshake_timeout_and_not_before() {
    let server = start_server_with(1, &["--handshake-timeout", "1"]);
    let start = std::time::Instant::now();
    let silent = std::net::TcpStream::connect(server.addr).expect("connect");
    // While it sits there, another client is served on the same core.
    let answers = block_on(http1_twice(server.addr));
    assert_eq!(answers[0], (StatusCode::OK, "hello over HTTP/1.1\n".into()));
    let mut silent = silent;
    silent.set_read_timeout(Some(BOUND)).unwrap();
    let mut got = Vec::new();
    match silent.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the silent connection was not closed: {e}"),
    }
    let waited = start.elapsed();
    assert!(got.is_empty(), "the server sent {got:?} to a silent client");
    assert!(
        waited >= Duration::from_secs(1),
        "closed after {waited:?}, before the 1 s handshake timeout"
    );
    // Not the default 10 s either: the option took effect.
    assert!(
        waited < Duration::from_secs(6),
        "closed only after {waited:?}, with a 1 s handshake timeout"
    );
}

#[test]
fn ctrl_c_stops_the_server_cleanly() {
    let mut server = start_server(2);
    block_on(http1_twice(server.addr));
    let interrupted = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let mut rest = Vec::new();
    // The reader thread ends the channel when the server's stdout closes.
    while let Ok(line) = server.lines.recv_timeout(BOUND) {
        rest.push(line);
    }
    assert_eq!(
        rest.last().map(String::as_str),
        Some("stopped after 2 requests"),
        "{rest:?}"
    );
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
}

/// Runs a command to its end, bounded.
fn run(command: &mut Command) -> std::process::Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("process {id} still running after {BOUND:?}"))
        .expect("wait")
}

#[test]
fn curl_gets_hello_over_http1_and_http2() {
    let Ok(version) = Command::new("curl").arg("--version").output() else {
        eprintln!("skipped: curl is not installed");
        return;
    };
    let features = String::from_utf8_lossy(&version.stdout).into_owned();
    if !features.contains("SSL") {
        eprintln!("skipped: this curl has no TLS");
        return;
    }
    let server = start_server(2);
    let url = format!("https://{}/", server.addr);
    let mut cases = vec![("--http1.1", "hello over HTTP/1.1\n 1.1")];
    if features.contains("HTTP2") {
        cases.push(("--http2", "hello over HTTP/2\n 2"));
    } else {
        eprintln!("--http2 skipped: this curl has no HTTP/2");
    }
    for (flag, want) in cases {
        let out = run(Command::new("curl")
            .args(["--insecure", "--silent", "--show-error", flag])
            .args(["--write-out", " %{http_version}", &url]));
        assert!(
            out.status.success(),
            "curl {flag} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "curl {flag}");
    }
}
