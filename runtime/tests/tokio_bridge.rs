//! The tokio bridge (features `tokio-bridge` and `hyper`): reqwest, a tokio-bound
//! client, awaited from our tasks against a hyper server on our runtime, with no tokio
//! runtime started by hand.
//!
//! GET and POST round-trip; a pooled client keeps one connection for many requests; a
//! client timeout fires, and never early; a request dropped mid-flight leaves the
//! client usable; a runtime shut down with a request in flight does not hang;
//! `tokio::spawn`, `tokio::time::sleep` and `spawn_blocking` work from a task, and a
//! tokio task can spawn one of ours; a core that never parks still finishes a request;
//! every core has its own tokio runtime; `Runtime::block_on` inside a tokio runtime
//! does not panic. The suite runs on both backends (`RUNTIME_BACKEND=epoll`).

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use runtime::hyper::CoreTimer;
use runtime::io::Compat;
use runtime::net::TcpListener;

/// How long a test may wait for anything before it fails instead of hanging.
const BOUND: Duration = Duration::from_secs(10);

fn rt() -> runtime::Runtime {
    cores(1)
}

fn cores(n: usize) -> runtime::Runtime {
    runtime::Builder::new()
        .cores(n)
        .pin(false)
        .build()
        .expect("the runtime starts")
}

/// Awaits `future` for at most [`BOUND`]; a bug that would hang fails instead.
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match runtime::time::timeout(BOUND, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: still waiting after {BOUND:?}"),
    }
}

/// `GET /` answers "hello", `POST /echo` its body, and `/silent` never answers.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    match request.uri().path() {
        "/echo" => {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            Ok(Response::new(Full::new(body)))
        }
        "/silent" => std::future::pending().await,
        _ => Ok(Response::new(Full::new(Bytes::from_static(b"hello")))),
    }
}

/// A hyper HTTP/1.1 server on this core; the counter says how many connections it
/// accepted.
fn server() -> (SocketAddr, Rc<Cell<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let count = accepted.clone();
    runtime::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.set(count.get() + 1);
            runtime::spawn(async move {
                stream.set_nodelay(true).unwrap();
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(CoreTimer::new())
                    .serve_connection(Compat::new(stream), hyper::service::service_fn(handle))
                    .await;
            });
        }
    });
    (addr, accepted)
}

#[test]
fn get_and_post_round_trip() {
    rt().block_on(async {
        let (addr, _) = server();
        let response = within("GET", reqwest::get(format!("http://{addr}/")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(within("GET body", response.text()).await.unwrap(), "hello");

        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let client = reqwest::Client::new();
        let response = within(
            "POST",
            client
                .post(format!("http://{addr}/echo"))
                .body(body.clone())
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        let echoed = within("POST body", response.bytes()).await.unwrap();
        assert!(echoed[..] == body[..], "the body came back changed");
    });
}

#[test]
fn a_pooled_client_keeps_one_connection() {
    rt().block_on(async {
        let (addr, accepted) = server();
        let client = reqwest::Client::new();
        for i in 0..200 {
            let response = within("GET", client.get(format!("http://{addr}/")).send())
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "request {i}");
            assert_eq!(within("body", response.text()).await.unwrap(), "hello");
        }
        assert_eq!(
            accepted.get(),
            1,
            "200 requests over one keep-alive connection"
        );
    });
}

#[test]
fn a_client_timeout_fires_and_never_early() {
    rt().block_on(async {
        let (addr, _) = server();
        let timeout = Duration::from_millis(150);
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
        let start = Instant::now();
        let error = within(
            "timeout",
            client.get(format!("http://{addr}/silent")).send(),
        )
        .await
        .expect_err("the server never answers");
        let elapsed = start.elapsed();
        assert!(error.is_timeout(), "{error}");
        assert!(
            elapsed >= timeout,
            "fired after {elapsed:?}, before {timeout:?}"
        );
    });
}

#[test]
fn a_request_dropped_mid_flight_leaves_the_client_usable() {
    rt().block_on(async {
        let (addr, _) = server();
        let client = reqwest::Client::new();
        let silent = client.get(format!("http://{addr}/silent")).send();
        let dropped = runtime::time::timeout(Duration::from_millis(50), silent).await;
        assert!(dropped.is_err(), "the server never answers /silent");
        let response = within(
            "GET after a drop",
            client.get(format!("http://{addr}/")).send(),
        )
        .await
        .unwrap();
        assert_eq!(within("body", response.text()).await.unwrap(), "hello");
    });
}

#[test]
fn shutdown_with_a_request_in_flight_does_not_hang() {
    // A peer that takes the request and never answers.
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", peer.local_addr().unwrap());
    let (go, stop) = runtime::channel::oneshot::<()>();
    let (done_tx, done) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut rt = rt();
        rt.block_on(async move {
            runtime::spawn(async move {
                // The peer never answers: this is dropped by the shutdown.
                let _ = reqwest::get(url).await;
            });
            // Woken from the test's thread: the remote wake path.
            let _ = within("the go-ahead", stop).await;
        });
        drop(rt);
        done_tx.send(()).unwrap();
    });
    let (mut conn, _) = peer.accept().unwrap();
    conn.set_read_timeout(Some(BOUND)).unwrap();
    let mut request = Vec::new();
    let mut buf = [0; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).expect("the request arrives");
        assert!(n > 0, "the client closed before sending its request");
        request.extend_from_slice(&buf[..n]);
    }
    assert!(request.starts_with(b"GET / HTTP/1.1\r\n"));
    go.send(()).unwrap();
    done.recv_timeout(BOUND)
        .expect("the runtime shut down with a request in flight");
    client.join().unwrap();
}

#[test]
fn tokio_spawn_sleep_and_spawn_blocking_from_a_task() {
    rt().block_on(async {
        let task = runtime::spawn(async {
            let start = Instant::now();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(start.elapsed() >= Duration::from_millis(20));
            let spawned = tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                7
            });
            let blocking = tokio::task::spawn_blocking(|| std::thread::current().id());
            let other_thread = within("spawn_blocking", blocking).await.unwrap();
            assert_ne!(other_thread, std::thread::current().id());
            within("tokio::spawn", spawned).await.unwrap()
        });
        assert_eq!(within("task", task).await.unwrap(), 7);
    });
}

#[test]
fn a_task_of_ours_spawned_from_a_tokio_task_runs() {
    rt().block_on(async {
        // The tokio task runs while the core parks; the task it spawns must end the park.
        let (tx, rx) = runtime::channel::oneshot();
        tokio::spawn(async move {
            drop(runtime::spawn(async move {
                let _ = tx.send(5);
            }));
        });
        assert_eq!(within("our task from tokio's", rx).await.unwrap(), 5);
    });
}

#[test]
fn block_in_place_blocks_in_place() {
    rt().block_on(async {
        // From our task: it runs the closure on the core's thread, like a plain call.
        let thread = std::thread::current().id();
        let ran_on = tokio::task::block_in_place(|| std::thread::current().id());
        assert_eq!(ran_on, thread);
        // From a task on the core's tokio runtime: a `current_thread` runtime refuses.
        let refused = tokio::spawn(async {
            tokio::task::block_in_place(|| ());
        });
        let error = within("tokio task", refused).await.expect_err("it panics");
        assert!(error.is_panic());
    });
}

#[test]
fn a_busy_core_still_finishes_a_request() {
    rt().block_on(async {
        let (addr, _) = server();
        let stop = Rc::new(Cell::new(false));
        let spinning = stop.clone();
        let busy = runtime::spawn(async move {
            let mut yields = 0u64;
            while !spinning.get() {
                runtime::yield_now().await;
                yields += 1;
            }
            yields
        });
        let response = within(
            "GET next to a busy task",
            reqwest::get(format!("http://{addr}/")),
        )
        .await
        .unwrap();
        assert_eq!(within("body", response.text()).await.unwrap(), "hello");
        stop.set(true);
        assert!(busy.await.unwrap() > 0, "the busy task ran meanwhile");
    });
}

#[test]
fn every_core_has_its_own_tokio_runtime() {
    let mut rt = cores(2);
    // The server on core 1, the clients on both cores: wakes cross cores too.
    let on_core_1 = rt.handle().spawn_on(1, || async { server().0 });
    let addr = rt.block_on(on_core_1).unwrap();
    let handles = rt.run_on_all(move |core| async move {
        let response = within("GET", reqwest::get(format!("http://{addr}/")))
            .await
            .unwrap();
        assert_eq!(within("body", response.text()).await.unwrap(), "hello");
        (core, tokio::runtime::Handle::current().id())
    });
    assert_eq!(handles.len(), 2);
    assert_ne!(handles[0].1, handles[1].1, "one tokio runtime per core");
}

#[test]
fn two_runtimes_in_one_process() {
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                rt().block_on(async {
                    let (addr, _) = server();
                    let response = within("GET", reqwest::get(format!("http://{addr}/")))
                        .await
                        .unwrap();
                    within("body", response.text()).await.unwrap()
                })
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), "hello");
    }
}

#[test]
fn block_on_inside_a_tokio_runtime_does_not_panic() {
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = tokio_rt.block_on(async {
        rt().block_on(async {
            runtime::time::sleep(Duration::from_millis(1)).await;
            runtime::spawn(async { 42 }).await.unwrap()
        })
    });
    assert_eq!(out, 42);
}

#[test]
fn the_bridge_can_be_turned_off() {
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .tokio_bridge(false)
        .build()
        .unwrap();
    let current = rt.block_on(async { tokio::runtime::Handle::try_current().is_ok() });
    assert!(!current, "no tokio context without the bridge");
    let mut on = self::rt();
    let current = on.block_on(async { tokio::runtime::Handle::try_current().is_ok() });
    assert!(current, "a tokio context with the bridge");
}

#[test]
fn a_bridged_ring_has_no_defer_taskrun() {
    let mut on = rt();
    if on.backend() != runtime::Backend::IoUring {
        eprintln!("io_uring only (ring flags): not run on the epoll backend");
        return;
    }
    let probe = runtime::Probe::get().unwrap();
    // Its completions must be posted without the core entering the ring, or tokio's
    // reactor, which watches the ring's fd, would not hear of them.
    let flags = on.block_on(async { runtime::stats().ring });
    assert!(!flags.defer_taskrun, "{flags}");
    assert_eq!(flags.coop_taskrun, probe.coop_taskrun(), "{flags}");
    let mut off = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .tokio_bridge(false)
        .build()
        .unwrap();
    let flags = off.block_on(async { runtime::stats().ring });
    assert_eq!(flags.defer_taskrun, probe.defer_taskrun(), "{flags}");
}
