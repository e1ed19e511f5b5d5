//! The fs group: file I/O side by side, 4 KiB random `O_DIRECT` reads over a
//! 1 GiB file at queue depth 1 and 32, and 1 MiB buffered sequential reads of
//! the same file from a warm page cache, all on CPU 0.
//!
//! [`run_group`] drives them. The pieces:
//!
//! - [`data`]: the data file (written once, for real, and reused) and the
//!   facts about the machine printed above the tables;
//! - [`meter`]: the measured window every in-process contender runs through,
//!   with its CPU time from `getrusage(RUSAGE_SELF)`;
//! - [`bench`](mod@bench): rounds of runs, the contenders interleaved;
//! - `crate::report::fs`: the tables, the ratios and the targets;
//! - the random-read contenders: [`fio`] (a child process, plain and with
//!   registered buffers and files: the ceiling), [`glommio_peer`],
//!   [`monoio_peer`], [`tokio_blocking`] (what `tokio::fs` does: `pread` on
//!   the blocking pool) and [`ours`] (`runtime`, with plain, registered-buffer
//!   and registered-file reads);
//! - the sequential-read contenders: [`sequential`] (`runtime` and
//!   `std::fs::File::read`).

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::net::process::set_affinity;
use crate::options::Options;
use crate::report::GroupReport;
use crate::tools;

pub mod aligned;
pub mod bench;
pub mod data;
pub mod fio;
pub mod glommio_peer;
pub mod meter;
pub mod monoio_peer;
pub mod ours;
pub mod sequential;
pub mod tokio_blocking;

pub use meter::{Meter, Window};

/// Rounds when `--rounds` is not given.
pub const ROUNDS: usize = 3;

/// Queue depths of the random reads when `--qd` is not given.
pub const DEPTHS: [usize; 2] = [1, 32];

/// Runs the fs group as `options` say, into `report`. Pins the calling thread to
/// [`CPU`] for good first, so that every thread of every contender (the kernel's
/// io_uring workers, tokio's blocking pool) inherits the mask: call it before
/// any other thread starts.
pub fn run_group(options: &Options, report: &mut GroupReport) {
    if let Err(err) = set_affinity(0, CPU) {
        report.skip(format!("cannot pin the process to CPU {CPU}: {err}"));
        return;
    }
    let path = options.file.clone().unwrap_or_else(data::default_path);
    let timing = if options.quick {
        Timing::QUICK
    } else {
        Timing::FULL
    };
    let rounds = options.rounds_or(ROUNDS);
    if !data::ensure_reported(&path, report) {
        return;
    }
    report.about(format!("storage: {}", data::describe_storage(&path)));
    report.about(format!(
        "all on CPU {CPU}; {rounds} rounds, contenders interleaved, median of the rounds; \
         {:.1} s warm-up, {:.1} s measured per run{}",
        timing.warmup.as_secs_f64(),
        timing.window.as_secs_f64(),
        if options.quick { "; --quick" } else { "" }
    ));
    report.about(
        "CPU = getrusage(RUSAGE_SELF) user + system over the window (every thread of the \
         process, io_uring workers included); fio: its usr_cpu + sys_cpu",
    );

    if options.selection.random {
        let wants_fio = options.runs("fio") || options.runs("fio-fixedbufs");
        let fio = if wants_fio {
            tools::ensure("fio", "fio")
        } else {
            Err("not asked for".to_string())
        };
        if let (true, Err(why)) = (wants_fio, &fio) {
            report.skip(format!("fio and fio-fixedbufs: {why}"));
        }
        let depths = if options.depths.is_empty() {
            DEPTHS.to_vec()
        } else {
            options.depths.clone()
        };
        for depth in depths {
            let workload = Workload::Random { depth };
            let selected: Vec<_> = contenders(workload)
                .into_iter()
                .filter(|c| options.runs(c.name))
                .filter(|c| !c.name.starts_with("fio") || fio.is_ok())
                .collect();
            if selected.is_empty() {
                continue;
            }
            let mut about = Vec::new();
            if selected.iter().any(|c| c.name.starts_with("fio")) {
                let line = fio::command_line(depth, false, &path, timing).join(" ");
                about.push(format!("fio: `{line}`"));
                about
                    .push("fio-fixedbufs: the same with `--fixedbufs --registerfiles`".to_string());
            }
            run_workload(workload, &selected, &about, &path, timing, rounds, report);
        }
    }

    if options.selection.seq {
        let workload = Workload::Sequential;
        let selected: Vec<_> = contenders(workload)
            .into_iter()
            .filter(|c| options.runs(c.name))
            .collect();
        if !selected.is_empty() {
            if let Err(err) = data::warm_page_cache(&path) {
                report.fail(format!("cannot read the data file: {err}"));
                return;
            }
            run_workload(workload, &selected, &[], &path, timing, rounds, report);
        }
    }
}

fn run_workload(
    workload: Workload,
    selected: &[Contender],
    about: &[String],
    path: &Path,
    timing: Timing,
    rounds: usize,
    report: &mut GroupReport,
) {
    eprintln!("{} ...", workload.title());
    let results = bench::run(workload, selected, path, timing, rounds, None);
    for result in &results {
        if let Some(failure) = &result.failure {
            report.fail(format!(
                "{}: {}: {failure}",
                workload.title(),
                result.contender.name
            ));
        }
    }
    report.section(crate::report::fs::section(workload, about, &results));
}

/// The CPU everything measured runs on: the whole process is pinned to it
/// before any thread starts, and fio gets `--cpus_allowed` with it.
pub const CPU: usize = 0;

/// Size of the data file.
pub const FILE_SIZE: u64 = 1 << 30;

/// Bytes per random read, and the alignment of its offset and buffer.
pub const BLOCK: usize = 4096;

/// Bytes per sequential read.
pub const CHUNK: usize = 1 << 20;

/// Where every random-offset stream starts; worker `w` of every contender
/// draws the same offsets.
pub const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// Sequential reads each form of `runtime` keeps in flight in its deep run.
pub const SEQUENTIAL_DEPTH: usize = 4;

/// Uniform random offsets of [`BLOCK`]-sized blocks within [`FILE_SIZE`]
/// (xorshift64).
#[derive(Debug, Clone)]
pub struct Offsets(u64);

impl Offsets {
    /// The stream of worker `worker`: the same for every contender.
    pub fn for_worker(worker: usize) -> Offsets {
        let mut offsets = Offsets(SEED ^ (worker as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // A few steps so that nearby seeds part ways.
        for _ in 0..4 {
            offsets.next_raw();
        }
        offsets
    }

    fn next_raw(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The byte offset of the next block to read.
    pub fn next_offset(&mut self) -> u64 {
        let blocks = FILE_SIZE / BLOCK as u64;
        (self.next_raw() % blocks) * BLOCK as u64
    }
}

/// How long each run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
}

impl Timing {
    /// Full-length runs.
    pub const FULL: Timing = Timing {
        warmup: Duration::from_millis(500),
        window: Duration::from_secs(5),
    };

    /// Short runs for a smoke test.
    pub const QUICK: Timing = Timing {
        warmup: Duration::from_millis(200),
        window: Duration::from_secs(1),
    };
}

/// A benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// [`BLOCK`]-byte `O_DIRECT` reads at random offsets, `depth` in flight.
    Random {
        /// Reads in flight.
        depth: usize,
    },
    /// [`CHUNK`]-byte buffered reads front to back, the file in the page
    /// cache.
    Sequential,
}

impl Workload {
    /// The heading of its table.
    pub fn title(self) -> String {
        match self {
            Workload::Random { depth } => {
                format!("random 4 KiB O_DIRECT reads, queue depth {depth}")
            }
            Workload::Sequential => "sequential 1 MiB buffered reads, page cache warm".to_string(),
        }
    }
}

/// The part a contender plays in the ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// fio: the reference.
    Ceiling,
    /// Another runtime, or the standard library.
    Peer,
    /// `runtime`, in one of its forms.
    Ours,
}

/// Everything a run needs besides the contender.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The data file.
    pub path: &'a Path,
    /// Lengths of the warm-up and the window.
    pub timing: Timing,
}

/// One way of doing a workload: does it through a warm-up and a measured
/// window and says what it saw. Errors say why it could not run.
pub type RunFn = fn(Workload, Run<'_>) -> io::Result<Window>;

/// A contender of one workload.
#[derive(Debug, Clone, Copy)]
pub struct Contender {
    /// Its name in the table and on the command line.
    pub name: &'static str,
    /// Its part in the ratios.
    pub role: Role,
    /// How it runs.
    pub run: RunFn,
}

const fn contender(name: &'static str, role: Role, run: RunFn) -> Contender {
    Contender { name, role, run }
}

/// The contenders of a workload, in the order of the table.
pub fn contenders(workload: Workload) -> Vec<Contender> {
    match workload {
        Workload::Random { .. } => vec![
            contender("fio", Role::Ceiling, fio::run_plain),
            contender("fio-fixedbufs", Role::Ceiling, fio::run_fixed),
            contender("glommio", Role::Peer, glommio_peer::run),
            contender("monoio", Role::Peer, monoio_peer::run),
            contender("tokio(spawn_blocking)", Role::Peer, tokio_blocking::run),
            contender("ours-plain", Role::Ours, ours::run_plain),
            contender("ours-fixed", Role::Ours, ours::run_fixed),
            contender("ours-fixed-files", Role::Ours, ours::run_fixed_files),
        ],
        Workload::Sequential => vec![
            contender("std", Role::Peer, sequential::run_std),
            contender("ours-qd1", Role::Ours, sequential::run_ours_qd1),
            contender("ours-qd4", Role::Ours, sequential::run_ours_deep),
        ],
    }
}

/// Every contender name of either workload, for the command line's checks.
pub fn contender_names() -> Vec<&'static str> {
    contenders(Workload::Random { depth: 1 })
        .into_iter()
        .chain(contenders(Workload::Sequential))
        .map(|c| c.name)
        .collect()
}

/// The error of a read that came back with fewer bytes than asked: the data
/// file is shorter than it should be.
pub fn short_read(got: usize, wanted: usize, pos: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read {got} of {wanted} bytes at offset {pos}: is the data file complete?"),
    )
}

#[cfg(test)]
mod tests {
    use super::{Offsets, BLOCK, FILE_SIZE};

    #[test]
    fn offsets_are_aligned_in_range_and_repeatable() {
        let mut a = Offsets::for_worker(3);
        let mut b = Offsets::for_worker(3);
        let mut c = Offsets::for_worker(4);
        let mut differ = false;
        for _ in 0..10_000 {
            let (x, y, z) = (a.next_offset(), b.next_offset(), c.next_offset());
            assert_eq!(x, y);
            assert!(x % BLOCK as u64 == 0 && x + BLOCK as u64 <= FILE_SIZE);
            differ |= x != z;
        }
        assert!(differ);
    }
}
