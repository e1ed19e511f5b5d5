//! reqwest, a tokio-bound HTTP client, three ways: on tokio's current-thread runtime
//! (`tokio-ct`), on our runtime through the tokio bridge (`bridge`), and on our runtime
//! through `async-compat` (`compat`: a tokio runtime on a helper thread, entered around
//! each poll: the baseline the bridge replaces).
//!
//! `cargo run -p benches --release --features tokio-bridge --bin bridgebench
//! [-- ROUNDS REQUESTS CONCURRENCY]` (default 5 rounds of 20000 requests, 1 at a time).
//!
//! The server is hyper HTTP/1.1 on tokio current_thread, a child process pinned to
//! CPU 0. Each client is a child process of its own pinned to CPU 1: one
//! `reqwest::Client` (keep-alive), CONCURRENCY tasks sending GETs in turn until
//! REQUESTS have been answered, each body read to the end. The figure is the client
//! process's CPU time (user + system, all its threads: `getrusage(RUSAGE_SELF)`) per
//! request, measured around the requests after a warm-up; the three clients run in
//! each round (the order rotating) and the ratios to tokio-ct are per round.
//!
//! `bridgebench serve PORT` is the server; `bridgebench client MODE URL N C` a client.

use std::convert::Infallible;
use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

const BODY: &[u8] = b"Hello, world!";
const MODES: [&str; 3] = ["tokio-ct", "bridge", "compat"];
/// Requests each client sends before it starts counting.
const WARM_UP: usize = 500;

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}

fn serve(port: u16) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening");
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(hello),
                    )
                    .await;
            });
        }
    })
}

/// User plus system CPU time of this process, every thread of it.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `n` GETs of `url` over `client`, one at a time.
async fn get_n(client: reqwest::Client, url: Rc<str>, n: usize) {
    for _ in 0..n {
        let response = client.get(&*url).send().await.expect("the server answers");
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("the body arrives");
        assert_eq!(&body[..], BODY);
    }
}

/// `requests` GETs split over `c` tasks, each started by `spawn` at once, then awaited.
async fn load<S, J>(client: &reqwest::Client, url: &Rc<str>, requests: usize, c: usize, spawn: S)
where
    S: Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) -> J,
    J: std::future::Future<Output = ()>,
{
    let each = requests.div_ceil(c);
    let tasks: Vec<J> = (0..c)
        .map(|_| spawn(Box::pin(get_n(client.clone(), url.clone(), each))))
        .collect();
    for task in tasks {
        task.await;
    }
}

/// Runs `mode`'s client; prints "CPU_NANOS REQUESTS" for the counted requests.
fn client(mode: &str, url: &str, requests: usize, c: usize) -> io::Result<()> {
    let url: Rc<str> = url.into();
    let measured = async {
        let client = reqwest::Client::new();
        // The pool fills, code and allocator warm up.
        (mode_load(mode))(client.clone(), url.clone(), WARM_UP, c).await;
        let start = cpu_time();
        (mode_load(mode))(client, url.clone(), requests, c).await;
        cpu_time() - start
    };
    let cpu = match mode {
        "tokio-ct" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            tokio::task::LocalSet::new().block_on(&rt, measured)
        }
        "bridge" => runtime::Builder::new().cores(1).build()?.block_on(measured),
        "compat" => runtime::Builder::new()
            .cores(1)
            .tokio_bridge(false)
            .build()?
            .block_on(measured),
        _ => return Err(io::Error::other(format!("no mode {mode}"))),
    };
    println!("{} {requests}", cpu.as_nanos());
    Ok(())
}

type Load = Box<dyn Fn(reqwest::Client, Rc<str>, usize, usize) -> LocalBoxed>;
type LocalBoxed = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// How `mode` runs its tasks.
fn mode_load(mode: &str) -> Load {
    match mode {
        // reqwest's futures are Send, but `get_n` holds an `Rc`: tokio's local tasks.
        "tokio-ct" => Box::new(|client, url, n, c| {
            Box::pin(async move {
                load(&client, &url, n, c, |f| {
                    let task = tokio::task::spawn_local(f);
                    async { task.await.unwrap() }
                })
                .await
            })
        }),
        "bridge" => Box::new(|client, url, n, c| {
            Box::pin(async move {
                load(&client, &url, n, c, |f| {
                    let task = runtime::spawn(f);
                    async { task.await.unwrap() }
                })
                .await
            })
        }),
        // Each task's future, wrapped: async-compat enters its tokio runtime (driven on
        // a thread of its own) around every poll.
        _ => Box::new(|client, url, n, c| {
            Box::pin(async move {
                load(&client, &url, n, c, |f| {
                    let task = runtime::spawn(async_compat::Compat::new(f));
                    async { task.await.unwrap() }
                })
                .await
            })
        }),
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Client CPU time per request of `mode`, in microseconds.
fn measure(mode: &str, url: &str, requests: usize, c: usize) -> io::Result<f64> {
    let out = Command::new("taskset")
        .args(["-c", "1"])
        .arg(std::env::current_exe()?)
        .args(["client", mode, url, &requests.to_string(), &c.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>());
    let (Some(Ok(nanos)), Some(Ok(n))) = (fields.next(), fields.next()) else {
        return Err(io::Error::other(format!("{mode} client said: {text:?}")));
    };
    let per_request = nanos / n / 1000.0;
    println!("  {mode:8} {per_request:7.2} µs client CPU per request");
    Ok(per_request)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let port = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(8091);
            return serve(port);
        }
        Some("client") => {
            let parse = |i: usize| args.get(i).and_then(|v| v.parse::<usize>().ok());
            let (Some(mode), Some(url), Some(n), Some(c)) =
                (args.get(1), args.get(2), parse(3), parse(4))
            else {
                return Err(io::Error::other("client MODE URL REQUESTS CONCURRENCY"));
            };
            return client(mode, url, n, c.max(1));
        }
        _ => {}
    }
    let rounds: usize = args.first().and_then(|r| r.parse().ok()).unwrap_or(5);
    let requests: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(20_000);
    let c: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1).max(1);
    let port = 18_100;
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe()?)
        .args(["serve", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let _server = Server(child);
    if line.trim() != "listening" {
        return Err(io::Error::other(format!(
            "the server did not start: {line:?}"
        )));
    }
    let url = format!("http://127.0.0.1:{port}/");
    println!(
        "{rounds} rounds of {requests} GETs, {c} at a time; server tokio-ct on CPU 0, \
         clients on CPU 1"
    );
    let started = Instant::now();
    let (mut bridge, mut compat) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        println!("round {}", round + 1);
        let mut cpu = [0.0; 3];
        for k in 0..MODES.len() {
            let i = (round + k) % MODES.len();
            cpu[i] = measure(MODES[i], &url, requests, c)?;
        }
        bridge.push(cpu[1] / cpu[0]);
        compat.push(cpu[2] / cpu[0]);
        println!(
            "  bridge / tokio-ct {:.2}x, compat / tokio-ct {:.2}x",
            cpu[1] / cpu[0],
            cpu[2] / cpu[0]
        );
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "client CPU per request, ratio to tokio-ct (median of {rounds} rounds, {:.0} s):\n  \
         bridge {:.2}x (rounds {})\n  compat {:.2}x (rounds {})",
        started.elapsed().as_secs_f64(),
        median(&bridge),
        list(&bridge),
        median(&compat),
        list(&compat)
    );
    Ok(())
}
