//! Buffered sequential reads of the data file from a warm page cache:
//! [`CHUNK`]-byte reads front to back, starting over at the end.
//!
//! `std` is `std::fs::File::read` into one buffer, a `read(2)` per chunk.
//! `ours-qd1` and `ours-qd4` are `runtime::fs::File::read_at` on one core
//! with one or [`SEQUENTIAL_DEPTH`] reads in flight, each task taking the
//! next chunk of the file.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use super::ours::{join_all, one_core};
use super::{short_read, Meter, Run, Window, Workload, CHUNK, FILE_SIZE, SEQUENTIAL_DEPTH};

/// `std::fs::File::read` with one [`CHUNK`]-byte buffer.
pub fn run_std(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    sequential_only(workload)?;
    let mut file = File::open(run.path)?;
    let mut buf = vec![0u8; CHUNK];
    let meter = Meter::new(run.timing, CHUNK);
    let mut pos = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n != CHUNK {
            return Err(short_read(n, CHUNK, pos));
        }
        pos += CHUNK as u64;
        if pos == FILE_SIZE {
            pos = file.seek(SeekFrom::Start(0))?;
        }
        if !meter.tick() {
            return meter.window();
        }
    }
}

/// `runtime`, one read in flight.
pub fn run_ours_qd1(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    sequential_only(workload)?;
    run_ours(run, 1)
}

/// `runtime`, [`SEQUENTIAL_DEPTH`] reads in flight.
pub fn run_ours_deep(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    sequential_only(workload)?;
    run_ours(run, SEQUENTIAL_DEPTH)
}

fn sequential_only(workload: Workload) -> io::Result<()> {
    match workload {
        Workload::Sequential => Ok(()),
        Workload::Random { .. } => Err(io::Error::other(
            "this contender runs only the sequential workload",
        )),
    }
}

fn run_ours(run: Run<'_>, depth: usize) -> io::Result<Window> {
    let path = run.path.to_path_buf();
    let timing = run.timing;
    let mut rt = one_core(runtime::Builder::new())?;
    rt.block_on(async move {
        let file = Rc::new(runtime::fs::File::open(&path).await?);
        let meter = Rc::new(Meter::new(timing, CHUNK));
        let next = Rc::new(Cell::new(0u64));
        let workers = (0..depth)
            .map(|_| {
                let (file, meter, next) = (file.clone(), meter.clone(), next.clone());
                runtime::spawn(async move {
                    let mut buf = Vec::with_capacity(CHUNK);
                    loop {
                        let pos = next.get();
                        next.set((pos + CHUNK as u64) % FILE_SIZE);
                        buf.clear();
                        let (read, back) = file.read_at(buf, pos).await;
                        buf = back;
                        let n = read?;
                        if n != CHUNK {
                            return Err(short_read(n, CHUNK, pos));
                        }
                        if !meter.tick() {
                            return Ok(());
                        }
                    }
                })
            })
            .collect();
        join_all(workers).await?;
        meter.window()
    })
}
