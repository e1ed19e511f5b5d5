//! Side-by-side benchmarks of `runtime` against a hand-written io_uring loop,
//! tokio-uring, tokio and glommio.
//!
//! Every contender of a workload runs in the same process, on a fresh thread
//! pinned to one CPU, interleaved over several rounds, so that the ratios
//! between them hold even when the absolute figures drift with the machine.
//! `src/bin/compare.rs` drives them. The contenders are `raw`, `ours`,
//! `uring_peer` (tokio-uring) and `tokio_local` (tokio); `measure`, `latency`,
//! `report` and `args` are the harness.
//!
//! The cross-core workloads (`cross`) put one endpoint on CPU 0 and the other
//! on CPU 1; their contenders place the endpoints themselves: `ours_cross`
//! (`runtime` on two cores), `tokio_multi` (tokio's multi-threaded runtime),
//! `tokio_pair` (two current-thread tokio runtimes) and `glommio_peer`
//! (glommio).
//!
//! `net` holds the network benchmarks of `src/bin/netbench.rs`: echo and HTTP
//! servers of every contender, each in a process of its own on one CPU,
//! loaded from another, compared by the server CPU time they take.
//!
//! `close` holds `src/bin/closebench.rs`: what closing a socket and dropping a
//! runtime cost as the operations in flight on the core grow.

use std::io;

pub mod args;
pub mod close;
pub mod cross;
pub mod fs;
pub mod glommio_peer;
pub mod latency;
pub mod measure;
pub mod net;
pub mod ours;
pub mod ours_cross;
pub mod raw;
pub mod report;
pub mod tokio_local;
pub mod tokio_multi;
pub mod tokio_pair;
pub mod uring_peer;

/// Ops kept in flight by the deep-queue workloads.
pub const DEPTH: u64 = 64;

/// Tasks spawned before they are awaited in the batched spawn workloads.
pub const SPAWN_BATCH: usize = 1_000;

/// Checks that the spawn workloads got every task's output back: tasks
/// return `0..count`, so their outputs must add up to `count * (count - 1) / 2`.
pub fn check_sum(sum: u64, count: u64) -> io::Result<()> {
    let expected = count * count.saturating_sub(1) / 2;
    if sum == expected {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "task outputs sum to {sum}, expected {expected}"
        )))
    }
}
