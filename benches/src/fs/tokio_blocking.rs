//! tokio, the way `tokio::fs` reads a file: each read is a `pread` on the
//! blocking thread pool (`spawn_blocking`), awaited from a current-thread
//! runtime. `tokio::fs::File` itself cannot do `O_DIRECT` (its internal
//! buffer is not aligned), so the `pread` goes into an [`AlignedBlock`]; one
//! task per read in flight, so `depth` blocking threads are busy at once.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::rc::Rc;
use std::sync::Arc;

use super::aligned::AlignedBlock;
use super::{short_read, Meter, Offsets, Run, Window, Workload, BLOCK};

/// Random reads, `depth` tasks each with one `spawn_blocking` read in flight.
pub fn run(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    let Workload::Random { depth } = workload else {
        return Err(io::Error::other("tokio runs only the random-read workload"));
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(run.path)?;
    let file = Arc::new(file);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let local = tokio::task::LocalSet::new();
    let meter = Rc::new(Meter::new(run.timing, BLOCK));
    let result = local.block_on(&rt, async {
        let workers: Vec<_> = (0..depth)
            .map(|worker| {
                let (file, meter) = (file.clone(), meter.clone());
                tokio::task::spawn_local(async move {
                    let mut offsets = Offsets::for_worker(worker);
                    let mut buf = AlignedBlock::new(BLOCK, BLOCK);
                    loop {
                        let pos = offsets.next_offset();
                        let file = file.clone();
                        let (read, back) = tokio::task::spawn_blocking(move || {
                            let read = file.read_at(buf.as_mut_slice(), pos);
                            (read, buf)
                        })
                        .await
                        .map_err(io::Error::other)?;
                        buf = back;
                        let n = read?;
                        if n != BLOCK {
                            return Err(short_read(n, BLOCK, pos));
                        }
                        if !meter.tick() {
                            return Ok::<(), io::Error>(());
                        }
                    }
                })
            })
            .collect();
        let mut failure = None;
        for worker in workers {
            match worker.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    failure.get_or_insert(err);
                }
                Err(join) => {
                    failure.get_or_insert(io::Error::other(join));
                }
            }
        }
        failure
    });
    // Dropping the runtime stops its blocking threads before the next run.
    drop(local);
    drop(rt);
    match result {
        Some(err) => Err(err),
        None => meter.window(),
    }
}
