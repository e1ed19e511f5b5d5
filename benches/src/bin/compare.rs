//! Side-by-side comparison of `runtime` with a hand-written io_uring loop,
//! tokio-uring, tokio and glommio. Run with
//! `cargo run -p benches --release --bin compare -- [nop|spawn|cross|all] [--quick]`
//! (`--help` lists the other options).
//! See `docs/benchmarks.md` for what each workload measures.

use std::io;
use std::process::ExitCode;

use benches::args::{Options, USAGE};
use benches::cross::{
    self, run_cross_rounds, CrossContender, CrossOutcome, Job, Whereabouts, CAPACITY, CPU_A, CPU_B,
    HANG_AFTER,
};
use benches::latency::{Latencies, Percentiles};
use benches::measure::{run_rounds, Contender, Outcome, Plan};
use benches::report::{print_latency, print_note, print_verdicts, print_workload, Ratio, Verdict};
use benches::{
    glommio_peer, ours, ours_cross, raw, tokio_local, tokio_multi, tokio_pair, uring_peer, DEPTH,
};

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

/// The cross-core contenders. Every one runs both cross-core workloads.
fn cross_contenders() -> Vec<CrossContender> {
    vec![
        // Cross-core wakes by MSG_RING, and with MSG_RING turned off.
        CrossContender::new("ours", ours_cross::run),
        CrossContender::new("ours-eventfd", ours_cross::run_eventfd),
        CrossContender::new("ours-spin", ours_cross::run_spin),
        CrossContender::new("tokio-mt", tokio_multi::run),
        CrossContender::new("tokio-2ct", tokio_pair::run),
        CrossContender::new("glommio", glommio_peer::run),
    ]
}

/// Round trips per round of the ping-pong workload at full size.
const ROUND_TRIPS: u64 = 50_000;

/// Messages per round of the channel-throughput workload at full size.
const MESSAGES: u64 = 4_000_000;

fn ping_pong_ratios() -> Vec<Ratio> {
    // Latency: `peer / ours` >= 1.0 means ours is at least as fast.
    vec![
        ratio("tokio-mt", "ours", None),
        ratio("tokio-2ct", "ours", Some(1.0)),
        ratio("glommio", "ours", Some(1.0)),
        ratio("ours-eventfd", "ours", Some(1.0)),
        ratio("tokio-2ct", "ours-spin", None),
        ratio("ours", "ours-spin", None),
        ratio("tokio-mt", "glommio", None),
        ratio("tokio-2ct", "glommio", None),
    ]
}

fn stream_ratios() -> Vec<Ratio> {
    vec![
        ratio("ours", "tokio-mt", None),
        ratio("ours", "tokio-2ct", None),
        ratio("ours", "glommio", None),
        ratio("ours", "ours-eventfd", None),
        ratio("ours-spin", "tokio-2ct", None),
        ratio("tokio-mt", "glommio", None),
        ratio("tokio-2ct", "glommio", None),
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
    let mut cross = Vec::new();
    if options.selection.cross() {
        cross = cross_contenders();
    }
    if let Some(only) = &options.only {
        for workload in &mut workloads {
            workload.contenders.retain(|c| c.name == only);
        }
        workloads.retain(|w| !w.contenders.is_empty());
        cross.retain(|c| c.name == only);
        if workloads.is_empty() && cross.is_empty() {
            eprintln!("compare: no selected workload has a contender named `{only}`");
            return ExitCode::from(2);
        }
    }
    println!(
        "compare: rounds: {} measured + {} warm-up{}",
        plan.rounds,
        plan.warmup,
        if options.quick { "; --quick" } else { "" }
    );
    let mut verdicts: Vec<Verdict> = Vec::new();
    if !workloads.is_empty() {
        println!("every run on a fresh thread pinned to CPU {}", plan.cpu);
    }
    for workload in &workloads {
        match run_workload(workload, options.quick, &plan) {
            Ok(more) => verdicts.extend(more),
            Err(err) => {
                eprintln!("compare: {}: {err}", workload.title);
                return ExitCode::FAILURE;
            }
        }
    }
    if !cross.is_empty() {
        match run_cross(&cross, options.quick, &plan) {
            Ok(more) => verdicts.extend(more),
            Err(err) => {
                eprintln!("compare: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!();
    print_verdicts(&verdicts);
    ExitCode::SUCCESS
}

fn scaled(count: u64, quick: bool) -> u64 {
    if quick {
        count / 10
    } else {
        count
    }
}

fn run_workload(workload: &Workload, quick: bool, plan: &Plan) -> io::Result<Vec<Verdict>> {
    let count = scaled(workload.count, quick);
    let counts: Vec<u64> = workload
        .contenders
        .iter()
        .map(|c| {
            let share = count / c.share;
            share - share % workload.granule
        })
        .collect();
    println!("\n{}", workload.title);
    let outcome = run_rounds(&workload.contenders, &counts, plan)?;
    let names: Vec<_> = workload.contenders.iter().map(|c| c.name).collect();
    Ok(print_workload(
        workload.title,
        workload.unit,
        &names,
        &counts,
        &outcome,
        &workload.ratios,
    ))
}

/// Runs both cross-core workloads with every contender of `contenders`.
fn run_cross(contenders: &[CrossContender], quick: bool, plan: &Plan) -> io::Result<Vec<Verdict>> {
    println!(
        "\ncross-core: endpoint A on CPU {CPU_A}, endpoint B on CPU {CPU_B}, \
         two bounded channels of {CAPACITY}"
    );
    if !cross::cpus_available() {
        println!(
            "  skipped: this machine does not let a thread run on CPU {CPU_A} and CPU {CPU_B}"
        );
        return Ok(Vec::new());
    }
    let mut verdicts = ping_pong(contenders, scaled(ROUND_TRIPS, quick), plan)?;
    verdicts.extend(stream(contenders, scaled(MESSAGES, quick), plan)?);
    Ok(verdicts)
}

fn ping_pong(
    contenders: &[CrossContender],
    round_trips: u64,
    plan: &Plan,
) -> io::Result<Vec<Verdict>> {
    let title = "cross-core ping-pong, round trip";
    println!("\n{title}");
    let job = Job::PingPong { round_trips };
    let mut outcome =
        run_cross_rounds(contenders, job, plan).map_err(|err| in_workload(title, err))?;
    let latencies = Latencies {
        rounds: outcome
            .runs
            .iter_mut()
            .map(|runs| {
                runs.iter_mut()
                    .filter_map(|run| Percentiles::of(&mut run.round_trips))
                    .collect()
            })
            .collect(),
    };
    let names: Vec<_> = contenders.iter().map(|c| c.name).collect();
    let verdicts = print_latency(
        title,
        &names,
        &vec![round_trips; contenders.len()],
        &latencies,
        &ping_pong_ratios(),
    );
    print_cross_notes(&names, &outcome);
    Ok(verdicts)
}

fn stream(contenders: &[CrossContender], messages: u64, plan: &Plan) -> io::Result<Vec<Verdict>> {
    let title = "cross-core channel throughput";
    println!("\n{title}");
    let job = Job::Stream { messages };
    let outcome = run_cross_rounds(contenders, job, plan).map_err(|err| in_workload(title, err))?;
    let rates = Outcome {
        rates: outcome
            .runs
            .iter()
            .map(|runs| {
                runs.iter()
                    .map(|run| messages as f64 / run.elapsed.as_secs_f64())
                    .collect()
            })
            .collect(),
        strays: Vec::new(),
    };
    let names: Vec<_> = contenders.iter().map(|c| c.name).collect();
    let verdicts = print_workload(
        title,
        "msgs/s",
        &names,
        &vec![messages; contenders.len()],
        &rates,
        &stream_ratios(),
    );
    print_cross_notes(&names, &outcome);
    Ok(verdicts)
}

fn in_workload(title: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{title}: {err}"))
}

/// Notes, under a cross-core table, where each contender's endpoints ran,
/// and the runs that hung.
fn print_cross_notes(names: &[&'static str], outcome: &CrossOutcome) {
    for (name, runs) in names.iter().zip(&outcome.runs) {
        print_note(&format!("{name}: {}", Whereabouts::of(runs).describe()));
    }
    for (name, hung) in names.iter().zip(&outcome.hung) {
        if *hung > 0 {
            print_note(&format!(
                "warning: {hung} `{name}` run(s) did not finish within {} s; \
                 left hanging and run again",
                HANG_AFTER.as_secs()
            ));
        }
    }
}
