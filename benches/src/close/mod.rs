//! The close group: what closing a socket, and dropping a runtime, cost while
//! other operations are in flight on the same core. [`run_group`] drives it.
//!
//! Every workload keeps N other reads pending on the core: N loopback TCP
//! connections whose runtime end has one `read` in flight that never completes,
//! because the far end (a plain std socket, held by a child process: `holder`)
//! never sends. Then:
//!
//! - `closing`: closes one more socket at a time, with no op of its own or with a
//!   read that was dropped in flight, and times each close until the runtime's
//!   next op completes (the close has then been submitted and run) and until the
//!   peer, spinning on CPU 1, reads end of stream; then a batch of closes at once;
//!   then the drop of the runtime with the N reads still pending.
//! - `burst`: an echo server with K idle connections; the clients close them all
//!   at once and at once ask a fresh connection for an echo, timed until the
//!   answer.
//!
//! The runtime runs on CPU 0 and everything else on CPU 1.

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use runtime::channel::mpsc::UnboundedSender;

use crate::options::Options;
use crate::report::GroupReport;
use burst::{burst_round, BASELINE};
use closing::close_round;

pub mod burst;
pub mod closing;
pub mod holder;

/// The sizes of a close run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Measured rounds.
    pub rounds: usize,
    /// The numbers of other pending reads to measure with.
    pub pending: Vec<usize>,
    /// Closes per series.
    pub closes: usize,
    /// Idle connections closed at once before the first request.
    pub idle: usize,
}

impl Plan {
    /// The full run.
    pub fn full() -> Plan {
        Plan {
            rounds: 3,
            pending: vec![0, 1_000, 8_000, 16_000],
            closes: 200,
            idle: 5_000,
        }
    }

    /// The smoke run of `--quick`.
    pub fn quick() -> Plan {
        Plan {
            rounds: 1,
            pending: vec![0, 1_000],
            closes: 50,
            idle: 500,
        }
    }

    /// The plan of `options`: the full or quick one, with what the command line
    /// sets instead.
    pub fn of(options: &Options) -> Plan {
        let base = if options.quick {
            Plan::quick()
        } else {
            Plan::full()
        };
        Plan {
            rounds: options.rounds.unwrap_or(base.rounds),
            pending: options.pending.clone().unwrap_or(base.pending),
            closes: options.closes.unwrap_or(base.closes),
            idle: options.idle.unwrap_or(base.idle),
        }
    }
}

/// Fds beyond the sockets: the ring, its eventfd, stdio, the listener and so on.
const SPARE_FDS: u64 = 256;

/// Closes done and thrown away before the measured rounds.
const WARMUP_CLOSES: usize = 20;

/// The far ends of the pending reads' connections are in a child process; both
/// ends of the closed ones are here.
fn fds_for_closes(pending: usize, closes: usize) -> u64 {
    (pending + 2 * 3 * closes) as u64 + SPARE_FDS
}

fn fds_for_burst(idle: usize) -> u64 {
    2 * (idle + BASELINE + 1) as u64 + SPARE_FDS
}

/// Runs the close group as `options` say, into `report`.
pub fn run_group(options: &Options, report: &mut GroupReport) {
    if let Err(err) = run(&Plan::of(options), report) {
        report.fail(err.to_string());
    }
}

fn run(plan: &Plan, report: &mut GroupReport) -> io::Result<()> {
    let wanted = plan
        .pending
        .iter()
        .map(|&n| fds_for_closes(n, plan.closes))
        .chain([fds_for_burst(plan.idle)])
        .max()
        .unwrap_or(SPARE_FDS);
    let limit = raise_fd_limit(wanted)?;
    let mut pending = Vec::new();
    for &n in &plan.pending {
        let needed = fds_for_closes(n, plan.closes);
        if needed <= limit {
            pending.push(n);
        } else {
            report.skip(format!(
                "{n} pending reads need {needed} fds, the fd limit is {limit}"
            ));
        }
    }
    let idle = if plan.idle > 0 && fds_for_burst(plan.idle) > limit {
        report.skip(format!(
            "{} idle connections need {} fds, the fd limit is {limit}",
            plan.idle,
            fds_for_burst(plan.idle)
        ));
        0
    } else {
        plan.idle
    };
    report.about(format!(
        "the runtime (one core) on CPU {RUNTIME_CPU}, peers and clients on CPU {PEER_CPU}; \
         {} round(s), each figure the median over rounds; N = {}; {} closes per series; \
         K = {idle}",
        plan.rounds,
        pending
            .iter()
            .map(|n| crate::report::grouped(*n as u64))
            .collect::<Vec<_>>()
            .join(", "),
        plan.closes,
    ));

    close_round(0, WARMUP_CLOSES)?;
    let mut closes = Vec::new();
    let mut bursts = Vec::new();
    for round in 1..=plan.rounds {
        for &n in &pending {
            eprintln!(
                "round {round}/{}: closes with {n} pending reads",
                plan.rounds
            );
            closes.push(close_round(n, plan.closes)?);
        }
        if idle > 0 {
            eprintln!(
                "round {round}/{}: first request after {idle} closes",
                plan.rounds
            );
            bursts.push(burst_round(idle)?);
        }
    }
    for section in crate::report::close::closes(&closes, &pending, plan.closes) {
        report.section(section);
    }
    if let Some(section) = crate::report::close::burst(&bursts, idle) {
        report.section(section);
    }
    Ok(())
}

/// The CPU of the runtime's only core.
pub const RUNTIME_CPU: usize = 0;

/// The CPU of the peers and clients.
pub const PEER_CPU: usize = 1;

/// The longest any step of the benchmark waits before it gives up with an error.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Raises this process's fd limit to at least `wanted`, the hard limit too if need
/// be (which takes root), and returns the soft limit in force afterwards.
pub fn raise_fd_limit(wanted: u64) -> io::Result<u64> {
    // SAFETY: rlimit is plain old data; getrlimit fills the one we pass.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes only the rlimit we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur >= wanted {
        return Ok(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: limit.rlim_max.max(wanted),
    };
    // SAFETY: setrlimit reads only the rlimit we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(wanted);
    }
    // Not allowed to raise the hard limit: take as much as it allows.
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// `count` connected loopback pairs through `listener`: (connecting end, accepted
/// end). One connection at a time, so the listener's backlog never fills.
pub fn loopback_pairs(
    listener: &TcpListener,
    count: usize,
) -> io::Result<Vec<(TcpStream, TcpStream)>> {
    let addr = listener.local_addr()?;
    (0..count)
        .map(|_| {
            let near = TcpStream::connect(addr)?;
            let (far, _) = listener.accept()?;
            Ok((near, far))
        })
        .collect()
}

/// Waits on `streams` in order for end of stream, spinning on nonblocking reads,
/// and sends the instant each one saw it. Fails if a stream yields data or
/// errors, or has not ended within [`PATIENCE`] of the previous one.
pub fn watch_for_eof(streams: Vec<TcpStream>, seen: UnboundedSender<Instant>) -> io::Result<()> {
    let mut buf = [0u8; 64];
    for (i, mut stream) in streams.into_iter().enumerate() {
        stream.set_nonblocking(true)?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "peer {i} got {n} bytes where it waited for end of stream"
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("peer {i} saw no end of stream within {PATIENCE:?}"),
                        ));
                    }
                    std::hint::spin_loop();
                }
                Err(e) => return Err(e),
            }
        }
        if seen.send(Instant::now()).is_err() {
            // The runtime side gave up; its error tells why.
            return Ok(());
        }
    }
    Ok(())
}

/// The CPU-time clock of one thread (user and system time, not time spent
/// waiting or preempted), readable from any thread while that one lives: a figure
/// other work on the machine does not inflate.
#[derive(Debug, Clone, Copy)]
pub struct ThreadClock(libc::clockid_t);

impl ThreadClock {
    /// The clock of the calling thread.
    pub fn of_current_thread() -> io::Result<ThreadClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self names the calling thread, which is alive; the call
        // writes only `id`.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        if rc == 0 {
            Ok(ThreadClock(id))
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }

    /// The thread's CPU time so far, in nanoseconds (0 if the clock cannot be
    /// read, which happens only once the thread has exited).
    pub fn nanos(self) -> u64 {
        // SAFETY: timespec is plain old data; clock_gettime fills the one we pass.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: clock_gettime writes only `now`.
        if unsafe { libc::clock_gettime(self.0, &mut now) } != 0 {
            return 0;
        }
        now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
    }
}

/// Nanoseconds from `from` to `to` (0 if `to` is earlier).
pub fn nanos_between(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::Plan;
    use crate::options::{Options, Tool};

    fn plan(args: &[&str]) -> Plan {
        let options = Options::parse(Tool::Closebench, args.iter().map(|a| a.to_string()))
            .unwrap()
            .unwrap();
        Plan::of(&options)
    }

    #[test]
    fn quick_and_flags_make_the_plan() {
        assert_eq!(plan(&[]), Plan::full());
        assert_eq!(plan(&["--quick"]), Plan::quick());
        let mixed = plan(&["--quick", "--pending", "0, 8000", "--rounds", "5"]);
        assert_eq!(mixed.pending, vec![0, 8_000]);
        assert_eq!(mixed.rounds, 5);
        assert_eq!(mixed.closes, Plan::quick().closes);
        let sized = plan(&["--closes", "10", "--idle", "0"]);
        assert_eq!((sized.closes, sized.idle), (10, 0));
    }
}
