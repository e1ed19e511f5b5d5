//! An idle runtime is not waiting for I/O: its parked cores do not show up in
//! `procs_blocked` (`/proc/stat`), so the load average and io pressure of an idle
//! machine stay quiet.
//!
//! Every core keeps a read of its wake-up eventfd in flight, and the kernel counts a
//! task that waits in `io_uring_enter` with requests in flight as iowait unless the
//! wait passes `IORING_ENTER_NO_IOWAIT` (Linux 6.15, `IORING_FEAT_NO_IOWAIT`).
//!
//! `procs_blocked` counts every task of the machine in iowait, so the test compares:
//! the count while the runtime's cores (six of them) are parked, and while as many
//! plain io_uring waiters with a read in flight wait (the old behaviour, which proves
//! the count sees such waiters here), each against the quiet phases (nothing of this
//! test waits) just before and after it. A phase is summed up by its smallest sample, which drops other
//! processes' passing I/O; their steady waiters are in neighbouring phases alike. Each
//! comparison is made several times and the majority decides, so that another process
//! starting or ending its I/O during one phase decides nothing. The phases are idle
//! periods by design, so they are timed, and the sampler samples at a pace.
//!
//! A binary of its own: other tests' runtimes would be parked cores too.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Parked threads in each waiting phase: enough that counting them stands well above
/// the other processes' iowait coming and going (a rise of half of them decides).
const WAITERS: usize = 6;
/// How long each phase samples.
const PHASE: Duration = Duration::from_millis(200);
/// How many times each waiting phase is compared with its quiet neighbours.
const ROUNDS: usize = 5;
/// Time between samples.
const PACE: Duration = Duration::from_millis(5);

/// `procs_blocked` and the machine's iowait ticks (USER_HZ) from `/proc/stat`.
fn proc_stat() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat is readable");
    let mut blocked = None;
    let mut iowait = None;
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            // cpu user nice system idle iowait ...
            Some("cpu") => iowait = fields.nth(4).and_then(|f| f.parse().ok()),
            Some("procs_blocked") => blocked = fields.next().and_then(|f| f.parse().ok()),
            _ => {}
        }
    }
    (
        blocked.expect("/proc/stat has procs_blocked"),
        iowait.expect("/proc/stat has a cpu line"),
    )
}

/// What one phase saw.
#[derive(Debug)]
struct Phase {
    /// The smallest `procs_blocked` sampled.
    min_blocked: u64,
    samples: usize,
    /// iowait ticks per second over the phase, for the record.
    iowait_per_sec: f64,
}

/// Samples `/proc/stat` on another thread for `PHASE`, starting at once.
fn sample_in_background() -> thread::JoinHandle<Phase> {
    thread::spawn(|| {
        let start = Instant::now();
        let (_, ticks_before) = proc_stat();
        let mut min_blocked = u64::MAX;
        let mut samples = 0;
        while start.elapsed() < PHASE {
            min_blocked = min_blocked.min(proc_stat().0);
            samples += 1;
            thread::sleep(PACE);
        }
        let (_, ticks_after) = proc_stat();
        Phase {
            min_blocked,
            samples,
            iowait_per_sec: (ticks_after - ticks_before) as f64 / start.elapsed().as_secs_f64(),
        }
    })
}

/// Samples `/proc/stat` for `PHASE`.
fn sample() -> Phase {
    sample_in_background().join().unwrap()
}

/// Plain rings, no flags, each waiting in io_uring_enter with a pipe read in flight:
/// what a runtime core did before `IORING_ENTER_NO_IOWAIT`.
fn plain_waiters_phase() -> Phase {
    let ready = Arc::new(std::sync::Barrier::new(WAITERS + 1));
    let mut writers = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..WAITERS {
        let (r, w) = tests::pipe();
        writers.push(w);
        let ready = ready.clone();
        threads.push(thread::spawn(move || {
            let mut ring = io_uring::IoUring::new(4).unwrap();
            let mut buf = [0u8; 8];
            let read = io_uring::opcode::Read::new(
                io_uring::types::Fd(r.as_raw_fd()),
                buf.as_mut_ptr(),
                8,
            )
            .build();
            // SAFETY: `buf` and the pipe outlive the read, which completes (the
            // write below) before this thread returns.
            unsafe { ring.submission().push(&read).unwrap() };
            ring.submit().unwrap();
            ready.wait();
            ring.submit_and_wait(1).unwrap();
            assert!(ring.completion().next().unwrap().result() > 0);
        }));
    }
    ready.wait();
    // The waiters enter their wait right after the barrier; give them a moment.
    thread::sleep(Duration::from_millis(50));
    let phase = sample();
    for w in &writers {
        let one = 1u64.to_ne_bytes();
        // SAFETY: `w` is an open pipe's write end; the buffer is 8 live bytes.
        assert_eq!(
            unsafe { libc::write(w.as_raw_fd(), one.as_ptr().cast(), 8) },
            8
        );
    }
    for t in threads {
        t.join().unwrap();
    }
    phase
}

/// The runtime's cores parked: cores 1.. with nothing to do, core 0 (this thread) in
/// a timed wait for a sleep that outlasts the phase.
fn parked_cores_phase() -> Phase {
    let mut rt = runtime::Builder::new()
        .cores(WAITERS)
        .pin(false)
        .build()
        .expect("the runtime starts");
    for (core, stats) in rt.handle().stats().iter().enumerate() {
        assert!(
            stats.ring.no_iowait,
            "core {core}: the probe says NO_IOWAIT is there: {}",
            stats.ring
        );
    }
    rt.block_on(async {
        // Every core has started and run something, and parks again after it.
        for core in 1..WAITERS {
            runtime::spawn_on(core, || async {}).await.unwrap();
        }
        // Let both cores settle into their park before the sampler starts.
        runtime::time::sleep(Duration::from_millis(50)).await;
        let sampler = sample_in_background();
        runtime::time::sleep(PHASE + Duration::from_millis(100)).await;
        sampler
    })
    .join()
    .unwrap()
}

/// How far `phase` rose above the quiet phases around it: against the higher of the
/// two (`Against::Higher`, which noise rising during the phase cannot turn into a
/// rise) or the lower (`Against::Lower`, which noise falling cannot hide).
fn rise(phase: &Phase, around: [&Phase; 2], against: Against) -> i64 {
    let [a, b] = around.map(|q| q.min_blocked as i64);
    let base = match against {
        Against::Higher => a.max(b),
        Against::Lower => a.min(b),
    };
    phase.min_blocked as i64 - base
}

#[derive(Clone, Copy)]
enum Against {
    Higher,
    Lower,
}

#[test]
fn parked_cores_are_not_counted_as_waiting_for_io() {
    if tests::ring_only("IORING_ENTER_NO_IOWAIT") {
        return;
    }
    let probe = runtime::Probe::get().unwrap();
    if !probe.no_iowait() {
        println!(
            "skipped: this kernel lacks IORING_FEAT_NO_IOWAIT (Linux 6.15), so a parked \
             core is counted as waiting for I/O here"
        );
        return;
    }
    // quiet, parked, quiet, plain, quiet, parked, quiet, plain, ..., quiet
    let mut quiet = vec![sample()];
    let mut parked = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..ROUNDS {
        parked.push(parked_cores_phase());
        quiet.push(sample());
        plain.push(plain_waiters_phase());
        quiet.push(sample());
    }
    for (round, (p, c)) in parked.iter().zip(&plain).enumerate() {
        let q = &quiet[2 * round..=2 * round + 2];
        println!(
            "round {round}: procs_blocked at least {} quiet, {} with {WAITERS} parked cores, \
             {} quiet, {} with {WAITERS} plain waiters, {} quiet; iowait ticks/s {:.0}, \
             {:.0}, {:.0}, {:.0}, {:.0}",
            q[0].min_blocked,
            p.min_blocked,
            q[1].min_blocked,
            c.min_blocked,
            q[2].min_blocked,
            q[0].iowait_per_sec,
            p.iowait_per_sec,
            q[1].iowait_per_sec,
            c.iowait_per_sec,
            q[2].iowait_per_sec,
        );
    }
    for phase in quiet.iter().chain(&parked).chain(&plain) {
        assert!(phase.samples >= 10, "{phase:?}");
    }
    let majority = ROUNDS / 2 + 1;
    let half = (WAITERS / 2) as i64;
    // The count sees waiters of the old kind: each one is in it.
    let plain_seen = (0..ROUNDS)
        .filter(|&r| {
            let around = [&quiet[2 * r + 1], &quiet[2 * r + 2]];
            rise(&plain[r], around, Against::Lower) >= half
        })
        .count();
    assert!(
        plain_seen >= majority,
        "{WAITERS} plain io_uring waiters raised procs_blocked by {half} or more in only \
         {plain_seen} of {ROUNDS} rounds: the count does not see such waiters here"
    );
    // The parked cores are not in it (a rise under half of them is other processes).
    let parked_unseen = (0..ROUNDS)
        .filter(|&r| {
            let around = [&quiet[2 * r], &quiet[2 * r + 1]];
            rise(&parked[r], around, Against::Higher) < half
        })
        .count();
    assert!(
        parked_unseen >= majority,
        "{WAITERS} parked cores were counted as waiting for I/O in {} of {ROUNDS} \
         rounds (procs_blocked rose above the quiet phases around them)",
        ROUNDS - parked_unseen
    );
    // The CPUs' iowait ticks, over all rounds: an idle CPU whose run queue has a task
    // in iowait counts its tick as iowait, so the plain waiters show there too, unless
    // the CPUs were busy with other work (no tick is idle) or other processes' iowait
    // already claimed the idle ticks.
    let rate = |phases: &[Phase]| {
        phases.iter().map(|p| p.iowait_per_sec).sum::<f64>() / phases.len() as f64
    };
    let (quiet_rate, parked_rate, plain_rate) = (rate(&quiet), rate(&parked), rate(&plain));
    let plain_adds = plain_rate - quiet_rate;
    if plain_adds >= 50.0 {
        assert!(
            parked_rate < quiet_rate + plain_adds / 2.0,
            "parked cores add iowait ticks: {parked_rate:.0}/s, {quiet_rate:.0}/s without \
             them, {plain_rate:.0}/s with plain waiters"
        );
    } else {
        println!(
            "iowait ticks not compared: the plain waiters added only {plain_adds:.0}/s \
             (no idle tick was left for them to claim)"
        );
    }
}
