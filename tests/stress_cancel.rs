//! A storm of operations dropped at random points of their lives: reads, vectored
//! reads, writes, zero-copy sends, multishot receives and accepts, accepts, connects,
//! file opens, creates and reads, pipe reads and writes, timers, timeouts, `select`
//! races, connections torn down with operations in flight and tasks aborted mid-op,
//! thousands of them on one core, while checked byte streams flow through other
//! connections of the same ring.
//!
//! At the end every buffer was dropped exactly once, the fd count is back where it
//! started, every provided buffer is back in the ring, and each checked stream arrived
//! whole (its byte count and checksum are the writer's).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use runtime::fs::{File, OpenOptions};
use runtime::net::{TcpListener, TcpSocket, TcpStream};
use runtime::time::{sleep, timeout};
use runtime::{Builder, Probe};
use tests::stress::{
    self, drive, first_of, stream_bytes, DropPoint, Either, Ledger, Rng, StreamCheck, StreamSource,
};
use tests::{
    bytes_readable, next, open_fds, pipe, raise_fd_limit, rt, settle_fds, within, TempDir,
};

/// Provided buffers of the storm's core: few, so that multishot receives run the ring
/// dry and have to wait for buffers to come back.
const RECV_BUFFERS: u16 = 64;
const RECV_BUFFER_SIZE: u32 = 4096;
/// Large enough that one tick of the run loop (at most 256 task polls, each queueing a
/// handful of SQEs) never fills the submission queue, so an op polled and dropped
/// within one task poll is still queued when it is dropped.
const RING_ENTRIES: u32 = 4096;
/// Ring turns a dropped op may live through, and microseconds a raced one gets.
const MAX_TURNS: u8 = 8;
const MAX_MICROS: u16 = 300;
/// The data file the file ops open and read.
const FILE_LEN: usize = 256 * 1024;
const FILE_SEED: u64 = 0xf11e;
/// How long the whole storm may take before it counts as a hang.
const STORM_BOUND: Duration = Duration::from_secs(150);

/// A connected pair of streams, made synchronously (so that concurrent tasks cannot
/// take each other's connections) and handed to the ring.
fn std_pair(listener: &std::net::TcpListener) -> (TcpStream, TcpStream) {
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (
        TcpStream::from_std(client).unwrap(),
        TcpStream::from_std(server).unwrap(),
    )
}

struct Pair {
    a: TcpStream,
    b: TcpStream,
}

impl Pair {
    fn side(&self, rng: &mut Rng) -> &TcpStream {
        if rng.percent(50) {
            &self.a
        } else {
            &self.b
        }
    }
}

/// (op, drop point) -> (started, finished before it was dropped).
type Outcomes = BTreeMap<(&'static str, &'static str), (u64, u64)>;

/// What the storm's tasks share.
struct Storm {
    ledger: Arc<Ledger>,
    maker: std::net::TcpListener,
    /// Accepts (`accept()`) and connects aim here.
    acc: TcpListener,
    acc_addr: SocketAddr,
    /// Multishot accepts (`incoming()`) and connects aim here.
    inc: TcpListener,
    inc_addr: SocketAddr,
    /// A listener whose queue is full and never accepts: connects to it stay in flight.
    _hole: TcpListener,
    _hole_filler: std::net::TcpStream,
    hole_addr: SocketAddr,
    churn: RefCell<Vec<Rc<Pair>>>,
    pipes: Vec<(File, File)>,
    file: File,
    file_path: PathBuf,
    file_data: Vec<u8>,
    dir: PathBuf,
    zc: bool,
    recv_multi: bool,
    outcomes: RefCell<Outcomes>,
    /// Errors that may happen to a live op (a peer's reset, say), by op and kind.
    errors: RefCell<BTreeMap<String, u64>>,
    /// What must never happen: wrong bytes, an error no live op should see.
    bad: RefCell<Vec<String>>,
}

impl Storm {
    fn note(&self, op: &'static str, point: DropPoint, finished: bool) {
        let mut outcomes = self.outcomes.borrow_mut();
        let entry = outcomes.entry((op, point.name())).or_default();
        entry.0 += 1;
        entry.1 += u64::from(finished);
    }

    /// An error a live (not dropped) op got: a peer closing or resetting is part of
    /// the storm; anything else is a defect (`EBADF`, `ENOTSOCK` or `ECANCELED` on an
    /// op nobody cancelled would mean an op acted on, or was cancelled through, the
    /// wrong fd).
    fn error(&self, op: &str, e: &io::Error) {
        use io::ErrorKind::*;
        if matches!(e.kind(), ConnectionReset | BrokenPipe | ConnectionAborted) {
            *self
                .errors
                .borrow_mut()
                .entry(format!("{op}: {:?}", e.kind()))
                .or_default() += 1;
        } else {
            self.fail(format!("{op}: unexpected error {e} ({:?})", e.kind()));
        }
    }

    fn fail(&self, what: String) {
        let mut bad = self.bad.borrow_mut();
        if bad.len() < 50 {
            bad.push(what);
        }
    }

    fn pair(&self, rng: &mut Rng) -> Rc<Pair> {
        let churn = self.churn.borrow();
        churn[rng.below(churn.len())].clone()
    }

    fn fresh_pair(&self) -> Pair {
        let (a, b) = std_pair(&self.maker);
        Pair { a, b }
    }

    fn random_bytes(&self, rng: &mut Rng, max: usize) -> Vec<u8> {
        let mut data = vec![0; rng.between(1, max)];
        stream_bytes(rng.next_u64(), 0, &mut data);
        data
    }

    fn point(rng: &mut Rng) -> DropPoint {
        DropPoint::random(rng, MAX_TURNS, MAX_MICROS)
    }

    fn check_read(&self, op: &str, result: io::Result<usize>, cap: usize, got: &[u8]) {
        match result {
            Ok(n) if n > cap || got.len() != n => self.fail(format!(
                "{op}: read {n} into {cap} bytes, buffer holds {}",
                got.len()
            )),
            Ok(_) => {}
            Err(e) => self.error(op, &e),
        }
    }

    fn check_written(&self, op: &str, result: io::Result<usize>, len: usize) {
        match result {
            Ok(n) if n > len => self.fail(format!("{op}: wrote {n} of {len} bytes")),
            Ok(_) => {}
            Err(e) => self.error(op, &e),
        }
    }
}

/// The kinds of operation the storm starts and drops.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Read,
    ReadVectored,
    Write,
    SendZc,
    RecvStream,
    Accept,
    Incoming,
    Connect,
    Open,
    Create,
    FileRead,
    PipeRead,
    PipeWrite,
    Sleep,
    Timeout,
    Select,
    Teardown,
    Abort,
    Replace,
}

const KINDS: [(Kind, usize); 19] = [
    (Kind::Read, 12),
    (Kind::ReadVectored, 4),
    (Kind::Write, 10),
    (Kind::SendZc, 5),
    (Kind::RecvStream, 6),
    (Kind::Accept, 6),
    (Kind::Incoming, 4),
    (Kind::Connect, 8),
    (Kind::Open, 5),
    (Kind::Create, 3),
    (Kind::FileRead, 5),
    (Kind::PipeRead, 5),
    (Kind::PipeWrite, 4),
    (Kind::Sleep, 6),
    (Kind::Timeout, 4),
    (Kind::Select, 4),
    (Kind::Teardown, 4),
    (Kind::Abort, 3),
    (Kind::Replace, 2),
];

fn pick_kind(rng: &mut Rng) -> Kind {
    let total: usize = KINDS.iter().map(|&(_, w)| w).sum();
    let mut at = rng.below(total);
    for &(kind, weight) in &KINDS {
        if at < weight {
            return kind;
        }
        at -= weight;
    }
    unreachable!("the weights add up to the total")
}

/// One operation of the storm, started and dropped (or finished) at a random point.
async fn churn_op(storm: Rc<Storm>, mut rng: Rng, serial: usize) {
    let point = Storm::point(&mut rng);
    let ledger = &storm.ledger;
    match pick_kind(&mut rng) {
        Kind::Read => {
            let pair = storm.pair(&mut rng);
            let cap = rng.between(1, 32 * 1024);
            let out = drive(pair.side(&mut rng).read(ledger.empty(cap)), point).await;
            storm.note("read", point, out.is_some());
            if let Some((r, buf)) = out {
                storm.check_read("read", r, cap, buf.bytes());
            }
        }
        Kind::ReadVectored => {
            let pair = storm.pair(&mut rng);
            let caps = [rng.between(1, 8192), rng.between(1, 8192)];
            let bufs = vec![ledger.empty(caps[0]), ledger.empty(caps[1])];
            let out = drive(pair.side(&mut rng).read_vectored(bufs), point).await;
            storm.note("read_vectored", point, out.is_some());
            if let Some((r, _bufs)) = out {
                match r {
                    Ok(n) if n > caps[0] + caps[1] => {
                        storm.fail(format!("read_vectored: {n} bytes into {caps:?}"))
                    }
                    Ok(_) => {}
                    Err(e) => storm.error("read_vectored", &e),
                }
            }
        }
        Kind::Write => {
            let pair = storm.pair(&mut rng);
            let data = storm.random_bytes(&mut rng, 32 * 1024);
            let len = data.len();
            let out = drive(pair.side(&mut rng).write(ledger.holding(data)), point).await;
            storm.note("write", point, out.is_some());
            if let Some((r, _)) = out {
                storm.check_written("write", r, len);
            }
        }
        Kind::SendZc if storm.zc => {
            let pair = storm.pair(&mut rng);
            let data = storm.random_bytes(&mut rng, 64 * 1024);
            let len = data.len();
            let out = drive(pair.side(&mut rng).send_zc(ledger.holding(data)), point).await;
            storm.note("send_zc", point, out.is_some());
            if let Some((r, _)) = out {
                storm.check_written("send_zc", r, len);
            }
        }
        Kind::RecvStream if storm.recv_multi => {
            let pair = storm.pair(&mut rng);
            let side = pair.side(&mut rng);
            let mut stream = side.recv_stream();
            let mut held = Vec::new();
            for _ in 0..rng.between(1, 4) {
                let point = Storm::point(&mut rng);
                let out = drive(next(&mut stream), point).await;
                storm.note("recv_stream", point, out.is_some());
                match out {
                    Some(Some(Ok(buf))) => {
                        if buf.is_empty() || buf.len() > RECV_BUFFER_SIZE as usize {
                            storm.fail(format!("recv_stream: a buffer of {} bytes", buf.len()));
                        }
                        if rng.percent(60) {
                            held.push(buf);
                        }
                    }
                    Some(Some(Err(e))) => {
                        storm.error("recv_stream", &e);
                        break;
                    }
                    Some(None) => break,
                    None => {}
                }
            }
            // Hold what was received a while, then let go of the stream and the
            // buffers in either order.
            for _ in 0..rng.below(usize::from(MAX_TURNS)) {
                runtime::yield_now().await;
            }
            if rng.percent(50) {
                drop(stream);
                drop(held);
            } else {
                drop(held);
                drop(stream);
            }
        }
        Kind::Accept => {
            let out = drive(storm.acc.accept(), point).await;
            storm.note("accept", point, out.is_some());
            match out {
                Some(Ok((stream, _))) => hold_then_drop(stream, &mut rng).await,
                Some(Err(e)) => storm.error("accept", &e),
                None => {}
            }
        }
        Kind::Incoming => {
            let mut incoming = storm.inc.incoming();
            for _ in 0..rng.between(1, 3) {
                let point = Storm::point(&mut rng);
                let out = drive(next(&mut incoming), point).await;
                storm.note("incoming", point, out.is_some());
                match out {
                    Some(Some(Ok(stream))) => drop(stream),
                    Some(Some(Err(e))) => storm.error("incoming", &e),
                    Some(None) => {
                        storm.fail("incoming: the stream ended".into());
                        break;
                    }
                    None => {}
                }
            }
        }
        Kind::Connect => {
            let addr = match rng.below(10) {
                0..=5 => storm.acc_addr,
                6..=8 => storm.inc_addr,
                _ => storm.hole_addr,
            };
            let out = drive(TcpStream::connect(addr), point).await;
            storm.note("connect", point, out.is_some());
            match out {
                Some(Ok(stream)) => hold_then_drop(stream, &mut rng).await,
                Some(Err(e)) => storm.error("connect", &e),
                None => {}
            }
        }
        Kind::Open => {
            let out = drive(File::open(&storm.file_path), point).await;
            storm.note("open", point, out.is_some());
            match out {
                Some(Ok(file)) if rng.percent(50) => file_read(&storm, &file, &mut rng).await,
                Some(Ok(file)) => drop(file),
                Some(Err(e)) => storm.fail(format!("open: {e}")),
                None => {}
            }
        }
        Kind::Create => {
            let path = storm.dir.join(format!("created-{}", rng.below(32)));
            let mut options = OpenOptions::new();
            options.write(true).create(true).truncate(false);
            let out = drive(options.open(path), point).await;
            storm.note("create", point, out.is_some());
            match out {
                Some(Ok(file)) => {
                    let data = storm.random_bytes(&mut rng, 8192);
                    let len = data.len();
                    let point = Storm::point(&mut rng);
                    let at = rng.below(1 << 16) as u64;
                    let out = drive(file.write_at(ledger.holding(data), at), point).await;
                    storm.note("file write", point, out.is_some());
                    if let Some((r, _)) = out {
                        match r {
                            Ok(n) if n != len => {
                                storm.fail(format!("file write: {n} of {len} bytes"))
                            }
                            Ok(_) => {}
                            Err(e) => storm.fail(format!("file write: {e}")),
                        }
                    }
                }
                Some(Err(e)) => storm.fail(format!("create: {e}")),
                None => {}
            }
        }
        Kind::FileRead => file_read(&storm, &storm.file, &mut rng).await,
        Kind::PipeRead => {
            let (rx, _) = &storm.pipes[rng.below(storm.pipes.len())];
            let cap = rng.between(1, 16 * 1024);
            let out = drive(rx.read_at(ledger.empty(cap), 0), point).await;
            storm.note("pipe read", point, out.is_some());
            if let Some((r, buf)) = out {
                match r {
                    Ok(n) if n == 0 || n > cap || buf.bytes().len() != n => storm.fail(format!(
                        "pipe read: {n} into {cap} bytes, buffer holds {}",
                        buf.bytes().len()
                    )),
                    Ok(_) => {}
                    Err(e) => storm.fail(format!("pipe read: {e}")),
                }
            }
        }
        Kind::PipeWrite => {
            let (_, tx) = &storm.pipes[rng.below(storm.pipes.len())];
            let data = storm.random_bytes(&mut rng, 16 * 1024);
            let len = data.len();
            let out = drive(tx.write_at(ledger.holding(data), 0), point).await;
            storm.note("pipe write", point, out.is_some());
            if let Some((r, _)) = out {
                match r {
                    Ok(n) if n == 0 || n > len => {
                        storm.fail(format!("pipe write: {n} of {len} bytes"))
                    }
                    Ok(_) => {}
                    Err(e) => storm.fail(format!("pipe write: {e}")),
                }
            }
        }
        Kind::Sleep => {
            let wait = Duration::from_micros(rng.below(2000) as u64);
            let start = Instant::now();
            let out = drive(sleep(wait), point).await;
            storm.note("sleep", point, out.is_some());
            if out.is_some() && start.elapsed() < wait {
                storm.fail(format!("sleep({wait:?}) ended after {:?}", start.elapsed()));
            }
        }
        Kind::Timeout => {
            let pair = storm.pair(&mut rng);
            let cap = rng.between(1, 16 * 1024);
            let wait = Duration::from_micros(rng.below(500) as u64);
            let read = pair.side(&mut rng).read(ledger.empty(cap));
            let out = within("a timeout", timeout(wait, read)).await;
            storm.note("timeout(read)", DropPoint::Raced(0), out.is_ok());
            if let Ok((r, buf)) = out {
                storm.check_read("timeout(read)", r, cap, buf.bytes());
            }
        }
        Kind::Select => {
            let pair = storm.pair(&mut rng);
            let cap = rng.between(1, 16 * 1024);
            let read = pair.side(&mut rng).read(ledger.empty(cap));
            let accept = rng.percent(50);
            let pipe_cap = rng.between(1, 16 * 1024);
            let raced = async {
                if accept {
                    Either::Left(storm.acc.accept().await)
                } else {
                    Either::Right(storm.pipes[0].0.read_at(ledger.empty(pipe_cap), 0).await)
                }
            };
            let ticker = sleep(Duration::from_micros(rng.below(1000) as u64));
            let out = within("a select", first_of(read, first_of(raced, ticker))).await;
            storm.note("select", DropPoint::Raced(0), true);
            match out {
                Either::Left((r, buf)) => storm.check_read("select read", r, cap, buf.bytes()),
                Either::Right(Either::Left(Either::Left(Ok((stream, _))))) => drop(stream),
                Either::Right(Either::Left(Either::Left(Err(e)))) => {
                    storm.error("select accept", &e)
                }
                Either::Right(Either::Left(Either::Right((r, _)))) => {
                    if let Err(e) = r {
                        storm.fail(format!("select pipe read: {e}"));
                    }
                }
                Either::Right(Either::Right(())) => {}
            }
        }
        Kind::Teardown => {
            // A fresh connection with reads (and maybe a write) in flight on both
            // ends, all dropped in one go: the ops' cancels, the sockets' cancels and
            // their closes are queued together.
            let pair = storm.fresh_pair();
            let turns = rng.below(usize::from(MAX_TURNS));
            {
                let ra = pin!(pair.a.read(ledger.empty(rng.between(1, 8192))));
                let rb = pin!(pair.b.read(ledger.empty(rng.between(1, 8192))));
                let data = storm.random_bytes(&mut rng, 8192);
                let wa = pin!(pair.a.write(ledger.holding(data)));
                let mut ra = Some(ra);
                let mut rb = Some(rb);
                let mut wa = Some(wa);
                for turn in 0..=turns {
                    std::future::poll_fn(|cx| {
                        if ra.as_mut().is_some_and(|f| f.as_mut().poll(cx).is_ready()) {
                            ra = None;
                        }
                        if rb.as_mut().is_some_and(|f| f.as_mut().poll(cx).is_ready()) {
                            rb = None;
                        }
                        if wa.as_mut().is_some_and(|f| f.as_mut().poll(cx).is_ready()) {
                            wa = None;
                        }
                        Poll::Ready(())
                    })
                    .await;
                    if turn < turns {
                        runtime::yield_now().await;
                    }
                }
            }
            drop(pair);
            storm.note("teardown", DropPoint::Polled(0), false);
        }
        Kind::Abort => {
            let pair = Rc::new(storm.fresh_pair());
            let task = {
                let pair = pair.clone();
                let ledger = ledger.clone();
                runtime::spawn(async move {
                    loop {
                        let (r, _) = pair.a.read(ledger.empty(4096)).await;
                        if !matches!(r, Ok(n) if n > 0) {
                            break;
                        }
                    }
                })
            };
            if rng.percent(50) {
                let data = storm.random_bytes(&mut rng, 4096);
                let _ = drive(pair.b.write(ledger.holding(data)), DropPoint::Polled(1)).await;
            }
            drop(pair);
            for _ in 0..rng.below(usize::from(MAX_TURNS)) {
                runtime::yield_now().await;
            }
            task.abort();
            match within("an aborted task", task).await {
                Ok(()) => storm.note("abort", DropPoint::Polled(0), true),
                Err(e) if e.is_cancelled() => storm.note("abort", DropPoint::Polled(0), false),
                Err(e) => storm.fail(format!("abort: the task failed: {e}")),
            }
        }
        Kind::Replace => {
            let fresh = Rc::new(storm.fresh_pair());
            let mut churn = storm.churn.borrow_mut();
            let at = serial % churn.len();
            churn[at] = fresh;
            storm.note("replace", DropPoint::Unpolled, true);
        }
        // A feature this kernel lacks: a plain read instead.
        Kind::SendZc | Kind::RecvStream => {
            let pair = storm.pair(&mut rng);
            let out = drive(pair.side(&mut rng).read(ledger.empty(512)), point).await;
            storm.note("read", point, out.is_some());
        }
    }
}

/// Keeps a stream for a few turns of the ring, then drops it.
async fn hold_then_drop(stream: TcpStream, rng: &mut Rng) {
    for _ in 0..rng.below(4) {
        runtime::yield_now().await;
    }
    drop(stream);
}

/// A read of the data file at a random place, dropped at a random point; what it read
/// must be the file's bytes there.
async fn file_read(storm: &Storm, file: &File, rng: &mut Rng) {
    let point = Storm::point(rng);
    let at = rng.below(FILE_LEN);
    let cap = rng.between(1, 32 * 1024);
    let out = drive(file.read_at(storm.ledger.empty(cap), at as u64), point).await;
    storm.note("file read", point, out.is_some());
    if let Some((r, buf)) = out {
        match r {
            Ok(n) => {
                let want = &storm.file_data[at..(at + cap).min(FILE_LEN)];
                if buf.bytes() != want || n != want.len() {
                    storm.fail(format!(
                        "file read at {at}: {n} bytes that are not the file's ({} expected)",
                        want.len()
                    ));
                }
            }
            Err(e) => storm.fail(format!("file read: {e}")),
        }
    }
}

/// How the reader of a checked connection reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    /// Awaits its reads (a few are dropped before their first poll).
    Plain,
    /// Also polls a read once and drops it at once, often, with data waiting.
    QueuedDrops,
    /// As `QueuedDrops`, and right after each such drop hands the stream off
    /// (`into_std`) and takes it back (`from_std`), as a move between cores does.
    Handoff,
    /// Reads with a multishot receive (provided buffers), never dropped before the end.
    RecvStream,
}

/// What a checked connection delivered.
struct Delivered {
    style: Style,
    sent: stress::Checksum,
    received: stress::Checksum,
    first_mismatch: Option<u64>,
    error: Option<String>,
}

/// Sends `total` bytes of stream `seed` in random pieces (writes, full writes,
/// vectored writes, zero-copy sends; a few dropped unpolled), then closes.
async fn checked_writer(
    stream: TcpStream,
    seed: u64,
    total: u64,
    ledger: Arc<Ledger>,
    zc: bool,
    mut rng: Rng,
) -> Result<stress::Checksum, String> {
    let mut source = StreamSource::new(seed, total);
    while source.remaining() > 0 {
        let data = source.peek(rng.between(1, 48 * 1024));
        let len = data.len();
        let way = rng.below(10);
        let (result, sent) = match way {
            0 => {
                // Dropped before it was ever polled: nothing is sent.
                drop(stream.write(ledger.holding(data)));
                continue;
            }
            1 | 2 => {
                let (r, buf) = within("a checked write", stream.write(ledger.holding(data))).await;
                (r, buf.bytes().to_vec())
            }
            3 if zc => {
                let (r, buf) =
                    within("a checked send_zc", stream.send_zc(ledger.holding(data))).await;
                (r, buf.bytes().to_vec())
            }
            4 => {
                let cut = rng.below(len + 1);
                let bufs = vec![
                    ledger.holding(data[..cut].to_vec()),
                    ledger.holding(data[cut..].to_vec()),
                ];
                let (r, _) = within("a checked vectored write", stream.write_vectored(bufs)).await;
                (r, data)
            }
            _ => {
                let (r, buf) = within(
                    "a checked write_all",
                    stream.write_all(ledger.holding(data)),
                )
                .await;
                (r.map(|()| len), buf.bytes().to_vec())
            }
        };
        match result {
            Ok(n) if n <= len => source.took(&sent, n),
            Ok(n) => return Err(format!("a write reported {n} of {len} bytes")),
            Err(e) => return Err(format!("write failed after {}: {e}", source.checksum())),
        }
        if rng.percent(10) {
            runtime::yield_now().await;
        }
    }
    drop(stream);
    Ok(source.checksum())
}

/// Reads stream `seed` to its end in the connection's style.
async fn checked_reader(
    mut stream: TcpStream,
    seed: u64,
    style: Style,
    ledger: Arc<Ledger>,
    mut rng: Rng,
) -> (StreamCheck, Option<String>) {
    let mut check = StreamCheck::new(seed);
    if style == Style::RecvStream {
        let mut items = stream.recv_stream();
        loop {
            match within("a checked recv_stream", next(&mut items)).await {
                Some(Ok(buf)) => check.feed(&buf),
                Some(Err(e)) => return (check, Some(format!("recv_stream: {e}"))),
                None => return (check, None),
            }
        }
    }
    loop {
        let cap = rng.between(1, 64 * 1024);
        let way = rng.below(10);
        if way == 0 {
            drop(stream.read(ledger.empty(cap)));
            continue;
        }
        if way <= 3 && style != Style::Plain {
            // Polled once and dropped within this poll of the task: its SQE is still
            // queued, and the writer is usually ahead, so data is waiting. A read that
            // never left the queue must not take any of it.
            if let Some((r, buf)) = drive(stream.read(ledger.empty(cap)), DropPoint::Queued).await {
                match r {
                    Ok(0) => return (check, None),
                    Ok(n) => check.feed(&buf.bytes()[..n]),
                    Err(e) => return (check, Some(format!("read: {e}"))),
                }
            }
            if style == Style::Handoff {
                match TcpStream::from_std(stream.into_std()) {
                    Ok(again) => stream = again,
                    Err(e) => return (check, Some(format!("from_std: {e}"))),
                }
            }
            continue;
        }
        let (r, buf) = within("a checked read", stream.read(ledger.empty(cap))).await;
        match r {
            Ok(0) => return (check, None),
            Ok(n) => check.feed(&buf.bytes()[..n]),
            Err(e) => return (check, Some(format!("read: {e}"))),
        }
    }
}

/// fd counts are per process: the tests here run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_storm_of_dropped_operations_leaks_nothing_and_loses_no_data() {
    let _serial = serial();
    raise_fd_limit(8192).unwrap_or_else(|e| println!("fd limit left as is: {e}"));
    let seed = stress::seed("cancellation storm");
    let ops = stress::size("operations started and dropped", 20_000, 100_000);
    let wave = stress::size("operations in flight at once (per wave)", 256, 512);
    let churn_pairs = stress::size("shared connections under the storm", 16, 32);
    let kept_bytes = stress::size("bytes per checked connection", 1 << 20, 8 << 20) as u64;
    let probe = Probe::get().expect("io_uring is available");
    let zc = probe.send_zc();
    let recv_multi = probe.multishot_recv();
    if !zc {
        println!("zero-copy sends left out: this kernel has no IORING_OP_SEND_ZC");
    }
    if !recv_multi {
        println!("multishot receives left out: they need Linux 6.0");
    }
    let styles = [
        Style::Plain,
        Style::QueuedDrops,
        Style::Handoff,
        Style::RecvStream,
    ];
    let styles: Vec<Style> = styles
        .iter()
        .copied()
        .filter(|&s| recv_multi || s != Style::RecvStream)
        .flat_map(|s| [s; 3])
        .collect();

    let dir = TempDir::new("stress-cancel");
    let file_path = dir.join("data");
    let mut file_data = vec![0; FILE_LEN];
    stream_bytes(FILE_SEED, 0, &mut file_data);
    std::fs::write(&file_path, &file_data).unwrap();

    let ledger = Ledger::new();
    let fds_before = open_fds();
    let mut rt = Builder::new()
        .cores(1)
        .pin(false)
        .ring_entries(RING_ENTRIES)
        .recv_buffers(RECV_BUFFERS, RECV_BUFFER_SIZE)
        .build()
        .expect("the runtime starts");
    let started = Instant::now();
    let failures = rt.block_on({
        let ledger = ledger.clone();
        let dir_path = dir.join("");
        async move {
            match timeout(
                STORM_BOUND,
                storm(StormArgs {
                    seed,
                    ops,
                    wave,
                    churn_pairs,
                    kept_bytes,
                    styles,
                    ledger,
                    file_path,
                    file_data,
                    dir: dir_path,
                    zc,
                    recv_multi,
                }),
            )
            .await
            {
                Ok(failures) => failures,
                Err(_) => panic!("the storm did not end within {STORM_BOUND:?} (seed {seed:#x})"),
            }
        }
    });
    println!("storm took {:?}", started.elapsed());
    drop(rt);
    let mut failures = failures;
    if let Err(e) = ledger.check() {
        failures.push(format!("after the runtime was dropped: {e}"));
    }
    let fds = open_fds();
    if fds != fds_before {
        failures.push(format!(
            "after the runtime was dropped: {fds} fds open, {fds_before} before it started"
        ));
    }
    assert!(
        failures.is_empty(),
        "the storm (seed {seed:#x}) broke {} promise(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

struct StormArgs {
    seed: u64,
    ops: usize,
    wave: usize,
    churn_pairs: usize,
    kept_bytes: u64,
    styles: Vec<Style>,
    ledger: Arc<Ledger>,
    file_path: PathBuf,
    file_data: Vec<u8>,
    dir: PathBuf,
    zc: bool,
    recv_multi: bool,
}

/// Runs the storm; returns what went wrong (empty if nothing did).
async fn storm(args: StormArgs) -> Vec<String> {
    let mut rng = Rng::new(args.seed);
    let ledger = args.ledger;
    let base = open_fds();
    let mut failures = Vec::new();

    let maker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let acc = TcpListener::bind("127.0.0.1:0").unwrap();
    let inc = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole = TcpSocket::new_v4().unwrap();
    hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole = hole.listen(0).unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let hole_filler = std::net::TcpStream::connect(hole_addr).unwrap();
    let churn = (0..args.churn_pairs)
        .map(|_| {
            let (a, b) = std_pair(&maker);
            Rc::new(Pair { a, b })
        })
        .collect();
    let pipes = (0..8)
        .map(|_| {
            let (rx, tx) = pipe();
            (File::from_std(rx), File::from_std(tx))
        })
        .collect();
    let file = File::open(&args.file_path).await.unwrap();
    let storm = Rc::new(Storm {
        ledger: ledger.clone(),
        acc_addr: acc.local_addr().unwrap(),
        acc,
        inc_addr: inc.local_addr().unwrap(),
        inc,
        _hole: hole,
        _hole_filler: hole_filler,
        hole_addr,
        churn: RefCell::new(churn),
        pipes,
        file,
        file_path: args.file_path,
        file_data: args.file_data,
        dir: args.dir,
        zc: args.zc,
        recv_multi: args.recv_multi,
        maker,
        outcomes: RefCell::default(),
        errors: RefCell::default(),
        bad: RefCell::default(),
    });

    // The checked connections run through the whole storm.
    let kept: Vec<_> = args
        .styles
        .iter()
        .enumerate()
        .map(|(i, &style)| {
            let (reader, writer) = std_pair(&storm.maker);
            let stream_seed = args.seed ^ ((i as u64 + 1) << 48);
            let writer = runtime::spawn(checked_writer(
                writer,
                stream_seed,
                args.kept_bytes,
                ledger.clone(),
                args.zc,
                rng.fork(),
            ));
            let reader = runtime::spawn(checked_reader(
                reader,
                stream_seed,
                style,
                ledger.clone(),
                rng.fork(),
            ));
            (style, writer, reader)
        })
        .collect();

    // Waves of dropped operations, until there have been enough of them and the
    // checked connections are through.
    let mut launched = 0;
    while launched < args.ops
        || kept
            .iter()
            .any(|(_, w, r)| !w.is_finished() || !r.is_finished())
    {
        let tasks: Vec<_> = (0..args.wave)
            .map(|i| runtime::spawn(churn_op(storm.clone(), rng.fork(), launched + i)))
            .collect();
        launched += tasks.len();
        for task in tasks {
            if let Err(e) = within("an operation of the storm", task).await {
                failures.push(format!("an operation's task failed: {e}"));
            }
        }
    }

    let mut delivered = Vec::new();
    for (style, writer, reader) in kept {
        let sent = within("a checked writer", writer).await;
        let (check, read_error) = within("a checked reader", reader).await.unwrap();
        let (sent, write_error) = match sent {
            Ok(Ok(sum)) => (sum, None),
            Ok(Err(e)) => (stress::Checksum::default(), Some(e)),
            Err(e) => (stress::Checksum::default(), Some(format!("{e}"))),
        };
        delivered.push(Delivered {
            style,
            sent,
            received: check.checksum(),
            first_mismatch: check.first_mismatch(),
            error: write_error.or(read_error),
        });
    }

    println!("{launched} operations started:");
    for ((op, point), (n, finished)) in storm.outcomes.borrow().iter() {
        println!("  {op:>14} {point:>9}: {n:>6} started, {finished:>6} finished before the drop");
    }
    for (what, n) in storm.errors.borrow().iter() {
        println!("  expected error {what}: {n}");
    }
    for d in &delivered {
        println!(
            "  checked {:?}: sent {}, received {}{}",
            d.style,
            d.sent,
            d.received,
            d.first_mismatch
                .map(|at| format!(", first wrong byte at {at}"))
                .unwrap_or_default()
        );
    }
    for d in &delivered {
        if let Some(e) = &d.error {
            failures.push(format!("checked connection ({:?}): {e}", d.style));
        } else if d.sent != d.received || d.first_mismatch.is_some() {
            failures.push(format!(
                "checked connection ({:?}): sent {}, received {}{}",
                d.style,
                d.sent,
                d.received,
                d.first_mismatch
                    .map(|at| format!(" (first wrong byte at {at})"))
                    .unwrap_or_default()
            ));
        }
    }
    failures.extend(storm.bad.borrow().iter().cloned());

    // Everything the storm made goes; what the kernel still held comes back.
    let storm = Rc::into_inner(storm).expect("no task of the storm is left");
    drop(storm);
    let deadline = Instant::now() + tests::BOUND;
    while ledger.live() > 0 && Instant::now() < deadline {
        runtime::nop().await.unwrap();
        runtime::yield_now().await;
    }
    if let Err(e) = ledger.check() {
        failures.push(format!("with the runtime still up: {e}"));
    }
    let open = settle_fds(base).await;
    if open != base {
        failures.push(format!(
            "{open} fds open once the storm was over, {base} before it began"
        ));
    }
    if args.recv_multi {
        if let Err(e) = every_provided_buffer_is_back().await {
            failures.push(e);
        }
    }
    failures
}

/// All the core's provided buffers can be held at once: none was lost in the storm.
async fn every_provided_buffer_is_back() -> Result<(), String> {
    let maker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (reader, writer) = std_pair(&maker);
    let sender = runtime::spawn(async move {
        // More than the buffers hold, in pieces no larger than one buffer.
        for _ in 0..2 * usize::from(RECV_BUFFERS) {
            let (r, _) = writer.write_all(vec![7u8; RECV_BUFFER_SIZE as usize]).await;
            if r.is_err() {
                break;
            }
        }
        writer
    });
    let mut items = reader.recv_stream();
    let mut held = Vec::new();
    let wanted = usize::from(RECV_BUFFERS);
    let got = timeout(tests::BOUND, async {
        while held.len() < wanted {
            match next(&mut items).await {
                Some(Ok(buf)) => held.push(buf),
                other => return Err(format!("recv_stream ended early: {other:?}")),
            }
        }
        Ok(())
    })
    .await;
    let count = held.len();
    drop(held);
    drop(items);
    // With the reader gone the sender's next write fails, and it stops.
    drop(reader);
    let writer = within("the sender", sender).await.unwrap();
    drop(writer);
    match got {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "only {count} of the {wanted} provided buffers could be held at once after the \
             storm: the others never came back to the ring"
        )),
    }
}

/// The fd-number hazard behind a hand-off: a read polled once and dropped (its SQE
/// still queued), then the stream handed off with `into_std` and closed there at once,
/// then a new connection that gets the same fd number. Whatever the dropped read left
/// in the submission queue must not act on the new connection: the bytes sent to it
/// stay there for its owner.
#[test]
fn a_read_dropped_before_a_hand_off_takes_nothing_from_the_fds_next_owner() {
    let _serial = serial();
    const ROUNDS: usize = 20;
    const MESSAGE: &[u8] = b"for the next owner of the fd";
    rt().block_on(within("the hand-offs", async {
        let maker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reused = 0;
        for round in 0..ROUNDS {
            let (old, _old_peer) = std_pair(&maker);
            let number = old.as_raw_fd();
            let dropped = drive(old.read(Vec::with_capacity(64)), DropPoint::Queued).await;
            assert!(dropped.is_none(), "nothing was sent to the old connection");
            // Handed off and closed before the ring turns again.
            drop(old.into_std());
            let client = std::net::TcpStream::connect(maker.local_addr().unwrap()).unwrap();
            let (mut server, _) = maker.accept().unwrap();
            if client.as_raw_fd() != number {
                continue;
            }
            reused += 1;
            std::io::Write::write_all(&mut server, MESSAGE).unwrap();
            let client = TcpStream::from_std(client).unwrap();
            // Turn the ring: whatever was queued reaches the kernel.
            for _ in 0..4 {
                runtime::nop().await.unwrap();
            }
            assert_eq!(
                bytes_readable(client.as_raw_fd()),
                MESSAGE.len(),
                "round {round}: the bytes sent to the connection now on fd {number} were \
                 taken by the read dropped on the connection that had the fd before"
            );
            let (r, buf) = within(
                "the new owner's read",
                client.read_exact(Vec::with_capacity(MESSAGE.len())),
            )
            .await;
            r.unwrap();
            assert_eq!(buf, MESSAGE);
        }
        assert!(
            reused > 0,
            "the fd number was never reused in {ROUNDS} rounds: the test proved nothing"
        );
    }));
}
