//! Ctrl-C: a `SIGINT` sent after `ctrl_c()` resolves every waiting future, on any core;
//! one sent before does not; a dropped waiter leaks no fd and frees its slot.
//!
//! Signals are process-wide, and the tests of this file run on parallel threads of one
//! process, so each test holds `SERIAL` while it runs. Every test makes a `ctrl_c`
//! future (which installs the handler) before it sends a `SIGINT`: without the
//! handler, the signal would end the test process.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use runtime::signal::{ctrl_c, MAX_WAITERS};
use runtime::time::timeout;
use tests::{block_on_thread, open_fds, poll_once, rt};

/// Anything that should finish quickly is awaited with this bound, so a bug shows as a
/// failure, not a hang.
const BOUND: Duration = Duration::from_secs(5);

/// How long a waiter that must not resolve is watched.
const QUIET: Duration = Duration::from_millis(100);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends `SIGINT` to this process, as Ctrl-C in a terminal does.
fn sigint() {
    // SAFETY: kill takes plain integers; the handler is installed (see the file docs).
    let res = unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
    assert_eq!(res, 0, "kill: {}", io::Error::last_os_error());
}

#[test]
fn a_waiting_future_resolves_on_sigint() {
    let _serial = serial();
    rt().block_on(async {
        let polled = Rc::new(Cell::new(false));
        let waiter = runtime::spawn({
            let polled = polled.clone();
            async move {
                let (early, waiter) = poll_once(ctrl_c()).await;
                assert!(early.is_none(), "resolved before any signal: {early:?}");
                polled.set(true);
                waiter.await
            }
        });
        timeout(BOUND, async {
            while !polled.get() {
                runtime::yield_now().await;
            }
        })
        .await
        .expect("the waiter was polled");
        sigint();
        timeout(BOUND, waiter)
            .await
            .expect("the waiter resolved after SIGINT")
            .expect("the waiter's task ran to its end")
            .expect("ctrl_c resolved to Ok");
    });
}

#[test]
fn waiters_on_two_cores_both_resolve_on_one_sigint() {
    let _serial = serial();
    let mut rt = runtime::Builder::new()
        .cores(2)
        .pin(false)
        .build()
        .expect("the runtime starts");
    rt.block_on(async {
        let (polled_tx, polled_rx) = runtime::channel::oneshot();
        let remote = runtime::spawn_on(1, move || async move {
            let (early, waiter) = poll_once(ctrl_c()).await;
            assert!(early.is_none(), "resolved before any signal: {early:?}");
            polled_tx.send(()).expect("core 0 waits for this");
            waiter.await
        });
        let (early, local) = poll_once(ctrl_c()).await;
        assert!(early.is_none(), "resolved before any signal: {early:?}");
        timeout(BOUND, polled_rx)
            .await
            .expect("core 1's waiter was polled")
            .expect("core 1 sent");
        sigint();
        timeout(BOUND, local)
            .await
            .expect("core 0's waiter resolved after SIGINT")
            .expect("core 0's ctrl_c resolved to Ok");
        timeout(BOUND, remote)
            .await
            .expect("core 1's waiter resolved after SIGINT")
            .expect("core 1's task ran to its end")
            .expect("core 1's ctrl_c resolved to Ok");
    });
}

#[test]
fn a_dropped_waiter_leaks_no_fd() {
    let _serial = serial();
    rt().block_on(async {
        let before = open_fds();
        let (early, waiter) = poll_once(ctrl_c()).await;
        assert!(early.is_none(), "resolved before any signal: {early:?}");
        assert_eq!(open_fds(), before + 1, "a waiter holds one eventfd");
        // Its read is in the ring: dropping it cancels the read, and the eventfd is
        // closed through the ring behind it.
        drop(waiter);
        timeout(BOUND, async {
            while open_fds() != before {
                runtime::nop().await.expect("a nop completes");
            }
        })
        .await
        .expect("the dropped waiter's eventfd was closed");
    });
}

#[test]
fn a_sigint_before_the_future_exists_does_not_resolve_it() {
    let _serial = serial();
    rt().block_on(async {
        // Resolving it proves the earlier signal was handled; and its drop, on
        // resolving, waits until no handler runs any more.
        let witness = ctrl_c();
        sigint();
        timeout(BOUND, witness)
            .await
            .expect("the witness resolved after SIGINT")
            .expect("the witness resolved to Ok");

        let mut later = ctrl_c();
        assert!(
            timeout(QUIET, &mut later).await.is_err(),
            "a future made after the signal resolved on it"
        );
        // It is live all the same: the next signal resolves it.
        sigint();
        timeout(BOUND, later)
            .await
            .expect("the later future resolved on the next SIGINT")
            .expect("it resolved to Ok");
    });
}

#[test]
fn too_many_waiters_is_an_error_and_slots_are_freed() {
    let _serial = serial();
    rt().block_on(async {
        // Each dropped future gives its slot back: more than the table holds, in turn.
        for _ in 0..2 * MAX_WAITERS {
            let (early, waiter) = poll_once(ctrl_c()).await;
            assert!(early.is_none(), "resolved before any signal: {early:?}");
            drop(waiter);
        }
        let mut all = Vec::new();
        for _ in 0..MAX_WAITERS {
            let (early, waiter) = poll_once(ctrl_c()).await;
            assert!(early.is_none(), "resolved before any signal: {early:?}");
            all.push(waiter);
        }
        let err = ctrl_c().await.expect_err("one more than the table holds");
        assert!(
            err.to_string().contains(&format!("at most {MAX_WAITERS}")),
            "the error says what the limit is: {err}"
        );
        all.pop();
        let (early, one_more) = poll_once(ctrl_c()).await;
        assert!(early.is_none(), "a freed slot is used again: {early:?}");
        drop((all, one_more));
    });
}

#[test]
fn outside_a_runtime_it_is_an_error_and_leaks_no_fd() {
    let _serial = serial();
    let before = open_fds();
    let err = block_on_thread(ctrl_c()).expect_err("no runtime on this thread");
    assert!(err.to_string().contains("no runtime"), "says why: {err}");
    assert_eq!(open_fds(), before, "the eventfd was closed");
}
