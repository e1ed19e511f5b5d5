//! The readiness backend: epoll in place of the ring, where io_uring is denied.
//!
//! An op runs at its first poll as the plain syscall its SQE stands for (`exec.rs`).
//! If that would block, the op waits for its fd's readiness and runs again when it
//! comes. A wait is a slot of the same slot table the ring's ops use (`slots.rs`):
//! `Waiting(owner)` until epoll reports one of its events, then `Completed`; its
//! future's drop withdraws it. No memory is ever lent to the kernel beyond a syscall,
//! so a dropped op is simply gone: it never ran, or it ran to the end inside a poll
//! that returned its result.
//!
//! Each fd is added to the epoll set once, edge-triggered for input and output, the
//! first time an op on it has to wait; its `epoll_event` carries the fd and a
//! generation, so events of an fd number that has since been closed and reused are
//! told apart and ignored. Since a wait only ever starts after the call itself said
//! "would block", no edge can be missed: whatever arrives after that call makes one.
//! Closing an fd through the driver forgets it (the kernel drops a closed file from
//! the set by itself); handing it off (`into_std`) also takes it out of the set.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::exec::{self, Exec, Fds};
use super::slots::{Cqe, Leftover, Queued, Slots, Token};
use super::timers::Timers;
use crate::stats::Counters;
use crate::task::Owner;

/// The `epoll_event` data of the core's wake-up eventfd.
const WAKE_DATA: u64 = u64::MAX;
/// Events reported per `epoll_wait`.
const EVENTS: usize = 256;
/// Every fd joins the set for both directions, edge-triggered.
const INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// Waits are never queued anywhere: every one has this, and the epoch never moves on.
const NOT_QUEUED: Queued = Queued { epoch: 0, index: 0 };

/// What the poller knows of one fd number.
#[derive(Debug, Default)]
struct FdState {
    /// The generation of its registration in the epoll set (0: not in it).
    generation: u32,
    /// We set `O_NONBLOCK` on it (or found it set).
    nonblocking: bool,
    /// Whether it is a stream socket (asked once, at its first short receive).
    stream: Option<bool>,
    /// A stream socket in the set whose input is used up (see [`Fds::drained`]): set by
    /// a short or failed receive, cleared by any input event.
    drained: bool,
    /// The peer shut its side down, or the socket failed (reported once, edge-triggered,
    /// so it must be remembered): a receive is never skipped then, it returns the end
    /// of the stream or the error at once.
    ended: bool,
    /// The waits on it, with the `poll` events each waits for.
    waiters: Vec<(Token, u32)>,
}

/// One core's epoll set and the waits on it.
pub(super) struct Poller {
    epoll: OwnedFd,
    slots: Slots,
    /// The fd of each wait, by slot index (-1: a wait for the next turn).
    wait_fd: Vec<RawFd>,
    /// Waits that end at the next turn.
    next_turn: Vec<Token>,
    /// By fd number.
    fds: Vec<FdState>,
    generation: u32,
    pub(super) timers: Timers,
    ready: Vec<Owner>,
    events: Vec<libc::epoll_event>,
    wake_fd: Option<RawFd>,
    closed: bool,
    counters: Arc<Counters>,
}

impl Poller {
    pub(super) fn new(counters: Arc<Counters>) -> io::Result<Poller> {
        // epoll_create1 takes a flag; no memory is passed.
        let fd = crate::sys::syscall!(epoll_create1(libc::EPOLL_CLOEXEC)).map_err(|e| {
            io::Error::new(e.kind(), format!("could not create an epoll instance: {e}"))
        })?;
        Ok(Poller {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            slots: Slots::with_capacity(64),
            wait_fd: Vec::new(),
            next_turn: Vec::new(),
            fds: Vec::new(),
            generation: 0,
            timers: Timers::default(),
            ready: Vec::new(),
            events: Vec::with_capacity(EVENTS),
            wake_fd: None,
            closed: false,
            counters,
        })
    }

    /// Runs `entry` (see [`exec::exec`]) and counts it.
    ///
    /// # Safety
    ///
    /// As for [`exec::exec`].
    pub(super) unsafe fn exec(&mut self, entry: &io_uring::squeue::Entry, retry: bool) -> Exec {
        if !retry {
            self.counters.ops_submitted.add(1);
        }
        // SAFETY: the caller's promise.
        let exec = unsafe { exec::exec(entry, retry, self) };
        if let Exec::Done(_) = exec {
            self.counters.ops_completed.add(1);
        }
        exec
    }

    fn state(&mut self, fd: RawFd) -> &mut FdState {
        let index = fd as usize;
        if index >= self.fds.len() {
            self.fds.resize_with(index + 1, FdState::default);
        }
        &mut self.fds[index]
    }

    /// Waits for `events` on `fd`: the returned token's slot completes when epoll
    /// reports one of them (or an error or hang-up).
    pub(super) fn wait(&mut self, fd: RawFd, events: u32, waker: &Waker) -> io::Result<Token> {
        if self.closed {
            return Err(super::shutting_down());
        }
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        self.join_set(fd)?;
        let token = self.slots.submit(NOT_QUEUED, waker);
        self.state(fd).waiters.push((token, events));
        self.set_wait_fd(token, fd);
        Ok(token)
    }

    /// A wait that ends at the next turn.
    pub(super) fn wait_turn(&mut self, waker: &Waker) -> io::Result<Token> {
        if self.closed {
            return Err(super::shutting_down());
        }
        let token = self.slots.submit(NOT_QUEUED, waker);
        self.next_turn.push(token);
        self.set_wait_fd(token, -1);
        Ok(token)
    }

    fn set_wait_fd(&mut self, token: Token, fd: RawFd) {
        let index = token.index();
        if index >= self.wait_fd.len() {
            self.wait_fd.resize(index + 1, -1);
        }
        self.wait_fd[index] = fd;
    }

    /// Puts `fd` in the epoll set under a new generation, unless it is in it already.
    fn join_set(&mut self, fd: RawFd) -> io::Result<()> {
        if self.state(fd).generation != 0 {
            return Ok(());
        }
        self.generation = self.generation.wrapping_add(1).max(1);
        let generation = self.generation;
        self.register(fd, generation)?;
        self.state(fd).generation = generation;
        Ok(())
    }

    /// Adds `fd` to the epoll set (or updates it, if a file of that number is still in
    /// it under an earlier registration).
    fn register(&mut self, fd: RawFd, generation: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: INTEREST,
            u64: u64::from(generation) << 32 | fd as u32 as u64,
        };
        let epoll = self.epoll.as_raw_fd();
        // epoll_ctl reads the one live event it is given.
        let added = crate::sys::syscall!(epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event));
        match added {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                crate::sys::syscall!(epoll_ctl(epoll, libc::EPOLL_CTL_MOD, fd, &mut event))
                    .map(drop)
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("fd {fd} cannot be waited for with epoll (a regular file or directory?)"),
            )),
            Err(e) => Err(e),
        }
    }

    pub(super) fn poll_wait(
        &mut self,
        token: Token,
        cx: &mut Context<'_>,
    ) -> (Poll<Cqe>, Leftover) {
        self.slots.poll(token, cx.waker())
    }

    /// A wait's future is gone: its slot is freed and it leaves its fd's list.
    pub(super) fn withdraw(&mut self, token: Token) -> Leftover {
        match self.wait_fd.get(token.index()) {
            Some(&-1) => self.next_turn.retain(|&t| t != token),
            Some(&fd) => {
                if let Some(state) = self.fds.get_mut(fd as usize) {
                    state.waiters.retain(|&(t, _)| t != token);
                }
            }
            None => {}
        }
        self.counters.ops_withdrawn.add(1);
        self.slots.withdraw_wait(token)
    }

    /// `fd` is being closed, or a new fd has its number: what was known of the number
    /// is forgotten (the kernel takes a closed file out of the set by itself). Waits
    /// left on an fd that is gone are never woken for the new one.
    pub(super) fn forget(&mut self, fd: RawFd) {
        if let Some(state) = self.fds.get_mut(fd as usize) {
            *state = FdState::default();
        }
    }

    /// `fd` leaves the runtime (`into_std`): it leaves the epoll set and is blocking
    /// again, as it is on the ring backend.
    pub(super) fn release(&mut self, fd: RawFd) {
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let state = std::mem::take(state);
        if state.generation != 0 {
            let epoll = self.epoll.as_raw_fd();
            // A null event is allowed for EPOLL_CTL_DEL.
            let _ = crate::sys::syscall!(epoll_ctl(
                epoll,
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut()
            ));
        }
        if state.nonblocking {
            crate::sys::socket::set_nonblocking_raw(fd, false);
        }
    }

    /// The epoll set's fd: readable while it has events to report.
    #[cfg(feature = "tokio-bridge")]
    pub(super) fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Has epoll watch the core's wake-up eventfd, so a write to it ends a park.
    pub(super) fn set_wake_fd(&mut self, fd: RawFd) {
        crate::sys::socket::set_nonblocking_raw(fd, true);
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: WAKE_DATA,
        };
        let epoll = self.epoll.as_raw_fd();
        // epoll_ctl reads the one live event it is given.
        if crate::sys::syscall!(epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event)).is_ok() {
            self.wake_fd = Some(fd);
        }
    }

    /// Whether a turn would find something without waiting: only a due timer is known
    /// without a syscall.
    pub(super) fn has_work(&self) -> bool {
        !self.next_turn.is_empty()
            || self
                .timers
                .next_deadline()
                .is_some_and(|deadline| deadline <= Instant::now())
    }

    /// One turn: waits for readiness (if `park`, until the next timer at most), makes
    /// the waits it ends ready, fires due timers; the owners made ready go to `woken`.
    pub(super) fn turn(&mut self, park: bool, woken: &mut Vec<Owner>) {
        let timeout = if park && self.next_turn.is_empty() {
            self.timeout_ms()
        } else {
            0
        };
        let epoll = self.epoll.as_raw_fd();
        self.events.clear();
        self.counters.enters.add(1);
        // epoll_wait writes at most EVENTS events into the vector's spare capacity.
        let n = crate::sys::syscall!(epoll_wait(
            epoll,
            self.events.as_mut_ptr(),
            EVENTS as i32,
            timeout
        ))
        .unwrap_or(0);
        // SAFETY: the kernel initialised the first `n` events (n <= EVENTS = capacity).
        unsafe { self.events.set_len(n as usize) };
        self.dispatch();
        for token in std::mem::take(&mut self.next_turn) {
            let cqe = Cqe {
                result: 0,
                flags: 0,
            };
            let _ = self.slots.complete(token, cqe, &mut self.ready);
        }
        if !self.timers.is_empty() {
            self.timers
                .fire(Instant::now(), &mut self.ready, &self.counters);
        }
        woken.append(&mut self.ready);
    }

    /// The wait of a park in whole milliseconds, rounded up, so that no timer fires
    /// early (-1: no timer, wait for readiness alone).
    fn timeout_ms(&self) -> i32 {
        let Some(deadline) = self.timers.next_deadline() else {
            return -1;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_nanos().div_ceil(1_000_000);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }

    /// Completes every wait that the events just reported end.
    fn dispatch(&mut self) {
        let Poller {
            events,
            fds,
            slots,
            ready,
            wake_fd,
            counters,
            ..
        } = self;
        counters.cqes.add(events.len() as u64);
        for event in events.iter() {
            let data = event.u64;
            let mask = event.events;
            if data == WAKE_DATA {
                if let Some(fd) = *wake_fd {
                    crate::sys::eventfd_drain(fd);
                }
                continue;
            }
            let Some(state) = fds.get_mut(data as u32 as usize) else {
                continue;
            };
            if state.generation != (data >> 32) as u32 {
                continue;
            }
            // An error or hang-up ends every wait; a peer's shutdown ends input waits.
            let mut ends = mask & (libc::POLLIN | libc::POLLOUT | libc::POLLPRI) as u32;
            if mask & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                ends |= u32::MAX;
            }
            if mask & libc::EPOLLRDHUP as u32 != 0 {
                ends |= (libc::POLLIN | libc::POLLRDHUP) as u32;
            }
            if ends & libc::POLLIN as u32 != 0 {
                state.drained = false;
            }
            if mask & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                state.ended = true;
            }
            state.waiters.retain(|&(token, events)| {
                if events & ends == 0 {
                    return true;
                }
                let cqe = Cqe {
                    result: (mask & 0xffff) as i32,
                    flags: 0,
                };
                // A wait's slot is never handed back as an abandoned op.
                let _ = slots.complete(token, cqe, ready);
                false
            });
        }
        counters.ops_in_flight.set(slots.in_flight() as u64);
    }

    /// The core stops: new waits fail; waits still in the table are withdrawn by their
    /// futures' drops. Returns the owners and timers for the caller to drop after its
    /// borrow.
    pub(super) fn shutdown(&mut self) -> (Vec<Owner>, Timers) {
        self.closed = true;
        (std::mem::take(&mut self.ready), self.timers.take())
    }
}

impl Fds for Poller {
    fn ensure_nonblocking(&mut self, fd: RawFd) {
        if fd < 0 {
            return;
        }
        let state = self.state(fd);
        if !state.nonblocking {
            state.nonblocking = crate::sys::socket::set_nonblocking_raw(fd, true);
        }
    }

    fn forget(&mut self, fd: RawFd) {
        Poller::forget(self, fd);
    }

    fn drained(&mut self, fd: RawFd) -> bool {
        fd >= 0
            && self
                .fds
                .get(fd as usize)
                .is_some_and(|state| state.drained && !state.ended)
    }

    /// A short receive on a stream socket used up its input: the socket joins the set
    /// (if it is not in it), so the data that comes next reports itself, and the next
    /// receive waits for that instead of failing with `EAGAIN` first. This saves the
    /// one call per request that a request-response server would otherwise waste.
    fn received(&mut self, fd: RawFd, got: i32, asked: usize) {
        if fd < 0 || (got >= 0 && got as usize >= asked) {
            return;
        }
        let stream = match self.state(fd).stream {
            Some(stream) => stream,
            None => {
                let ty = crate::sys::socket::get_opt::<i32>(fd, libc::SOL_SOCKET, libc::SO_TYPE);
                let stream = ty.is_ok_and(|ty| ty == libc::SOCK_STREAM);
                self.state(fd).stream = Some(stream);
                stream
            }
        };
        if !stream {
            return;
        }
        if self.join_set(fd).is_ok() {
            self.state(fd).drained = true;
        }
    }
}

/// The readiness engine of a driver, borrowed for each call.
pub(super) type Engine = RefCell<Poller>;
