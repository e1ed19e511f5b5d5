//! The table `compare` prints: absolute figures per contender (throughput, or
//! latency percentiles), then ratios between contenders, each checked against
//! its target where it has one.

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

/// A ratio that had a target, and whether the median met it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Workload and ratio, e.g. `nop, 64 in flight: ours / raw`.
    pub what: String,
    /// Median of the per-round ratios.
    pub value: f64,
    /// The target it was held to.
    pub target: f64,
}

impl Verdict {
    /// Whether the target was met.
    pub fn met(&self) -> bool {
        self.value >= self.target
    }
}

/// Prints one workload's section of the table and returns the verdicts of its
/// targets. `names[c]` is the name of contender `c` of `outcome` and
/// `counts[c]` the operations it did per round.
pub fn print_workload(
    title: &str,
    unit: &str,
    names: &[&'static str],
    counts: &[u64],
    outcome: &Outcome,
    ratios: &[Ratio],
) -> Vec<Verdict> {
    row(&format!(
        "  {:<22} {:>16}   {:<21} {:>10}",
        "contender",
        format!("median {unit}"),
        "min - max",
        "per round"
    ));
    for ((name, rates), count) in names.iter().zip(&outcome.rates).zip(counts) {
        if let Some(spread) = Spread::of(rates) {
            row(&format!(
                "  {name:<22} {:>16}   {:<21} {:>10}",
                si(spread.median),
                format!("{} - {}", si(spread.min), si(spread.max)),
                grouped(*count),
            ));
        }
    }
    let mut verdicts = Vec::new();
    let mut ratio_rows = RatioRows::new(title, "ratio", 22);
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
        ratio_rows.print(&label, &per_round, ratio.target, &mut verdicts);
    }
    for (name, cpu) in &outcome.strays {
        println!("  warning: a `{name}` run ended on CPU {cpu}, not the CPU asked for");
    }
    verdicts
}

/// Prints one latency workload's section of the table and returns the
/// verdicts of its targets: per contender, the median over rounds of each
/// round's median and 99th percentile, with their spread; then, for each
/// ratio, the per-round ratios of the medians and of the 99th percentiles.
/// Latency is better lower, so a ratio `peer / ours` of at least 1.0 means
/// `ours` is as fast or faster. `counts[c]` is the samples contender `c`
/// took per round.
pub fn print_latency(
    title: &str,
    names: &[&'static str],
    counts: &[u64],
    latencies: &Latencies,
    ratios: &[Ratio],
) -> Vec<Verdict> {
    row(&format!(
        "  {:<14} {:>11}   {:<21} {:>11}   {:<21} {:>10}",
        "contender", "median ns", "min - max", "p99 ns", "min - max", "per round"
    ));
    for (c, (name, count)) in names.iter().zip(counts).enumerate() {
        let (Some(median), Some(p99)) = (
            Spread::of(&latencies.medians(c)),
            Spread::of(&latencies.p99s(c)),
        ) else {
            continue;
        };
        let range = |s: Spread| format!("{} - {}", nanos(s.min), nanos(s.max));
        row(&format!(
            "  {name:<14} {:>11}   {:<21} {:>11}   {:<21} {:>10}",
            nanos(median.median),
            range(median),
            nanos(p99.median),
            range(p99),
            grouped(*count),
        ));
    }
    let mut verdicts = Vec::new();
    let mut ratio_rows = RatioRows::new(title, "ratio of latencies", 30);
    let position = |name: &str| names.iter().position(|n| *n == name);
    for ratio in ratios {
        let (Some(top), Some(bottom)) = (position(ratio.numerator), position(ratio.denominator))
        else {
            continue;
        };
        let label = format!("{} / {}", ratio.numerator, ratio.denominator);
        let medians = per_round_ratios(&latencies.medians(top), &latencies.medians(bottom));
        ratio_rows.print(
            &format!("{label}, median"),
            &medians,
            ratio.target,
            &mut verdicts,
        );
        let p99s = per_round_ratios(&latencies.p99s(top), &latencies.p99s(bottom));
        ratio_rows.print(&format!("{label}, p99"), &p99s, ratio.target, &mut verdicts);
    }
    verdicts
}

/// Prints a note under a workload's table, indented like its rows.
pub fn print_note(note: &str) {
    row(&format!("  {note}"));
}

fn per_round_ratios(top: &[f64], bottom: &[f64]) -> Vec<f64> {
    top.iter().zip(bottom).map(|(a, b)| a / b).collect()
}

/// The ratio rows of one workload: a heading before the first, and each
/// ratio's median and spread, checked against its target.
struct RatioRows<'a> {
    title: &'a str,
    heading: &'a str,
    width: usize,
    headed: bool,
}

impl<'a> RatioRows<'a> {
    fn new(title: &'a str, heading: &'a str, width: usize) -> Self {
        RatioRows {
            title,
            heading,
            width,
            headed: false,
        }
    }

    fn print(
        &mut self,
        label: &str,
        per_round: &[f64],
        target: Option<f64>,
        verdicts: &mut Vec<Verdict>,
    ) {
        let Some(spread) = Spread::of(per_round) else {
            return;
        };
        let width = self.width;
        if !self.headed {
            row(&format!(
                "  {:<width$} {:>16}   {:<21}",
                self.heading, "median", "min - max"
            ));
            self.headed = true;
        }
        let mut line = format!(
            "  {label:<width$} {:>15.2}x   {:<21}",
            spread.median,
            format!("{:.2} - {:.2}x", spread.min, spread.max)
        );
        if let Some(target) = target {
            let verdict = Verdict {
                what: format!("{}: {label}", self.title),
                value: spread.median,
                target,
            };
            let word = if verdict.met() { "met" } else { "MISSED" };
            line.push_str(&format!(" target >= {target:.1}x: {word}"));
            verdicts.push(verdict);
        }
        row(&line);
    }
}

fn row(line: &str) {
    println!("{}", line.trim_end());
}

/// Prints how many targets were met, and which were missed.
pub fn print_verdicts(verdicts: &[Verdict]) {
    if verdicts.is_empty() {
        return;
    }
    let met = verdicts.iter().filter(|v| v.met()).count();
    println!("targets met: {met} of {}", verdicts.len());
    for verdict in verdicts.iter().filter(|v| !v.met()) {
        println!(
            "  missed: {} = {:.2}x, target >= {:.1}x",
            verdict.what, verdict.value, verdict.target
        );
    }
}

/// Formats a rate with an SI prefix: `12.34 M`.
pub fn si(value: f64) -> String {
    let (scaled, prefix) = if value >= 1e9 {
        (value / 1e9, "G")
    } else if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    format!("{scaled:.2} {prefix}").trim_end().to_string()
}

/// Formats nanoseconds as a whole number with thousands separators: `12,345`.
pub fn nanos(value: f64) -> String {
    grouped(value.round() as u64)
}

/// Formats a count with thousands separators: `1,000,000`.
pub fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{grouped, si};

    #[test]
    fn grouped_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(16_000_000), "16,000,000");
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(12_345_678.0), "12.35 M");
        assert_eq!(si(2_500.0), "2.50 k");
        assert_eq!(si(3.0), "3.00");
    }
}
