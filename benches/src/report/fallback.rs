//! The tables of the fallback group: per contender its rate, the CPU it took
//! per operation and per CPU-second; then `ours-epoll` against the tokio peer
//! and against `ours-uring`, and `ours-uring` against the peer, as medians of
//! the per-round ratios and round by round.

use super::{range, si, times, Section, Table, Target, Verdict};
use crate::measure::Spread;

/// What one run of a contender came to, reduced to the figures compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Operations (or GiB) per second.
    pub rate: f64,
    /// CPU per operation (or per GiB), in [`Figures::cost`]'s unit.
    pub cost: f64,
    /// Operations (or GiB) per CPU-second.
    pub per_cpu: f64,
    /// CPU time over wall-clock time.
    pub busy: f64,
}

/// A contender's runs, one point per round in round order.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Its name.
    pub name: String,
    /// One point per good round.
    pub points: Vec<Point>,
    /// Why it stopped, if it did.
    pub failure: Option<String>,
}

impl Measured {
    /// One contender's rounds, each made a point by `point`; a failure is also
    /// reported in `report`, under `title`.
    pub fn of<W>(
        title: &str,
        report: &mut crate::report::GroupReport,
        name: &str,
        runs: &[W],
        failure: &Option<String>,
        point: impl Fn(&W) -> Point,
    ) -> Measured {
        if let Some(failure) = failure {
            report.fail(format!("{title}: {name}: {failure}"));
        }
        Measured {
            name: name.to_string(),
            points: runs.iter().map(point).collect(),
            failure: failure.clone(),
        }
    }
}

/// How a workload's figures are headed and shown.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// One operation: `req`, `msg`, `read`, `GiB`.
    pub op: &'static str,
    /// The rate's heading: `req/s`.
    pub rate: &'static str,
    /// The cost's heading: `CPU-us/req`.
    pub cost: &'static str,
    /// The efficiency's heading: `reqs/CPU-s`.
    pub per_cpu: &'static str,
    /// Shows a rate or an efficiency.
    pub show: fn(f64) -> String,
}

impl Figures {
    /// A workload counted in operations called `op`.
    pub const fn counted(
        op: &'static str,
        rate: &'static str,
        cost: &'static str,
        per_cpu: &'static str,
    ) -> Figures {
        Figures {
            op,
            rate,
            cost,
            per_cpu,
            show: si,
        }
    }

    /// A workload counted in GiB.
    pub const GIB: Figures = Figures {
        op: "GiB",
        rate: "GiB/s",
        cost: "CPU-s/GiB",
        per_cpu: "GiB/CPU-s",
        show: two_places,
    };
}

fn two_places(value: f64) -> String {
    format!("{value:.2}")
}

/// The contenders' names: the epoll backend, the io_uring one, the peer.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// `runtime` on epoll.
    pub epoll: &'a str,
    /// `runtime` on io_uring.
    pub uring: &'a str,
    /// The tokio peer.
    pub peer: &'a str,
}

impl Names<'_> {
    /// The pairs compared, top over bottom.
    fn pairs(&self) -> [(&str, &str); 3] {
        [
            (self.epoll, self.peer),
            (self.epoll, self.uring),
            (self.uring, self.peer),
        ]
    }
}

/// One workload's section. `about` are the lines saying how it was run;
/// `target`, if any, holds the CPU per operation of `epoll / peer` to a limit.
pub fn section(
    title: &str,
    about: &[String],
    figures: Figures,
    names: Names<'_>,
    measured: &[Measured],
    target: Option<Target>,
) -> Section {
    let mut section = Section::new(title);
    for line in about {
        section.text(line.clone());
    }
    let show = figures.show;
    let mut table = Table::new([
        "contender",
        figures.rate,
        "min - max",
        figures.cost,
        "min - max",
        figures.per_cpu,
        "CPU",
    ]);
    let mut failures = Vec::new();
    for contender in measured {
        let of = |figure: fn(&Point) -> f64| {
            Spread::of(&contender.points.iter().map(figure).collect::<Vec<_>>())
        };
        if let (Some(rate), Some(cost), Some(per_cpu), Some(busy)) = (
            of(|p| p.rate),
            of(|p| p.cost),
            of(|p| p.per_cpu),
            of(|p| p.busy),
        ) {
            table.row([
                contender.name.clone(),
                show(rate.median),
                range(rate, show),
                format!("{:.3}", cost.median),
                range(cost, |c| format!("{c:.3}")),
                show(per_cpu.median),
                format!("{:.0}%", 100.0 * busy.median),
            ]);
        }
        if let Some(failure) = &contender.failure {
            let after = if contender.points.is_empty() {
                String::new()
            } else {
                format!(" (after {} good rounds)", contender.points.len())
            };
            failures.push(format!("{}: {failure}{after}", contender.name));
        }
    }
    section.table(table);
    for failure in failures {
        section.note(failure);
    }

    let find = |name: &str| measured.iter().find(|m| m.name == name);
    let cost_figure = format!("CPU per {}", figures.op);
    let mut ratios = Table::new([
        "ratio (median of rounds, min - max)".to_string(),
        cost_figure.clone(),
        figures.per_cpu.to_string(),
        figures.rate.to_string(),
        "target".to_string(),
    ]);
    let rounds = measured.iter().map(|m| m.points.len()).max().unwrap_or(0);
    let mut header = vec!["per round".to_string()];
    header.extend((1..=rounds).map(|r| r.to_string()));
    header.push("median".to_string());
    let mut per_round_table = Table::new(header);
    for (index, (top, bottom)) in names.pairs().into_iter().enumerate() {
        let (Some(a), Some(b)) = (find(top), find(bottom)) else {
            continue;
        };
        let per_round = |figure: fn(&Point) -> f64| -> Vec<f64> {
            a.points
                .iter()
                .zip(&b.points)
                .map(|(x, y)| figure(x) / figure(y))
                .collect()
        };
        let (cost, per_cpu, rate) = (
            per_round(|p| p.cost),
            per_round(|p| p.per_cpu),
            per_round(|p| p.rate),
        );
        let (Some(cost_spread), Some(per_cpu_spread), Some(rate_spread)) =
            (Spread::of(&cost), Spread::of(&per_cpu), Spread::of(&rate))
        else {
            continue;
        };
        let label = format!("{top} / {bottom}");
        let mut verdict_cell = String::new();
        if let (0, Some(target)) = (index, target) {
            verdict_cell = target.cell_for(&cost_figure, cost_spread.median);
            section.verdicts.push(Verdict {
                what: format!("{title}: {label}, {cost_figure}"),
                value: cost_spread.median,
                target,
            });
        }
        ratios.row([
            label.clone(),
            times(cost_spread),
            times(per_cpu_spread),
            times(rate_spread),
            verdict_cell,
        ]);
        for (figure, values, spread) in [
            (&cost_figure, &cost, cost_spread),
            (&figures.rate.to_string(), &rate, rate_spread),
        ] {
            let mut row = vec![format!("{label}, {figure}")];
            row.extend(values.iter().map(|v| format!("{v:.2}")));
            row.resize(rounds + 1, String::new());
            row.push(format!("{:.2}x", spread.median));
            per_round_table.row(row);
        }
    }
    section.table(ratios);
    section.table(per_round_table);
    section
}

#[cfg(test)]
mod tests {
    use super::{section, Figures, Measured, Names, Point};
    use crate::report::{Block, Target};

    fn point(rate: f64, cost: f64) -> Point {
        Point {
            rate,
            cost,
            per_cpu: 1e6 / cost,
            busy: 1.0,
        }
    }

    #[test]
    fn ratios_are_per_round_and_the_target_is_on_epoll_over_the_peer() {
        let measured = vec![
            Measured {
                name: "ours-epoll".to_string(),
                points: vec![point(100.0, 12.0), point(90.0, 10.0), point(80.0, 30.0)],
                failure: None,
            },
            Measured {
                name: "tokio-ct".to_string(),
                points: vec![point(100.0, 10.0), point(100.0, 10.0), point(100.0, 20.0)],
                failure: None,
            },
            Measured {
                name: "ours-uring".to_string(),
                points: vec![point(200.0, 6.0)],
                failure: Some("failed: gone".to_string()),
            },
        ];
        let names = Names {
            epoll: "ours-epoll",
            uring: "ours-uring",
            peer: "tokio-ct",
        };
        let figures = Figures::counted("req", "req/s", "CPU-us/req", "reqs/CPU-s");
        let section = section(
            "http",
            &[],
            figures,
            names,
            &measured,
            Some(Target::at_most(1.1)),
        );
        // Per round 1.2, 1.0, 1.5: the median is 1.2, over the target.
        assert_eq!(section.verdicts.len(), 1);
        assert!((section.verdicts[0].value - 1.2).abs() < 1e-9);
        assert!(!section.verdicts[0].met());
        let tables: Vec<_> = section
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Table(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 3);
        // All three pairs, the one-round pairs too.
        assert_eq!(tables[1].rows.len(), 3);
        assert_eq!(
            tables[2].rows[0],
            [
                "ours-epoll / tokio-ct, CPU per req",
                "1.20",
                "1.00",
                "1.50",
                "1.20x"
            ]
        );
        assert_eq!(
            tables[2].rows[2][..3],
            ["ours-epoll / ours-uring, CPU per req", "2.00", ""]
        );
        assert!(section
            .blocks
            .iter()
            .any(|b| matches!(b, Block::Note(n) if n.contains("ours-uring: failed: gone"))));
    }
}
