//! Closing sockets one at a time and in a batch, then dropping the runtime, with
//! `pending` other reads in flight on the core.

use std::io;
use std::net::{TcpListener, TcpStream as StdStream};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use runtime::channel::mpsc::{self, Receiver};
use runtime::net::TcpStream;

use super::holder::{self, Holder};
use super::{
    loopback_pairs, nanos_between, watch_for_eof, ThreadClock, PATIENCE, PEER_CPU, RUNTIME_CPU,
};
use crate::measure::{on_pinned_thread, pin_current};

/// What one round with `pending` other reads in flight measured.
#[derive(Debug, Clone)]
pub struct CloseRound {
    /// The other reads pending on the core.
    pub pending: usize,
    /// Ops in flight on the core just before the first close: the pending reads
    /// and the runtime's own.
    pub in_flight: u64,
    /// Closes of sockets with no op of their own.
    pub idle: Series,
    /// Closes of sockets whose read was dropped while in flight.
    pub dropped_read: Series,
    /// A batch of closes at once, without ops of their own: nanoseconds per close
    /// until an op queued after them completed.
    pub batch_runtime: f64,
    /// The same batch: nanoseconds per close until the peer read end of stream on
    /// the last socket of the batch.
    pub batch_eof: f64,
    /// The runtime thread's CPU time per close over `batch_runtime`.
    pub batch_cpu: f64,
    /// The drop of the runtime with the `pending` reads still in flight.
    pub shutdown: Duration,
    /// The CPU time of the thread that dropped the runtime (its only core),
    /// over `shutdown`.
    pub shutdown_cpu: Duration,
}

/// One series of closes, one at a time, in nanoseconds per close.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// From the drop of the socket until a nop queued after it completed: the
    /// runtime has then submitted the close and the kernel has run it.
    pub runtime: Vec<u64>,
    /// From the drop of the socket until the peer read end of stream.
    pub eof: Vec<u64>,
    /// The runtime thread's CPU time over [`runtime`](Self::runtime).
    pub cpu: Vec<u64>,
}

/// Runs one round on a fresh single-core runtime pinned to [`RUNTIME_CPU`], with
/// `closes` closes per series.
pub fn close_round(pending: usize, closes: usize) -> io::Result<CloseRound> {
    on_pinned_thread(RUNTIME_CPU, move || run(pending, closes))
}

/// The runtime ends of the connections of one round, by what they are for.
struct Connections {
    pending: Vec<StdStream>,
    idle: Vec<StdStream>,
    dropped_read: Vec<StdStream>,
    batch: Vec<StdStream>,
}

fn run(pending: usize, closes: usize) -> io::Result<CloseRound> {
    // The far ends of the pending reads' connections: silent, in a child process,
    // until the round is over.
    let (holder, pending_near) = Holder::start(&holder::listener()?, pending)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let split = |count| -> io::Result<(Vec<StdStream>, Vec<StdStream>)> {
        Ok(loopback_pairs(&listener, count)?.into_iter().unzip())
    };
    let (idle, idle_far) = split(closes)?;
    let (dropped_read, dropped_read_far) = split(closes)?;
    let (batch, batch_far) = split(closes)?;
    let watched: Vec<StdStream> = idle_far
        .into_iter()
        .chain(dropped_read_far)
        .chain(batch_far)
        .collect();
    let connections = Connections {
        pending: pending_near,
        idle,
        dropped_read,
        batch,
    };

    let mut rt = runtime::Builder::new().cores(1).build()?;
    let mut watcher = None;
    let measured = rt.block_on(async {
        let (seen_tx, seen) = mpsc::unbounded();
        watcher = Some(
            thread::Builder::new()
                .name("closebench-peer".to_string())
                .spawn(move || {
                    pin_current(PEER_CPU)?;
                    watch_for_eof(watched, seen_tx)
                })?,
        );
        measure(connections, seen).await
    });
    let clock = ThreadClock::of_current_thread()?;
    let (started, cpu_before) = (Instant::now(), clock.nanos());
    drop(rt);
    let shutdown = started.elapsed();
    let shutdown_cpu = Duration::from_nanos(clock.nanos().saturating_sub(cpu_before));
    // Every socket the peer watches is closed by now, so it has finished.
    let watched = match watcher {
        Some(watcher) => watcher
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        None => Ok(()),
    };
    let released = holder.release();
    let mut round = match (measured, watched) {
        (Ok(round), Ok(())) => round,
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(e),
        (Err(runtime_side), Err(peer)) => {
            return Err(io::Error::new(
                runtime_side.kind(),
                format!("{runtime_side} (the peer: {peer})"),
            ))
        }
    };
    released?;
    round.pending = pending;
    round.shutdown = shutdown;
    round.shutdown_cpu = shutdown_cpu;
    Ok(round)
}

async fn measure(connections: Connections, mut seen: Receiver<Instant>) -> io::Result<CloseRound> {
    let pending = connections.pending.len();
    for near in connections.pending {
        let stream = TcpStream::from_std(near)?;
        // Detached: the task, its read and its socket live until the runtime drops.
        drop(runtime::spawn(async move {
            let _ = stream.read(vec![0u8; 64]).await;
        }));
    }
    let in_flight = settle(pending).await?;
    let clock = ThreadClock::of_current_thread()?;

    let mut idle = Series::default();
    for near in connections.idle {
        let stream = TcpStream::from_std(near)?;
        let (start, cpu) = (Instant::now(), clock.nanos());
        drop(stream);
        runtime::nop().await?;
        idle.runtime.push(nanos_between(start, Instant::now()));
        idle.cpu.push(clock.nanos().saturating_sub(cpu));
        idle.eof
            .push(nanos_between(start, next_eof(&mut seen).await?));
    }

    let mut dropped_read = Series::default();
    for near in connections.dropped_read {
        // Shared with the read's future, which a close takes away first, as a
        // connection task's drop would.
        let stream = Rc::new(TcpStream::from_std(near)?);
        let reader = stream.clone();
        let mut read = Box::pin(async move { reader.read(vec![0u8; 64]).await });
        if futures_lite::future::poll_once(&mut read).await.is_some() {
            return Err(io::Error::other("a read from a silent peer completed"));
        }
        // The read is in the kernel once an op queued after it has completed.
        runtime::nop().await?;
        timed_close(&mut dropped_read, clock, &mut seen, move || {
            drop(read);
            drop(stream);
        })
        .await?;
    }

    let batch = connections
        .batch
        .into_iter()
        .map(TcpStream::from_std)
        .collect::<io::Result<Vec<_>>>()?;
    let count = batch.len().max(1) as f64;
    let (start, cpu) = (Instant::now(), clock.nanos());
    drop(batch);
    runtime::nop().await?;
    let batch_runtime = nanos_between(start, Instant::now()) as f64 / count;
    let batch_cpu = clock.nanos().saturating_sub(cpu) as f64 / count;
    let mut last = start;
    for _ in 0..count as usize {
        last = next_eof(&mut seen).await?;
    }
    let batch_eof = nanos_between(start, last) as f64 / count;

    Ok(CloseRound {
        pending,
        in_flight,
        idle,
        dropped_read,
        batch_runtime,
        batch_eof,
        batch_cpu,
        shutdown: Duration::ZERO,
        shutdown_cpu: Duration::ZERO,
    })
}

/// Runs `close`, then a nop, and notes in `series` the time and the CPU time of
/// the runtime thread (`clock`) until the nop completed, and the time until the
/// peer saw end of stream.
async fn timed_close(
    series: &mut Series,
    clock: ThreadClock,
    seen: &mut Receiver<Instant>,
    close: impl FnOnce(),
) -> io::Result<()> {
    let (start, cpu) = (Instant::now(), clock.nanos());
    close();
    runtime::nop().await?;
    series.runtime.push(nanos_between(start, Instant::now()));
    series.cpu.push(clock.nanos().saturating_sub(cpu));
    series.eof.push(nanos_between(start, next_eof(seen).await?));
    Ok(())
}

/// Lets the spawned readers run until at least `pending` ops are in flight, and
/// returns how many are.
async fn settle(pending: usize) -> io::Result<u64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        runtime::yield_now().await;
        // Completes after everything queued before it was submitted.
        runtime::nop().await?;
        let stats = runtime::stats();
        let in_flight = stats.ops_submitted.saturating_sub(stats.ops_completed);
        if in_flight >= pending as u64 {
            return Ok(in_flight);
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("only {in_flight} of {pending} reads in flight after {PATIENCE:?}"),
            ));
        }
    }
}

/// The instant the peer saw the next end of stream.
async fn next_eof(seen: &mut Receiver<Instant>) -> io::Result<Instant> {
    match runtime::time::timeout(PATIENCE, seen.recv()).await {
        Ok(Some(instant)) => Ok(instant),
        Ok(None) => Err(io::Error::other(
            "the peer stopped watching before end of stream",
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer saw no end of stream within {PATIENCE:?}"),
        )),
    }
}
