//! The tables `closebench` prints: per number of pending reads, the median over
//! rounds of each round's figures.

use super::burst::{BurstRound, BASELINE};
use super::closing::CloseRound;
use crate::latency::Percentiles;
use crate::measure::Spread;
use crate::report::grouped;

/// Prints the close and shutdown tables for the rounds of each value of
/// `pending`, in that order.
pub fn print_closes(rounds: &[CloseRound], pending: &[usize], closes: usize) {
    let groups: Vec<(usize, Vec<&CloseRound>)> = pending
        .iter()
        .map(|&n| (n, rounds.iter().filter(|r| r.pending == n).collect()))
        .filter(|(_, rounds): &(usize, Vec<&CloseRound>)| !rounds.is_empty())
        .collect();
    if groups.is_empty() {
        return;
    }

    println!();
    println!(
        "closing one socket, runtime side: from the drop to the completion of the next op, \
         µs per close ({closes} closes per series)"
    );
    println!(
        "  {:>9} {:>10}   {:>10} {:>10}   {:>10} {:>10}   {:>12}",
        "pending", "in flight", "idle med", "idle p99", "read med", "read p99", "batch/close"
    );
    for (n, rounds) in &groups {
        let in_flight = median(rounds.iter().map(|r| r.in_flight as f64));
        let idle = percentiles(rounds, |r| &r.idle.runtime);
        let read = percentiles(rounds, |r| &r.dropped_read.runtime);
        let batch = median(rounds.iter().map(|r| r.batch_runtime));
        println!(
            "  {:>9} {:>10}   {:>10} {:>10}   {:>10} {:>10}   {:>12}",
            grouped(*n as u64),
            grouped(in_flight as u64),
            micros(idle.median),
            micros(idle.p99),
            micros(read.median),
            micros(read.p99),
            micros(batch),
        );
    }

    println!();
    println!("closing one socket, peer side: from the drop until the peer reads end of stream, µs per close");
    println!(
        "  {:>9}   {:>10} {:>10}   {:>10} {:>10}   {:>12}",
        "pending", "idle med", "idle p99", "read med", "read p99", "batch/close"
    );
    for (n, rounds) in &groups {
        let idle = percentiles(rounds, |r| &r.idle.eof);
        let read = percentiles(rounds, |r| &r.dropped_read.eof);
        let batch = median(rounds.iter().map(|r| r.batch_eof));
        println!(
            "  {:>9}   {:>10} {:>10}   {:>10} {:>10}   {:>12}",
            grouped(*n as u64),
            micros(idle.median),
            micros(idle.p99),
            micros(read.median),
            micros(read.p99),
            micros(batch),
        );
    }
    println!();
    println!(
        "closing one socket, the runtime thread's CPU time over its runtime-side figure, µs per close"
    );
    println!(
        "  {:>9}   {:>10} {:>10}   {:>12}",
        "pending", "idle med", "read med", "batch/close"
    );
    for (n, rounds) in &groups {
        let idle = percentiles(rounds, |r| &r.idle.cpu);
        let read = percentiles(rounds, |r| &r.dropped_read.cpu);
        let batch = median(rounds.iter().map(|r| r.batch_cpu));
        println!(
            "  {:>9}   {:>10} {:>10}   {:>12}",
            grouped(*n as u64),
            micros(idle.median),
            micros(read.median),
            micros(batch),
        );
    }
    println!(
        "  idle: the socket has no op of its own; read: its read was dropped in flight just before;"
    );
    println!(
        "  batch: {closes} sockets without ops dropped at once, per close (until the op after \
         them completes / the peer sees the last end of stream)"
    );

    println!();
    println!("dropping the runtime with the pending reads in flight, ms");
    println!(
        "  {:>9}   {:>10}   {:<19}   {:>10}",
        "pending", "median", "min - max", "CPU median"
    );
    for (n, rounds) in &groups {
        let wall: Vec<f64> = rounds
            .iter()
            .map(|r| r.shutdown.as_nanos() as f64)
            .collect();
        let cpu = median(rounds.iter().map(|r| r.shutdown_cpu.as_nanos() as f64));
        if let Some(spread) = Spread::of(&wall) {
            println!(
                "  {:>9}   {:>10}   {:<19}   {:>10}",
                grouped(*n as u64),
                millis(spread.median),
                format!("{} - {}", millis(spread.min), millis(spread.max)),
                millis(cpu),
            );
        }
    }
}

/// Prints the table of the first request after `idle` idle connections closed.
pub fn print_burst(rounds: &[BurstRound], idle: usize) {
    if rounds.is_empty() {
        return;
    }
    println!();
    println!(
        "the first request on a fresh connection after {} idle connections close at once, ms",
        grouped(idle as u64)
    );
    println!("  {:<48} {:>10}   min - max", "", "median");
    let rows: [(&str, Figure); 5] = [
        ("baseline (connections open), connect to answer", |r| {
            r.baseline
        }),
        ("from the first close to the answer", |r| r.from_first_close),
        ("from the last close to the answer", |r| r.from_last_close),
        ("the clients' closes took", |r| r.closing),
        ("the runtime's CPU time, first close to answer", |r| {
            r.runtime_cpu
        }),
    ];
    for (label, figure) in rows {
        let values: Vec<f64> = rounds.iter().map(|r| figure(r) as f64).collect();
        if let Some(spread) = Spread::of(&values) {
            println!(
                "  {label:<48} {:>10}   {} - {}",
                millis(spread.median),
                millis(spread.min),
                millis(spread.max),
            );
        }
    }
    println!("  baseline: the median of {BASELINE} requests, each on a fresh connection, before the closes");
}

/// One figure of a [`BurstRound`].
type Figure = fn(&BurstRound) -> u64;

/// Median over rounds of each round's median and 99th percentile of `series`.
fn percentiles(rounds: &[&CloseRound], series: fn(&CloseRound) -> &Vec<u64>) -> Percentiles {
    let per_round: Vec<Percentiles> = rounds
        .iter()
        .filter_map(|r| Percentiles::of(&mut series(r).clone()))
        .collect();
    Percentiles {
        median: median(per_round.iter().map(|p| p.median)),
        p99: median(per_round.iter().map(|p| p.p99)),
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    Spread::of(&values.collect::<Vec<_>>()).map_or(0.0, |s| s.median)
}

/// Nanoseconds as microseconds with one decimal: `12.3`.
pub fn micros(nanos: f64) -> String {
    format!("{:.1}", nanos / 1e3)
}

/// Nanoseconds as milliseconds with two decimals: `12.34`.
pub fn millis(nanos: f64) -> String {
    format!("{:.2}", nanos / 1e6)
}

#[cfg(test)]
mod tests {
    use super::{micros, millis};

    #[test]
    fn units() {
        assert_eq!(micros(12_345.0), "12.3");
        assert_eq!(millis(2_345_678.0), "2.35");
    }
}
