//! `runtime` on one core pinned to [`CPU`](super::CPU): random `O_DIRECT`
//! reads through `runtime::fs::File::read_at`, one task per read in flight.
//!
//! - `ours-plain`: each task reads into an `AlignedBuf` from
//!   `File::aligned_buf` (`IORING_OP_READ`);
//! - `ours-fixed`: into a `FixedBuf` from the core's registered pool
//!   (`IORING_OP_READ_FIXED`);
//! - `ours-fixed-files`: the same, with the file in the core's registered
//!   file table (`File::register`).
//!
//! The `fallback` group runs `ours-plain` on each backend by name
//! ([`run_plain_on`]); the fs group leaves the backend to `Backend::Auto`.

use std::io;
use std::rc::Rc;

use runtime::buf::{FixedBufPool, IoBufMut};
use runtime::fs::{File, OpenOptions};
use runtime::{Backend, JoinHandle};

use super::{short_read, Meter, Offsets, Run, Window, Workload, BLOCK};

/// Starts `builder` as one core; the process is pinned to
/// [`CPU`](super::CPU) alone, so the core's pinning puts it there.
pub fn one_core(builder: runtime::Builder) -> io::Result<runtime::Runtime> {
    builder.cores(1).pin(true).build()
}

/// Fails unless `rt` runs on `asked` (anything does for `Backend::Auto`).
pub fn check_backend(rt: &runtime::Runtime, asked: Backend) -> io::Result<()> {
    if asked == Backend::Auto || rt.backend() == asked {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "asked for the {asked} backend, the runtime runs on {}",
            rt.backend()
        )))
    }
}

/// Awaits every worker; the first error (or panic) is the result.
pub async fn join_all(workers: Vec<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    let mut failure = None;
    for worker in workers {
        let err = match worker.await {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => err,
            Err(join) => io::Error::other(join.to_string()),
        };
        failure.get_or_insert(err);
    }
    failure.map_or(Ok(()), Err)
}

/// Plain aligned buffers.
pub fn run_plain(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    run_random(workload, run, Form::Plain, Backend::Auto)
}

/// Registered buffers.
pub fn run_fixed(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    run_random(workload, run, Form::Fixed, Backend::Auto)
}

/// Registered buffers and a registered file.
pub fn run_fixed_files(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    run_random(workload, run, Form::FixedFiles, Backend::Auto)
}

/// Plain aligned buffers, the core on `backend`: fails if it runs on another.
pub fn run_plain_on(workload: Workload, run: Run<'_>, backend: Backend) -> io::Result<Window> {
    run_random(workload, run, Form::Plain, backend)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Plain,
    Fixed,
    FixedFiles,
}

fn run_random(
    workload: Workload,
    run: Run<'_>,
    form: Form,
    backend: Backend,
) -> io::Result<Window> {
    let Workload::Random { depth } = workload else {
        return Err(io::Error::other(
            "this contender runs only the random-read workload",
        ));
    };
    let mut builder = runtime::Builder::new().backend(backend);
    if form != Form::Plain {
        // A registered buffer per task: none ever waits for one.
        let count = u16::try_from(depth).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("queue depth {depth} is more than the registered buffers a core can have"),
            )
        })?;
        builder = builder.fixed_buffers(count, BLOCK);
    }
    let path = run.path.to_path_buf();
    let timing = run.timing;
    let mut rt = one_core(builder)?;
    check_backend(&rt, backend)?;
    rt.block_on(async move {
        let mut file = OpenOptions::new()
            .read(true)
            .direct(true)
            .open(&path)
            .await?;
        if form == Form::FixedFiles {
            file.register()?;
        }
        let file = Rc::new(file);
        let pool = match form {
            Form::Plain => None,
            Form::Fixed | Form::FixedFiles => Some(FixedBufPool::current()?),
        };
        let meter = Rc::new(Meter::new(timing, BLOCK));
        let workers = (0..depth)
            .map(|worker| {
                let (file, meter, pool) = (file.clone(), meter.clone(), pool.clone());
                runtime::spawn(async move {
                    match pool {
                        None => {
                            let buf = file.aligned_buf(BLOCK).await?;
                            read_randomly(&file, buf, worker, &meter).await
                        }
                        Some(pool) => {
                            let buf = pool.get().await;
                            read_randomly(&file, buf, worker, &meter).await
                        }
                    }
                })
            })
            .collect();
        join_all(workers).await?;
        meter.window()
    })
}

/// One task's reads: into `buf`, at worker `worker`'s offsets, until the
/// window closes.
async fn read_randomly<B: IoBufMut>(
    file: &File,
    mut buf: B,
    worker: usize,
    meter: &Meter,
) -> io::Result<()> {
    let mut offsets = Offsets::for_worker(worker);
    loop {
        let pos = offsets.next_offset();
        let (read, back) = file.read_at(buf, pos).await;
        buf = back;
        let n = read?;
        if n != BLOCK {
            return Err(short_read(n, BLOCK, pos));
        }
        if !meter.tick() {
            return Ok(());
        }
    }
}
