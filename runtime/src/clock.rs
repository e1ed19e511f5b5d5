//! A cheap monotonic clock for timing every poll: the CPU's time-stamp counter where
//! the kernel itself trusts it, `Instant` elsewhere.
//!
//! The run loop reads the clock once per poll (the end of one poll is the start of
//! the next), for stall detection, per-queue run time and the poll-time histogram.
//! `Instant::now` costs about 28 ns here (a vDSO `clock_gettime`); `rdtsc` about 10.
//! The counter is used only where the kernel's clocksource is `tsc`, which the kernel
//! picks only for a counter that is invariant (constant rate, running in every idle
//! state) and synchronised across CPUs, so a reading on one CPU and the next on
//! another still subtract. Its rate is measured once per process against `Instant`
//! (a 200 µs window, so within a fraction of a percent), when the first core sets up
//! its stall threshold.
//!
//! Readings are [`Ticks`]: only differences mean anything, converted with
//! [`to_duration`] and [`from_duration`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A reading of the clock, in its own unit.
pub(crate) type Ticks = u64;

/// How readings are taken, decided once per process.
struct Source {
    /// The time-stamp counter's rate in ticks per nanosecond, if it is used.
    tsc_per_ns: Option<f64>,
    /// For `Instant` readings: the origin they count nanoseconds from.
    origin: Instant,
}

static SOURCE: OnceLock<Source> = OnceLock::new();

fn source() -> &'static Source {
    SOURCE.get_or_init(|| Source {
        tsc_per_ns: tsc_rate(),
        origin: Instant::now(),
    })
}

/// The process's clock, looked up once, for a caller that reads it often.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    source: &'static Source,
    tsc: bool,
}

impl Clock {
    pub(crate) fn get() -> Clock {
        let source = source();
        Clock {
            source,
            tsc: source.tsc_per_ns.is_some(),
        }
    }

    /// The time now.
    #[inline(always)]
    pub(crate) fn now(self) -> Ticks {
        if let Some(tsc) = self.tsc() {
            return tsc.read();
        }
        self.source.origin.elapsed().as_nanos() as Ticks
    }

    /// The TSC alone, if this clock reads it: a loop that reads the clock every turn
    /// can then choose once, outside it, between [`Tsc`] and this clock.
    #[inline(always)]
    pub(crate) fn tsc(self) -> Option<Tsc> {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            return Some(Tsc(()));
        }
        None
    }
}

/// Something that reads a clock.
pub(crate) trait Read: Copy {
    fn read(self) -> Ticks;
}

impl Read for Clock {
    #[inline(always)]
    fn read(self) -> Ticks {
        self.now()
    }
}

/// No clock: every reading is 0 (polls that are not timed).
#[derive(Clone, Copy)]
pub(crate) struct Untimed;

impl Read for Untimed {
    #[inline(always)]
    fn read(self) -> Ticks {
        0
    }
}

/// The TSC, known to be the clock's source (made only by [`Clock::tsc`]).
#[derive(Clone, Copy)]
pub(crate) struct Tsc(());

impl Read for Tsc {
    #[inline(always)]
    fn read(self) -> Ticks {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `rdtsc` has no preconditions; every x86_64 CPU has it.
        return unsafe { core::arch::x86_64::_rdtsc() };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("a Tsc is made only on x86_64")
    }
}

/// A difference of two readings as a duration.
pub(crate) fn to_duration(ticks: Ticks) -> Duration {
    match source().tsc_per_ns {
        Some(rate) => Duration::from_nanos((ticks as f64 / rate) as u64),
        None => Duration::from_nanos(ticks),
    }
}

/// A duration as a difference of readings (saturating).
pub(crate) fn from_duration(duration: Duration) -> Ticks {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    match source().tsc_per_ns {
        Some(rate) => (nanos as f64 * rate) as Ticks,
        None => nanos,
    }
}

/// The counter's rate if the kernel's clocksource is the TSC, measured against
/// `Instant`; `None` if the counter is not to be trusted (or not on x86_64).
fn tsc_rate() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let clocksource = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .ok()?;
        if clocksource.trim() != "tsc" {
            return None;
        }
        // SAFETY: as in `now`.
        let tsc = || unsafe { core::arch::x86_64::_rdtsc() };
        let (t0, c0) = (Instant::now(), tsc());
        let window = Duration::from_micros(200);
        while t0.elapsed() < window {
            std::hint::spin_loop();
        }
        let (c1, t1) = (tsc(), Instant::now());
        let nanos = t1.duration_since(t0).as_nanos() as f64;
        let rate = c1.wrapping_sub(c0) as f64 / nanos;
        // A rate no real CPU has (under 10 MHz or over 100 GHz) means a broken counter.
        (0.01..100.0).contains(&rate).then_some(rate)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_advance_with_time_and_convert_back() {
        let clock = Clock::get();
        let start = clock.now();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        let measured = to_duration(clock.now() - start);
        let real = t.elapsed();
        // Within 10% of what Instant says.
        assert!(
            measured >= real.mul_f64(0.9) && measured <= real.mul_f64(1.1),
            "{measured:?} measured for {real:?}"
        );
        let d = Duration::from_millis(50);
        let back = to_duration(from_duration(d));
        assert!(back.abs_diff(d) < Duration::from_micros(10), "{back:?}");
    }
}
