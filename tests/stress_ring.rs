//! A ring of one submission entry (and two completion entries) under a hundred
//! thousand operations started at once: nops, timers and pipe reads and writes. Every
//! push finds the queue full and every reap finds completions in the kernel's
//! overflow list; none may be lost, late or wrong.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use runtime::fs::File;
use runtime::time::{sleep, timeout};
use runtime::Builder;
use tests::stress::{self, Rng};
use tests::{open_fds, pipe, settle_fds};

/// How long all the operations may take before it counts as lost completions.
const BOUND: Duration = Duration::from_secs(60);
/// Bytes per pipe message: well under `PIPE_BUF`, so each write is atomic and each
/// read of this size takes exactly one message.
const MESSAGE: usize = 8;

#[test]
fn a_one_entry_ring_completes_a_hundred_thousand_concurrent_ops() {
    let seed = stress::seed("tiny ring");
    let total = stress::size("operations in flight at once", 100_000, 100_000);
    let pipes = stress::size("pipes", 128, 128);
    let mut rng = Rng::new(seed);
    // Shares: half nops, a fifth timers, the rest pipe messages (a read and a write each).
    let timers = total / 5;
    let messages = (total - total / 2 - timers) / 2;
    let nops = total - timers - 2 * messages;
    println!("  {nops} nops, {timers} timers, {messages} pipe messages over {pipes} pipes");

    let fds_before = open_fds();
    let mut rt = Builder::new()
        .cores(1)
        .pin(false)
        .ring_entries(1)
        .build()
        .expect("a ring of one entry starts");
    let before = rt.stats();
    let started = Instant::now();
    let (ops, report) = rt.block_on(async move {
        let base = open_fds();
        let ends: Vec<(Rc<File>, Rc<File>)> = (0..pipes)
            .map(|_| {
                let (rx, tx) = pipe();
                (Rc::new(File::from_std(rx)), Rc::new(File::from_std(tx)))
            })
            .collect();
        // Each pipe's messages: (pipe << 32 | n), written by one task each and read by
        // as many tasks, in whatever order the ring runs them.
        let received: Rc<Vec<RefCell<Vec<u64>>>> =
            Rc::new((0..pipes).map(|_| RefCell::new(Vec::new())).collect());

        // Everything is spawned before anything runs: the ring sees them all at once.
        let mut kinds: Vec<u8> = std::iter::repeat_n(0u8, nops)
            .chain(std::iter::repeat_n(1, timers))
            .chain(std::iter::repeat_n(2, messages))
            .chain(std::iter::repeat_n(3, messages))
            .collect();
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.below(i + 1));
        }
        let mut sent_per_pipe = vec![0u64; pipes];
        let mut read_per_pipe = vec![0usize; pipes];
        let mut write_rr = 0;
        let mut read_rr = 0;
        let mut tasks = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let task = match kind {
                0 => {
                    runtime::spawn(async { runtime::nop().await.map_err(|e| format!("nop: {e}")) })
                }
                1 => {
                    let wait = Duration::from_micros(rng.below(5000) as u64);
                    runtime::spawn(async move {
                        let start = Instant::now();
                        sleep(wait).await;
                        let took = start.elapsed();
                        if took < wait {
                            Err(format!("sleep({wait:?}) ended after {took:?}"))
                        } else {
                            Ok(())
                        }
                    })
                }
                2 => {
                    let p = write_rr % pipes;
                    write_rr += 1;
                    let message = (p as u64) << 32 | sent_per_pipe[p];
                    sent_per_pipe[p] += 1;
                    let tx = ends[p].1.clone();
                    runtime::spawn(async move {
                        let (r, _) = tx.write_at(message.to_le_bytes().to_vec(), 0).await;
                        match r {
                            Ok(MESSAGE) => Ok(()),
                            other => Err(format!("pipe {p} write: {other:?}")),
                        }
                    })
                }
                _ => {
                    let p = read_rr % pipes;
                    read_rr += 1;
                    read_per_pipe[p] += 1;
                    let rx = ends[p].0.clone();
                    let received = received.clone();
                    runtime::spawn(async move {
                        let (r, buf) = rx.read_at(Vec::with_capacity(MESSAGE), 0).await;
                        match r {
                            Ok(MESSAGE) => {
                                let message = u64::from_le_bytes(buf[..].try_into().unwrap());
                                received[p].borrow_mut().push(message);
                                Ok(())
                            }
                            other => Err(format!("pipe {p} read: {other:?}")),
                        }
                    })
                }
            };
            tasks.push(task);
        }
        let spawned = tasks.len();
        let mut problems = Vec::new();
        let mut done = 0;
        let all = async {
            for task in tasks {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => problems.push(e),
                    Err(e) => problems.push(format!("a task failed: {e}")),
                }
                done += 1;
            }
        };
        if timeout(BOUND, all).await.is_err() {
            problems.push(format!(
                "only {done} of {spawned} operations completed within {BOUND:?}: completions \
                 were lost"
            ));
        }
        // Every message was read once, by a reader of its own pipe.
        for (p, got) in received.iter().enumerate() {
            let mut got = got.borrow().clone();
            got.sort_unstable();
            let want: Vec<u64> = (0..sent_per_pipe[p])
                .map(|n| (p as u64) << 32 | n)
                .collect();
            if got != want {
                problems.push(format!(
                    "pipe {p}: {} messages read by {} reads, {} written; first few read: {:?}",
                    got.len(),
                    read_per_pipe[p],
                    want.len(),
                    &got[..got.len().min(4)]
                ));
            }
        }
        drop(ends);
        let open = settle_fds(base).await;
        if open != base {
            problems.push(format!(
                "{open} fds open after the pipes were dropped, {base} before"
            ));
        }
        (spawned, problems)
    });
    let took = started.elapsed();
    let after = rt.stats();
    drop(rt);
    let completed = after.ops_completed - before.ops_completed;
    println!(
        "{ops} tasks in {took:?}: {completed} ops completed, {} enters, {} CQEs",
        after.enters - before.enters,
        after.cqes_reaped - before.cqes_reaped
    );
    assert!(
        report.is_empty(),
        "{} problems (seed {seed:#x}):\n  {}",
        report.len(),
        report[..report.len().min(20)].join("\n  ")
    );
    // Every nop and pipe op, and the settling nops and pipe closes after them.
    let ring_ops = (nops + 2 * messages) as u64;
    assert!(
        completed >= ring_ops,
        "{completed} ops completed, at least {ring_ops} expected"
    );
    assert_eq!(
        open_fds(),
        fds_before,
        "fds open after the runtime was dropped"
    );
}
