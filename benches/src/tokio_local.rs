//! tokio's single-threaded setup: a current-thread runtime and a `LocalSet`,
//! tasks spawned with `spawn_local` (so, like ours, they need not be `Send`).

use std::io;

use tokio::task::{self, JoinHandle, LocalSet};

use crate::measure::{Sample, Stopwatch};
use crate::{check_sum, SPAWN_BATCH};

fn block_on_local<F: std::future::Future>(fut: F) -> io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    Ok(LocalSet::new().block_on(&rt, fut))
}

/// Spawns `count` trivial tasks, keeps every handle, then awaits them in order.
pub fn spawn_all(count: u64) -> io::Result<Sample> {
    block_on_local(async move {
        let watch = Stopwatch::start();
        let handles: Vec<JoinHandle<u64>> = (0..count)
            .map(|i| task::spawn_local(async move { i }))
            .collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.map_err(io::Error::other)?;
        }
        let sample = watch.stop();
        check_sum(sum, count)?;
        Ok(sample)
    })?
}

/// Spawns `count` trivial tasks `SPAWN_BATCH` at a time, awaiting each batch
/// before spawning the next.
pub fn spawn_batched(count: u64) -> io::Result<Sample> {
    block_on_local(async move {
        let watch = Stopwatch::start();
        let mut handles = Vec::with_capacity(SPAWN_BATCH);
        let mut sum = 0;
        let mut next = 0;
        while next < count {
            let end = count.min(next + SPAWN_BATCH as u64);
            handles.extend((next..end).map(|i| task::spawn_local(async move { i })));
            for handle in handles.drain(..) {
                sum += handle.await.map_err(io::Error::other)?;
            }
            next = end;
        }
        let sample = watch.stop();
        check_sum(sum, count)?;
        Ok(sample)
    })?
}
