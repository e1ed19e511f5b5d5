//! The timers of one core: a map from deadline to owner, whose earliest deadline bounds
//! the backend's wait (the ring's `EXT_ARG` timeout, or epoll's), so there is no timer
//! syscall and no timerfd.

use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Instant;

use super::Driver;
use crate::stats::Counters;
use crate::task::Owner;

/// Identifies one registered timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey((Instant, u64));

/// Registered timers, earliest first; the same for both backends.
#[derive(Default)]
pub(super) struct Timers {
    map: BTreeMap<(Instant, u64), Owner>,
    seq: u64,
}

impl Timers {
    fn add(&mut self, deadline: Instant, waker: &Waker) -> TimerKey {
        self.seq += 1;
        let key = (deadline, self.seq);
        self.map.insert(key, Owner::of(waker));
        TimerKey(key)
    }

    /// The owner replaced, for the caller to drop after its borrow.
    fn update(&mut self, key: TimerKey, waker: &Waker) -> Option<Owner> {
        match self.map.get_mut(&key.0) {
            Some(owner) if owner.will_wake(waker) => None,
            Some(owner) => Some(std::mem::replace(owner, Owner::of(waker))),
            None => self.map.insert(key.0, Owner::of(waker)),
        }
    }

    fn remove(&mut self, key: TimerKey) -> Option<Owner> {
        self.map.remove(&key.0)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The earliest deadline of a registered timer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.map.keys().next().map(|&(deadline, _)| deadline)
    }

    /// Moves the owners of every timer due at `now` into `ready`.
    pub(super) fn fire(&mut self, now: Instant, ready: &mut Vec<Owner>, counters: &Counters) {
        while let Some(entry) = self.map.first_entry() {
            if entry.key().0 > now {
                break;
            }
            ready.push(entry.remove());
            counters.timers_fired.add(1);
        }
    }

    /// Every timer, for a shutdown to drop after its borrow.
    pub(super) fn take(&mut self) -> Timers {
        std::mem::take(self)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

impl Driver {
    /// Registers a timer; the backend's wait is bounded by the earliest one.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: &Waker) -> TimerKey {
        self.with_timers(|timers| timers.add(deadline, waker))
    }

    /// Points a registered timer at another waker; re-registers it if it has fired.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) {
        // Dropped after the borrow ends, like every owner the driver lets go of.
        drop(self.with_timers(|timers| timers.update(key, waker)));
    }

    pub(crate) fn remove_timer(&self, key: TimerKey) {
        drop(self.with_timers(|timers| timers.remove(key)));
    }

    #[cfg(test)]
    pub(crate) fn timer_count(&self) -> usize {
        self.with_timers(|timers| timers.len())
    }
}
