//! The instructions group: user-space instructions per nop, counted by
//! `valgrind --tool=callgrind`, for the nop contenders of the nop group (raw,
//! ours, tokio-uring) at 1 and at 64 in flight. This machine has no hardware
//! performance counters, and an instruction count does not drift with the load
//! of the machine the way a time does.
//!
//! Each contender runs its nop workload in a process of its own under callgrind,
//! once with N ops and once with 2N: `benches count-nops NAME DEPTH COUNT CPU`,
//! the same copy of this binary every time, which builds its runtime, does the
//! ops on one thread pinned to CPU, and exits. Everything but the ops (process
//! start, runtime set-up and drop, exit) is the same in both runs, so
//! `(Ir(2N) - Ir(N)) / N` is what one op costs; `2 Ir(N) - Ir(2N)` is what the
//! rest costs. Callgrind counts only user space: the kernel's share of an op is
//! not in these figures.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::measure::{on_pinned_thread, Sample, Spread};
use crate::options::Options;
use crate::report::instructions::{section, Count};
use crate::report::GroupReport;
use crate::{ours, raw, tools, uring_peer, DEPTH};

/// The first argument of the child process that runs one contender's nops.
pub const CHILD: &str = "count-nops";

/// N when `--ops` is not given: 1,000 nops for each of the 64 tasks of the deep
/// workload.
pub const OPS: u64 = 64_000;

/// N with `--quick`.
pub const QUICK_OPS: u64 = 6_400;

/// Rounds (pairs of runs per contender and depth) when `--rounds` is not given:
/// the count does not change from run to run by more than a few instructions.
pub const ROUNDS: usize = 1;

/// The ops in flight of the two workloads.
pub const DEPTHS: [u64; 2] = [1, DEPTH];

/// A nop workload: does `count` nops, `depth` in flight.
type NopFn = fn(u64) -> io::Result<Sample>;

/// The contenders, as in the nop group: name, 1 in flight, 64 in flight.
pub const CONTENDERS: [(&str, NopFn, NopFn); 3] = [
    ("raw", raw::nop_qd1, raw::nop_qd64),
    ("ours", ours::nop_qd1, ours::nop_qd64),
    ("tokio-uring", uring_peer::nop_qd1, uring_peer::nop_qd64),
];

/// The child's side: `NAME DEPTH COUNT CPU`. Runs the nops on a thread pinned
/// to CPU and returns when they are done.
pub fn child(args: &[String]) -> io::Result<()> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let [name, depth, count, cpu] = args else {
        return Err(invalid(format!(
            "usage: benches {CHILD} raw|ours|tokio-uring 1|64 COUNT CPU"
        )));
    };
    let number = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| invalid(format!("`{text}` is not a number")))
    };
    let (depth, count, cpu) = (number(depth)?, number(count)?, number(cpu)?);
    let &(_, qd1, qd64) = CONTENDERS
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| invalid(format!("no nop contender is named `{name}`")))?;
    let run = match depth {
        1 => qd1,
        DEPTH => qd64,
        _ => return Err(invalid(format!("the depth is 1 or {DEPTH}, not {depth}"))),
    };
    on_pinned_thread(cpu as usize, move || run(count)).map(|_| ())
}

/// Runs the instructions group as `options` say, into `report`.
pub fn run_group(options: &Options, report: &mut GroupReport) {
    let valgrind = match tools::ensure("valgrind", "valgrind") {
        Ok(valgrind) => valgrind,
        Err(why) => {
            report.skip(why);
            return;
        }
    };
    let n = options
        .ops
        .unwrap_or(if options.quick { QUICK_OPS } else { OPS });
    // Both counts split evenly over the 64 tasks of the deep workload.
    let n = n - n % DEPTH;
    let rounds = options.rounds_or(ROUNDS);
    let dir = tools::target_dir().join("bench-instructions");
    let binary = match copy_of_this_binary(&dir) {
        Ok(binary) => binary,
        Err(err) => {
            report.fail(format!(
                "cannot copy this binary to {}: {err}",
                dir.display()
            ));
            return;
        }
    };
    report.about(format!(
        "each count: `{} --tool=callgrind --callgrind-out-file=FILE {} {CHILD} NAME DEPTH COUNT {}` \
         (a copy of this binary, the same for every run), COUNT = N = {n} and 2N = {}; {rounds} \
         round(s)",
        valgrind.display(),
        binary.display(),
        options.cpu,
        2 * n
    ));
    report.about(format!(
        "callgrind's output files stay in {} for callgrind_annotate",
        dir.display()
    ));
    let mut counts = Vec::new();
    for depth in DEPTHS {
        for &(name, _, _) in CONTENDERS.iter().filter(|(name, _, _)| options.runs(name)) {
            let mut count = Count {
                contender: name.to_string(),
                depth,
                n,
                rounds: Vec::new(),
            };
            for round in 0..rounds {
                eprintln!(
                    "instructions: {name}, {depth} in flight, round {}/{rounds}",
                    round + 1
                );
                let pair = [n, 2 * n].map(|ops| {
                    let out = dir.join(format!("{name}-qd{depth}-{ops}.callgrind"));
                    callgrind(&valgrind, &binary, &out, name, depth, ops, options.cpu)
                });
                match pair {
                    [Ok(ir_n), Ok(ir_2n)] => count.rounds.push((ir_n, ir_2n)),
                    [Err(err), _] | [_, Err(err)] => {
                        report.fail(format!("{name}, {depth} in flight: {err}"));
                        break;
                    }
                }
            }
            if !count.rounds.is_empty() {
                counts.push(count);
            }
        }
    }
    report.section(section(&counts));
}

/// Copies the running binary (`/proc/self/exe`, which is the file this process
/// started from even if a build has replaced it since) into `dir`.
fn copy_of_this_binary(dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let binary = dir.join("benches");
    // Not over the old copy in place: a process may still run it.
    let fresh = dir.join(format!(".benches-{}", std::process::id()));
    std::fs::copy("/proc/self/exe", &fresh)?;
    std::fs::rename(&fresh, &binary)?;
    Ok(binary)
}

/// Runs `binary count-nops NAME DEPTH OPS CPU` under callgrind and returns the
/// instructions it executed in user space (callgrind's `summary:` line).
fn callgrind(
    valgrind: &Path,
    binary: &Path,
    out: &Path,
    name: &str,
    depth: u64,
    ops: u64,
    cpu: usize,
) -> io::Result<u64> {
    let _ = std::fs::remove_file(out);
    let output = Command::new(valgrind)
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(binary)
        .args([
            CHILD,
            name,
            &depth.to_string(),
            &ops.to_string(),
            &cpu.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot run valgrind: {err}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(io::Error::other(format!(
            "valgrind failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )));
    }
    let text = std::fs::read_to_string(out).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("callgrind wrote no {}: {err}", out.display()),
        )
    })?;
    summary(&text).ok_or_else(|| {
        io::Error::other(format!(
            "no `summary:` line in callgrind's {}",
            out.display()
        ))
    })
}

/// The event count of callgrind's `summary:` line (its `totals:` line if there
/// is no summary). Only `Ir` is collected, so that is the first number.
fn summary(callgrind_out: &str) -> Option<u64> {
    let field = |prefix: &str| {
        callgrind_out
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    field("summary:").or_else(|| field("totals:"))
}

/// Instructions per op of `rounds` pairs `(Ir(N), Ir(2N))`.
pub fn per_op(n: u64, rounds: &[(u64, u64)]) -> Option<Spread> {
    let figures: Vec<f64> = rounds
        .iter()
        .map(|&(ir_n, ir_2n)| (ir_2n as f64 - ir_n as f64) / n as f64)
        .collect();
    Spread::of(&figures)
}

#[cfg(test)]
mod tests {
    use super::{per_op, summary};

    #[test]
    fn reads_callgrinds_summary() {
        let out = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\n\
                   events: Ir\nfn=(1) main\n0 12\nsummary: 123456789\ntotals: 123456789\n";
        assert_eq!(summary(out), Some(123_456_789));
        assert_eq!(summary("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(summary("events: Ir\n"), None);
    }

    #[test]
    fn per_op_removes_what_both_runs_share() {
        // 1,000,000 of set-up, 150 per op.
        let n = 64_000;
        let ir = |ops: u64| 1_000_000 + 150 * ops;
        let spread = per_op(n, &[(ir(n), ir(2 * n)), (ir(n) + 64, ir(2 * n))]).unwrap();
        assert_eq!(spread.max, 150.0);
        assert_eq!(spread.min, 149.999);
        assert_eq!(per_op(n, &[]), None);
    }
}
