//! `closebench`: what closing a socket, and dropping a runtime, cost while other
//! operations are in flight on the same core.
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

pub mod burst;
pub mod closing;
pub mod holder;
pub mod options;
pub mod report;

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

/// The load averages of the machine over 1, 5 and 15 minutes, as
/// `/proc/loadavg` gives them: other work on the machine shows here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The kernel's release, as `uname -r` prints it.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}
