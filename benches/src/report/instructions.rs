//! The table of the instructions group: per contender and depth, the raw
//! instruction counts of the N-op and 2N-op runs, what one op costs, what the
//! rest of the run costs, and the ratio to the raw loop; ours at 64 in flight is
//! held to the project's target.

use super::{grouped, Section, Table, Target, Unit, Verdict};
use crate::instructions::per_op;
use crate::measure::Spread;
use crate::DEPTH;

/// The project's target: at most this many user-space instructions per nop for
/// ours at 64 in flight.
pub const TARGET: Target = Target::at_most(200.0).in_unit(Unit::InstructionsPerOp);

/// What one contender's runs at one depth counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The contender.
    pub contender: String,
    /// Ops in flight.
    pub depth: u64,
    /// N: the ops of the smaller run; the larger did 2N.
    pub n: u64,
    /// `(Ir(N), Ir(2N))` of each round.
    pub rounds: Vec<(u64, u64)>,
}

impl Count {
    fn per_op(&self) -> Option<Spread> {
        per_op(self.n, &self.rounds)
    }

    /// `2 Ir(N) - Ir(2N)` of each round: what the run costs besides its ops.
    fn outside(&self) -> Option<Spread> {
        let figures: Vec<f64> = self
            .rounds
            .iter()
            .map(|&(ir_n, ir_2n)| 2.0 * ir_n as f64 - ir_2n as f64)
            .collect();
        Spread::of(&figures)
    }
}

/// The group's section.
pub fn section(counts: &[Count]) -> Section {
    let mut section = Section::new("user-space instructions per nop (callgrind Ir)");
    section.text(
        "instructions/op = (Ir(2N) - Ir(N)) / N; outside the loop = 2 Ir(N) - Ir(2N) \
         (process start, runtime set-up and drop, exit)",
    );
    let several = counts.iter().any(|c| c.rounds.len() > 1);
    let mut header = vec!["contender", "in flight", "N"];
    if several {
        header.extend(["instructions/op (median)", "min - max"]);
    } else {
        header.extend(["Ir(N)", "Ir(2N)", "instructions/op"]);
    }
    header.extend(["outside the loop", "/ raw", "target"]);
    let mut table = Table::new(header);
    for count in counts {
        let (Some(per_op), Some(outside)) = (count.per_op(), count.outside()) else {
            continue;
        };
        let raw = counts
            .iter()
            .find(|c| c.contender == "raw" && c.depth == count.depth)
            .and_then(Count::per_op);
        let mut row = vec![
            count.contender.clone(),
            count.depth.to_string(),
            grouped(count.n),
        ];
        if several {
            row.push(format!("{:.1}", per_op.median));
            row.push(format!("{:.1} - {:.1}", per_op.min, per_op.max));
        } else {
            let (ir_n, ir_2n) = count.rounds[0];
            row.extend([
                grouped(ir_n),
                grouped(ir_2n),
                format!("{:.1}", per_op.median),
            ]);
        }
        row.push(grouped(outside.median.max(0.0) as u64));
        row.push(raw.map_or(String::new(), |raw| {
            format!("{:.2}x", per_op.median / raw.median)
        }));
        let mut verdict_cell = String::new();
        if count.contender == "ours" && count.depth == DEPTH {
            verdict_cell = TARGET.cell(per_op.median);
            section.verdicts.push(Verdict {
                what: format!("instructions per nop, ours, {DEPTH} in flight"),
                value: per_op.median,
                target: TARGET,
            });
        }
        row.push(verdict_cell);
        table.row(row);
    }
    section.table(table);
    if several {
        let mut runs = Table::new(["contender", "in flight", "round", "Ir(N)", "Ir(2N)"]);
        for count in counts {
            for (round, &(ir_n, ir_2n)) in count.rounds.iter().enumerate() {
                runs.row([
                    count.contender.clone(),
                    count.depth.to_string(),
                    (round + 1).to_string(),
                    grouped(ir_n),
                    grouped(ir_2n),
                ]);
            }
        }
        section.text("every run's count");
        section.table(runs);
    }
    section
}

#[cfg(test)]
mod tests {
    use super::{section, Count};

    fn count(contender: &str, depth: u64, per_op: u64, rounds: usize) -> Count {
        let n = 6_400;
        Count {
            contender: contender.to_string(),
            depth,
            n,
            rounds: vec![(5_000_000 + per_op * n, 5_000_000 + 2 * per_op * n); rounds],
        }
    }

    #[test]
    fn ours_at_64_in_flight_is_held_to_200() {
        let counts = [
            count("raw", 64, 60, 1),
            count("ours", 64, 300, 1),
            count("ours", 1, 800, 1),
        ];
        let section = section(&counts);
        assert_eq!(section.verdicts.len(), 1);
        assert_eq!(section.verdicts[0].value, 300.0);
        assert!(!section.verdicts[0].met());
        let text = section.console();
        assert!(text.contains("5.00x"), "{text}");
        assert!(text.contains("5,000,000"), "{text}");
        assert!(
            text.contains("target <= 200 instructions/op: MISSED"),
            "{text}"
        );
    }

    #[test]
    fn several_rounds_list_every_run() {
        let section = section(&[count("ours", 64, 150, 2)]);
        assert!(section.verdicts[0].met());
        let text = section.console();
        assert!(text.contains("every run's count"), "{text}");
        assert!(text.contains("150.0 - 150.0"), "{text}");
    }
}
