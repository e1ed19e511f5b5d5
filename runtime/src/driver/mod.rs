//! The per-core ring: setup, submit, park, reap, and the timers whose nearest deadline
//! bounds the park.
//!
//! One [`Driver`] per core thread. It is `!Send` and lives and dies on that thread, as
//! `SINGLE_ISSUER`/`DEFER_TASKRUN` require. Ops reach it through a thread-local set
//! while the core runs ([`Driver::enter`]); see `op.rs` for the slot lifecycle that
//! keeps their memory safe.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::squeue::{self, Entry};
use io_uring::{opcode, types, IoUring};
use slab::Slab;

use crate::buf::fixed::Pool;
use crate::buf::ring::{self, BufRing};
use crate::stats::Counters;
use crate::sys::probe::Probe;
use crate::sys::uring::{RingFd, ENTER_GETEVENTS, ENTER_SQ_WAIT, ENTER_SQ_WAKEUP};

mod files;
mod op;
pub(crate) mod ops;

pub(crate) use files::FileTable;
pub(crate) use op::{has_more, Completable, MultiOp, Multishot, Op};
use op::{Abandoned, Cqe, Lifecycle, OpSlot, Stream, Token};

/// `user_data` of the `ASYNC_CANCEL`s the driver queues: their CQEs carry nothing.
const CANCEL_UD: u64 = u64::MAX;
/// `user_data` of the read of this core's wake-up eventfd.
const WAKE_UD: u64 = u64::MAX - 1;
/// `user_data` of the CQE another ring's `MSG_RING` posts here: only a wake-up.
const MSG_UD: u64 = u64::MAX - 2;
/// Low half of the `user_data` of a `MSG_RING` this ring sent (the high half is the
/// target core); its CQE comes only if it failed (or without `CQE_SKIP_SUCCESS`).
const MSG_SENT_LOW: u32 = u32::MAX - 3;
/// `user_data` of a queued SQE whose op was withdrawn: it is skipped, never submitted.
const WITHDRAWN_UD: u64 = u64::MAX - 4;

const fn msg_sent_ud(core: u16) -> u64 {
    (core as u64) << 32 | MSG_SENT_LOW as u64
}
/// How long shutdown waits before cancelling what is left again.
const SHUTDOWN_RECANCEL: Duration = Duration::from_millis(100);

thread_local! {
    static CURRENT: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
    /// The id of the current driver (0: none), for the checks made on every op.
    static CURRENT_ID: Cell<u64> = const { Cell::new(0) };
}

/// The id of the driver of the core running on this thread (0: none). Ids are never
/// reused, so a registered buffer or file can tell whether this is its ring.
pub(crate) fn current_id() -> u64 {
    CURRENT_ID.with(Cell::get)
}

/// The driver of the core running on this thread, if any.
pub(crate) fn current() -> Option<Rc<Driver>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The error of an op started outside a runtime.
pub(crate) fn no_runtime() -> io::Error {
    io::Error::other(
        "no runtime on this thread: I/O must be started from a future run by \
         Runtime::block_on or a task the runtime spawned",
    )
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
}

/// The per-core ring and everything that must stay alive while the kernel may use it.
pub(crate) struct Driver {
    /// Unique over the process's life (see [`current_id`]).
    id: u64,
    inner: RefCell<Inner>,
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

struct Inner {
    ring: IoUring,
    ring_fd: RingFd,
    sqpoll: bool,
    ops: Slab<OpSlot>,
    generation: u32,
    /// SQEs queued since the last submission, in order; the kernel has not seen them.
    /// A turn of the ring hands them all over (see [`Inner::submit`]).
    pending: Vec<Entry>,
    /// Submissions so far: a slot whose `epoch` is this one has its SQE in `pending`.
    /// 64 bits, so it never wraps back to the epoch of an op still in flight.
    epoch: u64,
    /// Ops dropped in flight (`Ignored`) per socket they work on, for hand-offs to wait
    /// for (see [`Driver::release_fd`]).
    orphans: HashMap<RawFd, u32>,
    /// The provided-buffer ring, to count the buffers that CQEs name.
    bufs: Option<Rc<BufRing>>,
    /// Ops the kernel may still be working on: slots that are not `Completed`, and the
    /// wake-up read.
    in_flight: usize,
    timers: BTreeMap<(Instant, u64), Waker>,
    timer_seq: u64,
    /// The wake-up eventfd and the 8 bytes the ring reads it into: a raw allocation
    /// (never a moved `Box`, which would invalidate the kernel's pointer), freed only
    /// when the driver is, after shutdown has reaped the read's CQE.
    wake_fd: Option<RawFd>,
    wake_buf: crate::buf::KernelBox<u64>,
    wake_armed: bool,
    /// Wakers and abandoned ops made ready while the driver was borrowed; they are woken
    /// and finished after the borrow ends, since either may call back into the driver.
    /// For the same reason no waker is ever dropped while the driver is borrowed.
    ready: Vec<Waker>,
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
    /// Sets up a ring with the best flags this kernel has (see [`Probe`]).
    pub(crate) fn new(
        config: &Config,
        probe: &Probe,
        counters: Arc<Counters>,
    ) -> io::Result<Driver> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entries = config.entries;
        let (ring, mut flags) = probe.setup_ring(entries, config.sqpoll_idle)?;
        let ring_fd = RingFd::register(ring.as_raw_fd(), ring.params().is_feature_no_iowait());
        flags.registered_fd = ring_fd.is_registered();
        flags.no_iowait = ring_fd.waits_without_iowait();
        counters.set_ring(flags);
        let msg_skip = ring.params().is_feature_skip_cqe_on_success();
        let recv_ring = match config.recv_buffers {
            (0, _) => Err(Missing::Disabled(
                "this core has no receive buffers: multishot receive needs \
                 Builder::recv_buffers(count, size) with a count above 0",
            )),
            (count, size) => {
                let buf_ring = Rc::new(BufRing::new(count, size)?);
                // SAFETY: rule 1: the descriptor block is page-aligned, `entries` long,
                // and outlives the registration: the driver holds an Rc to it and
                // unregisters it in its drop, before letting go.
                let registered = unsafe {
                    ring.submitter().register_buf_ring_with_flags(
                        buf_ring.ring_addr(),
                        buf_ring.entries(),
                        ring::GROUP,
                        0,
                    )
                };
                match registered {
                    Ok(()) => Ok(buf_ring),
                    Err(e) => Err(Missing::Failed(format!(
                        "registering {count} receive buffers of {size} bytes failed: {e} \
                         (provided-buffer rings need Linux 5.19)"
                    ))),
                }
            }
        };
        let fixed_pool = match config.fixed_buffers {
            (0, _) => Err(Missing::Disabled(
                "this core has no registered buffers: ask for them with \
                 Builder::fixed_buffers(count, size)",
            )),
            (count, size) => register_pool(&ring, count, size, id)?,
        };
        let files = match config.fixed_files {
            0 => Err(Missing::Disabled(
                "this core has no registered-file table: ask for one with \
                 Builder::fixed_files(count)",
            )),
            count => FileTable::register(&ring.submitter(), count, probe)
                .map(Rc::new)
                .map_err(Missing::Failed),
        };
        let bufs = recv_ring.as_ref().ok().cloned();
        Ok(Driver {
            id,
            recv_ring,
            fixed_pool,
            files,
            inner: RefCell::new(Inner {
                ring,
                ring_fd,
                sqpoll: flags.sqpoll,
                ops: Slab::with_capacity(entries as usize),
                generation: 0,
                pending: Vec::with_capacity(entries as usize),
                epoch: 0,
                orphans: HashMap::new(),
                bufs,
                in_flight: 0,
                timers: BTreeMap::new(),
                timer_seq: 0,
                wake_fd: None,
                wake_buf: crate::buf::KernelBox::new(0),
                wake_armed: false,
                ready: Vec::new(),
                finished: Vec::new(),
                closed: false,
                msg_ring: config.msg_ring && probe.supports(opcode::MsgRingData::CODE),
                msg_skip,
                msg_failed: Vec::new(),
                counters,
            }),
        })
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
        self.inner
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
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let prev_id = CURRENT_ID.with(|c| c.replace(self.id));
        EnterGuard { prev, prev_id }
    }

    /// Has the ring read `fd`, so that a write to it ends a park.
    pub(crate) fn set_wake_fd(&self, fd: RawFd) {
        self.inner.borrow_mut().wake_fd = Some(fd);
    }

    /// The ring's own fd (not the registered index), for other rings to message.
    pub(crate) fn ring_fd(&self) -> RawFd {
        self.inner.borrow().ring.as_raw_fd()
    }

    /// Queues an `IORING_OP_MSG_RING` that posts a wake-up CQE to the ring `target_fd`
    /// (the ring of process-wide core `core`); the next turn submits it with the rest.
    /// `false` if it could not be queued: no `MSG_RING`, or the driver is busy (a wake
    /// sent from inside a driver call) or closed; the caller then uses the eventfd.
    pub(crate) fn send_msg(&self, target_fd: RawFd, core: u16) -> bool {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return false;
        };
        if !inner.msg_ring || inner.closed {
            return false;
        }
        let mut entry = opcode::MsgRingData::new(types::Fd(target_fd), 0, MSG_UD, None)
            .build()
            .user_data(msg_sent_ud(core));
        if inner.msg_skip {
            entry = entry.flags(squeue::Flags::SKIP_SUCCESS);
        }
        inner.pending.push(entry);
        true
    }

    /// Whether a turn would find something without waiting: CQEs posted, completions
    /// the kernel holds for this thread (`SQ_TASKRUN`) or in overflow, or a due timer.
    /// For spinning before a park; a few loads, plus a clock read if a timer is set.
    pub(crate) fn has_work(&self) -> bool {
        let mut inner = self.inner.borrow_mut();
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
            .keys()
            .next()
            .is_some_and(|&(deadline, _)| deadline <= Instant::now())
    }

    /// Cores whose `MSG_RING` failed since the last call (no allocation when none).
    pub(crate) fn take_failed_msgs(&self) -> Vec<u16> {
        std::mem::take(&mut self.inner.borrow_mut().msg_failed)
    }

    /// Submits what is queued without waiting, e.g. wake messages queued by a future
    /// that is about to return from `block_on`.
    pub(crate) fn flush(&self) {
        self.inner.borrow_mut().submit(false, None);
    }

    /// Hands every queued SQE to the kernel and returns once the kernel has taken them
    /// all (with SQPOLL too): from then on no SQE of this ring can name an fd that is
    /// closed or handed off afterwards.
    pub(crate) fn submit_all(&self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.submit_all();
        }
    }

    /// Readies `fd` to leave the runtime (`into_std`): every queued SQE goes to the
    /// kernel while the fd is still ours, and the last CQE of every dropped op still in
    /// flight on it is waited for (their cancels are on the way), so no op of ours acts
    /// on the socket once its new owner has it.
    pub(crate) fn release_fd(&self, fd: RawFd) {
        let mut last_cancel = Instant::now();
        loop {
            let (ready, finished) = {
                let mut inner = self.inner.borrow_mut();
                inner.submit_all();
                if !inner.orphans.contains_key(&fd) {
                    return;
                }
                if last_cancel.elapsed() >= SHUTDOWN_RECANCEL {
                    inner.cancel_orphans(fd);
                    last_cancel = Instant::now();
                }
                inner.submit(true, Some(SHUTDOWN_RECANCEL));
                inner.reap();
                (
                    std::mem::take(&mut inner.ready),
                    std::mem::take(&mut inner.finished),
                )
            };
            for waker in ready {
                waker.wake();
            }
            for (op, cqe) in finished {
                op.finish(cqe);
            }
        }
    }

    /// Queues `entry` for the kernel (the next turn submits it) and returns its token.
    pub(super) fn submit(&self, entry: Entry, waker: &Waker) -> io::Result<Token> {
        let state = Lifecycle::Waiting(waker.clone());
        let queued = self.inner.borrow_mut().queue(entry, state);
        queued.map_err(|(e, _unqueued)| e)
    }

    /// Queues an op nobody will await: its slot owns it from the start and drops its
    /// output at the CQE. Used for closing fds behind ops that may still name them.
    /// Hands the op back if the driver takes no more (it is shutting down).
    pub(crate) fn submit_detached<T: Completable>(&self, mut data: T) -> Result<(), T> {
        let entry = data.prepare(crate::buf::RingId::new(self.id));
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return Err(data);
        }
        let queued = inner.queue(entry, Lifecycle::Ignored(Box::new(data)));
        debug_assert!(queued.is_ok(), "an open driver always queues");
        Ok(())
    }

    /// Queues the SQE of a multishot op; its CQEs queue up in the slot.
    pub(super) fn submit_multi(&self, entry: Entry, waker: &Waker) -> io::Result<Token> {
        let state = Lifecycle::Streaming(Box::new(Stream {
            waker: Some(waker.clone()),
            cqes: std::collections::VecDeque::new(),
        }));
        let queued = self.inner.borrow_mut().queue(entry, state);
        queued.map_err(|(e, _unqueued)| e)
    }

    /// Takes the next CQE of a multishot op, or records who to wake when one comes.
    /// The slot is freed with the last CQE (the one without `F_MORE`).
    pub(super) fn poll_multi(&self, token: Token, cx: &mut Context<'_>) -> Poll<Cqe> {
        let mut inner = self.inner.borrow_mut();
        let Some(slot) = inner.ops.get_mut(token.index()) else {
            unreachable!("an in-flight op always has its slot")
        };
        debug_assert_eq!(slot.generation, token.generation());
        let Lifecycle::Streaming(stream) = &mut slot.state else {
            unreachable!("a live multishot op's slot is streaming")
        };
        if let Some(cqe) = stream.cqes.pop_front() {
            if !has_more(cqe.flags) {
                let slot = inner.ops.remove(token.index());
                drop(inner);
                drop(slot);
            }
            return Poll::Ready(cqe);
        }
        let replaced = match &mut stream.waker {
            Some(waker) if waker.will_wake(cx.waker()) => return Poll::Pending,
            waker => waker.replace(cx.waker().clone()),
        };
        drop(inner);
        drop(replaced);
        Poll::Pending
    }

    /// A multishot op's stream is gone: release what its queued CQEs carry, and keep
    /// the op in its slot until the last CQE if the kernel is not done with it; or, if
    /// its SQE was never submitted, withdraw it.
    pub(super) fn abandon_multi<T: Multishot>(&self, token: Token, data: T) {
        let (mut queued, removed) = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            let Some(slot) = inner.ops.get_mut(token.index()) else {
                unreachable!("an in-flight op always has its slot")
            };
            if slot.epoch == inner.epoch {
                let slot = inner.withdraw(token.index());
                // Foreign code (the waker, the op's resources) runs after the borrow.
                drop(guard);
                drop((slot, data));
                return;
            }
            let Lifecycle::Streaming(stream) = &mut slot.state else {
                unreachable!("a live multishot op's slot is streaming")
            };
            let queued = std::mem::take(&mut stream.cqes);
            let ended = queued.back().is_some_and(|cqe| !has_more(cqe.flags));
            (queued, ended.then(|| inner.ops.remove(token.index())))
        };
        let mut data: Box<dyn Abandoned> = Box::new(op::AbandonedMulti(data));
        // Released outside the driver's borrow, like every waker and abandoned op.
        let ended = removed.is_some();
        drop(removed);
        let last = if ended { queued.pop_back() } else { None };
        for cqe in queued {
            data.more(cqe);
        }
        if let Some(last) = last {
            return data.finish(last);
        }
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        let Some(slot) = inner.ops.get_mut(token.index()) else {
            unreachable!("an in-flight op always has its slot")
        };
        let fd = data.fd();
        let replaced = std::mem::replace(&mut slot.state, Lifecycle::Ignored(data));
        if let Some(fd) = fd {
            *inner.orphans.entry(fd).or_insert(0) += 1;
        }
        if !inner.closed {
            inner.cancel(token.0);
        }
        drop(guard);
        drop(replaced);
    }

    /// Takes the op's CQE if it has come, or records who to wake when it does.
    pub(super) fn poll_op(&self, token: Token, cx: &mut Context<'_>) -> Poll<Cqe> {
        let mut inner = self.inner.borrow_mut();
        let Some(slot) = inner.ops.get_mut(token.index()) else {
            unreachable!("an in-flight op always has its slot")
        };
        debug_assert_eq!(slot.generation, token.generation());
        let replaced = match &mut slot.state {
            Lifecycle::Completed(cqe) => {
                let cqe = *cqe;
                inner.ops.remove(token.index());
                return Poll::Ready(cqe);
            }
            Lifecycle::Waiting(waker) if waker.will_wake(cx.waker()) => return Poll::Pending,
            Lifecycle::Waiting(waker) => std::mem::replace(waker, cx.waker().clone()),
            Lifecycle::Ignored(_) | Lifecycle::Streaming(_) => {
                unreachable!("a live single-shot op's slot is waiting or completed")
            }
        };
        // A waker's drop may run foreign code: not while the driver is borrowed.
        drop(inner);
        drop(replaced);
        Poll::Pending
    }

    /// The op's future is gone: free its resources now if the kernel is done with them
    /// or never saw them (the SQE was not submitted yet: it is withdrawn), or keep them
    /// in the slot until the CQE and ask the kernel to cancel.
    pub(super) fn abandon<T: Completable>(&self, token: Token, data: T) {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        let Some(slot) = inner.ops.get_mut(token.index()) else {
            unreachable!("an in-flight op always has its slot")
        };
        if let Lifecycle::Completed(cqe) = slot.state {
            inner.ops.remove(token.index());
            drop(guard);
            // Rule 2: an output that owns a resource (an fd) closes it when dropped.
            drop(data.complete(cqe.into_result(), cqe.flags));
            return;
        }
        let unsubmitted = slot.epoch == inner.epoch;
        if unsubmitted && !T::RUN_IF_DROPPED {
            let slot = inner.withdraw(token.index());
            // The slot's waker and the op's resources are dropped after the borrow: both
            // may run foreign code that calls back into the driver.
            drop(guard);
            drop((slot, data));
            return;
        }
        let fd = data.fd();
        let waiting = std::mem::replace(&mut slot.state, Lifecycle::Ignored(Box::new(data)));
        if let Some(fd) = fd {
            *inner.orphans.entry(fd).or_insert(0) += 1;
        }
        if !unsubmitted && !T::RUN_IF_DROPPED && !inner.closed {
            inner.cancel(token.0);
        }
        drop(guard);
        drop(waiting);
    }

    /// One turn of the ring: submit what is queued; if `park`, wait for a completion or
    /// the next timer; reap every CQE; fire due timers; then wake what became ready.
    pub(crate) fn turn(&self, park: bool) {
        let (mut ready, finished) = {
            let mut inner = self.inner.borrow_mut();
            inner.arm_wake_read();
            if park {
                inner.park();
            } else {
                inner.submit(false, None);
            }
            inner.reap();
            if !inner.timers.is_empty() {
                inner.fire_timers(Instant::now());
            }
            if inner.ready.is_empty() && inner.finished.is_empty() {
                return;
            }
            (
                std::mem::take(&mut inner.ready),
                std::mem::take(&mut inner.finished),
            )
        };
        for waker in ready.drain(..) {
            waker.wake();
        }
        for (op, cqe) in finished {
            op.finish(cqe);
        }
        // Keep the allocation for the next turn.
        let mut inner = self.inner.borrow_mut();
        if inner.ready.is_empty() {
            inner.ready = ready;
        }
    }

    /// Registers a timer; the ring wait is bounded by the earliest one.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: &Waker) -> TimerKey {
        let mut inner = self.inner.borrow_mut();
        inner.timer_seq += 1;
        let key = (deadline, inner.timer_seq);
        inner.timers.insert(key, waker.clone());
        TimerKey(key)
    }

    /// Points a registered timer at another waker; re-registers it if it has fired.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) {
        let mut inner = self.inner.borrow_mut();
        let replaced = match inner.timers.get_mut(&key.0) {
            Some(w) if w.will_wake(waker) => None,
            Some(w) => Some(std::mem::replace(w, waker.clone())),
            None => inner.timers.insert(key.0, waker.clone()),
        };
        // Dropped after the borrow ends, like every waker the driver lets go of.
        drop(inner);
        drop(replaced);
    }

    pub(crate) fn remove_timer(&self, key: TimerKey) {
        let removed = self.inner.borrow_mut().timers.remove(&key.0);
        drop(removed);
    }

    #[cfg(test)]
    pub(crate) fn timer_count(&self) -> usize {
        self.inner.borrow().timers.len()
    }

    /// Cancels every op in flight and waits for all their CQEs, so that nothing the
    /// kernel may still write is freed (rule 6). Ops submitted after this fail.
    ///
    /// Each op is cancelled once: those dropped in flight had their cancel queued then,
    /// the others get theirs here. Ops that outlive their cancel (not yet cancellable
    /// when it came, or ignoring it for a while) are cancelled again, all at once, only
    /// once `SHUTDOWN_RECANCEL` has passed without a completion: cancelling everything
    /// again while completions still flow would bury them under cancels. (One cancel
    /// of every request, `ASYNC_CANCEL_ANY | ALL`, is no cheaper: the kernel looks for
    /// each next match from the start of its table, where the requests it has already
    /// cancelled still sit until their completions run, so it is quadratic.)
    pub(crate) fn shutdown(&self) {
        let mut last_cancel = None::<Instant>;
        let mut last_progress = Instant::now();
        loop {
            let (ready, finished) = {
                let mut inner = self.inner.borrow_mut();
                inner.closed = true;
                if inner.in_flight == 0 {
                    break;
                }
                let again = match last_cancel {
                    None => Some(false),
                    Some(t)
                        if t.elapsed() >= SHUTDOWN_RECANCEL
                            && last_progress.elapsed() >= SHUTDOWN_RECANCEL =>
                    {
                        Some(true)
                    }
                    Some(_) => None,
                };
                if let Some(again) = again {
                    inner.cancel_all(again);
                    last_cancel = Some(Instant::now());
                }
                let before = inner.counters.cqes.get();
                inner.submit(true, Some(SHUTDOWN_RECANCEL));
                inner.reap();
                if inner.counters.cqes.get() != before {
                    last_progress = Instant::now();
                }
                (
                    std::mem::take(&mut inner.ready),
                    std::mem::take(&mut inner.finished),
                )
            };
            drop(ready);
            for (op, cqe) in finished {
                op.finish(cqe);
            }
        }
        let mut inner = self.inner.borrow_mut();
        // Messages to other cores queued last still go out.
        inner.submit(false, None);
        let timers = std::mem::take(&mut inner.timers);
        let ready = std::mem::take(&mut inner.ready);
        drop(inner);
        drop((timers, ready));
    }
}

/// Closes `fd` behind every SQE already queued on this thread's ring, with an
/// `IORING_OP_CLOSE` queued after them: the number is freed only once the ops that name
/// it have taken their reference to the file (rule 5). Outside a running core nothing
/// can be queued on the fd (each core hands everything it queued to the kernel before
/// it leaves the thread, even by a panic), so it is closed at once.
pub(crate) fn close(fd: OwnedFd) {
    let Some(driver) = current() else {
        return drop(fd);
    };
    if let Err(close) = driver.submit_detached(ops::Close::new(fd)) {
        // Shutting down, nothing new is queued: every SQE queued so far goes to the
        // kernel first, so none is left to name the number once it is free.
        driver.submit_all();
        drop(close);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Normally the runtime has shut down already; this keeps rule 6 if it has not.
        self.shutdown();
        if self.fixed_pool.is_ok() {
            // No op is in flight: the kernel lets go of the pages here, and FixedBufs
            // still held keep the memory alive as plain memory.
            let _ = self.inner.borrow().ring.submitter().unregister_buffers();
        }
        if self.recv_ring.is_ok() {
            // No op is in flight any more; RecvBufs still held keep the memory alive,
            // and the kernel forgets it here (or when the ring fd closes).
            let _ = self
                .inner
                .borrow()
                .ring
                .submitter()
                .unregister_buf_ring(ring::GROUP);
        }
    }
}

/// Maps and registers one core's pool of `count` buffers of `size` bytes. A failed
/// registration is not an error of the runtime's start: the core runs without a pool,
/// and the reason (with the locked-memory figures when that was it) is kept for
/// [`FixedBufPool::current`](crate::buf::FixedBufPool::current) to report.
fn register_pool(
    ring: &IoUring,
    count: u16,
    size: usize,
    id: u64,
) -> io::Result<Result<Rc<Pool>, Missing>> {
    let pool = Rc::new(Pool::new(count, size, id)?);
    let iovecs = pool.iovecs();
    // SAFETY: rule 1: every iovec is a buffer inside the pool's mapping, which lives as
    // long as the Rc the driver keeps (and any FixedBuf's), and the driver unregisters
    // the buffers (or closes the ring) before dropping it.
    let registered = unsafe { ring.submitter().register_buffers(&iovecs) };
    Ok(match registered {
        Ok(()) => Ok(pool),
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
            let limit = crate::sys::memlock_limit().map_or_else(
                || "unlimited".to_owned(),
                |l| format!("{l} bytes ({} KiB)", l / 1024),
            );
            let needed = pool.locked_bytes();
            Err(Missing::Failed(format!(
                "registering {count} fixed buffers of {size} bytes needs {needed} bytes \
                 ({} KiB) of locked memory on this core, and RLIMIT_MEMLOCK is {limit}; \
                 the kernel counts the locked memory of every core (and every other \
                 program of this user) against that one limit. Raise it (ulimit -l, \
                 LimitMEMLOCK= for a systemd service, --ulimit memlock= for docker) or \
                 ask Builder::fixed_buffers for less. The runtime runs without \
                 registered buffers.",
                needed / 1024
            )))
        }
        Err(e) => Err(Missing::Failed(format!(
            "registering {count} fixed buffers of {size} bytes failed: {e}; the runtime \
             runs without registered buffers"
        ))),
    })
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// Restores the previous current driver when dropped.
pub(crate) struct EnterGuard {
    prev: Option<Rc<Driver>>,
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
        let prev = self.prev.take();
        let mine = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
        drop(mine);
    }
}

/// Identifies one registered timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey((Instant, u64));

impl Inner {
    /// Gives `entry` a slot in `state` and queues it; on failure (the driver is shutting
    /// down) hands the state back, for the caller to drop once the driver is no longer
    /// borrowed.
    fn queue(
        &mut self,
        mut entry: Entry,
        state: Lifecycle,
    ) -> Result<Token, (io::Error, Lifecycle)> {
        if self.closed {
            let e = io::Error::other("the runtime is shutting down");
            return Err((e, state));
        }
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let vacant = self.ops.vacant_entry();
        let token = Token::new(vacant.key(), generation);
        entry.set_user_data(token.0);
        // An index into `pending`, which cannot outgrow u32 (each entry is 64 bytes).
        let sqe = self.pending.len() as u32;
        vacant.insert(OpSlot {
            generation,
            epoch: self.epoch,
            sqe,
            state,
        });
        self.pending.push(entry);
        self.in_flight += 1;
        self.counters.ops_submitted.add(1);
        Ok(token)
    }

    /// Takes back the op in slot `index`, whose SQE is still in `pending` (its epoch is
    /// the current one): the entry is skipped at the next submission, so the kernel
    /// never sees it. Returns the slot, for the caller to drop after the borrow.
    fn withdraw(&mut self, index: usize) -> OpSlot {
        let slot = self.ops.remove(index);
        debug_assert_eq!(slot.epoch, self.epoch);
        let entry = &mut self.pending[slot.sqe as usize];
        debug_assert_eq!(
            entry.get_user_data(),
            Token::new(index, slot.generation).0,
            "a slot's queue entry is its own"
        );
        entry.set_user_data(WITHDRAWN_UD);
        self.in_flight -= 1;
        self.counters.ops_withdrawn.add(1);
        slot
    }

    /// Copies queued SQEs from `pending[next..]` into the kernel's submission queue while
    /// it has room, skipping withdrawn ones; returns where it stopped.
    fn fill_sq(&mut self, mut next: usize) -> usize {
        let mut sq = self.ring.submission();
        while let Some(entry) = self.pending.get(next) {
            if entry.get_user_data() != WITHDRAWN_UD {
                // SAFETY: rule 1: every pointer in `entry` is into memory owned by its op
                // (held by the op future, or by an `Ignored` slot) or by the driver (the
                // wake-up buffer), and stays valid until the op's final CQE is reaped; a
                // withdrawn op, whose memory may be gone, is never copied.
                if unsafe { sq.push(entry) }.is_err() {
                    break;
                }
            }
            next += 1;
        }
        next
    }

    /// Hands every queued SQE to the kernel and, with `wait`, waits for a completion (at
    /// most `timeout`): the one `io_uring_enter` of a turn, unless the queue holds more
    /// than the kernel's submission queue (then one enter per queueful).
    ///
    /// Without SQPOLL, it returns only once the kernel has taken every SQE: the kernel
    /// reads the submission queue only inside `io_uring_enter`, so no SQE of ours waits
    /// there between turns, and an op dropped between turns can still be withdrawn from
    /// `pending`. When the kernel takes fewer than it was given (`EBUSY`/`EAGAIN`: it
    /// wants completions reaped, or is short of memory), they are reaped and the rest is
    /// handed over again; nothing is given up on. With SQPOLL the kernel's thread takes
    /// them in its own time; see [`Inner::submit_all`].
    fn submit(&mut self, wait: bool, timeout: Option<Duration>) {
        let mut next = 0;
        let mut waited = !wait;
        let mut refused = 0u32;
        loop {
            next = self.fill_sq(next);
            let all_in = next == self.pending.len();
            let wait_now = !waited && all_in;
            match self.enter(wait_now, timeout, !all_in) {
                Ok(()) => refused = 0,
                // A signal, or the timeout passed: the caller reaps and decides again.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::ETIME)) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::ENOMEM)
                    ) =>
                {
                    refused += 1;
                }
                Err(e) => fatal(e),
            }
            waited |= wait_now;
            let left = self.ring.submission().len();
            if all_in && (self.sqpoll || left == 0) {
                break;
            }
            if !self.sqpoll && left > 0 {
                // The kernel took fewer than it was given: make room in the completion
                // queue, and if it keeps refusing, give in-flight work a moment.
                self.reap();
                if refused >= 8 {
                    let _ = self.enter(true, Some(Duration::from_millis(1)), false);
                }
            }
        }
        self.pending.clear();
        self.epoch += 1;
    }

    /// [`Inner::submit`], and with SQPOLL also waits until the kernel's thread has taken
    /// every entry. Before an fd leaves our hands, no SQE naming it may be left behind.
    fn submit_all(&mut self) {
        self.submit(false, None);
        if !self.sqpoll {
            return;
        }
        while !self.ring.submission().is_empty() {
            if self.ring.submission().need_wakeup() {
                let _ = self.enter(false, None, false);
            }
            std::thread::yield_now();
        }
    }

    /// One `io_uring_enter`: submits what is in the submission queue and, with `wait`,
    /// waits for a completion (at most `timeout`). Asks for completions (`GETEVENTS`)
    /// whenever the kernel has some to post (`SQ_TASKRUN`, which `DEFER_TASKRUN` needs)
    /// or an overflow to flush, and skips the call when there is nothing to do. Under
    /// SQPOLL, wakes the kernel's thread if it sleeps and, with `sq_full`, waits for it
    /// to make room.
    fn enter(&mut self, wait: bool, timeout: Option<Duration>, sq_full: bool) -> io::Result<()> {
        let (to_submit, mut flags) = {
            let sq = self.ring.submission();
            let getevents = wait || sq.taskrun() || sq.cq_overflow();
            (sq.len() as u32, if getevents { ENTER_GETEVENTS } else { 0 })
        };
        if self.sqpoll {
            if to_submit > 0 && self.ring.submission().need_wakeup() {
                flags |= ENTER_SQ_WAKEUP;
            }
            if sq_full {
                flags |= ENTER_SQ_WAIT;
            }
            if flags == 0 {
                // The SQ thread is awake and will see the new entries by itself.
                return Ok(());
            }
        } else if to_submit == 0 && flags == 0 {
            return Ok(());
        }
        self.counters.enters.add(1);
        self.ring_fd
            .enter(to_submit, u32::from(wait), flags, timeout)
            .map(drop)
    }

    /// Waits for at least one completion or the earliest timer, submitting what is
    /// queued in the same call.
    fn park(&mut self) {
        let Some(&(deadline, _)) = self.timers.keys().next() else {
            return self.submit(true, None);
        };
        match deadline.checked_duration_since(Instant::now()) {
            Some(timeout) if !timeout.is_zero() => self.submit(true, Some(timeout)),
            _ => self.submit(false, None),
        }
    }

    /// Moves every posted CQE into its slot.
    fn reap(&mut self) {
        let Inner {
            ring,
            ops,
            in_flight,
            wake_armed,
            ready,
            finished,
            msg_failed,
            counters,
            orphans,
            bufs,
            ..
        } = self;
        let mut cqes = 0;
        let mut completed = 0;
        for entry in ring.completion() {
            cqes += 1;
            let cqe = Cqe {
                result: entry.result(),
                flags: entry.flags(),
            };
            match entry.user_data() {
                CANCEL_UD => continue,
                WAKE_UD => {
                    *wake_armed = false;
                    *in_flight -= 1;
                    continue;
                }
                // Another core's message: it only had to end the park.
                MSG_UD => continue,
                ud if ud as u32 == MSG_SENT_LOW => {
                    if cqe.result < 0 {
                        msg_failed.push((ud >> 32) as u16);
                    }
                    continue;
                }
                _ => {}
            }
            if io_uring::cqueue::buffer_select(cqe.flags).is_some() {
                // A provided buffer the kernel filled: held by this CQE until an op
                // takes it (or gives it back).
                if let Some(bufs) = bufs {
                    bufs.named_by_cqe();
                }
            }
            let token = Token(entry.user_data());
            let Some(slot) = ops.get_mut(token.index()) else {
                continue;
            };
            if slot.generation != token.generation() {
                continue;
            }
            let last = !has_more(cqe.flags);
            match &mut slot.state {
                Lifecycle::Streaming(stream) => {
                    stream.cqes.push_back(cqe);
                    if let Some(waker) = stream.waker.take() {
                        ready.push(waker);
                    }
                    if !last {
                        continue;
                    }
                    *in_flight -= 1;
                    completed += 1;
                    continue;
                }
                // An op whose future is gone: its item is released at once. It only
                // closes an fd or returns a provided buffer, never runs foreign code
                // (see `Multishot::item`).
                Lifecycle::Ignored(data) if !last => {
                    data.more(cqe);
                    continue;
                }
                _ => {}
            }
            match std::mem::replace(&mut slot.state, Lifecycle::Completed(cqe)) {
                Lifecycle::Waiting(waker) => ready.push(waker),
                Lifecycle::Ignored(data) => {
                    ops.remove(token.index());
                    if let Some(fd) = data.fd() {
                        forget_orphan(orphans, fd);
                    }
                    finished.push((data, cqe));
                }
                Lifecycle::Streaming(_) => unreachable!("handled above"),
                Lifecycle::Completed(first) => {
                    // A second CQE for a single-shot op cannot happen; keep the first.
                    slot.state = Lifecycle::Completed(first);
                    continue;
                }
            }
            *in_flight -= 1;
            completed += 1;
        }
        counters.cqes.add(cqes);
        counters.ops_completed.add(completed);
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.ready.push(entry.remove());
            self.counters.timers_fired.add(1);
        }
    }

    /// Keeps a read of the wake-up eventfd in the ring, so a write ends a park.
    fn arm_wake_read(&mut self) {
        let Some(fd) = self.wake_fd else { return };
        if self.wake_armed || self.closed {
            return;
        }
        let entry = opcode::Read::new(types::Fd(fd), self.wake_buf.as_mut_ptr().cast(), 8)
            .build()
            .user_data(WAKE_UD);
        self.pending.push(entry);
        self.wake_armed = true;
        self.in_flight += 1;
    }

    fn cancel(&mut self, user_data: u64) {
        let mut entry = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(CANCEL_UD);
        if self.msg_skip {
            // Its CQE says nothing the target's own will not: only failures post one.
            entry = entry.flags(squeue::Flags::SKIP_SUCCESS);
        }
        self.pending.push(entry);
    }

    /// Cancels every op in flight (with `ignored`, also those dropped in flight, whose
    /// cancel was queued when they were dropped) and the wake-up read.
    fn cancel_all(&mut self, ignored: bool) {
        let tokens: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, slot)| match &slot.state {
                Lifecycle::Completed(_) => false,
                Lifecycle::Streaming(stream) => {
                    stream.cqes.back().is_none_or(|cqe| has_more(cqe.flags))
                }
                Lifecycle::Waiting(_) => true,
                Lifecycle::Ignored(_) => ignored,
            })
            .map(|(index, slot)| Token::new(index, slot.generation).0)
            .collect();
        for token in tokens {
            self.cancel(token);
        }
        if self.wake_armed {
            self.cancel(WAKE_UD);
        }
    }

    /// Cancels again the ops dropped in flight on `fd` (a slow path: it looks at every
    /// slot).
    fn cancel_orphans(&mut self, fd: RawFd) {
        let tokens: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, slot)| match &slot.state {
                Lifecycle::Ignored(data) => data.fd() == Some(fd),
                _ => false,
            })
            .map(|(index, slot)| Token::new(index, slot.generation).0)
            .collect();
        for token in tokens {
            self.cancel(token);
        }
    }
}

/// One op dropped in flight on `fd` has had its last CQE.
fn forget_orphan(orphans: &mut HashMap<RawFd, u32>, fd: RawFd) {
    if let Some(count) = orphans.get_mut(&fd) {
        *count -= 1;
        if *count == 0 {
            orphans.remove(&fd);
        }
    }
}

/// An `io_uring_enter` error the driver cannot recover from (a bad ring fd, or use
/// from a thread that does not own the ring): a bug, not an input.
fn fatal(e: io::Error) -> ! {
    panic!("runtime: io_uring_enter failed unrecoverably: {e}")
}
