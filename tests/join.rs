//! Spawning, joining, aborting and panicking tasks.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use runtime::time::sleep;
use tests::rt;

/// Sets a flag when dropped: shows a task's future was dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn join_returns_the_output() {
    let out = rt().block_on(async {
        let a = runtime::spawn(async { 1 });
        let b = runtime::spawn(async { String::from("two") });
        (a.await.unwrap(), b.await.unwrap())
    });
    assert_eq!(out, (1, "two".to_string()));
}

#[test]
fn tasks_spawn_tasks() {
    let out = rt().block_on(async {
        runtime::spawn(async { runtime::spawn(async { 7 }).await.unwrap() * 6 })
            .await
            .unwrap()
    });
    assert_eq!(out, 42);
}

#[test]
fn abort_drops_the_future_and_reports_cancelled() {
    rt().block_on(async {
        let dropped = Rc::new(Cell::new(false));
        let flag = DropFlag(dropped.clone());
        let handle = runtime::spawn(async move {
            let _flag = flag;
            sleep(Duration::from_secs(3600)).await;
        });
        runtime::yield_now().await; // let it start and park on the timer
        assert!(!handle.is_finished());
        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled() && !err.is_panic(), "{err:?}");
        assert!(dropped.get(), "the aborted task's future was dropped");
    });
}

#[test]
fn abort_before_the_first_poll_never_polls() {
    rt().block_on(async {
        let polled = Rc::new(Cell::new(false));
        let p = polled.clone();
        let handle = runtime::spawn(async move { p.set(true) });
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert!(!polled.get());
    });
}

#[test]
fn abort_after_finishing_keeps_the_output() {
    rt().block_on(async {
        let handle = runtime::spawn(async { 5 });
        while !handle.is_finished() {
            runtime::yield_now().await;
        }
        handle.abort();
        assert_eq!(handle.await.unwrap(), 5);
    });
}

#[test]
fn a_dropped_handle_detaches_the_task() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let mut rt = rt();
    rt.block_on(async move {
        drop(runtime::spawn(async move {
            runtime::yield_now().await;
            r.set(true);
        }));
        // Wait for it through another task that finishes after it.
        runtime::spawn(async {
            runtime::yield_now().await;
            runtime::yield_now().await;
        })
        .await
        .unwrap();
    });
    assert!(ran.get());
}

#[test]
fn a_panicking_task_becomes_a_join_error_and_the_runtime_goes_on() {
    rt().block_on(async {
        let handle = runtime::spawn(async {
            runtime::yield_now().await;
            panic!("boom");
        });
        let err = handle.await.unwrap_err();
        assert!(err.is_panic() && !err.is_cancelled());
        assert_eq!(err.to_string(), "task panicked with message \"boom\"");
        let payload = err.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        // The core still runs tasks, timers and I/O.
        assert_eq!(runtime::spawn(async { 3 }).await.unwrap(), 3);
        sleep(Duration::from_millis(1)).await;
        runtime::nop().await.unwrap();
    });
}

#[test]
fn a_panic_in_the_main_future_reaches_block_on_and_the_runtime_stays_usable() {
    let mut rt = rt();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { panic!("main failed") })
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"main failed"));
    assert_eq!(
        rt.block_on(async { runtime::spawn(async { 1 }).await.unwrap() }),
        1
    );
}

#[test]
#[allow(clippy::async_yields_async)] // the join handle is handed out on purpose
fn tasks_left_running_resume_at_the_next_block_on() {
    let mut rt = rt();
    let handle = rt.block_on(async {
        runtime::spawn(async {
            sleep(Duration::from_millis(2)).await;
            "later"
        })
    });
    assert_eq!(rt.block_on(handle).unwrap(), "later");
}

#[test]
fn join_error_converts_to_io_error() {
    rt().block_on(async {
        let handle = runtime::spawn(std::future::pending::<()>());
        handle.abort();
        let io: std::io::Error = handle.await.unwrap_err().into();
        assert_eq!(io.to_string(), "task was cancelled");
    });
}
