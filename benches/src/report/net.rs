//! The tables of the net group: per contender its throughput, the server CPU it
//! took per million operations and its CPU use; then, for each form of
//! `runtime`, its ratios to the ceiling and to each peer, the project's targets
//! checked against them.

use super::{range, si, Section, Table, Target, Verdict};
use crate::measure::Spread;
use crate::net::bench::{Results, Workload};
use crate::net::{Contender, Role, Window};

/// The figure a target of the net group is about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NetTarget {
    /// Server CPU per operation, ours over the other, at most this.
    CpuPerOpAtMost(f64),
    /// Operations per server CPU-second, ours over the other, at least this.
    OpsPerCpuAtLeast(f64),
}

impl NetTarget {
    /// The target the project sets for `ours` against `other`.
    pub fn against(other: &str, role: Role) -> Option<NetTarget> {
        match (role, other) {
            (Role::Ceiling, _) => Some(NetTarget::CpuPerOpAtMost(1.10)),
            (Role::Peer, "tokio-ct") => Some(NetTarget::CpuPerOpAtMost(1.0)),
            (Role::Peer, _) => Some(NetTarget::OpsPerCpuAtLeast(1.25)),
            (Role::Ours, _) => None,
        }
    }

    /// The target of `ours` against `other`: like is held to like, so a hyper
    /// server only to hyper on a peer (at least as many requests per CPU-second),
    /// and a hand-written one to the targets of [`against`](NetTarget::against).
    pub fn between(ours: &Contender, other: &Contender) -> Option<NetTarget> {
        match (ours.hyper, other.hyper) {
            (false, false) => NetTarget::against(other.name, other.role),
            (true, true) if other.role == Role::Peer => Some(NetTarget::OpsPerCpuAtLeast(1.0)),
            _ => None,
        }
    }

    fn target(self) -> Target {
        match self {
            NetTarget::CpuPerOpAtMost(limit) => Target::at_most(limit),
            NetTarget::OpsPerCpuAtLeast(least) => Target::at_least(least),
        }
    }

    fn figure(self, unit: &str) -> String {
        match self {
            NetTarget::CpuPerOpAtMost(_) => format!("CPU per {unit}"),
            NetTarget::OpsPerCpuAtLeast(_) => format!("{unit}s per CPU-s"),
        }
    }
}

/// One workload's section: its table, its ratios and the verdicts of its
/// targets. `about` are the lines saying how it was loaded.
pub fn section(workload: Workload, about: &[String], results: &[Results]) -> Section {
    let unit = workload.unit();
    let mut section = Section::new(workload.title());
    for line in about {
        section.text(line.clone());
    }
    let mut figures = Table::new([
        "contender".to_string(),
        format!("{unit}s/s"),
        "min - max".to_string(),
        format!("CPU-s/M {unit}s"),
        "min - max".to_string(),
        "server CPU".to_string(),
    ]);
    let mut failures = Vec::new();
    for result in results {
        let name = result.contender.name;
        let runs = &result.runs;
        let rates = Spread::of(&figures_of(runs, Window::rate));
        let cpu = Spread::of(&figures_of(runs, Window::cpu_per_million));
        let busy = Spread::of(&figures_of(runs, Window::utilisation));
        if let (Some(rates), Some(cpu), Some(busy)) = (rates, cpu, busy) {
            figures.row([
                name.to_string(),
                si(rates.median),
                range(rates, si),
                format!("{:.3}", cpu.median),
                range(cpu, |c| format!("{c:.3}")),
                format!("{:.0}%", 100.0 * busy.median),
            ]);
        }
        if let Some(failure) = &result.failure {
            let rounds = if runs.is_empty() {
                String::new()
            } else {
                format!(" (after {} good rounds)", runs.len())
            };
            failures.push(format!("{name}: {failure}{rounds}"));
        }
    }
    section.table(figures);
    for failure in failures {
        section.note(failure);
    }
    for note in results.iter().flat_map(|r| &r.notes) {
        section.note(note.clone());
    }
    for ours in results.iter().filter(|r| r.contender.role == Role::Ours) {
        if ours.runs.is_empty() {
            continue;
        }
        let mut ratios = Table::new([
            "ratio (median, min - max)".to_string(),
            format!("CPU per {unit}"),
            format!("{unit}s per CPU-s"),
            format!("{unit}s/s"),
            "target".to_string(),
        ]);
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
            let mut verdict_cell = String::new();
            if let Some(net_target) = NetTarget::between(&ours.contender, &other.contender) {
                let value = match net_target {
                    NetTarget::CpuPerOpAtMost(_) => cpu.median,
                    NetTarget::OpsPerCpuAtLeast(_) => efficiency.median,
                };
                let figure = net_target.figure(unit);
                let target = net_target.target();
                verdict_cell = target.cell_for(&figure, value);
                section.verdicts.push(Verdict {
                    what: format!("{}: {label}, {figure}", workload.title()),
                    value,
                    target,
                });
            }
            ratios.row([
                label,
                format!("{:.2}x ({:.2} - {:.2})", cpu.median, cpu.min, cpu.max),
                format!("{:.2}x", efficiency.median),
                format!("{:.2}x", rate.median),
                verdict_cell,
            ]);
        }
        section.table(ratios);
    }
    section
}

fn figures_of(runs: &[Window], figure: fn(&Window) -> f64) -> Vec<f64> {
    runs.iter().map(figure).collect()
}

#[cfg(test)]
mod tests {
    use super::NetTarget;
    use crate::net::{contenders, Protocol, Role};

    #[test]
    fn targets_of_the_project() {
        assert_eq!(
            NetTarget::against("raw", Role::Ceiling),
            Some(NetTarget::CpuPerOpAtMost(1.10))
        );
        assert_eq!(
            NetTarget::against("tokio-ct", Role::Peer),
            Some(NetTarget::CpuPerOpAtMost(1.0))
        );
        assert_eq!(
            NetTarget::against("monoio", Role::Peer),
            Some(NetTarget::OpsPerCpuAtLeast(1.25))
        );
        assert_eq!(NetTarget::against("ours", Role::Ours), None);
    }

    #[test]
    fn hyper_is_held_to_hyper_only() {
        let all = contenders(Protocol::Http);
        let named = |name: &str| *all.iter().find(|c| c.name == name).unwrap();
        let (hyper_ours, hyper_peer) = (named("hyper-ours"), named("hyper-tokio-ct"));
        let (ours, tokio) = (named("ours"), named("tokio-ct"));
        assert_eq!(
            NetTarget::between(&hyper_ours, &hyper_peer),
            Some(NetTarget::OpsPerCpuAtLeast(1.0))
        );
        assert_eq!(NetTarget::between(&hyper_ours, &tokio), None);
        assert_eq!(NetTarget::between(&hyper_ours, &ours), None);
        assert_eq!(NetTarget::between(&ours, &hyper_peer), None);
        assert_eq!(
            NetTarget::between(&ours, &tokio),
            Some(NetTarget::CpuPerOpAtMost(1.0))
        );
    }
}
