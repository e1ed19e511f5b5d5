//! The timers of one core: a map from deadline to owner, whose earliest deadline bounds
//! the ring's wait (`EXT_ARG` timeout), so there is no timer syscall and no timerfd.

use std::task::Waker;
use std::time::Instant;

use super::{Driver, Inner};
use crate::task::Owner;

/// Identifies one registered timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey((Instant, u64));

impl Driver {
    /// Registers a timer; the ring wait is bounded by the earliest one.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: &Waker) -> TimerKey {
        let mut inner = self.inner.borrow_mut();
        inner.timer_seq += 1;
        let key = (deadline, inner.timer_seq);
        inner.timers.insert(key, Owner::of(waker));
        TimerKey(key)
    }

    /// Points a registered timer at another waker; re-registers it if it has fired.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) {
        let mut inner = self.inner.borrow_mut();
        let replaced = match inner.timers.get_mut(&key.0) {
            Some(owner) if owner.will_wake(waker) => None,
            Some(owner) => Some(std::mem::replace(owner, Owner::of(waker))),
            None => inner.timers.insert(key.0, Owner::of(waker)),
        };
        // Dropped after the borrow ends, like every owner the driver lets go of.
        drop(inner);
        drop(replaced);
    }

    pub(crate) fn remove_timer(&self, key: TimerKey) {
        let removed = self.inner.borrow_mut().timers.remove(&key.0);
        drop(removed);
    }

    #[cfg(test)]
    pub(crate) fn timer_count(&self) -> usize {
        self.inner.borrow().timers.len()
    }
}

impl Inner {
    /// The earliest deadline of a registered timer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|&(deadline, _)| deadline)
    }

    /// Makes the owners of every timer due at `now` ready.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.ready.push(entry.remove());
            self.counters.timers_fired.add(1);
        }
    }
}
