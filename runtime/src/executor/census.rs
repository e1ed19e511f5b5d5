//! Whether a runtime has work left: the [`Census`] that
//! [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) waits on.
//!
//! Work is a live task on some core, or a job (a task sent with `spawn_on`) that is
//! on its way to a core and has not run there yet. The runtime has no work left once
//! every core's task table is empty and every job sent has run. Nothing pauses the
//! cores to look, so the census reads counters that the cores keep as they go, and
//! the question is when a reading from another thread can be trusted.
//!
//! # What is counted
//!
//! Per core, in one cache-line-aligned block:
//!
//! - `sent`: jobs put in the core's inbox, by any thread. The sender counts a job
//!   *before* it pushes it, so a job is never run uncounted.
//! - `ran`: jobs the core has taken from its inbox and run (a job whose push failed
//!   is counted here too, by its sender: it will never run).
//! - `idle`: the core's task table is empty (its main future aside). The core
//!   publishes it when it changes, at the points of its run loop listed in
//!   [`Executor`](super::Executor); after it runs jobs, it publishes `idle` *before*
//!   it adds them to `ran`.
//!
//! Both counters only grow. All accesses are `SeqCst`; they happen once per job and
//! once per change of `idle`, never per poll or per op.
//!
//! # Why a reading is right
//!
//! [`Census::is_done`] reads, core by core, `ran` then `idle` (the first sweep, which
//! ends at some instant `T`), and then every core's `sent` (the second sweep). It
//! says "done" if every core read idle and the sum of `ran` equals the sum of `sent`.
//!
//! An idle core can only get a task from a job: its main future spawns nothing (on a
//! core thread it only waits for the stop; on core 0 it is the waiting future itself),
//! timers and completions only wake tasks that exist. Suppose there was work at `T`:
//!
//! - A job was sent but had not run by `T`. It was counted in `sent` before `T`, so
//!   the second sweep (after `T`) sees it, while `ran` as read in the first sweep
//!   (before `T`) cannot include it: the sums differ.
//! - No job was in flight at `T`, but some core had a task. That core read idle when
//!   it was visited, so it got the task later, from a job that ran after the visit.
//!   That core published "not idle", then counted the job in `ran`, both after its
//!   visit; had the visit seen that count, it would have seen "not idle" too (the
//!   store came before, and all is `SeqCst`). So the first sweep's `ran` misses that
//!   job, while every job run by `T` was sent by `T` and is in the second sweep's
//!   `sent`: the sums differ again.
//!
//! So "done" means there was no work at `T`, and with no work nothing on a core can
//! make more: only a thread outside the runtime can (with `Handle::spawn_on`), and
//! what it sends once the runtime has stopped is cancelled, as ever.
//!
//! # Who is woken
//!
//! Whoever waits ([`Census::poll_done`]) stores its waker, then reads. A core that
//! becomes idle stores `idle`, then, if a wait is on, wakes the stored waker. Either
//! the reading sees the core idle, or the core finds the waker: no change is missed.
//! The last thing to happen before "done" is always a core becoming idle (a job only
//! ever makes a core busy), so the waiter is woken when it matters, and not by every
//! spawn or wake.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// What each core of one runtime has left to do; see the module docs.
#[derive(Debug)]
pub(crate) struct Census {
    cores: Box<[CoreCount]>,
    /// Whether someone waits for the runtime to be done (cores then wake `waiter`).
    waiting: AtomicBool,
    waiter: Mutex<Option<Waker>>,
}

#[derive(Debug)]
#[repr(align(128))]
struct CoreCount {
    sent: AtomicU64,
    ran: AtomicU64,
    idle: AtomicBool,
}

impl Census {
    pub(crate) fn new(cores: usize) -> Census {
        Census {
            cores: (0..cores)
                .map(|_| CoreCount {
                    sent: AtomicU64::new(0),
                    ran: AtomicU64::new(0),
                    idle: AtomicBool::new(true),
                })
                .collect(),
            waiting: AtomicBool::new(false),
            waiter: Mutex::new(None),
        }
    }

    /// Counts a job about to be pushed to `core`'s inbox.
    pub(crate) fn job_sent(&self, core: usize) {
        self.cores[core].sent.fetch_add(1, SeqCst);
    }

    /// Counts `n` jobs of `core` that have run, or (pushed by nobody) never will.
    pub(crate) fn jobs_ran(&self, core: usize, n: usize) {
        self.cores[core].ran.fetch_add(n as u64, SeqCst);
    }

    /// Publishes whether `core` has no live task; the core calls it when that changes.
    pub(crate) fn set_idle(&self, core: usize, idle: bool) {
        self.cores[core].idle.store(idle, SeqCst);
        if idle && self.waiting.load(SeqCst) {
            let waker = self
                .waiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Whether there was a moment, during this call, with no live task on any core and
    /// no job on its way (see the module docs).
    pub(crate) fn is_done(&self) -> bool {
        let mut ran = 0;
        for core in self.cores.iter() {
            ran += core.ran.load(SeqCst);
            if !core.idle.load(SeqCst) {
                return false;
            }
        }
        let sent: u64 = self.cores.iter().map(|core| core.sent.load(SeqCst)).sum();
        sent == ran
    }

    /// Jobs sent that have not run (after the cores stopped: jobs dropped unrun).
    pub(crate) fn jobs_not_run(&self) -> usize {
        self.cores
            .iter()
            .map(|core| core.sent.load(SeqCst).saturating_sub(core.ran.load(SeqCst)))
            .sum::<u64>() as usize
    }

    /// Ready once [`Census::is_done`]; until then, `cx` is woken whenever a core
    /// becomes idle. Ends with [`Census::stop_waiting`].
    pub(crate) fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut waiter = self.waiter.lock().unwrap_or_else(PoisonError::into_inner);
            match &*waiter {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waiter = Some(cx.waker().clone()),
            }
        }
        self.waiting.store(true, SeqCst);
        if self.is_done() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Forgets the waker of [`Census::poll_done`]; cores stop waking anyone.
    pub(crate) fn stop_waiting(&self) {
        self.waiting.store(false, SeqCst);
        let waker = self
            .waiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(waker);
    }
}
