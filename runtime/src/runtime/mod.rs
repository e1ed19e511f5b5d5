//! Building and running a runtime: [`Builder`], [`Runtime`], per-core [`CoreStats`].

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use crate::driver::{self, Driver, DriverStats};
use crate::executor::Executor;
use crate::sys::probe::Probe;
use crate::task::TaskStats;

/// Sets up a [`Runtime`].
///
/// ```
/// let mut rt = runtime::Builder::new().cores(1).ring_entries(256).build()?;
/// let answer = rt.block_on(async { runtime::spawn(async { 42 }).await.unwrap() });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    cores: usize,
    ring_entries: u32,
    sqpoll: Option<Duration>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// The default set-up: one core, 1024 SQ entries (2048 CQ), no SQPOLL.
    pub fn new() -> Builder {
        Builder {
            cores: 1,
            ring_entries: 1024,
            sqpoll: None,
        }
    }

    /// How many cores (pinned threads, each with its own ring) to run.
    ///
    /// This release runs one core, on the thread that calls [`Runtime::block_on`];
    /// `build` reports any other number as unsupported rather than ignoring it.
    pub fn cores(mut self, n: usize) -> Builder {
        self.cores = n;
        self
    }

    /// Submission queue entries per ring (rounded up to a power of two by the kernel;
    /// the completion queue gets twice as many). Not a limit on ops in flight: a full
    /// queue is handed to the kernel and refilled.
    pub fn ring_entries(mut self, entries: u32) -> Builder {
        self.ring_entries = entries;
        self
    }

    /// Lets a kernel thread poll the submission queue, sleeping after `idle` without
    /// work (`None`, the default: the core submits with `io_uring_enter`). It saves
    /// submit syscalls at the price of a busy kernel thread per core.
    pub fn sqpoll(mut self, idle: Option<Duration>) -> Builder {
        self.sqpoll = idle;
        self
    }

    /// Sets the runtime up on this thread.
    ///
    /// Fails with an error that says what to do when io_uring is unavailable (kernel
    /// without it, `kernel.io_uring_disabled`, a seccomp filter such as Docker's
    /// default), the kernel is too old, or a setting is out of range.
    pub fn build(self) -> io::Result<Runtime> {
        match self.cores {
            1 => {}
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "Builder::cores(0): a runtime needs at least one core",
                ))
            }
            n => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("Builder::cores({n}): this release runs exactly one core"),
                ))
            }
        }
        if self.ring_entries == 0 || self.ring_entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "Builder::ring_entries({}): must be between 1 and 32768",
                    self.ring_entries
                ),
            ));
        }
        let probe = Probe::get()?;
        probe.check_required()?;
        let config = driver::Config {
            entries: self.ring_entries,
            sqpoll_idle: self.sqpoll,
        };
        let driver = Driver::new(&config, probe)?;
        Ok(Runtime {
            executor: Executor::new(driver)?,
            _not_send: PhantomData,
        })
    }
}

/// A running runtime. Its core's ring belongs to the thread that built it, so it is
/// neither `Send` nor `Sync`:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<runtime::Runtime>();
/// ```
///
/// Dropping it (or [`Runtime::shutdown`]) cancels every task and every operation in
/// flight and waits for the kernel to finish with their buffers before freeing them.
pub struct Runtime {
    executor: Executor,
    _not_send: PhantomData<*const ()>,
}

impl Runtime {
    /// Runs `future` to completion on this thread, as core 0, running spawned tasks
    /// meanwhile. Tasks still running when it returns stay on the runtime and run again
    /// at the next `block_on`.
    ///
    /// A panic in `future` reaches the caller; the runtime stays usable.
    pub fn block_on<F: Future>(&mut self, future: F) -> F::Output {
        self.executor.block_on(future)
    }

    /// Cancels every task and in-flight operation, waits for their completions, and
    /// frees the ring. The same as dropping the runtime.
    pub fn shutdown(self) {
        drop(self);
    }

    /// Counters of this runtime's core.
    pub fn stats(&self) -> CoreStats {
        CoreStats::of(&self.executor)
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// Counters of one core, cheap enough to leave on: plain integers, never shared.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreStats {
    /// Operations queued for the kernel.
    pub ops_submitted: u64,
    /// Operations whose final completion was reaped.
    pub ops_completed: u64,
    /// `io_uring_enter` calls.
    pub enters: u64,
    /// Completion queue entries reaped (including the runtime's own).
    pub cqes_reaped: u64,
    /// Tasks spawned.
    pub tasks_spawned: u64,
    /// Task polls.
    pub tasks_polled: u64,
    /// Wakes received from other threads.
    pub remote_wakes_received: u64,
    /// Timers that fired.
    pub timers_fired: u64,
}

impl CoreStats {
    fn of(executor: &Executor) -> CoreStats {
        CoreStats::from_parts(executor.driver.stats(), executor.tasks.stats())
    }

    fn from_parts(d: DriverStats, t: TaskStats) -> CoreStats {
        CoreStats {
            ops_submitted: d.ops_submitted,
            ops_completed: d.ops_completed,
            enters: d.enters,
            cqes_reaped: d.cqes,
            tasks_spawned: t.spawned,
            tasks_polled: t.polled,
            remote_wakes_received: t.remote_wakes,
            timers_fired: d.timers_fired,
        }
    }
}

/// Counters of the core running the current task.
///
/// # Panics
///
/// Outside a runtime.
pub fn stats() -> CoreStats {
    match (driver::current(), crate::task::current()) {
        (Some(d), Some(t)) => CoreStats::from_parts(d.stats(), t.stats()),
        _ => panic!("runtime::stats called outside a runtime"),
    }
}
