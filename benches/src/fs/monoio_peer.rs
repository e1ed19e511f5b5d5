//! monoio on its io_uring driver: `monoio::fs::File` opened with `O_DIRECT`
//! (`custom_flags`), `read_at` into an [`AlignedBlock`] (monoio has no
//! aligned buffer of its own); one task per read in flight.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;

use monoio::fs::OpenOptions;

use super::aligned::AlignedBlock;
use super::{short_read, Meter, Offsets, Run, Window, Workload, BLOCK};

/// Random reads, `depth` tasks each with one read in flight.
pub fn run(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    let Workload::Random { depth } = workload else {
        return Err(io::Error::other(
            "monoio runs only the random-read workload",
        ));
    };
    let path = run.path.to_path_buf();
    let timing = run.timing;
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
    rt.block_on(async move {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .await?;
        let file = Rc::new(file);
        let meter = Rc::new(Meter::new(timing, BLOCK));
        let workers: Vec<_> = (0..depth)
            .map(|worker| {
                let (file, meter) = (file.clone(), meter.clone());
                monoio::spawn(async move {
                    let mut offsets = Offsets::for_worker(worker);
                    let mut buf = AlignedBlock::new(BLOCK, BLOCK);
                    loop {
                        let pos = offsets.next_offset();
                        let (read, back) = file.read_at(buf, pos).await;
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
