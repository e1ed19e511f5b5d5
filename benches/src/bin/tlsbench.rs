//! `tlsbench`: HTTPS on our runtime (the `https_server` example, one core) against the
//! same stack on tokio's current-thread runtime (rustls on `ring` through
//! tokio-rustls, hyper's HTTP/1.1 with keep-alive, the same certificate kind and
//! ALPN). Each server runs pinned to CPU 0 (`taskset -c 0`); the client runs here,
//! pinned to CPU 1, on tokio's current-thread runtime with `CONNS` connections at once.
//!
//! Two workloads per server and round, the servers interleaved (their order swaps
//! every round):
//! - **handshakes**: each connection does a full TLS handshake (TLS 1.3, no resumption),
//!   one `GET /`, and closes; counted per completed exchange.
//! - **requests**: `CONNS` keep-alive connections, sequential `GET /` on each.
//!
//! Reported per round: the rate, the server's CPU use (from `/proc/<pid>/stat`), and
//! the ratio ours / tokio of work per server CPU-second, which does not depend on the
//! client keeping up.
//!
//! `cargo build -p examples --release --example https_server`, then
//! `cargo run -p benches --release --bin tlsbench [-- ROUNDS SECONDS]` (3 rounds of 3 s).
//! `tlsbench serve-tokio` is the tokio server alone.

use std::convert::Infallible;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

const CONNS: usize = 16;
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-tokio") {
        return serve_tokio();
    }
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let window = Duration::from_secs(secs);
    let ours = example_path("https_server")?;
    let me = std::env::current_exe()?;

    if let Some(cpu) =
        core_affinity::get_core_ids().and_then(|ids| ids.into_iter().find(|c| c.id == CLIENT_CPU))
    {
        core_affinity::set_for_current(cpu);
    }
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    println!("{CONNS} connections, {secs} s per measurement, server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}");
    println!("| round | workload | ours /s (server CPU) | tokio-ct /s (server CPU) | per server CPU-s, ours / tokio-ct |");
    println!("|---|---|---|---|---|");
    for round in 1..=rounds {
        let mut results = Vec::new();
        for workload in [Workload::Handshakes, Workload::Requests] {
            let mut pair = [None, None];
            let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
            for which in order {
                let mut command = Command::new("taskset");
                command.args(["-c", &SERVER_CPU.to_string()]);
                if which == 0 {
                    command.arg(&ours).args(["--port", "0", "--cores", "1"]);
                } else {
                    command.arg(&me).arg("serve-tokio");
                }
                let server = Server::start(&mut command)?;
                pair[which] = Some(client.block_on(measure(&server, workload, window))?);
            }
            results.push((workload, pair[0].unwrap(), pair[1].unwrap()));
        }
        for (workload, ours, tokio) in results {
            println!(
                "| {round} | {} | {:.0} ({:.0}%) | {:.0} ({:.0}%) | {:.2}x |",
                workload.name(),
                ours.rate,
                ours.cpu * 100.0,
                tokio.rate,
                tokio.cpu * 100.0,
                ours.per_cpu() / tokio.per_cpu()
            );
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Workload {
    Handshakes,
    Requests,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Handshakes => "handshake + 1 GET",
            Workload::Requests => "keep-alive GETs",
        }
    }
}

#[derive(Clone, Copy)]
struct Measured {
    /// Exchanges per second.
    rate: f64,
    /// Server CPU-seconds per second.
    cpu: f64,
}

impl Measured {
    fn per_cpu(self) -> f64 {
        self.rate / self.cpu
    }
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(command: &mut Command) -> io::Result<Server> {
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https://"))
            .and_then(|w| w.trim_end_matches('/').parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            return Err(io::Error::other(format!("no address in {line:?}")));
        };
        Ok(Server { child, addr })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of `pid` so far.
fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Ok(Duration::from_millis((u + s) * 10)),
        _ => Err(io::Error::other(format!("unexpected /proc/{pid}/stat"))),
    }
}

async fn measure(server: &Server, workload: Workload, window: Duration) -> io::Result<Measured> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config()));
    // Warm up, then measure.
    run_load(
        server.addr,
        &connector,
        workload,
        Duration::from_millis(500),
    )
    .await?;
    let cpu_before = cpu_time(server.child.id())?;
    let start = Instant::now();
    let done = run_load(server.addr, &connector, workload, window).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (cpu_time(server.child.id())? - cpu_before).as_secs_f64();
    Ok(Measured {
        rate: done as f64 / elapsed,
        cpu: cpu / elapsed,
    })
}

/// `CONNS` clients for `window`; returns the exchanges they completed.
async fn run_load(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    workload: Workload,
    window: Duration,
) -> io::Result<u64> {
    let deadline = Instant::now() + window;
    let local = tokio::task::LocalSet::new();
    let counts = Rc::new(std::cell::Cell::new(0u64));
    for _ in 0..CONNS {
        let connector = connector.clone();
        let counts = counts.clone();
        local.spawn_local(async move {
            while Instant::now() < deadline {
                let Ok(mut sender) = connect(addr, &connector).await else {
                    return;
                };
                loop {
                    if sender.ready().await.is_err() || get(&mut sender).await.is_err() {
                        break;
                    }
                    counts.set(counts.get() + 1);
                    if matches!(workload, Workload::Handshakes) || Instant::now() >= deadline {
                        break;
                    }
                }
            }
        });
    }
    local.await;
    Ok(counts.get())
}

async fn connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> io::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(io::Error::other)?;
    tokio::task::spawn_local(connection);
    Ok(sender)
}

async fn get(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> io::Result<()> {
    let request = Request::get("/")
        .header(hyper::header::HOST, "localhost")
        .body(Empty::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    if !response.status().is_success() {
        return Err(io::Error::other(format!("status {}", response.status())));
    }
    response
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?;
    Ok(())
}

/// Accepts the servers' self-signed certificates; checks the handshake signatures.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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

fn client_config() -> rustls::ClientConfig {
    let provider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Full handshakes every time: no session resumption.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The `https_server` example's release binary.
fn example_path(name: &str) -> io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let exe = me
        .parent()
        .map(|dir| dir.join("examples").join(name))
        .ok_or_else(|| io::Error::other("no directory for the binary"))?;
    if !exe.exists() {
        return Err(io::Error::other(format!(
            "{}: missing; `cargo build -p examples --release --example {name}`",
            exe.display()
        )));
    }
    Ok(exe)
}

/// The same stack as `https_server` on tokio's current-thread runtime: a new
/// self-signed certificate, ALPN `h2` and `http/1.1` (the bench asks for HTTP/1.1),
/// hyper's HTTP/1.1 with keep-alive and a timer (for its header-read timeout, as
/// `https_server` has), the same response.
fn serve_tokio() -> io::Result<()> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(io::Error::other)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(vec![certified.cert.der().clone()], key)
        })
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        println!("listening on https://127.0.0.1:{port}/ on 1 core (tokio)");
        io::Write::flush(&mut io::stdout())?;
        loop {
            let (stream, _) = listener.accept().await?;
            let acceptor = acceptor.clone();
            tokio::task::spawn_local(async move {
                let _ = stream.set_nodelay(true);
                // The handshake bound `https_server` has too.
                let handshake = acceptor.accept(stream);
                let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), handshake).await
                else {
                    return;
                };
                let service = hyper::service::service_fn(hello);
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"hello over HTTP/1.1\n")));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}
