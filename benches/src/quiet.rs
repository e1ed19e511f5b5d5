//! Waiting for a quiet machine before a run: on a shared machine another
//! build or test can take a CPU from the server or the load for seconds. A
//! [`Quiet`] waits, up to a limit, until the machine's CPUs have been mostly
//! idle for a while (from `/proc/stat`), and counts the runs that started
//! without that.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How quiet the machine must be, for how long, and how long to wait for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quiet {
    /// The share of CPU time that must have been idle, all CPUs together.
    pub idle: f64,
    /// Over how long.
    pub hold: Duration,
    /// The longest wait; the run starts then anyway.
    pub limit: Duration,
}

/// Runs that waited, and those of them that started on a quiet machine.
static WAITED: AtomicUsize = AtomicUsize::new(0);
static QUIET: AtomicUsize = AtomicUsize::new(0);

impl Quiet {
    /// At least 90% idle over 2 s, waiting at most 30 s.
    pub const DEFAULT: Quiet = Quiet {
        idle: 0.90,
        hold: Duration::from_secs(2),
        limit: Duration::from_secs(30),
    };

    /// Waits until the CPUs were idle for at least [`idle`](Quiet::idle) of the
    /// last [`hold`](Quiet::hold), or [`limit`](Quiet::limit) has passed.
    /// Whether the machine was quiet. If `/proc/stat` cannot be read, does not
    /// wait and says it was not.
    pub fn wait(&self) -> bool {
        WAITED.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.limit;
        let Some(mut before) = cpu_ticks() else {
            return false;
        };
        loop {
            thread::sleep(self.hold);
            let Some(now) = cpu_ticks() else {
                return false;
            };
            if idle_share(before, now) >= self.idle {
                QUIET.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            before = now;
        }
    }

    /// How many runs waited so far, and how many of them on a quiet machine.
    pub fn counts() -> (usize, usize) {
        (
            WAITED.load(Ordering::Relaxed),
            QUIET.load(Ordering::Relaxed),
        )
    }

    /// What it waits for, in words.
    pub fn describe(&self) -> String {
        format!(
            "at least {:.0}% idle over {} s, waited for at most {} s",
            100.0 * self.idle,
            self.hold.as_secs_f64(),
            self.limit.as_secs_f64()
        )
    }
}

/// Idle and total ticks of all CPUs so far (the `cpu` line of `/proc/stat`;
/// idle counts iowait too).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(stat.lines().next()?)
}

fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let ticks: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
    if ticks.len() < 5 {
        return None;
    }
    let idle = ticks[3] + ticks[4];
    Some((idle, ticks.iter().sum()))
}

fn idle_share(before: (u64, u64), now: (u64, u64)) -> f64 {
    let total = now.1.saturating_sub(before.1);
    if total == 0 {
        return 1.0;
    }
    now.0.saturating_sub(before.0) as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::{idle_share, parse_cpu_line};

    #[test]
    fn reads_the_cpu_line() {
        let line = "cpu  100 5 50 800 20 3 2 20 0 0";
        assert_eq!(parse_cpu_line(line), Some((820, 1000)));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5"), None);
        assert_eq!(idle_share((820, 1000), (1720, 2000)), 0.9);
        assert_eq!(idle_share((5, 5), (5, 5)), 1.0);
    }
}
