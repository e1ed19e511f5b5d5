//! Per-core counters: [`CoreStats`] and the [`Counters`] behind it, and [`RingFlags`],
//! the setup each core's ring really got.
//!
//! Each core owns one [`Counters`] and is the only thread that writes it, so a bump
//! is a relaxed load and a relaxed store (plain `mov`/`add` on x86; no locked
//! instruction, no contention). Other threads may read the counters at any time
//! ([`crate::Handle::stats`]): each value is a whole `u64` some time in the recent
//! past, which is all statistics need. The block is aligned to its own cache lines
//! so that a core bumping its counters never disturbs another core's.
//!
//! One counter is the exception: wake-ups written to a core's eventfd are counted by
//! whichever thread writes (an atomic add next to a `write` system call), on the
//! receiving core's block.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::clock;
use crate::task::QueueCounters;

/// Buckets of [`CoreStats::poll_times`].
pub const POLL_BUCKETS: usize = 6;

/// One counter, written by one thread only.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // Not a read-modify-write: only the owning core writes, so no update is lost.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// For a gauge: the value now.
    #[inline]
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Relaxed);
    }

    /// For a high-water mark: `n` if it is higher.
    #[inline]
    pub(crate) fn raise(&self, n: u64) {
        if n > self.0.load(Relaxed) {
            self.0.store(n, Relaxed);
        }
    }
}

/// The counters of one core.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) ops_submitted: Counter,
    pub(crate) ops_withdrawn: Counter,
    pub(crate) ops_completed: Counter,
    pub(crate) enters: Counter,
    pub(crate) cqes: Counter,
    pub(crate) timers_fired: Counter,
    pub(crate) tasks_spawned: Counter,
    pub(crate) tasks_polled: Counter,
    pub(crate) remote_sent: Counter,
    pub(crate) remote_received: Counter,
    /// Wake-ups of other cores sent as a `MSG_RING` from this core's ring.
    pub(crate) msg_ring_wakes: Counter,
    /// Wake-ups of other cores sent as a write to their eventfd from this core.
    pub(crate) eventfd_wakes: Counter,
    /// Polls by how long they took (`CoreStats::poll_times`), but the first bucket,
    /// which is all the others leave of `tasks_polled + main_polls`.
    pub(crate) poll_times: [Counter; POLL_BUCKETS - 1],
    /// Polls of the future given to `block_on`.
    pub(crate) main_polls: Counter,
    /// Ops the kernel (or the readiness backend) holds, as of the last reap.
    pub(crate) ops_in_flight: Counter,
    /// The most SQEs one `io_uring_enter` submitted.
    pub(crate) sq_max: Counter,
    /// The most CQEs one reap found.
    pub(crate) cq_max: Counter,
    /// Reaps that found the CQ full and CQEs waiting in the kernel's overflow list.
    pub(crate) cq_overflows: Counter,
    /// The kernel's count of CQEs it could not keep (`cq.overflow`).
    pub(crate) cqes_lost: Counter,
    /// Polls that took at least the stall threshold.
    pub(crate) stalls: Counter,
    /// Set to 1 once, before the core runs, when its polls are not timed (no
    /// threshold).
    untimed: AtomicU64,
    /// Wake-ups written to this core's eventfd by any thread: the only counter with
    /// more than one writer, so it is added to atomically.
    eventfd_wakes_received: AtomicU64,
    /// The core's [`RingFlags`] as bits, stored once when its ring is set up.
    ring: AtomicU32,
    /// The core's task queues but the default one (locked when a queue comes or goes,
    /// and by readers); the default queue's counters.
    queues: Mutex<Vec<Arc<QueueCounters>>>,
    default_queue: OnceLock<Arc<QueueCounters>>,
}

impl Counters {
    /// Records that this core does not time its polls (once, before it runs).
    pub(crate) fn set_untimed(&self) {
        self.untimed.store(1, Relaxed);
    }

    /// Records the setup of this core's ring (once, by the core, before it runs).
    pub(crate) fn set_ring(&self, flags: RingFlags) {
        self.ring.store(flags.to_bits(), Relaxed);
    }

    /// Lists a task queue's counters (the first one listed is the default queue's).
    pub(crate) fn add_queue(&self, queue: Arc<QueueCounters>) {
        if let Err(queue) = self.default_queue.set(queue) {
            self.lock_queues().push(queue);
        }
    }

    /// Forgets a task queue that is gone.
    pub(crate) fn remove_queue(&self, queue: &Arc<QueueCounters>) {
        self.lock_queues().retain(|q| !Arc::ptr_eq(q, queue));
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, Vec<Arc<QueueCounters>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue_stats(&self) -> Vec<QueueStats> {
        let stats = |q: &Arc<QueueCounters>| QueueStats {
            name: q.name.clone(),
            shares: q.shares,
            latency: *q.latency.lock().unwrap_or_else(PoisonError::into_inner),
            run_time: clock::to_duration(q.run_ticks.get()),
            polls: q.polls.get(),
            ready: q.ready.get(),
        };
        self.default_queue
            .get()
            .into_iter()
            .map(stats)
            .chain(self.lock_queues().iter().map(stats))
            .collect()
    }

    /// Counts a wake-up written to this core's eventfd (from any thread).
    pub(crate) fn count_eventfd_wake(&self) {
        self.eventfd_wakes_received.fetch_add(1, Relaxed);
    }

    fn poll_times(&self) -> [u64; POLL_BUCKETS] {
        let mut times = [0; POLL_BUCKETS];
        if self.untimed.load(Relaxed) != 0 {
            return times;
        }
        for (time, counter) in times[1..].iter_mut().zip(&self.poll_times) {
            *time = counter.get();
        }
        let polls = self.tasks_polled.get() + self.main_polls.get();
        // Read at slightly different moments: never below zero.
        times[0] = polls.saturating_sub(times[1..].iter().sum());
        times
    }

    pub(crate) fn snapshot(&self) -> CoreStats {
        let mut stats = self.counts();
        stats.run_queue = stats.queues.iter().map(|q| q.ready).sum();
        stats
    }

    fn counts(&self) -> CoreStats {
        CoreStats {
            ops_submitted: self.ops_submitted.get(),
            ops_withdrawn: self.ops_withdrawn.get(),
            ops_completed: self.ops_completed.get(),
            enters: self.enters.get(),
            cqes_reaped: self.cqes.get(),
            tasks_spawned: self.tasks_spawned.get(),
            tasks_polled: self.tasks_polled.get(),
            remote_wakes_sent: self.remote_sent.get(),
            remote_wakes_received: self.remote_received.get(),
            msg_ring_wakes_sent: self.msg_ring_wakes.get(),
            eventfd_wakes_sent: self.eventfd_wakes.get(),
            eventfd_wakes_received: self.eventfd_wakes_received.load(Relaxed),
            timers_fired: self.timers_fired.get(),
            poll_times: self.poll_times(),
            stalls: self.stalls.get(),
            ops_in_flight: self.ops_in_flight.get(),
            sq_entries_max: self.sq_max.get(),
            cq_entries_max: self.cq_max.get(),
            cq_overflows: self.cq_overflows.get(),
            cqes_lost: self.cqes_lost.get(),
            run_queue: 0,
            queues: self.queue_stats(),
            ring: RingFlags::from_bits(self.ring.load(Relaxed)),
        }
    }
}

/// Counters of one core, cheap enough to leave on: plain per-core integers that only
/// that core writes.
///
/// ```
/// let mut rt = runtime::Builder::new().cores(1).build()?;
/// let stats = rt.block_on(async {
///     runtime::nop().await?;
///     Ok::<_, std::io::Error>(runtime::stats())
/// })?;
/// assert!(stats.ops_completed >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreStats {
    /// Operations queued for the kernel.
    pub ops_submitted: u64,
    /// Operations dropped before their submission reached the kernel, and so taken
    /// back unrun (counted in `ops_submitted` too, never in `ops_completed`).
    pub ops_withdrawn: u64,
    /// Operations whose final completion was reaped.
    pub ops_completed: u64,
    /// `io_uring_enter` calls.
    pub enters: u64,
    /// Completion queue entries reaped (including the runtime's own).
    pub cqes_reaped: u64,
    /// Tasks spawned.
    pub tasks_spawned: u64,
    /// Task polls.
    pub tasks_polled: u64,
    /// Wakes and spawned jobs this core sent to other cores (messages left in their
    /// inboxes; several may share one wake-up).
    pub remote_wakes_sent: u64,
    /// Wakes and spawned jobs this core received from other threads.
    pub remote_wakes_received: u64,
    /// Wake-ups of another core this core sent as an `IORING_OP_MSG_RING` from its own
    /// ring (counted when queued; one whose CQE reports a failure is sent again by
    /// eventfd and counted there too).
    pub msg_ring_wakes_sent: u64,
    /// Wake-ups of another core this core sent as a write to that core's eventfd:
    /// without `MSG_RING` (old kernel, `Builder::msg_ring(false)`), while this core's
    /// driver was busy, or after a `MSG_RING` failed. Wake-ups sent by threads that are
    /// not cores of a runtime always go by eventfd; they count only in
    /// `eventfd_wakes_received` of the core they wake.
    pub eventfd_wakes_sent: u64,
    /// Wake-ups written to this core's eventfd by any thread: other cores falling back
    /// from `MSG_RING`, and threads that are not cores. Wake-ups by `MSG_RING` are
    /// counted by their senders only.
    pub eventfd_wakes_received: u64,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Polls (of tasks and of the future given to `block_on`) by how long each took:
    /// under 10 µs, 10-100 µs, 100 µs-1 ms, 1-10 ms, 10-100 ms, and 100 ms or more.
    /// A task's poll includes dropping it when it finished.
    pub poll_times: [u64; POLL_BUCKETS],
    /// Polls that ran at least the stall threshold
    /// ([`Builder::stall_threshold`](crate::Builder::stall_threshold)).
    pub stalls: u64,
    /// Operations the kernel (or, on epoll, the readiness backend) held at the core's
    /// last reap of completions.
    pub ops_in_flight: u64,
    /// The most submission-queue entries one `io_uring_enter` handed over (how full
    /// the SQ got; its size is `Builder::ring_entries`).
    pub sq_entries_max: u64,
    /// The most completions one reap found (how full the CQ got; twice the SQ's size).
    pub cq_entries_max: u64,
    /// Reaps of completions that found the CQ full and more waiting in the kernel's
    /// overflow list (none are lost: they are reaped next).
    pub cq_overflows: u64,
    /// Completions the kernel could not keep at all (its `overflow` count; it should
    /// stay 0).
    pub cqes_lost: u64,
    /// Tasks ready to run (woken, not yet polled) over all the core's queues, as of
    /// each queue's last tick.
    pub run_queue: u64,
    /// The core's task queues: the default one first, then those made with
    /// [`TaskQueue::new`](crate::task::TaskQueue::new) that still exist.
    pub queues: Vec<QueueStats>,
    /// What this core's ring really got from `io_uring_setup`.
    pub ring: RingFlags,
}

/// One task queue of a core, in [`CoreStats::queues`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Its name (`"default"` for the queue [`crate::spawn`] uses).
    pub name: String,
    /// Its shares of the core's time.
    pub shares: u32,
    /// Its latency bound, if it has one.
    pub latency: Option<std::time::Duration>,
    /// How long its tasks' polls ran, in all.
    pub run_time: std::time::Duration,
    /// Its tasks' polls.
    pub polls: u64,
    /// Its tasks that were ready to run (woken, not yet polled) at the end of its
    /// last tick.
    pub ready: u64,
}

/// The setup a core's ring really got: the optional `io_uring_setup` flags the kernel
/// accepted for it (a flag is recorded only if the ring was created with it), and the
/// ways its `io_uring_enter` calls are made.
///
/// By default a ring gets `SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | TASKRUN_FLAG`,
/// each where the kernel has it; with [`Builder::sqpoll`](crate::Builder::sqpoll) it
/// gets `SQPOLL`, plus `SINGLE_ISSUER` where the kernel takes the pair (the kernel
/// refuses the other three with `SQPOLL`).
///
/// ```
/// let rt = runtime::Builder::new().cores(1).build()?;
/// let ring = rt.stats().ring;
/// assert!(!ring.sqpoll);
/// println!("this core's ring: {ring}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingFlags {
    /// `IORING_SETUP_SQPOLL`: a kernel thread polls the submission queue (Linux 5.11
    /// for unprivileged processes).
    pub sqpoll: bool,
    /// `IORING_SETUP_SINGLE_ISSUER`: only the core's thread submits (Linux 6.0).
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN`: completions are run only when the core enters the
    /// kernel to ask for them, never by interrupting it (Linux 6.1).
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN`: the kernel does not interrupt the thread to run
    /// completions (Linux 5.19).
    pub coop_taskrun: bool,
    /// `IORING_SETUP_TASKRUN_FLAG`: the kernel flags pending completions in the SQ ring
    /// (`IORING_SQ_TASKRUN`), so the core knows when to ask for them (Linux 5.19).
    pub taskrun_flag: bool,
    /// The ring fd is registered (`IORING_REGISTER_RING_FDS`, Linux 5.18) and enters
    /// name it by its index.
    pub registered_fd: bool,
    /// Waits pass `IORING_ENTER_NO_IOWAIT` (`IORING_FEAT_NO_IOWAIT`, Linux 6.15), so a
    /// parked core is not counted as waiting for I/O.
    pub no_iowait: bool,
}

impl RingFlags {
    const SQPOLL: u32 = 1 << 0;
    const SINGLE_ISSUER: u32 = 1 << 1;
    const DEFER_TASKRUN: u32 = 1 << 2;
    const COOP_TASKRUN: u32 = 1 << 3;
    const TASKRUN_FLAG: u32 = 1 << 4;
    const REGISTERED_FD: u32 = 1 << 5;
    const NO_IOWAIT: u32 = 1 << 6;

    fn fields(&self) -> [(bool, u32, &'static str); 7] {
        [
            (self.sqpoll, Self::SQPOLL, "SQPOLL"),
            (self.single_issuer, Self::SINGLE_ISSUER, "SINGLE_ISSUER"),
            (self.defer_taskrun, Self::DEFER_TASKRUN, "DEFER_TASKRUN"),
            (self.coop_taskrun, Self::COOP_TASKRUN, "COOP_TASKRUN"),
            (self.taskrun_flag, Self::TASKRUN_FLAG, "TASKRUN_FLAG"),
            (self.registered_fd, Self::REGISTERED_FD, "registered fd"),
            (self.no_iowait, Self::NO_IOWAIT, "NO_IOWAIT waits"),
        ]
    }

    fn to_bits(self) -> u32 {
        self.fields()
            .iter()
            .filter(|(on, _, _)| *on)
            .fold(0, |bits, (_, bit, _)| bits | bit)
    }

    fn from_bits(bits: u32) -> RingFlags {
        RingFlags {
            sqpoll: bits & Self::SQPOLL != 0,
            single_issuer: bits & Self::SINGLE_ISSUER != 0,
            defer_taskrun: bits & Self::DEFER_TASKRUN != 0,
            coop_taskrun: bits & Self::COOP_TASKRUN != 0,
            taskrun_flag: bits & Self::TASKRUN_FLAG != 0,
            registered_fd: bits & Self::REGISTERED_FD != 0,
            no_iowait: bits & Self::NO_IOWAIT != 0,
        }
    }

    /// The optional `io_uring_setup` flags alone, as the kernel names them
    /// (`SQPOLL|SINGLE_ISSUER`), or `no optional flags`.
    pub(crate) fn setup_names(&self) -> String {
        let names: Vec<&str> = self.fields()[..5]
            .iter()
            .filter(|(on, _, _)| *on)
            .map(|(_, _, name)| *name)
            .collect();
        if names.is_empty() {
            "no optional flags".to_owned()
        } else {
            names.join("|")
        }
    }
}

/// The setup flags as the kernel names them, then how enters are made, e.g.
/// `SINGLE_ISSUER|DEFER_TASKRUN|COOP_TASKRUN|TASKRUN_FLAG, registered fd, NO_IOWAIT waits`.
impl fmt::Display for RingFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.setup_names())?;
        for (on, _, name) in &self.fields()[5..] {
            if *on {
                write!(f, ", {name}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_flags_survive_the_bits_and_name_themselves() {
        let flags = RingFlags {
            sqpoll: true,
            single_issuer: true,
            no_iowait: true,
            ..RingFlags::default()
        };
        let counters = Counters::default();
        assert_eq!(counters.snapshot().ring, RingFlags::default());
        counters.set_ring(flags);
        assert_eq!(counters.snapshot().ring, flags);
        assert_eq!(flags.setup_names(), "SQPOLL|SINGLE_ISSUER");
        assert_eq!(flags.to_string(), "SQPOLL|SINGLE_ISSUER, NO_IOWAIT waits");
        assert_eq!(RingFlags::default().to_string(), "no optional flags");
        let all = RingFlags::from_bits(u32::MAX);
        assert_eq!(RingFlags::from_bits(all.to_bits()), all);
        assert!(all.sqpoll && all.defer_taskrun && all.registered_fd && all.no_iowait);
    }
}
