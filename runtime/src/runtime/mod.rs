//! Building and running a runtime: [`Builder`], [`Runtime`], [`Handle`], and the calls
//! that cross cores ([`spawn_on`], [`core_id`], [`core_count`]).
//!
//! Core 0 runs on the thread that builds the runtime, inside [`Runtime::block_on`];
//! every other core has a thread of its own, started by [`Builder::build`] and
//! stopped by [`Runtime::shutdown`], [`Runtime::shutdown_timeout`] (which lets the
//! tasks finish first, for a while) or the runtime's drop. Each core builds its own
//! ring on its own thread (`SINGLE_ISSUER` ties a ring to the thread that made it).

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{resume_unwind, Location};
use std::pin::Pin;
use std::sync::{mpsc, Arc, Weak};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use crate::driver;
use crate::executor::{self, Census, Cores, Executor, Stall, StallHook};
use crate::stats::CoreStats;
use crate::sys::affinity::CpuSet;
use crate::task::{remote_job, JoinHandle, MAX_CORES};

mod backend;

pub use backend::{Backend, BACKEND_ENV};

/// Sets up a [`Runtime`].
///
/// ```
/// let mut rt = runtime::Builder::new().cores(2).pin(false).ring_entries(256).build()?;
/// let cores = rt.run_on_all(|core| async move { (core, runtime::core_id()) });
/// assert_eq!(cores, vec![(0, 0), (1, 1)]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    cores: Option<usize>,
    pin: bool,
    ring_entries: u32,
    sqpoll: Option<Duration>,
    msg_ring: bool,
    spin: Option<Duration>,
    recv_buffers: (u16, u32),
    fixed_buffers: (u16, usize),
    fixed_files: u32,
    backend: Backend,
    stall_threshold: Option<Duration>,
    on_stall: StallHook,
    tokio_bridge: bool,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// The default set-up: a core on every CPU this thread may run on, each pinned to
    /// its CPU, 1024 SQ entries (2048 CQ) per ring, no SQPOLL, `MSG_RING` wake-ups,
    /// 256 receive buffers of 4 KiB per core, no registered buffers, a registered-file
    /// table of 256 slots per core.
    pub fn new() -> Builder {
        Builder {
            cores: None,
            pin: true,
            ring_entries: 1024,
            sqpoll: None,
            msg_ring: true,
            spin: None,
            recv_buffers: (256, 4096),
            fixed_buffers: (0, 0),
            fixed_files: 256,
            backend: Backend::Auto,
            stall_threshold: Some(executor::DEFAULT_STALL),
            on_stall: StallHook::stderr(),
            tokio_bridge: cfg!(feature = "tokio-bridge"),
        }
    }

    /// How many cores (threads, each with its own ring) to run. The default is one per
    /// CPU in the building thread's affinity mask, so `taskset`, cgroup cpusets and
    /// container CPU limits are respected.
    pub fn cores(mut self, n: usize) -> Builder {
        self.cores = Some(n);
        self
    }

    /// Whether to pin core `i` to the `i`-th CPU of the building thread's affinity mask
    /// (default `true`). Core 0 runs on the building thread, which is pinned too while
    /// the runtime lives and gets its old mask back when it is dropped. With pinning,
    /// there cannot be more cores than CPUs; without, any number of cores runs and
    /// the kernel places the threads.
    pub fn pin(mut self, pin: bool) -> Builder {
        self.pin = pin;
        self
    }

    /// Submission queue entries per ring (rounded up to a power of two by the kernel;
    /// the completion queue gets twice as many). Not a limit on ops in flight: a full
    /// queue is handed to the kernel and refilled.
    pub fn ring_entries(mut self, entries: u32) -> Builder {
        self.ring_entries = entries;
        self
    }

    /// Lets a kernel thread poll each submission queue, sleeping after `idle` without
    /// work (`None`, the default: the core submits with `io_uring_enter`). It saves
    /// submit syscalls at the price of a busy kernel thread per core.
    ///
    /// An `SQPOLL` ring gets `SINGLE_ISSUER` but not `DEFER_TASKRUN` or `COOP_TASKRUN`,
    /// which the kernel refuses with it ([`CoreStats::ring`](crate::CoreStats) says
    /// what each ring got). The kernel's thread inherits the core thread's CPU mask: with
    /// `pin(true)` it shares its core's CPU, and the two take turns instead of running
    /// side by side, so `SQPOLL` pays off with `pin(false)` or with spare CPUs the
    /// process may use. [`Probe::sqpoll`](crate::Probe::sqpoll) says whether this
    /// kernel and process may use it, and why not.
    pub fn sqpoll(mut self, idle: Option<Duration>) -> Builder {
        self.sqpoll = idle;
        self
    }

    /// Whether a core wakes another with `IORING_OP_MSG_RING` from its own ring
    /// (default `true`, used where the kernel has it, Linux 5.18+). With `false`,
    /// or on older kernels, it writes the other core's eventfd instead, one syscall
    /// per wake-up. Threads that are not cores always use the eventfd.
    pub fn msg_ring(mut self, enabled: bool) -> Builder {
        self.msg_ring = enabled;
        self
    }

    /// Whether each core runs a tokio runtime of its own, so crates that need a tokio
    /// reactor (reqwest, tonic, ...) work from its tasks (default: on, with the
    /// `tokio-bridge` feature). See [`tokio_bridge`](crate::tokio_bridge) for how it
    /// works and its limits.
    ///
    /// Off, the cores park in their rings as without the feature, and their rings get
    /// `DEFER_TASKRUN` again where the kernel has it.
    #[cfg(feature = "tokio-bridge")]
    pub fn tokio_bridge(mut self, enabled: bool) -> Builder {
        self.tokio_bridge = enabled;
        self
    }

    /// How long an idle core keeps looking for work (its inbox, completions, due
    /// timers) before it parks in `io_uring_enter` (default `None`: park at once).
    ///
    /// Waking a parked thread costs microseconds (more in a virtual machine); a core
    /// that spins through a short gap answers a message from another core in
    /// nanoseconds instead, at the price of a busy CPU while it spins. Worth it for
    /// latency-bound request/response traffic between cores; see `docs/benchmarks.md`.
    pub fn spin_before_park(mut self, spin: Option<Duration>) -> Builder {
        self.spin = spin;
        self
    }

    /// The provided buffers each core keeps for multishot receives
    /// (`TcpStream::recv_stream`): `count` buffers of `size` bytes (default 256 of
    /// 4 KiB, 1 MiB per core; a count of 0 turns them off). The kernel picks one as data
    /// arrives; each [`RecvBuf`](crate::buf::RecvBuf) goes back when dropped. When all are
    /// held, receives wait for one to come back. `count` is at most 32768.
    pub fn recv_buffers(mut self, count: u16, size: u32) -> Builder {
        self.recv_buffers = (count, size);
        self
    }

    /// The registered buffers each core keeps ([`FixedBufPool`](crate::buf::FixedBufPool)):
    /// `count` buffers of `size` bytes, each starting on a page (default none; at most
    /// 16384 buffers of up to 1 GiB each).
    ///
    /// Registered memory is locked: it counts against `RLIMIT_MEMLOCK` (per user, over
    /// all cores) unless the process has `CAP_IPC_LOCK`. If a core cannot register its
    /// pool, the runtime still starts and [`FixedBufPool::current`](crate::buf::FixedBufPool::current)
    /// on that core reports why, with the memory needed and the current limit.
    pub fn fixed_buffers(mut self, count: u16, size: usize) -> Builder {
        self.fixed_buffers = (count, size);
        self
    }

    /// Slots in each core's registered-file table (default 256; 0 turns it off).
    /// [`File::register`](crate::fs::File::register) puts a file in a slot so the
    /// kernel skips the fd lookup on each op. The table must fit `RLIMIT_NOFILE`; if it
    /// cannot be registered, the runtime still starts and `register` says why.
    pub fn fixed_files(mut self, count: u32) -> Builder {
        self.fixed_files = count;
        self
    }

    /// The I/O backend (default [`Backend::Auto`]: io_uring where a ring can be set
    /// up, else epoll, unless the environment variable `RUNTIME_BACKEND=io_uring|epoll`
    /// says which). [`Runtime::backend`] tells which one runs, and
    /// [`Runtime::fallback_reason`] why io_uring did not.
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = backend;
        self
    }

    /// How long one poll may hold its core before it is reported as a stall (default
    /// 50 ms; `None`: never). A task that blocks (a synchronous call, a long
    /// computation without `yield_now`) holds up every other task of its core; each
    /// poll that ran at least this long is counted in [`CoreStats::stalls`] and handed
    /// to the [`on_stall`](Builder::on_stall) hook once it returns. Each poll is then
    /// timed with one read of a cheap clock (the TSC where the kernel trusts it),
    /// which also fills [`CoreStats::poll_times`]. With `None` polls are not timed at
    /// all (no stall reports, `poll_times` stays zero), which saves that read: about
    /// 10 ns a poll on a virtual machine, measurable for tasks that do almost nothing
    /// per poll (see `docs/benchmarks.md`). While task queues share a core, their
    /// polls are timed regardless, to cut ticks by time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = runtime::Builder::new()
    ///     .stall_threshold(Some(Duration::from_millis(10)))
    ///     .build()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stall_threshold(mut self, threshold: Option<Duration>) -> Builder {
        self.stall_threshold = threshold;
        self
    }

    /// What to do with a stall (see [`stall_threshold`](Builder::stall_threshold)):
    /// `hook` runs on the stalled core right after the poll, with the core, how long
    /// the poll ran, the task's queue and where it was spawned. The default writes the
    /// [`Stall`]'s line to stderr, at most one a second per core. A hook that panics
    /// is reported on stderr and otherwise ignored.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let stalls = Arc::new(AtomicU64::new(0));
    /// let seen = stalls.clone();
    /// let mut rt = runtime::Builder::new()
    ///     .cores(1)
    ///     .stall_threshold(Some(Duration::from_millis(20)))
    ///     .on_stall(move |stall| {
    ///         assert!(stall.duration >= Duration::from_millis(20));
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .build()?;
    /// rt.block_on(async {
    ///     runtime::spawn(async { std::thread::sleep(Duration::from_millis(30)) }).await
    /// })
    /// .unwrap();
    /// assert_eq!(stalls.load(Ordering::Relaxed), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_stall(mut self, hook: impl Fn(&Stall) + Send + Sync + 'static) -> Builder {
        self.on_stall = StallHook::new(hook);
        self
    }

    /// Starts the runtime: core 0 on this thread, the other cores on threads of their
    /// own.
    ///
    /// With [`Backend::IoUring`] (or `RUNTIME_BACKEND=io_uring`), fails with an error
    /// that says what to do when io_uring is unavailable (kernel without it,
    /// `kernel.io_uring_disabled`, a seccomp filter such as Docker's default) or the
    /// kernel is too old; with [`Backend::Auto`] the runtime falls back to epoll then.
    /// Fails too if a setting is out of range or `RUNTIME_BACKEND` names no backend.
    pub fn build(self) -> io::Result<Runtime> {
        let allowed = CpuSet::of_current_thread()?;
        let cpus = allowed.cpus();
        let n = self.core_count(&cpus)?;
        if self.ring_entries == 0 || self.ring_entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "Builder::ring_entries({}): must be between 1 and 32768",
                    self.ring_entries
                ),
            ));
        }
        let (choice, fallback) = backend::choose(self.backend)?;
        #[cfg(feature = "tracing")]
        if let Some(reason) = &fallback {
            tracing::warn!(
                target: "runtime::backend",
                reason = %reason,
                "io_uring is not available: running on the epoll backend"
            );
        }
        crate::buf::fixed::check_config(self.fixed_buffers.0, self.fixed_buffers.1)?;
        let config = driver::Config {
            entries: self.ring_entries,
            sqpoll_idle: self.sqpoll,
            msg_ring: self.msg_ring,
            recv_buffers: self.recv_buffers,
            fixed_buffers: self.fixed_buffers,
            fixed_files: self.fixed_files,
            tokio_bridge: self.tokio_bridge,
        };
        let cores = Arc::new(Cores::new(n)?);
        let census = Arc::new(Census::new(n));
        let cpu_of = |index: usize| self.pin.then(|| cpus[index]);

        // Core 0, on this thread.
        let saved_mask = self.pin.then(|| allowed.clone());
        let restore = |e: io::Error| {
            if let Some(mask) = &saved_mask {
                let _ = mask.apply_to_current_thread();
            }
            e
        };
        if let Some(cpu) = cpu_of(0) {
            pin_current_thread(cpu).map_err(restore)?;
        }
        let options = executor::Options {
            spin: self.spin,
            stall_threshold: self.stall_threshold,
            on_stall: self.on_stall.clone(),
        };
        let executor = Executor::new(cores.clone(), census.clone(), 0, &config, choice, &options)
            .map_err(restore)?;
        let mut runtime = Runtime {
            executor,
            cores: cores.clone(),
            census: census.clone(),
            stopped: false,
            threads: Vec::with_capacity(n - 1),
            ring_fds: Vec::with_capacity(n),
            saved_mask,
            backend: match choice {
                driver::Choice::Ring(_) => Backend::IoUring,
                driver::Choice::Epoll => Backend::Epoll,
            },
            fallback,
            _not_send: PhantomData,
        };
        if let Some(ring) = runtime.executor.ring_fd() {
            let fd = crate::sys::dup(ring)?;
            cores.inbox(0).set_ring_fd(fd.as_raw_fd());
            runtime.ring_fds.push(fd);
        }

        // The other cores. A failure drops `runtime`, which stops and joins the
        // cores that did start.
        let (ready_tx, ready_rx) = mpsc::channel();
        for index in 1..n {
            let cores = cores.clone();
            let census = census.clone();
            let config = config.clone();
            let ready = ready_tx.clone();
            let cpu = cpu_of(index);
            let options = options.clone();
            let thread = thread::Builder::new()
                .name(format!("runtime-core-{index}"))
                .spawn(move || {
                    run_core(cores, census, index, cpu, &options, &config, choice, ready)
                })
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("could not start core {index}: {e}"))
                })?;
            runtime.threads.push(thread);
        }
        drop(ready_tx);
        for _ in 1..n {
            let (index, result) = ready_rx
                .recv()
                .map_err(|_| io::Error::other("a core thread exited while starting"))?;
            let fd = result.map_err(|e| {
                io::Error::new(e.kind(), format!("could not start core {index}: {e}"))
            })?;
            if let Some(fd) = fd {
                cores.inbox(index).set_ring_fd(fd.as_raw_fd());
                runtime.ring_fds.push(fd);
            }
        }
        Ok(runtime)
    }

    fn core_count(&self, cpus: &[usize]) -> io::Result<usize> {
        let n = match self.cores {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "Builder::cores(0): a runtime needs at least one core",
                ))
            }
            Some(n) => n,
            None => cpus.len().max(1),
        };
        if n > MAX_CORES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Builder::cores({n}): at most {MAX_CORES} cores"),
            ));
        }
        if self.pin && n > cpus.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "Builder::cores({n}) with pin(true) needs {n} CPUs, but this thread may \
                     run on {} ({cpus:?}); ask for fewer cores, or call .pin(false) to \
                     let the kernel share the CPUs between them",
                    cpus.len()
                ),
            ));
        }
        Ok(n)
    }
}

fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "could not pin a core thread to CPU {cpu}: {}",
            io::Error::last_os_error()
        )))
    }
}

/// A core's start: a copy of its ring's fd (none on the readiness backend), or why not.
type Ready = mpsc::Sender<(usize, io::Result<Option<OwnedFd>>)>;

/// The body of a core thread: set the core up, say so, run it until it is stopped,
/// then shut it down. Returns how many tasks the shutdown cancelled.
#[allow(clippy::too_many_arguments)]
fn run_core(
    cores: Arc<Cores>,
    census: Arc<Census>,
    index: usize,
    cpu: Option<usize>,
    options: &executor::Options,
    config: &driver::Config,
    backend: driver::Choice,
    ready: Ready,
) -> usize {
    let started = (|| {
        if let Some(cpu) = cpu {
            pin_current_thread(cpu)?;
        }
        let executor = Executor::new(cores, census, index, config, backend, options)?;
        let fd = executor.ring_fd().map(crate::sys::dup).transpose()?;
        Ok((executor, fd))
    })();
    match started {
        Ok((executor, fd)) => {
            let _ = ready.send((index, Ok(fd)));
            drop(ready);
            executor.run_until_stopped();
            executor.shutdown()
        }
        Err(e) => {
            let _ = ready.send((index, Err(e)));
            0
        }
    }
}

/// A running runtime: core 0 on this thread, the other cores on threads of their own.
///
/// Core 0's ring belongs to the thread that built the runtime, so a `Runtime` is
/// neither `Send` nor `Sync`; [`Runtime::handle`] gives a [`Handle`] for other threads.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<runtime::Runtime>();
/// ```
///
/// Dropping it (or [`Runtime::shutdown`]) stops every core: each takes no more work,
/// cancels its tasks and every operation in flight, waits for the kernel to finish
/// with their buffers, then frees them; the core threads are joined.
/// [`Runtime::shutdown_timeout`] lets the tasks finish first, for a while.
pub struct Runtime {
    executor: Executor,
    cores: Arc<Cores>,
    census: Arc<Census>,
    /// Whether the cores have been stopped and joined (by `shutdown_timeout`).
    stopped: bool,
    /// The other cores' threads; each returns how many tasks its shutdown cancelled.
    threads: Vec<thread::JoinHandle<usize>>,
    /// Each core's ring, kept open until every core has stopped, for `MSG_RING`s that
    /// other cores may still have queued.
    ring_fds: Vec<OwnedFd>,
    saved_mask: Option<CpuSet>,
    backend: Backend,
    /// Why io_uring was not used, when `Backend::Auto` fell back to epoll.
    fallback: Option<io::Error>,
    _not_send: PhantomData<*const ()>,
}

impl Runtime {
    /// Runs `future` to completion on this thread, as core 0, running core 0's tasks
    /// meanwhile (the other cores run on their own threads all along). Tasks still
    /// running when it returns stay on the runtime and run again at the next
    /// `block_on`.
    ///
    /// A panic in `future` reaches the caller; the runtime stays usable.
    pub fn block_on<F: Future>(&mut self, future: F) -> F::Output {
        self.executor.block_on(future)
    }

    /// The backend the cores run on: [`Backend::IoUring`] or [`Backend::Epoll`].
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why io_uring is not used, when [`Backend::Auto`] fell back to epoll: the error
    /// [`Backend::IoUring`] would have failed with, which says what to do to have
    /// io_uring. `None` on io_uring, and when epoll was asked for.
    pub fn fallback_reason(&self) -> Option<&io::Error> {
        self.fallback.as_ref()
    }

    /// Runs the future `f(core)` on every core at once and returns their outputs in
    /// core order. The futures need not be `Send`: each is made on its own core.
    ///
    /// A panic in any of them reaches the caller as soon as it happens (the others
    /// are cancelled when the runtime is dropped).
    ///
    /// ```
    /// let mut rt = runtime::Builder::new().cores(2).pin(false).build()?;
    /// let counts = rt.run_on_all(|core| async move {
    ///     let local = std::rc::Rc::new(core); // !Send state is fine
    ///     *local * 10
    /// });
    /// assert_eq!(counts, vec![0, 10]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn run_on_all<F, Fut>(&mut self, f: F) -> Vec<Fut::Output>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let location = Location::caller();
        let f = Arc::new(f);
        let cores = self.cores.clone();
        let census = self.census.clone();
        self.block_on(async move {
            let handles = (0..cores.len())
                .map(|core| {
                    let f = f.clone();
                    spawn_on_cores(&cores, &census, core, move || f(core), location)
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            AllOrFirstPanic::new(handles).await
        })
    }

    /// A handle to this runtime for other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            cores: Arc::downgrade(&self.cores),
            census: self.census.clone(),
        }
    }

    /// Stops every core, as dropping the runtime does: their tasks are cancelled at
    /// once. See [`Runtime::shutdown_timeout`] to let them finish first.
    pub fn shutdown(self) {
        drop(self);
    }

    /// Lets the tasks on every core finish for up to `grace`, then stops the runtime
    /// as [`Runtime::shutdown`] does, cancelling what is left; the report says how
    /// long it waited and how many tasks were cancelled.
    ///
    /// During the grace period every core runs as usual, core 0 on this thread (as in
    /// [`Runtime::block_on`]): tasks are polled, timers fire, I/O completes, and tasks
    /// may spawn more tasks, on their own core or on others ([`crate::spawn`],
    /// [`spawn_on`]); those are waited for too. A task that panics ends as a panicked
    /// task always does (its [`JoinHandle`] reports the panic) and the others carry on.
    ///
    /// The call stops waiting as soon as no core has a live task and no task sent to
    /// a core is still on its way, or once `grace` has passed, whichever comes first.
    /// It does not poll: idle cores park in their rings, and the core whose last task
    /// finishes wakes this thread. Then every core stops: tasks still running are
    /// cancelled (their futures dropped, their operations cancelled, every completion
    /// awaited) and the core threads are joined. A `grace` of zero is
    /// [`Runtime::shutdown`].
    ///
    /// [`Handle::spawn_on`] from threads outside the runtime keeps working during the
    /// grace period, and the runtime waits for what it spawns like for any other task,
    /// so a thread that hands results to in-flight requests (a pool doing blocking
    /// work, say) can still deliver them. What such a thread spawns once the grace
    /// period is over is cancelled, as after [`Runtime::shutdown`]. Nothing stops by
    /// itself: to take no new work, end what brings it (drop the listeners, stop the
    /// threads that feed the cores) before calling this.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut rt = runtime::Builder::new().cores(2).pin(false).build()?;
    /// rt.block_on(async {
    ///     // A request in flight on each core, each done in 20 ms ...
    ///     for core in 0..2 {
    ///         runtime::spawn_on(core, || runtime::time::sleep(Duration::from_millis(20)));
    ///     }
    ///     // ... and one that never ends.
    ///     runtime::spawn(std::future::pending::<()>());
    /// });
    /// let report = rt.shutdown_timeout(Duration::from_millis(300));
    /// assert_eq!(report.cancelled, 1);
    /// assert!(!report.finished_in_time());
    /// println!("runtime stopped: {report}");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// A server that stops accepting on Ctrl-C, gives the requests in flight 30
    /// seconds, and logs the outcome:
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use runtime::net::{TcpListener, TcpStream};
    ///
    /// fn main() -> std::io::Result<()> {
    ///     let mut rt = runtime::Builder::new().build()?;
    ///     rt.block_on(async {
    ///         // One listener per core, on one port.
    ///         let listeners = TcpListener::bind_per_core("0.0.0.0:8080", runtime::core_count())?;
    ///         let accept_loops: Vec<_> = (0..runtime::core_count())
    ///             .map(|core| {
    ///                 let listeners = listeners.clone();
    ///                 runtime::spawn_on(core, move || accept_loop(listeners.take(core)))
    ///             })
    ///             .collect();
    ///         runtime::signal::ctrl_c().await?;
    ///         // Stop accepting: each loop's listener is dropped, its socket closed.
    ///         for accept_loop in &accept_loops {
    ///             accept_loop.abort();
    ///         }
    ///         Ok::<_, std::io::Error>(())
    ///     })?;
    ///     let report = rt.shutdown_timeout(Duration::from_secs(30));
    ///     eprintln!("stopped: {report}");
    ///     Ok(())
    /// }
    ///
    /// async fn accept_loop(listener: std::io::Result<TcpListener>) {
    ///     let listener = listener.expect("this core's listener");
    ///     loop {
    ///         match listener.accept().await {
    ///             Ok((stream, _)) => drop(runtime::spawn(serve(stream))),
    ///             Err(e) => eprintln!("accept: {e}"),
    ///         }
    ///     }
    /// }
    ///
    /// async fn serve(stream: TcpStream) {
    ///     // Read a request, write the response.
    ///     # drop(stream);
    /// }
    /// ```
    pub fn shutdown_timeout(mut self, grace: Duration) -> ShutdownReport {
        let start = Instant::now();
        if !grace.is_zero() {
            self.drain(start.checked_add(grace));
        }
        let waited = start.elapsed();
        let cancelled = self.stop();
        ShutdownReport {
            grace,
            waited,
            cancelled,
        }
    }

    /// Runs every core until none has work left, or until `deadline` (if any).
    fn drain(&mut self, deadline: Option<Instant>) {
        let census = self.census.clone();
        let mut sleep = deadline.map(crate::time::sleep_until);
        self.block_on(std::future::poll_fn(|cx| {
            if census.poll_done(cx).is_ready() {
                return Poll::Ready(());
            }
            match &mut sleep {
                Some(sleep) => Pin::new(sleep).poll(cx),
                None => Poll::Pending,
            }
        }));
        census.stop_waiting();
    }

    /// Stops and joins every core; the tasks they cancelled, with the ones that were
    /// sent to a core and never started. Once only: later calls return 0.
    fn stop(&mut self) -> usize {
        if std::mem::replace(&mut self.stopped, true) {
            return 0;
        }
        for index in 0..self.cores.len() {
            self.cores.stop(index);
        }
        let mut cancelled = self.executor.shutdown();
        let mut panic = None;
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(n) => cancelled += n,
                Err(payload) => {
                    panic.get_or_insert(payload);
                }
            }
        }
        cancelled += self.census.jobs_not_run();
        if let Some(mask) = &self.saved_mask {
            let _ = mask.apply_to_current_thread();
        }
        if let Some(payload) = panic {
            if !thread::panicking() {
                resume_unwind(payload);
            }
        }
        cancelled
    }

    /// Counters of core 0 (see [`Handle::stats`] for every core).
    pub fn stats(&self) -> CoreStats {
        self.cores.counters(0).snapshot()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What [`Runtime::shutdown_timeout`] did: how long it let the tasks run, and how
/// many it had to cancel.
///
/// Its [`Display`](fmt::Display) is a line for a server's log:
///
/// ```
/// let rt = runtime::Builder::new().cores(1).build()?;
/// let report = rt.shutdown_timeout(std::time::Duration::from_secs(30));
/// assert!(report.finished_in_time());
/// assert!(report.to_string().starts_with("every task finished in "));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The grace period asked for.
    pub grace: Duration,
    /// How long the tasks were let run: until the last one finished, or about
    /// `grace` if some did not.
    pub waited: Duration,
    /// Tasks cancelled when the runtime stopped: those still running (or just
    /// spawned) after the grace period, and those sent to a core that had not
    /// started there yet.
    pub cancelled: usize,
}

impl ShutdownReport {
    /// Whether every task finished on its own (none was cancelled).
    pub fn finished_in_time(&self) -> bool {
        self.cancelled == 0
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cancelled {
            0 => write!(f, "every task finished in {:?}", self.waited),
            1 => write!(f, "1 task cancelled after {:?}", self.waited),
            n => write!(f, "{n} tasks cancelled after {:?}", self.waited),
        }?;
        write!(f, " (grace period {:?})", self.grace)
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cores", &self.cores.len())
            .finish_non_exhaustive()
    }
}

/// Waits for every handle, in any order; re-raises the first panic at once.
struct AllOrFirstPanic<T> {
    handles: Vec<Option<JoinHandle<T>>>,
    outputs: Vec<Option<T>>,
}

impl<T> AllOrFirstPanic<T> {
    fn new(handles: Vec<JoinHandle<T>>) -> Self {
        let outputs = handles.iter().map(|_| None).collect();
        AllOrFirstPanic {
            handles: handles.into_iter().map(Some).collect(),
            outputs,
        }
    }
}

impl<T> Unpin for AllOrFirstPanic<T> {}

impl<T> Future for AllOrFirstPanic<T> {
    type Output = Vec<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
        let this = &mut *self;
        let mut pending = false;
        for (core, slot) in this.handles.iter_mut().enumerate() {
            let Some(handle) = slot else { continue };
            match Pin::new(handle).poll(cx) {
                Poll::Pending => pending = true,
                Poll::Ready(Ok(output)) => {
                    this.outputs[core] = Some(output);
                    *slot = None;
                }
                Poll::Ready(Err(e)) => match e.try_into_panic() {
                    Ok(payload) => resume_unwind(payload),
                    Err(e) => panic!("the future of core {core} did not finish: {e}"),
                },
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
    }
}

/// A handle to a runtime: `Send + Sync + Clone`, usable from any thread, including
/// threads the runtime does not own.
///
/// It does not keep the runtime alive: once the runtime is dropped, tasks spawned
/// through it report cancellation and [`Handle::try_spawn_on`] fails.
///
/// ```
/// let rt = runtime::Builder::new().cores(2).pin(false).build()?;
/// let handle = rt.handle();
/// std::thread::spawn(move || {
///     // From a thread the runtime does not own:
///     let task = handle.spawn_on(1, || async { runtime::core_id() });
///     drop(task); // or await it with any executor
/// })
/// .join()
/// .unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Handle {
    cores: Weak<Cores>,
    census: Arc<Census>,
}

impl Handle {
    /// A handle to the runtime of the current core.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn current() -> Handle {
        match executor::current() {
            Some(core) => Handle {
                cores: Arc::downgrade(&core.cores),
                census: core.census.clone(),
            },
            None => panic!("runtime::Handle::current called outside a runtime"),
        }
    }

    /// Spawns the future `f()` on core `core` and returns a handle to await its output.
    /// See [`spawn_on`].
    ///
    /// # Panics
    ///
    /// If the runtime has no core `core`; [`Handle::try_spawn_on`] returns an error
    /// instead.
    #[track_caller]
    pub fn spawn_on<F, Fut>(&self, core: usize, f: F) -> JoinHandle<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        match self.cores.upgrade() {
            Some(cores) => spawn_on_cores(&cores, &self.census, core, f, Location::caller())
                .unwrap_or_else(|e| panic!("{e}")),
            None => {
                // The runtime is gone: the job is dropped unrun, which the handle
                // reports as a cancelled task.
                let (join, job) = remote_job(f, Location::caller());
                drop(job);
                JoinHandle::remote(join)
            }
        }
    }

    /// Like [`Handle::spawn_on`], but an error, not a panic, for a core the runtime
    /// does not have or a runtime that has been dropped.
    #[track_caller]
    pub fn try_spawn_on<F, Fut>(&self, core: usize, f: F) -> io::Result<JoinHandle<Fut::Output>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let cores = self.cores.upgrade().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the runtime has been dropped")
        })?;
        spawn_on_cores(&cores, &self.census, core, f, Location::caller())
    }

    /// The runtime's number of cores (0 once it has been dropped).
    pub fn core_count(&self) -> usize {
        self.cores.upgrade().map_or(0, |cores| cores.len())
    }

    /// Counters of every core, by core index (empty once the runtime has been dropped).
    pub fn stats(&self) -> Vec<CoreStats> {
        self.cores
            .upgrade()
            .map_or_else(Vec::new, |cores| cores.stats())
    }
}

fn spawn_on_cores<F, Fut>(
    cores: &Arc<Cores>,
    census: &Census,
    index: usize,
    f: F,
    location: &'static Location<'static>,
) -> io::Result<JoinHandle<Fut::Output>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    if index >= cores.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "spawn_on({index}): this runtime has {} cores (0 to {})",
                cores.len(),
                cores.len() - 1
            ),
        ));
    }
    if let Some(core) = executor::current() {
        if core.index == index && Arc::ptr_eq(&core.cores, cores) {
            // Already there: an ordinary local task (which calls `f` when first polled,
            // so a panic in `f` is the task's, as on another core).
            return Ok(core.tasks.spawn_at(async move { f().await }, location));
        }
    }
    let (join, job) = remote_job(f, location);
    // Counted before it can run, so that a graceful shutdown waits for it.
    census.job_sent(index);
    if let Err(job) = cores.send_job(index, job) {
        // The core has stopped; dropping the job unrun cancels the task.
        census.jobs_ran(index, 1);
        drop(job);
    }
    Ok(JoinHandle::remote(join))
}

/// Spawns the future `f()` on core `core` of the current runtime and returns a handle
/// to await its output from here.
///
/// `f` is `Send` and is called on the target core, so the future it makes need not be
/// `Send`: it never leaves that core. The job goes to the core's inbox and the core is
/// woken with an `IORING_OP_MSG_RING` from this core's ring (see [`Builder::msg_ring`]).
/// Spawning on the current core runs the task here without a round trip.
///
/// ```
/// let mut rt = runtime::Builder::new().cores(2).pin(false).build()?;
/// let core = rt.block_on(async {
///     runtime::spawn_on(1, || async { runtime::core_id() }).await.unwrap()
/// });
/// assert_eq!(core, 1);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// Outside a runtime, or if the runtime has no core `core` (use
/// [`Handle::try_spawn_on`] to get an error instead).
#[track_caller]
pub fn spawn_on<F, Fut>(core: usize, f: F) -> JoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    match executor::current() {
        Some(current) => {
            spawn_on_cores(&current.cores, &current.census, core, f, Location::caller())
                .unwrap_or_else(|e| panic!("{e}"))
        }
        None => panic!("runtime::spawn_on called outside a runtime"),
    }
}

/// The index of the core running the current task, from 0 to [`core_count`] - 1.
///
/// # Panics
///
/// Outside a runtime.
pub fn core_id() -> usize {
    match executor::current() {
        Some(core) => core.index,
        None => panic!("runtime::core_id called outside a runtime"),
    }
}

/// The number of cores of the current runtime.
///
/// # Panics
///
/// Outside a runtime.
pub fn core_count() -> usize {
    match executor::current() {
        Some(core) => core.cores.len(),
        None => panic!("runtime::core_count called outside a runtime"),
    }
}

/// Counters of the core running the current task.
///
/// # Panics
///
/// Outside a runtime.
pub fn stats() -> CoreStats {
    match executor::current() {
        Some(core) => core.cores.counters(core.index).snapshot(),
        None => panic!("runtime::stats called outside a runtime"),
    }
}

impl crate::buf::FixedBufPool {
    /// This core's pool.
    ///
    /// Fails outside a runtime, when the runtime was built without
    /// [`fixed_buffers`](crate::Builder::fixed_buffers), and when registering them
    /// failed at start; the error says why (for `RLIMIT_MEMLOCK`, how much locked
    /// memory was needed and what the limit is).
    pub fn current() -> io::Result<crate::buf::FixedBufPool> {
        let driver = driver::current().ok_or_else(driver::no_runtime)?;
        let pool = driver.fixed_pool()?.clone();
        Ok(crate::buf::FixedBufPool::from_pool(pool))
    }
}

/// The backend of the core running on this thread ([`Backend::IoUring`] or
/// [`Backend::Epoll`]), or `None` outside a runtime.
///
/// ```
/// let mut rt = runtime::Builder::new().cores(1).pin(false).build()?;
/// let backend = rt.block_on(async { runtime::backend() });
/// assert_eq!(backend, Some(rt.backend()));
/// assert_eq!(runtime::backend(), None, "not on a core");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn backend() -> Option<Backend> {
    driver::current().map(|driver| {
        if driver.is_ring() {
            Backend::IoUring
        } else {
            Backend::Epoll
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::buf::{FixedBufPool, IoBuf, OnRing, RingId};
    use crate::driver;

    fn rt_with_pool() -> super::Runtime {
        super::Builder::new()
            .cores(1)
            .pin(false)
            .fixed_buffers(2, 4096)
            .build()
            .unwrap()
    }

    fn this_ring() -> RingId {
        RingId::new(driver::current().expect("inside the runtime").id())
    }

    #[test]
    fn the_current_pool_is_the_one_registered_with_this_cores_ring() {
        let (buf, ring) = rt_with_pool().block_on(async {
            let pool = FixedBufPool::current().unwrap();
            let buf = pool.get().await;
            let index = buf.buf_index();
            assert_eq!(buf.fixed_index(OnRing(this_ring())), Some(index));
            (buf, this_ring())
        });
        // Another runtime's ring does not know the buffer; its own pool's buffers are
        // registered with it, not with the first ring.
        rt_with_pool().block_on(async move {
            assert_ne!(this_ring(), ring);
            assert_eq!(buf.fixed_index(OnRing(this_ring())), None);
            let own = FixedBufPool::current().unwrap().get().await;
            assert_eq!(own.fixed_index(OnRing(ring)), None);
            assert!(own.fixed_index(OnRing(this_ring())).is_some());
        });
    }

    #[test]
    fn there_is_no_current_pool_outside_a_runtime_or_without_fixed_buffers() {
        let e = FixedBufPool::current().unwrap_err();
        assert!(e.to_string().contains("no runtime"), "{e}");
        let mut rt = super::Builder::new().cores(1).pin(false).build().unwrap();
        let e = rt.block_on(async { FixedBufPool::current().unwrap_err() });
        assert!(e.to_string().contains("fixed_buffers"), "{e}");
    }
}
