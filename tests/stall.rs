//! Stall detection: a poll that holds its core past the threshold is reported once,
//! with where its task was spawned; polls that do not are never reported; and every
//! poll lands in the poll-time histogram.

use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::Stall;

/// Holds the core for `d` without yielding (a CPU-bound stretch, as a blocking call
/// would).
fn hold_core(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A one-core runtime whose stalls (threshold `threshold`) are collected.
fn watched(threshold: Option<Duration>) -> (runtime::Runtime, Arc<Mutex<Vec<Stall>>>) {
    let stalls = Arc::new(Mutex::new(Vec::new()));
    let seen = stalls.clone();
    let rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .stall_threshold(threshold)
        .on_stall(move |stall| seen.lock().unwrap().push(stall.clone()))
        .build()
        .unwrap();
    (rt, stalls)
}

#[test]
fn a_task_that_blocks_is_reported_once_with_its_spawn_location() {
    let (mut rt, stalls) = watched(Some(Duration::from_millis(50)));
    let spawned_at = rt.block_on(async {
        let at = Location::caller().line() + 1;
        let handle = runtime::spawn(async { hold_core(Duration::from_millis(100)) });
        handle.await.unwrap();
        at
    });
    let stats = rt.stats();
    let stalls = stalls.lock().unwrap();
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    let stall = &stalls[0];
    assert_eq!(stall.core, 0);
    assert_eq!(stall.queue, "default");
    assert!(
        stall.duration >= Duration::from_millis(100) && stall.duration < Duration::from_secs(5),
        "{:?}",
        stall.duration
    );
    let at = stall.location.expect("a task has a spawn location");
    assert_eq!((at.file(), at.line()), (file!(), spawned_at), "{at}");
    assert_eq!(stats.stalls, 1);
    let line = stall.to_string();
    assert!(
        line.contains("core 0") && line.contains(file!()) && line.contains("ms"),
        "{line}"
    );
}

#[test]
fn tasks_that_never_block_are_never_reported() {
    let (mut rt, stalls) = watched(Some(Duration::from_millis(20)));
    rt.block_on(async {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                runtime::spawn(async move {
                    for _ in 0..50 {
                        runtime::yield_now().await;
                    }
                    i
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert!(
        stalls.lock().unwrap().is_empty(),
        "{:?}",
        stalls.lock().unwrap()
    );
    let stats = rt.stats();
    assert_eq!(stats.stalls, 0);
    let polls: u64 = stats.poll_times.iter().sum();
    assert!(polls >= 200 * 51, "every poll is in the histogram: {polls}");
}

#[test]
fn the_main_future_is_watched_too() {
    let (mut rt, stalls) = watched(Some(Duration::from_millis(30)));
    rt.block_on(async { hold_core(Duration::from_millis(40)) });
    let stalls = stalls.lock().unwrap();
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert!(stalls[0].location.is_none());
    assert!(stalls[0].to_string().contains("block_on"), "{}", stalls[0]);
}

#[test]
fn no_threshold_no_reports_and_no_poll_timing() {
    let (mut rt, stalls) = watched(None);
    rt.block_on(async {
        runtime::spawn(async { hold_core(Duration::from_millis(60)) })
            .await
            .unwrap();
    });
    assert!(stalls.lock().unwrap().is_empty());
    let stats = rt.stats();
    assert_eq!(stats.stalls, 0);
    // Polls ran, but none was timed: the histogram says nothing rather than
    // something false.
    assert!(stats.tasks_polled >= 1, "{stats:?}");
    assert_eq!(stats.poll_times, [0; runtime::POLL_BUCKETS], "{stats:?}");
    // The tick is still timed, for its queue's run time.
    let default = &stats.queues[0];
    assert!(
        default.run_time >= Duration::from_millis(60),
        "{:?}",
        default.run_time
    );
}

#[test]
fn with_a_threshold_every_poll_is_in_the_histogram() {
    let (mut rt, _stalls) = watched(Some(Duration::from_millis(50)));
    rt.block_on(async {
        runtime::spawn(async { hold_core(Duration::from_millis(3)) })
            .await
            .unwrap();
    });
    let stats = rt.stats();
    // 1-10 ms: the 3 ms poll.
    assert_eq!(stats.poll_times[3], 1, "{:?}", stats.poll_times);
    assert_eq!(stats.poll_times[4] + stats.poll_times[5], 0);
    let polls = stats.tasks_polled + 1;
    assert!(
        stats.poll_times.iter().sum::<u64>() >= polls,
        "{:?} for {polls}+ polls",
        stats.poll_times
    );
}

#[test]
fn a_panicking_hook_does_not_stop_the_core() {
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .stall_threshold(Some(Duration::from_millis(5)))
        .on_stall(|_| panic!("the hook fails"))
        .build()
        .unwrap();
    let out = rt.block_on(async {
        runtime::spawn(async { hold_core(Duration::from_millis(10)) })
            .await
            .unwrap();
        runtime::spawn(async { 42 }).await.unwrap()
    });
    assert_eq!(out, 42);
    assert_eq!(rt.stats().stalls, 1);
}

#[test]
fn a_task_sent_to_another_core_is_reported_there_with_its_location() {
    let stalls = Arc::new(Mutex::new(Vec::new()));
    let seen = stalls.clone();
    let mut rt = runtime::Builder::new()
        .cores(2)
        .pin(false)
        .stall_threshold(Some(Duration::from_millis(20)))
        .on_stall(move |stall| seen.lock().unwrap().push(stall.clone()))
        .build()
        .unwrap();
    let at = rt.block_on(async {
        let at = Location::caller().line() + 1;
        let handle = runtime::spawn_on(1, || async { hold_core(Duration::from_millis(30)) });
        handle.await.unwrap();
        at
    });
    drop(rt);
    let stalls = stalls.lock().unwrap();
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert_eq!(stalls[0].core, 1);
    let location = stalls[0].location.unwrap();
    assert_eq!((location.file(), location.line()), (file!(), at));
}

/// Set in the child process of the rate-limit test.
const CHILD_VAR: &str = "RUNTIME_STALL_LINES_CHILD";

/// The child's side: the default hook (a line on stderr), stalls on two cores.
fn stall_lines_child() {
    let mut rt = runtime::Builder::new()
        .cores(2)
        .pin(false)
        .stall_threshold(Some(Duration::from_millis(5)))
        .build()
        .unwrap();
    rt.block_on(async {
        for core in [0, 1] {
            // Three stalls in well under a second on each core: one line each.
            for _ in 0..3 {
                let held =
                    runtime::spawn_on(core, || async { hold_core(Duration::from_millis(10)) });
                held.await.unwrap();
            }
        }
        // A fourth on core 0 that ends more than a second after its first line:
        // written, with the two left out since.
        runtime::spawn_on(0, || async { hold_core(Duration::from_millis(1100)) })
            .await
            .unwrap();
    });
    let stalls: u64 = rt.handle().stats().iter().map(|s| s.stalls).sum();
    println!("stalls counted: {stalls}");
}

#[test]
fn the_default_report_is_at_most_one_line_a_second_per_core() {
    if std::env::var_os(CHILD_VAR).is_some() {
        return stall_lines_child();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_default_report_is_at_most_one_line_a_second_per_core",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    assert!(stdout.contains("stalls counted: 7"), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("runtime: core "))
        .collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    let on = |core: usize| {
        let prefix = format!("runtime: core {core} was blocked for ");
        lines
            .iter()
            .filter(move |l| l.starts_with(&prefix))
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(on(1).len(), 1, "{stderr}");
    let core0 = on(0);
    assert_eq!(core0.len(), 2, "{stderr}");
    assert!(!core0[0].contains("more stalls"), "{}", core0[0]);
    assert!(
        core0[1].ends_with("(2 more stalls on this core in the last second not shown)"),
        "{}",
        core0[1]
    );
    for line in &lines {
        assert!(line.contains(file!()), "no spawn location: {line}");
    }
}
