//! Timers of the current core: [`sleep`], [`sleep_until`], [`timeout`], [`interval`].
//!
//! There is no timer thread and no timerfd: the core's ring waits with the nearest
//! deadline as its timeout. A timer never fires early: a sleep is ready only once
//! [`Instant::now`] has reached its deadline, whatever woke it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use std::time::Instant;

use crate::driver::{self, Driver, TimerKey};

mod interval;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior};

/// Waits until `duration` has passed.
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// runtime::time::sleep(Duration::from_millis(5)).await;
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// # });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(duration))
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timer: None,
    }
}

/// `duration` from now; for a duration too long to represent, about 30 years from
/// now.
pub(crate) fn deadline_after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30))
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// # Panics
///
/// Polling it outside a runtime panics: there is no ring to wait on.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    timer: Option<(Rc<Driver>, TimerKey)>,
}

impl Sleep {
    /// When the sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline (earlier or later); the next poll waits for the new one.
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel_timer();
        self.deadline = deadline;
    }

    fn cancel_timer(&mut self) {
        if let Some((driver, key)) = self.timer.take() {
            driver.remove_timer(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            std::task::ready!(crate::coop::poll_proceed(cx));
            this.cancel_timer();
            return Poll::Ready(());
        }
        match &this.timer {
            Some((driver, key)) => driver.update_timer(*key, cx.waker()),
            None => {
                let Some(driver) = driver::current() else {
                    panic!(
                        "runtime::time::Sleep polled outside a runtime: timers need the \
                         ring of a runtime core"
                    )
                };
                let key = driver.add_timer(this.deadline, cx.waker());
                this.timer = Some((driver, key));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel_timer();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Runs `future` with a time limit: its output, or [`Elapsed`] if `duration` passes
/// first (the future is then dropped, which cancels what it was doing).
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// use std::time::Duration;
/// use runtime::time::{sleep, timeout};
/// assert!(timeout(Duration::from_millis(1), sleep(Duration::from_secs(60))).await.is_err());
/// assert_eq!(timeout(Duration::from_secs(60), async { 7 }).await, Ok(7));
/// # });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Like [`timeout`], with a deadline instead of a duration.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`] and [`timeout_at`].
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// The error of a [`timeout`] whose time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_and_finished_sleeps_leave_no_timer_behind() {
        let mut rt = crate::Builder::new().build().unwrap();
        rt.block_on(async {
            let driver = driver::current().unwrap();
            for _ in 0..100 {
                let _ = timeout(Duration::from_micros(50), sleep(Duration::from_secs(3600))).await;
            }
            sleep(Duration::from_millis(1)).await;
            let mut s = sleep(Duration::from_secs(3600));
            std::future::poll_fn(|cx| {
                assert!(Pin::new(&mut s).poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(driver.timer_count(), 1);
            drop(s);
            assert_eq!(driver.timer_count(), 0);
        });
    }
}
