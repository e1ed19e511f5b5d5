//! `runtime`: one core, its ring set up by the runtime's defaults.

use std::io;

use crate::measure::{Sample, Stopwatch};
use crate::{check_sum, DEPTH, SPAWN_BATCH};

/// Runs `fut` on a one-core runtime with the default set-up, or (`timed == false`)
/// with stall detection off, so that no poll is timed.
fn block_on<F: std::future::Future>(timed: bool, fut: F) -> io::Result<F::Output> {
    let mut builder = runtime::Builder::new().cores(1).pin(false);
    if !timed {
        builder = builder.stall_threshold(None);
    }
    Ok(builder.build()?.block_on(fut))
}

fn join_error(err: runtime::JoinError) -> io::Error {
    io::Error::other(format!("task failed: {err:?}"))
}

/// One task awaiting `count` nops one after another.
pub fn nop_qd1(count: u64) -> io::Result<Sample> {
    nop_qd1_on(true, count)
}

/// As [`nop_qd1`], with stall detection (and so poll timing) off.
pub fn nop_qd1_untimed(count: u64) -> io::Result<Sample> {
    nop_qd1_on(false, count)
}

fn nop_qd1_on(timed: bool, count: u64) -> io::Result<Sample> {
    block_on(timed, async move {
        let watch = Stopwatch::start();
        for _ in 0..count {
            runtime::nop().await?;
        }
        Ok(watch.stop())
    })?
}

/// `DEPTH` tasks, each awaiting `count / DEPTH` nops one after another.
pub fn nop_qd64(count: u64) -> io::Result<Sample> {
    nop_qd64_on(true, count)
}

/// As [`nop_qd64`], with stall detection (and so poll timing) off.
pub fn nop_qd64_untimed(count: u64) -> io::Result<Sample> {
    nop_qd64_on(false, count)
}

fn nop_qd64_on(timed: bool, count: u64) -> io::Result<Sample> {
    let per_task = count / DEPTH;
    block_on(timed, async move {
        let watch = Stopwatch::start();
        let tasks: Vec<_> = (0..DEPTH)
            .map(|_| {
                runtime::spawn(async move {
                    for _ in 0..per_task {
                        runtime::nop().await?;
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(join_error)??;
        }
        Ok(watch.stop())
    })?
}

/// Spawns `count` trivial tasks, keeps every handle, then awaits them in order.
pub fn spawn_all(count: u64) -> io::Result<Sample> {
    spawn_all_on(true, count)
}

/// As [`spawn_all`], with stall detection (and so poll timing) off.
pub fn spawn_all_untimed(count: u64) -> io::Result<Sample> {
    spawn_all_on(false, count)
}

fn spawn_all_on(timed: bool, count: u64) -> io::Result<Sample> {
    block_on(timed, async move {
        let watch = Stopwatch::start();
        let handles: Vec<_> = (0..count)
            .map(|i| runtime::spawn(async move { i }))
            .collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.map_err(join_error)?;
        }
        let sample = watch.stop();
        check_sum(sum, count)?;
        Ok(sample)
    })?
}

/// Spawns `count` trivial tasks `SPAWN_BATCH` at a time, awaiting each batch
/// before spawning the next.
pub fn spawn_batched(count: u64) -> io::Result<Sample> {
    spawn_batched_on(true, count)
}

/// As [`spawn_batched`], with stall detection (and so poll timing) off.
pub fn spawn_batched_untimed(count: u64) -> io::Result<Sample> {
    spawn_batched_on(false, count)
}

fn spawn_batched_on(timed: bool, count: u64) -> io::Result<Sample> {
    block_on(timed, async move {
        let watch = Stopwatch::start();
        let mut handles = Vec::with_capacity(SPAWN_BATCH);
        let mut sum = 0;
        let mut next = 0;
        while next < count {
            let end = count.min(next + SPAWN_BATCH as u64);
            handles.extend((next..end).map(|i| runtime::spawn(async move { i })));
            for handle in handles.drain(..) {
                sum += handle.await.map_err(join_error)?;
            }
            next = end;
        }
        let sample = watch.stop();
        check_sum(sum, count)?;
        Ok(sample)
    })?
}
