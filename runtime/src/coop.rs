//! The cooperative budget: how many times a task may find a resource ready in one
//! poll before that resource pretends to be pending.
//!
//! A task that loops over always-ready futures (an elapsed timer, a finished join
//! handle, a full channel) would otherwise never return to the run loop, and I/O and
//! timers would starve. When the budget is spent, the resource wakes the task and
//! returns `Pending`; the task is polled again after the loop has looked at the ring.

use std::cell::Cell;
use std::task::{Context, Poll};

/// Resources a task may find ready per poll.
const BUDGET: u8 = 128;

thread_local! {
    /// `None` outside a task poll: futures polled by other executors are not limited.
    static REMAINING: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Gives the task about to be polled a fresh budget until the guard drops.
pub(crate) fn budget() -> BudgetGuard {
    let prev = REMAINING.with(|r| r.replace(Some(BUDGET)));
    BudgetGuard { prev }
}

/// Starts a run of task polls (a tick): each poll gets a fresh budget from
/// [`refill`], and the budget is put back as it was when the guard drops, so a
/// tick costs two thread-local writes plus one per poll rather than two per poll.
pub(crate) fn polls() -> BudgetGuard {
    let prev = REMAINING.with(Cell::get);
    BudgetGuard { prev }
}

/// A fresh budget for the next task poll of a run begun with [`polls`].
#[inline]
pub(crate) fn refill() {
    REMAINING.with(|r| r.set(Some(BUDGET)));
}

pub(crate) struct BudgetGuard {
    prev: Option<u8>,
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        REMAINING.with(|r| r.set(self.prev));
    }
}

/// Spends one unit, or wakes the task and returns `Pending` if none is left.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    REMAINING.with(|r| match r.get() {
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            r.set(Some(n - 1));
            Poll::Ready(())
        }
        None => Poll::Ready(()),
    })
}
