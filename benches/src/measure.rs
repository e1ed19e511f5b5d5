//! Timing, CPU pinning, and running a workload's contenders over interleaved rounds.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

/// One timed run: how long the measured part took and the CPU it ended on.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Wall-clock time of the measured part (runtime setup excluded).
    pub elapsed: Duration,
    /// The CPU the run was on when the clock stopped, if the kernel said.
    pub cpu: Option<usize>,
}

/// Times the measured part of a run; everything before `start` is setup.
#[derive(Debug)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts the clock.
    pub fn start() -> Self {
        Stopwatch(Instant::now())
    }

    /// Stops the clock and notes the CPU it stopped on.
    pub fn stop(self) -> Sample {
        let elapsed = self.0.elapsed();
        Sample {
            elapsed,
            cpu: current_cpu(),
        }
    }
}

/// One way of doing a workload: runs `count` operations and times them.
#[derive(Debug, Clone, Copy)]
pub struct Contender {
    /// Name in the table.
    pub name: &'static str,
    /// Runs `count` operations on the calling thread.
    pub run: fn(count: u64) -> io::Result<Sample>,
    /// This contender does `1 / share` of the workload's operations per round,
    /// so that a much slower contender's round takes about as long as the others'.
    pub share: u64,
}

impl Contender {
    /// A contender that does the workload's full count per round.
    pub const fn new(name: &'static str, run: fn(u64) -> io::Result<Sample>) -> Self {
        Contender {
            name,
            run,
            share: 1,
        }
    }

    /// Does `1 / share` of the workload's operations per round instead.
    pub const fn doing_one_in(mut self, share: u64) -> Self {
        self.share = share;
        self
    }
}

/// How many rounds to run and where.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Rounds that are measured.
    pub rounds: usize,
    /// Rounds run first and thrown away (page faults, allocator growth, CPU clocks).
    pub warmup: usize,
    /// The CPU every contender's thread is pinned to.
    pub cpu: usize,
}

/// The throughput of each contender in each measured round.
#[derive(Debug)]
pub struct Outcome {
    /// `rates[c][r]`: operations per second of contender `c` in round `r`.
    pub rates: Vec<Vec<f64>>,
    /// Runs that ended on another CPU than the one asked for: (contender, CPU).
    pub strays: Vec<(&'static str, usize)>,
}

/// Runs every contender `plan.warmup + plan.rounds` times, each time on a new
/// thread pinned to `plan.cpu`, contender `c` doing `counts[c]` operations.
/// Within a round the contenders take turns, and the turn order rotates from
/// round to round so that no contender always goes first.
pub fn run_rounds(contenders: &[Contender], counts: &[u64], plan: &Plan) -> io::Result<Outcome> {
    assert_eq!(contenders.len(), counts.len(), "one count per contender");
    let mut strays = Vec::new();
    let rates = interleaved(contenders.len(), plan, |index| {
        let (contender, count) = (contenders[index], counts[index]);
        let sample = on_pinned_thread(plan.cpu, move || (contender.run)(count))
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", contender.name)))?;
        match sample.cpu {
            Some(cpu) if cpu != plan.cpu => strays.push((contender.name, cpu)),
            _ => {}
        }
        Ok(count as f64 / sample.elapsed.as_secs_f64())
    })?;
    Ok(Outcome { rates, strays })
}

/// Calls `run(c)` for each of `contenders` contenders `plan.warmup +
/// plan.rounds` times, the contenders taking turns within a round in an order
/// that rotates from round to round, and returns what the measured rounds
/// gave: `results[c][r]` for contender `c` in measured round `r`.
/// `plan.cpu` is left to `run`.
pub fn interleaved<T>(
    contenders: usize,
    plan: &Plan,
    mut run: impl FnMut(usize) -> io::Result<T>,
) -> io::Result<Vec<Vec<T>>> {
    let mut results: Vec<Vec<T>> = (0..contenders)
        .map(|_| Vec::with_capacity(plan.rounds))
        .collect();
    for round in 0..plan.warmup + plan.rounds {
        for turn in 0..contenders {
            let index = (turn + round) % contenders;
            let result = run(index)?;
            if round >= plan.warmup {
                results[index].push(result);
            }
        }
    }
    Ok(results)
}

/// Runs `f` on a new thread pinned to `cpu` and returns its result.
pub fn on_pinned_thread<T, F>(cpu: usize, f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    on_new_thread(&format!("bench-cpu{cpu}"), move || {
        pin_current(cpu)?;
        f()
    })
}

/// Runs `f` on a new thread named `name`, with the CPU mask of the caller,
/// and returns its result.
pub fn on_new_thread<T, F>(name: &str, f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)?
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Pins the calling thread to `cpu`.
pub fn pin_current(cpu: usize) -> io::Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cannot pin the benchmark thread to CPU {cpu} (does this machine have it?)"
        )))
    }
}

/// The CPU the calling thread is on, if the kernel says.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// Median, minimum and maximum of a set of figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The middle figure (mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest figure.
    pub min: f64,
    /// The largest figure.
    pub max: f64,
}

impl Spread {
    /// Summarises `values`; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let odd = Spread::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (3.0, 1.0, 5.0));
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert_eq!(Spread::of(&[]), None);
    }
}
