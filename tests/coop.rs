//! A task that is always ready cannot starve I/O, timers or other tasks.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use runtime::time::sleep;

/// How many iterations a busy loop may run before the test calls it starvation.
const LIMIT: u64 = 50_000_000;

/// Spawns a task that loops on `step` until `stop` is set; returns its iteration count.
fn busy<F, Fut>(stop: Rc<Cell<bool>>, step: F) -> runtime::JoinHandle<u64>
where
    F: Fn() -> Fut + 'static,
    Fut: std::future::Future<Output = ()>,
{
    runtime::spawn(async move {
        let mut n = 0;
        while !stop.get() && n < LIMIT {
            step().await;
            n += 1;
        }
        n
    })
}

#[test]
fn a_yielding_loop_does_not_starve_timers_or_io() {
    tests::rt().block_on(async {
        let stop = Rc::new(Cell::new(false));
        let spinner = busy(stop.clone(), runtime::yield_now);
        sleep(Duration::from_millis(5)).await;
        runtime::nop().await.unwrap();
        stop.set(true);
        let n = spinner.await.unwrap();
        assert!(n < LIMIT, "the timer waited for the busy loop to give up");
    });
}

#[test]
fn a_loop_over_always_ready_futures_is_preempted() {
    // An elapsed sleep is ready at once, every time: without the budget this task
    // would never return to the run loop.
    tests::rt().block_on(async {
        let stop = Rc::new(Cell::new(false));
        let spinner = busy(stop.clone(), || sleep(Duration::ZERO));
        let s = stop.clone();
        let io = runtime::spawn(async move {
            runtime::nop().await.unwrap();
            sleep(Duration::from_millis(1)).await;
            s.set(true);
        });
        io.await.unwrap();
        let n = spinner.await.unwrap();
        assert!(
            n < LIMIT,
            "I/O and timers waited for the busy loop to give up"
        );
    });
}

#[test]
fn a_loop_over_finished_join_handles_is_preempted() {
    tests::rt().block_on(async {
        let stop = Rc::new(Cell::new(false));
        let spinner = busy(stop.clone(), || async {
            let h = runtime::spawn(async {});
            let _ = h.await;
        });
        let s = stop.clone();
        runtime::spawn(async move {
            sleep(Duration::from_millis(1)).await;
            s.set(true);
        })
        .await
        .unwrap();
        assert!(spinner.await.unwrap() < LIMIT);
    });
}
