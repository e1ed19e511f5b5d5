//! `Runtime::shutdown_timeout`: tasks that finish within the grace period finish (and
//! the call returns as soon as they have), tasks that do not are cancelled at the
//! deadline, work spawned during the grace period is waited for, and no fd leaks.

use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use runtime::fs::File;
use runtime::time::sleep;
use runtime::{Runtime, ShutdownReport};
use tests::{open_fds, pipe, TrackedBuf};

/// The tests count fds and CPU time of the whole process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How late past its deadline a shutdown may return: it has to notice the deadline,
/// cancel, wait for the cancelled ops' completions and join the threads.
const LATE: Duration = Duration::from_secs(2);

fn two_cores() -> Runtime {
    runtime::Builder::new()
        .cores(2)
        .pin(false)
        .build()
        .expect("the runtime starts")
}

/// Sets its flag when dropped: a task's future holding one was dropped (finished or
/// cancelled).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Runs `shutdown_timeout(grace)`; the report and how long the call took.
fn timed_shutdown(rt: Runtime, grace: Duration) -> (ShutdownReport, Duration) {
    let start = Instant::now();
    let report = rt.shutdown_timeout(grace);
    (report, start.elapsed())
}

/// Seconds of CPU time (user and system) this process has used.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass; all-zero is a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let res = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(res, 0, "getrusage: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[test]
fn tasks_on_two_cores_that_finish_within_the_grace_period_all_complete() {
    let _serial = serial();
    let fds_before = open_fds();
    const PER_CORE: usize = 20;
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut rt = two_cores();
    rt.block_on({
        let done = done.clone();
        async move {
            for core in 0..2 {
                for i in 0..PER_CORE {
                    let done = done.clone();
                    drop(runtime::spawn_on(core, move || async move {
                        sleep(Duration::from_millis(20 + 5 * i as u64)).await;
                        done.fetch_add(1, SeqCst);
                    }));
                }
            }
        }
    });
    let (report, elapsed) = timed_shutdown(rt, Duration::from_secs(10));
    assert_eq!(done.load(SeqCst), 2 * PER_CORE, "every task ran to its end");
    assert_eq!(report.cancelled, 0, "{report}");
    assert!(report.finished_in_time(), "{report}");
    assert!(
        start.elapsed() >= Duration::from_millis(20 + 5 * (PER_CORE as u64 - 1)),
        "the longest timer was awaited"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "returned once the tasks were done, not at the deadline: {elapsed:?}"
    );
    assert_eq!(open_fds(), fds_before, "no fd leaked");
}

#[test]
fn a_task_that_never_finishes_is_cancelled_at_the_deadline() {
    let _serial = serial();
    let fds_before = open_fds();
    let grace = Duration::from_millis(300);
    let dropped = [(); 2].map(|_| Arc::new(AtomicBool::new(false)));
    let finished = Arc::new(AtomicBool::new(false));
    let mut rt = two_cores();
    rt.block_on({
        let dropped = dropped.clone();
        let finished = finished.clone();
        async move {
            for (core, dropped) in dropped.into_iter().enumerate() {
                drop(runtime::spawn_on(core, move || async move {
                    let _flag = DropFlag(dropped);
                    pending::<()>().await;
                }));
            }
            // One that does finish, well within the grace period.
            runtime::spawn(async move {
                sleep(Duration::from_millis(10)).await;
                finished.store(true, SeqCst);
            });
        }
    });
    let (report, elapsed) = timed_shutdown(rt, grace);
    assert!(elapsed >= grace, "waited the grace period: {elapsed:?}");
    assert!(
        elapsed < grace + LATE,
        "then cancelled promptly: {elapsed:?}"
    );
    assert!(finished.load(SeqCst), "the finite task finished");
    for (core, dropped) in dropped.iter().enumerate() {
        assert!(
            dropped.load(SeqCst),
            "the endless task of core {core} was dropped"
        );
    }
    assert_eq!(report.cancelled, 2, "{report}");
    assert!(!report.finished_in_time());
    assert!(report.waited >= grace, "{report}");
    assert_eq!(
        report.to_string(),
        format!(
            "2 tasks cancelled after {:?} (grace period {grace:?})",
            report.waited
        )
    );
    assert_eq!(open_fds(), fds_before, "no fd leaked");
}

#[test]
fn the_call_returns_as_soon_as_the_last_task_finishes() {
    let _serial = serial();
    let grace = Duration::from_secs(30);
    let done = Arc::new(AtomicBool::new(false));
    let mut rt = two_cores();
    rt.block_on({
        let done = done.clone();
        async move {
            drop(runtime::spawn_on(1, move || async move {
                sleep(Duration::from_millis(50)).await;
                done.store(true, SeqCst);
            }));
        }
    });
    let (report, elapsed) = timed_shutdown(rt, grace);
    assert!(done.load(SeqCst));
    assert!(
        elapsed < Duration::from_secs(5),
        "a 50 ms task kept a 30 s shutdown waiting for {elapsed:?}"
    );
    assert!(report.finished_in_time(), "{report}");
    assert!(report.waited < Duration::from_secs(5), "{report}");
}

#[test]
fn an_idle_runtime_stops_at_once() {
    let _serial = serial();
    let (report, elapsed) = timed_shutdown(two_cores(), Duration::from_secs(30));
    assert!(report.finished_in_time(), "{report}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(report.to_string().starts_with("every task finished in "));
}

#[test]
fn tasks_spawned_during_the_grace_period_are_waited_for() {
    let _serial = serial();
    let fds_before = open_fds();
    let helpers = Arc::new(AtomicUsize::new(0));
    let mut rt = two_cores();
    rt.block_on({
        let helpers = helpers.clone();
        async move {
            // Starts its work after the shutdown began, and returns at once,
            // leaving two helpers: one here, one on the other core.
            runtime::spawn(async move {
                sleep(Duration::from_millis(30)).await;
                let local = helpers.clone();
                runtime::spawn(async move {
                    sleep(Duration::from_millis(50)).await;
                    local.fetch_add(1, SeqCst);
                });
                drop(runtime::spawn_on(1, move || async move {
                    sleep(Duration::from_millis(50)).await;
                    helpers.fetch_add(1, SeqCst);
                }));
            });
        }
    });
    let (report, elapsed) = timed_shutdown(rt, Duration::from_secs(10));
    assert_eq!(helpers.load(SeqCst), 2, "both helpers finished");
    assert!(report.finished_in_time(), "{report}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(open_fds(), fds_before, "no fd leaked");
}

/// A chain of tasks, each of which spawns the next on the other core and ends at
/// once: at every step one core has just become idle while work is on its way to the
/// other. The shutdown must wait for the whole chain, not stop between two links.
fn hop(left: usize, hops: Arc<AtomicUsize>) {
    if left == 0 {
        return;
    }
    hops.fetch_add(1, SeqCst);
    let next = 1 - runtime::core_id();
    drop(runtime::spawn_on(next, move || async move {
        hop(left - 1, hops)
    }));
}

#[test]
fn a_chain_of_spawns_across_cores_is_followed_to_its_end() {
    let _serial = serial();
    const HOPS: usize = 2000;
    for round in 0..5 {
        let hops = Arc::new(AtomicUsize::new(0));
        let mut rt = two_cores();
        rt.block_on({
            let hops = hops.clone();
            async move {
                runtime::spawn(async move {
                    // Start during the shutdown.
                    runtime::yield_now().await;
                    hop(HOPS, hops);
                });
            }
        });
        let (report, elapsed) = timed_shutdown(rt, Duration::from_secs(20));
        assert_eq!(hops.load(SeqCst), HOPS, "round {round}: the chain was cut");
        assert!(report.finished_in_time(), "round {round}: {report}");
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    }
}

#[test]
fn a_task_spawned_from_another_thread_during_the_grace_period_is_waited_for() {
    let _serial = serial();
    let mut rt = two_cores();
    let handle = rt.handle();
    let ran = Arc::new(AtomicBool::new(false));
    let (ask, asked) = std::sync::mpsc::channel::<runtime::channel::oneshot::Sender<()>>();
    let feeder = std::thread::spawn({
        let ran = ran.clone();
        move || {
            // Spawns once the shutdown has begun, then says so.
            let spawned = asked.recv().expect("asked to spawn");
            drop(handle.spawn_on(1, move || async move {
                sleep(Duration::from_millis(50)).await;
                ran.store(true, SeqCst);
            }));
            let _ = spawned.send(());
        }
    });
    rt.block_on(async move {
        runtime::spawn(async move {
            sleep(Duration::from_millis(20)).await;
            let (tx, rx) = runtime::channel::oneshot();
            ask.send(tx).expect("the feeder thread waits");
            rx.await.expect("the feeder spawned");
        });
    });
    let (report, elapsed) = timed_shutdown(rt, Duration::from_secs(10));
    feeder.join().unwrap();
    assert!(
        ran.load(SeqCst),
        "the task from the other thread ran to its end"
    );
    assert!(report.finished_in_time(), "{report}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn a_panic_during_the_grace_period_does_not_stop_the_others() {
    let _serial = serial();
    let done = Arc::new(AtomicUsize::new(0));
    let mut rt = two_cores();
    rt.block_on({
        let done = done.clone();
        async move {
            for core in 0..2 {
                drop(runtime::spawn_on(core, || async {
                    sleep(Duration::from_millis(10)).await;
                    panic!("a request handler failed");
                }));
                let done = done.clone();
                drop(runtime::spawn_on(core, move || async move {
                    sleep(Duration::from_millis(60)).await;
                    done.fetch_add(1, SeqCst);
                }));
            }
        }
    });
    let (report, elapsed) = timed_shutdown(rt, Duration::from_secs(10));
    assert_eq!(
        done.load(SeqCst),
        2,
        "the tasks that outlived the panics finished"
    );
    assert!(report.finished_in_time(), "{report}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn a_zero_grace_period_cancels_at_once_like_shutdown() {
    let _serial = serial();
    let fds_before = open_fds();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut rt = two_cores();
    rt.block_on({
        let finished = finished.clone();
        async move {
            for core in 0..2 {
                let finished = finished.clone();
                drop(runtime::spawn_on(core, move || async move {
                    sleep(Duration::from_millis(500)).await;
                    finished.fetch_add(1, SeqCst);
                }));
            }
            // Let both tasks start.
            sleep(Duration::from_millis(1)).await;
        }
    });
    let (report, elapsed) = timed_shutdown(rt, Duration::ZERO);
    assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    assert_eq!(finished.load(SeqCst), 0, "no task was let run");
    assert_eq!(report.cancelled, 2, "{report}");
    assert!(report.waited < Duration::from_millis(100), "{report}");
    assert_eq!(open_fds(), fds_before, "no fd leaked");
}

#[test]
fn a_read_that_never_completes_is_cancelled_at_the_deadline_without_leaks() {
    let _serial = serial();
    let fds_before = open_fds();
    let grace = Duration::from_millis(300);
    let freed = [(); 2].map(|_| Arc::new(AtomicBool::new(false)));
    // Nobody writes to these pipes; the write ends stay open all along.
    let (rx0, tx0) = pipe();
    let (rx1, tx1) = pipe();
    let mut rt = two_cores();
    rt.block_on({
        let freed = freed.clone();
        async move {
            for ((core, rx), freed) in [(0, rx0), (1, rx1)].into_iter().zip(freed) {
                drop(runtime::spawn_on(core, move || async move {
                    let rx = File::from_std(rx);
                    let buf = TrackedBuf::new(64, move || freed.store(true, SeqCst));
                    let (res, _) = rx.read_at(buf, 0).await;
                    panic!("the read completed: {res:?}");
                }));
            }
            // Let both reads reach the kernel.
            sleep(Duration::from_millis(10)).await;
        }
    });
    let cpu_before = cpu_time();
    let (report, elapsed) = timed_shutdown(rt, grace);
    let cpu = cpu_time() - cpu_before;
    assert!(elapsed >= grace, "waited the grace period: {elapsed:?}");
    assert!(
        elapsed < grace + LATE,
        "then cancelled promptly: {elapsed:?}"
    );
    assert_eq!(report.cancelled, 2, "{report}");
    for (core, freed) in freed.iter().enumerate() {
        assert!(freed.load(SeqCst), "core {core}'s read buffer was freed");
    }
    assert!(
        cpu < grace / 2,
        "the cores parked while they waited: {cpu:?} of CPU in {elapsed:?}"
    );
    drop((tx0, tx1));
    assert_eq!(open_fds(), fds_before, "no fd leaked");
}
