//! The op slot table: the state of every operation a backend has taken, as a state
//! machine that knows no ring.
//!
//! Every transition is a method that changes the table and *returns* what its caller
//! must do afterwards: whom to wake, which op to finish with which completion, what to
//! drop, whether to cancel. The table itself never wakes, never drops a waker or an
//! op's resources, and never calls into an op but for [`Abandoned::more`] (below). So
//! the caller can hold the table borrowed for a transition and do the rest once the
//! borrow has ended: foreign code (a waker's drop or wake, a buffer's drop) never runs
//! while the driver is borrowed, by construction.
//!
//! # States
//!
//! | state | the op's resources are owned by | leaves it by |
//! |---|---|---|
//! | `Waiting(owner)` | its future | a CQE (`Completed`), the future's drop (`Ignored`, or withdrawn) |
//! | `Completed(cqe)` | its future; the kernel is done | the future's poll or drop: the slot is freed |
//! | `Streaming(stream)` | its [`MultiOp`](super::MultiOp); CQEs queue | the last CQE taken (freed), the op's drop (`Ignored`, or withdrawn) |
//! | `Ignored(op)` | the slot | the final CQE: the op is handed back to be finished |
//!
//! Each slot also records where its SQE waits until it is submitted ([`Queued`]): the
//! backend's submission count (`epoch`) when it was queued and its place in the
//! backend's queue. While the backend's current epoch is that one, the kernel has not
//! seen the op, and dropping its future *withdraws* it: the slot is freed and the
//! caller skips the queue entry, so the op never runs.
//!
//! # What the table promises (rule 1 of the design: the kernel may use an op's
//! memory until its final CQE)
//!
//! - **Nothing is freed early.** An op's resources leave the table only (a) with a
//!   `Completed` slot, when its CQE has come; (b) withdrawn, when its SQE was never
//!   submitted; (c) from an `Ignored` slot, with the final CQE (the one without
//!   `F_MORE`). A CQE with `F_MORE` never ends a slot.
//! - **Nothing leaks.** Every submitted op has its slot until its final CQE, and is
//!   counted in [`Slots::in_flight`] until then; shutdown waits for that count to reach
//!   zero. A withdrawn op is not counted: no CQE will come for it.
//! - **No CQE is matched to the wrong op.** A token is the slot's index and a 32-bit
//!   generation bumped on every insert; a CQE whose generation is not its slot's is
//!   ignored.
//! - **The one call into an op.** The CQEs with `F_MORE` of an abandoned multishot op
//!   are handed to [`Abandoned::more`] inside the transition: such a CQE carries an
//!   accepted fd or a provided buffer, whose release (a `close`, a ring descriptor
//!   write) runs no foreign code (the contract of `Multishot::item`).
//!
//! The module is backend-neutral: what it needs of a backend is a token in each
//! completion and a submission count. The property test at the end drives it with
//! random sequences of submissions, polls, drops, completions and shutdown against a
//! model of a kernel, counting every resource.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::task::{Poll, Waker};

use slab::Slab;

use super::op::{has_more, Abandoned, Completable};
use crate::task::Owner;

/// `user_data` of an op: slab index (low 32 bits) and generation (high 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

impl Token {
    pub(crate) fn new(index: usize, generation: u32) -> Token {
        Token(u64::from(generation) << 32 | index as u64)
    }

    pub(crate) fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// A completion as the driver hands it to an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cqe {
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

impl Cqe {
    /// The result as `io::Result`: a negative result is `-errno`.
    pub(crate) fn into_result(self) -> io::Result<u32> {
        if self.result < 0 {
            Err(io::Error::from_raw_os_error(-self.result))
        } else {
            Ok(self.result as u32)
        }
    }
}

/// Where an op's SQE waits until it is submitted: the backend's submission count when
/// it was queued, and its index in the backend's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) epoch: u64,
    pub(crate) index: u32,
}

/// CQEs of a multishot op that its stream has not taken yet, and who waits for them.
#[derive(Debug)]
pub(crate) struct Stream {
    owner: Option<Owner>,
    cqes: VecDeque<Cqe>,
}

enum State {
    Waiting(Owner),
    Completed(Cqe),
    Streaming(Box<Stream>),
    Ignored(Box<dyn Abandoned>),
}

/// What the caller drops once its borrow has ended: a replaced or freed owner, a freed
/// stream (with its owner), or nothing.
#[derive(Debug)]
#[must_use = "dropped after the driver's borrow ends"]
// The payloads are held only to be dropped later.
#[allow(dead_code)]
pub(crate) enum Leftover {
    None,
    Owner(Owner),
    Stream(Box<Stream>),
}

struct Slot {
    generation: u32,
    queued: Queued,
    state: State,
}

/// What reaping one CQE calls for.
#[must_use]
pub(crate) enum Reaped {
    /// Nothing (a stale CQE, or one an abandoned multishot op has taken).
    Nothing,
    /// Wake this owner: the op it waits on completed, or its stream has a CQE.
    Wake(Owner),
    /// The final CQE of an op whose future is gone: finish it (drop its output).
    Finish(Box<dyn Abandoned>, Cqe),
}

/// What a single-shot op's drop calls for.
#[must_use]
pub(crate) enum Abandon<T> {
    /// Its CQE had come: turn it into the output and drop that (rule 2).
    Done(T, Cqe),
    /// Never submitted, so withdrawn: skip the queue entry at `queued`, then drop the
    /// op and the owner.
    Withdrawn(T, Owner, Queued),
    /// In flight: the slot keeps the op until its final CQE. Queue a cancel for the
    /// token if `cancel`; drop the owner.
    Orphaned { owner: Owner, cancel: bool },
}

/// What a multishot op's drop calls for, before it is orphaned.
#[must_use]
pub(crate) enum AbandonStream {
    /// Never submitted: skip the queue entry, drop the stream (and its owner).
    Withdrawn(Box<Stream>, Queued),
    /// Its last CQE had come: hand every CQE to the op (the last one to `finish`).
    Ended(Box<Stream>),
    /// In flight: hand the CQEs that came to the op's `more`, then call
    /// [`Slots::orphan_stream`] with it.
    InFlight(VecDeque<Cqe>),
}

impl Stream {
    /// The CQEs the stream had not taken.
    pub(crate) fn into_cqes(self) -> VecDeque<Cqe> {
        self.cqes
    }
}

/// The slot table of one backend (see the module docs).
pub(crate) struct Slots {
    slots: Slab<Slot>,
    generation: u32,
    /// Slots the kernel may still be working on: all but `Completed` ones and ended
    /// streams.
    in_flight: usize,
    /// `Ignored` slots per socket they work on ([`Abandoned::fd`]).
    orphans: HashMap<RawFd, u32>,
}

impl Slots {
    pub(crate) fn with_capacity(capacity: usize) -> Slots {
        Slots {
            slots: Slab::with_capacity(capacity),
            generation: 0,
            in_flight: 0,
            orphans: HashMap::new(),
        }
    }

    /// Ops the kernel may still be working on.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn insert(&mut self, queued: Queued, state: State) -> Token {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let index = self.slots.insert(Slot {
            generation,
            queued,
            state,
        });
        self.in_flight += 1;
        Token::new(index, generation)
    }

    /// A new op whose future waits for its CQE.
    #[inline]
    pub(crate) fn submit(&mut self, queued: Queued, owner: Owner) -> Token {
        self.insert(queued, State::Waiting(owner))
    }

    /// A new multishot op whose stream takes its CQEs.
    pub(crate) fn submit_stream(&mut self, queued: Queued, owner: Owner) -> Token {
        let stream = Box::new(Stream {
            owner: Some(owner),
            cqes: VecDeque::new(),
        });
        self.insert(queued, State::Streaming(stream))
    }

    /// A new op nobody awaits: the slot owns it from the start.
    pub(crate) fn submit_detached(&mut self, queued: Queued, op: Box<dyn Abandoned>) -> Token {
        if let Some(fd) = op.fd() {
            *self.orphans.entry(fd).or_insert(0) += 1;
        }
        self.insert(queued, State::Ignored(op))
    }

    fn slot(&mut self, token: Token) -> &mut Slot {
        match self.slots.get_mut(token.index()) {
            Some(slot) if slot.generation == token.generation() => slot,
            _ => unreachable!("a live op always has its slot"),
        }
    }

    /// A single-shot op's poll: its CQE if it has come (the slot is freed), or `Pending`
    /// with `waker`'s owner recorded. The replaced owner, if any, is for the caller to
    /// drop.
    #[inline]
    pub(crate) fn poll(&mut self, token: Token, waker: &Waker) -> (Poll<Cqe>, Leftover) {
        let slot = self.slot(token);
        match &mut slot.state {
            State::Completed(cqe) => {
                let cqe = *cqe;
                self.slots.remove(token.index());
                (Poll::Ready(cqe), Leftover::None)
            }
            State::Waiting(owner) if owner.will_wake(waker) => (Poll::Pending, Leftover::None),
            State::Waiting(owner) => {
                let old = std::mem::replace(owner, Owner::of(waker));
                (Poll::Pending, Leftover::Owner(old))
            }
            State::Streaming(_) | State::Ignored(_) => {
                unreachable!("a live single-shot op's slot is waiting or completed")
            }
        }
    }

    /// A multishot op's poll: its next CQE if one has come (the slot is freed with the
    /// last), or `Pending` with `waker`'s owner recorded.
    pub(crate) fn poll_stream(&mut self, token: Token, waker: &Waker) -> (Poll<Cqe>, Leftover) {
        let slot = self.slot(token);
        let State::Streaming(stream) = &mut slot.state else {
            unreachable!("a live multishot op's slot is streaming")
        };
        if let Some(cqe) = stream.cqes.pop_front() {
            if has_more(cqe.flags) {
                return (Poll::Ready(cqe), Leftover::None);
            }
            let slot = self.slots.remove(token.index());
            let State::Streaming(stream) = slot.state else {
                unreachable!("checked above")
            };
            return (Poll::Ready(cqe), Leftover::Stream(stream));
        }
        match &mut stream.owner {
            Some(owner) if owner.will_wake(waker) => (Poll::Pending, Leftover::None),
            owner => {
                let old = owner.replace(Owner::of(waker));
                (Poll::Pending, old.map_or(Leftover::None, Leftover::Owner))
            }
        }
    }

    /// A CQE for `token` was reaped.
    #[inline]
    pub(crate) fn complete(&mut self, token: Token, cqe: Cqe) -> Reaped {
        let Some(slot) = self.slots.get_mut(token.index()) else {
            return Reaped::Nothing;
        };
        if slot.generation != token.generation() {
            return Reaped::Nothing;
        }
        let last = !has_more(cqe.flags);
        match &mut slot.state {
            State::Streaming(stream) => {
                stream.cqes.push_back(cqe);
                if last {
                    self.in_flight -= 1;
                }
                match stream.owner.take() {
                    Some(owner) => Reaped::Wake(owner),
                    None => Reaped::Nothing,
                }
            }
            // Released at once: an fd or a provided buffer (see the module docs).
            State::Ignored(op) if !last => {
                op.more(cqe);
                Reaped::Nothing
            }
            State::Completed(_) => Reaped::Nothing,
            State::Waiting(_) => {
                let State::Waiting(owner) =
                    std::mem::replace(&mut slot.state, State::Completed(cqe))
                else {
                    unreachable!("matched above")
                };
                self.in_flight -= 1;
                Reaped::Wake(owner)
            }
            State::Ignored(_) => {
                let slot = self.slots.remove(token.index());
                let State::Ignored(op) = slot.state else {
                    unreachable!("matched above")
                };
                self.in_flight -= 1;
                if let Some(fd) = op.fd() {
                    self.forget_orphan(fd);
                }
                Reaped::Finish(op, cqe)
            }
        }
    }

    /// A single-shot op's future is gone; `epoch` is the backend's current submission.
    pub(crate) fn abandon<T: Completable>(
        &mut self,
        token: Token,
        op: T,
        epoch: u64,
    ) -> Abandon<T> {
        let slot = self.slot(token);
        if let State::Completed(cqe) = slot.state {
            self.slots.remove(token.index());
            return Abandon::Done(op, cqe);
        }
        let unsubmitted = slot.queued.epoch == epoch;
        if unsubmitted && !T::RUN_IF_DROPPED {
            let slot = self.slots.remove(token.index());
            let State::Waiting(owner) = slot.state else {
                unreachable!("a live single-shot op's slot is waiting or completed")
            };
            self.in_flight -= 1;
            return Abandon::Withdrawn(op, owner, slot.queued);
        }
        let fd = op.fd();
        let State::Waiting(owner) =
            std::mem::replace(&mut slot.state, State::Ignored(Box::new(op)))
        else {
            unreachable!("a live single-shot op's slot is waiting or completed")
        };
        if let Some(fd) = fd {
            *self.orphans.entry(fd).or_insert(0) += 1;
        }
        Abandon::Orphaned {
            owner,
            cancel: !unsubmitted && !T::RUN_IF_DROPPED,
        }
    }

    /// A multishot op's stream is gone; `epoch` is the backend's current submission.
    pub(crate) fn abandon_stream(&mut self, token: Token, epoch: u64) -> AbandonStream {
        let slot = self.slot(token);
        let State::Streaming(stream) = &mut slot.state else {
            unreachable!("a live multishot op's slot is streaming")
        };
        if slot.queued.epoch == epoch {
            let slot = self.slots.remove(token.index());
            let State::Streaming(stream) = slot.state else {
                unreachable!("matched above")
            };
            self.in_flight -= 1;
            return AbandonStream::Withdrawn(stream, slot.queued);
        }
        if stream.cqes.back().is_some_and(|cqe| !has_more(cqe.flags)) {
            let slot = self.slots.remove(token.index());
            let State::Streaming(stream) = slot.state else {
                unreachable!("matched above")
            };
            return AbandonStream::Ended(stream);
        }
        AbandonStream::InFlight(std::mem::take(&mut stream.cqes))
    }

    /// Gives an in-flight multishot op whose stream is gone to its slot, which keeps it
    /// until the final CQE. Returns the stream (its owner) for the caller to drop.
    pub(crate) fn orphan_stream(&mut self, token: Token, op: Box<dyn Abandoned>) -> Leftover {
        let fd = op.fd();
        let slot = self.slot(token);
        let old = std::mem::replace(&mut slot.state, State::Ignored(op));
        if let Some(fd) = fd {
            *self.orphans.entry(fd).or_insert(0) += 1;
        }
        match old {
            State::Streaming(stream) => Leftover::Stream(stream),
            _ => unreachable!("a live multishot op's slot is streaming"),
        }
    }

    fn forget_orphan(&mut self, fd: RawFd) {
        if let Some(count) = self.orphans.get_mut(&fd) {
            *count -= 1;
            if *count == 0 {
                self.orphans.remove(&fd);
            }
        }
    }

    /// Whether an op dropped in flight on `fd` still waits for its final CQE.
    pub(crate) fn has_orphans(&self, fd: RawFd) -> bool {
        self.orphans.contains_key(&fd)
    }

    /// The tokens of the ops in flight that shutdown cancels: every waiting op and
    /// unended stream, and with `ignored`, also the ops dropped in flight (whose
    /// cancel was queued when they were dropped).
    pub(crate) fn cancellable(&self, ignored: bool) -> Vec<Token> {
        self.tokens(|state| match state {
            State::Completed(_) => false,
            State::Streaming(stream) => stream.cqes.back().is_none_or(|cqe| has_more(cqe.flags)),
            State::Waiting(_) => true,
            State::Ignored(_) => ignored,
        })
    }

    /// The tokens of the ops dropped in flight on `fd` (a slow path: every slot).
    pub(crate) fn orphans_on(&self, fd: RawFd) -> Vec<Token> {
        self.tokens(|state| matches!(state, State::Ignored(op) if op.fd() == Some(fd)))
    }

    fn tokens(&self, mut pick: impl FnMut(&State) -> bool) -> Vec<Token> {
        self.slots
            .iter()
            .filter(|(_, slot)| pick(&slot.state))
            .map(|(index, slot)| Token::new(index, slot.generation))
            .collect()
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots")
            .field("slots", &self.slots.len())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}
