//! Per-core counters: [`CoreStats`] and the [`Counters`] behind it.
//!
//! Each core owns one [`Counters`] and is the only thread that writes it, so a bump
//! is a relaxed load and a relaxed store (plain `mov`/`add` on x86; no locked
//! instruction, no contention). Other threads may read the counters at any time
//! ([`crate::Handle::stats`]): each value is a whole `u64` some time in the recent
//! past, which is all statistics need. The block is aligned to its own cache lines
//! so that a core bumping its counters never disturbs another core's.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CoreStats {
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
            timers_fired: self.timers_fired.get(),
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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
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
    /// Wakes and spawned jobs this core sent to other cores.
    pub remote_wakes_sent: u64,
    /// Wakes and spawned jobs this core received from other threads.
    pub remote_wakes_received: u64,
    /// Timers that fired.
    pub timers_fired: u64,
}
