//! Tasks: their cells, the per-core task table and run queue, join handles and wakers.
//!
//! # The task cell
//!
//! A spawned future lives in an `Rc<TaskCell<F>>`, shared by the core's task table
//! (which polls it) and the task's [`JoinHandle`] (which reads its output). Both are on
//! the core's thread: the cell is never shared with another thread, so `Cell` and
//! `RefCell` suffice.
//!
//! - The future sits in the `Rc` allocation, which never moves, and it is only ever
//!   dropped in place (set to `None`) and never moved out: that is what makes the
//!   `Pin::new_unchecked` in [`TaskCell::poll`] sound.
//! - The future is polled only by the run loop, never re-entrantly: a task cannot poll
//!   itself, and the join handle never touches the future, only the output.
//! - When the future finishes, panics or is aborted, it is dropped, the outcome is
//!   stored, the join waker is woken and the table forgets the task. The output then
//!   lives as long as the join handle.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::stats::Counters;

mod owner;
mod remote;
mod waker;

pub(crate) use owner::Owner;
pub(crate) use remote::{remote_job, set_remote_wake, Job, RemoteJoin};
pub(crate) use waker::{TaskId, MAX_CORES};
use waker::{MAIN_INDEX, MAX_TASKS};

thread_local! {
    /// The current task table: null, or a pointer from `Rc::into_raw` that owns one
    /// strong count while it is here (given by [`Tasks::enter`], taken back by its
    /// guard's drop). A plain `Cell` of a pointer: reading it is one load, and it is
    /// never torn down, so wakes during thread exit still find it (null by then).
    static CURRENT: Cell<*const Tasks> = const { Cell::new(std::ptr::null()) };
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
pub(crate) fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match current() {
        Some(tasks) => tasks.spawn(future),
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

/// The task table and the run queue, borrowed together.
struct State {
    table: Slab<Entry>,
    /// Each entry carries what polling needs (the id and the task), so taking the next
    /// task looks nothing up. A tick takes the whole queue at once (a swap) when it
    /// holds no more than the tick's budget.
    queue: Vec<Ready>,
    /// Entries older than all of `queue`, left over when a tick found more than its
    /// budget: each entry moves here at most once, and ticks take from its front, so
    /// a long queue costs no more per task than a short one.
    backlog: VecDeque<Ready>,
}

struct Entry {
    generation: u32,
    task: TaskRef,
}

impl State {
    /// Queues the live task `id` unless it is queued already.
    #[inline]
    fn schedule(&mut self, id: TaskId) {
        let task = match self.table.get(id.index() as usize) {
            Some(entry) if entry.generation == id.generation() && !entry.task.scheduled.get() => {
                entry.task.scheduled.set(true);
                entry.task.clone()
            }
            _ => return,
        };
        push_ready(&mut self.queue, id, task);
    }
}

/// A spawned task as the table and the run queue hold it: whether it is on the run
/// queue (so a wake needs one table look-up and no second one when it is taken), and
/// the task.
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
        Tasks {
            core,
            state: RefCell::new(State {
                table: Slab::new(),
                queue: Vec::new(),
                backlog: VecDeque::new(),
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

    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let cell = Rc::new(Task {
            scheduled: Cell::new(true),
            run: TaskCell {
                future: RefCell::new(Some(future)),
                output: RefCell::new(None),
                finished: Cell::new(false),
                abort: Cell::new(false),
                join_waker: RefCell::new(None),
            },
        });
        self.counters.tasks_spawned.add(1);
        if self.closing.get() {
            // The runtime is shutting down: the task will never run.
            cell.run.cancel();
            return JoinHandle {
                inner: JoinInner::Local {
                    cell,
                    id: TaskId::new(self.core, 0, 0),
                },
            };
        }
        let generation = TaskId::cut_generation(self.generation.get().wrapping_add(1));
        self.generation.set(generation);
        let mut state = self.state.borrow_mut();
        let index = state.table.insert(Entry {
            generation,
            task: cell.clone(),
        });
        assert!(
            index < MAX_TASKS,
            "more than {MAX_TASKS} live tasks on one core"
        );
        let id = TaskId::new(self.core, index as u32, generation);
        state.queue.push(Ready {
            id,
            task: cell.clone(),
        });
        drop(state);
        JoinHandle {
            inner: JoinInner::Local { cell, id },
        }
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
        self.main_woken.get() || {
            let state = self.state.borrow();
            !state.queue.is_empty() || !state.backlog.is_empty()
        }
    }

    /// Tasks spawned and not yet finished (the main future is not one).
    pub(crate) fn live(&self) -> usize {
        self.state.borrow().table.len()
    }

    /// Moves up to `max` tasks from the front of the run queue to `batch` (in order);
    /// `false` if there were none. Each is marked unscheduled only when it is polled
    /// ([`Task::unschedule`]), so a wake before then does not queue it twice.
    pub(crate) fn take_batch(&self, batch: &mut Vec<Ready>, max: usize) -> bool {
        debug_assert!(batch.is_empty());
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        if state.backlog.is_empty() {
            let n = state.queue.len();
            if n == 0 {
                return false;
            }
            if n <= max {
                std::mem::swap(batch, &mut state.queue);
                self.counters.tasks_polled.add(n as u64);
                return true;
            }
            state.backlog.extend(state.queue.drain(..));
        }
        let n = state.backlog.len().min(max);
        batch.extend(state.backlog.drain(..n));
        self.counters.tasks_polled.add(n as u64);
        true
    }

    /// Forgets a task that has finished.
    pub(crate) fn remove(&self, id: TaskId) {
        let mut state = self.state.borrow_mut();
        if state
            .table
            .get(id.index() as usize)
            .is_some_and(|e| e.generation == id.generation())
        {
            let entry = state.table.remove(id.index() as usize);
            drop(state);
            // The cell may be the last reference; its output's drop runs unborrowed.
            drop(entry);
        }
    }

    /// Cancels every task and returns how many there were; tasks spawned from then on
    /// are cancelled at once.
    pub(crate) fn close(&self) -> usize {
        self.closing.set(true);
        let (table, queue, backlog) = {
            let mut state = self.state.borrow_mut();
            (
                std::mem::take(&mut state.table),
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.backlog),
            )
        };
        drop((queue, backlog));
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
    future: RefCell<Option<F>>,
    output: RefCell<Option<Result<F::Output, JoinError>>>,
    finished: Cell<bool>,
    abort: Cell<bool>,
    join_waker: RefCell<Option<Waker>>,
}

impl<F: Future> TaskCell<F> {
    fn finish(&self, outcome: Result<F::Output, JoinError>) {
        *self.output.borrow_mut() = Some(outcome);
        self.finished.set(true);
        let waker = self.join_waker.borrow_mut().take();
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
        if self.finished.get() {
            return true;
        }
        if self.abort.get() {
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
            Ok(Poll::Pending) if self.abort.get() => {
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

    fn cancel(&self) {
        if self.finished.get() {
            return;
        }
        let outcome = self.drop_future().unwrap_or_else(JoinError::cancelled);
        self.finish(Err(outcome));
    }
}

/// What a join handle needs of its task, whatever the future type.
trait Join<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    fn request_abort(&self) -> bool;
    fn is_finished(&self) -> bool;
}

impl<F: Future> Join<F::Output> for TaskCell<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        if !self.finished.get() {
            let mut waker = self.join_waker.borrow_mut();
            match &*waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        std::task::ready!(crate::coop::poll_proceed(cx));
        match self.output.borrow_mut().take() {
            Some(outcome) => Poll::Ready(outcome),
            None => panic!("a JoinHandle was polled after it returned the task's output"),
        }
    }

    fn request_abort(&self) -> bool {
        if self.finished.get() {
            return false;
        }
        self.abort.set(true);
        true
    }

    fn is_finished(&self) -> bool {
        self.finished.get()
    }
}

impl<T, R: Join<T>> Join<T> for Task<R> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        self.run.poll_join(cx)
    }
    fn request_abort(&self) -> bool {
        self.run.request_abort()
    }
    fn is_finished(&self) -> bool {
        self.run.is_finished()
    }
}

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was
/// aborted (or the runtime shut down first). Dropping it detaches the task, which
/// keeps running.
///
/// It is `!Send`: it stays on the thread that spawned the task (for
/// [`crate::spawn_on`], the thread that asked), like the rest of a core's state, and
/// awaiting it costs no atomic operation for a task of this core.
///
/// ```
/// # let mut rt = runtime::Builder::new().cores(1).build().unwrap();
/// # rt.block_on(async {
/// let handle = runtime::spawn(async { 6 * 7 });
/// assert_eq!(handle.await.unwrap(), 42);
/// # });
/// ```
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<runtime::JoinHandle<()>>();
/// ```
pub struct JoinHandle<T> {
    inner: JoinInner<T>,
}

enum JoinInner<T> {
    /// A task of this core.
    Local { cell: Rc<dyn Join<T>>, id: TaskId },
    /// A task sent to another core.
    Remote(Arc<RemoteJoin<T>>),
}

impl<T> JoinHandle<T> {
    pub(crate) fn remote(join: Arc<RemoteJoin<T>>) -> JoinHandle<T> {
        JoinHandle {
            inner: JoinInner::Remote(join),
        }
    }

    fn local_id(&self) -> Option<TaskId> {
        match &self.inner {
            JoinInner::Local { id, .. } => Some(*id),
            JoinInner::Remote(_) => None,
        }
    }

    /// Asks the task to stop: its future is dropped before it is polled again, and
    /// awaiting the handle then gives a cancelled [`JoinError`]. A task that has
    /// finished already is not affected.
    pub fn abort(&self) {
        match &self.inner {
            JoinInner::Local { cell, id } => {
                if cell.request_abort() {
                    id.waker().wake();
                }
            }
            JoinInner::Remote(join) => join.abort(),
        }
    }

    /// Whether the task has finished, panicked or been aborted.
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            JoinInner::Local { cell, .. } => cell.is_finished(),
            JoinInner::Remote(join) => join.is_finished(),
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &self.inner {
            JoinInner::Local { cell, .. } => cell.poll_join(cx),
            JoinInner::Remote(join) => join.poll_join(cx),
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
