//! Buffered sequential reads of the data file from a warm page cache:
//! [`CHUNK`]-byte reads front to back, starting over at the end.
//!
//! `std` is `std::fs::File::read` into one buffer, a `read(2)` per chunk.
//! `ours-qd1` and `ours-qd4` are `runtime::fs::File::read_at` on one core
//! with one or [`SEQUENTIAL_DEPTH`] reads in flight, each task taking the
//! next chunk of the file.
//!
//! For the `fallback` group: [`run_ours_qd1_on`], `ours-qd1` on a backend
//! named, and [`run_tokio_fs`], `tokio::fs::File::read` on a current-thread
//! runtime (each read a `read(2)` on the blocking pool into tokio's own
//! buffer, then copied into the caller's).

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use runtime::Backend;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::ours::{check_backend, join_all, one_core};
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
    run_ours(run, 1, Backend::Auto)
}

/// `runtime`, [`SEQUENTIAL_DEPTH`] reads in flight.
pub fn run_ours_deep(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    sequential_only(workload)?;
    run_ours(run, SEQUENTIAL_DEPTH, Backend::Auto)
}

/// `runtime`, one read in flight, the core on `backend`: fails if it runs on
/// another.
pub fn run_ours_qd1_on(workload: Workload, run: Run<'_>, backend: Backend) -> io::Result<Window> {
    sequential_only(workload)?;
    run_ours(run, 1, backend)
}

/// `tokio::fs::File::read` with one [`CHUNK`]-byte buffer, on a
/// current-thread runtime. tokio's file reads at most its `max_buf_size`
/// (2 MiB by default) per blocking call, so each read is one `read(2)`.
pub fn run_tokio_fs(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    sequential_only(workload)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let result = rt.block_on(async {
        let mut file = tokio::fs::File::open(run.path).await?;
        let mut buf = vec![0u8; CHUNK];
        let meter = Meter::new(run.timing, CHUNK);
        let mut pos = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n != CHUNK {
                return Err(short_read(n, CHUNK, pos));
            }
            pos += CHUNK as u64;
            if pos == FILE_SIZE {
                pos = file.seek(SeekFrom::Start(0)).await?;
            }
            if !meter.tick() {
                return meter.window();
            }
        }
    });
    // Dropping the runtime stops its blocking thread before the next run.
    drop(rt);
    result
}

fn sequential_only(workload: Workload) -> io::Result<()> {
    match workload {
        Workload::Sequential => Ok(()),
        Workload::Random { .. } => Err(io::Error::other(
            "this contender runs only the sequential workload",
        )),
    }
}

fn run_ours(run: Run<'_>, depth: usize, backend: Backend) -> io::Result<Window> {
    let path = run.path.to_path_buf();
    let timing = run.timing;
    let mut rt = one_core(runtime::Builder::new().backend(backend))?;
    check_backend(&rt, backend)?;
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
