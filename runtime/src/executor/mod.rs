//! The run loop of one core, and the cores of a runtime ([`Cores`]).
//!
//! ```text
//! loop {
//!     poll the main future if it was woken
//!     poll the tasks that were ready when this tick began (at most TICK_BUDGET)
//!     take what other threads left in the inbox: wakes onto the run queue, jobs run
//!     turn the ring: park if nothing is ready (bounded by the next timer), else only
//!     submit; reap every CQE; fire due timers; wake
//! }
//! ```
//!
//! Tasks woken during a tick wait for the next one, so the ring is looked at at least
//! once per `TICK_BUDGET` polls however many tasks stay ready, and the per-poll budget
//! of [`crate::coop`] stops one task from looping on ready resources forever.
//!
//! Each core also tells the runtime's [`Census`] whether it has live tasks: when
//! `block_on` starts, after it runs jobs from the inbox (before it counts them as
//! run), and at the end of each pass of the loop. That is all a graceful shutdown
//! needs from the loop; the rest is in `census.rs`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::clock::{self, Read, Ticks};
use crate::driver::{self, Driver};
use crate::stats::Counters;
use crate::task::{Job, Owner, Ready, TaskId, Tasks};

mod census;
mod cores;
mod inbox;
mod stall;

pub(crate) use census::Census;
pub(crate) use cores::Cores;
use inbox::Inbox;
use stall::PollWatch;
pub use stall::Stall;
pub(crate) use stall::{StallHook, DEFAULT_STALL};

/// What a `Builder` sets for every core's run loop.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How long to look for work before parking (`Builder::spin_before_park`).
    pub(crate) spin: Option<Duration>,
    pub(crate) stall_threshold: Option<Duration>,
    pub(crate) on_stall: StallHook,
}

/// Tasks polled per tick before the ring is looked at again.
const TICK_BUDGET: usize = 256;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Calls `f` with the core running on this thread, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
    let mut f = Some(f);
    let result = CURRENT.try_with(|c| {
        let core = c.borrow();
        (f.take().expect("called once"))(core.as_deref())
    });
    match result {
        Ok(r) => r,
        // The thread is exiting and its core is gone.
        Err(_) => (f.take().expect("not called yet"))(None),
    }
}

/// The core running on this thread, if any.
pub(crate) fn current() -> Option<Rc<Core>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// What the rest of the crate may ask of the core running on this thread.
pub(crate) struct Core {
    pub(crate) driver: Rc<Driver>,
    pub(crate) tasks: Rc<Tasks>,
    pub(crate) cores: Arc<Cores>,
    /// What every core of the runtime has left to do (for a graceful shutdown).
    pub(crate) census: Arc<Census>,
    /// This core's index in its runtime.
    pub(crate) index: usize,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Core {
    fn inbox(&self) -> &Inbox {
        self.cores.inbox(self.index)
    }
}

/// One core: its ring, its tasks and its inbox.
pub(crate) struct Executor {
    /// The core's tokio runtime. First, so that it is dropped right after `shutdown`
    /// has dropped our tasks, and before the rest of the core.
    #[cfg(feature = "tokio-bridge")]
    bridge: Option<crate::tokio_bridge::Bridge>,
    core: Rc<Core>,
    /// How long to look for work before parking (`Builder::spin_before_park`).
    spin: Option<Duration>,
    wakes: RefCell<Vec<TaskId>>,
    /// The owners a turn of the ring made ready, scheduled in one batch.
    woken: RefCell<Vec<Owner>>,
    /// The tasks a tick polls, taken off the run queue at once.
    batch: RefCell<Vec<Ready>>,
    jobs: RefCell<Vec<Job>>,
    /// Whether the census was last told that this core has no live task.
    idle: Cell<bool>,
    /// Poll times: the histogram's buckets and stall reports.
    watch: PollWatch,
}

impl Executor {
    /// Sets up core `index` of `cores` on this thread, which its ring will belong to.
    pub(crate) fn new(
        cores: Arc<Cores>,
        census: Arc<Census>,
        index: usize,
        config: &driver::Config,
        backend: driver::Choice,
        options: &Options,
    ) -> io::Result<Executor> {
        crate::task::set_remote(cores::wake_remote, cores::send_job_remote, cores::exists);
        let counters = cores.counters(index).clone();
        let inbox = cores.inbox(index);
        let driver = match backend {
            driver::Choice::Ring(probe) => Driver::new(config, probe, counters.clone())?,
            driver::Choice::Epoll => Driver::new_epoll(config, counters.clone())?,
        };
        driver.set_wake_fd(inbox.eventfd());
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "runtime::setup",
            core = index,
            backend = if driver.ring_fd().is_some() { "io_uring" } else { "epoll" },
            ring = %counters.snapshot().ring,
            "core set up"
        );
        let driver = Rc::new(driver);
        let tasks = Tasks::new(inbox.core(), counters.clone());
        if options.stall_threshold.is_none() {
            counters.set_untimed();
        }
        #[cfg(feature = "tokio-bridge")]
        let bridge = match config.tokio_bridge {
            true => Some(crate::tokio_bridge::Bridge::new(&driver)?),
            false => None,
        };
        Ok(Executor {
            #[cfg(feature = "tokio-bridge")]
            bridge,
            core: Rc::new(Core {
                driver,
                tasks: Rc::new(tasks),
                cores,
                census,
                index,
                counters,
            }),
            spin: options.spin.filter(|d| !d.is_zero()),
            wakes: Default::default(),
            woken: Default::default(),
            batch: Default::default(),
            jobs: Default::default(),
            idle: Cell::new(true),
            watch: PollWatch::new(options.stall_threshold, options.on_stall.clone()),
        })
    }

    /// The fd of this core's ring.
    pub(crate) fn ring_fd(&self) -> Option<RawFd> {
        self.core.driver.ring_fd()
    }

    fn enter(&self) -> EnterGuard {
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.core.clone()));
        EnterGuard {
            prev,
            _driver: self.core.driver.enter(),
            _tasks: self.core.tasks.enter(),
        }
    }

    /// Runs `future` to completion on this thread, running spawned tasks meanwhile.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _enter = self.enter();
        #[cfg(feature = "tokio-bridge")]
        let bridge = crate::tokio_bridge::Bridge::usable(&self.bridge);
        #[cfg(feature = "tokio-bridge")]
        let _tokio = bridge.map(crate::tokio_bridge::Bridge::enter);
        let core = &*self.core;
        let mut future = pin!(future);
        let waker = core.tasks.main_waker();
        let mut cx = Context::from_waker(&waker);
        core.tasks.wake_main();
        // Tasks the last `block_on`'s future spawned just before it returned.
        self.publish_idle();
        loop {
            if core.tasks.take_main_woken() {
                let _budget = crate::coop::budget();
                let clock = self.watch.clock;
                let start = clock.now();
                let poll = future.as_mut().poll(&mut cx);
                core.counters.main_polls.add(1);
                self.polled(clock.now().wrapping_sub(start), None);
                if let Poll::Ready(output) = poll {
                    // Wake-ups the future sent to other cores may sit in the SQ.
                    core.driver.flush();
                    return output;
                }
            }
            self.tick();
            self.take_remote();
            self.publish_idle();
            let park = !core.tasks.has_ready() && !self.spin_for_work();
            #[cfg(feature = "tokio-bridge")]
            let park = match bridge {
                Some(bridge) => {
                    let messages = || core.inbox().has_messages();
                    bridge.turn(park, &core.driver, &core.tasks, &messages);
                    false
                }
                None => park,
            };
            let mut woken = self.woken.borrow_mut();
            core.driver.turn(park, &mut woken);
            core.tasks.wake_all(&mut woken);
            drop(woken);
            cores::resend(core);
        }
    }

    /// With `spin_before_park`, looks for work for a while before the ring is allowed
    /// to park the thread; `true` if some came. Queued SQEs (wake-ups of other cores
    /// among them) are submitted first, so nobody waits for this core's spin.
    #[inline]
    fn spin_for_work(&self) -> bool {
        let Some(limit) = self.spin else {
            return false;
        };
        let core = &*self.core;
        core.driver.flush();
        let start = Instant::now();
        loop {
            if core.inbox().has_messages() || core.driver.has_work() {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Runs this core until its inbox is closed (by [`Executor::stop`]).
    pub(crate) fn run_until_stopped(&self) {
        self.block_on(Stopped(&self.core));
    }

    /// Polls the tasks of one queue that were ready when the tick began (at most
    /// `TICK_BUDGET`, taken off its run list in one batch; and, while the core is
    /// shared between queues, for at most the queues' slice of time).
    fn tick(&self) {
        let tasks = &self.core.tasks;
        let clock = self.watch.clock;
        let mut batch = self.batch.borrow_mut();
        let Some(pick) = tasks.take_batch(&mut batch, TICK_BUDGET, || clock.now()) else {
            return;
        };
        let _polls = crate::coop::polls();
        // One reading per poll: the end of one is the start of the next.
        let begin = clock.now();
        let (polls, end) = match pick.slice {
            // The usual case (one queue): every task taken is polled. Untimed polls
            // read no clock; the tick as a whole is still timed, for its queue.
            None if !self.watch.timed => {
                self.poll_batch(&batch, pick.queue, begin, clock::Untimed);
                (batch.len(), clock.now())
            }
            // The choice of clock source is made here, not at every poll.
            None => match clock.tsc() {
                Some(tsc) => (batch.len(), self.poll_batch(&batch, pick.queue, begin, tsc)),
                None => (
                    batch.len(),
                    self.poll_batch(&batch, pick.queue, begin, clock),
                ),
            },
            Some(slice) => self.poll_sliced(&batch, pick.queue, begin, slice),
        };
        tasks.end_tick(pick.queue, &mut batch, polls, end.wrapping_sub(begin), end);
    }

    /// Polls every task of `batch` (of queue `queue`), the first starting at `begin`;
    /// when the last ended.
    #[inline(always)]
    fn poll_batch(&self, batch: &[Ready], queue: u16, begin: Ticks, clock: impl Read) -> Ticks {
        let mut start = begin;
        for ready in batch {
            start = self.poll_task(ready, queue, start, clock);
        }
        start
    }

    /// Polls the tasks of `batch` until `slice` has gone by since `begin`; how many it
    /// polled, and when the last ended.
    #[inline(never)]
    fn poll_sliced(
        &self,
        batch: &[Ready],
        queue: u16,
        begin: Ticks,
        slice: Ticks,
    ) -> (usize, Ticks) {
        let mut start = begin;
        for (i, ready) in batch.iter().enumerate() {
            start = self.poll_task(ready, queue, start, self.watch.clock);
            if start.wrapping_sub(begin) >= slice {
                return (i + 1, start);
            }
        }
        (batch.len(), start)
    }

    /// Polls one task that starts at `start` (of queue `queue`); when its poll ended.
    #[inline(always)]
    fn poll_task(&self, ready: &Ready, queue: u16, start: Ticks, clock: impl Read) -> Ticks {
        let tasks = &self.core.tasks;
        ready.task.unschedule();
        // A task's waker is a number whose drop does nothing (`task/waker.rs`): not
        // dropping it saves an indirect call per poll.
        let waker = std::mem::ManuallyDrop::new(ready.id.waker());
        let mut cx = Context::from_waker(&waker);
        crate::coop::refill();
        #[cfg(feature = "tracing")]
        let span = tracing::trace_span!(
            target: "runtime::poll",
            "poll",
            core = self.core.index,
            queue = queue,
            spawned = %ready.task.run.location(),
        )
        .entered();
        if ready.task.run.poll(&mut cx) {
            tasks.remove(ready.id);
        }
        #[cfg(feature = "tracing")]
        drop(span);
        let end = clock.read();
        self.polled(end.wrapping_sub(start), Some((ready, queue)));
        end
    }

    /// Accounts for one poll that took `ticks`: of `task`, or of the main future.
    /// Most polls are shorter than the histogram's first bound, and cost one compare:
    /// that bucket is every poll less the others (`Counters::snapshot`).
    #[inline(always)]
    fn polled(&self, ticks: Ticks, task: Option<(&Ready, u16)>) {
        if ticks >= self.watch.quick {
            self.slow_poll(ticks, task);
        }
    }

    #[cold]
    #[inline(never)]
    fn slow_poll(&self, ticks: Ticks, task: Option<(&Ready, u16)>) {
        if !self.watch.timed {
            // Timed only to share the core between queues: no histogram, no stalls.
            return;
        }
        let bucket = self.watch.bucket(ticks);
        if bucket > 0 {
            self.core.counters.poll_times[bucket - 1].add(1);
        }
        if !self.watch.is_stall(ticks) {
            return;
        }
        self.core.counters.stalls.add(1);
        let stall = Stall {
            core: self.core.index,
            duration: clock::to_duration(ticks),
            queue: task.map_or_else(String::new, |(_, q)| self.core.tasks.queue_name(q)),
            location: task.map(|(t, _)| t.task.run.location()),
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "runtime::stall",
            core = stall.core,
            duration_ms = stall.duration.as_secs_f64() * 1e3,
            queue = %stall.queue,
            spawned = ?stall.location.map(|l| l.to_string()),
            "a poll held the core past the stall threshold"
        );
        self.watch.report(stall);
    }

    #[inline]
    fn take_remote(&self) {
        if self.core.inbox().has_messages() {
            self.take_messages();
        }
    }

    /// Takes what other threads left in the inbox: wakes onto the run queue, jobs run.
    fn take_messages(&self) {
        let core = &*self.core;
        let inbox = core.inbox();
        let mut wakes = self.wakes.borrow_mut();
        let mut jobs = self.jobs.borrow_mut();
        inbox.take(&mut wakes, &mut jobs);
        core.counters
            .remote_received
            .add((wakes.len() + jobs.len()) as u64);
        if !wakes.is_empty() {
            core.tasks.schedule_remote(&mut wakes);
        }
        drop(wakes);
        if jobs.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut *jobs);
        drop(jobs);
        let ran = batch.len();
        for job in batch.drain(..) {
            job();
        }
        // In this order: see "Why a reading is right" in census.rs.
        self.publish_idle();
        core.census.jobs_ran(core.index, ran);
        // Keep the allocation for the next batch.
        *self.jobs.borrow_mut() = batch;
    }

    /// Tells the census if this core's table has become empty, or no longer is.
    fn publish_idle(&self) {
        let idle = self.core.tasks.live() == 0;
        if idle != self.idle.get() {
            self.idle.set(idle);
            self.core.census.set_idle(self.core.index, idle);
        }
    }

    /// Closes this core's inbox: it takes no more work, and a core in
    /// [`Executor::run_until_stopped`] returns. Safe from any thread through
    /// [`Cores::stop`].
    pub(crate) fn stop(&self) {
        self.core.cores.stop(self.core.index);
    }

    /// Cancels every task, then every op, and waits for the kernel to finish with them.
    /// Returns how many tasks were cancelled (none if called again).
    pub(crate) fn shutdown(&self) -> usize {
        self.stop();
        let _enter = self.enter();
        // Our tasks may hold tokio resources (a request in flight): they are dropped in
        // their tokio context, before the tokio runtime itself.
        #[cfg(feature = "tokio-bridge")]
        let _tokio = self.bridge.as_ref().map(crate::tokio_bridge::Bridge::enter);
        let cancelled = self.core.tasks.close();
        self.core.driver.shutdown();
        cancelled
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("index", &self.core.index)
            .finish_non_exhaustive()
    }
}

/// The main future of a core thread: done once the core's inbox is closed.
struct Stopped<'a>(&'a Core);

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        // Closing the inbox leaves a wake of this future in it.
        if self.0.inbox().is_closed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Restores the previous core (and its driver and tasks) when dropped.
struct EnterGuard {
    prev: Option<Rc<Core>>,
    _driver: driver::EnterGuard,
    _tasks: crate::task::EnterGuard,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let mine = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
        drop(mine);
    }
}
