//! The run loop of one core.
//!
//! ```text
//! loop {
//!     poll the main future if it was woken
//!     poll the tasks that were ready when this tick began (at most TICK_BUDGET)
//!     move wakes sent from other threads onto the run queue
//!     turn the ring: park if nothing is ready (bounded by the next timer), else only
//!     submit; reap every CQE; fire due timers; wake
//! }
//! ```
//!
//! Tasks woken during a tick wait for the next one, so the ring is looked at at least
//! once per `TICK_BUDGET` polls however many tasks stay ready, and the per-poll budget
//! of [`crate::coop`] stops one task from looping on ready resources forever.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::driver::Driver;
use crate::task::{RemoteInbox, TaskId, Tasks};

/// Tasks polled per tick before the ring is looked at again.
const TICK_BUDGET: usize = 256;

/// One core: its ring, its tasks and its inbox.
pub(crate) struct Executor {
    pub(crate) driver: Rc<Driver>,
    pub(crate) tasks: Rc<Tasks>,
    inbox: Arc<RemoteInbox>,
    core: u16,
    remote: std::cell::RefCell<Vec<TaskId>>,
}

impl Executor {
    pub(crate) fn new(driver: Driver) -> io::Result<Executor> {
        let (inbox, core) = RemoteInbox::register()?;
        driver.set_wake_fd(inbox.eventfd());
        Ok(Executor {
            driver: Rc::new(driver),
            tasks: Rc::new(Tasks::new(core)),
            inbox,
            core,
            remote: Default::default(),
        })
    }

    /// Runs `future` to completion on this thread, running spawned tasks meanwhile.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _driver = self.driver.enter();
        let _tasks = self.tasks.enter();
        let mut future = pin!(future);
        let waker = self.tasks.main_waker();
        let mut cx = Context::from_waker(&waker);
        self.tasks.wake_main();
        loop {
            if self.tasks.take_main_woken() {
                let _budget = crate::coop::budget();
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            }
            self.tick();
            self.take_remote();
            self.driver.turn(!self.tasks.has_ready());
        }
    }

    fn tick(&self) {
        let n = self.tasks.queued().min(TICK_BUDGET);
        for _ in 0..n {
            let Some(ready) = self.tasks.next() else {
                break;
            };
            let waker = ready.id.waker();
            let mut cx = Context::from_waker(&waker);
            let done = {
                let _budget = crate::coop::budget();
                ready.task.poll(&mut cx)
            };
            if done {
                self.tasks.remove(ready.id);
            }
        }
    }

    fn take_remote(&self) {
        if !self.inbox.has_wakes() {
            return;
        }
        let mut remote = self.remote.borrow_mut();
        self.inbox.take(&mut remote);
        if !remote.is_empty() {
            self.tasks.schedule_remote(&mut remote);
        }
    }

    /// Cancels every task, then every op, and waits for the kernel to finish with them.
    pub(crate) fn shutdown(&self) {
        let _driver = self.driver.enter();
        let _tasks = self.tasks.enter();
        self.tasks.close();
        self.driver.shutdown();
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown();
        RemoteInbox::unregister(self.core);
    }
}
