//! What crosses threads: wakes of a core's tasks from elsewhere, and tasks spawned on
//! another core together with the handle that awaits them.
//!
//! # Wakes
//!
//! A waker woken on a thread that is not running its task's core hands the task's id
//! to the hook the executor installs ([`set_remote_wake`]), which leaves it in that
//! core's inbox and wakes the core. The hook is installed before the first core
//! exists, so no task can be woken before it is there.
//!
//! # Remote joins
//!
//! `spawn_on` sends a [`Job`] to the target core and keeps a [`RemoteJoin`]: the only
//! state shared between the two threads, behind one mutex. Its protocol:
//!
//! - The outcome is written once (`finish` is idempotent: the first outcome wins) by
//!   whichever comes first on the target core: the task's output, its panic, its
//!   abort, or the drop of the job or the task unfinished (the runtime shut down, or
//!   the target core was gone): nothing can end without an outcome, so an awaiting
//!   handle is always woken.
//! - The handle stores its waker under the same lock it reads the outcome with, and
//!   `finish` takes the waker under that lock and wakes it after, so no wake is lost.
//! - `abort` sets a flag that the job checks before it spawns and the task checks
//!   before each poll, then wakes the task if it has been spawned already (its id is
//!   recorded under the lock once it is).
//!
//! # Handles that leave home
//!
//! A [`super::JoinHandle`] of a local task holds the task's `Rc` cell, and is `Send`
//! (when its output is): on a thread other than its home it never touches the `Rc`.
//! `abort` and `is_finished` read and set atomics of the cell through the pointer
//! (the handle's own strong count keeps it alive). The first poll sends the cell home
//! in a job ([`relay_home`]), where a [`Relay`] task awaits it and hands its outcome
//! over through a [`RemoteJoin`], so the handle becomes a remote one. A drop sends
//! the cell home to be dropped there ([`drop_home`]). A job that is never run (the
//! core is stopping) leaks the cell: its reference count may be in use on the home
//! thread, so dropping it anywhere else would be a data race. Once the core is gone
//! (no longer registered) the handle holds the cell's last reference and uses it
//! where it is.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use super::{Join, JoinError, TaskId};

static REMOTE_WAKE: OnceLock<fn(TaskId)> = OnceLock::new();
static REMOTE_SEND: OnceLock<SendJob> = OnceLock::new();
static REMOTE_ALIVE: OnceLock<fn(u16) -> bool> = OnceLock::new();

/// Sends a job to a core by its process-wide number; the job back if it cannot.
type SendJob = fn(u16, Job) -> Result<(), Job>;

/// Installs the functions that send a wake to a task's core, and a job to a core by
/// its process-wide number, from another thread, and that tell whether a core of
/// that number exists. `send` hands the job back if that core is gone or stopping.
pub(crate) fn set_remote(wake: fn(TaskId), send: SendJob, alive: fn(u16) -> bool) {
    let _ = REMOTE_WAKE.set(wake);
    let _ = REMOTE_SEND.set(send);
    let _ = REMOTE_ALIVE.set(alive);
}

/// Whether a core of this process-wide number exists (registered, perhaps stopping).
/// `false` means the core that had the number is gone for good: its runtime dropped
/// every core's registration only after each core closed its task table.
fn alive(core: u16) -> bool {
    REMOTE_ALIVE.get().is_some_and(|alive| alive(core))
}

/// Sends a wake to the task's core from a thread that is not running that core.
pub(super) fn wake(id: TaskId) {
    if let Some(send) = REMOTE_WAKE.get() {
        send(id);
    }
}

/// Work sent to a core: run there, with the core's context entered.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Sends `job` to the core with process-wide number `core`; the job back if that core
/// is gone or stopping (or no core was ever made, so nothing was installed).
pub(super) fn send(core: u16, job: Job) -> Result<(), Job> {
    match REMOTE_SEND.get() {
        Some(send) => send(core, job),
        None => Err(job),
    }
}

/// What a task spawned on another core and its handle share.
pub(crate) struct RemoteJoin<T> {
    abort: AtomicBool,
    state: Mutex<JoinState<T>>,
}

struct JoinState<T> {
    outcome: Option<Result<T, JoinError>>,
    finished: bool,
    waker: Option<Waker>,
    task: Option<TaskId>,
}

impl<T> RemoteJoin<T> {
    pub(super) fn new() -> Arc<RemoteJoin<T>> {
        Arc::new(RemoteJoin {
            abort: AtomicBool::new(false),
            state: Mutex::new(JoinState {
                outcome: None,
                finished: false,
                waker: None,
                task: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, JoinState<T>> {
        // No user code runs under this lock: the state is consistent even if a thread
        // panicked elsewhere while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn finish(&self, outcome: Result<T, JoinError>) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.finished = true;
        state.outcome = Some(outcome);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(super) fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut state = self.lock();
        if !state.finished {
            let replaced = match &state.waker {
                Some(w) if w.will_wake(cx.waker()) => None,
                _ => state.waker.replace(cx.waker().clone()),
            };
            drop(state);
            drop(replaced);
            return Poll::Pending;
        }
        drop(state);
        std::task::ready!(crate::coop::poll_proceed(cx));
        match self.lock().outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => panic!("a JoinHandle was polled after it returned the task's output"),
        }
    }

    pub(super) fn abort(&self) {
        self.abort.store(true, Ordering::Release);
        let state = self.lock();
        let task = if state.finished { None } else { state.task };
        drop(state);
        if let Some(id) = task {
            id.waker().wake();
        }
    }

    pub(super) fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Records the task that `abort` wakes (an abort before this is seen by the
    /// task's first poll, which checks the flag).
    pub(super) fn set_task(&self, id: TaskId) {
        self.lock().task = Some(id);
    }

    pub(super) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
}

/// Finishes the join as cancelled if it is dropped before it finished it otherwise.
pub(super) struct Finisher<T>(pub(super) Arc<RemoteJoin<T>>);

impl<T> Drop for Finisher<T> {
    fn drop(&mut self) {
        self.0.finish(Err(JoinError::cancelled()));
    }
}

/// Makes the job that, run on the target core, calls `f` there and spawns its future;
/// and the shared state its handle awaits.
pub(crate) fn remote_job<F, Fut>(
    f: F,
    location: &'static Location<'static>,
) -> (Arc<RemoteJoin<Fut::Output>>, Job)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let join = RemoteJoin::new();
    let finisher = Finisher(join.clone());
    let job: Job = Box::new(move || {
        if finisher.0.aborted() {
            return; // the finisher's drop records the cancellation
        }
        match catch_unwind(AssertUnwindSafe(f)) {
            Err(payload) => finisher.0.finish(Err(JoinError::panic(payload))),
            Ok(future) => {
                let join = finisher.0.clone();
                let handle = super::spawn_at(
                    Forward {
                        future: Some(future),
                        finisher,
                    },
                    location,
                );
                if let Some(id) = handle.local_id() {
                    join.set_task(id);
                }
            }
        }
    });
    (join, job)
}

pin_project_lite::pin_project! {
    /// A task spawned for another core: runs the future and hands its outcome over,
    /// after dropping the future (as a local task does), so that whoever sees the
    /// outcome also sees everything the future owned released.
    struct Forward<Fut: Future> {
        #[pin]
        future: Option<Fut>,
        finisher: Finisher<Fut::Output>,
    }
}

impl<Fut: Future> Future for Forward<Fut> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let join = &this.finisher.0;
        let outcome = if join.aborted() {
            Err(JoinError::cancelled())
        } else {
            let Some(future) = this.future.as_mut().as_pin_mut() else {
                return Poll::Ready(());
            };
            match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(output)) => Ok(output),
                Err(payload) => Err(JoinError::panic(payload)),
            }
        };
        // Dropped in place; a panic in its drop is kept if nothing else went wrong.
        let dropped = catch_unwind(AssertUnwindSafe(|| this.future.set(None)));
        let outcome = match (outcome, dropped) {
            (Ok(_), Err(payload)) => Err(JoinError::panic(payload)),
            (outcome, _) => outcome,
        };
        join.finish(outcome);
        Poll::Ready(())
    }
}

/// A local task's cell on its way home from a thread that may not touch it.
///
/// Built on a thread other than the cell's home (the thread of the core that spawned
/// the task) and sent home inside a [`Job`]. Its only use of the `Rc` is
/// [`Homebound::open`], on the thread that runs the job: the home core's thread, or
/// a core that got the same number after the home core was gone, when no other
/// reference to the cell is left (see [`super::JoinHandle`]'s `Send`). Dropped
/// unopened (the job was never run: the core is gone or stopping), it leaks the cell
/// rather than touch a reference count another thread may be changing.
struct Homebound<T> {
    cell: ManuallyDrop<Rc<dyn Join<T>>>,
}

// SAFETY: the `Rc` is touched only by `open`, on the thread the job runs on (see the
// type's docs), and is leaked otherwise. Its output `T` crosses threads: a handle
// leaves its home thread only through `JoinHandle: Send`, which requires `T: Send`,
// and only such a handle builds a `Homebound`.
unsafe impl<T> Send for Homebound<T> {}

impl<T> Homebound<T> {
    fn new(cell: Rc<dyn Join<T>>) -> Homebound<T> {
        Homebound {
            cell: ManuallyDrop::new(cell),
        }
    }

    /// The cell, on the thread that runs the job.
    fn open(mut self) -> Rc<dyn Join<T>> {
        // SAFETY: `self` is consumed and its drop does nothing, so the cell is taken
        // out exactly once.
        unsafe { ManuallyDrop::take(&mut self.cell) }
    }
}

/// Sends a local task's cell home to be dropped there (a handle dropped on another
/// thread). If the core is stopping the cell is leaked: see [`Homebound`].
pub(super) fn drop_home<T: 'static>(core: u16, cell: Rc<dyn Join<T>>) {
    if !alive(core) {
        // The home core closed its table before it went: this is the last reference
        // (see `JoinHandle`'s `Send`), which no other thread can be using.
        return drop(cell);
    }
    let cell = Homebound::new(cell);
    let _ = send(core, Box::new(move || drop(cell.open())));
}

/// Turns a handle to a local task, polled on another thread, into a remote one: the
/// cell goes home, where a relay task awaits it and hands its outcome over through
/// the returned [`RemoteJoin`]. Aborting the remote join aborts the task. If the core
/// is gone, its outcome is taken here (a task cancelled by the shutdown, or one that
/// finished before it); if it is stopping, the join is finished as cancelled (the
/// shutdown cancels every task) and the cell leaked.
pub(super) fn relay_home<T: 'static>(
    core: u16,
    cell: Rc<dyn Join<T>>,
    id: TaskId,
) -> Arc<RemoteJoin<T>> {
    let location = cell.location();
    let join = RemoteJoin::new();
    if !alive(core) {
        // The last reference, as in `drop_home`: read and drop it here.
        let outcome = cell.take_finished();
        drop(cell);
        join.finish(outcome.unwrap_or_else(|| Err(JoinError::cancelled())));
        return join;
    }
    let state = AssertSend((Homebound::new(cell), Finisher(join.clone())));
    let job: Job = Box::new(move || {
        // A method call, so the closure captures the whole `AssertSend`, not its fields.
        let (cell, finisher) = state.into_inner();
        let cell = cell.open();
        // An outcome already there needs no task, even on a core that is closing.
        if let Some(outcome) = cell.take_finished() {
            return finisher.0.finish(outcome);
        }
        let relay = Relay {
            cell,
            id,
            finisher,
            abort_sent: false,
        };
        let join = relay.finisher.0.clone();
        let handle = super::spawn_at(relay, location);
        if let Some(id) = handle.local_id() {
            join.set_task(id);
        }
    });
    // A job handed back is dropped here: its `Homebound` leaks the cell and its
    // `Finisher` records the cancellation.
    let _ = send(core, job);
    join
}

/// Makes a job's captures `Send` when they hold a join's `Finisher` for any `T`.
struct AssertSend<X>(X);

// SAFETY: holds a `Homebound` (itself `Send` for any `T`, see there) and a `Finisher`,
// an `Arc<RemoteJoin<T>>` that is `Send` when `T: Send`, which every handle that
// reaches `relay_home` satisfies (see `Homebound`).
unsafe impl<X> Send for AssertSend<X> {}

impl<X> AssertSend<X> {
    fn into_inner(self) -> X {
        self.0
    }
}

/// The task that awaits a local task on behalf of a handle that left home.
struct Relay<T> {
    cell: Rc<dyn Join<T>>,
    id: TaskId,
    finisher: Finisher<T>,
    abort_sent: bool,
}

impl<T> Future for Relay<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.abort_sent && this.finisher.0.aborted() {
            this.abort_sent = true;
            if this.cell.request_abort() {
                this.id.waker().wake();
            }
        }
        let outcome = std::task::ready!(this.cell.poll_join(cx));
        this.finisher.0.finish(outcome);
        Poll::Ready(())
    }
}
