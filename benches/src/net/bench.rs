//! Rounds of runs. A run starts one contender's server in a process of its
//! own, loads it through a warm-up and a measured window, and kills it. Within
//! a round every contender runs once; the turn order rotates from round to
//! round, so that no contender always goes first. A contender whose run fails
//! is reported with its error and left out of the later rounds; the others go
//! on.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::load::{self, EchoLoad};
use super::process::{free_address, ServerProcess};
use super::server::READY;
use super::wrk::{self, Answer};
use super::{Contender, Launch, Protocol, Window, CONNECTIONS, LOAD_CPU, SERVER_CPU};
use crate::quiet::Quiet;

/// A benchmark: what the servers do and how they are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Echo of `size`-byte messages over [`CONNECTIONS`] connections.
    Echo {
        /// Bytes per message.
        size: usize,
    },
    /// `wrk` with [`CONNECTIONS`] keep-alive connections.
    Http,
}

impl Workload {
    /// What the servers speak.
    pub fn protocol(self) -> Protocol {
        match self {
            Workload::Echo { .. } => Protocol::Echo,
            Workload::Http => Protocol::Http,
        }
    }

    /// The heading of its table.
    pub fn title(self) -> String {
        match self {
            Workload::Echo { size } if size % 1024 == 0 => {
                format!("echo, {} KiB messages", size / 1024)
            }
            Workload::Echo { size } => format!("echo, {size} B messages"),
            Workload::Http => "http, keep-alive GET".to_string(),
        }
    }

    /// What one operation is called in the table: `msg` or `req`.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::Echo { .. } => "msg",
            Workload::Http => "req",
        }
    }
}

/// How long each part of a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Echo load before the measured window.
    pub echo_warmup: Duration,
    /// The echo load's measured window.
    pub echo_window: Duration,
    /// The warm-up `wrk` run, in whole seconds (all `wrk` takes).
    pub http_warmup_secs: u64,
    /// The measured `wrk` run, in whole seconds.
    pub http_window_secs: u64,
}

impl Timing {
    /// The full-length runs.
    pub const FULL: Timing = Timing {
        echo_warmup: Duration::from_secs(1),
        echo_window: Duration::from_secs(5),
        http_warmup_secs: 1,
        http_window_secs: 5,
    };

    /// Short runs for a smoke test.
    pub const QUICK: Timing = Timing {
        echo_warmup: Duration::from_millis(300),
        echo_window: Duration::from_secs(1),
        http_warmup_secs: 1,
        http_window_secs: 1,
    };
}

/// Everything a run needs besides the contender.
#[derive(Debug, Clone)]
pub struct Setup {
    /// This binary, which serves the in-process contenders.
    pub exe: PathBuf,
    /// The `hello` example binary, or why there is none.
    pub hello: Result<PathBuf, String>,
    /// `wrk`, if found.
    pub wrk: Option<PathBuf>,
    /// Lengths of the runs.
    pub timing: Timing,
    /// Rounds per workload.
    pub rounds: usize,
    /// Whether each run first waits for a quiet machine, and how.
    pub quiet: Option<Quiet>,
}

/// A contender's runs in one workload.
#[derive(Debug, Clone)]
pub struct Results {
    /// Who ran.
    pub contender: Contender,
    /// One window per round, in round order, up to the first failure.
    pub runs: Vec<Window>,
    /// Why it stopped running, if it did.
    pub failure: Option<String>,
    /// Remarks for under the table.
    pub notes: Vec<String>,
}

/// Runs `workload` with each of `contenders` for `setup.rounds` rounds.
pub fn run(workload: Workload, contenders: &[Contender], setup: &Setup) -> Vec<Results> {
    let mut results: Vec<Results> = contenders
        .iter()
        .map(|&contender| Results {
            contender,
            runs: Vec::new(),
            failure: None,
            notes: Vec::new(),
        })
        .collect();
    for result in &mut results {
        if let (true, Err(why)) = (result.contender.is_hello_example(), &setup.hello) {
            result.failure = Some(format!("not measured: {why}"));
        }
    }
    let count = results.len();
    for round in 0..setup.rounds {
        for turn in 0..count {
            let result = &mut results[(turn + round) % count];
            if result.failure.is_some() {
                continue;
            }
            let name = result.contender.name;
            if let Some(quiet) = &setup.quiet {
                quiet.wait();
            }
            match run_once(workload, &result.contender, setup, &mut result.notes) {
                Ok(window) => {
                    eprintln!(
                        "  round {}/{}: {name:<15} {:>10.0} {}s/s, server CPU {:>3.0}%",
                        round + 1,
                        setup.rounds,
                        window.rate(),
                        workload.unit(),
                        100.0 * window.utilisation()
                    );
                    result.runs.push(window);
                }
                Err(err) => {
                    eprintln!("  round {}/{}: {name}: {err}", round + 1, setup.rounds);
                    result.failure = Some(format!("failed: {err}"));
                }
            }
        }
    }
    results
}

/// One run: starts the contender's server, loads it, kills it.
fn run_once(
    workload: Workload,
    contender: &Contender,
    setup: &Setup,
    notes: &mut Vec<String>,
) -> io::Result<Window> {
    let addr = free_address()?;
    let protocol = workload.protocol();
    let (mut command, marker) = match contender.launch {
        Launch::Serve(_) => {
            let mut command = Command::new(&setup.exe);
            command.arg0("benches").args([
                "serve",
                contender.serve_name(),
                protocol.name(),
                &addr.port().to_string(),
            ]);
            (command, READY)
        }
        Launch::HelloExample => {
            let hello = setup
                .hello
                .as_ref()
                .map_err(|why| io::Error::other(why.clone()))?;
            let mut command = Command::new(hello);
            command.args(["--port", &addr.port().to_string()]);
            (command, "http://")
        }
    };
    if let Some(backend) = contender.backend {
        command.env(runtime::BACKEND_ENV, backend.to_string());
    }
    let server = ServerProcess::start(command, SERVER_CPU, marker, contender.name)?;
    let window = match workload {
        Workload::Echo { size } => {
            let echo = EchoLoad {
                connections: CONNECTIONS,
                size,
                warmup: setup.timing.echo_warmup,
                window: setup.timing.echo_window,
            };
            load::run(addr, &echo, &mut || server.cpu_time())?
        }
        Workload::Http => {
            let wrk = setup
                .wrk
                .as_ref()
                .ok_or_else(|| io::Error::other("wrk not found"))?;
            match wrk::check_server(addr)? {
                Answer::Exact => {}
                // The example is the project's own server: measure it all the
                // same, and say how its answer differs.
                Answer::Different(how) if contender.is_hello_example() => {
                    let note = format!("{}: {how}", contender.name);
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                Answer::Different(how) => return Err(io::Error::other(how)),
            }
            let warmup = setup.timing.http_warmup_secs;
            wrk::run(wrk, LOAD_CPU, CONNECTIONS, warmup, addr)?;
            let (start, cpu_start) = (Instant::now(), server.cpu_time()?);
            let report = wrk::run(
                wrk,
                LOAD_CPU,
                CONNECTIONS,
                setup.timing.http_window_secs,
                addr,
            )?;
            let (end, cpu_end) = (Instant::now(), server.cpu_time()?);
            if let Some(why) = report.invalid() {
                return Err(io::Error::other(why));
            }
            Window {
                ops: report.requests,
                wall: end - start,
                cpu: cpu_end.saturating_sub(cpu_start),
                rate: Some(report.per_second),
            }
        }
    };
    // After the load: a runtime on epoll may set up a short-lived io_uring of
    // its own to probe the kernel's opcodes (`Probe::get`) as it starts serving.
    if let Some(backend) = contender.backend {
        server.check_backend(backend)?;
    }
    Ok(window)
}
