//! The op slab and the `Op<T>` future: who owns an operation's memory, and when.
//!
//! # States
//!
//! Every operation handed to the kernel has one slot in the driver's slab. The SQE's
//! `user_data` is the slot's [`Token`]: its index in the low 32 bits and a generation
//! in the high 32, so a CQE can only ever be matched to the op that made it, never to
//! a later op that reuses the index. An op is queued when its future is first polled,
//! with that poll's waker, so a slot starts out `Waiting` (or `Streaming`, for an op that
//! posts several CQEs). A slot is in one of four states:
//!
//! | state | who owns the op's resources (buffers, paths, sockaddrs) |
//! |---|---|
//! | `Waiting(waker)` | the `Op` future, which waits for the CQE |
//! | `Completed(cqe)` | the `Op` future; the kernel is done with the resources |
//! | `Streaming(queue)` | the [`MultiOp`]; CQEs queue up until it takes them |
//! | `Ignored(box)` | the slot: the future was dropped while the kernel held them |
//!
//! A multishot op (accept, recv) and a zero-copy send post several CQEs; every one but
//! the last carries `IORING_CQE_F_MORE`. Such an op is in flight until that last CQE
//! (rule 3 and 4 of the design): its slot stays `Streaming` while the [`MultiOp`] lives,
//! and becomes `Ignored` if it is dropped first, in which case each later CQE is handed
//! to the op so that what it carries (an accepted fd, a provided buffer) is released.
//!
//! # Queued is not submitted
//!
//! A queued SQE waits in the driver's own queue (`Inner::pending`) until the core turns
//! its ring, which copies the whole queue into the kernel's submission queue and enters
//! the kernel in one go; the kernel has taken every entry when that returns. Each slot
//! records the submission (`epoch`) its SQE waits for and its place in the queue. An op
//! dropped before its SQE was submitted is *withdrawn*: its queue entry is skipped, its
//! slot freed and its resources dropped at once. The kernel never sees it, so a read
//! dropped after its first poll takes no data and a write sends nothing. Ops whose
//! effect is the point ([`Completable::RUN_IF_DROPPED`]: a close) run anyway, as
//! `Ignored` slots.
//!
//! # Why this is sound (rule 1 of the design: the kernel may use an op's memory until
//! its final CQE)
//!
//! - The kernel is given pointers only into memory owned by the op's [`Completable`]
//!   value, and only into heap blocks of it, never into the value itself, so moving the
//!   value (into the slot, say) does not move what the kernel sees.
//! - While the slot is `Waiting`, that value lives in the `Op` future.
//!   The future cannot drop it without going through [`Driver::abandon`]: if the CQE
//!   has come (`Completed`), the kernel is done and the value may go; if the SQE was
//!   never submitted, it is withdrawn (the kernel never had the pointers); otherwise the
//!   value moves into the slot as `Ignored` and an `ASYNC_CANCEL` is queued.
//! - An `Ignored` slot is removed, and its value dropped, only when its CQE is reaped.
//!   A cancel that finds nothing (`-ENOENT`) or comes too late (`-EALREADY`) changes
//!   nothing: the slot still waits for the target's own CQE.
//! - [`Completable::complete`] runs for an ignored op too, and its output is dropped;
//!   an op whose completion creates a resource (an accepted socket, an opened file)
//!   returns it as an owning type, so dropping the output closes it (rule 2).
//! - The driver is never dropped with slots in flight: shutdown cancels every op and
//!   waits for every CQE first (rule 6).
//!
//! # Foreign code runs outside the driver
//!
//! A waker's drop, a buffer's drop and an output's drop may run code of the user's,
//! which may poll or drop other ops of this core. None of them happens while the
//! driver is borrowed: a replaced or freed slot is dropped after the borrow ends, and
//! wakers and finished ops are collected and handled after it.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::squeue::Entry;

use super::exec::Exec;
use super::slots::{Cqe, Token};
use super::Driver;
use crate::buf::RingId;

/// The ring id an op's SQE is built for on the readiness backend: no ring's, so every
/// op builds its plain opcode (a registered buffer is a plain buffer there).
const NO_RING: RingId = RingId::new(0);

/// What one run of a multishot op on the readiness backend came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The CQE the ring would have posted: its result and flags (`F_MORE` while the
    /// stream goes on).
    Done(i32, u32),
    /// It would block: wait for these `poll` events on this fd, then run it again.
    Wait(RawFd, u32),
}

/// Runs SQEs as plain syscalls, for [`Multishot::step`] (the readiness backend).
pub(crate) struct Runner<'a>(&'a Driver);

impl Runner<'_> {
    /// Runs `entry` once, without blocking.
    ///
    /// # Safety
    ///
    /// `entry` is from the caller's own `prepare` (or built the same way, from memory
    /// it owns through heap blocks), valid by the [`Multishot`] contract for the call.
    pub(crate) unsafe fn run(&mut self, entry: &Entry) -> Exec {
        // SAFETY: the caller's promise.
        unsafe { self.0.exec(entry, true) }
    }
}

/// One io_uring operation: what it hands the kernel and what it makes of the CQE.
///
/// Each opcode is one implementation, in its own file under `driver/ops/`, whose
/// `unsafe impl` carries a `// SAFETY:` comment naming every pointer its SQE holds and
/// why it stays valid until the final CQE.
///
/// # What the driver guarantees an implementation
///
/// - [`prepare`](Completable::prepare) is called once, with the ring the SQE is for,
///   before the SQE is queued. The SQE it returns is the only one built from the value.
/// - From then until the op's final CQE has been reaped, the value stays alive: in its
///   [`Op`] future, or, if that is dropped while the kernel may hold the SQE, in the
///   op's slot (module docs); the driver is never dropped with ops in flight. The value
///   may be *moved* meanwhile (into the slot; an `Op` is `Unpin` and moves with its
///   caller's future), but it is not dropped, and nothing but the driver touches it.
/// - [`complete`](Completable::complete) is called at most once: with the final CQE's
///   result, or with the error that kept the SQE from the kernel. An op withdrawn
///   before its SQE was submitted is dropped without it. Either way, when `complete`
///   runs or the value is dropped, the kernel is done with the op's memory.
///
/// # Safety
///
/// The driver hands the SQE to the kernel, which reads and writes through the
/// addresses in it, unseen by the borrow checker, from submission to the final CQE.
/// An implementation promises, for the SQE its `prepare` returns:
///
/// 1. **Valid until the final CQE.** Every pointer the SQE carries (a buffer, an iovec
///    array, a `msghdr` and everything it points to, a path, a socket address and its
///    length, a `statx` buffer, an fd array) points to memory that is allocated and
///    valid for the access the opcode makes (read, or write, of the length the SQE
///    gives), and that stays allocated and at the same address until the value is
///    dropped. With the driver's guarantee above, that is until the final CQE.
/// 2. **Owned through heap blocks, not by the value itself.** That memory is owned by
///    the value through heap blocks that do not move when the value does (an
///    [`IoBuf`](crate::buf::IoBuf)'s memory, a `CString`'s bytes, a
///    [`KernelBox`](crate::buf::KernelBox)), or is static; never a field of the value,
///    which moves.
/// 3. **No Rust access while the kernel may use it.** Between `prepare` and the final
///    CQE, Rust does not read memory the kernel may write, nor write memory the kernel
///    may read, nor make a reference to it or move a `Box` that owns it: either would
///    assert to the compiler an access that the kernel's contradicts, and invalidate
///    the pointers taken before. So the pointers come straight from raw owners
///    ([`KernelBox::as_mut_ptr`](crate::buf::KernelBox::as_mut_ptr), an `IoBufMut`'s
///    stable pointer), not through references, and no method of the value but
///    `complete` (which the driver calls only after the final CQE) touches what they
///    point to.
/// 4. **Nothing is read before the CQE says it was written.** `complete` reads only
///    what the result reports the kernel wrote: `n` bytes of a read (`set_init(n)`),
///    the address and length an accept or `recvmsg` filled, the `statx` of a success.
/// 5. **Registered buffers of this ring only.** The SQE names a registered buffer
///    (`READ_FIXED`/`WRITE_FIXED`) only with the index that buffer's
///    `fixed_index` gave for `ring`, and an address and length inside that buffer.
/// 6. **Fds the kernel made are owned once.** An fd from the result that `complete`
///    wraps in an owning type is one the kernel created for this op, which nobody else
///    owns; an fd the kernel closed is never closed again.
pub(crate) unsafe trait Completable: Unpin + 'static {
    /// What the op's future resolves to.
    type Output;

    /// Whether the op must still run when its future is dropped before the kernel saw
    /// it: a close (the fd must not stay open) or the emptying of a registered-file
    /// slot. Other ops are withdrawn then and never run (see the module docs).
    const RUN_IF_DROPPED: bool = false;

    /// Builds the SQE (its `user_data` is set by the driver) for the ring `ring`.
    ///
    /// Every pointer in it must point into heap memory owned by `self` (or static
    /// memory), so that it stays put when `self` moves; see the `# Safety` section.
    fn prepare(&mut self, ring: RingId) -> Entry;

    /// Turns the CQE, or an error that kept the op from being submitted, into the
    /// output, handing back the resources. The kernel is done with them.
    fn complete(self, result: io::Result<u32>, flags: u32) -> Self::Output;

    /// The socket the op works on, if it is one whose hand-off (`into_std`) must wait
    /// for the op's last CQE when the op was dropped in flight.
    fn fd(&self) -> Option<RawFd> {
        None
    }
}

/// An operation that posts several CQEs: a multishot accept or recv, a zero-copy
/// send. Every CQE but the last has `IORING_CQE_F_MORE`.
///
/// # What the driver guarantees an implementation
///
/// As for [`Completable`], with these differences:
///
/// - [`prepare`](Multishot::prepare) is called before each submission: first, and
///   again only after the final CQE of the previous one (a re-armed stream).
/// - The value stays alive, and is not dropped, until the final CQE of each
///   submission, the one without `F_MORE` (for a zero-copy send, the notification).
/// - [`item`](Multishot::item) is called once per CQE, in order, or once with the
///   error that kept the SQE from the kernel.
///
/// # Safety
///
/// As for [`Completable`], where "the final CQE" is the one without `F_MORE`, with
/// `item` in `complete`'s place; and `item` for a CQE that is not the last reads only
/// what that CQE hands over (an fd it carries, a provided buffer it names): the
/// kernel may still use every other piece of the op's memory.
pub(crate) unsafe trait Multishot: Unpin + 'static {
    /// What each CQE becomes.
    type Item;

    /// Builds the SQE (its `user_data` is set by the driver) for the ring `ring`; as
    /// for [`Completable::prepare`], pointers only into heap memory owned by `self`.
    fn prepare(&mut self, ring: RingId) -> Entry;

    /// Turns one CQE (the last one too), or the error that kept the op from being
    /// submitted (with `flags` 0), into an item. An item that owns a resource (an fd, a
    /// provided buffer) releases it when dropped: abandoned ops drop theirs.
    ///
    /// For an abandoned op this runs, and the item is dropped, while the driver is
    /// borrowed for every CQE but the last: such an item must not run foreign code when
    /// dropped (an fd, a provided buffer: fine; a user's buffer: only in the last).
    fn item(&mut self, result: io::Result<u32>, flags: u32) -> Self::Item;

    /// As [`Completable::fd`].
    fn fd(&self) -> Option<RawFd> {
        None
    }

    /// The readiness backend: runs the op once as plain syscalls and says which CQE
    /// the ring would have posted, or what to wait for. By default each run is the
    /// SQE of [`prepare`](Multishot::prepare) as its plain syscall, and a success
    /// goes on (`F_MORE`) while a failure ends the stream, as a multishot accept does.
    fn step(&mut self, runner: &mut Runner<'_>) -> Step {
        let entry = self.prepare(NO_RING);
        // SAFETY: the SQE of our own `prepare`, whose pointers the contract keeps valid
        // while `self` lives, which it does across this call.
        match unsafe { runner.run(&entry) } {
            Exec::Done(result) if result >= 0 => Step::Done(result, CQE_F_MORE),
            Exec::Done(result) => Step::Done(result, 0),
            Exec::Wait(fd, events) => Step::Wait(fd, events),
            Exec::NextTurn => unreachable!("only a nop waits for the next turn"),
        }
    }
}

/// CQE flags, for the CQEs the readiness backend makes up in the ring's place (and
/// for tests that play the kernel): `IORING_CQE_F_BUFFER` (a provided buffer, whose id
/// is the flags' high half, from `IORING_CQE_BUFFER_SHIFT`), `IORING_CQE_F_MORE`,
/// `IORING_CQE_F_NOTIF`.
pub(crate) const CQE_F_BUFFER: u32 = 1;
pub(crate) const CQE_F_MORE: u32 = 1 << 1;
pub(crate) const CQE_F_NOTIF: u32 = 1 << 3;
pub(crate) const CQE_BUFFER_SHIFT: u32 = 16;

/// Whether the kernel will post more CQEs for the op after this one.
pub(crate) fn has_more(flags: u32) -> bool {
    io_uring::cqueue::more(flags)
}

/// The slot of a dropped op (`Lifecycle::Ignored`): it owns the op's value, and with
/// it every heap block the kernel may still use, until the final CQE. `more` is called
/// for each CQE that is not the last, `finish` once with the last, after which the
/// value is dropped.
///
/// A safe trait: it hands the kernel nothing. Its only implementations are the two
/// below, over a [`Completable`] and a [`Multishot`], whose own `unsafe impl`s make
/// the promises about the op's memory; keeping the value until `finish` is the
/// driver's part of them.
pub(super) trait Abandoned {
    fn more(&mut self, _cqe: Cqe) {}
    fn finish(self: Box<Self>, cqe: Cqe);
    /// The socket it works on (see [`Completable::fd`]).
    fn fd(&self) -> Option<RawFd>;
}

impl<T: Completable> Abandoned for T {
    fn finish(self: Box<Self>, cqe: Cqe) {
        // Dropping the output frees the buffers and closes any resource the op made.
        drop((*self).complete(cqe.into_result(), cqe.flags));
    }
    fn fd(&self) -> Option<RawFd> {
        Completable::fd(self)
    }
}

/// A dropped multishot op, kept until its last CQE.
pub(super) struct AbandonedMulti<T>(pub(super) T);

impl<T: Multishot> Abandoned for AbandonedMulti<T> {
    fn more(&mut self, cqe: Cqe) {
        drop(self.0.item(cqe.into_result(), cqe.flags));
    }
    fn finish(mut self: Box<Self>, cqe: Cqe) {
        drop(self.0.item(cqe.into_result(), cqe.flags));
    }
    fn fd(&self) -> Option<RawFd> {
        self.0.fd()
    }
}

/// The future of one operation. Nothing reaches the kernel until it is first polled.
pub(crate) struct Op<T: Completable> {
    data: Option<T>,
    state: State,
}

enum State {
    Unsubmitted,
    InFlight { driver: Rc<Driver>, token: Token },
    Done,
}

impl<T: Completable> Op<T> {
    pub(crate) fn new(data: T) -> Op<T> {
        Op {
            data: Some(data),
            state: State::Unsubmitted,
        }
    }

    fn finish(&mut self, result: io::Result<u32>, flags: u32) -> T::Output {
        self.state = State::Done;
        let data = self
            .data
            .take()
            .expect("an op holds its data until it completes");
        data.complete(result, flags)
    }
}

impl<T: Completable> Future for Op<T> {
    type Output = T::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        match &this.state {
            State::Unsubmitted => {
                let Some(driver) = super::current() else {
                    return Poll::Ready(this.finish(Err(super::no_runtime()), 0));
                };
                if !driver.is_ring() {
                    return this.run(driver, cx, false);
                }
                let data = this.data.as_mut().expect("unsubmitted op has its data");
                match driver.submit(data, cx.waker()) {
                    Ok(token) => {
                        this.state = State::InFlight { driver, token };
                        Poll::Pending
                    }
                    Err(e) => Poll::Ready(this.finish(Err(e), 0)),
                }
            }
            State::InFlight { driver, token } if driver.is_ring() => {
                match driver.poll_op(*token, cx) {
                    Poll::Ready(cqe) => Poll::Ready(this.finish(cqe.into_result(), cqe.flags)),
                    Poll::Pending => Poll::Pending,
                }
            }
            State::InFlight { driver, token } => match driver.poll_wait(*token, cx) {
                Poll::Ready(_) => {
                    let driver = driver.clone();
                    this.state = State::Unsubmitted;
                    this.run(driver, cx, true)
                }
                Poll::Pending => Poll::Pending,
            },
            State::Done => panic!("an io_uring op future was polled after it completed"),
        }
    }
}

impl<T: Completable> Op<T> {
    /// The readiness backend: runs the op as its plain syscall; if that would block,
    /// waits for its fd to be ready (the op runs again at the poll after that).
    #[inline(never)]
    fn run(&mut self, driver: Rc<Driver>, cx: &mut Context<'_>, retry: bool) -> Poll<T::Output> {
        // An op that is ready at once finishes inside this poll: the task's budget
        // keeps a loop of such ops from starving the others.
        if !retry {
            std::task::ready!(crate::coop::poll_proceed(cx));
        }
        let data = self
            .data
            .as_mut()
            .expect("an op holds its data until it completes");
        let entry = data.prepare(NO_RING);
        // SAFETY: the SQE of the op's own `prepare`; the op is alive and untouched for
        // the call, which by rule 1 of `Completable` keeps every pointer in it valid.
        let waiting = match unsafe { driver.exec(&entry, retry) } {
            Exec::Done(result) => {
                let cqe = Cqe { result, flags: 0 };
                return Poll::Ready(self.finish(cqe.into_result(), 0));
            }
            Exec::Wait(fd, events) => driver.wait_ready(fd, events, cx.waker()),
            Exec::NextTurn => driver.wait_turn(cx.waker()),
        };
        match waiting {
            Ok(token) => {
                self.state = State::InFlight { driver, token };
                Poll::Pending
            }
            Err(e) => Poll::Ready(self.finish(Err(e), 0)),
        }
    }
}

impl<T: Completable> Drop for Op<T> {
    fn drop(&mut self) {
        if let State::InFlight { driver, token } = &self.state {
            if !driver.is_ring() {
                // Only a wait for readiness: the kernel holds nothing of the op's.
                return driver.withdraw_wait(*token);
            }
            if let Some(data) = self.data.take() {
                driver.abandon(*token, data);
            }
        }
    }
}

impl<T: Completable> std::fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Unsubmitted => "unsubmitted",
            State::InFlight { .. } => "in flight",
            State::Done => "done",
        };
        f.debug_struct("Op").field("state", &state).finish()
    }
}

/// A multishot operation as a stream of items, one per CQE; it ends after the CQE
/// without `IORING_CQE_F_MORE`. Nothing reaches the kernel until it is first polled;
/// [`MultiOp::rearm`] starts it again after it ended.
pub(crate) struct MultiOp<T: Multishot> {
    data: Option<T>,
    state: State,
}

impl<T: Multishot> MultiOp<T> {
    pub(crate) fn new(data: T) -> MultiOp<T> {
        MultiOp {
            data: Some(data),
            state: State::Unsubmitted,
        }
    }

    /// Whether the last CQE has been taken: the kernel is done with the op.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Submits the op again at the next poll, after it ended.
    pub(crate) fn rearm(&mut self) {
        debug_assert!(self.is_done());
        if self.is_done() {
            self.state = State::Unsubmitted;
        }
    }

    /// The op's data, while the kernel does not hold it (before the first poll or
    /// after the last CQE).
    pub(crate) fn data_mut(&mut self) -> Option<&mut T> {
        match self.state {
            State::InFlight { .. } => None,
            _ => self.data.as_mut(),
        }
    }

    /// The op's data, read-only (the kernel never reads these fields through it).
    pub(crate) fn data(&self) -> &T {
        self.data.as_ref().expect("a multishot op keeps its data")
    }

    /// The next item, or `None` once the op has ended (until [`MultiOp::rearm`]).
    /// An op that could not be submitted ends with the item made of that error.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        let data = self.data.as_mut().expect("a multishot op keeps its data");
        match &self.state {
            State::InFlight { driver, token } if !driver.is_ring() => {
                match driver.poll_wait(*token, cx) {
                    Poll::Ready(_) => {
                        let driver = driver.clone();
                        self.state = State::Unsubmitted;
                        self.step(driver, cx)
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            State::Unsubmitted => {
                let submitted = match super::current() {
                    None => Err(super::no_runtime()),
                    Some(driver) if !driver.is_ring() => return self.step(driver, cx),
                    Some(driver) => driver
                        .submit_multi(data, cx.waker())
                        .map(|token| (driver, token)),
                };
                match submitted {
                    Ok((driver, token)) => {
                        self.state = State::InFlight { driver, token };
                        Poll::Pending
                    }
                    Err(e) => {
                        self.state = State::Done;
                        Poll::Ready(Some(data.item(Err(e), 0)))
                    }
                }
            }
            State::InFlight { driver, token } => match driver.poll_multi(*token, cx) {
                Poll::Ready(cqe) => {
                    if !has_more(cqe.flags) {
                        self.state = State::Done;
                    }
                    Poll::Ready(Some(data.item(cqe.into_result(), cqe.flags)))
                }
                Poll::Pending => Poll::Pending,
            },
            State::Done => Poll::Ready(None),
        }
    }
}

impl<T: Multishot> MultiOp<T> {
    /// The readiness backend: runs the op once; an item if it made one, else a wait.
    #[inline(never)]
    fn step(&mut self, driver: Rc<Driver>, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        std::task::ready!(crate::coop::poll_proceed(cx));
        let data = self.data.as_mut().expect("a multishot op keeps its data");
        match data.step(&mut Runner(&driver)) {
            Step::Done(result, flags) => {
                if !has_more(flags) {
                    self.state = State::Done;
                }
                let cqe = Cqe { result, flags };
                Poll::Ready(Some(data.item(cqe.into_result(), flags)))
            }
            Step::Wait(fd, events) => match driver.wait_ready(fd, events, cx.waker()) {
                Ok(token) => {
                    self.state = State::InFlight { driver, token };
                    Poll::Pending
                }
                Err(e) => {
                    self.state = State::Done;
                    Poll::Ready(Some(data.item(Err(e), 0)))
                }
            },
        }
    }
}

impl<T: Multishot> Drop for MultiOp<T> {
    fn drop(&mut self) {
        if let State::InFlight { driver, token } = &self.state {
            if !driver.is_ring() {
                return driver.withdraw_wait(*token);
            }
            if let Some(data) = self.data.take() {
                driver.abandon_multi(*token, data);
            }
        }
    }
}

impl<T: Multishot> std::fmt::Debug for MultiOp<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Unsubmitted => "unsubmitted",
            State::InFlight { .. } => "in flight",
            State::Done => "done",
        };
        f.debug_struct("MultiOp").field("state", &state).finish()
    }
}
