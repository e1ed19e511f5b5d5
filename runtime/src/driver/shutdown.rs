//! Letting go: cancelling and draining every op at shutdown (rule 6), readying an fd
//! to leave the runtime (`into_std`), and closing an fd behind the ops that name it
//! (rule 5).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{current, ops, Driver, Inner};

/// How long an op may outlive its cancel before it is cancelled again.
const RECANCEL: Duration = Duration::from_millis(100);

impl Driver {
    /// Cancels every op in flight and waits for all their CQEs, so that nothing the
    /// kernel may still write is freed (rule 6). Ops submitted after this fail.
    ///
    /// Each op is cancelled once: those dropped in flight had their cancel queued then,
    /// the others get theirs here. Ops that outlive their cancel (not yet cancellable
    /// when it came, or ignoring it for a while) are cancelled again, all at once, only
    /// once `RECANCEL` has passed without a completion: cancelling everything again
    /// while completions still flow would bury them under cancels. (One cancel of every
    /// request, `ASYNC_CANCEL_ANY | ALL`, is no cheaper: the kernel looks for each next
    /// match from the start of its table, where the requests it has already cancelled
    /// still sit until their completions run, so it is quadratic.)
    pub(crate) fn shutdown(&self) {
        if !self.is_ring() {
            // Nothing is lent to the kernel: waits still in the table are withdrawn by
            // their futures' drops; owners and timers are let go of after the borrow.
            let leftovers = self.poller().borrow_mut().shutdown();
            return drop(leftovers);
        }
        let mut last_cancel = None::<Instant>;
        let mut last_progress = Instant::now();
        loop {
            let (ready, finished) = {
                let mut inner = self.inner().borrow_mut();
                inner.closed = true;
                if inner.in_flight() == 0 {
                    break;
                }
                let again = match last_cancel {
                    None => Some(false),
                    Some(t) if t.elapsed() >= RECANCEL && last_progress.elapsed() >= RECANCEL => {
                        Some(true)
                    }
                    Some(_) => None,
                };
                if let Some(again) = again {
                    inner.cancel_all(again);
                    last_cancel = Some(Instant::now());
                }
                let before = inner.counters.cqes.get();
                inner.submit(true, Some(RECANCEL));
                inner.reap();
                if inner.counters.cqes.get() != before {
                    last_progress = Instant::now();
                }
                (
                    std::mem::take(&mut inner.ready),
                    std::mem::take(&mut inner.finished),
                )
            };
            // Nobody is woken any more; the owners are only let go of.
            drop(ready);
            for (op, cqe) in finished {
                op.finish(cqe);
            }
        }
        let mut inner = self.inner().borrow_mut();
        // Messages to other cores queued last still go out.
        inner.submit(false, None);
        let timers = inner.timers.take();
        let ready = std::mem::take(&mut inner.ready);
        drop(inner);
        drop((timers, ready));
    }

    /// Whether an op dropped in flight on `fd` still waits for its last CQE: only
    /// then does a hand-off of `fd` need [`release_fd`](Driver::release_fd)'s wait.
    pub(crate) fn has_orphans(&self, fd: RawFd) -> bool {
        self.is_ring() && self.inner().borrow().slots.has_orphans(fd)
    }

    /// Readies `fd` to leave the runtime (`into_std`): every queued SQE goes to the
    /// kernel while the fd is still ours, and the last CQE of every dropped op still in
    /// flight on it is waited for (their cancels are on the way), so no op of ours acts
    /// on the socket once its new owner has it.
    pub(crate) fn release_fd(&self, fd: RawFd) {
        if !self.is_ring() {
            return self.poller().borrow_mut().release(fd);
        }
        let mut last_cancel = Instant::now();
        loop {
            let (ready, finished) = {
                let mut inner = self.inner().borrow_mut();
                inner.submit_all();
                if !inner.slots.has_orphans(fd) {
                    return;
                }
                if last_cancel.elapsed() >= RECANCEL {
                    for token in inner.slots.orphans_on(fd) {
                        inner.cancel(token.0);
                    }
                    last_cancel = Instant::now();
                }
                inner.submit(true, Some(RECANCEL));
                inner.reap();
                (
                    std::mem::take(&mut inner.ready),
                    std::mem::take(&mut inner.finished),
                )
            };
            for owner in ready {
                owner.wake();
            }
            for (op, cqe) in finished {
                op.finish(cqe);
            }
        }
    }
}

impl Inner {
    /// Cancels every op in flight (with `ignored`, also those dropped in flight, whose
    /// cancel was queued when they were dropped) and the wake-up read.
    fn cancel_all(&mut self, ignored: bool) {
        for token in self.slots.cancellable(ignored) {
            self.cancel(token.0);
        }
        if self.wake_armed {
            self.cancel(super::WAKE_UD);
        }
    }
}

/// Closes `fd` behind every SQE already queued on this thread's ring, with an
/// `IORING_OP_CLOSE` queued after them: the number is freed only once the ops that name
/// it have taken their reference to the file (rule 5). Outside a running core nothing
/// can be queued on the fd (each core hands everything it queued to the kernel before
/// it leaves the thread, even by a panic), so it is closed at once.
pub(crate) fn close(fd: OwnedFd) {
    let Some(driver) = current() else {
        return drop(fd);
    };
    if !driver.is_ring() {
        // Nothing is queued on the readiness backend: the fd is closed at once, and
        // what the poller knew of its number is forgotten.
        driver.poller().borrow_mut().forget(fd.as_raw_fd());
        return drop(fd);
    }
    if let Err(close) = driver.submit_detached(ops::Close::new(fd)) {
        // Shutting down, nothing new is queued: every SQE queued so far goes to the
        // kernel first, so none is left to name the number once it is free.
        driver.submit_all();
        drop(close);
    }
}
