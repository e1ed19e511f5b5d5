//! What the run loop does with each poll's duration: the poll-time histogram, and a
//! report when a poll held the core longer than the stall threshold.
//!
//! The loop reads the clock once per poll ([`crate::clock`]); the time between two
//! readings is the poll, and (for a task) the drop of the task if it finished. A poll
//! that took at least the threshold is counted in `CoreStats::stalls` and handed to
//! the hook once, after it returned: nothing can interrupt a poll, so a task that
//! never returns is never reported. The default hook writes one line to stderr, at
//! most one a second per core (the line says how many it left out).

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{self, Clock, Ticks};

/// The default stall threshold.
pub(crate) const DEFAULT_STALL: Duration = Duration::from_millis(50);

/// Upper bounds of the poll-time histogram's buckets but the last: under 10 µs,
/// 100 µs, 1 ms, 10 ms, 100 ms, and the rest.
pub(crate) const BUCKETS: [Duration; 5] = [
    Duration::from_micros(10),
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(10),
    Duration::from_millis(100),
];

/// A poll that held its core longer than the stall threshold
/// ([`Builder::stall_threshold`](crate::Builder::stall_threshold)), as the hook of
/// [`Builder::on_stall`](crate::Builder::on_stall) gets it.
///
/// Its `Display` is the line the default hook writes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stall {
    /// The core's index in its runtime.
    pub core: usize,
    /// How long the poll ran.
    pub duration: Duration,
    /// The name of the task's queue (`"default"` for [`crate::spawn`]'s).
    pub queue: String,
    /// Where the task was spawned; `None` for the future given to `block_on`.
    pub location: Option<&'static Location<'static>>,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "runtime: core {} was blocked for {:.1} ms by one poll of ",
            self.core,
            self.duration.as_secs_f64() * 1e3
        )?;
        match self.location {
            Some(at) => write!(f, "a task spawned at {at} (queue {:?})", self.queue)?,
            None => f.write_str("the future given to block_on")?,
        }
        f.write_str(": every other task of that core waited; move blocking work off the core")
    }
}

/// A hook of `Builder::on_stall`.
type Hook = Arc<dyn Fn(&Stall) + Send + Sync>;

/// The hook that gets every stall: the user's, or `None` for the default.
#[derive(Clone)]
pub(crate) struct StallHook(Option<Hook>);

impl StallHook {
    pub(crate) fn new(hook: impl Fn(&Stall) + Send + Sync + 'static) -> StallHook {
        StallHook(Some(Arc::new(hook)))
    }

    /// The default: a line on stderr, at most one a second on each core.
    pub(crate) fn stderr() -> StallHook {
        StallHook(None)
    }
}

impl Default for StallHook {
    fn default() -> StallHook {
        StallHook::stderr()
    }
}

impl fmt::Debug for StallHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "StallHook(custom)"
        } else {
            "StallHook(stderr)"
        })
    }
}

/// One core's view of poll times: the histogram's bounds and the stall threshold in
/// clock ticks, and the hook.
pub(crate) struct PollWatch {
    pub(crate) clock: Clock,
    /// Whether polls are timed at all (a stall threshold is set).
    pub(crate) timed: bool,
    /// The first bound: a poll shorter than this (most) needs nothing more.
    pub(crate) quick: Ticks,
    bounds: [Ticks; 5],
    /// `Ticks::MAX` when stalls are not reported.
    threshold: Ticks,
    hook: StallHook,
    /// For the default hook: when it last wrote, and how many it left out since.
    last_line: Cell<Option<Instant>>,
    left_out: Cell<u64>,
}

impl PollWatch {
    pub(crate) fn new(threshold: Option<Duration>, hook: StallHook) -> PollWatch {
        let bounds = BUCKETS.map(clock::from_duration);
        PollWatch {
            clock: Clock::get(),
            timed: threshold.is_some(),
            quick: bounds[0].min(threshold.map_or(Ticks::MAX, clock::from_duration)),
            bounds,
            threshold: threshold.map_or(Ticks::MAX, |t| clock::from_duration(t).max(1)),
            hook,
            last_line: Cell::new(None),
            left_out: Cell::new(0),
        }
    }

    /// The histogram bucket of a poll that took `ticks`.
    pub(crate) fn bucket(&self, ticks: Ticks) -> usize {
        self.bounds.iter().take_while(|&&b| ticks >= b).count()
    }

    #[inline]
    pub(crate) fn is_stall(&self, ticks: Ticks) -> bool {
        ticks >= self.threshold
    }

    /// Hands a stall to the hook. A hook that panics is reported and otherwise
    /// ignored: it must not take the core down.
    #[cold]
    #[inline(never)]
    pub(crate) fn report(&self, stall: Stall) {
        let Some(hook) = &self.hook.0 else {
            return self.write_line(&stall);
        };
        let hook = hook.clone();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&stall))).is_err() {
            eprintln!(
                "runtime: the on_stall hook panicked (on a stall of core {})",
                stall.core
            );
        }
    }

    fn write_line(&self, stall: &Stall) {
        let now = Instant::now();
        if self
            .last_line
            .get()
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.left_out.set(self.left_out.get() + 1);
            return;
        }
        self.last_line.set(Some(now));
        match self.left_out.replace(0) {
            0 => eprintln!("{stall}"),
            n => eprintln!("{stall} ({n} more stalls on this core in the last second not shown)"),
        }
    }
}
