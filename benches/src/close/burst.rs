//! The first request after many idle connections close at once: an echo server on
//! the runtime's core holds `idle` connections, each with a read in flight; their
//! clients close them all, and at once ask a fresh connection for an echo.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::thread;
use std::time::Instant;

use runtime::net::{TcpListener, TcpStream};

use super::{nanos_between, ThreadClock, PATIENCE, PEER_CPU, RUNTIME_CPU};
use crate::latency::Percentiles;
use crate::measure::{on_pinned_thread, pin_current};

/// Requests on fresh connections timed while the idle connections are open.
pub const BASELINE: usize = 21;

/// What a client sends, and the server echoes.
const REQUEST: &[u8] = b"closebench ping!";

/// What one round measured, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct BurstRound {
    /// The median of [`BASELINE`] requests on fresh connections, each from connect
    /// to answer, with the idle connections open.
    pub baseline: u64,
    /// From the first of the closes to the answer to the request after them.
    pub from_first_close: u64,
    /// From the last of the closes to that answer (the connect and the request).
    pub from_last_close: u64,
    /// How long the clients took to close the idle connections (and the baseline
    /// ones).
    pub closing: u64,
    /// The runtime thread's CPU time from the first close to the answer.
    pub runtime_cpu: u64,
}

/// Runs one round with `idle` idle connections: the server on a fresh
/// single-core runtime pinned to [`RUNTIME_CPU`], the clients on [`PEER_CPU`].
pub fn burst_round(idle: usize) -> io::Result<BurstRound> {
    on_pinned_thread(RUNTIME_CPU, move || run(idle))
}

fn run(idle: usize) -> io::Result<BurstRound> {
    let mut rt = runtime::Builder::new().cores(1).build()?;
    let mut clients = None;
    let clock = ThreadClock::of_current_thread()?;
    let result = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (done_tx, mut done) = runtime::channel::mpsc::unbounded();
        clients = Some(
            thread::Builder::new()
                .name("closebench-clients".to_string())
                .spawn(move || {
                    let result = pin_current(PEER_CPU).and_then(|()| load(addr, idle, clock));
                    let _ = done_tx.send(result);
                })?,
        );
        let finished = async {
            done.recv()
                .await
                .unwrap_or_else(|| Err(io::Error::other("the clients ended without a result")))
        };
        futures_lite::future::or(serve(listener), finished).await
    });
    // Dropping the runtime closes every server socket, so clients still waiting
    // (after an error on this side) see end of stream and finish.
    drop(rt);
    if let Some(clients) = clients {
        clients
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    }
    result
}

/// Accepts connections and echoes on each until it ends; returns only on error.
async fn serve(listener: TcpListener) -> io::Result<BurstRound> {
    loop {
        let (stream, _) = listener.accept().await?;
        drop(runtime::spawn(echo(stream)));
    }
}

async fn echo(stream: TcpStream) {
    let mut buf = Vec::with_capacity(64);
    loop {
        buf.clear();
        let (read, back) = stream.read(buf).await;
        buf = back;
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (written, back) = stream.write_all(buf).await;
        buf = back;
        if written.is_err() {
            return;
        }
    }
}

/// The clients' side of a round; `runtime` is the clock of the server's thread.
fn load(addr: SocketAddr, idle: usize, runtime: ThreadClock) -> io::Result<BurstRound> {
    let mut open = Vec::with_capacity(idle + BASELINE);
    for _ in 0..idle {
        let (stream, _) = request(addr)?;
        open.push(stream);
    }
    let mut baseline = Vec::with_capacity(BASELINE);
    for _ in 0..BASELINE {
        let (stream, took) = request(addr)?;
        baseline.push(took);
        open.push(stream);
    }
    let baseline = Percentiles::of(&mut baseline).map_or(0, |p| p.median as u64);
    let (first, cpu) = (Instant::now(), runtime.nanos());
    drop(open);
    let last = Instant::now();
    let (_stream, _) = request(addr)?;
    let answered = Instant::now();
    let runtime_cpu = runtime.nanos().saturating_sub(cpu);
    Ok(BurstRound {
        baseline,
        from_first_close: nanos_between(first, answered),
        from_last_close: nanos_between(last, answered),
        closing: nanos_between(first, last),
        runtime_cpu,
    })
}

/// Connects, sends [`REQUEST`] and reads its echo; returns the stream and the
/// nanoseconds from connect to answer.
fn request(addr: SocketAddr) -> io::Result<(StdStream, u64)> {
    let start = Instant::now();
    let mut stream = StdStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.write_all(REQUEST)?;
    let mut answer = [0u8; REQUEST.len()];
    stream.read_exact(&mut answer)?;
    let took = nanos_between(start, Instant::now());
    if answer != REQUEST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server's echo differs from the request",
        ));
    }
    Ok((stream, took))
}
