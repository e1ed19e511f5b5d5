//! Task queues: each core's tasks in named queues that share the core's time.
//!
//! Every task belongs to one queue of its core: [`crate::spawn`]'s go to the core's
//! default queue, [`TaskQueue::spawn`]'s to that queue. Each queue has its own run
//! list, and a tick of the run loop polls the ready tasks of one queue only:
//!
//! - **Shares are of run time.** Each queue keeps a virtual run time: the time its
//!   ticks took (every poll is timed, see `executor/stall.rs`), divided by its shares.
//!   A tick goes to the queue with work whose virtual time is least, so over time two
//!   busy queues get the core in the ratio of their shares, however long or short
//!   their polls. A queue that had no work is brought up to the least virtual time
//!   of the others when it gets some, so sleeping banks no credit.
//! - **A latency bound** (`TaskQueue::latency`) says how long a queue with work may
//!   wait: a queue that has waited half its bound runs before any other (the one
//!   waiting longest first), and while any queue has a bound, every tick ends after
//!   half the least bound (at most 1 ms), so the ring, its timers and its wake-ups
//!   are looked at that often. A bound takes precedence over shares.
//! - **Ticks are cut by time** only when there is something to share: with one queue
//!   (the default, or one with work and none with a bound) a tick is up to 256 polls,
//!   exactly as without queues.
//!
//! Polls are cooperative: a poll that does not return holds its core whatever its
//! queue (that is what stall detection reports).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::clock::{self, Ticks};
use crate::stats::Counter;

use super::{JoinHandle, Ready, Tasks};

/// The longest a tick runs while the core is shared.
const SLICE: Duration = Duration::from_millis(1);

/// Virtual time is run time times this over the shares (so shares up to this divide
/// without losing much).
const SCALE: u128 = 1 << 16;

/// The most shares a queue may have (and the default queue's).
pub const MAX_SHARES: u32 = 1 << 16;

/// The default queue's shares.
pub(crate) const DEFAULT_SHARES: u32 = 1000;

/// Tasks ready to be polled, in order: what a tick takes from.
#[derive(Default)]
pub(super) struct RunList {
    /// Each entry carries what polling needs (the id and the task), so taking the next
    /// task looks nothing up. A tick takes the whole queue at once (a swap) when it
    /// holds no more than the tick's budget.
    pub(super) queue: Vec<Ready>,
    /// Entries older than all of `queue`, left over when a tick found more than its
    /// budget (or was cut short by time), the next to run *last*: a stack, so that
    /// taking from the front of the run order is taking from the end of the `Vec`
    /// (no shifting, and moves the compiler does in one reserved pass). Each entry
    /// moves here at most once per wake, so a long queue costs no more per task than
    /// a short one.
    backlog: Vec<Ready>,
}

impl RunList {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.backlog.is_empty()
    }

    fn len(&self) -> usize {
        self.queue.len() + self.backlog.len()
    }

    /// Moves up to `max` entries from the front to `batch`; how many.
    #[inline]
    fn take(&mut self, batch: &mut Vec<Ready>, max: usize) -> usize {
        debug_assert!(batch.is_empty());
        if self.backlog.is_empty() {
            let n = self.queue.len();
            if n == 0 {
                return 0;
            }
            if n <= max {
                std::mem::swap(batch, &mut self.queue);
                return n;
            }
            self.backlog.extend(self.queue.drain(..).rev());
        }
        let n = self.backlog.len().min(max);
        let rest = self.backlog.len() - n;
        batch.extend(self.backlog.drain(rest..).rev());
        n
    }

    /// Puts entries taken but not polled back at the front, in their order.
    fn put_back(&mut self, rest: impl DoubleEndedIterator<Item = Ready>) {
        self.backlog.extend(rest.rev());
    }

    /// Takes every entry out (in no particular order).
    pub(super) fn clear(&mut self) -> (Vec<Ready>, Vec<Ready>) {
        (
            std::mem::take(&mut self.queue),
            std::mem::take(&mut self.backlog),
        )
    }
}

/// One queue of a core.
pub(super) struct Queue {
    pub(super) list: RunList,
    shares: u32,
    /// Half the latency bound, in ticks of the clock.
    due_after: Option<Ticks>,
    vtime: u128,
    last_run: Ticks,
    /// Live tasks of this queue (not counted for the default queue).
    pub(super) live: usize,
    /// `TaskQueue` handles to it (none for the default queue, which lives as long as
    /// the core).
    handles: usize,
    pub(super) counters: Arc<QueueCounters>,
}

/// What another thread may read of a queue (`CoreStats::queues`): written by its core
/// only, a tick at a time; listed in the core's `Counters` while the queue exists.
#[derive(Debug)]
pub(crate) struct QueueCounters {
    pub(crate) name: String,
    pub(crate) shares: u32,
    pub(crate) latency: Mutex<Option<Duration>>,
    pub(crate) run_ticks: Counter,
    pub(crate) polls: Counter,
    pub(crate) ready: Counter,
}

impl Queue {
    pub(super) fn new(name: String, shares: u32) -> Queue {
        Queue {
            list: RunList::default(),
            shares,
            due_after: None,
            vtime: 0,
            last_run: 0,
            live: 0,
            handles: 0,
            counters: Arc::new(QueueCounters {
                name,
                shares,
                latency: Mutex::new(None),
                run_ticks: Counter::default(),
                polls: Counter::default(),
                ready: Counter::default(),
            }),
        }
    }

    /// Whether nothing refers to it any more (never true of the default queue).
    pub(super) fn unused(&self) -> bool {
        self.live == 0 && self.handles == 0
    }
}

/// Which queue a tick polls, and for how long at most.
pub(crate) struct Pick {
    pub(crate) queue: u16,
    /// Ticks of the clock after which the tick stops; `None`: only the poll budget.
    pub(crate) slice: Option<Ticks>,
}

/// The queues of one core: the default one, then the others (a free slot is `None`).
pub(super) struct Queues {
    pub(super) default: Queue,
    pub(super) others: Vec<Option<Queue>>,
    /// Queues in `others` that exist; with none, a tick is the default queue's.
    extra: usize,
    /// Queues with a latency bound.
    bounded: usize,
    /// The least virtual time a queue with work had when it was last picked: where
    /// a queue that gets work after none starts from.
    floor: u128,
    /// A tick's slice while the core is shared.
    slice: Ticks,
}

impl Queues {
    pub(super) fn new() -> Queues {
        Queues {
            default: Queue::new(String::from("default"), DEFAULT_SHARES),
            others: Vec::new(),
            extra: 0,
            bounded: 0,
            floor: 0,
            slice: clock::from_duration(SLICE),
        }
    }

    /// Queue `index`, if it still exists (the default one always does).
    #[inline]
    fn find(&mut self, index: u16) -> Option<&mut Queue> {
        match index {
            0 => Some(&mut self.default),
            i => self.others[usize::from(i) - 1].as_mut(),
        }
    }

    /// Queue `index`, which a live task or a handle keeps.
    #[inline]
    pub(super) fn get(&mut self, index: u16) -> &mut Queue {
        self.find(index).expect("a live task's queue exists")
    }

    /// The run list of queue `index`: the default queue's without a lookup.
    #[inline(always)]
    pub(super) fn list(&mut self, index: u16) -> &mut RunList {
        if index == 0 {
            &mut self.default.list
        } else {
            self.other_list(index)
        }
    }

    #[cold]
    #[inline(never)]
    fn other_list(&mut self, index: u16) -> &mut RunList {
        &mut self.get(index).list
    }

    /// Whether the default queue has work, and whether there are other queues.
    #[inline(always)]
    pub(super) fn ready_hint(&self) -> (bool, bool) {
        (!self.default.list.is_empty(), self.extra > 0)
    }

    /// Whether a queue other than the default one has work.
    #[cold]
    #[inline(never)]
    pub(super) fn others_ready(&self) -> bool {
        self.others.iter().flatten().any(|q| !q.list.is_empty())
    }

    /// Adds a queue; its index.
    pub(super) fn add(&mut self, queue: Queue) -> io::Result<u16> {
        let slot = match self.others.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.others.len() < usize::from(u16::MAX) => {
                self.others.push(None);
                self.others.len() - 1
            }
            None => {
                return Err(io::Error::other(format!(
                    "a core has at most {} task queues",
                    u16::MAX
                )))
            }
        };
        let mut queue = queue;
        queue.vtime = self.floor;
        queue.handles = 1;
        self.others[slot] = Some(queue);
        self.extra += 1;
        Ok(slot as u16 + 1)
    }

    /// Forgets queue `index` if nothing refers to it.
    pub(super) fn release_if_unused(&mut self, index: u16) -> Option<Queue> {
        if index == 0 || !self.get(index).unused() {
            return None;
        }
        let queue = self.others[usize::from(index) - 1].take()?;
        self.extra -= 1;
        if queue.due_after.is_some() {
            self.bounded -= 1;
            // The slice follows the least bound of the queues that are left.
            self.slice = self
                .others
                .iter()
                .flatten()
                .filter_map(|q| q.due_after)
                .fold(clock::from_duration(SLICE), Ticks::min);
        }
        Some(queue)
    }

    fn set_latency(&mut self, index: u16, bound: Duration) {
        let half = clock::from_duration(bound / 2).max(1);
        let queue = self.get(index);
        let had = queue.due_after.replace(half).is_some();
        *queue
            .counters
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(bound);
        if !had {
            self.bounded += 1;
        }
        self.slice = self.slice.min(half);
    }

    /// Chooses the queue a tick polls and moves up to `max` of its ready tasks to
    /// `batch`; `None` if no queue has work.
    #[inline]
    pub(super) fn take(
        &mut self,
        batch: &mut Vec<Ready>,
        max: usize,
        now: impl FnOnce() -> Ticks,
    ) -> Option<Pick> {
        if self.extra == 0 {
            return (self.default.list.take(batch, max) > 0).then_some(Pick {
                queue: 0,
                slice: None,
            });
        }
        self.take_shared(batch, max, now())
    }

    fn take_shared(&mut self, batch: &mut Vec<Ready>, max: usize, now: Ticks) -> Option<Pick> {
        let floor = self.floor;
        // (index, waiting for its bound since, virtual time)
        let mut due: Option<(u16, Ticks)> = None;
        let mut least: Option<(u16, u128)> = None;
        let mut ready = 0;
        let candidates = std::iter::once((0u16, &mut self.default)).chain(
            self.others
                .iter_mut()
                .enumerate()
                .filter_map(|(i, q)| q.as_mut().map(|q| (i as u16 + 1, q))),
        );
        for (index, queue) in candidates {
            if queue.list.is_empty() {
                continue;
            }
            ready += 1;
            queue.vtime = queue.vtime.max(floor);
            if let Some(half) = queue.due_after {
                let waited = now.saturating_sub(queue.last_run);
                if waited >= half && due.is_none_or(|(_, w)| waited > w) {
                    due = Some((index, waited));
                }
            }
            if least.is_none_or(|(_, v)| queue.vtime < v) {
                least = Some((index, queue.vtime));
            }
        }
        let (index, vtime) = least?;
        let index = due.map_or(index, |(i, _)| i);
        if due.is_none() {
            self.floor = vtime;
        }
        let shared = ready > 1 || self.bounded > 0;
        let slice = shared.then_some(self.slice);
        let n = self.get(index).list.take(batch, max);
        debug_assert!(n > 0);
        Some(Pick {
            queue: index,
            slice,
        })
    }

    /// Puts entries a tick of queue `index` took and did not poll back at its front.
    #[cold]
    pub(super) fn put_back(&mut self, index: u16, rest: impl DoubleEndedIterator<Item = Ready>) {
        // A queue whose last task finished in this tick and that has no handle left
        // is gone already (and had nothing left to put back).
        if let Some(queue) = self.find(index) {
            queue.list.put_back(rest);
        }
    }

    /// Charges a tick of queue `index` that polled `polls` tasks in `ticks`, ending at
    /// `end`.
    #[inline]
    pub(super) fn charge(&mut self, index: u16, ticks: Ticks, polls: usize, end: Ticks) {
        let shared = self.extra > 0;
        let Some(queue) = self.find(index) else {
            return;
        };
        if shared {
            // Virtual time matters only while there are queues to share with; the
            // default queue alone starts from the floor when one is made.
            queue.vtime += u128::from(ticks) * SCALE / u128::from(queue.shares);
        }
        queue.last_run = end;
        let counters = &queue.counters;
        counters.run_ticks.add(ticks);
        counters.polls.add(polls as u64);
        counters.ready.set(queue.list.len() as u64);
    }
}

/// A queue of tasks on this core with a share of its time (see the module docs).
///
/// Made on the core that will run its tasks, and `!Send` like them; clones are
/// handles to the same queue. The queue goes when its last handle and its last task
/// are gone.
///
/// ```
/// use std::time::Duration;
/// use runtime::task::TaskQueue;
///
/// # let mut rt = runtime::Builder::new().cores(1).build().unwrap();
/// # rt.block_on(async {
/// // Foreground requests get three times the core that compaction gets, and run
/// // within 2 ms of being woken.
/// let foreground = TaskQueue::new("requests", 300)?.latency(Duration::from_millis(2));
/// let background = TaskQueue::new("compaction", 100)?;
/// let compaction = background.spawn(async { /* merge files */ 1 });
/// let request = foreground.spawn(async { /* answer */ 2 });
/// assert_eq!(compaction.await.unwrap() + request.await.unwrap(), 3);
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TaskQueue {
    inner: Rc<Handle>,
}

struct Handle {
    tasks: Rc<Tasks>,
    index: u16,
    name: Rc<str>,
    /// Where the latency bound was set: only once per handle chain.
    latency: Cell<Option<Duration>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.tasks.drop_queue_handle(self.index);
    }
}

impl TaskQueue {
    /// Makes a queue on this core with `shares` of its time (1 to [`MAX_SHARES`];
    /// the default queue, which [`crate::spawn`] uses, has 1000).
    ///
    /// Fails with `InvalidInput` for shares out of range, and outside a runtime.
    pub fn new(name: impl Into<String>, shares: u32) -> io::Result<TaskQueue> {
        let name = name.into();
        if !(1..=MAX_SHARES).contains(&shares) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TaskQueue::new({name:?}, {shares}): shares must be 1 to {MAX_SHARES}"),
            ));
        }
        let Some(tasks) = super::current() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "TaskQueue::new({name:?}) outside a runtime: make it in a future run by \
                     Runtime::block_on or by a task"
                ),
            ));
        };
        let shown: Rc<str> = Rc::from(name.as_str());
        let index = tasks.add_queue(Queue::new(name, shares))?;
        Ok(TaskQueue {
            inner: Rc::new(Handle {
                tasks,
                index,
                name: shown,
                latency: Cell::new(None),
            }),
        })
    }

    /// Sets the queue's latency bound: while it has work, it is polled at least this
    /// often (within a poll: polls are not interrupted). A bound under 2 µs is taken
    /// as 2 µs.
    pub fn latency(self, bound: Duration) -> TaskQueue {
        let bound = bound.max(Duration::from_micros(2));
        self.inner.latency.set(Some(bound));
        self.inner.tasks.set_queue_latency(self.inner.index, bound);
        self
    }

    /// Spawns a task in this queue, on this queue's core. See [`crate::spawn`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.inner
            .tasks
            .spawn_in(self.inner.index, future, Location::caller())
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskQueue")
            .field("name", &self.name())
            .field("latency", &self.inner.latency.get())
            .finish_non_exhaustive()
    }
}

impl Tasks {
    fn add_queue(&self, queue: Queue) -> io::Result<u16> {
        let counters = queue.counters.clone();
        let index = self.state.borrow_mut().queues.add(queue)?;
        self.counters.add_queue(counters);
        Ok(index)
    }

    fn set_queue_latency(&self, index: u16, bound: Duration) {
        self.state.borrow_mut().queues.set_latency(index, bound);
    }

    /// A `TaskQueue` handle went: the queue goes too if it has no live task.
    fn drop_queue_handle(&self, index: u16) {
        let released = {
            let Ok(mut state) = self.state.try_borrow_mut() else {
                return;
            };
            let queue = state.queues.get(index);
            queue.handles -= 1;
            state.queues.release_if_unused(index)
        };
        if let Some(queue) = released {
            self.counters.remove_queue(&queue.counters);
        }
    }
}
