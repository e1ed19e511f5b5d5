//! The tables `fsbench` prints: per contender its rate, the CPU it took per
//! read (or per GiB) and its CPU use; then each form of `runtime` against
//! every other contender and against the reference form of `runtime`.
//!
//! Ratios are taken round by round (A's figure in round r over B's in the
//! same round, runs made under the same conditions) and reported as the
//! median of those, with the smallest and largest.

use super::bench::Results;
use super::{Role, Window, Workload};
use crate::measure::Spread;
use crate::report::si;

/// Prints one workload's table and its ratios.
pub fn print_workload(workload: Workload, results: &[Results]) {
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
    println!(
        "  {:<22} {:>10}  {:<19} {:>11}  {:<15} {:>5}",
        "contender", rate_head, "min - max", cost_head, "min - max", "CPU"
    );
    for result in results {
        let name = result.contender.name;
        let runs = &result.runs;
        if let (Some(r), Some(c), Some(busy)) = (
            Spread::of(&figures(runs, rate)),
            Spread::of(&figures(runs, cost)),
            Spread::of(&figures(runs, Window::utilisation)),
        ) {
            println!(
                "  {name:<22} {:>10}  {:<19} {:>11.3}  {:<15} {:>4.0}%",
                show_rate(r.median),
                format!("{} - {}", show_rate(r.min), show_rate(r.max)),
                c.median,
                format!("{:.3} - {:.3}", c.min, c.max),
                100.0 * busy.median
            );
        }
        if let Some(failure) = &result.failure {
            let after = if runs.is_empty() {
                String::new()
            } else {
                format!(" (after {} good rounds)", runs.len())
            };
            println!("  {name:<22} not measured: {failure}{after}");
        }
    }
    let reference = if sequential { "ours-qd1" } else { "ours-fixed" };
    let mut header = false;
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
            if !header {
                println!(
                    "\n  {:<40} {:>22}  {:>22}",
                    "ratio (median of rounds, min - max)",
                    rate_head,
                    format!("CPU per {}", if sequential { "GiB" } else { "read" })
                );
                header = true;
            }
            println!(
                "  {:<40} {:>22}  {:>22}",
                format!("{} / {}", ours.contender.name, other.contender.name),
                format!("{:.2}x ({:.2} - {:.2})", r.median, r.min, r.max),
                format!("{:.2}x ({:.2} - {:.2})", c.median, c.min, c.max),
            );
        }
    }
}

fn figures(runs: &[Window], figure: fn(&Window) -> f64) -> Vec<f64> {
    runs.iter().map(figure).collect()
}
