//! Rounds of runs. Within a round every contender runs once, each on a fresh
//! thread (which inherits the process's CPU mask), so that no runtime finds
//! another's thread-local state; the turn order rotates from round to round,
//! so that no contender always goes first. A contender whose run fails is
//! reported with its error and left out of the later rounds; the others go
//! on.

use std::path::Path;
use std::thread;

use super::{Contender, Run, Timing, Window, Workload};
use crate::quiet::Quiet;

/// A contender's runs in one workload.
#[derive(Debug, Clone)]
pub struct Results {
    /// Who ran.
    pub contender: Contender,
    /// One window per round, in round order, up to the first failure.
    pub runs: Vec<Window>,
    /// Why it stopped running, if it did.
    pub failure: Option<String>,
}

/// Runs `workload` with each of `contenders` for `rounds` rounds; with
/// `quiet`, each run first waits for a quiet machine.
pub fn run(
    workload: Workload,
    contenders: &[Contender],
    path: &Path,
    timing: Timing,
    rounds: usize,
    quiet: Option<Quiet>,
) -> Vec<Results> {
    let mut results: Vec<Results> = contenders
        .iter()
        .map(|&contender| Results {
            contender,
            runs: Vec::new(),
            failure: None,
        })
        .collect();
    let count = results.len();
    let run = Run { path, timing };
    for round in 0..rounds {
        for turn in 0..count {
            let result = &mut results[(turn + round) % count];
            if result.failure.is_some() {
                continue;
            }
            let name = result.contender.name;
            if let Some(quiet) = &quiet {
                quiet.wait();
            }
            match run_once(result.contender, workload, run) {
                Ok(window) => {
                    let figures = match workload {
                        Workload::Random { .. } => format!(
                            "{:>9.0} reads/s, {:>7.2} CPU-us/read",
                            window.iops(),
                            window.cpu_us_per_op()
                        ),
                        Workload::Sequential => format!(
                            "{:>6.2} GiB/s, {:>6.3} CPU-s/GiB",
                            window.gib_per_s(),
                            window.cpu_s_per_gib()
                        ),
                    };
                    eprintln!(
                        "  round {}/{rounds}: {name:<22} {figures}, CPU {:>3.0}%",
                        round + 1,
                        100.0 * window.utilisation()
                    );
                    result.runs.push(window);
                }
                Err(err) => {
                    eprintln!("  round {}/{rounds}: {name}: {err}", round + 1);
                    result.failure = Some(err);
                }
            }
        }
    }
    results
}

/// One run on a thread of its own.
fn run_once(contender: Contender, workload: Workload, run: Run<'_>) -> Result<Window, String> {
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name(format!("fsbench-{}", contender.name))
            .spawn_scoped(scope, || (contender.run)(workload, run))
            .map_err(|err| format!("cannot start a thread: {err}"))?;
        match worker.join() {
            Ok(Ok(window)) => Ok(window),
            Ok(Err(err)) => Err(err.to_string()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                Err(format!("panicked: {what}"))
            }
        }
    })
}
