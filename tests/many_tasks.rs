//! Many tasks at once: all run, all join, none lost.

use std::cell::Cell;
use std::rc::Rc;

#[test]
fn a_hundred_thousand_tasks_run_and_join() {
    const TASKS: usize = 100_000;
    let mut rt = tests::rt();
    let before = rt.stats();
    let polls = Rc::new(Cell::new(0usize));
    let sum = rt.block_on({
        let polls = polls.clone();
        async move {
            let handles: Vec<_> = (0..TASKS)
                .map(|i| {
                    let polls = polls.clone();
                    runtime::spawn(async move {
                        runtime::yield_now().await;
                        polls.set(polls.get() + 1);
                        i as u64
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        }
    });
    assert_eq!(sum, (TASKS as u64 - 1) * TASKS as u64 / 2);
    assert_eq!(polls.get(), TASKS);
    let after = rt.stats();
    assert_eq!(after.tasks_spawned - before.tasks_spawned, TASKS as u64);
    // Each task is polled twice (before and after its yield), no more.
    assert_eq!(after.tasks_polled - before.tasks_polled, 2 * TASKS as u64);
}
