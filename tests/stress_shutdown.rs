//! Dropping a busy two-core runtime while a thread it does not own keeps spawning on
//! it, round after round: the drop returns promptly, nothing panics, every
//! `JoinHandle` resolves (to its output or to a cancellation), every buffer is dropped
//! once, and the process has the fds it had before the round.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use runtime::fs::File;
use runtime::net::{TcpListener, TcpSocket, TcpStream};
use runtime::time::sleep;
use runtime::{Builder, Handle, JoinError, JoinHandle, Probe};
use tests::stress::{self, Ledger, Rng, Tally};
use tests::{next, open_fds, pipe, thread_waker, within, TempDir};

/// How long one round may take before it counts as a hang.
const ROUND_BOUND: Duration = Duration::from_secs(30);
/// How long the drop itself may take: it cancels and waits for completions that come
/// at once, so far less than this.
const PROMPT: Duration = Duration::from_secs(5);
/// How long a `JoinHandle` may stay pending once its runtime is gone.
const RESOLVE_BOUND: Duration = Duration::from_secs(5);
/// Echo round trips each core makes before the drop starts.
const WARM_UP: u64 = 4;
/// The most tasks the foreign thread spawns in one round.
const MAX_SPAWNS: usize = 20_000;

/// What went wrong inside a round's tasks (a task's panic would be lost in a detached
/// task, so they write here instead).
type Faults = Arc<Mutex<Vec<String>>>;

fn fault(faults: &Faults, what: String) {
    let mut faults = faults.lock().unwrap_or_else(|e| e.into_inner());
    if faults.len() < 20 {
        faults.push(what);
    }
}

/// A connected pair of streams, made synchronously and given to this core's ring.
/// (Without Nagle's algorithm, so that echoes do not wait for delayed ACKs.)
fn std_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// Sends back what it reads until the peer goes.
async fn echo(stream: TcpStream) {
    loop {
        let (r, buf) = stream.read(Vec::with_capacity(16 * 1024)).await;
        match r {
            Ok(n) if n > 0 => {
                let (r, _) = stream.write_all(buf).await;
                if r.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// Writes numbered chunks and checks each comes back whole; counts round trips.
async fn echo_client(stream: TcpStream, ledger: Arc<Ledger>, progress: Arc<Tally>, faults: Faults) {
    let mut rng = Rng::new(stream.local_addr().unwrap().port().into());
    for round in 0u64.. {
        let mut chunk = vec![0; rng.between(1, 32 * 1024)];
        stress::stream_bytes(round, 0, &mut chunk);
        let len = chunk.len();
        let (r, _) = stream.write_all(ledger.holding(chunk.clone())).await;
        if r.is_err() {
            return;
        }
        let (r, back) = stream.read_exact(ledger.empty(len)).await;
        if r.is_err() {
            return;
        }
        if back.bytes() != chunk {
            fault(
                &faults,
                format!("an echo of {len} bytes came back different"),
            );
            return;
        }
        progress.add(1);
    }
}

/// What the busy tasks of one core need.
#[derive(Clone)]
struct Busy {
    ledger: Arc<Ledger>,
    progress: [Arc<Tally>; 2],
    faults: Faults,
    addrs: Arc<Mutex<[Option<SocketAddr>; 2]>>,
    dir: std::path::PathBuf,
    zc: bool,
}

/// Keeps core `core` busy with I/O of every kind until the runtime is dropped: echo
/// traffic over connections within the core and to the other core, accepts, a
/// multishot receive, blocked sends and reads, a pending connect, a timer, file writes
/// and reads, and jobs sent to the other core.
async fn busy(core: usize, b: Busy) {
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    b.addrs.lock().unwrap()[core] = Some(listener.local_addr().unwrap());
    // Connections to the listener get an echo each.
    runtime::spawn({
        let listener = listener.clone();
        async move {
            let mut incoming = listener.incoming();
            while let Some(Ok(stream)) = next(&mut incoming).await {
                runtime::spawn(echo(stream));
            }
        }
    });
    // Echo traffic within this core.
    for _ in 0..3 {
        let (client, server) = std_pair();
        runtime::spawn(echo(TcpStream::from_std(server).unwrap()));
        runtime::spawn(echo_client(
            TcpStream::from_std(client).unwrap(),
            b.ledger.clone(),
            Arc::new(Tally::default()),
            b.faults.clone(),
        ));
    }
    // Echo traffic to the other core: the server end moves there.
    let (client, server) = std_pair();
    let other = 1 - core;
    drop(runtime::spawn_on(other, move || async move {
        echo(TcpStream::from_std(server).unwrap()).await
    }));
    runtime::spawn(echo_client(
        TcpStream::from_std(client).unwrap(),
        b.ledger.clone(),
        b.progress[core].clone(),
        b.faults.clone(),
    ));
    // A connection whose peer never reads: its sends block in the kernel, as does
    // the peer's receive stream or read.
    let (sender, stuck) = std_pair();
    let sender = Rc::new(TcpStream::from_std(sender).unwrap());
    let stuck = Rc::new(TcpStream::from_std(stuck).unwrap());
    runtime::spawn({
        let sender = sender.clone();
        let ledger = b.ledger.clone();
        let zc = b.zc;
        async move {
            loop {
                let data = vec![1u8; 256 * 1024];
                let r = if zc {
                    sender.send_zc(ledger.holding(data)).await.0
                } else {
                    sender.write_all(ledger.holding(data)).await.0.map(|()| 0)
                };
                if r.is_err() {
                    return;
                }
            }
        }
    });
    runtime::spawn({
        let stuck = stuck.clone();
        async move {
            // Take a little, then hold on to a buffer and stop reading.
            let mut items = stuck.recv_stream();
            let _held = next(&mut items).await;
            std::future::pending::<()>().await
        }
    });
    // An accept nobody connects to, and a connect nobody answers.
    let lonely = TcpListener::bind("127.0.0.1:0").unwrap();
    runtime::spawn(async move {
        let _ = lonely.accept().await;
    });
    let hole = TcpSocket::new_v4().unwrap();
    hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole = hole.listen(0).unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let filler = std::net::TcpStream::connect(hole_addr).unwrap();
    runtime::spawn(async move {
        let _keep = (hole, filler);
        for _ in 0..4 {
            runtime::spawn(async move {
                let _ = TcpStream::connect(hole_addr).await;
            });
        }
        std::future::pending::<()>().await
    });
    // A pipe read that waits for ever.
    let (rx, tx) = pipe();
    runtime::spawn({
        let ledger = b.ledger.clone();
        async move {
            let _tx = tx;
            let rx = File::from_std(rx);
            let _ = rx.read_at(ledger.empty(64), 0).await;
        }
    });
    // A timer, file writes and reads.
    runtime::spawn({
        let path = b.dir.join(format!("core-{core}"));
        let ledger = b.ledger.clone();
        let faults = b.faults.clone();
        async move {
            let file = tests::create_rw(&path).await;
            for i in 0u64.. {
                sleep(Duration::from_micros(200)).await;
                let data = vec![i as u8; 4096];
                let (r, _) = file.write_all_at(ledger.holding(data), i % 16 * 4096).await;
                if let Err(e) = r {
                    fault(&faults, format!("file write: {e}"));
                    return;
                }
                let (r, back) = file.read_exact_at(ledger.empty(4096), i % 16 * 4096).await;
                if r.is_err() || back.bytes().iter().any(|&x| x != i as u8) {
                    fault(&faults, format!("file read back: {r:?}"));
                    return;
                }
            }
        }
    });
    // Jobs sent to the other core, and awaited.
    runtime::spawn({
        let faults = b.faults.clone();
        async move {
            loop {
                match runtime::spawn_on(other, || async { runtime::core_id() }).await {
                    Ok(id) if id == other => {}
                    Ok(id) => {
                        fault(&faults, format!("a job for core {other} ran on {id}"));
                        return;
                    }
                    // The other core stopped first.
                    Err(_) => return,
                }
            }
        }
    });
    // Keep the blocked connection open until the runtime goes.
    let _keep = (sender, stuck);
    std::future::pending::<()>().await
}

/// What the foreign thread asks a core to do.
async fn foreign_job(kind: usize, addr: Option<SocketAddr>) -> usize {
    match kind {
        0 => {}
        1 => {
            runtime::nop().await.expect("a nop completes");
            sleep(Duration::from_micros(300)).await;
        }
        2 => {
            // A round trip to this core's echo listener.
            if let Some(addr) = addr {
                if let Ok(stream) = TcpStream::connect(addr).await {
                    let (r, _) = stream.write_all(b"ping".to_vec()).await;
                    if r.is_ok() {
                        let (_, _) = stream.read_exact(Vec::with_capacity(4)).await;
                    }
                }
            }
        }
        _ => {
            // More tasks, here and on the other core.
            let here = runtime::spawn(async { runtime::yield_now().await });
            let there = runtime::spawn_on(1 - runtime::core_id(), || async {
                runtime::nop().await.map(drop)
            });
            let _ = here.await;
            let _ = there.await;
        }
    }
    runtime::core_id()
}

/// Awaits `handle` on this plain thread, parked between polls, for at most `bound`.
/// `None` if it is still pending then: a wake-up that never came is not hidden by the
/// last look.
fn resolve<T>(handle: JoinHandle<T>, bound: Duration) -> Option<Result<T, JoinError>> {
    let deadline = Instant::now() + bound;
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    let mut handle = pin!(handle);
    loop {
        if let Poll::Ready(out) = handle.as_mut().poll(&mut cx) {
            return Some(out);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// What became of the foreign thread's jobs.
#[derive(Default)]
struct Jobs {
    spawned: usize,
    ran: usize,
    cancelled: usize,
    problems: Vec<String>,
}

impl Jobs {
    /// Records job `i`'s outcome; `false` if it never resolved.
    fn judge(
        &mut self,
        i: usize,
        core: usize,
        outcome: Option<Result<usize, JoinError>>,
        when: &str,
    ) -> bool {
        match outcome {
            Some(Ok(id)) if id == core => self.ran += 1,
            Some(Ok(id)) => self
                .problems
                .push(format!("job {i} for core {core} ran on core {id}")),
            Some(Err(e)) if e.is_cancelled() => self.cancelled += 1,
            Some(Err(e)) => self
                .problems
                .push(format!("job {i} for core {core} failed: {e}")),
            None => {
                self.problems.push(format!(
                    "job {i} (for core {core}), awaited {when}, was still pending after \
                     {RESOLVE_BOUND:?}"
                ));
                return false;
            }
        }
        true
    }
}

struct RoundReport {
    spawned: usize,
    ran: usize,
    cancelled: usize,
    drop_took: Duration,
    problems: Vec<String>,
}

/// One round: a busy runtime, a foreign thread spawning on it, and its drop.
fn round(seed: u64, dir: std::path::PathBuf, zc: bool) -> RoundReport {
    let mut rng = Rng::new(seed);
    let mut problems = Vec::new();
    let ledger = Ledger::new();
    let busy_state = Busy {
        ledger: ledger.clone(),
        progress: [Arc::default(), Arc::default()],
        faults: Faults::default(),
        addrs: Arc::new(Mutex::new([None, None])),
        dir,
        zc,
    };
    let mut rt = Builder::new()
        .cores(2)
        .pin(false)
        .ring_entries(256)
        .build()
        .expect("the runtime starts");
    let handle = rt.handle();
    let busy_tasks = rt.block_on({
        let b = busy_state.clone();
        async move {
            let tasks: Vec<_> = (0..2)
                .map(|core| {
                    let b = b.clone();
                    runtime::spawn_on(core, move || busy(core, b))
                })
                .collect();
            // Both cores are busy before the drop begins.
            within("both cores to get going", async {
                while b.progress.iter().any(|p| p.get() < WARM_UP) {
                    sleep(Duration::from_micros(200)).await;
                }
            })
            .await;
            tasks
        }
    });

    // A thread the runtime does not own spawns on it until it is gone (and a few
    // times after).
    let spawned = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(AtomicBool::new(false));
    let foreign = {
        let handle: Handle = handle.clone();
        let spawned = spawned.clone();
        let gone = gone.clone();
        let addrs = *busy_state.addrs.lock().unwrap();
        let mut rng = rng.fork();
        thread::spawn(move || {
            // Handles stay on the thread that made them. Most are awaited once the
            // runtime is gone; some at once, so that the thread is parked on them
            // while the runtime drops (the cancellation must wake it).
            let mut handles = Vec::new();
            let mut jobs = Jobs::default();
            let mut after = 0;
            let mut await_some = true;
            while jobs.spawned < MAX_SPAWNS && after < 20 {
                let core = rng.below(2);
                let kind = rng.below(4);
                let addr = addrs[core];
                let job = handle.spawn_on(core, move || foreign_job(kind, addr));
                let i = jobs.spawned;
                if await_some && rng.percent(5) {
                    let outcome = resolve(job, RESOLVE_BOUND);
                    await_some = jobs.judge(i, core, outcome, "as soon as it was spawned");
                } else {
                    handles.push((i, core, job));
                }
                jobs.spawned += 1;
                spawned.fetch_add(1, Ordering::Relaxed);
                if gone.load(Ordering::Relaxed) {
                    after += 1;
                }
                if rng.percent(5) {
                    thread::yield_now();
                }
            }
            for (i, core, job) in handles {
                if !jobs.judge(i, core, resolve(job, RESOLVE_BOUND), "after the drop") {
                    break;
                }
            }
            jobs
        })
    };
    // Both cores keep running (core 0 in this `block_on`) while the foreign thread
    // gets going; the drop comes at a random moment of its run.
    let head_start = rng.between(1, 300);
    rt.block_on(async {
        let started = Instant::now();
        while spawned.load(Ordering::Relaxed) < head_start && started.elapsed() < ROUND_BOUND {
            runtime::yield_now().await;
        }
    });
    let start = Instant::now();
    drop(rt);
    let drop_took = start.elapsed();
    gone.store(true, Ordering::Relaxed);
    if drop_took > PROMPT {
        problems.push(format!("the drop took {drop_took:?}"));
    }
    let jobs = foreign.join().expect("the foreign thread does not panic");
    problems.extend(jobs.problems);
    let (spawned, ran, cancelled) = (jobs.spawned, jobs.ran, jobs.cancelled);
    if handle.core_count() != 0 || handle.try_spawn_on(0, || async {}).is_ok() {
        problems.push("the handle still reaches the runtime after its drop".into());
    }
    for (core, h) in busy_tasks.into_iter().enumerate() {
        match resolve(h, RESOLVE_BOUND) {
            Some(Err(e)) if e.is_cancelled() => {}
            other => problems.push(format!(
                "core {core}'s busy task: {:?} (expected cancelled)",
                other.map(|r| r.map_err(|e| e.to_string()))
            )),
        }
    }
    problems.extend(busy_state.faults.lock().unwrap().iter().cloned());
    if let Err(e) = ledger.check() {
        problems.push(format!("buffers after the drop: {e}"));
    }
    RoundReport {
        spawned,
        ran,
        cancelled,
        drop_took,
        problems,
    }
}

#[test]
fn a_busy_runtime_dropped_while_a_foreign_thread_spawns_on_it() {
    let seed = stress::seed("shutdown under load");
    let rounds = stress::size("rounds", 50, 50);
    let zc = Probe::get().expect("io_uring is available").send_zc();
    if !zc {
        println!("zero-copy sends left out: this kernel has no IORING_OP_SEND_ZC");
    }
    let dir = TempDir::new("stress-shutdown");
    let mut rng = Rng::new(seed);
    let baseline = open_fds();
    let mut slowest = Duration::ZERO;
    let (mut spawned, mut ran, mut cancelled) = (0, 0, 0);
    let started = Instant::now();
    for n in 0..rounds {
        let round_seed = rng.next_u64();
        let (tx, rx) = mpsc::channel();
        let path = dir.join("");
        let runner = thread::Builder::new()
            .name(format!("round-{n}"))
            .spawn(move || {
                let report = round(round_seed, path, zc);
                let _ = tx.send(report);
            })
            .unwrap();
        let report = match rx.recv_timeout(ROUND_BOUND) {
            Ok(report) => report,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("round {n} (seed {seed:#x}) did not finish within {ROUND_BOUND:?}: a hang")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let payload = runner
                    .join()
                    .expect_err("a runner that sent nothing panicked");
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("round {n} (seed {seed:#x}) panicked: {msg}");
            }
        };
        runner.join().unwrap();
        assert!(
            report.problems.is_empty(),
            "round {n} (seed {seed:#x}):\n  {}",
            report.problems.join("\n  ")
        );
        assert_eq!(
            open_fds(),
            baseline,
            "round {n} (seed {seed:#x}): fds open after the drop, against before the round"
        );
        slowest = slowest.max(report.drop_took);
        spawned += report.spawned;
        ran += report.ran;
        cancelled += report.cancelled;
    }
    println!(
        "{rounds} rounds in {:?}: {spawned} foreign spawns, {ran} ran, {cancelled} cancelled; \
         slowest drop {slowest:?}",
        started.elapsed()
    );
    assert!(
        ran > 0 && cancelled > 0,
        "the drop raced the spawns (some ran, some were cancelled)"
    );
}
