//! The table `compare` prints: absolute figures per contender, then ratios
//! between contenders, each checked against its target where it has one.

use crate::measure::{Outcome, Spread};

/// A ratio to report: `numerator / denominator` of two contenders' throughput.
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
    let mut headed = false;
    let position = |name: &str| names.iter().position(|n| *n == name);
    for ratio in ratios {
        let (Some(top), Some(bottom)) = (position(ratio.numerator), position(ratio.denominator))
        else {
            continue;
        };
        // Contenders take turns within a round, so a round's ratio compares
        // runs made under the same conditions.
        let per_round: Vec<f64> = outcome.rates[top]
            .iter()
            .zip(&outcome.rates[bottom])
            .map(|(a, b)| a / b)
            .collect();
        let Some(spread) = Spread::of(&per_round) else {
            continue;
        };
        if !headed {
            row(&format!(
                "  {:<22} {:>16}   {:<21}",
                "ratio", "median", "min - max"
            ));
            headed = true;
        }
        let label = format!("{} / {}", ratio.numerator, ratio.denominator);
        let mut line = format!(
            "  {label:<22} {:>15.2}x   {:<21}",
            spread.median,
            format!("{:.2} - {:.2}x", spread.min, spread.max)
        );
        if let Some(target) = ratio.target {
            let verdict = Verdict {
                what: format!("{title}: {label}"),
                value: spread.median,
                target,
            };
            let word = if verdict.met() { "met" } else { "MISSED" };
            line.push_str(&format!(" target >= {target:.1}x: {word}"));
            verdicts.push(verdict);
        }
        row(&line);
    }
    for (name, cpu) in &outcome.strays {
        println!("  warning: a `{name}` run ended on CPU {cpu}, not the CPU asked for");
    }
    verdicts
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
