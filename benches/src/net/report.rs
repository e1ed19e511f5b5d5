//! The tables `netbench` prints: per contender its throughput, the server CPU
//! it took per million operations and its CPU use; then, for each form of
//! `runtime`, its ratios to the ceiling and to each peer, the issue's targets
//! checked against them.
//!
//! Ratios are taken round by round (contender A's figure in round r over B's
//! in the same round, runs made under the same conditions) and reported as the
//! median of those.

use super::bench::{Results, Workload};
use super::{Contender, Role, Window};
use crate::measure::Spread;
use crate::report::si;

/// The part of the issue a ratio is held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Server CPU per operation, ours over the other, at most this.
    CpuPerOpAtMost(f64),
    /// Operations per server CPU-second, ours over the other, at least this.
    OpsPerCpuAtLeast(f64),
}

impl Target {
    /// The target the issue sets for `ours` against `other`.
    pub fn against(other: &str, role: Role) -> Option<Target> {
        match (role, other) {
            (Role::Ceiling, _) => Some(Target::CpuPerOpAtMost(1.10)),
            (Role::Peer, "tokio-ct") => Some(Target::CpuPerOpAtMost(1.0)),
            (Role::Peer, _) => Some(Target::OpsPerCpuAtLeast(1.25)),
            (Role::Ours, _) => None,
        }
    }

    /// The target of `ours` against `other`: like is held to like, so a hyper
    /// server only to hyper on a peer (at least as many requests per CPU-second),
    /// and a hand-written one to the targets of [`against`](Target::against).
    pub fn between(ours: &Contender, other: &Contender) -> Option<Target> {
        match (ours.hyper, other.hyper) {
            (false, false) => Target::against(other.name, other.role),
            (true, true) if other.role == Role::Peer => Some(Target::OpsPerCpuAtLeast(1.0)),
            _ => None,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::CpuPerOpAtMost(limit) => format!("CPU per {unit} <= {limit:.2}x"),
            Target::OpsPerCpuAtLeast(least) => format!("{unit}s per CPU-s >= {least:.2}x"),
        }
    }
}

/// A ratio held to a target, and whether its median met it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Workload and ratio, e.g. `echo, 64 B messages: ours / raw`.
    pub what: String,
    /// The target, in words.
    pub target: String,
    /// Median of the per-round ratios the target is about.
    pub value: f64,
    /// Whether the target was met.
    pub met: bool,
}

/// Prints one workload's table and returns the verdicts of its targets.
pub fn print_workload(workload: Workload, results: &[Results]) -> Vec<Verdict> {
    let unit = workload.unit();
    println!(
        "  {:<15} {:>12}  {:<21} {:>15}  {:<13} {:>10}",
        "contender",
        format!("{unit}s/s"),
        "min - max",
        format!("CPU-s/M {unit}s"),
        "min - max",
        "server CPU"
    );
    for result in results {
        let name = result.contender.name;
        let runs = &result.runs;
        let rates = Spread::of(&figures(runs, Window::rate));
        let cpu = Spread::of(&figures(runs, Window::cpu_per_million));
        let busy = Spread::of(&figures(runs, Window::utilisation));
        if let (Some(rates), Some(cpu), Some(busy)) = (rates, cpu, busy) {
            println!(
                "  {name:<15} {:>12}  {:<21} {:>15.3}  {:<13} {:>9.0}%",
                si(rates.median),
                format!("{} - {}", si(rates.min), si(rates.max)),
                cpu.median,
                format!("{:.3} - {:.3}", cpu.min, cpu.max),
                100.0 * busy.median
            );
        }
        if let Some(failure) = &result.failure {
            let rounds = if runs.is_empty() {
                String::new()
            } else {
                format!(" (after {} good rounds)", runs.len())
            };
            println!("  {name:<15} {failure}{rounds}");
        }
    }
    for note in results.iter().flat_map(|r| &r.notes) {
        println!("  note: {note}");
    }
    let mut verdicts = Vec::new();
    for ours in results.iter().filter(|r| r.contender.role == Role::Ours) {
        if ours.runs.is_empty() {
            continue;
        }
        println!(
            "\n  {:<30} {:>20}  {:>17}  {:>14}  target",
            "ratio (median, min - max)",
            format!("CPU per {unit}"),
            format!("{unit}s per CPU-s"),
            format!("{unit}s/s"),
        );
        // Every other contender, and for a hyper server also the hand-written forms of
        // `runtime`: what hyper costs over them.
        let others = results.iter().filter(|r| {
            r.contender.role != Role::Ours || (ours.contender.hyper && !r.contender.hyper)
        });
        for other in others {
            let rounds: Vec<(&Window, &Window)> = ours.runs.iter().zip(&other.runs).collect();
            let ratio = |figure: fn(&Window) -> f64| {
                let per_round: Vec<f64> =
                    rounds.iter().map(|(a, b)| figure(a) / figure(b)).collect();
                Spread::of(&per_round)
            };
            let (Some(cpu), Some(efficiency), Some(rate)) = (
                ratio(Window::cpu_per_million),
                ratio(Window::per_cpu_second),
                ratio(Window::rate),
            ) else {
                continue;
            };
            let label = format!("{} / {}", ours.contender.name, other.contender.name);
            let mut line = format!(
                "  {label:<30} {:>20}  {:>17}  {:>14}",
                format!("{:.2}x ({:.2} - {:.2})", cpu.median, cpu.min, cpu.max),
                format!("{:.2}x", efficiency.median),
                format!("{:.2}x", rate.median),
            );
            if let Some(target) = Target::between(&ours.contender, &other.contender) {
                let (value, met) = match target {
                    Target::CpuPerOpAtMost(limit) => (cpu.median, cpu.median <= limit),
                    Target::OpsPerCpuAtLeast(least) => {
                        (efficiency.median, efficiency.median >= least)
                    }
                };
                let word = if met { "met" } else { "MISSED" };
                let target = target.describe(unit);
                line.push_str(&format!("  {target}: {word}"));
                verdicts.push(Verdict {
                    what: format!("{}: {label}", workload.title()),
                    target,
                    value,
                    met,
                });
            }
            println!("{}", line.trim_end());
        }
    }
    verdicts
}

/// Prints how many targets were met, and which were missed.
pub fn print_verdicts(verdicts: &[Verdict]) {
    if verdicts.is_empty() {
        println!("no target could be checked (no form of `runtime` was measured)");
        return;
    }
    let met = verdicts.iter().filter(|v| v.met).count();
    println!("targets met: {met} of {}", verdicts.len());
    for verdict in verdicts.iter().filter(|v| !v.met) {
        println!(
            "  MISSED: {} = {:.2}x, target {}",
            verdict.what, verdict.value, verdict.target
        );
    }
}

fn figures(runs: &[Window], figure: fn(&Window) -> f64) -> Vec<f64> {
    runs.iter().map(figure).collect()
}

#[cfg(test)]
mod tests {
    use super::Target;
    use crate::net::{contenders, Protocol, Role};

    #[test]
    fn targets_of_the_issue() {
        assert_eq!(
            Target::against("raw", Role::Ceiling),
            Some(Target::CpuPerOpAtMost(1.10))
        );
        assert_eq!(
            Target::against("tokio-ct", Role::Peer),
            Some(Target::CpuPerOpAtMost(1.0))
        );
        assert_eq!(
            Target::against("monoio", Role::Peer),
            Some(Target::OpsPerCpuAtLeast(1.25))
        );
        assert_eq!(Target::against("ours", Role::Ours), None);
    }

    #[test]
    fn hyper_is_held_to_hyper_only() {
        let all = contenders(Protocol::Http);
        let named = |name: &str| *all.iter().find(|c| c.name == name).unwrap();
        let (hyper_ours, hyper_peer) = (named("hyper-ours"), named("hyper-tokio-ct"));
        let (ours, tokio) = (named("ours"), named("tokio-ct"));
        assert_eq!(
            Target::between(&hyper_ours, &hyper_peer),
            Some(Target::OpsPerCpuAtLeast(1.0))
        );
        assert_eq!(Target::between(&hyper_ours, &tokio), None);
        assert_eq!(Target::between(&hyper_ours, &ours), None);
        assert_eq!(Target::between(&ours, &hyper_peer), None);
        assert_eq!(
            Target::between(&ours, &tokio),
            Some(Target::CpuPerOpAtMost(1.0))
        );
    }
}
