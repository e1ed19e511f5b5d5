//! Dropping the runtime with operations in flight: it returns promptly, frees every
//! buffer only after the kernel is done with it, and leaks no fd.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runtime::fs::File;
use tests::{open_fds, pipe, poll_once, TrackedBuf};

static FDS: Mutex<()> = Mutex::new(());

/// Shutdown waits for CQEs, but a cancelled read completes at once: far less than this.
const PROMPT: Duration = Duration::from_secs(5);

#[test]
fn drop_with_reads_in_flight_returns_promptly_and_frees_everything() {
    let _serial = FDS.lock().unwrap();
    const READS: usize = 100;
    let fds_before = open_fds();
    let freed = Rc::new(Cell::new(0usize));
    let mut rt = tests::rt();
    let writers = rt.block_on({
        let freed = freed.clone();
        async move {
            let mut writers = Vec::new();
            for _ in 0..READS {
                let (rx, tx) = pipe();
                writers.push(tx);
                let freed = freed.clone();
                runtime::spawn(async move {
                    let rx = File::from_std(rx);
                    let buf = TrackedBuf::new(16, move || freed.set(freed.get() + 1));
                    let _ = rx.read_at(buf, 0).await;
                });
            }
            // A long timer in flight too.
            runtime::spawn(runtime::time::sleep(Duration::from_secs(3600)));
            // Let every task submit its read.
            runtime::nop().await.unwrap();
            runtime::nop().await.unwrap();
            writers
        }
    });
    assert_eq!(rt.stats().ops_completed, 2, "only the two nops completed");
    assert_eq!(freed.get(), 0, "the reads are still in flight");
    let start = Instant::now();
    drop(rt);
    assert!(
        start.elapsed() < PROMPT,
        "shutdown took {:?}",
        start.elapsed()
    );
    assert_eq!(freed.get(), READS, "every buffer was freed, after its CQE");
    drop(writers);
    assert_eq!(open_fds(), fds_before, "no fd leaked");
}

#[test]
#[allow(clippy::async_yields_async)] // the in-flight read is handed out on purpose
fn shutdown_cancels_an_op_held_outside_the_runtime() {
    let _serial = FDS.lock().unwrap();
    let (rx, _tx) = pipe();
    let freed = Rc::new(Cell::new(false));
    let f = freed.clone();
    let mut rt = tests::rt();
    let rx = Rc::new(File::from_std(rx));
    let read = rt.block_on({
        let rx = rx.clone();
        async move {
            let read = Box::pin(async move {
                let _ = rx.read_at(TrackedBuf::new(8, move || f.set(true)), 0).await;
            });
            let (_, read) = poll_once(read).await;
            read
        }
    });
    let start = Instant::now();
    rt.shutdown();
    assert!(start.elapsed() < PROMPT);
    // The future still owns the buffer; the kernel no longer does.
    assert!(!freed.get());
    drop(read);
    assert!(freed.get());
}

#[test]
fn many_runtimes_one_after_another_leak_nothing() {
    let _serial = FDS.lock().unwrap();
    let before = open_fds();
    for _ in 0..50 {
        let mut rt = tests::rt();
        rt.block_on(async {
            runtime::spawn(runtime::time::sleep(Duration::from_secs(60)));
            runtime::nop().await.unwrap();
        });
    }
    assert_eq!(
        open_fds(),
        before,
        "rings and eventfds are closed with their runtime"
    );
}
