//! The per-core ring: setup, submit, park, reap, and the timers whose nearest deadline
//! bounds the park.
//!
//! One [`Driver`] per core thread. It is `!Send` and lives and dies on that thread, as
//! `SINGLE_ISSUER`/`DEFER_TASKRUN` require. Ops reach it through a thread-local set
//! while the core runs ([`Driver::enter`]).
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | the driver and what ops and the executor ask of it |
//! | `setup.rs` | building the ring and its registered resources; the driver's drop |
//! | `slots.rs` | the op slot table: every op's state, as a state machine without a ring |
//! | `op.rs` | the `Op`/`MultiOp` futures and the traits each opcode implements |
//! | `ring.rs` | a turn of the ring: the queue of SQEs, submission, waiting, reaping |
//! | `timers.rs` | the timers whose nearest deadline bounds a park |
//! | `messages.rs` | `MSG_RING` wake-ups sent to other cores' rings |
//! | `shutdown.rs` | cancelling and draining everything; hand-offs and closes of fds |
//!
//! Everything the driver does while borrowed is a transition of the slot table or of
//! its own queues; whatever that makes ready (owners to wake, ops to finish, slots to
//! drop) is collected and handled after the borrow has ended, because any of it may
//! run foreign code that calls back into the driver.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::squeue::Entry;
use io_uring::IoUring;

use crate::buf::fixed::Pool;
use crate::buf::ring::BufRing;
use crate::stats::Counters;
use crate::sys::uring::RingFd;
use crate::task::Owner;

mod epoll;
mod exec;
mod files;
mod messages;
mod op;
pub(crate) mod ops;
mod ring;
mod setup;
mod shutdown;
mod slots;
mod timers;

pub(crate) use exec::Exec;
pub(crate) use files::FileTable;
pub(crate) use op::{
    Completable, MultiOp, Multishot, Op, Runner, Step, CQE_BUFFER_SHIFT, CQE_F_BUFFER, CQE_F_MORE,
    CQE_F_NOTIF,
};
pub(crate) use shutdown::close;
pub(crate) use timers::TimerKey;

use op::{Abandoned, AbandonedMulti};
use slots::{Abandon, AbandonStream, Cqe, Queued, Slots, Token};
use timers::Timers;

/// `user_data` of the `ASYNC_CANCEL`s the driver queues: their CQEs carry nothing.
const CANCEL_UD: u64 = u64::MAX;
/// `user_data` of the read of this core's wake-up eventfd.
const WAKE_UD: u64 = u64::MAX - 1;
/// `user_data` of a queued SQE whose op was withdrawn: it is skipped, never submitted.
const WITHDRAWN_UD: u64 = u64::MAX - 4;
/// The low half of every `user_data` of the driver's own SQEs is at least this (see
/// also `messages.rs`); an op's token has its slot index there, far below it.
const SPECIAL_LOW: u32 = u32::MAX - 5;

thread_local! {
    /// The current driver: null, or a pointer from `Rc::into_raw` that owns one strong
    /// count for as long as it is here (given by [`Driver::enter`], taken back by its
    /// guard's drop). A plain `Cell` of a pointer, so reading it is one load.
    static CURRENT: Cell<*const Driver> = const { Cell::new(std::ptr::null()) };
    /// The id of the current driver (0: none), for the checks made on every op.
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
}

/// The id of the driver of the core running on this thread (0: none). Ids are never
/// reused, so a registered buffer or file can tell whether this is its ring.
pub(crate) fn current_id() -> u64 {
    CURRENT_ID.with(Cell::get)
}

/// Runs `f` on the driver of the core running on this thread, if any, without
/// touching its reference count (for calls on paths where that round trip shows).
#[inline]
fn with_current<R>(f: impl FnOnce(&Driver) -> R) -> Option<R> {
    let driver = CURRENT.with(Cell::get);
    if driver.is_null() {
        return None;
    }
    // SAFETY: as in `current`: a non-null pointer in CURRENT came from `Rc::into_raw`
    // and owns a strong count until its guard takes it back, so the driver outlives
    // this call, which cannot reach that guard.
    Some(f(unsafe { &*driver }))
}

/// Hands what this thread's core queued to the kernel now, if the thread runs a core
/// and its driver is not in use further up the stack.
#[inline]
pub(crate) fn submit_queued() {
    with_current(|driver| {
        let Engine::Ring(inner) = &driver.engine else {
            return;
        };
        if let Ok(mut inner) = inner.try_borrow_mut() {
            if !inner.pending.is_empty() {
                inner.submit(false, None);
            }
        }
    });
}

/// A new fd numbered `fd` came into the runtime's hands (made by an op, a bind, a pair,
/// or handed over by its owner): on the readiness backend, whatever was known of an
/// earlier fd of that number (closed by a path that did not tell the driver, say a
/// socket a failed connect owned) is forgotten, so it is neither taken for registered
/// in the epoll set nor for non-blocking.
pub(crate) fn fresh_fd(fd: RawFd) {
    with_current(|driver| {
        if let Engine::Epoll(poller) = &driver.engine {
            if let Ok(mut poller) = poller.try_borrow_mut() {
                poller.forget(fd);
            }
        }
    });
}

/// The driver of the core running on this thread, if any.
pub(crate) fn current() -> Option<Rc<Driver>> {
    let driver = CURRENT.with(Cell::get);
    if driver.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer in CURRENT came from `Rc::into_raw` and owns a strong
    // count until its guard takes it back, so the driver is alive; the new count is
    // this `Rc`'s own.
    unsafe {
        Rc::increment_strong_count(driver);
        Some(Rc::from_raw(driver))
    }
}

/// Whether an op of opcode `code` can run on this thread's core: on the readiness
/// backend, where every op the runtime builds runs as its plain syscall, always; on
/// io_uring (or outside a runtime), if the kernel's io_uring has the opcode.
pub(crate) fn op_available(code: u8) -> bool {
    with_current(|driver| !driver.is_ring()).unwrap_or(false)
        || crate::sys::probe::Probe::get().is_ok_and(|probe| probe.supports(code))
}

/// The error of an op started outside a runtime.
pub(crate) fn no_runtime() -> io::Error {
    io::Error::other(
        "no runtime on this thread: I/O must be started from a future run by \
         Runtime::block_on or a task the runtime spawned",
    )
}

/// The error of an op started while its core shuts down.
pub(super) fn shutting_down() -> io::Error {
    io::Error::other("the runtime is shutting down")
}

/// How a core's ring is set up.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) entries: u32,
    pub(crate) sqpoll_idle: Option<Duration>,
    /// Wake other cores with `MSG_RING` where the kernel has it.
    pub(crate) msg_ring: bool,
    /// Provided buffers for multishot receives: count and size (count 0: none).
    pub(crate) recv_buffers: (u16, u32),
    /// Registered buffers: count and size (count 0: none).
    pub(crate) fixed_buffers: (u16, usize),
    /// Slots in the registered-file table (0: none).
    pub(crate) fixed_files: u32,
    /// The core parks in a tokio reactor that watches the ring's fd (see
    /// `tokio_bridge.rs`): the ring is set up to be polled. Always false without the
    /// `tokio-bridge` feature.
    pub(crate) tokio_bridge: bool,
}

/// Which backend a core runs on, and what it needs to be set up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Choice {
    /// io_uring, with what the probe found.
    Ring(&'static crate::sys::probe::Probe),
    /// The readiness backend (epoll).
    Epoll,
}

/// The per-core ring (or epoll set) and everything that must stay alive while the
/// kernel may use it.
pub(crate) struct Driver {
    /// Unique over the process's life (see [`current_id`]).
    id: u64,
    engine: Engine,
    /// The provided-buffer ring, or why there is none.
    recv_ring: Result<Rc<BufRing>, Missing>,
    /// The registered-buffer pool, or why there is none.
    fixed_pool: Result<Rc<Pool>, Missing>,
    /// The registered-file table, or why there is none.
    files: Result<Rc<FileTable>, Missing>,
}

/// Why a core lacks one of its optional resources.
#[derive(Debug, Clone)]
enum Missing {
    /// The builder asked for none; the message says how to ask.
    Disabled(&'static str),
    /// Setting it up failed; the message says why.
    Failed(String),
}

impl Missing {
    fn error(&self) -> io::Error {
        match self {
            Missing::Disabled(how) => io::Error::new(io::ErrorKind::Unsupported, *how),
            Missing::Failed(why) => io::Error::new(io::ErrorKind::Unsupported, why.clone()),
        }
    }
}

/// The backend: the ring's state, or the readiness backend's, borrowed for each call.
#[expect(
    clippy::large_enum_variant,
    reason = "one per core, made once and never moved; boxing the ring would add a load to every op"
)]
enum Engine {
    Ring(RefCell<Inner>),
    Epoll(epoll::Engine),
}

/// The ring's state, borrowed for each of the driver's calls.
struct Inner {
    ring: IoUring,
    ring_fd: RingFd,
    sqpoll: bool,
    /// Every op the driver has taken (see `slots.rs`).
    slots: Slots,
    /// SQEs queued since the last submission, in order; the kernel has not seen them.
    /// A turn of the ring hands them all over (see [`Inner::submit`]).
    pending: Vec<Entry>,
    /// Submissions so far: a slot whose `epoch` is this one has its SQE in `pending`.
    /// 64 bits, so it never wraps back to the epoch of an op still in flight.
    epoch: u64,
    /// The provided-buffer ring, to count the buffers that CQEs name.
    bufs: Option<Rc<BufRing>>,
    timers: Timers,
    /// The wake-up eventfd and the 8 bytes the ring reads it into: a raw allocation
    /// (never a moved `Box`, which would invalidate the kernel's pointer), freed only
    /// when the driver is, after shutdown has reaped the read's CQE.
    wake_fd: Option<RawFd>,
    wake_buf: crate::buf::KernelBox<u64>,
    /// The read of the wake-up eventfd is in the ring (and in flight).
    wake_armed: bool,
    /// Owners and abandoned ops made ready while the driver was borrowed; they are
    /// woken and finished after the borrow ends, since either may call back into the
    /// driver. For the same reason no waker is ever dropped while it is borrowed.
    ready: Vec<Owner>,
    finished: Vec<(Box<dyn Abandoned>, Cqe)>,
    closed: bool,
    /// `MSG_RING` may be sent from this ring (the kernel has it and the builder allows it).
    msg_ring: bool,
    /// Whether a successful `MSG_RING` posts no CQE to this ring (`CQE_SKIP_SUCCESS`);
    /// cancels skip theirs too.
    msg_skip: bool,
    /// Cores whose `MSG_RING` failed: the executor wakes them another way.
    msg_failed: Vec<u16>,
    counters: Arc<Counters>,
}

impl Driver {
    /// The ring's state; only called on the io_uring backend.
    #[inline(always)]
    fn inner(&self) -> &RefCell<Inner> {
        match &self.engine {
            Engine::Ring(inner) => inner,
            Engine::Epoll(_) => unreachable!("a ring call on the readiness backend"),
        }
    }

    /// The readiness backend's state; only called on it.
    fn poller(&self) -> &epoll::Engine {
        match &self.engine {
            Engine::Epoll(poller) => poller,
            Engine::Ring(_) => unreachable!("a readiness call on the io_uring backend"),
        }
    }

    /// Whether this core runs on io_uring (else on the readiness backend).
    #[inline(always)]
    pub(crate) fn is_ring(&self) -> bool {
        matches!(self.engine, Engine::Ring(_))
    }

    /// Runs `timers` on whichever backend this is.
    fn with_timers<R>(&self, f: impl FnOnce(&mut Timers) -> R) -> R {
        match &self.engine {
            Engine::Ring(inner) => f(&mut inner.borrow_mut().timers),
            Engine::Epoll(poller) => f(&mut poller.borrow_mut().timers),
        }
    }

    /// The readiness backend: runs `entry` now as a plain syscall.
    ///
    /// # Safety
    ///
    /// `entry` comes from the `prepare` of an op that is alive and untouched for the
    /// call (the [`Completable`] contract's rule 1 then makes its pointers valid).
    pub(crate) unsafe fn exec(&self, entry: &Entry, retry: bool) -> Exec {
        // SAFETY: the caller's promise; the syscall runs no foreign code, so the
        // borrow is safe to hold across it.
        unsafe { self.poller().borrow_mut().exec(entry, retry) }
    }

    /// The readiness backend: waits for `events` on `fd` for the poll with `waker`.
    fn wait_ready(&self, fd: RawFd, events: u32, waker: &Waker) -> io::Result<Token> {
        self.poller().borrow_mut().wait(fd, events, waker)
    }

    /// The readiness backend: waits for the next turn, for the poll with `waker`.
    fn wait_turn(&self, waker: &Waker) -> io::Result<Token> {
        self.poller().borrow_mut().wait_turn(waker)
    }

    /// The readiness backend: whether the wait `token` has ended.
    fn poll_wait(&self, token: Token, cx: &mut Context<'_>) -> Poll<Cqe> {
        let (poll, leftover) = self.poller().borrow_mut().poll_wait(token, cx);
        drop(leftover);
        poll
    }

    /// The readiness backend: the wait's future is gone.
    fn withdraw_wait(&self, token: Token) {
        let leftover = self.poller().borrow_mut().withdraw(token);
        drop(leftover);
    }

    /// The core's provided-buffer ring, or an error that says why there is none.
    pub(crate) fn recv_ring(&self) -> io::Result<&Rc<BufRing>> {
        self.recv_ring.as_ref().map_err(Missing::error)
    }

    /// The core's registered-buffer pool, or an error that says why there is none.
    pub(crate) fn fixed_pool(&self) -> io::Result<&Rc<Pool>> {
        self.fixed_pool.as_ref().map_err(Missing::error)
    }

    /// The core's registered-file table, or an error that says why there is none.
    pub(crate) fn files(&self) -> io::Result<&Rc<FileTable>> {
        self.files.as_ref().map_err(Missing::error)
    }

    /// Puts `fd` in slot `index` of the registered-file table at once, outside the
    /// submission queue (only for a slot no queued op names).
    pub(crate) fn update_file(&self, index: u32, fd: RawFd) -> io::Result<()> {
        self.inner()
            .borrow()
            .ring
            .submitter()
            .register_files_update(index, &[fd])
            .map(drop)
    }

    /// This driver's id (see [`current_id`]).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Makes this driver the current one on this thread until the guard is dropped.
    pub(crate) fn enter(self: &Rc<Self>) -> EnterGuard {
        let prev = CURRENT.with(|c| c.replace(Rc::into_raw(self.clone())));
        let prev_id = CURRENT_ID.with(|c| c.replace(self.id));
        EnterGuard { prev, prev_id }
    }

    /// Has the ring read `fd`, so that a write to it ends a park.
    pub(crate) fn set_wake_fd(&self, fd: RawFd) {
        match &self.engine {
            Engine::Ring(inner) => inner.borrow_mut().wake_fd = Some(fd),
            Engine::Epoll(poller) => poller.borrow_mut().set_wake_fd(fd),
        }
    }

    /// The ring's own fd (not the registered index), for other rings to message; none
    /// on the readiness backend.
    pub(crate) fn ring_fd(&self) -> Option<RawFd> {
        match &self.engine {
            Engine::Ring(inner) => Some(inner.borrow().ring.as_raw_fd()),
            Engine::Epoll(_) => None,
        }
    }

    /// Whether a turn would find something without waiting: CQEs posted, completions
    /// the kernel holds for this thread (`SQ_TASKRUN`) or in overflow, or a due timer.
    /// For spinning before a park; a few loads, plus a clock read if a timer is set.
    pub(crate) fn has_work(&self) -> bool {
        let inner = match &self.engine {
            Engine::Ring(inner) => inner,
            Engine::Epoll(poller) => return poller.borrow().has_work(),
        };
        let mut inner = inner.borrow_mut();
        {
            let sq = inner.ring.submission();
            if sq.taskrun() || sq.cq_overflow() {
                return true;
            }
        }
        if !inner.ring.completion().is_empty() {
            return true;
        }
        inner
            .timers
            .next_deadline()
            .is_some_and(|deadline| deadline <= Instant::now())
    }

    /// The fd that polls readable when a turn would find work: the ring's (posted
    /// CQEs, and the kernel's own pending completions unless `DEFER_TASKRUN`, which the
    /// ring then must not have), or the epoll set's. For a reactor that parks the
    /// thread in this driver's place.
    #[cfg(feature = "tokio-bridge")]
    pub(crate) fn park_fd(&self) -> RawFd {
        match &self.engine {
            Engine::Ring(inner) => inner.borrow().ring.as_raw_fd(),
            Engine::Epoll(poller) => poller.borrow().fd(),
        }
    }

    /// The nearest deadline of this core's timers, if it has any.
    #[cfg(feature = "tokio-bridge")]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.with_timers(|timers| timers.next_deadline())
    }

    /// What a turn that parks does first, for a park somewhere else: the read of the
    /// wake-up eventfd is armed (so wakes from other threads end the park) and every
    /// queued SQE is submitted.
    #[cfg(feature = "tokio-bridge")]
    pub(crate) fn prepare_park(&self) {
        if let Engine::Ring(inner) = &self.engine {
            let mut inner = inner.borrow_mut();
            inner.arm_wake_read();
            inner.submit(false, None);
        }
    }

    /// Submits what is queued without waiting, e.g. wake messages queued by a future
    /// that is about to return from `block_on`.
    pub(crate) fn flush(&self) {
        if let Engine::Ring(inner) = &self.engine {
            inner.borrow_mut().submit(false, None);
        }
    }

    /// Hands every queued SQE to the kernel and returns once the kernel has taken them
    /// all (with SQPOLL too): from then on no SQE of this ring can name an fd that is
    /// closed or handed off afterwards.
    pub(crate) fn submit_all(&self) {
        let Engine::Ring(inner) = &self.engine else {
            return;
        };
        if let Ok(mut inner) = inner.try_borrow_mut() {
            inner.submit_all();
        }
    }

    /// Queues `data`'s SQE for the kernel (the next turn submits it), recording who
    /// waits for it, and returns its token.
    #[inline]
    fn submit<T: Completable>(&self, data: &mut T, waker: &Waker) -> io::Result<Token> {
        let mut entry = data.prepare(crate::buf::RingId::new(self.id));
        let mut inner = self.inner().borrow_mut();
        let inner = &mut *inner;
        if inner.closed {
            return Err(shutting_down());
        }
        let token = inner.slots.submit(inner.queued(), waker);
        entry.set_user_data(token.0);
        inner.pending.push(entry);
        inner.counters.ops_submitted.add(1);
        Ok(token)
    }

    /// Queues the SQE of a multishot op; its CQEs queue up in the slot.
    fn submit_multi<T: Multishot>(&self, data: &mut T, waker: &Waker) -> io::Result<Token> {
        let mut entry = data.prepare(crate::buf::RingId::new(self.id));
        let mut inner = self.inner().borrow_mut();
        let inner = &mut *inner;
        if inner.closed {
            return Err(shutting_down());
        }
        let token = inner.slots.submit_stream(inner.queued(), Owner::of(waker));
        entry.set_user_data(token.0);
        inner.pending.push(entry);
        inner.counters.ops_submitted.add(1);
        Ok(token)
    }

    /// Queues an op nobody will await: its slot owns it from the start and drops its
    /// output at the CQE. Used for closing fds behind ops that may still name them.
    /// Hands the op back if the driver takes no more (it is shutting down).
    pub(crate) fn submit_detached<T: Completable>(&self, mut data: T) -> Result<(), T> {
        let mut entry = data.prepare(crate::buf::RingId::new(self.id));
        let mut inner = self.inner().borrow_mut();
        let inner = &mut *inner;
        if inner.closed {
            return Err(data);
        }
        let token = inner.slots.submit_detached(inner.queued(), Box::new(data));
        entry.set_user_data(token.0);
        inner.pending.push(entry);
        inner.counters.ops_submitted.add(1);
        Ok(())
    }

    /// Takes the op's CQE if it has come, or records who to wake when it does.
    #[inline(always)]
    fn poll_op(&self, token: Token, cx: &mut Context<'_>) -> Poll<Cqe> {
        let (poll, leftover) = self.inner().borrow_mut().slots.poll(token, cx.waker());
        // A waker's drop may run foreign code: not while the driver is borrowed.
        drop(leftover);
        poll
    }

    /// Takes the next CQE of a multishot op, or records who to wake when one comes.
    /// The slot is freed with the last CQE (the one without `F_MORE`).
    fn poll_multi(&self, token: Token, cx: &mut Context<'_>) -> Poll<Cqe> {
        let (poll, leftover) = self
            .inner()
            .borrow_mut()
            .slots
            .poll_stream(token, cx.waker());
        drop(leftover);
        poll
    }

    /// The op's future is gone: free its resources now if the kernel is done with them
    /// or never saw them (the SQE was not submitted yet: it is withdrawn), or keep them
    /// in the slot until the CQE and ask the kernel to cancel.
    fn abandon<T: Completable>(&self, token: Token, data: T) {
        let mut guard = self.inner().borrow_mut();
        let inner = &mut *guard;
        match inner.slots.abandon(token, data, inner.epoch) {
            Abandon::Done(data, cqe) => {
                drop(guard);
                // Rule 2: an output that owns a resource (an fd) closes it when dropped.
                drop(data.complete(cqe.into_result(), cqe.flags));
            }
            Abandon::Withdrawn(data, owner, queued) => {
                inner.withdraw(token, queued);
                // The owner and the op's resources are dropped after the borrow: both
                // may run foreign code that calls back into the driver.
                drop(guard);
                drop((owner, data));
            }
            Abandon::Orphaned { owner, cancel } => {
                if cancel && !inner.closed {
                    inner.cancel(token.0);
                }
                drop(guard);
                drop(owner);
            }
        }
    }

    /// A multishot op's stream is gone: release what its queued CQEs carry, and keep
    /// the op in its slot until the last CQE if the kernel is not done with it; or, if
    /// its SQE was never submitted, withdraw it.
    fn abandon_multi<T: Multishot>(&self, token: Token, data: T) {
        let abandoned = {
            let mut guard = self.inner().borrow_mut();
            let inner = &mut *guard;
            let abandoned = inner.slots.abandon_stream(token, inner.epoch);
            if let AbandonStream::Withdrawn(_, queued) = &abandoned {
                inner.withdraw(token, *queued);
            }
            abandoned
        };
        // Everything below runs outside the driver's borrow.
        let mut data: Box<dyn Abandoned> = Box::new(AbandonedMulti(data));
        let queued = match abandoned {
            AbandonStream::Withdrawn(stream, _) => return drop((stream, data)),
            AbandonStream::Ended(stream) => {
                let mut cqes = (*stream).into_cqes();
                let last = cqes.pop_back().expect("an ended stream holds its last CQE");
                for cqe in cqes {
                    data.more(cqe);
                }
                return data.finish(last);
            }
            AbandonStream::InFlight(cqes) => cqes,
        };
        for cqe in queued {
            data.more(cqe);
        }
        let mut inner = self.inner().borrow_mut();
        let leftover = inner.slots.orphan_stream(token, data);
        if !inner.closed {
            inner.cancel(token.0);
        }
        drop(inner);
        drop(leftover);
    }

    /// One turn of the ring: submit what is queued; if `park`, wait for a completion or
    /// the next timer; reap every CQE; fire due timers. The owners made ready are moved
    /// into `woken` for the executor to schedule; ops whose futures are gone are
    /// finished here, after the borrow.
    pub(crate) fn turn(&self, park: bool, woken: &mut Vec<Owner>) {
        let inner = match &self.engine {
            Engine::Ring(inner) => inner,
            Engine::Epoll(poller) => return poller.borrow_mut().turn(park, woken),
        };
        let finished = {
            let mut inner = inner.borrow_mut();
            inner.arm_wake_read();
            if park {
                inner.park();
            } else {
                inner.submit(false, None);
            }
            inner.reap();
            if !inner.timers.is_empty() {
                let Inner {
                    timers,
                    ready,
                    counters,
                    ..
                } = &mut *inner;
                timers.fire(Instant::now(), ready, counters);
            }
            woken.append(&mut inner.ready);
            if inner.finished.is_empty() {
                return;
            }
            std::mem::take(&mut inner.finished)
        };
        for (op, cqe) in finished {
            op.finish(cqe);
        }
    }
}

impl Inner {
    /// Where the next SQE queued goes: this submission, at the end of `pending`.
    #[inline]
    fn queued(&self) -> Queued {
        // An index into `pending`, which cannot outgrow u32 (each entry is 64 bytes).
        Queued {
            epoch: self.epoch,
            index: self.pending.len() as u32,
        }
    }

    /// Skips the queue entry of the op `token`, withdrawn before it was submitted: the
    /// kernel never sees it.
    fn withdraw(&mut self, token: Token, queued: Queued) {
        debug_assert_eq!(queued.epoch, self.epoch);
        let entry = &mut self.pending[queued.index as usize];
        debug_assert_eq!(
            entry.get_user_data(),
            token.0,
            "a slot's queue entry is its own"
        );
        entry.set_user_data(WITHDRAWN_UD);
        self.counters.ops_withdrawn.add(1);
    }

    /// Every op the kernel may still be working on (the wake-up read included).
    fn in_flight(&self) -> usize {
        self.slots.in_flight() + usize::from(self.wake_armed)
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// Restores the previous current driver when dropped.
pub(crate) struct EnterGuard {
    /// What CURRENT held before (null, or a pointer that owns a strong count).
    prev: *const Driver,
    prev_id: u64,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        // What this core queued goes to the kernel before the thread leaves the core,
        // by a return or a panic: a socket dropped outside the core is closed at once,
        // and no queued SQE may name its number then.
        if let Some(driver) = current() {
            driver.submit_all();
        }
        CURRENT_ID.with(|c| c.set(self.prev_id));
        let mine = CURRENT.with(|c| c.replace(self.prev));
        if !mine.is_null() {
            // SAFETY: every non-null pointer CURRENT holds came from `Rc::into_raw` and
            // owns a strong count (`enter` gave it; a guard's `prev` took it over, and
            // gives it back to CURRENT here), so taking it out gives that count back.
            drop(unsafe { Rc::from_raw(mine) });
        }
    }
}

/// An `io_uring_enter` error the driver cannot recover from (a bad ring fd, or use
/// from a thread that does not own the ring): a bug, not an input.
fn fatal(e: io::Error) -> ! {
    panic!("runtime: io_uring_enter failed unrecoverably: {e}")
}
