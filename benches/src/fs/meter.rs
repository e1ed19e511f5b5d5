//! The measured window of an in-process run. Workers count each finished
//! read with [`Meter::tick`]; the first tick after the warm-up opens the
//! window (the clock and `getrusage(RUSAGE_SELF)` are read), the first tick
//! after the window's length closes it, and from then on every tick tells
//! its worker to stop. CPU time is the whole process's, so the kernel's
//! io_uring workers and tokio's blocking threads count; nothing else runs in
//! the process while a contender does.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use super::Timing;

/// What a run saw over its measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Reads finished within the window.
    pub ops: u64,
    /// Bytes per read.
    pub op_bytes: u64,
    /// Wall-clock length of the window.
    pub wall: Duration,
    /// CPU time (user + system) the contender took over the window.
    pub cpu: Duration,
}

impl Window {
    /// Reads per second.
    pub fn iops(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }

    /// CPU microseconds per read.
    pub fn cpu_us_per_op(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.ops as f64
    }

    /// GiB read per second.
    pub fn gib_per_s(&self) -> f64 {
        self.gib() / self.wall.as_secs_f64()
    }

    /// CPU seconds per GiB read.
    pub fn cpu_s_per_gib(&self) -> f64 {
        self.cpu.as_secs_f64() / self.gib()
    }

    /// CPU time over wall-clock time: 1.0 is one CPU kept busy.
    pub fn utilisation(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }

    fn gib(&self) -> f64 {
        (self.ops * self.op_bytes) as f64 / (1u64 << 30) as f64
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Warmup,
    Open {
        at: Instant,
        cpu: Duration,
        ops: u64,
    },
    Closed(Window),
}

/// The clock of one run; shared by its workers (behind an `Rc` or a
/// reference), all on one thread.
#[derive(Debug)]
pub struct Meter {
    warmup_ends: Instant,
    timing: Timing,
    op_bytes: u64,
    ops: Cell<u64>,
    phase: Cell<Phase>,
}

impl Meter {
    /// Starts the warm-up now; each read is `op_bytes` long.
    pub fn new(timing: Timing, op_bytes: usize) -> Meter {
        Meter {
            warmup_ends: Instant::now() + timing.warmup,
            timing,
            op_bytes: op_bytes as u64,
            ops: Cell::new(0),
            phase: Cell::new(Phase::Warmup),
        }
    }

    /// Counts one finished read. `false` once the window has closed: the
    /// worker stops.
    pub fn tick(&self) -> bool {
        let ops = self.ops.get() + 1;
        self.ops.set(ops);
        match self.phase.get() {
            Phase::Warmup => {
                let now = Instant::now();
                if now >= self.warmup_ends {
                    self.phase.set(Phase::Open {
                        at: now,
                        cpu: process_cpu(),
                        ops,
                    });
                }
                true
            }
            Phase::Open {
                at,
                cpu,
                ops: first,
            } => {
                let now = Instant::now();
                if now - at < self.timing.window {
                    return true;
                }
                self.phase.set(Phase::Closed(Window {
                    ops: ops - first,
                    op_bytes: self.op_bytes,
                    wall: now - at,
                    cpu: process_cpu().saturating_sub(cpu),
                }));
                false
            }
            Phase::Closed(_) => false,
        }
    }

    /// Whether the window has closed.
    pub fn done(&self) -> bool {
        matches!(self.phase.get(), Phase::Closed(_))
    }

    /// The window, once the workers have stopped.
    pub fn window(&self) -> io::Result<Window> {
        match self.phase.get() {
            Phase::Closed(window) if window.ops > 0 => Ok(window),
            Phase::Closed(_) => Err(io::Error::other("no read finished within the window")),
            _ => Err(io::Error::other(
                "the workers stopped before the window closed",
            )),
        }
    }
}

/// User plus system CPU time of this process so far, every thread.
pub fn process_cpu() -> Duration {
    // SAFETY: rusage is plain integers; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for the kernel to fill.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF) cannot fail");
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Meter, Timing};

    #[test]
    fn the_window_opens_after_the_warmup_and_closes_after_its_length() {
        let timing = Timing {
            warmup: Duration::from_millis(5),
            window: Duration::from_millis(20),
        };
        let meter = Meter::new(timing, 4096);
        assert!(meter.window().is_err());
        let mut ticks = 0u64;
        while meter.tick() {
            ticks += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(meter.done() && !meter.tick());
        let window = meter.window().unwrap();
        assert!(window.ops > 0 && window.ops <= ticks + 1);
        assert!(window.wall >= timing.window);
    }
}
