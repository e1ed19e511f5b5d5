//! Tasks: [`JoinHandle`] and [`JoinError`] (also at the crate root), and task queues
//! ([`TaskQueue`]), which share each core's time between kinds of work.
//!
//! # Task queues
//!
//! Every task belongs to one queue of its core. [`crate::spawn`] uses the core's
//! default queue (1000 shares); a [`TaskQueue`] made on a core is another, with its own
//! shares of the core's run time and an optional latency bound. A tick of the run loop
//! polls the ready tasks of one queue: the one whose run time, divided by its shares,
//! is least, or first a queue that has waited half its latency bound. Polls are
//! cooperative and not interrupted. `docs/architecture.md` ("Task queues, poll times
//! and stalls") describes the model in full.

// Internals. Tasks: their cells, the per-core task table and run queue, join handles and wakers.
//
// # The task cell
//
// A spawned future lives in an `Rc<TaskCell<F>>`, shared by the core's task table
// (which polls it) and the task's `JoinHandle` (which reads its output). Both are on
// the core's thread: the cell is never shared with another thread, so `Cell` and
// `RefCell` suffice.
//
// - The future sits in the `Rc` allocation, which never moves, and it is only ever
//   dropped in place (set to `None`) and never moved out: that is what makes the
//   `Pin::new_unchecked` in `TaskCell::poll` sound.
// - The future is polled only by the run loop, never re-entrantly: a task cannot poll
//   itself, and the join handle never touches the future, only the output.
// - When the future finishes, panics or is aborted, it is dropped, the outcome is
//   stored, the join waker is woken and the table forgets the task. The output then
//   lives as long as the join handle.
// - Two fields are atomics, `finished` and `abort`: a join handle that was sent to
//   another thread reads and sets them there, and touches nothing else of the cell
//   (see "Handles that leave home" in `remote.rs`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::clock;
use crate::stats::Counters;

mod owner;
mod queue;
mod remote;
mod waker;

use queue::Queues;
pub(crate) use queue::{Pick, QueueCounters};
pub use queue::{TaskQueue, MAX_SHARES};

pub(crate) use owner::Owner;
pub(crate) use remote::{remote_job, set_remote, Job, RemoteJoin};
pub(crate) use waker::{TaskId, MAX_CORES};
use waker::{MAIN_INDEX, MAX_TASKS};

thread_local! {
    /// The current task table: null, or a pointer from `Rc::into_raw` that owns one
    /// strong count while it is here (given by [`Tasks::enter`], taken back by its
    /// guard's drop). A plain `Cell` of a pointer: reading it is one load, and it is
    /// never torn down, so wakes during thread exit still find it (null by then).
    static CURRENT: Cell<*const Tasks> = const { Cell::new(std::ptr::null()) };
}

/// This thread's mark: the address of its `CURRENT`, which no other live thread shares.
/// A join handle compares it with its home's to know whether it may touch its cell.
#[inline]
fn thread_mark() -> usize {
    CURRENT.with(|c| c as *const Cell<*const Tasks> as usize)
}

/// The task table of the core running on this thread.
pub(crate) fn current() -> Option<Rc<Tasks>> {
    let tasks = CURRENT.with(Cell::get);
    if tasks.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer in CURRENT owns a strong count (see CURRENT), so the
    // table is alive; the new count is this `Rc`'s own.
    unsafe {
        Rc::increment_strong_count(tasks);
        Some(Rc::from_raw(tasks))
    }
}

/// Wakes the task `id`, on its core directly if that core runs on this thread.
#[inline]
fn wake(id: TaskId) {
    let tasks = CURRENT.with(Cell::get);
    // SAFETY: a non-null pointer in CURRENT owns a strong count (see CURRENT), so the
    // table is alive for this call, which takes no new reference.
    match unsafe { tasks.as_ref() } {
        Some(tasks) if tasks.core == id.core() => tasks.schedule(id),
        _ => remote::wake(id),
    }
}

/// Spawns a task on the current core. See [`crate::spawn`].
#[track_caller]
pub(crate) fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_at(future, Location::caller())
}

/// Spawns a task on the current core, recorded as spawned at `location`.
pub(crate) fn spawn_at<F>(future: F, location: &'static Location<'static>) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match current() {
        Some(tasks) => tasks.spawn_at(future, location),
        None => panic!(
            "runtime::spawn called outside a runtime: call it from a future run by \
             Runtime::block_on or by a task"
        ),
    }
}

/// One core's tasks and run queue.
pub(crate) struct Tasks {
    core: u16,
    state: RefCell<State>,
    generation: Cell<u32>,
    main_woken: Cell<bool>,
    closing: Cell<bool>,
    counters: Arc<Counters>,
    /// While the core parks in its tokio runtime, a wake of one of its tasks ends the park.
    #[cfg(feature = "tokio-bridge")]
    pub(crate) parked: crate::tokio_bridge::Parked,
}

/// The task table and the task queues with their run lists, borrowed together.
struct State {
    table: Slab<Entry>,
    queues: Queues,
}

struct Entry {
    generation: u32,
    /// The task's queue (0: the default one).
    queue: u16,
    task: TaskRef,
}

impl State {
    /// Queues the live task `id` unless it is queued already.
    #[inline(always)]
    fn schedule(&mut self, id: TaskId) {
        let (queue, task) = match self.table.get(id.index() as usize) {
            Some(entry) if entry.generation == id.generation() && !entry.task.scheduled.get() => {
                entry.task.scheduled.set(true);
                (entry.queue, entry.task.clone())
            }
            _ => return,
        };
        push_ready(&mut self.queues.list(queue).queue, id, task);
    }
}

/// A spawned task as the table and the run queue hold it: whether it is on the run
/// queue (so a wake needs one table look-up and no second one when it is taken), and
/// the task.
///
/// The flag is the only field before the future's part: a byte, so the compiler
/// finds it at a fixed offset without reading the `dyn` part's alignment from its
/// vtable on every wake and poll (a field of 8-byte alignment here would cost that).
pub(crate) struct Task<R: ?Sized> {
    scheduled: Cell<bool>,
    pub(crate) run: R,
}

/// A task of any future type.
pub(crate) type TaskRef = Rc<Task<dyn Runnable>>;

impl<R: ?Sized> Task<R> {
    /// The task is about to be polled: a wake from now on queues it again.
    #[inline]
    pub(crate) fn unschedule(&self) {
        self.scheduled.set(false);
    }
}

/// A task as the run loop sees it, whatever its future and output types.
pub(crate) trait Runnable {
    /// Polls the future; `true` once the task has finished (or was aborted).
    fn poll(&self, cx: &mut Context<'_>) -> bool;
    /// Drops the future unpolled and records the task as cancelled.
    fn cancel(&self);
    /// Where the task was spawned, for stall reports (any thread: a plain field never
    /// written after).
    fn location(&self) -> &'static Location<'static>;
}

/// Appends a run-queue entry, writing its fields straight into the queue's memory: a
/// `Ready` built on the stack and copied in is read back with wide loads that stall on
/// store forwarding, and this is the one push of every wake.
#[inline(always)]
fn push_ready(queue: &mut Vec<Ready>, id: TaskId, task: TaskRef) {
    queue.reserve(1);
    let len = queue.len();
    // SAFETY: `reserve` made room for one more entry past `len`; both fields are written
    // (`ptr::write`, nothing read or dropped) before the length covers the entry.
    unsafe {
        let entry = queue.as_mut_ptr().add(len);
        std::ptr::addr_of_mut!((*entry).id).write(id);
        std::ptr::addr_of_mut!((*entry).task).write(task);
        queue.set_len(len + 1);
    }
}

/// A task taken off the run queue, ready to be polled.
pub(crate) struct Ready {
    pub(crate) id: TaskId,
    pub(crate) task: TaskRef,
}

impl Tasks {
    pub(crate) fn new(core: u16, counters: Arc<Counters>) -> Tasks {
        let queues = Queues::new();
        counters.add_queue(queues.default.counters.clone());
        Tasks {
            core,
            state: RefCell::new(State {
                table: Slab::new(),
                queues,
            }),
            generation: Cell::new(0),
            main_woken: Cell::new(false),
            closing: Cell::new(false),
            counters,
            #[cfg(feature = "tokio-bridge")]
            parked: Default::default(),
        }
    }

    /// Makes this table the current one on this thread until the guard is dropped.
    pub(crate) fn enter(self: &Rc<Self>) -> EnterGuard {
        let prev = CURRENT.with(|c| c.replace(Rc::into_raw(self.clone())));
        EnterGuard { prev }
    }

    /// Spawns `future` in the default queue, recorded as spawned at `location`.
    pub(crate) fn spawn_at<F>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_in(0, future, location)
    }

    /// Spawns `future` in queue `queue`, recorded as spawned at `location`.
    pub(crate) fn spawn_in<F>(
        &self,
        queue: u16,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let cell = Rc::new(Task {
            scheduled: Cell::new(true),
            run: TaskCell {
                location,
                future: RefCell::new(Some(future)),
                output: RefCell::new(None),
                finished: AtomicBool::new(false),
                abort: AtomicBool::new(false),
                join_waker: Cell::new(None),
            },
        });
        self.counters.tasks_spawned.add(1);
        if self.closing.get() {
            // The runtime is shutting down: the task will never run.
            cell.run.cancel();
            return JoinHandle::local(cell, TaskId::new(self.core, 0, 0));
        }
        let generation = TaskId::cut_generation(self.generation.get().wrapping_add(1));
        self.generation.set(generation);
        let mut state = self.state.borrow_mut();
        let index = state.table.insert(Entry {
            generation,
            queue,
            task: cell.clone(),
        });
        assert!(
            index < MAX_TASKS,
            "more than {MAX_TASKS} live tasks on one core"
        );
        let id = TaskId::new(self.core, index as u32, generation);
        if queue != 0 {
            // The default queue lives as long as the core: its tasks are not counted.
            state.queues.get(queue).live += 1;
        }
        state.queues.list(queue).queue.push(Ready {
            id,
            task: cell.clone(),
        });
        drop(state);
        JoinHandle::local(cell, id)
    }

    /// Puts the task on the run queue unless it is there already or gone.
    #[inline]
    pub(crate) fn schedule(&self, id: TaskId) {
        #[cfg(feature = "tokio-bridge")]
        self.parked.wake();
        if id.index() == MAIN_INDEX {
            self.main_woken.set(true);
            return;
        }
        self.state.borrow_mut().schedule(id);
    }

    /// Wakes every owner in `owners` (emptying it): this core's tasks straight onto the
    /// run queue, under one borrow of the table, and anything else by its own path
    /// once that borrow has ended (a foreign waker may run any code).
    pub(crate) fn wake_all(&self, owners: &mut Vec<Owner>) {
        let mut foreign = false;
        {
            let mut state = self.state.borrow_mut();
            for owner in owners.iter() {
                match owner {
                    Owner::Task(id) if id.core() == self.core => {
                        if id.index() == MAIN_INDEX {
                            self.main_woken.set(true);
                        } else {
                            state.schedule(*id);
                        }
                    }
                    _ => foreign = true,
                }
            }
        }
        if !foreign {
            // Task ids own nothing: clearing drops no waker.
            owners.clear();
            return;
        }
        for owner in owners.drain(..) {
            match owner {
                Owner::Task(id) if id.core() == self.core => {}
                other => other.wake(),
            }
        }
    }

    /// Schedules wakes that came from other threads.
    pub(crate) fn schedule_remote(&self, ids: &mut Vec<TaskId>) {
        for id in ids.drain(..) {
            self.schedule(id);
        }
    }

    /// The waker of the future passed to `block_on`.
    pub(crate) fn main_waker(&self) -> Waker {
        TaskId::main(self.core).waker()
    }

    /// Whether the main future was woken since the last call.
    pub(crate) fn take_main_woken(&self) -> bool {
        self.main_woken.replace(false)
    }

    pub(crate) fn wake_main(&self) {
        self.main_woken.set(true);
    }

    pub(crate) fn has_ready(&self) -> bool {
        if self.main_woken.get() {
            return true;
        }
        let (default, others) = self.state.borrow().queues.ready_hint();
        // The other queues are looked at under a borrow of their own, so that the
        // usual case (the default queue alone) reads two lengths and a count.
        default || (others && self.state.borrow().queues.others_ready())
    }

    /// Tasks spawned and not yet finished (the main future is not one).
    pub(crate) fn live(&self) -> usize {
        self.state.borrow().table.len()
    }

    /// Chooses the queue a tick polls (see `queue.rs`) and moves up to `max` of its
    /// ready tasks to `batch`, in order; `None` if no task is ready. Each is marked
    /// unscheduled only when it is polled ([`Task::unschedule`]), so a wake before
    /// then does not queue it twice. `now` reads the clock, if the choice needs it.
    #[inline]
    pub(crate) fn take_batch(
        &self,
        batch: &mut Vec<Ready>,
        max: usize,
        now: impl FnOnce() -> clock::Ticks,
    ) -> Option<Pick> {
        self.state.borrow_mut().queues.take(batch, max, now)
    }

    /// Ends a tick of queue `queue` that polled the first `polls` tasks of `batch` in
    /// `ticks` (ending at `end`): charges the queue and puts the rest back in front.
    #[inline]
    pub(crate) fn end_tick(
        &self,
        queue: u16,
        batch: &mut Vec<Ready>,
        polls: usize,
        ticks: clock::Ticks,
        end: clock::Ticks,
    ) {
        self.counters.tasks_polled.add(polls as u64);
        let mut state = self.state.borrow_mut();
        if polls < batch.len() {
            state.queues.put_back(queue, batch.drain(polls..));
        }
        state.queues.charge(queue, ticks, polls, end);
        drop(state);
        // The last references to finished tasks may go here: no borrow is held.
        batch.clear();
    }

    /// The name of queue `queue`, for a stall report.
    pub(crate) fn queue_name(&self, queue: u16) -> String {
        self.state
            .borrow_mut()
            .queues
            .get(queue)
            .counters
            .name
            .clone()
    }

    /// Forgets a task that has finished.
    #[inline(always)]
    pub(crate) fn remove(&self, id: TaskId) {
        let mut state = self.state.borrow_mut();
        if state
            .table
            .get(id.index() as usize)
            .is_some_and(|e| e.generation == id.generation())
        {
            let entry = state.table.remove(id.index() as usize);
            if entry.queue != 0 {
                drop(state);
                self.left_queue(entry.queue);
            } else {
                drop(state);
            }
            // The cell may be the last reference; its output's drop runs unborrowed.
            drop(entry);
        }
    }

    /// A task of queue `queue` (not the default one) is gone: so is the queue if
    /// nothing else refers to it.
    #[cold]
    fn left_queue(&self, queue: u16) {
        let released = {
            let mut state = self.state.borrow_mut();
            state.queues.get(queue).live -= 1;
            state.queues.release_if_unused(queue)
        };
        if let Some(queue) = released {
            self.counters.remove_queue(&queue.counters);
        }
    }

    /// Cancels every task and returns how many there were; tasks spawned from then on
    /// are cancelled at once.
    pub(crate) fn close(&self) -> usize {
        self.closing.set(true);
        let (table, lists) = {
            let mut state = self.state.borrow_mut();
            let queues = &mut state.queues;
            let mut lists = vec![queues.default.list.clear()];
            lists.extend(queues.others.iter_mut().flatten().map(|q| {
                q.live = 0;
                q.list.clear()
            }));
            (std::mem::take(&mut state.table), lists)
        };
        drop(lists);
        let cancelled = table.len();
        for (_, entry) in table {
            entry.task.run.cancel();
        }
        cancelled
    }
}

/// Restores the previous task table when dropped.
pub(crate) struct EnterGuard {
    /// What CURRENT held before (null, or a pointer that owns a strong count).
    prev: *const Tasks,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let mine = CURRENT.with(|c| c.replace(self.prev));
        if !mine.is_null() {
            // SAFETY: every non-null pointer CURRENT holds came from `Rc::into_raw` and
            // owns a strong count (`enter` gave it; a guard's `prev` took it over, and
            // gives it back to CURRENT here), so taking it out gives that count back.
            drop(unsafe { Rc::from_raw(mine) });
        }
    }
}

struct TaskCell<F: Future> {
    location: &'static Location<'static>,
    future: RefCell<Option<F>>,
    output: RefCell<Option<Result<F::Output, JoinError>>>,
    /// Set once the outcome is stored (Release), read by a handle anywhere (Acquire).
    finished: AtomicBool,
    /// Set by a handle anywhere; the task checks it before and after each poll.
    abort: AtomicBool,
    /// A `Cell` (taken out and put back), not a `RefCell`: the cell stays at most 128
    /// bytes for a small future, which the compiler writes without a `memcpy` call.
    join_waker: Cell<Option<Waker>>,
}

impl<F: Future> TaskCell<F> {
    fn finish(&self, outcome: Result<F::Output, JoinError>) {
        *self.output.borrow_mut() = Some(outcome);
        self.finished.store(true, Ordering::Release);
        let waker = self.join_waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Drops the future in place; a panic in its drop is kept as the task's outcome.
    fn drop_future(&self) -> Option<JoinError> {
        let mut slot = self.future.borrow_mut();
        catch_unwind(AssertUnwindSafe(|| *slot = None))
            .err()
            .map(JoinError::panic)
    }
}

impl<F: Future> Runnable for TaskCell<F> {
    fn poll(&self, cx: &mut Context<'_>) -> bool {
        if self.finished.load(Ordering::Relaxed) {
            return true;
        }
        if self.abort.load(Ordering::Acquire) {
            self.cancel();
            return true;
        }
        let mut slot = self.future.borrow_mut();
        let Some(future) = slot.as_mut() else {
            return true;
        };
        // SAFETY: the future lives in this cell's `Rc` allocation, which never moves,
        // and it is only dropped in place, never moved out (see the module docs).
        let future = unsafe { Pin::new_unchecked(future) };
        let outcome = catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        drop(slot);
        match outcome {
            Ok(Poll::Pending) if self.abort.load(Ordering::Acquire) => {
                self.cancel();
                true
            }
            Ok(Poll::Pending) => false,
            Ok(Poll::Ready(value)) => {
                let outcome = match self.drop_future() {
                    None => Ok(value),
                    Some(panic) => Err(panic),
                };
                self.finish(outcome);
                true
            }
            Err(payload) => {
                // The payload of the poll's panic wins over any from the drop.
                let _ = self.drop_future();
                self.finish(Err(JoinError::panic(payload)));
                true
            }
        }
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }

    fn cancel(&self) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let outcome = self.drop_future().unwrap_or_else(JoinError::cancelled);
        self.finish(Err(outcome));
    }
}

/// What a join handle needs of its task, whatever the future type.
///
/// `request_abort` and `is_finished` touch only the cell's atomics, and `relay_home`
/// and `drop_home` only move the `Rc` (into a job for the home core, see `remote.rs`):
/// a handle calls these on any thread. The others run on the cell's home thread only.
trait Join<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    /// The outcome, if the task has finished and it was not taken yet.
    fn take_finished(&self) -> Option<Result<T, JoinError>>;
    fn request_abort(&self) -> bool;
    fn is_finished(&self) -> bool;
    /// Where the task was spawned (any thread: a plain field never written after).
    fn location(&self) -> &'static Location<'static>;
    /// Sends the cell home, where a relay task awaits it for the join returned.
    fn relay_home(self: Rc<Self>, id: TaskId) -> Arc<RemoteJoin<T>>;
    /// Sends the cell home to be dropped there.
    fn drop_home(self: Rc<Self>, core: u16);
}

impl<F: Future> TaskCell<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        if !self.finished.load(Ordering::Relaxed) {
            let waker = match self.join_waker.take() {
                Some(w) if w.will_wake(cx.waker()) => w,
                // The old waker (a foreign one may run any code) drops with no borrow held.
                _ => cx.waker().clone(),
            };
            self.join_waker.set(Some(waker));
            return Poll::Pending;
        }
        std::task::ready!(crate::coop::poll_proceed(cx));
        match self.output.borrow_mut().take() {
            Some(outcome) => Poll::Ready(outcome),
            None => panic!("a JoinHandle was polled after it returned the task's output"),
        }
    }

    fn take_finished(&self) -> Option<Result<F::Output, JoinError>> {
        if !self.finished.load(Ordering::Relaxed) {
            return None;
        }
        self.output.borrow_mut().take()
    }

    fn request_abort(&self) -> bool {
        if self.finished.load(Ordering::Acquire) {
            return false;
        }
        self.abort.store(true, Ordering::Release);
        true
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl<F: Future + 'static> Join<F::Output> for Task<TaskCell<F>> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        self.run.poll_join(cx)
    }
    fn take_finished(&self) -> Option<Result<F::Output, JoinError>> {
        self.run.take_finished()
    }
    fn request_abort(&self) -> bool {
        self.run.request_abort()
    }
    fn is_finished(&self) -> bool {
        self.run.is_finished()
    }
    fn location(&self) -> &'static Location<'static> {
        self.run.location
    }
    fn relay_home(self: Rc<Self>, id: TaskId) -> Arc<RemoteJoin<F::Output>> {
        remote::relay_home(id.core(), self, id)
    }
    fn drop_home(self: Rc<Self>, core: u16) {
        remote::drop_home::<F::Output>(core, self)
    }
}

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was
/// aborted (or the runtime shut down first). Dropping it detaches the task, which
/// keeps running.
///
/// It is `Send` when the output is, so a `Send` future (an axum handler, a future
/// for a tokio-style executor) can await work that a task does with this core's
/// `!Send` types. Awaited on the thread that spawned the task, as it usually is, it
/// costs no atomic read-modify-write and no lock. Polled on another thread, it
/// sends the task's cell home once and from then on awaits the outcome through a
/// mutex, like a [`crate::spawn_on`] handle; dropped on another thread, it sends the
/// cell home to be dropped there. `abort` and `is_finished` work on any thread. Once
/// the runtime is gone, a handle anywhere gives the outcome (the task's output, or
/// the cancellation the shutdown made) as at home; one that leaves home while its
/// runtime is shutting down reports the task cancelled and leaks its output rather
/// than free it off its thread. It is not `Sync`.
///
/// ```
/// # let mut rt = runtime::Builder::new().cores(1).build().unwrap();
/// # rt.block_on(async {
/// let handle = runtime::spawn(async { 6 * 7 });
/// assert_eq!(handle.await.unwrap(), 42);
/// # });
/// ```
///
/// A task's output that may not cross threads keeps its handle at home:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<runtime::JoinHandle<std::rc::Rc<()>>>();
/// ```
///
/// ```compile_fail
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<runtime::JoinHandle<()>>();
/// ```
pub struct JoinHandle<T> {
    inner: JoinInner<T>,
}

enum JoinInner<T> {
    /// A task of a core; `home` is the [`thread_mark`] of the thread that spawned it,
    /// the only thread that may touch `cell`'s reference count and `RefCell`s.
    Local {
        cell: Rc<dyn Join<T>>,
        id: TaskId,
        home: usize,
    },
    /// A task sent to another core, or a local one whose handle left home.
    Remote(Arc<RemoteJoin<T>>),
    /// Only while a `Local` handle is being turned into a `Remote` one.
    Moved,
}

// SAFETY: a `Local` handle touches its `Rc` (count, `RefCell`s, the future) only on
// the thread whose mark is `home`, checked on every poll and drop. Elsewhere it uses
// only the cell's atomics (`abort`, `is_finished`: see `Join`) through the pointer its
// own strong count keeps valid, and sends the `Rc` home in a job for anything else
// (`remote::relay_home`, `remote::drop_home`), which leaks it if the job cannot run,
// or, once the home core is unregistered (gone, after closing its table), uses it
// where it is as the last reference.
// A mark can be reused only once its thread has exited, and then the core that ran
// there has closed its task table, so this handle holds the only reference left. The
// output `T` moves to the handle's thread: hence `T: Send`. A `Remote` handle is an
// `Arc<RemoteJoin<T>>`, `Send` for `T: Send`.
unsafe impl<T: Send> Send for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    fn local(cell: Rc<dyn Join<T>>, id: TaskId) -> JoinHandle<T> {
        JoinHandle {
            inner: JoinInner::Local {
                cell,
                id,
                home: thread_mark(),
            },
        }
    }

    pub(crate) fn remote(join: Arc<RemoteJoin<T>>) -> JoinHandle<T> {
        JoinHandle {
            inner: JoinInner::Remote(join),
        }
    }

    fn local_id(&self) -> Option<TaskId> {
        match &self.inner {
            JoinInner::Local { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// Asks the task to stop: its future is dropped before it is polled again, and
    /// awaiting the handle then gives a cancelled [`JoinError`]. A task that has
    /// finished already is not affected.
    pub fn abort(&self) {
        match &self.inner {
            // Atomics only (see `Join`), and a waker that is a number: any thread.
            JoinInner::Local { cell, id, .. } => {
                if cell.request_abort() {
                    id.waker().wake();
                }
            }
            JoinInner::Remote(join) => join.abort(),
            JoinInner::Moved => {}
        }
    }

    /// Whether the task has finished, panicked or been aborted.
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            JoinInner::Local { cell, .. } => cell.is_finished(),
            JoinInner::Remote(join) => join.is_finished(),
            JoinInner::Moved => false,
        }
    }
}

impl<T> JoinHandle<T> {
    /// Takes a local task's cell out of the handle (leaving `Moved`), away from home.
    fn take_local(&mut self) -> Option<(Rc<dyn Join<T>>, TaskId)> {
        match std::mem::replace(&mut self.inner, JoinInner::Moved) {
            JoinInner::Local { cell, id, .. } => Some((cell, id)),
            other => {
                self.inner = other;
                None
            }
        }
    }

    /// Sends the cell of a local task home, to be awaited there for this handle.
    #[cold]
    #[inline(never)]
    fn leave_home(&mut self) {
        if let Some((cell, id)) = self.take_local() {
            self.inner = JoinInner::Remote(cell.relay_home(id));
        }
    }

    /// Sends the cell of a local task home, to be dropped there.
    #[cold]
    #[inline(never)]
    fn drop_away(&mut self) {
        if let Some((cell, id)) = self.take_local() {
            cell.drop_home(id.core());
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &this.inner {
            JoinInner::Local { cell, home, .. } if *home == thread_mark() => {
                return cell.poll_join(cx)
            }
            JoinInner::Local { .. } => this.leave_home(),
            _ => {}
        }
        match &this.inner {
            JoinInner::Remote(join) => join.poll_join(cx),
            _ => unreachable!("a handle that left home is remote"),
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    #[inline]
    fn drop(&mut self) {
        if let JoinInner::Local { home, .. } = &self.inner {
            if *home != thread_mark() {
                self.drop_away();
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task did not give its output: it panicked, or it was aborted.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    // A Mutex only to make the error Sync (so it fits in io::Error and Box<dyn Error +
    // Send + Sync>); it is locked once, by into_panic.
    Panic(Mutex<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(Mutex::new(payload)),
        }
    }

    /// Whether the task was aborted (or the runtime shut down before it finished).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic's payload, to re-raise with [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task did not panic; use [`JoinError::try_into_panic`] to check first.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .unwrap_or_else(|_| panic!("JoinError::into_panic on a cancelled task"))
    }

    /// The panic's payload, or the error back if the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panic(p) = &self.repr else {
            return None;
        };
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panic(_), Some(msg)) => write!(f, "task panicked with message {msg:?}"),
            (Repr::Panic(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panic(_) => write!(f, "JoinError::Panic({:?})", self.panic_message()),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e)
    }
}
