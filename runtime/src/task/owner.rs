//! Who is told when something a task waits for happens: [`Owner`].

use std::task::Waker;

use super::TaskId;

/// The party to wake when an operation completes or a timer fires.
///
/// Almost always a task of the core that made the op: then it is the task's id, so
/// recording it clones nothing and "is it the same task?" is an integer compare, and
/// the core schedules it straight onto its run queue. Any other waker (a foreign
/// executor's, a task of another core) is kept as a `Waker` and woken as one.
#[derive(Debug)]
pub(crate) enum Owner {
    Task(TaskId),
    Waker(Waker),
}

impl Owner {
    /// The owner for a poll with `waker`.
    #[inline]
    pub(crate) fn of(waker: &Waker) -> Owner {
        match TaskId::of_waker(waker) {
            Some(id) => Owner::Task(id),
            None => Owner::Waker(waker.clone()),
        }
    }

    /// Whether waking `waker` would wake this owner (so the record may stay).
    #[inline]
    pub(crate) fn will_wake(&self, waker: &Waker) -> bool {
        match self {
            Owner::Task(id) => TaskId::of_waker(waker) == Some(*id),
            Owner::Waker(w) => w.will_wake(waker),
        }
    }

    /// Wakes the owner from anywhere (a task of this thread's core goes straight onto
    /// its run queue; anything else takes the waker's own path).
    pub(crate) fn wake(self) {
        match self {
            Owner::Task(id) => super::wake(id),
            Owner::Waker(w) => w.wake(),
        }
    }
}
