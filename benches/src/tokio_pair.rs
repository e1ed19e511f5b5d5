//! tokio on the cross-core workloads, one runtime per CPU: two threads,
//! pinned to CPUs 0 and 1, each running a current-thread runtime with one
//! endpoint, joined by `tokio::sync::mpsc` channels. Unlike
//! [`crate::tokio_multi`], the endpoints are sure to be on different threads.

use std::io;
use std::thread;

use tokio::sync::mpsc;

use crate::cross::{self, Job, Run, CAPACITY, CPU_A, CPU_B};
use crate::measure::pin_current;

fn block_on<F: std::future::Future>(fut: F) -> io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    Ok(rt.block_on(fut))
}

/// Runs `job` with endpoint A on a thread pinned to CPU 0 and B on one
/// pinned to CPU 1, each in its own current-thread runtime.
pub fn run(job: Job) -> io::Result<Run> {
    let (to_b, from_a) = mpsc::channel(CAPACITY);
    let (to_a, from_b) = mpsc::channel(CAPACITY);
    let b = thread::Builder::new()
        .name("tokio-2ct-b".into())
        .spawn(move || {
            pin_current(CPU_B)?;
            block_on(cross::endpoint_b(job, to_a, from_a))?
        })?;
    let a = thread::Builder::new()
        .name("tokio-2ct-a".into())
        .spawn(move || {
            pin_current(CPU_A)?;
            block_on(cross::endpoint_a(job, to_b, from_b))?
        })?;
    let a = a
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let b = b
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    Ok(Run::new(a?, b?))
}
