//! Many senders, one receiver: bounded ([`channel`]) or unbounded ([`unbounded`]).
//!
//! # State
//!
//! The endpoints of one channel share a count of live senders and, behind one mutex,
//! this state:
//!
//! | field | holds | changed by |
//! |---|---|---|
//! | `queue` | values sent and not yet received | senders push; the receiver pops (or takes it all) |
//! | `rx_waker` | the receiver's waker, while it waits | the receiver stores it; whatever lets it progress takes it |
//! | `waiters` | bounded only: the sends waiting for a slot, oldest first | each send adds and removes its own entry |
//! | `reserved` | how many waiters hold a granted slot | grants add one; a granted send that fills or gives up its slot removes one |
//! | `closed` | the receiver closed the channel or was dropped | the receiver, once |
//! | `senders_gone` | the last sender was dropped | the last sender, once |
//!
//! # Capacity and order (bounded channels)
//!
//! The slots in use are `queue.len() + reserved`. The channel keeps three facts:
//!
//! 1. `queue.len() + reserved <= cap`;
//! 2. the first `reserved` entries of `waiters` are exactly the granted ones;
//! 3. while some waiter has no slot, all `cap` slots are in use.
//!
//! A new send takes a free slot at once only when every waiter already has a slot, so
//! it never overtakes a send that waits; otherwise it joins the end of `waiters` (by
//! 3 there is no free slot to take anyway). Only two steps free a slot while the
//! channel is open: the receiver taking a value, and a granted send being dropped
//! before it filled its slot. Each grants the freed slot on the spot to the first
//! waiter without one, which keeps 1 to 3. A granted send that fills its slot moves
//! one from `reserved` to `queue`; a send dropped before its grant frees nothing.
//! So slots go to waiting sends in arrival order, and (by 3) no slot stays free while
//! a send waits: a cancelled send never strands capacity.
//!
//! # Why no wake is lost
//!
//! A waiting endpoint checks its condition and stores its waker under the lock, and
//! every change that could satisfy the condition is made under the same lock and takes
//! the stored waker. A change therefore comes either before the check, which sees it,
//! or after the waker was stored, and wakes it.
//!
//! - The receiver waits only on an empty queue of an open channel with live senders.
//!   A push and the last sender's drop take `rx_waker`; closing is the receiver's own
//!   doing.
//! - A send waits only for a grant or for the channel to close. A grant takes that
//!   waiter's waker; a close (or the receiver's drop) takes every waiter's waker.
//! - A granted send dropped before it filled its slot hands the grant on as above,
//!   waking the next waiter, so a wake it received is never swallowed.
//!
//! Wakers are taken, not cloned, when they are woken: a sender that finds no waiter
//! stored wakes nobody. A waiter stores its waker again on every pending poll, and
//! skips the clone when [`Waker::will_wake`] says the stored one wakes the same task.
//! Wakes happen after the lock is released, and values are never dropped under it
//! (the receiver's drop moves the queue out first).
//!
//! # Batches (unbounded channels)
//!
//! When its own buffer is empty, the receiver of an unbounded channel swaps it with
//! the shared queue, under one lock, and then receives the whole batch without
//! locking. A bounded receiver takes one value per lock instead, because the slot of
//! a received value must be freed, and granted to a waiting send, at once.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use futures_core::Stream;

use super::{lock, register};

/// Makes a bounded channel that buffers at most `cap` values.
///
/// When the buffer is full, [`Sender::send`] waits for the receiver to take a value,
/// and [`Sender::try_send`] fails with [`TrySendError::Full`].
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// let (tx, mut rx) = runtime::channel::mpsc::channel(1);
/// tx.send(1).await.unwrap();
/// assert!(tx.try_send(2).is_err()); // full
/// assert_eq!(rx.recv().await, Some(1));
/// tx.try_send(2).unwrap();
/// # });
/// ```
///
/// # Panics
///
/// If `cap` is 0: a channel without room for one value cannot carry anything.
pub fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        cap > 0,
        "runtime::channel::mpsc::channel: the capacity must be at least 1"
    );
    let shared = Arc::new(Shared::new(Some(cap)));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver::new(shared),
    )
}

/// Makes a channel without a bound: a send always succeeds at once while the
/// receiver is there.
///
/// Nothing slows a sender down, so the buffer grows as long as the receiver falls
/// behind; prefer [`channel`] when senders may outpace it.
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// let (tx, mut rx) = runtime::channel::mpsc::unbounded();
/// tx.send("a").unwrap();
/// drop(tx);
/// assert_eq!(rx.recv().await, Some("a"));
/// assert_eq!(rx.recv().await, None);
/// # });
/// ```
pub fn unbounded<T>() -> (UnboundedSender<T>, Receiver<T>) {
    let shared = Arc::new(Shared::new(None));
    (
        UnboundedSender {
            shared: shared.clone(),
        },
        Receiver::new(shared),
    )
}

/// What all endpoints of one channel share.
struct Shared<T> {
    /// The capacity, or `None` for an unbounded channel.
    cap: Option<usize>,
    /// Live senders; the lock is taken only when the last one goes.
    senders: AtomicUsize,
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    rx_waker: Option<Waker>,
    /// Sends waiting for a slot, by ticket (oldest first); granted ones first.
    waiters: VecDeque<Waiter>,
    /// How many waiters hold a granted slot.
    reserved: usize,
    next_ticket: u64,
    closed: bool,
    senders_gone: bool,
}

/// A send waiting for a slot of a bounded channel.
struct Waiter {
    ticket: u64,
    /// `None` once taken to wake the send, until it polls again.
    waker: Option<Waker>,
    granted: bool,
}

impl<T> Shared<T> {
    fn new(cap: Option<usize>) -> Shared<T> {
        Shared {
            cap,
            senders: AtomicUsize::new(1),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                rx_waker: None,
                waiters: VecDeque::new(),
                reserved: 0,
                next_ticket: 0,
                closed: false,
                senders_gone: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    fn add_sender(&self) {
        // A new sender is made from a live one, so the count cannot be zero here and
        // needs no ordering with anything else.
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut state = self.lock();
        state.senders_gone = true;
        let rx = state.rx_waker.take();
        drop(state);
        wake(rx);
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Queues `value`, releases the lock and wakes the receiver if it waits. The caller
    /// has checked that the channel is open and, if bounded, that it holds a slot.
    fn push(&self, mut state: MutexGuard<'_, State<T>>, value: T) {
        state.queue.push_back(value);
        let rx = state.rx_waker.take();
        drop(state);
        wake(rx);
    }
}

impl<T> State<T> {
    /// Whether a new send may fill a slot now: one is free and no waiter lacks one.
    fn has_free_slot(&self, cap: usize) -> bool {
        self.waiters.len() == self.reserved && self.queue.len() + self.reserved < cap
    }

    /// Grants a freed slot to the first waiter without one; returns its waker.
    fn grant_next(&mut self) -> Option<Waker> {
        if self.closed {
            return None;
        }
        let waiter = self.waiters.get_mut(self.reserved)?;
        waiter.granted = true;
        self.reserved += 1;
        waiter.waker.take()
    }

    fn position(&self, ticket: u64) -> Option<usize> {
        self.waiters
            .binary_search_by_key(&ticket, |w| w.ticket)
            .ok()
    }

    /// Removes a waiter; a slot it held goes to the next waiter.
    ///
    /// Returns the removed waiter's own waker (to drop after unlocking) and the waker of
    /// the send now granted, if any.
    fn leave(&mut self, index: usize) -> (Option<Waker>, Option<Waker>) {
        let Some(waiter) = self.waiters.remove(index) else {
            return (None, None);
        };
        if waiter.granted {
            self.reserved -= 1;
            (waiter.waker, self.grant_next())
        } else {
            (waiter.waker, None)
        }
    }

    fn is_disconnected(&self) -> bool {
        self.closed || self.senders_gone
    }

    /// Takes every waiting send's waker, for a close.
    fn take_waiter_wakers(&mut self) -> Vec<Waker> {
        self.waiters
            .iter_mut()
            .filter_map(|w| w.waker.take())
            .collect()
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The sending half of a bounded channel made by [`channel`].
///
/// Clone it to send from several places; it is `Send + Sync` when `T` is `Send`. The
/// receiver sees the end of the channel once every clone is dropped.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for a free slot if the buffer is full.
    ///
    /// Waiting sends are served in the order they started waiting, and a new send does
    /// not overtake them. Fails, handing the value back, if the receiver has closed the
    /// channel or been dropped (also while the send waits).
    ///
    /// Cancel-safe: dropping the future before it completes sends nothing, and a slot
    /// already granted to it passes to the next waiting send.
    pub fn send(&self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            sender: self,
            value: Some(value),
            ticket: None,
        }
    }

    /// Sends `value` if a slot is free now, without waiting.
    ///
    /// A slot counts as free only if no send is already waiting for one.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed(value));
        }
        if !state.has_free_slot(self.max_capacity()) {
            return Err(TrySendError::Full(value));
        }
        self.shared.push(state, value);
        Ok(())
    }

    /// Whether the receiver has closed the channel or been dropped: every later send
    /// fails.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// How many values could be sent now without waiting (0 while sends wait).
    pub fn capacity(&self) -> usize {
        let state = self.shared.lock();
        if state.waiters.len() > state.reserved {
            return 0;
        }
        self.max_capacity() - state.queue.len() - state.reserved
    }

    /// The capacity the channel was made with.
    pub fn max_capacity(&self) -> usize {
        self.shared.cap.unwrap_or(usize::MAX)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.add_sender();
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("max_capacity", &self.max_capacity())
            .finish_non_exhaustive()
    }
}

/// The future of [`Sender::send`] (named so, not `Send`, to leave the auto trait
/// its name).
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T> {
    sender: &'a Sender<T>,
    /// `None` once the future has completed.
    value: Option<T>,
    /// Set while the send waits in the channel's queue of waiters.
    ticket: Option<u64>,
}

// The value is only ever moved, never pinned in place.
impl<T> Unpin for SendFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        ready!(crate::coop::poll_proceed(cx));
        let Some(value) = this.value.take() else {
            panic!("runtime::channel::mpsc::SendFuture polled after it completed");
        };
        let shared = &this.sender.shared;
        let mut state = shared.lock();
        let index = this.ticket.and_then(|ticket| state.position(ticket));

        if state.closed {
            this.ticket = None;
            let own = index.map(|i| state.leave(i));
            drop(state);
            drop(own);
            return Poll::Ready(Err(SendError(value)));
        }

        let may_push = match index {
            Some(i) => state.waiters[i].granted,
            None => state.has_free_slot(this.sender.max_capacity()),
        };
        if may_push {
            let mut own = None;
            if let Some(i) = index {
                // The granted slot turns into the queued value: slots in use stay the same.
                own = state.waiters.remove(i).and_then(|w| w.waker);
                state.reserved -= 1;
            }
            this.ticket = None;
            shared.push(state, value);
            drop(own);
            return Poll::Ready(Ok(()));
        }

        let old = match index {
            Some(i) => register(&mut state.waiters[i].waker, cx.waker()),
            None => {
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.waiters.push_back(Waiter {
                    ticket,
                    waker: Some(cx.waker().clone()),
                    granted: false,
                });
                this.ticket = Some(ticket);
                None
            }
        };
        drop(state);
        drop(old);
        this.value = Some(value);
        Poll::Pending
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let mut state = self.sender.shared.lock();
        let (own, next) = match state.position(ticket) {
            Some(i) => state.leave(i),
            None => (None, None),
        };
        drop(state);
        drop(own);
        wake(next);
        // The unsent value drops with the future's fields, after the lock is released.
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("waiting", &self.ticket.is_some())
            .finish_non_exhaustive()
    }
}

/// The sending half of a channel made by [`unbounded`].
///
/// Clone it to send from several places; it is `Send + Sync` when `T` is `Send`. The
/// receiver sees the end of the channel once every clone is dropped.
pub struct UnboundedSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> UnboundedSender<T> {
    /// Sends `value` at once, or hands it back if the receiver has closed the channel
    /// or been dropped.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let state = self.shared.lock();
        if state.closed {
            return Err(SendError(value));
        }
        self.shared.push(state, value);
        Ok(())
    }

    /// Whether the receiver has closed the channel or been dropped: every later send
    /// fails.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> UnboundedSender<T> {
        self.shared.add_sender();
        UnboundedSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        self.shared.drop_sender();
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedSender").finish_non_exhaustive()
    }
}

/// The receiving half of a channel, bounded or not.
///
/// There is one receiver per channel: it is `Send` (when `T` is), not `Clone`. It is
/// also a [`Stream`] of the values.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Values already taken from the shared queue, received without the lock
    /// (unbounded channels only).
    batch: VecDeque<T>,
}

// Values are only ever moved, never pinned in place.
impl<T> Unpin for Receiver<T> {}

impl<T> Receiver<T> {
    fn new(shared: Arc<Shared<T>>) -> Receiver<T> {
        Receiver {
            shared,
            batch: VecDeque::new(),
        }
    }

    /// Receives the next value, waiting for one if none is queued.
    ///
    /// Gives `None` once the channel is closed (every sender dropped, or
    /// [`close`](Receiver::close) called) and every queued value has been received.
    /// Cancel-safe: a value is taken only when the future completes.
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { receiver: self }
    }

    /// Receives the next value if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(value) = self.batch.pop_front() {
            return Ok(value);
        }
        let mut state = self.shared.lock();
        let (value, granted) = take(self.shared.cap.is_some(), &mut state, &mut self.batch)?;
        drop(state);
        wake(granted);
        Ok(value)
    }

    /// Polls for the next value: what [`recv`](Receiver::recv) does, for code that
    /// writes its own futures.
    ///
    /// On `Pending`, the waker of `cx` is woken once a value arrives or the last
    /// sender is dropped; only the waker of the latest poll is kept.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        ready!(crate::coop::poll_proceed(cx));
        if let Some(value) = self.batch.pop_front() {
            return Poll::Ready(Some(value));
        }
        let mut state = self.shared.lock();
        match take(self.shared.cap.is_some(), &mut state, &mut self.batch) {
            Ok((value, granted)) => {
                drop(state);
                wake(granted);
                Poll::Ready(Some(value))
            }
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                let old = register(&mut state.rx_waker, cx.waker());
                drop(state);
                drop(old);
                Poll::Pending
            }
        }
    }

    /// Closes the channel from the receiving side.
    ///
    /// Every send from now on fails (waiting ones too), while the values already
    /// queued can still be received; after them, [`recv`](Receiver::recv) gives `None`.
    pub fn close(&mut self) {
        let mut state = self.shared.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        let waiters = state.take_waiter_wakers();
        drop(state);
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// Takes the next value from the shared state, with the waker of a send that was granted
/// the slot it freed. Called with the receiver's batch empty.
fn take<T>(
    bounded: bool,
    state: &mut State<T>,
    batch: &mut VecDeque<T>,
) -> Result<(T, Option<Waker>), TryRecvError> {
    let Some(value) = state.queue.pop_front() else {
        return Err(if state.is_disconnected() {
            TryRecvError::Disconnected
        } else {
            TryRecvError::Empty
        });
    };
    if bounded {
        Ok((value, state.grant_next()))
    } else {
        // The batch is empty: trade it (and its allocation) for the rest of the queue.
        mem::swap(batch, &mut state.queue);
        Ok((value, None))
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        let queued = mem::take(&mut state.queue);
        let waiters = state.take_waiter_wakers();
        let own = state.rx_waker.take();
        drop(state);
        drop(queued);
        drop(own);
        waiters.into_iter().for_each(Waker::wake);
        // `self.batch` drops after this, with no lock held.
    }
}

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("bounded", &self.shared.cap.is_some())
            .finish_non_exhaustive()
    }
}

/// The future of [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    receiver: &'a mut Receiver<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

/// A send failed because the receiver closed the channel or was dropped; holds the
/// value that was not sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SendError").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel: the receiver is gone")
    }
}

impl<T> Error for SendError<T> {}

impl<T> From<SendError<T>> for io::Error {
    /// A [`BrokenPipe`](io::ErrorKind::BrokenPipe) error; the value is dropped.
    fn from(err: SendError<T>) -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, err.to_string())
    }
}

/// Why [`Sender::try_send`] failed; holds the value that was not sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// No slot is free now (or sends are already waiting for one).
    Full(T),
    /// The receiver closed the channel or was dropped.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) | TrySendError::Closed(value) => value,
        }
    }

    /// Whether the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the channel was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(err: SendError<T>) -> TrySendError<T> {
        TrySendError::Closed(err.0)
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.debug_tuple("Full").finish_non_exhaustive(),
            TrySendError::Closed(_) => f.debug_tuple("Closed").finish_non_exhaustive(),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("the channel is full"),
            TrySendError::Closed(_) => {
                f.write_str("sending on a closed channel: the receiver is gone")
            }
        }
    }
}

impl<T> Error for TrySendError<T> {}

impl<T> From<TrySendError<T>> for io::Error {
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when full,
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) when closed; the value is dropped.
    fn from(err: TrySendError<T>) -> io::Error {
        let kind = match err {
            TrySendError::Full(_) => io::ErrorKind::WouldBlock,
            TrySendError::Closed(_) => io::ErrorKind::BrokenPipe,
        };
        io::Error::new(kind, err.to_string())
    }
}

/// Why [`Receiver::try_recv`] gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No value is queued now, but more may come.
    Empty,
    /// No value is queued and none will come: every sender is gone, or the receiver
    /// closed the channel.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "the channel is empty",
            TryRecvError::Disconnected => "the channel is empty and closed",
        })
    }
}

impl Error for TryRecvError {}

impl From<TryRecvError> for io::Error {
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when empty,
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) when closed.
    fn from(err: TryRecvError) -> io::Error {
        let kind = match err {
            TryRecvError::Empty => io::ErrorKind::WouldBlock,
            TryRecvError::Disconnected => io::ErrorKind::UnexpectedEof,
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let count = Arc::new(CountingWaker::default());
        (count.clone(), Waker::from(count))
    }

    fn poll<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_waiting_receiver_is_woken_once_for_a_burst_of_sends() {
        let (tx, mut rx) = unbounded();
        let (count, waker) = counting();
        assert!(rx.poll_recv(&mut Context::from_waker(&waker)).is_pending());
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn the_receiver_is_a_stream_that_ends_with_the_senders() {
        let (tx, mut rx) = channel(2);
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut next = |rx: &mut Receiver<u8>| Pin::new(rx).poll_next(&mut cx);
        assert_eq!(next(&mut rx), Poll::Pending);
        tx.try_send(1).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(next(&mut rx), Poll::Ready(Some(1)));
        assert_eq!(next(&mut rx), Poll::Pending);
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(next(&mut rx), Poll::Ready(None));
    }

    #[test]
    fn sends_to_a_receiver_that_does_not_wait_wake_nobody() {
        let (tx, mut rx) = channel(4);
        tx.try_send(1).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert!(rx.shared.lock().rx_waker.is_none());
    }

    #[test]
    fn slots_in_use_never_exceed_the_capacity() {
        let (tx, mut rx) = channel(2);
        let (_, waker) = counting();
        tx.try_send(0).unwrap();
        tx.try_send(1).unwrap();
        let mut sends: Vec<_> = (2..6).map(|i| tx.send(i)).collect();
        for send in &mut sends {
            assert!(poll(send, &waker).is_pending());
        }
        let check = |rx: &Receiver<i32>| {
            let state = rx.shared.lock();
            assert!(state.queue.len() + state.reserved <= 2);
            assert!(
                state.waiters.len() == state.reserved || state.queue.len() + state.reserved == 2
            );
        };
        check(&rx);
        assert_eq!(rx.try_recv(), Ok(0));
        check(&rx);
        // The first waiter holds the slot; dropping it hands the slot to the second.
        drop(sends.remove(0));
        check(&rx);
        assert_eq!(poll(&mut sends[0], &waker), Poll::Ready(Ok(())));
        check(&rx);
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(3));
        check(&rx);
    }
}
