//! `runtime` on the cross-core workloads: a runtime of two cores, pinned to
//! the first two CPUs of the process's mask (CPUs 0 and 1); endpoint A runs
//! in `block_on` on core 0 and endpoint B is spawned on core 1 with
//! `runtime::spawn_on`, joined by `runtime::channel::mpsc` channels.
//!
//! Three contenders: `ours` wakes the other core with `IORING_OP_MSG_RING` from
//! its own ring (the default), `ours-eventfd` with `msg_ring(false)`, which
//! writes the other core's eventfd instead, and `ours-spin`, the default plus
//! `spin_before_park(50 us)`.

use std::io;
use std::time::Duration;

use runtime::channel::mpsc;

use crate::cross::{self, closed, Job, Receiver, Run, Sender, CAPACITY};

/// The core endpoint B is spawned on; A runs on core 0, in `block_on`.
const CORE_B: usize = 1;

impl Sender for mpsc::Sender<u64> {
    async fn send(&mut self, value: u64) -> io::Result<()> {
        mpsc::Sender::send(self, value).await.map_err(|_| closed())
    }
}

impl Receiver for mpsc::Receiver<u64> {
    async fn recv(&mut self) -> Option<u64> {
        mpsc::Receiver::recv(self).await
    }
}

/// How long `ours-spin` looks for work before parking.
pub const SPIN: Duration = Duration::from_micros(50);

/// Runs `job` with cross-core wakes by `MSG_RING` (the default set-up).
pub fn run(job: Job) -> io::Result<Run> {
    run_with(job, true, None)
}

/// Runs `job` with cross-core wakes by eventfd writes (`MSG_RING` off).
pub fn run_eventfd(job: Job) -> io::Result<Run> {
    run_with(job, false, None)
}

/// Runs `job` with `MSG_RING` wakes and cores that spin for `SPIN` before parking.
pub fn run_spin(job: Job) -> io::Result<Run> {
    run_with(job, true, Some(SPIN))
}

fn run_with(job: Job, msg_ring: bool, spin: Option<Duration>) -> io::Result<Run> {
    // Core 0 takes over the calling thread, the fresh one the harness runs
    // each contender on, and pins it to the first CPU of its mask.
    let mut rt = runtime::Builder::new()
        .cores(2)
        .pin(true)
        .msg_ring(msg_ring)
        .spin_before_park(spin)
        .build()?;
    rt.block_on(async move {
        let (to_b, from_a) = mpsc::channel(CAPACITY);
        let (to_a, from_b) = mpsc::channel(CAPACITY);
        let b = runtime::spawn_on(CORE_B, move || cross::endpoint_b(job, to_a, from_a));
        let a = cross::endpoint_a(job, to_b, from_b).await;
        let b = b
            .await
            .map_err(|err| io::Error::other(format!("endpoint B failed: {err:?}")))?;
        Ok(Run::new(a?, b?))
    })
}
