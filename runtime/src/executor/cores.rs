//! The cores of one runtime, as every thread sees them, and the routing of wakes and
//! jobs between them.
//!
//! A message for another core goes into that core's [`Inbox`]; the core is then woken
//! by an `IORING_OP_MSG_RING` queued on the sender's own ring (it goes to the kernel
//! with the sender's next batched `io_uring_enter`, no syscall of its own), or, when
//! the sender is not a runtime core, the kernel lacks `MSG_RING`, the builder turned
//! it off or the message failed, by a write to the target's eventfd. The sending core
//! counts which way each wake-up went (`msg_ring_wakes_sent`, `eventfd_wakes_sent`),
//! so a silent fall-back from one to the other shows in its [`CoreStats`].

use std::io;
use std::sync::Arc;

use super::inbox::{self, Inbox};
use super::Core;
use crate::stats::{CoreStats, Counters};
use crate::task::{Job, TaskId};

/// The cores of one runtime: their inboxes and counters, by core index.
#[derive(Debug)]
pub(crate) struct Cores {
    inboxes: Box<[Arc<Inbox>]>,
    counters: Box<[Arc<Counters>]>,
}

impl Cores {
    pub(crate) fn new(n: usize) -> io::Result<Cores> {
        let counters: Box<[Arc<Counters>]> = (0..n).map(|_| Arc::default()).collect();
        let inboxes = inbox::register(&counters)?.into_boxed_slice();
        Ok(Cores { inboxes, counters })
    }

    pub(crate) fn len(&self) -> usize {
        self.inboxes.len()
    }

    pub(crate) fn inbox(&self, index: usize) -> &Arc<Inbox> {
        &self.inboxes[index]
    }

    pub(crate) fn counters(&self, index: usize) -> &Arc<Counters> {
        &self.counters[index]
    }

    pub(crate) fn stats(&self) -> Vec<CoreStats> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }

    /// The inbox of the core with process-wide number `core`, if it is one of these.
    fn by_process_core(&self, core: u16) -> Option<&Inbox> {
        let base = self.inboxes.first()?.core();
        let index = usize::from(core.checked_sub(base)?);
        self.inboxes.get(index).map(|inbox| &**inbox)
    }

    /// Closes core `index`'s inbox: it takes no more work and its core thread stops.
    /// Jobs still waiting are dropped, so their handles report the task cancelled.
    pub(crate) fn stop(&self, index: usize) {
        let inbox = &self.inboxes[index];
        let jobs = inbox.close(TaskId::main(inbox.core()));
        drop(jobs);
    }

    /// Sends `job` to core `index`; hands it back if that core has stopped.
    pub(crate) fn send_job(&self, index: usize, job: Job) -> Result<(), Job> {
        let inbox = &self.inboxes[index];
        let wake = inbox.push_job(job)?;
        super::with_current(|from| sent(inbox, wake, from));
        Ok(())
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        inbox::unregister(&self.inboxes);
    }
}

/// Counts a message left in `inbox` by core `from` (if this thread is one) and wakes
/// the inbox's core if needed, counting on `from` which way the wake-up went.
fn sent(inbox: &Inbox, wake: bool, from: Option<&Core>) {
    if let Some(core) = from {
        core.counters.remote_sent.add(1);
    }
    if !wake {
        return;
    }
    let by_ring = match (from, inbox.ring_fd()) {
        (Some(core), Some(fd)) => core.driver.send_msg(fd, inbox.core()),
        _ => false,
    };
    if by_ring {
        if let Some(core) = from {
            core.counters.msg_ring_wakes.add(1);
        }
        return;
    }
    inbox.signal();
    if let Some(core) = from {
        core.counters.eventfd_wakes.add(1);
    }
}

/// Sends a wake to a task whose core is not running on this thread.
pub(crate) fn wake_remote(id: TaskId) {
    super::with_current(|from| {
        // The common case, a core of the same runtime, needs no process-wide lock.
        if let Some(inbox) = from.and_then(|core| core.cores.by_process_core(id.core())) {
            let wake = inbox.push_wake(id);
            return sent(inbox, wake, from);
        }
        inbox::with(id.core(), |inbox| {
            let wake = inbox.push_wake(id);
            sent(inbox, wake, from);
        });
    });
}

/// Wakes cores whose `MSG_RING` from this core failed, through their eventfds.
#[inline]
pub(crate) fn resend(core: &Core) {
    if core.driver.has_failed_msgs() {
        resend_failed(core);
    }
}

#[cold]
fn resend_failed(core: &Core) {
    for target in core.driver.take_failed_msgs() {
        if inbox::with(target, Inbox::signal).is_some() {
            core.counters.eventfd_wakes.add(1);
        }
    }
}

/// Sends `job` to the core with process-wide number `core` from any thread; the job
/// back if that core is gone or stopping.
pub(crate) fn send_job_remote(core: u16, job: Job) -> Result<(), Job> {
    super::with_current(|from| {
        let send = |inbox: &Inbox, job| {
            let wake = inbox.push_job(job)?;
            sent(inbox, wake, from);
            Ok(())
        };
        if let Some(inbox) = from.and_then(|c| c.cores.by_process_core(core)) {
            return send(inbox, job);
        }
        let mut job = Some(job);
        inbox::with(core, |inbox| send(inbox, job.take().expect("sent once")))
            .unwrap_or_else(|| Err(job.take().expect("not sent")))
    })
}

/// Whether a core with process-wide number `core` is registered (perhaps stopping).
pub(crate) fn exists(core: u16) -> bool {
    inbox::with(core, |_| ()).is_some()
}
