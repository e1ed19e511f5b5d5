//! The fallback group: `runtime` on its readiness backend (epoll) against tokio,
//! with `runtime` on io_uring in the same rounds for reference. It reuses the
//! servers, loads and rounds of the net group and the readers and meter of the
//! fs group, three contenders per workload:
//!
//! - `ours-epoll`: our server or reader with `RUNTIME_BACKEND=epoll` (servers,
//!   started as processes of their own) or `Backend::Epoll` (readers, in this
//!   process);
//! - `ours-uring`: the same with `RUNTIME_BACKEND=io_uring` or
//!   `Backend::IoUring`;
//! - the tokio peer: `tokio-ct` (servers), `tokio(spawn_blocking)` (random
//!   reads, what `tokio::fs` does for a read, into an aligned block), `tokio-fs`
//!   (sequential reads, `tokio::fs::File::read`).
//!
//! Each server is checked from the outside, after its load, to run on the
//! backend it was told to (its fds in `/proc/<pid>/fd`: an `[eventpoll]` and
//! no `[io_uring]` for epoll; as it starts serving, a runtime on epoll may
//! hold for a moment the small ring with which it probes the kernel's
//! opcodes), and each reader's runtime by `Runtime::backend`.
//!
//! The workloads, in this order: HTTP hello (`ours-*` is the `hello` example,
//! loaded with wrk), echo of 64 B and of 4 KiB messages (`ours-*` is the net
//! group's `ours`, loaded with the io_uring echo client), each server on CPU 0
//! and the load on CPU 1; then 4 KiB random `O_DIRECT` reads at each queue
//! depth (default 1 and 32) and 1 MiB sequential reads from a warm page cache,
//! everything on CPU 0. The target is the HTTP server's CPU per request on
//! epoll: at most 1.1x tokio-ct's.

use std::io;
use std::path::PathBuf;

use runtime::Backend;

use crate::fs::{self, Run};
use crate::net::bench::{self as net_bench, Setup, Workload};
use crate::net::process::set_affinity;
use crate::net::{self, Protocol, CONNECTIONS, LOAD_CPU, SERVER_CPU};
use crate::options::Options;
use crate::quiet::Quiet;
use crate::report::fallback::{section, Figures, Measured, Names, Point};
use crate::report::{GroupReport, Target};
use crate::tools;

/// Rounds when `--rounds` is not given.
pub const ROUNDS: usize = 5;

/// Echo message sizes.
const ECHO_SIZES: [usize; 2] = [64, 4096];

/// `runtime` on epoll.
pub const EPOLL: &str = "ours-epoll";

/// `runtime` on io_uring.
pub const URING: &str = "ours-uring";

/// The tokio peer of the sequential reads.
pub const TOKIO_FS: &str = "tokio-fs";

/// The most `ours-epoll`'s HTTP CPU per request may be over tokio-ct's.
pub const HTTP_TARGET: Target = Target::at_most(1.10);

/// The contenders of a protocol: `runtime`'s server on each backend, and
/// tokio-ct.
pub fn net_contenders(protocol: Protocol) -> Vec<net::Contender> {
    let all = net::contenders(protocol);
    let named = |name: &str| {
        *all.iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("the net group has no `{name}`"))
    };
    let ours = named("ours");
    vec![
        ours.on_backend(EPOLL, Backend::Epoll),
        named("tokio-ct"),
        ours.on_backend(URING, Backend::IoUring),
    ]
}

/// The contenders of a file workload: `runtime`'s reader on each backend, and
/// the tokio peer.
pub fn fs_contenders(workload: fs::Workload) -> Vec<fs::Contender> {
    let peer = match workload {
        fs::Workload::Random { .. } => fs::Contender {
            name: "tokio(spawn_blocking)",
            role: fs::Role::Peer,
            run: fs::tokio_blocking::run,
        },
        fs::Workload::Sequential => fs::Contender {
            name: TOKIO_FS,
            role: fs::Role::Peer,
            run: fs::sequential::run_tokio_fs,
        },
    };
    vec![
        fs::Contender {
            name: EPOLL,
            role: fs::Role::Ours,
            run: read_on_epoll,
        },
        peer,
        fs::Contender {
            name: URING,
            role: fs::Role::Ours,
            run: read_on_io_uring,
        },
    ]
}

/// Every contender name, for the command line's checks.
pub fn contender_names() -> Vec<&'static str> {
    vec![EPOLL, URING, "tokio-ct", "tokio(spawn_blocking)", TOKIO_FS]
}

fn read_on(workload: fs::Workload, run: Run<'_>, backend: Backend) -> io::Result<fs::Window> {
    match workload {
        fs::Workload::Random { .. } => fs::ours::run_plain_on(workload, run, backend),
        fs::Workload::Sequential => fs::sequential::run_ours_qd1_on(workload, run, backend),
    }
}

fn read_on_epoll(workload: fs::Workload, run: Run<'_>) -> io::Result<fs::Window> {
    read_on(workload, run, Backend::Epoll)
}

fn read_on_io_uring(workload: fs::Workload, run: Run<'_>) -> io::Result<fs::Window> {
    read_on(workload, run, Backend::IoUring)
}

fn names(peer: &'static str) -> Names<'static> {
    Names {
        epoll: EPOLL,
        uring: URING,
        peer,
    }
}

/// Runs the fallback group as `options` say, into `report`: the servers first,
/// with this thread, the load, pinned to [`LOAD_CPU`]; then the file reads, with
/// it pinned to [`fs::CPU`], so that the readers' threads (tokio's blocking
/// pool, the kernel's io_uring workers) start there.
pub fn run_group(options: &Options, report: &mut GroupReport) {
    let rounds = options.rounds_or(ROUNDS);
    report.about(format!(
        "{EPOLL}: runtime on its epoll backend (servers: RUNTIME_BACKEND=epoll; readers: \
         Builder::backend(Backend::Epoll)); {URING}: the same on io_uring; the tokio peer; \
         {rounds} rounds, contenders interleaved, the order rotating; medians of the rounds, \
         ratios taken per round{}",
        if options.quick { "; --quick" } else { "" }
    ));
    if let Some(quiet) = quiet(options) {
        report.about(format!(
            "before each run, a wait for a quiet machine (all CPUs {}; /proc/stat)",
            quiet.describe()
        ));
    }
    run_servers(options, rounds, report);
    run_readers(options, rounds, report);
    let (waited, quiet) = Quiet::counts();
    if waited > 0 {
        report.about(format!(
            "{quiet} of {waited} runs started on a quiet machine; the others after the \
             longest wait"
        ));
    }
}

/// The wait before each run: none with `--quick`.
fn quiet(options: &Options) -> Option<Quiet> {
    (!options.quick).then_some(Quiet::DEFAULT)
}

fn run_servers(options: &Options, rounds: usize, report: &mut GroupReport) {
    let wants = |protocol| {
        net_contenders(protocol)
            .iter()
            .any(|c| options.runs(c.name))
    };
    let (wants_http, wants_echo) = (wants(Protocol::Http), wants(Protocol::Echo));
    if !(wants_http || wants_echo) {
        return;
    }
    if let Err(err) = set_affinity(0, LOAD_CPU) {
        report.skip(format!(
            "the servers: cannot pin the load to CPU {LOAD_CPU} ({err}); they need CPUs \
             {SERVER_CPU} and {LOAD_CPU}"
        ));
        return;
    }
    let wrk = if wants_http {
        tools::ensure("wrk", "wrk")
    } else {
        Err("not asked for".to_string())
    };
    let hello = if wrk.is_ok() && (options.runs(EPOLL) || options.runs(URING)) {
        tools::hello_example(options.hello.as_deref())
    } else {
        Err("not asked for".to_string())
    };
    let setup = Setup {
        hello,
        exe: PathBuf::from("/proc/self/exe"),
        wrk: wrk.clone().ok(),
        timing: if options.quick {
            net_bench::Timing::QUICK
        } else {
            net_bench::Timing::FULL
        },
        rounds,
        quiet: quiet(options),
    };
    report.about(format!(
        "servers: each a process of its own on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}, \
         {CONNECTIONS} connections; server CPU = utime + stime of the server process over \
         the measured window (/proc/<pid>/stat, 10 ms ticks)"
    ));
    if wants_http {
        match &wrk {
            Ok(_) => run_server_workload(Workload::Http, options, &setup, report),
            Err(why) => report.skip(format!("the HTTP benchmark: {why}")),
        }
    }
    if wants_echo {
        for size in ECHO_SIZES {
            run_server_workload(Workload::Echo { size }, options, &setup, report);
        }
    }
}

fn run_server_workload(
    workload: Workload,
    options: &Options,
    setup: &Setup,
    report: &mut GroupReport,
) {
    let selected: Vec<_> = net_contenders(workload.protocol())
        .into_iter()
        .filter(|c| options.runs(c.name))
        .collect();
    if selected.is_empty() {
        return;
    }
    let timing = setup.timing;
    let mut about = Vec::new();
    let (figures, target) = match workload {
        Workload::Http => {
            about.push(format!(
                "`taskset -c {LOAD_CPU} wrk {}`, after a {} s warm-up run of wrk",
                net::wrk::command_line(
                    CONNECTIONS,
                    timing.http_window_secs,
                    "http://127.0.0.1:PORT/"
                )
                .join(" "),
                timing.http_warmup_secs
            ));
            if let Ok(hello) = &setup.hello {
                about.push(format!(
                    "{EPOLL}: `RUNTIME_BACKEND=epoll {} --port PORT`; {URING}: the same with \
                     RUNTIME_BACKEND=io_uring; tokio-ct: `benches serve tokio-ct http PORT`",
                    hello.display()
                ));
            }
            (
                Figures::counted("req", "req/s", "CPU-us/req", "reqs/CPU-s"),
                Some(HTTP_TARGET),
            )
        }
        Workload::Echo { size } => {
            about.push(format!(
                "{CONNECTIONS} connections, one message of {size} B in flight on each, every \
                 echo checked; {:.1} s warm-up, {:.1} s measured",
                timing.echo_warmup.as_secs_f64(),
                timing.echo_window.as_secs_f64()
            ));
            about.push(format!(
                "{EPOLL}: `RUNTIME_BACKEND=epoll benches serve ours echo PORT`; {URING}: the \
                 same with RUNTIME_BACKEND=io_uring; tokio-ct: `benches serve tokio-ct echo PORT`"
            ));
            (
                Figures::counted("msg", "msg/s", "CPU-us/msg", "msgs/CPU-s"),
                None,
            )
        }
    };
    let title = format!("fallback: {}", workload.title());
    eprintln!("{title} ...");
    let results = net_bench::run(workload, &selected, setup);
    let measured: Vec<Measured> = results
        .iter()
        .map(|result| {
            let name = result.contender.name;
            Measured::of(&title, report, name, &result.runs, &result.failure, |w| {
                Point {
                    rate: w.rate(),
                    cost: w.cpu_per_million(),
                    per_cpu: w.per_cpu_second(),
                    busy: w.utilisation(),
                }
            })
        })
        .collect();
    let mut section = section(
        &title,
        &about,
        figures,
        names("tokio-ct"),
        &measured,
        target,
    );
    for note in results.iter().flat_map(|r| &r.notes) {
        section.note(note.clone());
    }
    report.section(section);
}

fn run_readers(options: &Options, rounds: usize, report: &mut GroupReport) {
    let depths = if options.depths.is_empty() {
        fs::DEPTHS.to_vec()
    } else {
        options.depths.clone()
    };
    let mut workloads: Vec<fs::Workload> = depths
        .into_iter()
        .map(|depth| fs::Workload::Random { depth })
        .collect();
    workloads.push(fs::Workload::Sequential);
    let wanted: Vec<(fs::Workload, Vec<fs::Contender>)> = workloads
        .into_iter()
        .map(|workload| {
            let selected = fs_contenders(workload)
                .into_iter()
                .filter(|c| options.runs(c.name))
                .collect::<Vec<_>>();
            (workload, selected)
        })
        .filter(|(_, selected)| !selected.is_empty())
        .collect();
    if wanted.is_empty() {
        return;
    }
    if let Err(err) = set_affinity(0, fs::CPU) {
        report.skip(format!(
            "the file reads: cannot pin to CPU {}: {err}",
            fs::CPU
        ));
        return;
    }
    let path = options.file.clone().unwrap_or_else(fs::data::default_path);
    if !fs::data::ensure_reported(&path, report) {
        return;
    }
    let timing = if options.quick {
        fs::Timing::QUICK
    } else {
        fs::Timing::FULL
    };
    report.about(format!(
        "file reads: storage {}; all on CPU {}; {:.1} s warm-up, {:.1} s measured per run; \
         CPU = getrusage(RUSAGE_SELF) user + system over the window (every thread of the \
         process, tokio's blocking pool and io_uring workers included)",
        fs::data::describe_storage(&path),
        fs::CPU,
        timing.warmup.as_secs_f64(),
        timing.window.as_secs_f64()
    ));
    for (workload, selected) in wanted {
        let (figures, peer, about) = match workload {
            fs::Workload::Random { depth } => (
                Figures::counted("read", "reads/s", "CPU-us/read", "reads/CPU-s"),
                "tokio(spawn_blocking)",
                format!(
                    "{depth} tasks, one read in flight on each; ours-*: `File::read_at` into \
                     `File::aligned_buf`; tokio: `pread` in `spawn_blocking` into an aligned \
                     block (tokio::fs cannot open O_DIRECT with an aligned buffer)"
                ),
            ),
            fs::Workload::Sequential => {
                if let Err(err) = fs::data::warm_page_cache(&path) {
                    report.fail(format!("cannot read the data file: {err}"));
                    return;
                }
                (
                    Figures::GIB,
                    TOKIO_FS,
                    "one read in flight; ours-*: `File::read_at` into a 1 MiB `Vec`; \
                     tokio-fs: `tokio::fs::File::read` into a 1 MiB buffer"
                        .to_string(),
                )
            }
        };
        let title = format!("fallback: {}", workload.title());
        eprintln!("{title} ...");
        let results = fs::bench::run(workload, &selected, &path, timing, rounds, quiet(options));
        let sequential = workload == fs::Workload::Sequential;
        let measured: Vec<Measured> = results
            .iter()
            .map(|result| {
                let name = result.contender.name;
                Measured::of(&title, report, name, &result.runs, &result.failure, |w| {
                    let (rate, cost) = if sequential {
                        (w.gib_per_s(), w.cpu_s_per_gib())
                    } else {
                        (w.iops(), w.cpu_us_per_op())
                    };
                    let per_cpu = if sequential { 1.0 } else { 1e6 } / cost;
                    Point {
                        rate,
                        cost,
                        per_cpu,
                        busy: w.utilisation(),
                    }
                })
            })
            .collect();
        report.section(section(
            &title,
            &[about],
            figures,
            names(peer),
            &measured,
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::{contender_names, fs_contenders, net_contenders, EPOLL, URING};
    use crate::fs::Workload;
    use crate::net::Protocol;
    use runtime::Backend;

    #[test]
    fn ours_on_each_backend_and_the_peers() {
        for protocol in [Protocol::Http, Protocol::Echo] {
            let all = net_contenders(protocol);
            let names: Vec<_> = all.iter().map(|c| c.name).collect();
            assert_eq!(names, [EPOLL, "tokio-ct", URING]);
            assert_eq!(all[0].backend, Some(Backend::Epoll));
            assert_eq!(all[2].backend, Some(Backend::IoUring));
            assert_eq!(all[1].backend, None);
            // The same server as the net group's `ours`.
            assert_eq!(all[0].serve_name(), "ours");
            assert_eq!(
                all[0].is_hello_example(),
                protocol == Protocol::Http,
                "{protocol:?}"
            );
        }
        for workload in [Workload::Random { depth: 1 }, Workload::Sequential] {
            for contender in fs_contenders(workload) {
                assert!(contender_names().contains(&contender.name));
            }
        }
    }
}
