//! Task queues: shares of run time, latency bounds, and what a user can see of them.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use runtime::task::TaskQueue;
use tests::rt;

/// The tests that keep a core busy take turns: on a 2-CPU machine two of them at once
/// would have the kernel preempt one for the other, which no runtime can help.
static BUSY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn busy_turn() -> std::sync::MutexGuard<'static, ()> {
    BUSY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds the core for `d` without yielding.
fn hold_core(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The run time CoreStats gives queue `name`.
fn run_time(name: &str) -> Duration {
    runtime::stats()
        .queues
        .iter()
        .find(|q| q.name == name)
        .unwrap_or_else(|| panic!("no queue {name}"))
        .run_time
}

#[test]
fn two_busy_queues_split_the_core_by_their_shares() {
    let _turn = busy_turn();
    let (light, heavy, light_stats, heavy_stats) = rt().block_on(async {
        let light_q = TaskQueue::new("light", 100).unwrap();
        let heavy_q = TaskQueue::new("heavy", 300).unwrap();
        // What each queue's tasks measured of their own running, and the total of
        // both, which ends the test after about 2 s of work.
        let light = Rc::new(Cell::new(Duration::ZERO));
        let heavy = Rc::new(Cell::new(Duration::ZERO));
        let total = Rc::new(Cell::new(Duration::ZERO));
        let mut handles = Vec::new();
        for (queue, mine) in [(&light_q, &light), (&heavy_q, &heavy)] {
            for _ in 0..4 {
                let (mine, total) = (mine.clone(), total.clone());
                handles.push(queue.spawn(async move {
                    while total.get() < Duration::from_secs(2) {
                        let start = Instant::now();
                        hold_core(Duration::from_micros(50));
                        let spent = start.elapsed();
                        mine.set(mine.get() + spent);
                        total.set(total.get() + spent);
                        runtime::yield_now().await;
                    }
                }));
            }
        }
        for handle in handles {
            handle.await.unwrap();
        }
        (
            light.get(),
            heavy.get(),
            run_time("light"),
            run_time("heavy"),
        )
    });
    for (what, light, heavy) in [
        ("as the tasks measured", light, heavy),
        ("as CoreStats says", light_stats, heavy_stats),
    ] {
        let ratio = heavy.as_secs_f64() / light.as_secs_f64();
        println!("shares 1:3, {what}: {light:?} : {heavy:?} = 1 : {ratio:.2}");
        assert!(
            (2.7..=3.3).contains(&ratio),
            "shares 1:3 gave {light:?} : {heavy:?} ({ratio:.2}), {what}"
        );
    }
}

#[test]
fn a_latency_queue_stays_on_time_while_a_busy_queue_saturates_the_core() {
    let _turn = busy_turn();
    let lateness = rt().block_on(async {
        let busy = TaskQueue::new("busy", 1000).unwrap();
        let ticker = TaskQueue::new("ticker", 10)
            .unwrap()
            .latency(Duration::from_millis(2));
        let done = Rc::new(Cell::new(false));
        let mut spinners = Vec::new();
        for _ in 0..4 {
            let done = done.clone();
            spinners.push(busy.spawn(async move {
                while !done.get() {
                    hold_core(Duration::from_micros(200));
                    runtime::yield_now().await;
                }
            }));
        }
        let ticks = ticker.spawn(async {
            let mut lateness = Vec::new();
            for _ in 0..300 {
                let deadline = Instant::now() + Duration::from_millis(3);
                runtime::time::sleep_until(deadline).await;
                let now = Instant::now();
                assert!(now >= deadline, "woken {:?} early", deadline - now);
                lateness.push(now - deadline);
            }
            lateness
        });
        let lateness = ticks.await.unwrap();
        done.set(true);
        for s in spinners {
            s.await.unwrap();
        }
        lateness
    });
    let mut sorted = lateness.clone();
    sorted.sort();
    let p99 = sorted[sorted.len() * 99 / 100];
    println!(
        "2 ms bound under a busy queue: lateness median {:?}, p99 {p99:?}, max {:?}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    assert!(
        p99 < Duration::from_millis(5),
        "p99 lateness {p99:?} (median {:?}, max {:?})",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
}

#[test]
fn without_a_bound_a_sleeping_task_waits_for_the_busy_ticks() {
    let _turn = busy_turn();
    // The control for the test above: the same load with no latency bound, where the
    // ticker's wake-ups wait behind 256-poll ticks of the busy queue. It shows the
    // bound is what keeps the ticker on time (and that the load is heavy enough).
    let max = rt().block_on(async {
        let done = Rc::new(Cell::new(false));
        let mut spinners = Vec::new();
        for _ in 0..300 {
            let done = done.clone();
            spinners.push(runtime::spawn(async move {
                while !done.get() {
                    hold_core(Duration::from_micros(50));
                    runtime::yield_now().await;
                }
            }));
        }
        let ticks = runtime::spawn(async {
            let mut max = Duration::ZERO;
            for _ in 0..20 {
                let deadline = Instant::now() + Duration::from_millis(3);
                runtime::time::sleep_until(deadline).await;
                max = max.max(Instant::now() - deadline);
            }
            max
        });
        let max = ticks.await.unwrap();
        done.set(true);
        for s in spinners {
            s.await.unwrap();
        }
        max
    });
    // A tick of 256 polls of 50 µs is about 12.8 ms.
    assert!(
        max >= Duration::from_millis(5),
        "the unbounded ticker was late by {max:?} at most"
    );
}

#[test]
fn queues_show_in_core_stats_and_go_with_their_last_handle_and_task() {
    rt().block_on(async {
        let names = || -> Vec<String> {
            runtime::stats()
                .queues
                .into_iter()
                .map(|q| q.name)
                .collect()
        };
        assert_eq!(names(), ["default"]);
        let queue = TaskQueue::new("io", 50)
            .unwrap()
            .latency(Duration::from_millis(1));
        let stats = runtime::stats();
        let io = &stats.queues[1];
        assert_eq!((io.name.as_str(), io.shares), ("io", 50));
        assert_eq!(io.latency, Some(Duration::from_millis(1)));
        let (tx, rx) = runtime::channel::oneshot::<()>();
        let task = queue.spawn(async move {
            rx.await.unwrap();
            7
        });
        runtime::yield_now().await;
        drop(queue);
        // Its task still runs it.
        assert_eq!(names(), ["default", "io"]);
        tx.send(()).unwrap();
        assert_eq!(task.await.unwrap(), 7);
        assert_eq!(names(), ["default"]);
        runtime::spawn(async {}).await.unwrap();
        let default = &runtime::stats().queues[0];
        assert!(default.polls >= 1 && default.shares == 1000, "{default:?}");
    });
}

#[test]
fn bad_shares_and_no_runtime_are_errors() {
    let e = rt().block_on(async { TaskQueue::new("none", 0).unwrap_err() });
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("shares"), "{e}");
    let e = TaskQueue::new("too many", runtime::task::MAX_SHARES + 1).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = TaskQueue::new("outside", 10).unwrap_err();
    assert!(e.to_string().contains("outside a runtime"), "{e}");
}

#[test]
fn a_stall_names_the_queue() {
    let stalls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = stalls.clone();
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .stall_threshold(Some(Duration::from_millis(10)))
        .on_stall(move |s| seen.lock().unwrap().push(s.queue.clone()))
        .build()
        .unwrap();
    rt.block_on(async {
        let q = TaskQueue::new("compaction", 10).unwrap();
        q.spawn(async { hold_core(Duration::from_millis(20)) })
            .await
            .unwrap();
    });
    assert_eq!(*stalls.lock().unwrap(), ["compaction"]);
}

#[test]
fn shutdown_cancels_the_tasks_of_every_queue() {
    let mut rt = rt();
    let dropped = Rc::new(Cell::new(0));
    rt.block_on(async {
        for name in ["a", "b", "c"] {
            let q = TaskQueue::new(name, 10).unwrap();
            for _ in 0..3 {
                struct Count(Rc<Cell<i32>>);
                impl Drop for Count {
                    fn drop(&mut self) {
                        self.0.set(self.0.get() + 1);
                    }
                }
                let c = Count(dropped.clone());
                q.spawn(async move {
                    let _c = c;
                    std::future::pending::<()>().await
                });
            }
        }
        runtime::yield_now().await;
    });
    let report = rt.shutdown_timeout(Duration::ZERO);
    assert!(!report.finished_in_time());
    assert_eq!(dropped.get(), 9, "every queued task's future was dropped");
}

#[test]
fn aborting_a_queued_task_works_as_in_the_default_queue() {
    rt().block_on(async {
        let q = TaskQueue::new("q", 10).unwrap();
        let h = q.spawn(std::future::pending::<()>());
        runtime::yield_now().await;
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        let h = q.spawn(async { 5 });
        assert_eq!(h.await.unwrap(), 5);
    });
}

/// Each task records its number when it first runs; how they ran.
fn record_order(
    spawn: impl Fn(Box<dyn std::future::Future<Output = ()>>),
    tasks: usize,
    each: Duration,
) -> Rc<std::cell::RefCell<Vec<usize>>> {
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    for i in 0..tasks {
        let order = order.clone();
        spawn(Box::new(async move {
            hold_core(each);
            order.borrow_mut().push(i);
        }));
    }
    order
}

#[test]
fn tasks_run_in_spawn_order_across_many_ticks() {
    // 1,000 tasks are four ticks' worth: the ones a tick has no room for wait in the
    // backlog and must come out in the same order.
    let order = rt().block_on(async {
        let handles = Rc::new(std::cell::RefCell::new(Vec::new()));
        let order = record_order(
            |f| handles.borrow_mut().push(runtime::spawn(Box::into_pin(f))),
            1000,
            Duration::ZERO,
        );
        for h in handles.take() {
            h.await.unwrap();
        }
        order.take()
    });
    assert_eq!(order, (0..1000).collect::<Vec<_>>());
}

#[test]
fn ticks_cut_by_time_put_the_rest_back_in_order() {
    let _turn = busy_turn();
    // Two queues with work share the core, so ticks end after their slice (1 ms)
    // with tasks taken and not polled: those go back in front, in order.
    let order = rt().block_on(async {
        let ordered = TaskQueue::new("ordered", 100).unwrap();
        let other = TaskQueue::new("other", 100).unwrap();
        let done = Rc::new(Cell::new(false));
        let spinner = {
            let done = done.clone();
            other.spawn(async move {
                while !done.get() {
                    hold_core(Duration::from_micros(100));
                    runtime::yield_now().await;
                }
            })
        };
        let handles = Rc::new(std::cell::RefCell::new(Vec::new()));
        let order = record_order(
            |f| handles.borrow_mut().push(ordered.spawn(Box::into_pin(f))),
            600,
            Duration::from_micros(20),
        );
        for h in handles.take() {
            h.await.unwrap();
        }
        done.set(true);
        spinner.await.unwrap();
        let polls = runtime::stats()
            .queues
            .iter()
            .find(|q| q.name == "ordered")
            .map(|q| q.polls)
            .unwrap();
        (order.take(), polls)
    });
    let (order, polls) = order;
    assert_eq!(order, (0..600).collect::<Vec<_>>());
    // Each task finishes in its first poll: put back, none was lost or polled twice.
    assert_eq!(polls, 600);
}
