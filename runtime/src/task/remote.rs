//! Wakes that come from threads other than the task's own core.
//!
//! Each core registers a [`RemoteInbox`] in a process-wide table; its index is the
//! core number a waker carries. A foreign thread pushes the task's id into the inbox
//! and, if the core has not been told yet since it last looked, writes the core's
//! eventfd, which the core's ring always has a read on, so a parked core wakes.
//!
//! The `notified` flag makes that write happen once per batch: the core clears it
//! before it takes the queue, so a push that lands after the take sees it clear and
//! writes again, and no wake is lost.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use slab::Slab;

use super::waker::{TaskId, MAX_CORES};

/// Where other threads leave wakes for one core.
#[derive(Debug)]
pub(crate) struct RemoteInbox {
    wakes: Mutex<Vec<TaskId>>,
    notified: AtomicBool,
    eventfd: OwnedFd,
}

static INBOXES: Mutex<Slab<Arc<RemoteInbox>>> = Mutex::new(Slab::new());

fn inboxes() -> std::sync::MutexGuard<'static, Slab<Arc<RemoteInbox>>> {
    // The table is left consistent at every await-free step, so a panic elsewhere
    // while it was held does not make it unusable.
    INBOXES.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RemoteInbox {
    /// Makes an inbox and registers it; returns it with its core number.
    pub(crate) fn register() -> io::Result<(Arc<RemoteInbox>, u16)> {
        let inbox = Arc::new(RemoteInbox {
            wakes: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            eventfd: crate::sys::eventfd()?,
        });
        let mut table = inboxes();
        if table.len() >= MAX_CORES {
            return Err(io::Error::other(format!(
                "too many runtime cores alive in this process (at most {MAX_CORES})"
            )));
        }
        let core = table.insert(inbox.clone());
        Ok((inbox, core as u16))
    }

    pub(crate) fn unregister(core: u16) {
        let removed = inboxes().try_remove(core as usize);
        drop(removed);
    }

    /// The fd the core's ring reads to wake up.
    pub(crate) fn eventfd(&self) -> std::os::fd::RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Whether wakes may have been left since the last `take` (one atomic load).
    pub(crate) fn has_wakes(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Takes the wakes left since the last call, if any.
    pub(crate) fn take(&self, into: &mut Vec<TaskId>) {
        if !self.has_wakes() {
            return;
        }
        self.notified.store(false, Ordering::Release);
        let mut wakes = self.wakes.lock().unwrap_or_else(PoisonError::into_inner);
        into.append(&mut wakes);
    }

    fn push(&self, id: TaskId) {
        self.wakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
        if !self.notified.swap(true, Ordering::AcqRel) {
            crate::sys::eventfd_signal(self.eventfd.as_raw_fd());
        }
    }
}

/// Sends a wake to the task's core from a thread that is not running that core.
pub(super) fn wake(id: TaskId) {
    let inbox = inboxes().get(id.core() as usize).cloned();
    // A core that has shut down has no tasks left to wake.
    if let Some(inbox) = inbox {
        inbox.push(id);
    }
}
