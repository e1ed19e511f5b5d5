//! tokio-uring: its `no_op` on its own ring, driven by a current-thread tokio
//! runtime with a `LocalSet`.

use std::io;

use crate::measure::{Sample, Stopwatch};
use crate::DEPTH;

/// One task awaiting `count` nops one after another.
pub fn nop_qd1(count: u64) -> io::Result<Sample> {
    tokio_uring::start(async move {
        let watch = Stopwatch::start();
        for _ in 0..count {
            tokio_uring::no_op().await?;
        }
        Ok(watch.stop())
    })
}

/// `DEPTH` tasks, each awaiting `count / DEPTH` nops one after another.
pub fn nop_qd64(count: u64) -> io::Result<Sample> {
    let per_task = count / DEPTH;
    tokio_uring::start(async move {
        let watch = Stopwatch::start();
        let tasks: Vec<_> = (0..DEPTH)
            .map(|_| {
                tokio_uring::spawn(async move {
                    for _ in 0..per_task {
                        tokio_uring::no_op().await?;
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(io::Error::other)??;
        }
        Ok(watch.stop())
    })
}
