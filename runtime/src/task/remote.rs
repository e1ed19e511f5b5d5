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

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use super::{JoinError, TaskId};

static REMOTE_WAKE: OnceLock<fn(TaskId)> = OnceLock::new();

/// Installs the function that sends a wake to a task's core from another thread.
pub(crate) fn set_remote_wake(f: fn(TaskId)) {
    let _ = REMOTE_WAKE.set(f);
}

/// Sends a wake to the task's core from a thread that is not running that core.
pub(super) fn wake(id: TaskId) {
    if let Some(send) = REMOTE_WAKE.get() {
        send(id);
    }
}

/// Work sent to a core: run there, with the core's context entered.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

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
    fn lock(&self) -> MutexGuard<'_, JoinState<T>> {
        // No user code runs under this lock: the state is consistent even if a thread
        // panicked elsewhere while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish(&self, outcome: Result<T, JoinError>) {
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

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
}

/// Finishes the join as cancelled if it is dropped before it finished it otherwise.
struct Finisher<T>(Arc<RemoteJoin<T>>);

impl<T> Drop for Finisher<T> {
    fn drop(&mut self) {
        self.0.finish(Err(JoinError::cancelled()));
    }
}

/// Makes the job that, run on the target core, calls `f` there and spawns its future;
/// and the shared state its handle awaits.
pub(crate) fn remote_job<F, Fut>(f: F) -> (Arc<RemoteJoin<Fut::Output>>, Job)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let join = Arc::new(RemoteJoin {
        abort: AtomicBool::new(false),
        state: Mutex::new(JoinState {
            outcome: None,
            finished: false,
            waker: None,
            task: None,
        }),
    });
    let finisher = Finisher(join.clone());
    let job: Job = Box::new(move || {
        if finisher.0.aborted() {
            return; // the finisher's drop records the cancellation
        }
        match catch_unwind(AssertUnwindSafe(f)) {
            Err(payload) => finisher.0.finish(Err(JoinError::panic(payload))),
            Ok(future) => {
                let join = finisher.0.clone();
                let handle = super::spawn(Forward {
                    future: Some(future),
                    finisher,
                });
                if let Some(id) = handle.local_id() {
                    join.lock().task = Some(id);
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
