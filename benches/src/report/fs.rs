//! The tables of the fs group: per contender its rate, the CPU it took per read
//! (or per GiB) and its CPU use; then each form of `runtime` against every other
//! contender and against the reference form of `runtime`.

use super::{range, si, times, Section, Table, Target, Verdict};
use crate::fs::bench::Results;
use crate::fs::{Role, Window, Workload};
use crate::measure::Spread;

/// One workload's section. `about` are the lines saying how it was run.
pub fn section(workload: Workload, about: &[String], results: &[Results]) -> Section {
    let sequential = workload == Workload::Sequential;
    let (rate_head, cost_head) = if sequential {
        ("GiB/s", "CPU-s/GiB")
    } else {
        ("reads/s", "CPU-us/read")
    };
    let rate = if sequential {
        Window::gib_per_s
    } else {
        Window::iops
    };
    let cost = if sequential {
        Window::cpu_s_per_gib
    } else {
        Window::cpu_us_per_op
    };
    let show_rate = |value: f64| {
        if sequential {
            format!("{value:.2}")
        } else {
            si(value)
        }
    };
    let mut section = Section::new(workload.title());
    for line in about {
        section.text(line.clone());
    }
    let mut figures = Table::new([
        "contender",
        rate_head,
        "min - max",
        cost_head,
        "min - max",
        "CPU",
    ]);
    let mut failures = Vec::new();
    for result in results {
        let name = result.contender.name;
        let runs = &result.runs;
        if let (Some(r), Some(c), Some(busy)) = (
            Spread::of(&figures_of(runs, rate)),
            Spread::of(&figures_of(runs, cost)),
            Spread::of(&figures_of(runs, Window::utilisation)),
        ) {
            figures.row([
                name.to_string(),
                show_rate(r.median),
                range(r, show_rate),
                format!("{:.3}", c.median),
                range(c, |c| format!("{c:.3}")),
                format!("{:.0}%", 100.0 * busy.median),
            ]);
        }
        if let Some(failure) = &result.failure {
            let after = if runs.is_empty() {
                String::new()
            } else {
                format!(" (after {} good rounds)", runs.len())
            };
            failures.push(format!("{name}: not measured: {failure}{after}"));
        }
    }
    section.table(figures);
    for failure in failures {
        section.note(failure);
    }
    let reference = if sequential { "ours-qd1" } else { "ours-fixed" };
    let mut ratios = Table::new([
        "ratio (median of rounds, min - max)".to_string(),
        rate_head.to_string(),
        format!("CPU per {}", if sequential { "GiB" } else { "read" }),
        "target".to_string(),
    ]);
    for ours in results.iter().filter(|r| r.contender.role == Role::Ours) {
        for other in results {
            let versus_peer = other.contender.role != Role::Ours;
            let versus_reference =
                other.contender.name == reference && ours.contender.name != reference;
            if !(versus_peer || versus_reference) {
                continue;
            }
            let per_round = |figure: fn(&Window) -> f64| {
                let ratios: Vec<f64> = ours
                    .runs
                    .iter()
                    .zip(&other.runs)
                    .map(|(a, b)| figure(a) / figure(b))
                    .collect();
                Spread::of(&ratios)
            };
            let (Some(r), Some(c)) = (per_round(rate), per_round(cost)) else {
                continue;
            };
            let label = format!("{} / {}", ours.contender.name, other.contender.name);
            let mut verdict_cell = String::new();
            if let Some(target) = target(workload, ours.contender.name, other.contender.name) {
                verdict_cell = target.cell_for(rate_head, r.median);
                section.verdicts.push(Verdict {
                    what: format!("{}: {label}, {rate_head}", workload.title()),
                    value: r.median,
                    target,
                });
            }
            ratios.row([label, times(r), times(c), verdict_cell]);
        }
    }
    section.table(ratios);
    section
}

/// The project's targets for file reads, on the reads per second of
/// `ours / other`: at queue depth 32 with fixed buffers, at least 0.95x fio and
/// 5x what `tokio::fs` does (`spawn_blocking`).
fn target(workload: Workload, ours: &str, other: &str) -> Option<Target> {
    match (workload, ours, other) {
        (Workload::Random { depth: 32 }, "ours-fixed", "fio") => Some(Target::at_least(0.95)),
        (Workload::Random { depth: 32 }, "ours-fixed", "tokio(spawn_blocking)") => {
            Some(Target::at_least(5.0))
        }
        _ => None,
    }
}

fn figures_of(runs: &[Window], figure: fn(&Window) -> f64) -> Vec<f64> {
    runs.iter().map(figure).collect()
}

#[cfg(test)]
mod tests {
    use super::target;
    use crate::fs::Workload;

    #[test]
    fn targets_at_queue_depth_32_with_fixed_buffers() {
        let qd32 = Workload::Random { depth: 32 };
        assert_eq!(target(qd32, "ours-fixed", "fio").unwrap().limit, 0.95);
        assert_eq!(
            target(qd32, "ours-fixed", "tokio(spawn_blocking)")
                .unwrap()
                .limit,
            5.0
        );
        assert!(target(qd32, "ours-plain", "fio").is_none());
        assert!(target(Workload::Random { depth: 1 }, "ours-fixed", "fio").is_none());
        assert!(target(Workload::Sequential, "ours-qd1", "std").is_none());
    }
}
