use std::future::{poll_fn, Future as _};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{sleep_until, Instant, Sleep};

/// Ticks every `period`, the first tick at once.
///
/// A zero period is taken as one nanosecond.
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// use std::time::Duration;
/// let mut every = runtime::time::interval(Duration::from_millis(2));
/// let first = every.tick().await;
/// let second = every.tick().await;
/// assert_eq!(second - first, Duration::from_millis(2));
/// # });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    Interval {
        period: period.max(Duration::from_nanos(1)),
        sleep: sleep_until(start),
        missed: MissedTickBehavior::Burst,
    }
}

/// What an [`Interval`] does when ticks were missed because it was not polled in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Gives the missed ticks at once, then keeps the original schedule.
    #[default]
    Burst,
    /// Starts a new schedule one period after the late tick.
    Delay,
    /// Drops the missed ticks and goes on with the original schedule's next tick.
    Skip,
}

/// Ticks at a fixed period; made by [`interval`]. Also a `Stream` of tick instants.
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns when it was scheduled (not when it came).
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.sleep).poll(cx));
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        let next = match self.missed {
            MissedTickBehavior::Burst => scheduled + self.period,
            _ if now < scheduled + self.period => scheduled + self.period,
            MissedTickBehavior::Delay => now + self.period,
            MissedTickBehavior::Skip => {
                let behind = now.duration_since(scheduled).as_nanos();
                let periods = behind / self.period.as_nanos() + 1;
                scheduled + self.period * u32::try_from(periods).unwrap_or(u32::MAX)
            }
        };
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Starts the schedule again: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.sleep.reset(Instant::now() + self.period);
    }
}

impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}
