//! hyper on the runtime's native hyper traits (feature `hyper`): `Compat<TcpStream>` as
//! hyper's I/O, `LocalExecutor` for HTTP/2, `CoreTimer` for hyper's timeouts.
//!
//! Many requests over one HTTP/1.1 keep-alive connection and over one HTTP/2
//! connection with 100 streams at once, each response checked; curl as the client
//! where it is installed; a client that goes away mid-request; a runtime shut down
//! with connections open. Every test counts the process's fds around its work.

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::rc::Rc;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use runtime::hyper::{CoreTimer, LocalExecutor};
use runtime::io::Compat;
use runtime::net::{TcpListener, TcpStream};
use tests::{open_fds, rt, settle_fds, within, TempDir};

/// Tests that count fds must not see the sockets of another test: one at a time.
static FDS: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    FDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Proto {
    H1,
    H2,
}

/// Answers each request with its path and then its body, so every response says
/// which request it answers.
async fn echo(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let mut out = request.uri().path().as_bytes().to_vec();
    let body = request.into_body().collect().await?.to_bytes();
    out.extend_from_slice(&body);
    Ok(Response::new(Full::new(Bytes::from(out))))
}

/// Serves `proto` on one connection; `Ok` when the peer closed it cleanly.
async fn serve(stream: TcpStream, proto: Proto) -> Result<(), hyper::Error> {
    stream.set_nodelay(true).unwrap();
    let io = Compat::new(stream);
    let service = hyper::service::service_fn(echo);
    match proto {
        Proto::H1 => {
            hyper::server::conn::http1::Builder::new()
                .timer(CoreTimer::new())
                .serve_connection(io, service)
                .await
        }
        Proto::H2 => {
            hyper::server::conn::http2::Builder::new(LocalExecutor::new())
                .timer(CoreTimer::new())
                .serve_connection(io, service)
                .await
        }
    }
}

/// A listener on this core whose accept loop serves every connection with `proto`;
/// the counter says how many connections it accepted, the receiver gets the end of
/// each connection.
/// The end of each served connection.
type Ends = runtime::channel::mpsc::Receiver<Result<(), hyper::Error>>;

fn server(proto: Proto) -> (SocketAddr, Rc<Cell<usize>>, Ends, runtime::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let count = accepted.clone();
    let (ended, ends) = runtime::channel::mpsc::unbounded();
    let accepting = runtime::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.set(count.get() + 1);
            let ended = ended.clone();
            runtime::spawn(async move {
                let _ = ended.send(serve(stream, proto).await);
            });
        }
    });
    (addr, accepted, ends, accepting)
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::new())
        .unwrap()
}

async fn body_of(response: Response<Incoming>) -> Vec<u8> {
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[test]
fn a_thousand_requests_over_one_http1_keep_alive_connection() {
    let _serial = serial();
    rt().block_on(within("1,000 HTTP/1.1 requests", async {
        let base = open_fds();
        let (addr, accepted, mut ends, accepting) = server(Proto::H1);
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(Compat::new(stream))
            .await
            .unwrap();
        let conn = runtime::spawn(conn);
        for i in 0..1000 {
            let path = format!("/{i}");
            let response = sender.send_request(get(&path)).await.unwrap();
            assert_eq!(body_of(response).await, path.as_bytes());
        }
        // A POST body goes through too.
        let post = Request::post("/post")
            .header(hyper::header::HOST, "localhost")
            .body(Full::new(Bytes::from(vec![7u8; 100_000])))
            .unwrap();
        let (mut sender, conn) = {
            drop(sender);
            conn.await.unwrap().unwrap();
            let stream = TcpStream::connect(addr).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(Compat::new(stream))
                .await
                .unwrap();
            (sender, runtime::spawn(conn))
        };
        let body = body_of(sender.send_request(post).await.unwrap()).await;
        assert_eq!(&body[..5], b"/post");
        assert!(body[5..].iter().all(|&b| b == 7) && body.len() == 100_005);
        drop(sender);
        conn.await.unwrap().unwrap();
        // The server saw both connections end cleanly.
        for _ in 0..2 {
            ends.recv().await.unwrap().unwrap();
        }
        assert_eq!(accepted.get(), 2);
        accepting.abort();
        let _ = accepting.await;
        assert_eq!(settle_fds(base).await, base, "fds left open");
    }));
}

#[test]
fn a_thousand_requests_over_one_http2_connection_100_at_a_time() {
    let _serial = serial();
    rt().block_on(within("1,000 HTTP/2 requests", async {
        let base = open_fds();
        let (addr, accepted, mut ends, accepting) = server(Proto::H2);
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::Builder::new(LocalExecutor::new())
            .timer(CoreTimer::new())
            .handshake(Compat::new(stream))
            .await
            .unwrap();
        let conn = runtime::spawn(conn);
        let in_flight = Rc::new(Cell::new(0usize));
        let most = Rc::new(Cell::new(0usize));
        let mut streams = Vec::new();
        for s in 0..100 {
            let mut sender = sender.clone();
            let (in_flight, most) = (in_flight.clone(), most.clone());
            streams.push(runtime::spawn(async move {
                for r in 0..10 {
                    let path = format!("/{s}/{r}");
                    in_flight.set(in_flight.get() + 1);
                    most.set(most.get().max(in_flight.get()));
                    sender.ready().await.unwrap();
                    let response = sender.send_request(get(&path)).await.unwrap();
                    let body = body_of(response).await;
                    in_flight.set(in_flight.get() - 1);
                    assert_eq!(body, path.as_bytes());
                }
            }));
        }
        for stream in streams {
            stream.await.unwrap();
        }
        assert_eq!(most.get(), 100, "100 requests were in flight at once");
        drop(sender);
        conn.await.unwrap().unwrap();
        ends.recv().await.unwrap().unwrap();
        assert_eq!(accepted.get(), 1, "every request went over one connection");
        accepting.abort();
        let _ = accepting.await;
        assert_eq!(settle_fds(base).await, base, "fds left open");
    }));
}

/// curl's version line and features, or why it cannot be used.
fn curl(feature: &str) -> Option<()> {
    match Command::new("curl").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains(feature) {
                Some(())
            } else {
                eprintln!("skipped: this curl has no {feature} support");
                None
            }
        }
        _ => {
            eprintln!("skipped: curl is not installed");
            None
        }
    }
}

/// Runs curl on a thread of its own (it blocks) and awaits its output.
async fn run_curl(args: Vec<String>) -> std::process::Output {
    let (done, output) = runtime::channel::oneshot();
    std::thread::spawn(move || {
        let _ = done.send(
            Command::new("curl")
                .args(&args)
                .output()
                .expect("curl runs"),
        );
    });
    output.await.expect("the curl thread reports")
}

fn curl_against_the_server(proto: Proto) {
    let feature = match proto {
        Proto::H1 => "HTTP",
        Proto::H2 => "HTTP2",
    };
    // Asking curl for its version opens pipes: not while another test counts fds.
    let _serial = serial();
    if curl(feature).is_none() {
        return;
    }
    rt().block_on(within("curl", async {
        let base = open_fds();
        let (addr, accepted, mut ends, accepting) = server(proto);
        let dir = TempDir::new("hyper-curl");
        // HTTP/1.1: 200 requests in one curl, over one keep-alive connection. HTTP/2:
        // curl 7.88 fails ("Error in the HTTP2 framing layer") to reuse a
        // prior-knowledge connection for a second transfer, whatever the server (h2load
        // and hyper's client run a thousand requests over one of ours), so one request
        // per curl, on a connection each.
        let (runs, per_run) = match proto {
            Proto::H1 => (1, 200),
            Proto::H2 => (20, 1),
        };
        for run in 0..runs {
            let mut args = vec!["--silent".to_string(), "--show-error".to_string()];
            if proto == Proto::H2 {
                args.push("--http2-prior-knowledge".into());
            }
            for i in run * per_run..(run + 1) * per_run {
                args.push(format!("http://{addr}/{i}"));
                args.push("--output".into());
                args.push(dir.join(&i.to_string()).display().to_string());
            }
            let out = run_curl(args).await;
            assert!(
                out.status.success(),
                "curl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            ends.recv().await.unwrap().unwrap();
        }
        for i in 0..runs * per_run {
            let body = std::fs::read(dir.join(&i.to_string())).unwrap();
            assert_eq!(body, format!("/{i}").as_bytes(), "the body of request {i}");
        }
        assert_eq!(accepted.get(), runs, "curl reused its connection");
        accepting.abort();
        let _ = accepting.await;
        assert_eq!(settle_fds(base).await, base, "fds left open");
    }));
}

#[test]
fn curl_http1_keep_alive() {
    curl_against_the_server(Proto::H1);
}

#[test]
fn curl_http2_prior_knowledge() {
    curl_against_the_server(Proto::H2);
}

#[test]
fn a_client_that_goes_away_mid_request_ends_its_connection() {
    let _serial = serial();
    rt().block_on(within("clients that leave", async {
        let base = open_fds();
        for proto in [Proto::H1, Proto::H2] {
            let (addr, accepted, mut ends, accepting) = server(proto);
            // Half a request, then gone.
            let stream = TcpStream::connect(addr).await.unwrap();
            let half: &[u8] = match proto {
                Proto::H1 => {
                    b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc"
                }
                Proto::H2 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00",
            };
            let (res, _) = stream.write_all(half.to_vec()).await;
            res.unwrap();
            drop(stream);
            let end = ends.recv().await.unwrap();
            if proto == Proto::H1 {
                assert!(end.is_err(), "the cut request is an error");
            }

            // A hyper client whose request body never ends, dropped while the server
            // waits for it.
            let stream = TcpStream::connect(addr).await.unwrap();
            let (tx, body) = channel_body();
            let request = Request::post("/slow")
                .header(hyper::header::HOST, "localhost")
                .body(body)
                .unwrap();
            match proto {
                Proto::H1 => {
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(Compat::new(stream))
                            .await
                            .unwrap();
                    let conn = runtime::spawn(conn);
                    let pending = runtime::spawn(async move { sender.send_request(request).await });
                    tx.send(Bytes::from_static(b"part")).unwrap();
                    pending.abort();
                    conn.abort();
                    let _ = conn.await;
                }
                Proto::H2 => {
                    let (mut sender, conn) = hyper::client::conn::http2::handshake(
                        LocalExecutor::new(),
                        Compat::new(stream),
                    )
                    .await
                    .unwrap();
                    let conn = runtime::spawn(conn);
                    let pending = runtime::spawn(async move { sender.send_request(request).await });
                    tx.send(Bytes::from_static(b"part")).unwrap();
                    pending.abort();
                    conn.abort();
                    let _ = conn.await;
                }
            }
            drop(tx);
            // The server's connection ends (with an error or not), it does not hang.
            let _ = ends.recv().await.unwrap();
            assert_eq!(accepted.get(), 2);
            accepting.abort();
            let _ = accepting.await;
        }
        assert_eq!(settle_fds(base).await, base, "fds left open");
    }));
}

#[test]
fn a_runtime_shut_down_with_connections_open_ends_and_closes_them() {
    let _serial = serial();
    let base = open_fds();
    for proto in [Proto::H1, Proto::H2] {
        // The runtime lives on a thread of its own, so a shutdown that hangs fails the
        // test instead of hanging it.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rt = runtime::Builder::new().cores(2).pin(false).build().unwrap();
            rt.block_on(within("open connections", async {
                let mut keep = Vec::new();
                // The server on core 1, the clients here on core 0: ten connections, one
                // request answered on each, then left open (and one request left waiting
                // on each HTTP/2 connection).
                let addr = runtime::spawn_on(1, move || async move {
                    let (addr, _, _, accepting) = server(proto);
                    // The server runs until the runtime goes.
                    drop(accepting);
                    addr
                })
                .await
                .unwrap();
                for _ in 0..10 {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    match proto {
                        Proto::H1 => {
                            let (mut sender, conn) =
                                hyper::client::conn::http1::handshake(Compat::new(stream))
                                    .await
                                    .unwrap();
                            drop(runtime::spawn(conn));
                            let response = sender.send_request(get("/open")).await.unwrap();
                            assert_eq!(body_of(response).await, b"/open");
                            keep.push(Box::new(sender) as Box<dyn std::any::Any>);
                        }
                        Proto::H2 => {
                            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                                LocalExecutor::new(),
                                Compat::new(stream),
                            )
                            .await
                            .unwrap();
                            drop(runtime::spawn(conn));
                            let response = sender.send_request(get("/open")).await.unwrap();
                            assert_eq!(body_of(response).await, b"/open");
                            keep.push(Box::new(sender) as Box<dyn std::any::Any>);
                        }
                    }
                }
                // The senders live in a task that never ends, so the connections stay open.
                drop(runtime::spawn(async move {
                    let _keep = keep;
                    std::future::pending::<()>().await
                }));
            }));
            // Shutdown cancels the connection tasks on both cores and closes their sockets.
            rt.shutdown();
            let _ = done.send(());
        });
        finished
            .recv_timeout(3 * tests::BOUND)
            .expect("the runtime shut down with connections open");
    }
    // Nothing the runtime owned is open any more.
    assert_eq!(open_fds(), base, "fds left open");
}

/// A request body fed through a channel: it ends when the sender is dropped.
struct ChannelBody(runtime::channel::mpsc::Receiver<Bytes>);

fn channel_body() -> (runtime::channel::mpsc::UnboundedSender<Bytes>, ChannelBody) {
    let (tx, rx) = runtime::channel::mpsc::unbounded();
    (tx, ChannelBody(rx))
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
    }
}
