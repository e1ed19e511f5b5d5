//! A tokio reactor on every core, so crates bound to tokio work from our tasks
//! (feature `tokio-bridge`).
//!
//! Crates such as `reqwest`, `tonic`, redis clients or hyper-util's legacy client
//! register their sockets and timers with "the current tokio runtime", and panic
//! ("there is no reactor running") when there is none. With this feature every core
//! owns a tokio `current_thread` runtime, and those crates just work when awaited from
//! a task or from [`Runtime::block_on`](crate::Runtime::block_on):
//!
//! ```no_run
//! # async fn get() -> Result<(), Box<dyn std::error::Error>> {
//! // In a task of ours, with no tokio runtime started by hand:
//! let body = reqwest::get("http://127.0.0.1:8080/").await?.text().await?;
//! # Ok(()) }
//! ```
//!
//! # The model
//!
//! - **One tokio runtime per core**, built with `enable_all` when the core starts. The
//!   core enters its handle for as long as its loop runs, so every poll of our tasks
//!   finds a tokio context at no per-poll cost. Two runtimes of ours in one process
//!   have a tokio runtime per core each; nothing is shared between cores.
//! - **Parking goes through tokio.** When the core has nothing to run, it submits what
//!   it queued and blocks in the tokio runtime's `block_on` instead of in
//!   `io_uring_enter` (or `epoll_wait`). The future it blocks on is ready when the
//!   ring's fd polls readable (CQEs are waiting; wake-ups from other cores and threads
//!   arrive as CQEs too), when the core's next timer is due, or when something woke one
//!   of our tasks on this thread (tokio's reactor, timer or a tokio task). On the
//!   readiness backend the epoll set's fd takes the ring's place. Meanwhile tokio runs
//!   its own reactor, timers and spawned tasks. The core then reaps without waiting.
//! - **A busy core still turns tokio.** A core that never parks gives tokio a turn that
//!   does not wait (its reactor is polled with a zero timeout, its ready tasks run) at
//!   least every millisecond, looked at every 32 passes of the loop.
//!   So a reqwest request finishes even next to a task that yields forever, with up to
//!   about a millisecond more latency than on an idle core.
//! - **Rings are set up to be polled**: without `DEFER_TASKRUN`, whose completions are
//!   only posted when the thread enters the ring, so a reactor watching the ring's fd
//!   would never hear of them. That is the one cost on the I/O path (a quarter of
//!   the throughput of one nop at a time; none measurable with 64 in flight, nor on
//!   spawning): see "the tokio bridge" in `docs/benchmarks.md`.
//!
//! # Limits
//!
//! - `tokio::spawn` from a task of ours (hyper-util's pool spawns a task per
//!   connection) runs the spawned future on the core's tokio runtime, on the same
//!   thread: only while the core parks or at its periodic turn. It is as `Send` as
//!   tokio asks, and never moves to another core. Futures of our own are not `Send`
//!   and need not be: a reqwest future awaited in our task stays in our task.
//! - `tokio::task::spawn_blocking` works: the closure runs on tokio's blocking pool,
//!   and its wake-up reaches the core like any wake from a foreign thread.
//! - Blocking calls (a synchronous client such as `reqwest::blocking`, or a long
//!   computation) block the core, tokio's tasks on it included, as any blocking call
//!   in a task does. `tokio::task::block_in_place` (with tokio's `rt-multi-thread`)
//!   is one of them: our tasks are not polled inside a tokio scheduler, so it just
//!   runs its closure on the core's thread, and no other thread takes the core's work
//!   over meanwhile. Inside a task spawned with `tokio::spawn` it panics, as on any
//!   `current_thread` runtime. Move blocking work to `spawn_blocking`.
//! - Shutdown drops our tasks first (a request in flight is simply dropped, as a
//!   dropped future is), then the core's tokio runtime with the tasks spawned on it,
//!   without waiting for blocking-pool closures still running: they finish on their
//!   own thread. Shutdown never waits for a peer that does not answer.
//! - [`Runtime::block_on`](crate::Runtime::block_on) called where a tokio context is
//!   already current (inside a tokio runtime, say) cannot block in tokio again: for
//!   that call the bridge steps aside on that thread, and tokio-bound futures use the
//!   caller's tokio runtime. Other cores are not affected.
//!
//! The bridge is on for every core whenever the feature is compiled in;
//! [`Builder::tokio_bridge(false)`](crate::Builder::tokio_bridge) turns it off.
//! Without the feature none of this is compiled.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::driver::Driver;
use crate::task::Tasks;

/// How long a core that never parks may go without giving tokio a turn.
const TURN_INTERVAL: Duration = Duration::from_millis(1);

/// Passes of a busy core's loop between two looks at the clock: a pass can take well
/// under 100 ns, and a clock read is a fifth of that.
pub(crate) const PASSES_PER_CHECK: u32 = 32;

/// A core's tokio runtime and what the core needs to park in it.
pub(crate) struct Bridge {
    /// The ring's (or epoll set's) fd in tokio's reactor (dropped before the runtime).
    park_fd: AsyncFd<ParkFd>,
    /// The core's next timer, as a tokio timer; reset when that deadline changes.
    sleep: RefCell<Pin<Box<tokio::time::Sleep>>>,
    /// The deadline `sleep` is set to.
    armed: Cell<Option<Instant>>,
    /// Passes of the loop since the clock was last looked at.
    passes: Cell<u32>,
    /// When tokio last had a turn (a park or a periodic turn).
    last_turn: Cell<Instant>,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

/// The driver's [`Driver::park_fd`], and the driver, which closes that fd only when
/// it is dropped: held here, it outlives tokio's registration of the fd.
struct ParkFd {
    fd: RawFd,
    _driver: Rc<Driver>,
}

impl AsRawFd for ParkFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Bridge {
    /// Starts the tokio runtime of the core whose driver is `driver`, and registers
    /// the driver's [`Driver::park_fd`] with it.
    pub(crate) fn new(driver: &Rc<Driver>) -> io::Result<Bridge> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("runtime-tokio-blocking")
            .on_thread_park(before_park)
            .build()
            .map_err(|e| io::Error::new(e.kind(), format!("starting the tokio bridge: {e}")))?;
        let _context = runtime.enter();
        let fd = ParkFd {
            fd: driver.park_fd(),
            _driver: driver.clone(),
        };
        // SAFETY: the fd is open and stays the ring's (or epoll set's) for as long as
        // the driver lives, which the `ParkFd` inside the `AsyncFd` keeps alive; and
        // `as_raw_fd` always returns that one fd.
        let park_fd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| {
                let (_, e) = e.into_parts();
                io::Error::new(
                    e.kind(),
                    format!("the tokio bridge could not watch the core's fd: {e}"),
                )
            })?;
        let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
        let sleep = RefCell::new(Box::pin(tokio::time::sleep_until(far)));
        drop(_context);
        Ok(Bridge {
            park_fd,
            sleep,
            armed: Cell::new(None),
            passes: Cell::new(0),
            last_turn: Cell::new(Instant::now()),
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("only taken when dropped")
    }

    /// The bridge, if this thread can block in it: not where a tokio context is
    /// current already (a caller inside a tokio runtime, whose `block_on` would
    /// refuse to nest). Asked once per `block_on` of ours.
    pub(crate) fn usable(bridge: &Option<Bridge>) -> Option<&Bridge> {
        bridge
            .as_ref()
            .filter(|_| tokio::runtime::Handle::try_current().is_err())
    }

    /// Makes the core's tokio runtime current on this thread until the guard drops.
    pub(crate) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime().enter()
    }

    /// Where the run loop would turn its driver: if `park`, parks in tokio until the
    /// core has work (see the module docs); else gives tokio a turn that does not wait
    /// if it has not had one for [`TURN_INTERVAL`]. The driver's own turn that follows
    /// must not wait either way.
    pub(crate) fn turn(
        &self,
        park: bool,
        driver: &Driver,
        tasks: &Tasks,
        messages: &dyn Fn() -> bool,
    ) {
        if park {
            driver.prepare_park();
            // Submitting may have completed ops at once (or a wake came meanwhile): then
            // there is no need to enter tokio, which gets its periodic turn instead.
            if !(tasks.has_ready() || messages() || driver.has_work()) {
                return self.park(driver, tasks, messages);
            }
        }
        let passes = self.passes.get() + 1;
        if passes < PASSES_PER_CHECK {
            self.passes.set(passes);
            return;
        }
        self.passes.set(0);
        let now = Instant::now();
        if now.duration_since(self.last_turn.get()) < TURN_INTERVAL {
            return;
        }
        self.last_turn.set(now);
        // What tokio's tasks do may queue SQEs: they go to the kernel with the turn of
        // the driver that follows.
        self.runtime().block_on(YieldOnce(false));
    }

    /// Blocks in tokio until the core has work.
    fn park(&self, driver: &Driver, tasks: &Tasks, messages: &dyn Fn() -> bool) {
        self.runtime().block_on(Park {
            bridge: self,
            driver,
            tasks,
            work: messages,
        });
        tasks.parked.disarm();
        self.passes.set(0);
        self.last_turn.set(Instant::now());
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let runtime = self.runtime.take().expect("dropped once");
        // Its own drop would wait for blocking-pool closures still running (forever,
        // for one that never returns), and refuses to run inside another runtime.
        runtime.shutdown_background();
    }
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("park_fd", &self.park_fd.get_ref().fd)
            .finish_non_exhaustive()
    }
}

/// What a parked core leaves for the wakes of its tasks: the waker of its park while
/// it is parked. Lives in the core's task table, whose local wake path calls
/// [`Parked::wake`]: one load and a branch when the core is not parked.
#[derive(Default)]
pub(crate) struct Parked {
    armed: Cell<bool>,
    waker: Cell<Option<Waker>>,
    /// The deadline of the park's tokio timer (the core's next timer when it parked).
    deadline: Cell<Option<Instant>>,
}

impl Parked {
    /// Ends the park, if the core is parked (a task of this core was woken).
    #[inline(always)]
    pub(crate) fn wake(&self) {
        if self.armed.get() {
            self.wake_park();
        }
    }

    #[cold]
    fn wake_park(&self) {
        self.armed.set(false);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn arm(&self, waker: &Waker, deadline: Option<Instant>) {
        let old = self.waker.replace(Some(waker.clone()));
        self.armed.set(true);
        self.deadline.set(deadline);
        drop(old);
    }

    fn disarm(&self) {
        self.armed.set(false);
        drop(self.waker.take());
    }
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("armed", &self.armed.get())
            .finish_non_exhaustive()
    }
}

/// Runs each time the core's tokio runtime is about to wait in its reactor: tokio's
/// tasks may have used the core meanwhile, and that must not wait for the park to end.
/// SQEs they queued (ops, `MSG_RING` wakes of other cores) are submitted, and the park
/// ends if they spawned a task of ours, left work for a turn or set a timer earlier
/// than the park's.
fn before_park() {
    crate::driver::submit_queued();
    let (Some(tasks), Some(driver)) = (crate::task::current(), crate::driver::current()) else {
        return;
    };
    let parked = &tasks.parked;
    if !parked.armed.get() {
        return;
    }
    let earlier = match (driver.next_deadline(), parked.deadline.get()) {
        (Some(next), Some(armed)) => next < armed,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if earlier || tasks.has_ready() || driver.has_work() {
        parked.wake_park();
    }
}

/// The future a parked core blocks on in tokio: ready once the core has work.
struct Park<'a> {
    bridge: &'a Bridge,
    driver: &'a Driver,
    tasks: &'a Tasks,
    /// Whether the core's inbox has messages.
    work: &'a dyn Fn() -> bool,
}

impl Future for Park<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.driver.next_deadline();
        // Armed before looking, so a wake from here on ends the park.
        self.tasks.parked.arm(cx.waker(), deadline);
        if self.tasks.has_ready() || (self.work)() || self.driver.has_work() {
            return Poll::Ready(());
        }
        match self.bridge.park_fd.poll_read_ready(cx) {
            Poll::Ready(Ok(mut ready)) => {
                // Cleared before the driver reaps: a CQE posted from now on is a new
                // edge for tokio's reactor, so none is missed.
                ready.clear_ready();
                return Poll::Ready(());
            }
            // tokio's reactor is gone: park no more (the driver's turn still runs).
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => {}
        }
        let Some(deadline) = deadline else {
            return Poll::Pending;
        };
        let mut sleep = self.bridge.sleep.borrow_mut();
        if self.bridge.armed.get() != Some(deadline) {
            self.bridge.armed.set(Some(deadline));
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
        // tokio rounds its timers up to the next millisecond: this fires no earlier
        // than the deadline, which the driver's turn then finds due.
        sleep.as_mut().poll(cx)
    }
}

/// Pending once (after asking to be polled again), then ready: a `block_on` of it lets
/// tokio run its ready tasks and poll its reactor without waiting.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
