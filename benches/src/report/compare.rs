//! The tables of the in-process groups (nop, spawn, cross): absolute figures per
//! contender (throughput, or latency percentiles), then ratios between
//! contenders, each checked against its target where it has one.

use super::{grouped, nanos, per_round_ratios, range, si, Section, Table, Target, Verdict};
use crate::latency::Latencies;
use crate::measure::{Outcome, Spread};

/// A ratio to report: `numerator / denominator` of two contenders' throughput,
/// or of their latency.
#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    /// The contender on top.
    pub numerator: &'static str,
    /// The contender below.
    pub denominator: &'static str,
    /// The least the ratio should be, if it has a target.
    pub target: Option<f64>,
}

impl Ratio {
    /// `numerator / denominator`, held to at least `target` if there is one.
    pub const fn new(
        numerator: &'static str,
        denominator: &'static str,
        target: Option<f64>,
    ) -> Ratio {
        Ratio {
            numerator,
            denominator,
            target,
        }
    }
}

/// One throughput workload's section. `names[c]` is the name of contender `c` of
/// `outcome` and `counts[c]` the operations it did per round.
pub fn throughput(
    title: &str,
    unit: &str,
    names: &[&'static str],
    counts: &[u64],
    outcome: &Outcome,
    ratios: &[Ratio],
) -> Section {
    let mut section = Section::new(title);
    let mut figures = Table::new([
        "contender".to_string(),
        format!("median {unit}"),
        "min - max".to_string(),
        "per round".to_string(),
    ]);
    for ((name, rates), count) in names.iter().zip(&outcome.rates).zip(counts) {
        if let Some(spread) = Spread::of(rates) {
            figures.row([
                name.to_string(),
                si(spread.median),
                range(spread, si),
                grouped(*count),
            ]);
        }
    }
    section.table(figures);
    let mut rows = RatioRows::new(title, "ratio");
    let position = |name: &str| names.iter().position(|n| *n == name);
    for ratio in ratios {
        let (Some(top), Some(bottom)) = (position(ratio.numerator), position(ratio.denominator))
        else {
            continue;
        };
        // Contenders take turns within a round, so a round's ratio compares
        // runs made under the same conditions.
        let per_round = per_round_ratios(&outcome.rates[top], &outcome.rates[bottom]);
        let label = format!("{} / {}", ratio.numerator, ratio.denominator);
        rows.add(&label, &per_round, ratio.target);
    }
    rows.finish(&mut section);
    for (name, cpu) in &outcome.strays {
        section.note(format!(
            "warning: a `{name}` run ended on CPU {cpu}, not the CPU asked for"
        ));
    }
    section
}

/// One latency workload's section: per contender, the median over rounds of
/// each round's median and 99th percentile, with their spread; then, for each
/// ratio, the per-round ratios of the medians and of the 99th percentiles.
/// Latency is better lower, so a ratio `peer / ours` of at least 1.0 means
/// `ours` is as fast or faster. `counts[c]` is the samples contender `c` took
/// per round.
pub fn latency(
    title: &str,
    names: &[&'static str],
    counts: &[u64],
    latencies: &Latencies,
    ratios: &[Ratio],
) -> Section {
    let mut section = Section::new(title);
    let mut figures = Table::new([
        "contender",
        "median ns",
        "min - max",
        "p99 ns",
        "min - max",
        "per round",
    ]);
    for (c, (name, count)) in names.iter().zip(counts).enumerate() {
        let (Some(median), Some(p99)) = (
            Spread::of(&latencies.medians(c)),
            Spread::of(&latencies.p99s(c)),
        ) else {
            continue;
        };
        figures.row([
            name.to_string(),
            nanos(median.median),
            range(median, nanos),
            nanos(p99.median),
            range(p99, nanos),
            grouped(*count),
        ]);
    }
    section.table(figures);
    let mut rows = RatioRows::new(title, "ratio of latencies");
    let position = |name: &str| names.iter().position(|n| *n == name);
    for ratio in ratios {
        let (Some(top), Some(bottom)) = (position(ratio.numerator), position(ratio.denominator))
        else {
            continue;
        };
        let label = format!("{} / {}", ratio.numerator, ratio.denominator);
        let medians = per_round_ratios(&latencies.medians(top), &latencies.medians(bottom));
        rows.add(&format!("{label}, median"), &medians, ratio.target);
        let p99s = per_round_ratios(&latencies.p99s(top), &latencies.p99s(bottom));
        rows.add(&format!("{label}, p99"), &p99s, ratio.target);
    }
    rows.finish(&mut section);
    section
}

/// The ratio table of one workload: each ratio's median and spread, checked
/// against its target.
struct RatioRows<'a> {
    title: &'a str,
    table: Table,
    verdicts: Vec<Verdict>,
}

impl<'a> RatioRows<'a> {
    fn new(title: &'a str, heading: &str) -> Self {
        RatioRows {
            title,
            table: Table::new([heading, "median", "min - max", "target"]),
            verdicts: Vec::new(),
        }
    }

    fn add(&mut self, label: &str, per_round: &[f64], target: Option<f64>) {
        let Some(spread) = Spread::of(per_round) else {
            return;
        };
        let mut verdict_cell = String::new();
        if let Some(least) = target {
            let target = Target::at_least(least);
            verdict_cell = target.cell(spread.median);
            self.verdicts.push(Verdict {
                what: format!("{}: {label}", self.title),
                value: spread.median,
                target,
            });
        }
        self.table.row([
            label.to_string(),
            format!("{:.2}x", spread.median),
            range(spread, |r| format!("{r:.2}x")),
            verdict_cell,
        ]);
    }

    fn finish(self, section: &mut Section) {
        section.table(self.table);
        section.verdicts.extend(self.verdicts);
    }
}

#[cfg(test)]
mod tests {
    use super::{throughput, Ratio};
    use crate::measure::Outcome;

    #[test]
    fn ratios_are_taken_round_by_round_and_held_to_targets() {
        let outcome = Outcome {
            // Round 2 is slower for both: its ratio is still 0.5.
            rates: vec![vec![100.0, 50.0, 100.0], vec![50.0, 25.0, 60.0]],
            strays: vec![("ours", 0)],
        };
        let section = throughput(
            "nop",
            "ops/s",
            &["raw", "ours"],
            &[10, 10],
            &outcome,
            &[
                Ratio::new("ours", "raw", Some(0.8)),
                Ratio::new("ours", "none", None),
            ],
        );
        assert_eq!(section.verdicts.len(), 1);
        assert_eq!(section.verdicts[0].value, 0.5);
        assert!(!section.verdicts[0].met());
        assert_eq!(section.verdicts[0].what, "nop: ours / raw");
        let text = section.console();
        assert!(text.contains("0.50x"), "{text}");
        assert!(text.contains("target >= 0.80x: MISSED"), "{text}");
        assert!(text.contains("a `ours` run ended on CPU 0"), "{text}");
    }
}
