//! The baseline: nops pushed and reaped by hand on a bare io_uring, set up the
//! way `runtime` sets up its rings, with nothing between the loop and the ring.

use std::io;

use io_uring::{opcode, IoUring, SubmissionQueue};

use crate::measure::{Sample, Stopwatch};
use crate::DEPTH;

/// SQ entries, as `runtime` uses by default; the CQ gets twice as many.
pub const ENTRIES: u32 = 1024;

/// Builds a ring set up as `runtime` sets up its per-core ring on a kernel
/// that has every flag.
pub fn ring() -> io::Result<IoUring> {
    IoUring::builder()
        .dontfork()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_cqsize(2 * ENTRIES)
        .build(ENTRIES)
}

/// One nop in flight: push, `submit_and_wait(1)`, reap, `count` times.
pub fn nop_qd1(count: u64) -> io::Result<Sample> {
    let mut ring = ring()?;
    // The registered ring fd lives in this `Submitter`: the enters must go through it.
    let (mut submitter, mut sq, mut cq) = ring.split();
    submitter.register_ring_fd()?;
    let watch = Stopwatch::start();
    for _ in 0..count {
        push_nop(&mut sq)?;
        sq.sync();
        submitter.submit_and_wait(1)?;
        cq.sync();
        let cqe = cq
            .next()
            .ok_or_else(|| io::Error::other("submit_and_wait(1) returned with no completion"))?;
        check(cqe.result())?;
    }
    Ok(watch.stop())
}

/// `DEPTH` nops in flight: each enter waits for one completion, every
/// completion reaped is replaced by a new nop until `count` have been pushed.
pub fn nop_qd64(count: u64) -> io::Result<Sample> {
    let mut ring = ring()?;
    let (mut submitter, mut sq, mut cq) = ring.split();
    submitter.register_ring_fd()?;
    let watch = Stopwatch::start();
    let mut pushed = 0;
    while pushed < DEPTH.min(count) {
        push_nop(&mut sq)?;
        pushed += 1;
    }
    let mut done = 0;
    while done < count {
        sq.sync();
        submitter.submit_and_wait(1)?;
        cq.sync();
        for cqe in &mut cq {
            check(cqe.result())?;
            done += 1;
            if pushed < count {
                push_nop(&mut sq)?;
                pushed += 1;
            }
        }
    }
    Ok(watch.stop())
}

fn push_nop(sq: &mut SubmissionQueue<'_>) -> io::Result<()> {
    let nop = opcode::Nop::new().build();
    // SAFETY: a nop points at no memory, so nothing has to outlive it.
    unsafe { sq.push(&nop) }.map_err(|_| io::Error::other("submission queue full"))
}

fn check(result: i32) -> io::Result<()> {
    match result {
        0 => Ok(()),
        res if res < 0 => Err(io::Error::from_raw_os_error(-res)),
        res => Err(io::Error::other(format!(
            "nop completed with {res}, expected 0"
        ))),
    }
}
