//! Timers: order, never early, timeouts, intervals.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use runtime::time::{interval, sleep, sleep_until, timeout, MissedTickBehavior};
use tests::rt;

/// Anything that should finish quickly is awaited with this bound, so a bug shows as a
/// failure, not a hang.
const BOUND: Duration = Duration::from_secs(10);

#[test]
fn sleeps_never_end_early() {
    rt().block_on(async {
        for d in [0u64, 1, 10, 1_000, 50_000, 1_000_000, 5_000_000, 20_000_000] {
            let d = Duration::from_nanos(d);
            let start = Instant::now();
            timeout(BOUND, sleep(d)).await.expect("sleep ended");
            assert!(
                start.elapsed() >= d,
                "sleep({d:?}) ended after {:?}",
                start.elapsed()
            );
        }
    });
}

#[test]
fn timers_fire_in_deadline_order_and_none_early() {
    rt().block_on(async {
        let fired = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        // Registered out of order, some sharing a deadline.
        let delays_ms = [9u64, 1, 5, 3, 7, 2, 2, 8, 4, 6, 0];
        let handles: Vec<_> = delays_ms
            .iter()
            .enumerate()
            .map(|(i, &ms)| {
                let fired = fired.clone();
                let deadline = start + Duration::from_millis(ms);
                runtime::spawn(async move {
                    sleep_until(deadline).await;
                    let now = Instant::now();
                    assert!(
                        now >= deadline,
                        "timer {i} fired {:?} early",
                        deadline - now
                    );
                    fired.borrow_mut().push((ms, i));
                })
            })
            .collect();
        for h in handles {
            timeout(BOUND, h).await.unwrap().unwrap();
        }
        let order: Vec<u64> = fired.borrow().iter().map(|&(ms, _)| ms).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "timers fired out of deadline order");
    });
}

#[test]
fn ten_thousand_timers_all_fire_none_early() {
    rt().block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                let deadline = start + Duration::from_micros(i * 3 % 20_000);
                runtime::spawn(async move {
                    sleep_until(deadline).await;
                    Instant::now() >= deadline
                })
            })
            .collect();
        for h in handles {
            assert!(timeout(BOUND, h).await.unwrap().unwrap());
        }
    });
}

#[test]
fn timeout_gives_the_output_or_elapsed_and_drops_the_future() {
    rt().block_on(async {
        assert_eq!(timeout(BOUND, async { 5 }).await, Ok(5));

        let dropped = Rc::new(RefCell::new(false));
        struct Guard(Rc<RefCell<bool>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                *self.0.borrow_mut() = true;
            }
        }
        let guard = Guard(dropped.clone());
        let start = Instant::now();
        let res = timeout(Duration::from_millis(3), async move {
            let _guard = guard;
            sleep(Duration::from_secs(3600)).await;
        })
        .await;
        assert!(res.is_err());
        assert!(start.elapsed() >= Duration::from_millis(3));
        assert!(*dropped.borrow(), "the timed-out future was dropped");
        let err: std::io::Error = res.unwrap_err().into();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    });
}

#[test]
fn interval_ticks_on_schedule() {
    rt().block_on(async {
        let period = Duration::from_millis(2);
        let mut every = interval(period);
        let first = every.tick().await;
        let mut prev = first;
        for n in 1..=5u32 {
            let t = timeout(BOUND, every.tick()).await.unwrap();
            assert_eq!(t, first + period * n, "ticks are scheduled exactly");
            assert!(Instant::now() >= t, "a tick came early");
            assert!(t > prev);
            prev = t;
        }
    });
}

#[test]
fn interval_missed_ticks() {
    rt().block_on(async {
        let period = Duration::from_millis(1);
        // Burst: the missed ticks come at once, on the original schedule.
        let mut burst = interval(period);
        let start = burst.tick().await;
        sleep(period * 5).await;
        for n in 1..=4u32 {
            assert_eq!(burst.tick().await, start + period * n);
        }
        // Delay: after a late tick, the schedule restarts from it.
        let mut delay = interval(period);
        delay.set_missed_tick_behavior(MissedTickBehavior::Delay);
        delay.tick().await;
        sleep(period * 5).await;
        let late_at = Instant::now();
        delay.tick().await;
        let next = delay.tick().await;
        assert!(
            next >= late_at + period,
            "Delay restarts from the late tick"
        );
        // Skip: missed ticks are dropped, the next is on the original grid.
        let mut skip = interval(period);
        skip.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let start = skip.tick().await;
        sleep(period * 5).await;
        skip.tick().await; // the late one
        let next = skip.tick().await;
        let offset = next.duration_since(start).as_nanos() % period.as_nanos();
        assert_eq!(offset, 0, "Skip keeps the original grid");
        assert!(next >= start + period * 5);
    });
}

#[test]
fn sleep_reset_moves_the_deadline() {
    rt().block_on(async {
        let mut s = sleep(Duration::from_secs(3600));
        let target = Instant::now() + Duration::from_millis(2);
        s.reset(target);
        timeout(BOUND, &mut s).await.unwrap();
        assert!(Instant::now() >= target);
        assert!(s.is_elapsed());
    });
}

#[test]
#[should_panic(expected = "outside a runtime")]
fn sleep_outside_a_runtime_says_so() {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut s = sleep(Duration::from_secs(1));
    let _ = std::future::Future::poll(std::pin::Pin::new(&mut s), &mut cx);
}
