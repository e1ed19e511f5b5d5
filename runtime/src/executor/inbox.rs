//! Where other threads leave work for a core: wakes of its tasks and jobs to run.
//!
//! Each core has one [`Inbox`], registered in a process-wide table under the core's
//! process-wide number (the number its tasks' wakers carry), so that a waker woken
//! on any thread finds its way home.
//!
//! # No lost wake
//!
//! A sender pushes under the inbox lock, then sets `notified`; if it was clear, the
//! sender wakes the core (a `MSG_RING` from its own ring, or a write to the core's
//! eventfd, which the core's ring always has a read on, so a parked core wakes).
//! The core clears `notified` *before* it takes the queue under the lock. So a push
//! either lands before the take (and is taken), or sees `notified` clear after the
//! core cleared it (and wakes the core again): one wake-up per batch, none lost.
//!
//! A closed inbox (the core is stopping) drops later wakes and hands later jobs back,
//! so their join handles learn that the task was cancelled.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use crate::stats::Counters;
use crate::task::{Job, TaskId, MAX_CORES};

/// One core's inbox.
#[derive(Debug)]
pub(crate) struct Inbox {
    core: u16,
    pending: Mutex<Pending>,
    notified: AtomicBool,
    eventfd: OwnedFd,
    /// The core's ring, for `MSG_RING`: a duplicate fd the runtime keeps open until
    /// every core has stopped; -1 until the core is up.
    ring_fd: AtomicI32,
    /// The core's counters, where eventfd wake-ups from any thread are counted.
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Pending {
    wakes: Vec<TaskId>,
    jobs: Vec<Job>,
    closed: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("wakes", &self.wakes.len())
            .field("jobs", &self.jobs.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl Inbox {
    fn new(core: u16, counters: Arc<Counters>) -> io::Result<Inbox> {
        Ok(Inbox {
            core,
            pending: Mutex::new(Pending::default()),
            notified: AtomicBool::new(false),
            eventfd: crate::sys::eventfd()?,
            ring_fd: AtomicI32::new(-1),
            counters,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // No user code runs under this lock (jobs are run and dropped outside it).
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The core's process-wide number.
    pub(crate) fn core(&self) -> u16 {
        self.core
    }

    /// The fd the core's ring reads to wake up.
    pub(crate) fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// The fd of the core's ring, for `MSG_RING`, once the core is up.
    pub(crate) fn ring_fd(&self) -> Option<RawFd> {
        let fd = self.ring_fd.load(Ordering::Acquire);
        (fd >= 0).then_some(fd)
    }

    pub(crate) fn set_ring_fd(&self, fd: RawFd) {
        self.ring_fd.store(fd, Ordering::Release);
    }

    /// Leaves a wake; `true` if the caller must wake the core.
    pub(crate) fn push_wake(&self, id: TaskId) -> bool {
        let mut pending = self.lock();
        if pending.closed {
            return false;
        }
        pending.wakes.push(id);
        drop(pending);
        self.mark()
    }

    /// Leaves a job; `Ok(true)` if the caller must wake the core, the job back if the
    /// core is stopping.
    pub(crate) fn push_job(&self, job: Job) -> Result<bool, Job> {
        let mut pending = self.lock();
        if pending.closed {
            return Err(job);
        }
        pending.jobs.push(job);
        drop(pending);
        Ok(self.mark())
    }

    fn mark(&self) -> bool {
        !self.notified.swap(true, Ordering::AcqRel)
    }

    /// Whether something may have been left since the last `take` (one atomic load).
    pub(crate) fn has_messages(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Takes what was left since the last call.
    pub(crate) fn take(&self, wakes: &mut Vec<TaskId>, jobs: &mut Vec<Job>) {
        self.notified.store(false, Ordering::Release);
        let mut pending = self.lock();
        wakes.append(&mut pending.wakes);
        jobs.append(&mut pending.jobs);
    }

    /// Stops taking work: later wakes are dropped and later jobs handed back. Leaves
    /// a wake of the core's main future (so a core waiting for this stops) and
    /// returns the jobs that were waiting, for the caller to drop.
    pub(crate) fn close(&self, main: TaskId) -> Vec<Job> {
        let mut pending = self.lock();
        if pending.closed {
            return Vec::new();
        }
        pending.closed = true;
        pending.wakes.push(main);
        let jobs = std::mem::take(&mut pending.jobs);
        drop(pending);
        self.mark();
        // A stop, not a wake-up: not counted.
        crate::sys::eventfd_signal(self.eventfd.as_raw_fd());
        jobs
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Wakes the core through its eventfd, and counts it on the core.
    pub(crate) fn signal(&self) {
        crate::sys::eventfd_signal(self.eventfd.as_raw_fd());
        self.counters.count_eventfd_wake();
    }
}

/// Inboxes by process-wide core number.
static REGISTRY: RwLock<Vec<Option<Arc<Inbox>>>> = RwLock::new(Vec::new());

/// Makes one inbox per core (`counters` by core index) with consecutive core numbers
/// and registers them.
pub(crate) fn register(counters: &[Arc<Counters>]) -> io::Result<Vec<Arc<Inbox>>> {
    let n = counters.len();
    let mut table = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    // The first run of `n` free numbers, else after the end.
    let mut base = 0;
    while base < table.len() {
        let end = (base + n).min(table.len());
        match table[base..end].iter().position(Option::is_some) {
            Some(taken) => base += taken + 1,
            None => break,
        }
    }
    if base + n > MAX_CORES {
        return Err(io::Error::other(format!(
            "too many runtime cores alive in this process (at most {MAX_CORES})"
        )));
    }
    if table.len() < base + n {
        table.resize(base + n, None);
    }
    let mut inboxes = Vec::with_capacity(n);
    for core in base..base + n {
        match Inbox::new(core as u16, counters[core - base].clone()) {
            Ok(inbox) => inboxes.push(Arc::new(inbox)),
            Err(e) => {
                for slot in &mut table[base..core] {
                    *slot = None;
                }
                return Err(e);
            }
        }
        table[core] = inboxes.last().cloned();
    }
    Ok(inboxes)
}

/// Forgets the inboxes of cores that are gone.
pub(crate) fn unregister(inboxes: &[Arc<Inbox>]) {
    let mut table = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    let removed: Vec<_> = inboxes
        .iter()
        .filter_map(|inbox| {
            table
                .get_mut(usize::from(inbox.core))
                .and_then(Option::take)
        })
        .collect();
    drop(table);
    drop(removed);
}

/// Runs `f` on the inbox of process-wide core `core`, if that core still exists.
pub(crate) fn with<R>(core: u16, f: impl FnOnce(&Inbox) -> R) -> Option<R> {
    let table = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    table
        .get(usize::from(core))
        .and_then(Option::as_ref)
        .map(|inbox| f(inbox))
}
