//! glommio: a `LocalExecutor` fixed to [`CPU`], a `DmaFile` (glommio opens it
//! `O_DIRECT`), `read_at_aligned` into the buffers glommio allocates itself;
//! one task per read in flight.

use std::io;
use std::rc::Rc;

use glommio::io::DmaFile;
use glommio::{LocalExecutorBuilder, Placement};

use super::{short_read, Meter, Offsets, Run, Window, Workload, BLOCK, CPU};

/// Random reads, `depth` tasks each with one read in flight.
pub fn run(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    let Workload::Random { depth } = workload else {
        return Err(io::Error::other(
            "glommio runs only the random-read workload",
        ));
    };
    let path = run.path.to_path_buf();
    let timing = run.timing;
    let executor = LocalExecutorBuilder::new(Placement::Fixed(CPU))
        .name("fsbench-glommio")
        .make()
        .map_err(|err| io::Error::other(format!("cannot start glommio: {err}")))?;
    executor.run(async move {
        let file = Rc::new(DmaFile::open(&path).await.map_err(io::Error::from)?);
        let meter = Rc::new(Meter::new(timing, BLOCK));
        let workers: Vec<_> = (0..depth)
            .map(|worker| {
                let (file, meter) = (file.clone(), meter.clone());
                glommio::spawn_local(async move {
                    let mut offsets = Offsets::for_worker(worker);
                    loop {
                        let pos = offsets.next_offset();
                        let read = file
                            .read_at_aligned(pos, BLOCK)
                            .await
                            .map_err(io::Error::from)?;
                        if read.len() != BLOCK {
                            return Err(short_read(read.len(), BLOCK, pos));
                        }
                        if !meter.tick() {
                            return Ok(());
                        }
                    }
                })
            })
            .collect();
        let mut failure = None;
        for worker in workers {
            if let Err(err) = worker.await {
                failure.get_or_insert(err);
            }
        }
        if let Ok(file) = Rc::try_unwrap(file) {
            let _ = file.close().await;
        }
        match failure {
            Some(err) => Err(err),
            None => meter.window(),
        }
    })
}
