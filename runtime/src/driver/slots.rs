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

use super::op::{has_more, Abandoned, Completable};
use crate::task::{Owner, TaskId};

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
    /// A free slot (its `next_free` links the free list).
    Vacant,
    /// The owner is in the slot's `task` and `waker` fields (see [`Slot`]).
    Waiting,
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
    /// While vacant: the next free slot (`NO_FREE`: none).
    next_free: u32,
    queued: Queued,
    state: State,
    /// While `Waiting`: the owner, a foreign waker if `waker` holds one, else this task.
    /// Two plain fields rather than an `Owner` inside the state, so that recording a
    /// task is two scalar stores (a state value that could hold either kind of owner
    /// is built on the stack and copied in with wide loads that stall on store
    /// forwarding, on every op).
    task: TaskId,
    waker: Option<Waker>,
}

impl Slot {
    /// Records the owner of a poll with `waker`.
    #[inline(always)]
    fn set_owner(&mut self, waker: &Waker) {
        match TaskId::of_waker(waker) {
            Some(id) => {
                self.task = id;
                debug_assert!(self.waker.is_none());
            }
            None => self.waker = Some(waker.clone()),
        }
    }

    /// Whether waking `waker` wakes the recorded owner.
    #[inline]
    fn owner_will_wake(&self, waker: &Waker) -> bool {
        match &self.waker {
            Some(w) => w.will_wake(waker),
            None => TaskId::of_waker(waker) == Some(self.task),
        }
    }

    /// Takes the recorded owner out (leaving no waker behind).
    #[inline]
    fn take_owner(&mut self) -> Owner {
        match self.waker.take() {
            Some(w) => Owner::Waker(w),
            None => Owner::Task(self.task),
        }
    }
}

/// No next free slot.
const NO_FREE: u32 = u32::MAX;

/// The slots, with a free list threaded through the vacant ones. Like a slab, but a new
/// op's fields are written into its slot in place rather than moved in as one value
/// (which, built on the stack and copied in wide loads, stalls on store forwarding).
struct Table {
    slots: Vec<Slot>,
    free: u32,
    len: usize,
}

impl Table {
    fn with_capacity(capacity: usize) -> Table {
        Table {
            slots: Vec::with_capacity(capacity),
            free: NO_FREE,
            len: 0,
        }
    }

    /// A free slot (a new one if none is free), with `generation` and `queued` set and
    /// its state still `Vacant`, for the caller to fill.
    #[inline(always)]
    fn insert(&mut self, generation: u32, queued: Queued) -> (usize, &mut Slot) {
        self.len += 1;
        let index = self.free;
        if index == NO_FREE {
            let index = self.slots.len();
            self.slots.push(Slot {
                generation,
                next_free: NO_FREE,
                queued,
                state: State::Vacant,
                task: TaskId::main(0),
                waker: None,
            });
            return (index, &mut self.slots[index]);
        }
        let slot = &mut self.slots[index as usize];
        self.free = slot.next_free;
        slot.generation = generation;
        slot.queued = queued;
        (index as usize, slot)
    }

    /// The live slot at `index`, if any.
    #[inline]
    fn get_mut(&mut self, index: usize) -> Option<&mut Slot> {
        match self.slots.get_mut(index) {
            Some(slot) if !matches!(slot.state, State::Vacant) => Some(slot),
            _ => None,
        }
    }

    /// Frees the live slot at `index`, handing back what it held.
    #[inline]
    fn remove(&mut self, index: usize) -> (Queued, State) {
        let slot = &mut self.slots[index];
        debug_assert!(!matches!(slot.state, State::Vacant));
        let state = std::mem::replace(&mut slot.state, State::Vacant);
        slot.next_free = self.free;
        self.free = index as u32;
        self.len -= 1;
        (slot.queued, state)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !matches!(slot.state, State::Vacant))
    }
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
    slots: Table,
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
            slots: Table::with_capacity(capacity),
            generation: 0,
            in_flight: 0,
            orphans: HashMap::new(),
        }
    }

    /// Ops the kernel may still be working on.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Takes a slot for a new op: its token, and the slot for the caller to fill.
    #[inline(always)]
    fn insert(&mut self, queued: Queued) -> (Token, &mut Slot) {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let (index, slot) = self.slots.insert(generation, queued);
        // A slot index never reaches the low halves the driver keeps for its own CQEs
        // (that would take four billion ops in flight).
        debug_assert!(index < (u32::MAX - 8) as usize);
        self.in_flight += 1;
        (Token::new(index, generation), slot)
    }

    /// A new op whose future, polled with `waker`, waits for its CQE.
    #[inline(always)]
    pub(crate) fn submit(&mut self, queued: Queued, waker: &Waker) -> Token {
        let (token, slot) = self.insert(queued);
        slot.set_owner(waker);
        slot.state = State::Waiting;
        token
    }

    /// A new multishot op whose stream takes its CQEs.
    pub(crate) fn submit_stream(&mut self, queued: Queued, owner: Owner) -> Token {
        let stream = Box::new(Stream {
            owner: Some(owner),
            cqes: VecDeque::new(),
        });
        let (token, slot) = self.insert(queued);
        slot.state = State::Streaming(stream);
        token
    }

    /// A new op nobody awaits: the slot owns it from the start.
    pub(crate) fn submit_detached(&mut self, queued: Queued, op: Box<dyn Abandoned>) -> Token {
        if let Some(fd) = op.fd() {
            *self.orphans.entry(fd).or_insert(0) += 1;
        }
        let (token, slot) = self.insert(queued);
        slot.state = State::Ignored(op);
        token
    }

    #[inline]
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
        match slot.state {
            State::Completed(cqe) => {
                let _ = self.slots.remove(token.index());
                (Poll::Ready(cqe), Leftover::None)
            }
            State::Waiting if slot.owner_will_wake(waker) => (Poll::Pending, Leftover::None),
            State::Waiting => {
                let old = slot.take_owner();
                slot.set_owner(waker);
                (Poll::Pending, Leftover::Owner(old))
            }
            State::Streaming(_) | State::Ignored(_) | State::Vacant => {
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
            let (_, State::Streaming(stream)) = self.slots.remove(token.index()) else {
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

    /// A CQE for `token` was reaped. The owner it makes ready, if any, is pushed onto
    /// `woken`; an op whose future is gone and whose final CQE this is, is handed back
    /// to be finished.
    #[inline]
    pub(crate) fn complete(
        &mut self,
        token: Token,
        cqe: Cqe,
        woken: &mut Vec<Owner>,
    ) -> Option<(Box<dyn Abandoned>, Cqe)> {
        let slot = self.slots.get_mut(token.index())?;
        if slot.generation != token.generation() {
            return None;
        }
        let last = !has_more(cqe.flags);
        match &mut slot.state {
            State::Waiting => {
                slot.state = State::Completed(cqe);
                self.in_flight -= 1;
                woken.push(slot.take_owner());
                None
            }
            State::Streaming(stream) => {
                stream.cqes.push_back(cqe);
                if last {
                    self.in_flight -= 1;
                }
                if let Some(owner) = stream.owner.take() {
                    woken.push(owner);
                }
                None
            }
            // Released at once: an fd or a provided buffer (see the module docs).
            State::Ignored(op) if !last => {
                op.more(cqe);
                None
            }
            State::Completed(_) | State::Vacant => None,
            State::Ignored(_) => {
                let (_, State::Ignored(op)) = self.slots.remove(token.index()) else {
                    unreachable!("matched above")
                };
                self.in_flight -= 1;
                if let Some(fd) = op.fd() {
                    self.forget_orphan(fd);
                }
                Some((op, cqe))
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
            let _ = self.slots.remove(token.index());
            return Abandon::Done(op, cqe);
        }
        let unsubmitted = slot.queued.epoch == epoch;
        debug_assert!(matches!(slot.state, State::Waiting));
        let owner = slot.take_owner();
        if unsubmitted && !T::RUN_IF_DROPPED {
            let (queued, _) = self.slots.remove(token.index());
            self.in_flight -= 1;
            return Abandon::Withdrawn(op, owner, queued);
        }
        let fd = op.fd();
        slot.state = State::Ignored(Box::new(op));
        if let Some(fd) = fd {
            *self.orphans.entry(fd).or_insert(0) += 1;
        }
        Abandon::Orphaned {
            owner,
            cancel: !unsubmitted && !T::RUN_IF_DROPPED,
        }
    }

    /// A readiness wait's future is gone (the readiness backend, where a wait lends the
    /// kernel nothing): its slot is freed whatever its state. The owner, if it was
    /// still waiting, is for the caller to drop.
    pub(crate) fn withdraw_wait(&mut self, token: Token) -> Leftover {
        let slot = self.slot(token);
        let owner = match slot.state {
            State::Waiting => Some(slot.take_owner()),
            State::Completed(_) => None,
            _ => unreachable!("a readiness wait's slot is waiting or completed"),
        };
        if owner.is_some() {
            self.in_flight -= 1;
        }
        let _ = self.slots.remove(token.index());
        owner.map_or(Leftover::None, Leftover::Owner)
    }

    /// A multishot op's stream is gone; `epoch` is the backend's current submission.
    pub(crate) fn abandon_stream(&mut self, token: Token, epoch: u64) -> AbandonStream {
        let slot = self.slot(token);
        let State::Streaming(stream) = &mut slot.state else {
            unreachable!("a live multishot op's slot is streaming")
        };
        if slot.queued.epoch == epoch {
            let (queued, State::Streaming(stream)) = self.slots.remove(token.index()) else {
                unreachable!("matched above")
            };
            self.in_flight -= 1;
            return AbandonStream::Withdrawn(stream, queued);
        }
        if stream.cqes.back().is_some_and(|cqe| !has_more(cqe.flags)) {
            let (_, State::Streaming(stream)) = self.slots.remove(token.index()) else {
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
            State::Completed(_) | State::Vacant => false,
            State::Streaming(stream) => stream.cqes.back().is_none_or(|cqe| has_more(cqe.flags)),
            State::Waiting => true,
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

#[cfg(test)]
mod tests {
    //! Every transition with synthetic CQEs, then random sequences of submissions,
    //! submissions to the "kernel", completions, polls, drops and a shutdown, checked
    //! against a model: no op's resources are freed while the kernel holds them, none
    //! is freed twice, none leaks, and the in-flight count is the model's.

    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};
    use std::rc::Rc;
    use std::task::{Poll, Waker};

    use io_uring::squeue::Entry;

    use super::*;
    use crate::driver::op::{AbandonedMulti, Multishot};

    use crate::driver::CQE_F_MORE as MORE;

    /// What reaping one CQE called for, as one value for the tests to match.
    enum Reaped {
        Nothing,
        Wake(Owner),
        Finish(Box<dyn Abandoned>, Cqe),
    }

    fn reap(slots: &mut Slots, token: Token, cqe: Cqe) -> Reaped {
        let mut woken = Vec::new();
        let finished = slots.complete(token, cqe, &mut woken);
        match (finished, woken.pop()) {
            (Some((op, cqe)), None) => Reaped::Finish(op, cqe),
            (None, Some(owner)) => Reaped::Wake(owner),
            (None, None) => Reaped::Nothing,
            (Some(_), Some(_)) => panic!("an op both finished and woke someone"),
        }
    }

    /// What the test knows of the resources of every op it made.
    #[derive(Default)]
    struct World {
        /// Ops the "kernel" holds: submitted, final CQE not yet delivered.
        kernel: HashSet<u32>,
        freed: HashSet<u32>,
        /// CQEs handed to ops dropped in flight (their `more`), per op.
        more: HashMap<u32, u32>,
    }

    type Shared = Rc<RefCell<World>>;

    /// An op's resources: their drop checks that the kernel is done with them.
    struct Resource {
        id: u32,
        world: Shared,
    }

    impl Drop for Resource {
        fn drop(&mut self) {
            let mut world = self.world.borrow_mut();
            assert!(
                !world.kernel.contains(&self.id),
                "op {} freed while the kernel holds it",
                self.id
            );
            assert!(world.freed.insert(self.id), "op {} freed twice", self.id);
        }
    }

    struct FakeOp(Resource);
    struct FakeClose(Resource);
    struct FakeStream(Resource);

    // SAFETY: the SQE is a NOP, which carries no pointer; the slot table never submits
    // it anyway.
    unsafe impl Completable for FakeOp {
        type Output = Resource;
        fn prepare(&mut self, _: crate::buf::RingId) -> Entry {
            io_uring::opcode::Nop::new().build()
        }
        fn complete(self, _: io::Result<u32>, _: u32) -> Resource {
            self.0
        }
        fn fd(&self) -> Option<RawFd> {
            Some(7)
        }
    }

    // SAFETY: the SQE is a NOP, which carries no pointer; the slot table never submits
    // it anyway.
    unsafe impl Completable for FakeClose {
        type Output = Resource;
        const RUN_IF_DROPPED: bool = true;
        fn prepare(&mut self, _: crate::buf::RingId) -> Entry {
            io_uring::opcode::Nop::new().build()
        }
        fn complete(self, _: io::Result<u32>, _: u32) -> Resource {
            self.0
        }
    }

    // SAFETY: the SQE is a NOP, which carries no pointer; the slot table never submits
    // it anyway.
    unsafe impl Multishot for FakeStream {
        type Item = ();
        fn prepare(&mut self, _: crate::buf::RingId) -> Entry {
            io_uring::opcode::Nop::new().build()
        }
        fn item(&mut self, _: io::Result<u32>, flags: u32) {
            if has_more(flags) {
                *self.0.world.borrow_mut().more.entry(self.0.id).or_insert(0) += 1;
            }
        }
    }

    fn world() -> Shared {
        Rc::default()
    }

    fn res(world: &Shared, id: u32) -> Resource {
        Resource {
            id,
            world: world.clone(),
        }
    }

    fn waker() -> Waker {
        Waker::noop().clone()
    }

    fn at(epoch: u64) -> Queued {
        Queued { epoch, index: 0 }
    }

    fn done(result: i32) -> Cqe {
        Cqe { result, flags: 0 }
    }

    fn more(result: i32) -> Cqe {
        Cqe {
            result,
            flags: MORE,
        }
    }

    #[test]
    fn a_cqe_before_the_poll_is_kept_for_it() {
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit(at(0), &waker());
        assert_eq!(slots.in_flight(), 1);
        assert!(matches!(reap(&mut slots, token, done(5)), Reaped::Wake(_)));
        assert_eq!(slots.in_flight(), 0, "the kernel is done at the CQE");
        let (poll, _) = slots.poll(token, &waker());
        assert_eq!(poll, Poll::Ready(done(5)));
        assert!(
            matches!(reap(&mut slots, token, done(1)), Reaped::Nothing),
            "the slot is gone"
        );
    }

    #[test]
    fn a_poll_records_its_owner_and_hands_back_the_one_it_replaces() {
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit(at(0), &waker());
        // The same waker again: nothing replaced.
        let (poll, left) = slots.poll(token, &waker());
        assert!(poll.is_pending());
        assert!(matches!(left, Leftover::None), "{left:?}");
        // A task's waker replaces the noop one, which comes back to be dropped.
        let task = crate::task::TaskId::new(0, 3, 9).waker();
        let (_, left) = slots.poll(token, &task);
        assert!(matches!(left, Leftover::Owner(Owner::Waker(_))), "{left:?}");
        let (_, left) = slots.poll(token, &task);
        assert!(
            matches!(left, Leftover::None),
            "the same task: an integer compare"
        );
        match reap(&mut slots, token, done(0)) {
            Reaped::Wake(Owner::Task(id)) => assert_eq!(id, crate::task::TaskId::new(0, 3, 9)),
            _ => panic!("the task is the one to wake"),
        }
    }

    #[test]
    fn an_op_dropped_before_submission_is_withdrawn() {
        let w = world();
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit(
            Queued {
                epoch: 3,
                index: 11,
            },
            &waker(),
        );
        match slots.abandon(token, FakeOp(res(&w, 1)), 3) {
            Abandon::Withdrawn(op, _, queued) => {
                assert_eq!(
                    queued,
                    Queued {
                        epoch: 3,
                        index: 11
                    }
                );
                drop(op);
            }
            _ => panic!("withdrawn"),
        }
        assert_eq!(slots.in_flight(), 0, "no CQE will come");
        assert!(w.borrow().freed.contains(&1));
        assert!(matches!(reap(&mut slots, token, done(0)), Reaped::Nothing));
    }

    #[test]
    fn an_op_dropped_in_flight_is_kept_until_its_cqe_and_cancelled() {
        let w = world();
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit(at(0), &waker());
        w.borrow_mut().kernel.insert(1);
        match slots.abandon(token, FakeOp(res(&w, 1)), 1) {
            Abandon::Orphaned { cancel, .. } => assert!(cancel),
            _ => panic!("orphaned"),
        }
        assert!(slots.has_orphans(7));
        assert_eq!(slots.orphans_on(7), vec![token]);
        assert_eq!(slots.cancellable(false), vec![]);
        assert_eq!(slots.cancellable(true), vec![token]);
        assert_eq!(slots.in_flight(), 1);
        w.borrow_mut().kernel.remove(&1);
        match reap(&mut slots, token, done(-libc::ECANCELED)) {
            Reaped::Finish(op, cqe) => {
                assert_eq!(cqe.result, -libc::ECANCELED);
                op.finish(cqe);
            }
            _ => panic!("finished"),
        }
        assert!(w.borrow().freed.contains(&1));
        assert!(!slots.has_orphans(7));
        assert_eq!(slots.in_flight(), 0);
    }

    #[test]
    fn an_op_dropped_after_its_cqe_is_done() {
        let w = world();
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit(at(0), &waker());
        let _ = reap(&mut slots, token, done(3));
        match slots.abandon(token, FakeOp(res(&w, 1)), 1) {
            Abandon::Done(op, cqe) => {
                assert_eq!(cqe, done(3));
                drop(op.complete(cqe.into_result(), cqe.flags));
            }
            _ => panic!("done"),
        }
        assert!(w.borrow().freed.contains(&1));
        assert!(!slots.has_orphans(7), "a finished op is no orphan");
    }

    #[test]
    fn a_close_dropped_before_submission_still_runs() {
        let w = world();
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit(at(0), &waker());
        match slots.abandon(token, FakeClose(res(&w, 1)), 0) {
            Abandon::Orphaned { cancel, .. } => assert!(!cancel, "nothing to cancel yet"),
            _ => panic!("kept"),
        }
        assert_eq!(slots.in_flight(), 1, "it will be submitted");
        match reap(&mut slots, token, done(0)) {
            Reaped::Finish(op, cqe) => op.finish(cqe),
            _ => panic!("finished"),
        }
        assert!(w.borrow().freed.contains(&1));
    }

    #[test]
    fn a_stream_queues_its_cqes_and_ends_with_the_last() {
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit_stream(at(0), Owner::of(&waker()));
        assert!(matches!(reap(&mut slots, token, more(1)), Reaped::Wake(_)));
        assert!(
            matches!(reap(&mut slots, token, more(2)), Reaped::Nothing),
            "not re-armed"
        );
        assert_eq!(slots.in_flight(), 1);
        assert!(matches!(reap(&mut slots, token, done(0)), Reaped::Nothing));
        assert_eq!(slots.in_flight(), 0, "the last CQE came");
        assert_eq!(slots.poll_stream(token, &waker()).0, Poll::Ready(more(1)));
        assert_eq!(slots.poll_stream(token, &waker()).0, Poll::Ready(more(2)));
        let (last, left) = slots.poll_stream(token, &waker());
        assert_eq!(last, Poll::Ready(done(0)));
        assert!(
            matches!(left, Leftover::Stream(_)),
            "the slot is freed with it"
        );
    }

    #[test]
    fn a_stream_dropped_in_flight_hands_every_later_cqe_to_the_op() {
        let w = world();
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit_stream(at(0), Owner::of(&waker()));
        w.borrow_mut().kernel.insert(1);
        let _ = reap(&mut slots, token, more(1));
        let AbandonStream::InFlight(queued) = slots.abandon_stream(token, 1) else {
            panic!("in flight")
        };
        assert_eq!(queued.len(), 1);
        let mut op: Box<dyn Abandoned> = Box::new(AbandonedMulti(FakeStream(res(&w, 1))));
        for cqe in queued {
            op.more(cqe);
        }
        let _ = slots.orphan_stream(token, op);
        assert!(matches!(reap(&mut slots, token, more(2)), Reaped::Nothing));
        assert_eq!(
            w.borrow().more[&1],
            2,
            "each CQE with F_MORE went to the op"
        );
        w.borrow_mut().kernel.remove(&1);
        match reap(&mut slots, token, done(0)) {
            Reaped::Finish(op, cqe) => op.finish(cqe),
            _ => panic!("finished with the last CQE"),
        }
        assert!(w.borrow().freed.contains(&1));
        assert_eq!(slots.in_flight(), 0);
    }

    #[test]
    fn a_stream_dropped_before_submission_or_after_its_end() {
        let mut slots = Slots::with_capacity(4);
        let token = slots.submit_stream(at(5), Owner::of(&waker()));
        assert!(matches!(
            slots.abandon_stream(token, 5),
            AbandonStream::Withdrawn(..)
        ));
        assert_eq!(slots.in_flight(), 0);
        let token = slots.submit_stream(at(5), Owner::of(&waker()));
        let _ = reap(&mut slots, token, more(1));
        let _ = reap(&mut slots, token, done(0));
        match slots.abandon_stream(token, 6) {
            AbandonStream::Ended(stream) => assert_eq!((*stream).into_cqes().len(), 2),
            _ => panic!("ended"),
        }
        assert_eq!(slots.in_flight(), 0);
    }

    #[test]
    fn a_stale_cqe_matches_nothing() {
        let mut slots = Slots::with_capacity(4);
        let old = slots.submit(at(0), &waker());
        let _ = reap(&mut slots, old, done(0));
        let _ = slots.poll(old, &waker());
        // The same index, a new generation.
        let new = slots.submit(at(0), &waker());
        assert_eq!(new.index(), old.index());
        assert!(matches!(reap(&mut slots, old, done(9)), Reaped::Nothing));
        assert_eq!(slots.in_flight(), 1, "the new op is untouched");
    }

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u32) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % u64::from(n)) as u32
        }
    }

    /// A future of the model: its op, while it has it.
    enum Future {
        Single(Token, Option<FakeOp>),
        Close(Token, Option<FakeClose>),
        Stream(Token, Option<FakeStream>),
    }

    /// The model's kernel: what it holds, by token, and for streams whether to end.
    struct Model {
        slots: Slots,
        world: Shared,
        epoch: u64,
        /// The queue of the current epoch: tokens and whether withdrawn.
        pending: Vec<(Token, u32, bool)>,
        /// Submitted ops: token -> op id.
        kernel: HashMap<u64, (Token, u32, bool)>,
        futures: Vec<Future>,
        next_id: u32,
        made: u32,
    }

    impl Model {
        fn queued(&self) -> Queued {
            Queued {
                epoch: self.epoch,
                index: self.pending.len() as u32,
            }
        }

        fn new_op(&mut self, kind: u32) {
            let id = self.next_id;
            self.next_id += 1;
            self.made += 1;
            let queued = self.queued();
            let (token, future, stream) = match kind {
                0 => {
                    let token = self.slots.submit(queued, &waker());
                    (
                        token,
                        Future::Single(token, Some(FakeOp(res(&self.world, id)))),
                        false,
                    )
                }
                1 => {
                    let token = self.slots.submit(queued, &waker());
                    (
                        token,
                        Future::Close(token, Some(FakeClose(res(&self.world, id)))),
                        false,
                    )
                }
                _ => {
                    let token = self.slots.submit_stream(queued, Owner::of(&waker()));
                    (
                        token,
                        Future::Stream(token, Some(FakeStream(res(&self.world, id)))),
                        true,
                    )
                }
            };
            self.pending.push((token, id, false));
            let _ = stream;
            self.futures.push(future);
        }

        fn detached(&mut self) {
            let id = self.next_id;
            self.next_id += 1;
            self.made += 1;
            let queued = self.queued();
            let op = Box::new(FakeClose(res(&self.world, id)));
            let token = self.slots.submit_detached(queued, op);
            self.pending.push((token, id, false));
        }

        /// The "kernel" takes every queued SQE that was not withdrawn.
        fn submit(&mut self) {
            for (token, id, withdrawn) in self.pending.drain(..) {
                if !withdrawn {
                    self.world.borrow_mut().kernel.insert(id);
                    let stream = self
                        .futures
                        .iter()
                        .any(|f| matches!(f, Future::Stream(t, _) if *t == token));
                    self.kernel.insert(token.0, (token, id, stream));
                }
            }
            self.epoch += 1;
        }

        fn handle(&mut self, reaped: Reaped) {
            match reaped {
                Reaped::Finish(op, cqe) => op.finish(cqe),
                Reaped::Wake(owner) => drop(owner),
                Reaped::Nothing => {}
            }
        }

        /// The kernel posts a CQE for one op it holds (streams: one with F_MORE, or
        /// the last).
        fn complete(&mut self, rng: &mut Rng) {
            if self.kernel.is_empty() {
                return;
            }
            let key = *self
                .kernel
                .keys()
                .nth(rng.below(self.kernel.len() as u32) as usize)
                .unwrap();
            let (token, id, stream) = self.kernel[&key];
            let cqe = if stream && rng.below(3) != 0 {
                more(1)
            } else {
                self.kernel.remove(&key);
                self.world.borrow_mut().kernel.remove(&id);
                done(0)
            };
            let reaped = reap(&mut self.slots, token, cqe);
            self.handle(reaped);
        }

        fn poll(&mut self, rng: &mut Rng) {
            if self.futures.is_empty() {
                return;
            }
            let i = rng.below(self.futures.len() as u32) as usize;
            let finished = match &mut self.futures[i] {
                Future::Single(token, op) => match self.slots.poll(*token, &waker()).0 {
                    Poll::Ready(cqe) => {
                        drop(op.take().unwrap().complete(cqe.into_result(), cqe.flags));
                        true
                    }
                    Poll::Pending => false,
                },
                Future::Close(token, op) => match self.slots.poll(*token, &waker()).0 {
                    Poll::Ready(cqe) => {
                        drop(op.take().unwrap().complete(cqe.into_result(), cqe.flags));
                        true
                    }
                    Poll::Pending => false,
                },
                Future::Stream(token, op) => match self.slots.poll_stream(*token, &waker()) {
                    (Poll::Ready(cqe), left) if !has_more(cqe.flags) => {
                        drop(left);
                        drop(op.take());
                        true
                    }
                    _ => false,
                },
            };
            if finished {
                self.futures.swap_remove(i);
            }
        }

        fn drop_future(&mut self, rng: &mut Rng) {
            if self.futures.is_empty() {
                return;
            }
            let i = rng.below(self.futures.len() as u32) as usize;
            let future = self.futures.swap_remove(i);
            self.abandon(future);
        }

        fn abandon(&mut self, future: Future) {
            let epoch = self.epoch;
            match future {
                Future::Single(token, Some(op)) => {
                    let abandon = self.slots.abandon(token, op, epoch);
                    self.abandoned(token, abandon);
                }
                Future::Close(token, Some(op)) => {
                    let abandon = self.slots.abandon(token, op, epoch);
                    self.abandoned(token, abandon);
                }
                Future::Stream(token, Some(op)) => match self.slots.abandon_stream(token, epoch) {
                    AbandonStream::Withdrawn(stream, queued) => {
                        self.withdraw(token, queued);
                        drop((stream, op));
                    }
                    AbandonStream::Ended(stream) => {
                        let mut cqes = (*stream).into_cqes();
                        let last = cqes.pop_back().unwrap();
                        let mut op: Box<dyn Abandoned> = Box::new(AbandonedMulti(op));
                        for cqe in cqes {
                            op.more(cqe);
                        }
                        op.finish(last);
                    }
                    AbandonStream::InFlight(cqes) => {
                        let mut op: Box<dyn Abandoned> = Box::new(AbandonedMulti(op));
                        for cqe in cqes {
                            op.more(cqe);
                        }
                        drop(self.slots.orphan_stream(token, op));
                    }
                },
                _ => unreachable!("a live future has its op"),
            }
        }

        fn abandoned<T: Completable>(&mut self, token: Token, abandon: Abandon<T>) {
            match abandon {
                Abandon::Done(op, cqe) => drop(op.complete(cqe.into_result(), cqe.flags)),
                Abandon::Withdrawn(op, owner, queued) => {
                    self.withdraw(token, queued);
                    drop((op, owner));
                }
                Abandon::Orphaned { .. } => {}
            }
        }

        fn withdraw(&mut self, token: Token, queued: Queued) {
            assert_eq!(queued.epoch, self.epoch, "withdrawn only before submission");
            let entry = &mut self.pending[queued.index as usize];
            assert_eq!(entry.0, token, "the queue entry is the op's own");
            entry.2 = true;
        }

        /// In flight, as the model sees it: queued and not withdrawn, or held by the
        /// kernel.
        fn expected_in_flight(&self) -> usize {
            self.pending.iter().filter(|p| !p.2).count() + self.kernel.len()
        }
    }

    #[test]
    fn random_sequences_keep_every_resource_until_its_final_cqe() {
        let seed = std::env::var("SLOTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_0001_u64);
        for round in 0..200u64 {
            let mut rng = Rng(seed.wrapping_add(round).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut m = Model {
                slots: Slots::with_capacity(8),
                world: world(),
                epoch: 0,
                pending: Vec::new(),
                kernel: HashMap::new(),
                futures: Vec::new(),
                next_id: 0,
                made: 0,
            };
            for _ in 0..400 {
                match rng.below(12) {
                    0..=2 => m.new_op(rng.below(3)),
                    3 => m.detached(),
                    4 | 5 => m.submit(),
                    6..=8 => m.complete(&mut rng),
                    9 | 10 => m.poll(&mut rng),
                    _ => m.drop_future(&mut rng),
                }
                assert_eq!(
                    m.slots.in_flight(),
                    m.expected_in_flight(),
                    "seed {seed:#x} round {round}: in flight"
                );
            }
            // Shutdown: every future is dropped, everything queued submitted, and the
            // kernel completes (or cancels) all it holds.
            while let Some(future) = m.futures.pop() {
                m.abandon(future);
            }
            m.submit();
            while !m.kernel.is_empty() {
                m.complete(&mut rng);
            }
            assert_eq!(m.slots.in_flight(), 0, "seed {seed:#x} round {round}");
            let world = m.world.borrow();
            assert_eq!(
                world.freed.len() as u32,
                m.made,
                "seed {seed:#x} round {round}: every op's resources freed once"
            );
        }
    }
}
