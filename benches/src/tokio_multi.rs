//! tokio's multi-threaded runtime on the cross-core workloads: two worker
//! threads, pinned to CPUs 0 and 1, and the two endpoints spawned as tasks
//! with `tokio::spawn`, joined by `tokio::sync::mpsc` channels.
//!
//! This is what a tokio user writes, but tokio decides which worker polls
//! which task, and may poll both on one worker (a task woken from a worker
//! is queued on that worker), so the endpoints are not always on two CPUs.
//! [`crate::cross::Seat`] records where they actually ran.
//!
//! The [`Sender`] and [`Receiver`] impls for tokio's channels here serve
//! [`crate::tokio_pair`] too.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cross::{self, closed, Job, Receiver, Run, Sender, CAPACITY, CPU_A, CPU_B};

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

/// Runs `job` with endpoint A and B as tasks of a two-worker runtime.
pub fn run(job: Job) -> io::Result<Run> {
    let started = Arc::new(AtomicUsize::new(0));
    let unpinned = Arc::new(AtomicBool::new(false));
    let rt = {
        let unpinned = Arc::clone(&unpinned);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(move || {
                // Workers take the CPUs in the order they start. Only the
                // two workers start: nothing here uses the blocking pool.
                let cpu = [CPU_A, CPU_B][started.fetch_add(1, Ordering::Relaxed) % 2];
                let core = core_affinity::CoreId { id: cpu };
                if !core_affinity::set_for_current(core) {
                    unpinned.store(true, Ordering::Relaxed);
                }
            })
            .build()?
    };
    let run = rt.block_on(async move {
        let (to_b, from_a) = mpsc::channel(CAPACITY);
        let (to_a, from_b) = mpsc::channel(CAPACITY);
        let a = tokio::spawn(cross::endpoint_a(job, to_b, from_b));
        let b = tokio::spawn(cross::endpoint_b(job, to_a, from_a));
        let a = a.await.map_err(io::Error::other)?;
        let b = b.await.map_err(io::Error::other)?;
        io::Result::Ok(Run::new(a?, b?))
    })?;
    if unpinned.load(Ordering::Relaxed) {
        return Err(io::Error::other(format!(
            "cannot pin the workers to CPUs {CPU_A} and {CPU_B}"
        )));
    }
    Ok(run)
}
