//! The ring under pressure: a full SQ, an overflowing CQ, signals interrupting the
//! wait, and SQPOLL. No completion may be lost and nothing may panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtime::time::{sleep, timeout};

const BOUND: Duration = Duration::from_secs(20);

#[test]
fn a_tiny_ring_with_thousands_of_ops_loses_no_completion() {
    // 2 SQ entries and 4 CQ entries against 5,000 ops in flight: the SQ is full on
    // almost every push and most CQEs go through the kernel's overflow list.
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .ring_entries(2)
        .build()
        .unwrap();
    let before = rt.stats();
    rt.block_on(async {
        let tasks: Vec<_> = (0..5_000)
            .map(|_| runtime::spawn(async { runtime::nop().await }))
            .collect();
        for t in tasks {
            timeout(BOUND, t)
                .await
                .expect("no lost CQE")
                .unwrap()
                .unwrap();
        }
    });
    assert_eq!(rt.stats().ops_completed - before.ops_completed, 5_000);
}

extern "C" fn on_signal(_: libc::c_int) {}

#[test]
fn signals_during_the_wait_neither_hang_nor_fire_timers_early() {
    // SIGUSR1 without SA_RESTART, as a profiler's signal would arrive: each one
    // interrupts io_uring_enter with EINTR.
    // SAFETY: the handler does nothing, so it is async-signal-safe; the sigaction
    // struct is fully initialised and lives for the call.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let killer = std::thread::spawn(move || {
        let mut sent = 0u32;
        while !s.load(Ordering::SeqCst) {
            // SAFETY: `me` is a live thread until `stop` is set, which happens before
            // that thread's test function returns.
            unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
            sent += 1;
            std::thread::yield_now();
        }
        sent
    });
    tests::rt().block_on(async {
        for ms in [1u64, 5, 20, 50] {
            let d = Duration::from_millis(ms);
            let start = Instant::now();
            timeout(BOUND, sleep(d)).await.expect("the sleep ends");
            assert!(start.elapsed() >= d, "sleep({d:?}) ended early");
        }
        for _ in 0..1000 {
            runtime::nop().await.unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    let sent = killer.join().unwrap();
    assert!(sent > 0, "signals were sent during the waits");
}

#[test]
fn sqpoll_runs_ops_and_timers() {
    let mut rt = match runtime::Builder::new()
        .cores(1)
        .pin(false)
        .sqpoll(Some(Duration::from_millis(10)))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("skipped: this kernel would not set up SQPOLL: {e}");
            return;
        }
    };
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                runtime::spawn(async {
                    for _ in 0..200 {
                        runtime::nop().await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            timeout(BOUND, t).await.unwrap().unwrap();
        }
        // Let the SQ thread fall asleep, then make sure a submission still wakes it.
        sleep(Duration::from_millis(30)).await;
        timeout(BOUND, runtime::nop()).await.unwrap().unwrap();
    });
    assert!(rt.stats().ops_completed > 64 * 200);
}

#[test]
fn bad_builder_settings_are_errors() {
    for (b, what) in [
        (runtime::Builder::new().cores(0), "cores(0)"),
        (runtime::Builder::new().ring_entries(0), "ring_entries(0)"),
        (
            runtime::Builder::new().ring_entries(1 << 20),
            "ring_entries(1 << 20)",
        ),
    ] {
        let err = b.build().expect_err(what);
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{what}: {err}"
        );
    }
}
