//! hyper's HTTP/2 server (h2c, prior knowledge), the same service on `runtime` (one
//! core, `Compat<TcpStream>`, `runtime::hyper::LocalExecutor`) and on tokio's
//! current-thread runtime (`TokioIo`, a `LocalSet` executor), loaded by `h2load`.
//!
//! `cargo run -p benches --release --bin h2bench [-- ROUNDS SECONDS]` (default 5 rounds
//! of 5 s). Each round runs both servers in turn (the order alternates), each pinned
//! to CPU 0 as a child process of this binary, with h2load on CPU 1 (`-c 16 -m 32`:
//! 16 connections, 32 streams each). A server's CPU time is read from
//! `/proc/PID/stat` before and after the load; the figure is requests per server
//! CPU-second, and the ratio ours / tokio-ct is per round.
//!
//! `h2bench serve ours|tokio PORT` is the server itself.

use std::convert::Infallible;
use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};

const BODY: &[u8] = b"Hello, world!";

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}

fn serve_ours(port: u16) -> io::Result<()> {
    let mut rt = runtime::Builder::new().cores(1).build()?;
    rt.block_on(async move {
        let listener = runtime::net::TcpListener::bind(("127.0.0.1", port))?;
        println!("listening");
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            runtime::spawn(async move {
                let _ = http2::Builder::new(runtime::hyper::LocalExecutor::new())
                    .serve_connection(runtime::io::Compat::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}

/// Spawns hyper's HTTP/2 tasks on the `LocalSet` of the current thread.
#[derive(Clone, Copy)]
struct LocalSpawn;

impl<F: std::future::Future + 'static> hyper::rt::Executor<F> for LocalSpawn {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

fn serve_tokio(port: u16) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening");
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::task::spawn_local(async move {
                let _ = http2::Builder::new(LocalSpawn)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}

/// User plus system CPU time of a process, from `/proc/PID/stat`.
fn cpu_of(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat
        .rfind(')')
        .ok_or_else(|| io::Error::other("bad stat"))?
        + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().map_err(io::Error::other)?
        + fields[12].parse::<u64>().map_err(io::Error::other)?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Requests per server CPU-second for one server under one h2load run.
fn measure(which: &str, port: u16, seconds: u64) -> io::Result<f64> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(&exe)
        .args(["serve", which, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    if line.trim() != "listening" {
        return Err(io::Error::other(format!("{which} did not start: {line:?}")));
    }
    let server = Server(child);
    let pid = server.0.id();
    // The server runs under taskset, which execs it: same pid.
    let before = cpu_of(pid)?;
    let out = Command::new("taskset")
        .args(["-c", "1", "h2load", "-c", "16", "-m", "32", "-D"])
        .arg(seconds.to_string())
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()?;
    let after = cpu_of(pid)?;
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout);
    // "requests: N total, N started, N done, N succeeded, N failed, ..."
    let succeeded = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .and_then(|l| l.split(", ").find(|f| f.ends_with("succeeded")))
        .and_then(|f| f.split(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(|| io::Error::other(format!("h2load said: {text}")))?;
    let cpu = (after - before).as_secs_f64();
    println!(
        "  {which:6} {succeeded:>10.0} requests, server CPU {cpu:.2} s, {:.0} req/CPU-s",
        succeeded / cpu
    );
    Ok(succeeded / cpu)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let port = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(8090);
        return match args.get(1).map(String::as_str) {
            Some("ours") => serve_ours(port),
            Some("tokio") => serve_tokio(port),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "serve ours|tokio PORT",
            )),
        };
    }
    let rounds: usize = args.first().and_then(|r| r.parse().ok()).unwrap_or(5);
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        println!("round {}", round + 1);
        let port = 18_000 + round as u16 * 2;
        let (ours, tokio) = if round % 2 == 0 {
            let o = measure("ours", port, seconds)?;
            (o, measure("tokio", port + 1, seconds)?)
        } else {
            let t = measure("tokio", port + 1, seconds)?;
            (measure("ours", port, seconds)?, t)
        };
        ratios.push(ours / tokio);
        println!("  ours / tokio-ct: {:.2}x", ours / tokio);
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "requests per server CPU-second, ours / tokio-ct: median {:.2}x, rounds {}",
        sorted[sorted.len() / 2],
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
