//! Side-by-side benchmarks of `runtime` against a hand-written io_uring loop
//! and its peers (tokio, tokio-uring, glommio, monoio, fio, std), behind one
//! command: `cargo run -p benches --release -- [GROUP]... [OPTION]...`
//! (`src/main.rs`; [`options`] is its command line, [`command`] runs it).
//!
//! The groups:
//!
//! - `nop` and `spawn` ([`compare`]): every contender of a workload in this
//!   process, on a fresh thread pinned to one CPU, interleaved over several
//!   rounds, so that the ratios between them hold even when the absolute figures
//!   drift with the machine. The contenders are [`raw`], [`ours`], [`uring_peer`]
//!   (tokio-uring) and [`tokio_local`] (tokio); [`measure`] and [`latency`] are
//!   the harness.
//! - `cross` ([`compare`], [`cross`]): one endpoint on CPU 0 and the other on
//!   CPU 1; the contenders place the endpoints themselves: [`ours_cross`]
//!   (`runtime` on two cores), [`tokio_multi`] (tokio's multi-threaded runtime),
//!   [`tokio_pair`] (two current-thread tokio runtimes) and [`glommio_peer`].
//! - `net` ([`net`]): echo and HTTP servers of every contender, each in a
//!   process of its own on one CPU, loaded from another, compared by the server
//!   CPU time they take.
//! - `fs` ([`fs`]): random `O_DIRECT` and buffered sequential file reads.
//! - `close` ([`close`]): what closing a socket and dropping a runtime cost as
//!   the operations in flight on the core grow.
//! - `instructions` ([`instructions`]): user-space instructions per nop, counted
//!   by callgrind.
//! - `fallback` ([`fallback`]), run only when named: `runtime` on its epoll
//!   backend against tokio, with `runtime` on io_uring in the same rounds, over
//!   the servers of `net` and the readers of `fs`.
//!
//! [`report`] turns what they measured into tables, ratios and verdicts on the
//! targets, printed as they come and written as one Markdown report; [`machine`]
//! describes the machine and [`tools`] finds or installs wrk, fio and valgrind.

use std::io;

pub mod close;
pub mod command;
pub mod compare;
pub mod cross;
pub mod fallback;
pub mod fs;
pub mod glommio_peer;
pub mod instructions;
pub mod latency;
pub mod machine;
pub mod measure;
pub mod net;
pub mod options;
pub mod ours;
pub mod ours_cross;
pub mod quiet;
pub mod raw;
pub mod report;
pub mod tokio_local;
pub mod tokio_multi;
pub mod tokio_pair;
pub mod tools;
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
