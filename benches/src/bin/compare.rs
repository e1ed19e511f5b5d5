//! Side-by-side comparison of `runtime` with a hand-written io_uring loop,
//! tokio-uring and tokio. Run with
//! `cargo run -p benches --release --bin compare -- [nop|spawn|all] [--quick]`
//! (`--help` lists the other options).
//! See `docs/benchmarks.md` for what each workload measures.

use std::process::ExitCode;

use benches::args::{Options, USAGE};
use benches::measure::{run_rounds, Contender, Plan};
use benches::report::{print_verdicts, print_workload, Ratio, Verdict};
use benches::{ours, raw, tokio_local, uring_peer, DEPTH};

/// One workload and the contenders that do it.
struct Workload {
    title: &'static str,
    unit: &'static str,
    /// Operations per round at full size (a contender may do a share of
    /// them); `--quick` divides it by ten.
    count: u64,
    /// Every contender's count is rounded down to a multiple of this.
    granule: u64,
    contenders: Vec<Contender>,
    ratios: Vec<Ratio>,
}

const fn ratio(numerator: &'static str, denominator: &'static str, target: Option<f64>) -> Ratio {
    Ratio {
        numerator,
        denominator,
        target,
    }
}

fn nop_workloads() -> Vec<Workload> {
    // tokio-uring is several times slower: it does a fifth of the ops so its
    // rounds take about as long as the others'.
    let qd1 = vec![
        Contender::new("raw", raw::nop_qd1),
        Contender::new("ours", ours::nop_qd1),
        Contender::new("tokio-uring", uring_peer::nop_qd1).doing_one_in(5),
    ];
    let qd64 = vec![
        Contender::new("raw", raw::nop_qd64),
        Contender::new("ours", ours::nop_qd64),
        Contender::new("tokio-uring", uring_peer::nop_qd64).doing_one_in(5),
    ];
    vec![
        Workload {
            title: "nop, 1 in flight",
            unit: "ops/s",
            count: 3_200_000,
            granule: 1,
            contenders: qd1,
            ratios: vec![
                ratio("ours", "raw", Some(0.8)),
                ratio("ours", "tokio-uring", None),
                ratio("tokio-uring", "raw", None),
            ],
        },
        Workload {
            title: "nop, 64 in flight",
            unit: "ops/s",
            count: 12_800_000,
            // The deep-queue contenders split their count evenly over DEPTH tasks.
            granule: DEPTH,
            contenders: qd64,
            ratios: vec![
                ratio("ours", "raw", Some(0.8)),
                ratio("ours", "tokio-uring", Some(2.0)),
                ratio("tokio-uring", "raw", None),
            ],
        },
    ]
}

fn spawn_workloads() -> Vec<Workload> {
    let all = vec![
        Contender::new("ours", ours::spawn_all),
        Contender::new("tokio", tokio_local::spawn_all),
    ];
    let batched = vec![
        Contender::new("ours", ours::spawn_batched),
        Contender::new("tokio", tokio_local::spawn_batched),
    ];
    vec![
        Workload {
            title: "spawn + join, all spawned then awaited",
            unit: "tasks/s",
            count: 1_000_000,
            granule: 1,
            contenders: all,
            ratios: vec![ratio("ours", "tokio", Some(1.0))],
        },
        Workload {
            title: "spawn + join, in batches of 1,000",
            unit: "tasks/s",
            count: 3_000_000,
            granule: 1,
            contenders: batched,
            ratios: vec![ratio("ours", "tokio", Some(1.0))],
        },
    ]
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("compare: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let plan = Plan {
        rounds: options.rounds,
        warmup: 1,
        cpu: options.cpu,
    };
    let mut workloads = Vec::new();
    if options.selection.nop() {
        workloads.extend(nop_workloads());
    }
    if options.selection.spawn() {
        workloads.extend(spawn_workloads());
    }
    if let Some(only) = &options.only {
        for workload in &mut workloads {
            workload.contenders.retain(|c| c.name == only);
        }
        workloads.retain(|w| !w.contenders.is_empty());
        if workloads.is_empty() {
            eprintln!("compare: no selected workload has a contender named `{only}`");
            return ExitCode::from(2);
        }
    }
    println!(
        "compare: every run on a fresh thread pinned to CPU {}; rounds: {} measured + {} warm-up{}",
        plan.cpu,
        plan.rounds,
        plan.warmup,
        if options.quick { "; --quick" } else { "" }
    );
    let mut verdicts: Vec<Verdict> = Vec::new();
    for workload in &workloads {
        let count = if options.quick {
            workload.count / 10
        } else {
            workload.count
        };
        let counts: Vec<u64> = workload
            .contenders
            .iter()
            .map(|c| {
                let share = count / c.share;
                share - share % workload.granule
            })
            .collect();
        println!("\n{}", workload.title);
        let outcome = match run_rounds(&workload.contenders, &counts, &plan) {
            Ok(outcome) => outcome,
            Err(err) => {
                eprintln!("compare: {}: {err}", workload.title);
                return ExitCode::FAILURE;
            }
        };
        let names: Vec<_> = workload.contenders.iter().map(|c| c.name).collect();
        verdicts.extend(print_workload(
            workload.title,
            workload.unit,
            &names,
            &counts,
            &outcome,
            &workload.ratios,
        ));
    }
    println!();
    print_verdicts(&verdicts);
    ExitCode::SUCCESS
}
