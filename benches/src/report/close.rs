//! The tables of the close group: per number of pending reads, the median over
//! rounds of each round's figures.

use super::{grouped, micros, millis, Section, Table};
use crate::close::burst::{BurstRound, BASELINE};
use crate::close::closing::CloseRound;
use crate::latency::Percentiles;
use crate::measure::Spread;

/// The close and shutdown sections for the rounds of each value of `pending`,
/// in that order.
pub fn closes(rounds: &[CloseRound], pending: &[usize], closes: usize) -> Vec<Section> {
    let groups: Vec<(usize, Vec<&CloseRound>)> = pending
        .iter()
        .map(|&n| (n, rounds.iter().filter(|r| r.pending == n).collect()))
        .filter(|(_, rounds): &(usize, Vec<&CloseRound>)| !rounds.is_empty())
        .collect();
    if groups.is_empty() {
        return Vec::new();
    }

    let mut close = Section::new(format!(
        "closing one socket with N other reads pending, µs per close ({closes} closes per series)"
    ));
    close.text(
        "runtime side: from the drop to the completion of the next op (median over rounds \
         of each round's median / p99)",
    );
    let mut runtime = Table::new([
        "pending",
        "in flight",
        "idle med",
        "idle p99",
        "read med",
        "read p99",
        "batch/close",
    ]);
    for (n, rounds) in &groups {
        let in_flight = median(rounds.iter().map(|r| r.in_flight as f64));
        let idle = percentiles(rounds, |r| &r.idle.runtime);
        let read = percentiles(rounds, |r| &r.dropped_read.runtime);
        let batch = median(rounds.iter().map(|r| r.batch_runtime));
        runtime.row([
            grouped(*n as u64),
            grouped(in_flight as u64),
            micros(idle.median),
            micros(idle.p99),
            micros(read.median),
            micros(read.p99),
            micros(batch),
        ]);
    }
    close.table(runtime);

    close.text("peer side: from the drop until the peer reads end of stream");
    let mut peer = Table::new([
        "pending",
        "idle med",
        "idle p99",
        "read med",
        "read p99",
        "batch/close",
    ]);
    for (n, rounds) in &groups {
        let idle = percentiles(rounds, |r| &r.idle.eof);
        let read = percentiles(rounds, |r| &r.dropped_read.eof);
        let batch = median(rounds.iter().map(|r| r.batch_eof));
        peer.row([
            grouped(*n as u64),
            micros(idle.median),
            micros(idle.p99),
            micros(read.median),
            micros(read.p99),
            micros(batch),
        ]);
    }
    close.table(peer);

    close.text("the runtime thread's CPU time over its runtime-side figure");
    let mut cpu = Table::new(["pending", "idle med", "read med", "batch/close"]);
    for (n, rounds) in &groups {
        let idle = percentiles(rounds, |r| &r.idle.cpu);
        let read = percentiles(rounds, |r| &r.dropped_read.cpu);
        let batch = median(rounds.iter().map(|r| r.batch_cpu));
        cpu.row([
            grouped(*n as u64),
            micros(idle.median),
            micros(read.median),
            micros(batch),
        ]);
    }
    close.table(cpu);
    close.note(
        "idle: the socket has no op of its own; read: its read was dropped in flight just before",
    );
    close.note(format!(
        "batch: {closes} sockets without ops dropped at once, per close (until the op after \
         them completes / the peer sees the last end of stream)"
    ));

    let mut shutdown = Section::new("dropping the runtime with the pending reads in flight, ms");
    let mut table = Table::new(["pending", "median", "min - max", "CPU median"]);
    for (n, rounds) in &groups {
        let wall: Vec<f64> = rounds
            .iter()
            .map(|r| r.shutdown.as_nanos() as f64)
            .collect();
        let cpu = median(rounds.iter().map(|r| r.shutdown_cpu.as_nanos() as f64));
        if let Some(spread) = Spread::of(&wall) {
            table.row([
                grouped(*n as u64),
                millis(spread.median),
                format!("{} - {}", millis(spread.min), millis(spread.max)),
                millis(cpu),
            ]);
        }
    }
    shutdown.table(table);
    vec![close, shutdown]
}

/// The section of the first request after `idle` idle connections closed, if
/// any round measured it.
pub fn burst(rounds: &[BurstRound], idle: usize) -> Option<Section> {
    if rounds.is_empty() {
        return None;
    }
    let mut section = Section::new(format!(
        "the first request on a fresh connection after {} idle connections close at once, ms",
        grouped(idle as u64)
    ));
    let mut table = Table::new(["", "median", "min - max"]);
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
            table.row([
                label.to_string(),
                millis(spread.median),
                format!("{} - {}", millis(spread.min), millis(spread.max)),
            ]);
        }
    }
    section.table(table);
    section.note(format!(
        "baseline: the median of {BASELINE} requests, each on a fresh connection, before the closes"
    ));
    Some(section)
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
