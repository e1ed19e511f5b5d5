//! The in-process groups: `nop` and `spawn` (every run on a fresh thread pinned to
//! one CPU) and `cross` (one endpoint on CPU 0, the other on CPU 1). Every
//! contender of a workload runs in this process, interleaved over rounds.

use std::io;

use crate::cross::{
    self, run_cross_rounds, CrossContender, CrossOutcome, Job, Whereabouts, CAPACITY, CPU_A, CPU_B,
    HANG_AFTER,
};
use crate::latency::{Latencies, Percentiles};
use crate::measure::{run_rounds, Contender, Outcome, Plan};
use crate::options::{Group, Options};
use crate::report::compare::{latency, throughput, Ratio};
use crate::report::{GroupReport, Section};
use crate::{
    glommio_peer, ours, ours_cross, raw, tokio_local, tokio_multi, tokio_pair, uring_peer, DEPTH,
};

/// Measured rounds when `--rounds` is not given.
pub const ROUNDS: usize = 5;

/// Rounds run first and thrown away.
pub const WARMUP: usize = 1;

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

fn nop_workloads() -> Vec<Workload> {
    // tokio-uring is several times slower: it does a fifth of the ops so its
    // rounds take about as long as the others'.
    let qd1 = vec![
        Contender::new("raw", raw::nop_qd1),
        Contender::new("ours", ours::nop_qd1),
        Contender::new("ours-untimed", ours::nop_qd1_untimed),
        Contender::new("tokio-uring", uring_peer::nop_qd1).doing_one_in(5),
    ];
    let qd64 = vec![
        Contender::new("raw", raw::nop_qd64),
        Contender::new("ours", ours::nop_qd64),
        Contender::new("ours-untimed", ours::nop_qd64_untimed),
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
                Ratio::new("ours", "raw", Some(0.8)),
                Ratio::new("ours", "ours-untimed", Some(0.95)),
                Ratio::new("ours", "tokio-uring", None),
                Ratio::new("tokio-uring", "raw", None),
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
                Ratio::new("ours", "raw", Some(0.8)),
                Ratio::new("ours", "ours-untimed", Some(0.95)),
                Ratio::new("ours", "tokio-uring", Some(2.0)),
                Ratio::new("tokio-uring", "raw", None),
            ],
        },
    ]
}

fn spawn_workloads() -> Vec<Workload> {
    let all = vec![
        Contender::new("ours", ours::spawn_all),
        Contender::new("ours-untimed", ours::spawn_all_untimed),
        Contender::new("tokio", tokio_local::spawn_all),
    ];
    let batched = vec![
        Contender::new("ours", ours::spawn_batched),
        Contender::new("ours-untimed", ours::spawn_batched_untimed),
        Contender::new("tokio", tokio_local::spawn_batched),
    ];
    vec![
        Workload {
            title: "spawn + join, all spawned then awaited",
            unit: "tasks/s",
            count: 1_000_000,
            granule: 1,
            contenders: all,
            ratios: vec![
                Ratio::new("ours", "tokio", Some(1.0)),
                Ratio::new("ours", "ours-untimed", Some(0.95)),
            ],
        },
        Workload {
            title: "spawn + join, in batches of 1,000",
            unit: "tasks/s",
            count: 3_000_000,
            granule: 1,
            contenders: batched,
            ratios: vec![
                Ratio::new("ours", "tokio", Some(1.0)),
                Ratio::new("ours", "ours-untimed", Some(0.95)),
            ],
        },
    ]
}

/// The cross-core contenders. Every one runs both cross-core workloads.
pub fn cross_contenders() -> Vec<CrossContender> {
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
        Ratio::new("tokio-mt", "ours", None),
        Ratio::new("tokio-2ct", "ours", Some(1.0)),
        Ratio::new("glommio", "ours", Some(1.0)),
        Ratio::new("ours-eventfd", "ours", Some(1.0)),
        Ratio::new("tokio-2ct", "ours-spin", None),
        Ratio::new("ours", "ours-spin", None),
        Ratio::new("tokio-mt", "glommio", None),
        Ratio::new("tokio-2ct", "glommio", None),
    ]
}

fn stream_ratios() -> Vec<Ratio> {
    vec![
        Ratio::new("ours", "tokio-mt", None),
        Ratio::new("ours", "tokio-2ct", None),
        Ratio::new("ours", "glommio", None),
        Ratio::new("ours", "ours-eventfd", None),
        Ratio::new("ours-spin", "tokio-2ct", None),
        Ratio::new("tokio-mt", "glommio", None),
        Ratio::new("tokio-2ct", "glommio", None),
    ]
}

/// Runs `group` (nop, spawn or cross) as `options` say, into `report`.
pub fn run_group(group: Group, options: &Options, report: &mut GroupReport) {
    let plan = Plan {
        rounds: options.rounds_or(ROUNDS),
        warmup: WARMUP,
        cpu: options.cpu,
    };
    report.about(format!(
        "rounds: {} measured + {} warm-up, contenders interleaved, the order rotating; \
         medians of the rounds, ratios taken round by round{}",
        plan.rounds,
        plan.warmup,
        if options.quick {
            "; --quick: a tenth of the work per round"
        } else {
            ""
        }
    ));
    match group {
        Group::Cross => {
            let mut contenders = cross_contenders();
            contenders.retain(|c| options.runs(c.name));
            run_cross(&contenders, options.quick, &plan, report);
        }
        _ => {
            let mut workloads = if group == Group::Nop {
                nop_workloads()
            } else {
                spawn_workloads()
            };
            for workload in &mut workloads {
                workload.contenders.retain(|c| options.runs(c.name));
            }
            workloads.retain(|w| !w.contenders.is_empty());
            report.about(format!(
                "every run on a fresh thread pinned to CPU {}; only the workload is timed, \
                 not building or dropping the runtime",
                plan.cpu
            ));
            for workload in &workloads {
                if let Err(err) = run_workload(workload, options.quick, &plan, report) {
                    report.fail(format!("{}: {err}", workload.title));
                    return;
                }
            }
        }
    }
}

fn scaled(count: u64, quick: bool) -> u64 {
    if quick {
        count / 10
    } else {
        count
    }
}

fn run_workload(
    workload: &Workload,
    quick: bool,
    plan: &Plan,
    report: &mut GroupReport,
) -> io::Result<()> {
    let count = scaled(workload.count, quick);
    let counts: Vec<u64> = workload
        .contenders
        .iter()
        .map(|c| {
            let share = count / c.share;
            share - share % workload.granule
        })
        .collect();
    eprintln!("{} ...", workload.title);
    let outcome = run_rounds(&workload.contenders, &counts, plan)?;
    let names: Vec<_> = workload.contenders.iter().map(|c| c.name).collect();
    report.section(throughput(
        workload.title,
        workload.unit,
        &names,
        &counts,
        &outcome,
        &workload.ratios,
    ));
    Ok(())
}

/// Runs both cross-core workloads with every contender of `contenders`.
fn run_cross(contenders: &[CrossContender], quick: bool, plan: &Plan, report: &mut GroupReport) {
    report.about(format!(
        "endpoint A on CPU {CPU_A}, endpoint B on CPU {CPU_B}, two bounded channels of \
         {CAPACITY}; each run on a new thread, the contenders placing their endpoints"
    ));
    if !cross::cpus_available() {
        report.skip(format!(
            "this machine does not let a thread run on CPU {CPU_A} and CPU {CPU_B}"
        ));
        return;
    }
    let result = ping_pong(contenders, scaled(ROUND_TRIPS, quick), plan)
        .map(|section| report.section(section))
        .and_then(|()| stream(contenders, scaled(MESSAGES, quick), plan))
        .map(|section| report.section(section));
    if let Err(err) = result {
        report.fail(err.to_string());
    }
}

fn ping_pong(contenders: &[CrossContender], round_trips: u64, plan: &Plan) -> io::Result<Section> {
    let title = "cross-core ping-pong, round trip";
    eprintln!("{title} ...");
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
    let mut section = latency(
        title,
        &names,
        &vec![round_trips; contenders.len()],
        &latencies,
        &ping_pong_ratios(),
    );
    cross_notes(&mut section, &names, &outcome);
    Ok(section)
}

fn stream(contenders: &[CrossContender], messages: u64, plan: &Plan) -> io::Result<Section> {
    let title = "cross-core channel throughput";
    eprintln!("{title} ...");
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
    let mut section = throughput(
        title,
        "msgs/s",
        &names,
        &vec![messages; contenders.len()],
        &rates,
        &stream_ratios(),
    );
    cross_notes(&mut section, &names, &outcome);
    Ok(section)
}

fn in_workload(title: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{title}: {err}"))
}

/// Notes, under a cross-core table, where each contender's endpoints ran, and
/// the runs that hung.
fn cross_notes(section: &mut Section, names: &[&'static str], outcome: &CrossOutcome) {
    for (name, runs) in names.iter().zip(&outcome.runs) {
        section.note(format!("{name}: {}", Whereabouts::of(runs).describe()));
    }
    for (name, hung) in names.iter().zip(&outcome.hung) {
        if *hung > 0 {
            section.note(format!(
                "warning: {hung} `{name}` run(s) did not finish within {} s; \
                 left hanging and run again",
                HANG_AFTER.as_secs()
            ));
        }
    }
}
