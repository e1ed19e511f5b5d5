//! The cross-core workloads: two endpoints, A on CPU [`CPU_A`] and B on CPU
//! [`CPU_B`], joined by two bounded channels of [`CAPACITY`] `u64`s, one each
//! way.
//!
//! - [`Job::PingPong`]: A sends a value to B, B sends it back, and A times
//!   each round trip, from just before the send to just after the reply.
//! - [`Job::Stream`]: A sends `0..messages` to B as fast as the channel takes
//!   them; B adds them up, checks the sum, and sends it back. The run is
//!   timed from A's first send to the sum arriving at A.
//!
//! Before either, B sends A one value to say it is up, and A starts timing
//! only once it has it, so no runtime's setup is measured.
//!
//! The endpoints are written once, here, over the [`Sender`] and [`Receiver`]
//! traits. A contender is one function, `fn(Job) -> io::Result<Run>`, that
//! starts [`endpoint_a`] and [`endpoint_b`] on its runtime, on their CPUs,
//! with its channels: every contender does the same work, and adding one is
//! writing that function.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::mpsc;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crate::measure::{current_cpu, interleaved, Plan};

/// The CPU endpoint A is pinned to.
pub const CPU_A: usize = 0;

/// The CPU endpoint B is pinned to.
pub const CPU_B: usize = 1;

/// Capacity of each of the two channels.
pub const CAPACITY: usize = 1024;

/// What B sends A to say it is up; the workloads never send it otherwise.
const READY: u64 = u64::MAX;

/// An endpoint notes where it runs once every this many messages.
const NOTE_EVERY: u64 = 256;

/// The sending half of a contender's channel.
pub trait Sender {
    /// Sends `value`, waiting while the channel is full; fails if the
    /// receiver is gone.
    fn send(&mut self, value: u64) -> impl Future<Output = io::Result<()>>;
}

/// The receiving half of a contender's channel.
pub trait Receiver {
    /// The next value, waiting while the channel is empty; `None` once every
    /// sender is gone.
    fn recv(&mut self) -> impl Future<Output = Option<u64>>;
}

/// The error a [`Sender`] gives when the receiver is gone.
pub fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the other endpoint is gone")
}

/// One run of a cross-core workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `round_trips` round trips of one value, one after another.
    PingPong {
        /// How many.
        round_trips: u64,
    },
    /// `messages` values from A to B through a bounded channel.
    Stream {
        /// How many.
        messages: u64,
    },
}

impl Job {
    /// The round trips or messages the job does.
    pub fn count(self) -> u64 {
        match self {
            Job::PingPong { round_trips } => round_trips,
            Job::Stream { messages } => messages,
        }
    }
}

/// What A measured in one run, and where both endpoints ran.
#[derive(Debug, Clone)]
pub struct Run {
    /// From the first send to the last reply (ping-pong) or to the sum
    /// arriving (stream).
    pub elapsed: Duration,
    /// Ping-pong: each round trip's time in nanoseconds, in order. Stream: empty.
    pub round_trips: Vec<u64>,
    /// Where A ran.
    pub a: Seat,
    /// Where B ran.
    pub b: Seat,
}

/// What [`endpoint_a`] hands back: its measurements and where it ran.
#[derive(Debug, Clone)]
pub struct SideA {
    elapsed: Duration,
    round_trips: Vec<u64>,
    seat: Seat,
}

impl Run {
    /// Puts together what the two endpoints of one run handed back.
    pub fn new(a: SideA, b: Seat) -> Run {
        Run {
            elapsed: a.elapsed,
            round_trips: a.round_trips,
            a: a.seat,
            b,
        }
    }
}

/// Where an endpoint ran: the OS thread and CPU it was on each time it
/// looked, in order. An endpoint looks at its start, after every
/// `NOTE_EVERY`-th message and at its end, so A's `k`-th look and B's are
/// taken at about the same point of the job: in ping-pong, at the same
/// round trip.
#[derive(Debug, Clone, Default)]
pub struct Seat {
    /// (thread, CPU) at each look.
    pub looks: Vec<(ThreadId, Option<usize>)>,
}

impl Seat {
    fn for_job(job: Job) -> Seat {
        Seat {
            looks: Vec::with_capacity((job.count() / NOTE_EVERY) as usize + 3),
        }
    }

    fn note(&mut self) {
        self.looks.push((thread::current().id(), current_cpu()));
    }
}

/// Endpoint A: drives the job and measures it. `to_b` and `from_b` are its
/// ends of the two channels.
pub async fn endpoint_a<S: Sender, R: Receiver>(
    job: Job,
    mut to_b: S,
    mut from_b: R,
) -> io::Result<SideA> {
    let mut seat = Seat::for_job(job);
    seat.note();
    if from_b.recv().await != Some(READY) {
        return Err(io::Error::other("B did not say it was up"));
    }
    let mut round_trips = Vec::new();
    let start = Instant::now();
    match job {
        Job::PingPong { round_trips: count } => {
            round_trips.reserve_exact(count as usize);
            for value in 0..count {
                let sent = Instant::now();
                to_b.send(value).await?;
                let back = from_b.recv().await.ok_or_else(closed)?;
                round_trips.push(sent.elapsed().as_nanos() as u64);
                if back != value {
                    return Err(io::Error::other(format!(
                        "sent {value} to B, got {back} back"
                    )));
                }
                if value % NOTE_EVERY == 0 {
                    seat.note();
                }
            }
        }
        Job::Stream { messages } => {
            for value in 0..messages {
                to_b.send(value).await?;
                if value % NOTE_EVERY == 0 {
                    seat.note();
                }
            }
            // B has checked the sum; its arrival marks the end of the stream.
            from_b.recv().await.ok_or_else(closed)?;
        }
    }
    let elapsed = start.elapsed();
    seat.note();
    Ok(SideA {
        elapsed,
        round_trips,
        seat,
    })
}

/// Endpoint B: echoes (ping-pong) or adds up (stream) what A sends.
/// `to_a` and `from_a` are its ends of the two channels.
pub async fn endpoint_b<S: Sender, R: Receiver>(
    job: Job,
    mut to_a: S,
    mut from_a: R,
) -> io::Result<Seat> {
    let mut seat = Seat::for_job(job);
    seat.note();
    to_a.send(READY).await?;
    match job {
        Job::PingPong { round_trips } => {
            for n in 0..round_trips {
                let value = from_a.recv().await.ok_or_else(closed)?;
                to_a.send(value).await?;
                if n % NOTE_EVERY == 0 {
                    seat.note();
                }
            }
        }
        Job::Stream { messages } => {
            let mut sum: u64 = 0;
            for n in 0..messages {
                sum = sum.wrapping_add(from_a.recv().await.ok_or_else(closed)?);
                if n % NOTE_EVERY == 0 {
                    seat.note();
                }
            }
            let expected = messages * messages.saturating_sub(1) / 2;
            if sum != expected {
                return Err(io::Error::other(format!(
                    "B received values summing to {sum}, expected {expected}"
                )));
            }
            to_a.send(sum).await?;
        }
    }
    seat.note();
    Ok(seat)
}

/// A way of running the cross-core workloads.
#[derive(Debug, Clone, Copy)]
pub struct CrossContender {
    /// Name in the table.
    pub name: &'static str,
    /// Runs one job, placing the endpoints itself. Called on a new thread
    /// with the process's CPU mask.
    pub run: fn(Job) -> io::Result<Run>,
}

impl CrossContender {
    /// A contender called `name` that runs a job with `run`.
    pub const fn new(name: &'static str, run: fn(Job) -> io::Result<Run>) -> Self {
        CrossContender { name, run }
    }
}

/// A run that has not finished after this long is taken to have hung. The
/// slowest contender's full-size run takes a few seconds.
pub const HANG_AFTER: Duration = Duration::from_secs(30);

/// How many times a run that hung is tried before the workload fails.
const ATTEMPTS: usize = 3;

/// What [`run_cross_rounds`] gives back.
#[derive(Debug)]
pub struct CrossOutcome {
    /// `runs[c][r]`: contender `c`'s run in measured round `r`.
    pub runs: Vec<Vec<Run>>,
    /// `hung[c]`: runs of contender `c` that hung and were run again.
    pub hung: Vec<usize>,
}

/// Runs `job` with every contender over interleaved rounds, as
/// [`crate::measure::run_rounds`] does, each run on a new thread (not pinned:
/// the contenders place their endpoints themselves; `plan.cpu` is not used).
///
/// A run that hangs (see [`HANG_AFTER`]) is left behind, its threads still
/// blocked, and run again, up to `ATTEMPTS` times in all; the hang is counted
/// in [`CrossOutcome::hung`].
pub fn run_cross_rounds(
    contenders: &[CrossContender],
    job: Job,
    plan: &Plan,
) -> io::Result<CrossOutcome> {
    let mut hung = vec![0; contenders.len()];
    let runs = interleaved(contenders.len(), plan, |index| {
        let contender = contenders[index];
        for _ in 0..ATTEMPTS {
            match run_watched(contender, job, HANG_AFTER) {
                Some(result) => {
                    return result.map_err(|err| {
                        io::Error::new(err.kind(), format!("{}: {err}", contender.name))
                    })
                }
                None => hung[index] += 1,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{}: {ATTEMPTS} runs in a row did not finish within {} s",
                contender.name,
                HANG_AFTER.as_secs()
            ),
        ))
    })?;
    Ok(CrossOutcome { runs, hung })
}

/// Runs `job` with `contender` on a new thread; `None` if it has not
/// finished within `patience`.
fn run_watched(contender: CrossContender, job: Job, patience: Duration) -> Option<io::Result<Run>> {
    let (done, result) = mpsc::channel();
    let spawned = thread::Builder::new()
        .name(contender.name.to_string())
        .spawn(move || {
            // The receiver is gone only if the run was given up on.
            let _ = done.send((contender.run)(job));
        });
    let thread = match spawned {
        Ok(thread) => thread,
        Err(err) => return Some(Err(err)),
    };
    match result.recv_timeout(patience) {
        Ok(result) => {
            let _ = thread.join();
            Some(result)
        }
        // The thread panicked: join it to pass the panic on.
        Err(mpsc::RecvTimeoutError::Disconnected) => Some(thread.join().map_or_else(
            |panic| std::panic::resume_unwind(panic),
            |()| Err(io::Error::other("the run ended without a result")),
        )),
        Err(mpsc::RecvTimeoutError::Timeout) => None,
    }
}

/// Whether this machine lets a thread be pinned to both [`CPU_A`] and [`CPU_B`].
pub fn cpus_available() -> bool {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    [CPU_A, CPU_B]
        .iter()
        .all(|cpu| cores.iter().any(|core| core.id == *cpu))
}

/// Where a contender's endpoints ran over a set of runs.
#[derive(Debug, Clone, Default)]
pub struct Whereabouts {
    runs: usize,
    /// Runs in which A and B were never seen on the same OS thread.
    apart: usize,
    /// A's and B's looks paired up by their order (see [`Seat`]), and how
    /// many of the pairs found both on one thread.
    pairs: usize,
    together: usize,
    /// Looks that found A, and B, on each CPU (`None`: the kernel did not say).
    a_on: BTreeMap<Option<usize>, u64>,
    b_on: BTreeMap<Option<usize>, u64>,
}

impl Whereabouts {
    /// Sums up where the endpoints of `runs` ran.
    pub fn of(runs: &[Run]) -> Whereabouts {
        let mut whereabouts = Whereabouts::default();
        for run in runs {
            whereabouts.runs += 1;
            let shared = run
                .a
                .looks
                .iter()
                .any(|(t, _)| run.b.looks.iter().any(|(u, _)| t == u));
            if !shared {
                whereabouts.apart += 1;
            }
            for ((a, _), (b, _)) in run.a.looks.iter().zip(&run.b.looks) {
                whereabouts.pairs += 1;
                whereabouts.together += usize::from(a == b);
            }
            for (seat, on) in [
                (&run.a, &mut whereabouts.a_on),
                (&run.b, &mut whereabouts.b_on),
            ] {
                for (_, cpu) in &seat.looks {
                    *on.entry(*cpu).or_default() += 1;
                }
            }
        }
        whereabouts
    }

    /// Whether every run had A only on [`CPU_A`] and B only on [`CPU_B`],
    /// each on a thread of its own.
    pub fn as_asked(&self) -> bool {
        let only = |on: &BTreeMap<Option<usize>, u64>, cpu| on.keys().all(|c| *c == Some(cpu));
        self.apart == self.runs && only(&self.a_on, CPU_A) && only(&self.b_on, CPU_B)
    }

    /// One line for the table, e.g. `A and B on one thread at 97% of paired
    /// looks, never on one thread in 0 of 5 runs; A on CPU 0 60%, CPU 1 40%;
    /// B on CPU 0 55%, CPU 1 45%`.
    pub fn describe(&self) -> String {
        if self.as_asked() {
            return format!(
                "A on CPU {CPU_A}, B on CPU {CPU_B}, on different threads, in all {} runs",
                self.runs
            );
        }
        format!(
            "A and B on one thread at {:.0}% of paired looks, never on one thread \
             in {} of {} runs; A on {}; B on {}",
            percent(self.together as u64, self.pairs as u64),
            self.apart,
            self.runs,
            shares(&self.a_on),
            shares(&self.b_on)
        )
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

fn shares(on: &BTreeMap<Option<usize>, u64>) -> String {
    let total: u64 = on.values().sum();
    let parts: Vec<String> = on
        .iter()
        .map(|(cpu, seen)| {
            let cpu = cpu.map_or_else(|| "CPU ?".to_string(), |cpu| format!("CPU {cpu}"));
            format!("{cpu} {:.0}%", percent(*seen, total))
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use super::{run_watched, CrossContender, Job, Run, Seat, Whereabouts, CPU_A, CPU_B};

    fn finishes(_: Job) -> io::Result<Run> {
        Ok(run(Seat::default(), Seat::default()))
    }

    fn hangs(_: Job) -> io::Result<Run> {
        std::thread::sleep(Duration::from_secs(2));
        Ok(run(Seat::default(), Seat::default()))
    }

    #[test]
    fn a_run_that_hangs_is_given_up_on() {
        let job = Job::Stream { messages: 1 };
        let patience = Duration::from_millis(100);
        let done = run_watched(CrossContender::new("finishes", finishes), job, patience);
        assert!(matches!(done, Some(Ok(_))));
        let hung = run_watched(CrossContender::new("hangs", hangs), job, patience);
        assert!(hung.is_none());
    }

    fn seat(looks: &[(std::thread::ThreadId, usize)]) -> Seat {
        Seat {
            looks: looks.iter().map(|&(t, cpu)| (t, Some(cpu))).collect(),
        }
    }

    fn run(a: Seat, b: Seat) -> Run {
        Run {
            elapsed: Duration::ZERO,
            round_trips: Vec::new(),
            a,
            b,
        }
    }

    #[test]
    fn whereabouts_tell_shared_threads_and_cpus() {
        let here = std::thread::current().id();
        let there = std::thread::spawn(|| std::thread::current().id())
            .join()
            .unwrap();
        let apart = run(seat(&[(here, CPU_A); 3]), seat(&[(there, CPU_B); 3]));
        assert!(Whereabouts::of(std::slice::from_ref(&apart)).as_asked());
        // B moves to A's thread for its last two looks.
        let moved = run(
            seat(&[(here, CPU_A); 4]),
            seat(&[(there, CPU_B), (there, CPU_B), (here, CPU_A), (here, CPU_A)]),
        );
        let both = Whereabouts::of(&[apart, moved]);
        assert!(!both.as_asked());
        assert_eq!(
            both.describe(),
            format!(
                "A and B on one thread at 29% of paired looks, never on one thread in 1 of 2 \
                 runs; A on CPU {CPU_A} 100%; B on CPU {CPU_A} 29%, CPU {CPU_B} 71%"
            )
        );
    }
}
