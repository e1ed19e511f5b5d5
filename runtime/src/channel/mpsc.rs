//! Many senders, one receiver: bounded ([`channel`]) or unbounded ([`unbounded`]).
//!
//! # Bounded channels
//!
//! A bounded channel is a ring of slots shared by its endpoints (the `ring` module
//! holds the protocol). Senders fill slots and the receiver empties them without a
//! lock: on its fast path a send is one compare-exchange on the position senders
//! share (on a cache line that stays with the sending thread while one thread
//! sends) and one locked store of the slot's stamp; a receive is one locked store of
//! its position, on a cache line of its own. Senders read that position about once
//! per `cap` values, so mostly the slots' cache lines travel between cores, with the
//! values in them.
//!
//! A mutex is taken only to start or stop waiting: by the receiver when the ring is
//! empty, by sends when it is full, and by whichever side then wakes the other.
//!
//! - **Order.** Values from one sender arrive in the order it sent them; values of
//!   different senders in the order their sends took a slot.
//! - **Backpressure and fairness.** Sends that find the ring full wait in arrival
//!   order; while any waits, a new send (and [`Sender::try_send`]) queues behind them
//!   instead of taking a slot. Only the first waiter retries, each time the receiver
//!   empties a slot; when it leaves (sent, failed, or dropped) the next one takes its
//!   turn, woken at once if a slot is already free, so a cancelled send never
//!   strands a slot.
//! - **Wakes.** A waiting endpoint is woken exactly when the other side makes
//!   progress it could use. Before it parks, a receiver that finds the ring empty
//!   looks again for up to 2 us, but only while its waits end quickly (a spin that
//!   finds nothing turns spinning off until a wait ends within 50 us, by a send from
//!   another thread): a busy stream never puts the receiving thread to sleep, a
//!   quiet channel costs one spin when it goes quiet, and a channel within one core
//!   does not spin. Nothing spins while idle.
//!
//! # Unbounded channels
//!
//! An unbounded channel keeps its queue behind one `std::sync::Mutex`. When its own
//! buffer is empty, the receiver swaps it with the shared queue, under one lock, and
//! then receives the whole batch without locking. No user code runs under the lock:
//! values are moved in and out, never dropped there, and wakers are woken only after
//! the lock is released.

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
use std::time::{Duration, Instant};

use futures_core::Stream;

use super::ring::{Refused, Ring};
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
/// If `cap` is 0 (a channel without room for one value cannot carry anything) or
/// above `usize::MAX / 8`.
pub fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        cap > 0,
        "runtime::channel::mpsc::channel: the capacity must be at least 1"
    );
    let ring = Arc::new(Ring::new(cap));
    (
        Sender { ring: ring.clone() },
        Receiver {
            inner: Inner::Bounded {
                ring,
                head: 0,
                spin: Spin {
                    on: true,
                    parked_at: None,
                },
            },
        },
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
    let shared = Arc::new(Shared::new());
    (
        UnboundedSender {
            shared: shared.clone(),
        },
        Receiver {
            inner: Inner::Unbounded {
                shared,
                batch: VecDeque::new(),
            },
        },
    )
}

/// What the endpoints of one unbounded channel share.
struct Shared<T> {
    /// Live senders; the lock is taken only when the last one goes.
    senders: AtomicUsize,
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    rx_waker: Option<Waker>,
    closed: bool,
    senders_gone: bool,
}

impl<T> Shared<T> {
    fn new() -> Shared<T> {
        Shared {
            senders: AtomicUsize::new(1),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                rx_waker: None,
                closed: false,
                senders_gone: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
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
    ring: Arc<Ring<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for a free slot if the buffer is full.
    ///
    /// Waiting sends are served in the order they started waiting, and a new send does
    /// not overtake them. Fails, handing the value back, if the receiver has closed the
    /// channel or been dropped (also while the send waits).
    ///
    /// Cancel-safe: dropping the future before it completes sends nothing, and a turn
    /// it was given passes to the next waiting send.
    #[inline]
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
        if self.ring.sends_wait() {
            return Err(if self.ring.is_closed() {
                TrySendError::Closed(value)
            } else {
                TrySendError::Full(value)
            });
        }
        self.ring
            .try_push(value, false)
            .map_err(|refused| match refused {
                Refused::Full(value) => TrySendError::Full(value),
                Refused::Closed(value) => TrySendError::Closed(value),
            })
    }

    /// Whether the receiver has closed the channel or been dropped: every later send
    /// fails.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// How many values could be sent now without waiting (0 while sends wait); a
    /// snapshot while the channel is in use.
    pub fn capacity(&self) -> usize {
        if self.ring.sends_wait() {
            return 0;
        }
        self.ring.cap() - self.ring.len()
    }

    /// The capacity the channel was made with.
    pub fn max_capacity(&self) -> usize {
        self.ring.cap()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.ring.add_sender();
        Sender {
            ring: self.ring.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.ring.drop_sender();
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

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        ready!(crate::coop::poll_proceed(cx));
        let ring = &this.sender.ring;
        let Some(mut value) = this.value.take() else {
            panic!("runtime::channel::mpsc::SendFuture polled after it completed");
        };
        if this.ticket.is_none() && !ring.sends_wait() {
            match ring.try_push(value, false) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(Refused::Closed(value)) => return Poll::Ready(Err(SendError(value))),
                Err(Refused::Full(back)) => value = back,
            }
        }
        this.value = Some(value);
        ring.poll_wait_send(&mut this.value, &mut this.ticket, cx.waker())
            .map_err(SendError)
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.sender.ring.cancel_wait(ticket);
        }
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
        let mut state = self.shared.lock();
        if state.closed {
            return Err(SendError(value));
        }
        state.queue.push_back(value);
        let rx = state.rx_waker.take();
        drop(state);
        wake(rx);
        Ok(())
    }

    /// Whether the receiver has closed the channel or been dropped: every later send
    /// fails.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> UnboundedSender<T> {
        // A new sender is made from a live one, so the count cannot be zero here and
        // needs no ordering with anything else.
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
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
    inner: Inner<T>,
}

enum Inner<T> {
    Bounded {
        ring: Arc<Ring<T>>,
        /// The next position to receive; only this receiver moves it.
        head: u64,
        spin: Spin,
    },
    Unbounded {
        shared: Arc<Shared<T>>,
        /// Values already taken from the shared queue, received without the lock.
        batch: VecDeque<T>,
    },
}

// Values are only ever moved, never pinned in place.
impl<T> Unpin for Receiver<T> {}

impl<T> Receiver<T> {
    /// Receives the next value, waiting for one if none is queued.
    ///
    /// Gives `None` once the channel is closed (every sender dropped, or
    /// [`close`](Receiver::close) called) and every queued value has been received.
    /// Cancel-safe: a value is taken only when the future completes.
    #[inline]
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { receiver: self }
    }

    /// Receives the next value if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match &mut self.inner {
            Inner::Bounded { ring, head, .. } => {
                // SAFETY: this is the channel's one receiver, and `head` is its own.
                if let Some(value) = unsafe { ring.pop(head) } {
                    return Ok(value);
                }
                if !ring.is_finished(*head) {
                    return Err(TryRecvError::Empty);
                }
                // SAFETY: as above; values stamped before the last sender left.
                unsafe { ring.pop(head) }.ok_or(TryRecvError::Disconnected)
            }
            Inner::Unbounded { shared, batch } => {
                if let Some(value) = batch.pop_front() {
                    return Ok(value);
                }
                let mut state = shared.lock();
                take_batch(&mut state, batch)
            }
        }
    }

    /// Polls for the next value: what [`recv`](Receiver::recv) does, for code that
    /// writes its own futures.
    ///
    /// On `Pending`, the waker of `cx` is woken once a value arrives or the last
    /// sender is dropped; only the waker of the latest poll is kept.
    #[inline]
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        ready!(crate::coop::poll_proceed(cx));
        match &mut self.inner {
            Inner::Bounded { ring, head, spin } => {
                // SAFETY: this is the channel's one receiver, and `head` is its own.
                if let Some(value) = unsafe { ring.pop(head) } {
                    spin.got_value(ring);
                    return Poll::Ready(Some(value));
                }
                poll_park(ring, head, spin, cx.waker())
            }
            Inner::Unbounded { shared, batch } => {
                if let Some(value) = batch.pop_front() {
                    return Poll::Ready(Some(value));
                }
                let mut state = shared.lock();
                match take_batch(&mut state, batch) {
                    Ok(value) => Poll::Ready(Some(value)),
                    Err(TryRecvError::Disconnected) => Poll::Ready(None),
                    Err(TryRecvError::Empty) => {
                        let old = register(&mut state.rx_waker, cx.waker());
                        drop(state);
                        drop(old);
                        Poll::Pending
                    }
                }
            }
        }
    }

    /// Closes the channel from the receiving side.
    ///
    /// Every send from now on fails (waiting ones too), while the values already
    /// queued can still be received; after them, [`recv`](Receiver::recv) gives `None`.
    pub fn close(&mut self) {
        match &mut self.inner {
            Inner::Bounded { ring, .. } => ring.close(),
            Inner::Unbounded { shared, .. } => shared.lock().closed = true,
        }
    }
}

/// The bounded receiver found the ring empty: it spins if that pays, then parks and
/// looks again.
#[cold]
fn poll_park<T>(ring: &Ring<T>, head: &mut u64, spin: &mut Spin, waker: &Waker) -> Poll<Option<T>> {
    if spin.on && spin.parked_at.is_none() {
        if let Some(value) = spin_for_value(ring, head) {
            return Poll::Ready(Some(value));
        }
        spin.on = false;
    }
    ring.park_receiver(waker);
    // SAFETY: called by the channel's one receiver, with its own `head`.
    if let Some(value) = unsafe { ring.pop(head) } {
        ring.unpark_receiver();
        spin.got_value(ring);
        return Poll::Ready(Some(value));
    }
    if ring.is_finished(*head) {
        ring.unpark_receiver();
        // Values stamped before the last sender left are still to be taken.
        // SAFETY: as above.
        return Poll::Ready(unsafe { ring.pop(head) });
    }
    if spin.parked_at.is_none() {
        spin.parked_at = Some(Instant::now());
    }
    Poll::Pending
}

/// How long a bounded receiver that found the ring empty looks again before it
/// parks, when it spins at all ([`Spin`]).
const SPIN: Duration = Duration::from_micros(2);

/// A wait that ended within this long counts as short: the receiver spins before
/// its next wait.
const SHORT_WAIT: Duration = Duration::from_micros(50);

/// Whether a bounded receiver spins before it parks.
///
/// Parking costs the receiving thread a sleep and a wake-up (from 5 to 50 us, more on
/// virtual machines), so while values come close together the receiver first looks
/// again for up to [`SPIN`]. It spins only while that pays: a spin that finds no value
/// turns spinning off, and it comes back on only after a wait that ended within
/// [`SHORT_WAIT`], by a send from another thread (a sender on the receiver's own
/// thread cannot run while it spins). A channel whose values come far apart therefore
/// costs one spin when they stop, and none after; a channel within one core spins
/// at most at its first wait.
#[derive(Debug)]
struct Spin {
    on: bool,
    /// When the receiver parked, while it waits.
    parked_at: Option<Instant>,
}

impl Spin {
    /// A value came: a wait that ends now was short or not, and ended by another
    /// thread or not.
    #[inline]
    fn got_value<T>(&mut self, ring: &Ring<T>) {
        if let Some(at) = self.parked_at.take() {
            self.on = at.elapsed() < SHORT_WAIT && ring.woken_from_elsewhere();
        }
    }
}

/// Looks for the value of `head` for up to [`SPIN`], after handing what this thread's
/// core queued to the kernel (wakes of other cores among it, which must not wait
/// for the spin).
fn spin_for_value<T>(ring: &Ring<T>, head: &mut u64) -> Option<T> {
    crate::driver::submit_queued();
    let start = Instant::now();
    loop {
        for _ in 0..16 {
            std::hint::spin_loop();
            if ring.is_ready(*head) {
                // SAFETY: called by the channel's one receiver, with its own `head`.
                return unsafe { ring.pop(head) };
            }
        }
        if start.elapsed() >= SPIN {
            return None;
        }
    }
}

/// Takes the next value from an unbounded channel's shared queue, and the rest of the
/// queue into the receiver's (empty) batch.
fn take_batch<T>(state: &mut State<T>, batch: &mut VecDeque<T>) -> Result<T, TryRecvError> {
    let Some(value) = state.queue.pop_front() else {
        return Err(if state.closed || state.senders_gone {
            TryRecvError::Disconnected
        } else {
            TryRecvError::Empty
        });
    };
    // The batch is empty: trade it (and its allocation) for the rest of the queue.
    mem::swap(batch, &mut state.queue);
    Ok(value)
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Bounded { ring, head, .. } => {
                // SAFETY: this is the channel's one receiver, and `head` is its own.
                let left = unsafe { ring.drain(head) };
                drop(left);
            }
            Inner::Unbounded { shared, .. } => {
                let mut state = shared.lock();
                state.closed = true;
                let queued = mem::take(&mut state.queue);
                let own = state.rx_waker.take();
                drop(state);
                drop(queued);
                drop(own);
                // The batch drops after this, with no lock held.
            }
        }
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
            .field("bounded", &matches!(self.inner, Inner::Bounded { .. }))
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

    #[inline]
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
        for bounded in [true, false] {
            let (bounded_tx, unbounded_tx, mut rx) = if bounded {
                let (tx, rx) = channel(4);
                (Some(tx), None, rx)
            } else {
                let (tx, rx) = unbounded();
                (None, Some(tx), rx)
            };
            let send = |v| match (&bounded_tx, &unbounded_tx) {
                (Some(tx), _) => tx.try_send(v).unwrap(),
                (_, Some(tx)) => tx.send(v).unwrap(),
                _ => unreachable!(),
            };
            let (count, waker) = counting();
            let mut cx = Context::from_waker(&waker);
            assert!(rx.poll_recv(&mut cx).is_pending());
            send(1);
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
            assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
            // The receiver is not waiting now: these wake nothing.
            send(2);
            send(3);
            assert_eq!(count.0.load(Ordering::SeqCst), 1, "bounded: {bounded}");
            assert_eq!(rx.try_recv(), Ok(2));
            assert_eq!(rx.try_recv(), Ok(3));
        }
    }

    #[test]
    fn slots_in_use_never_exceed_the_capacity_and_a_dropped_first_waiter_hands_on() {
        let (tx, mut rx) = channel(2);
        let (count, waker) = counting();
        tx.try_send(0).unwrap();
        tx.try_send(1).unwrap();
        assert_eq!(tx.capacity(), 0);
        let mut sends: Vec<_> = (2..6).map(|i| tx.send(i)).collect();
        for send in &mut sends {
            assert!(poll(send, &waker).is_pending());
        }
        let len = |tx: &Sender<i32>| tx.ring.len();
        assert_eq!(len(&tx), 2);
        assert_eq!(rx.try_recv(), Ok(0));
        // Only the first waiter is woken for the slot.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(len(&tx), 1);
        assert!(matches!(tx.try_send(9), Err(TrySendError::Full(9))));
        // The first waiter gives up: its turn, and the free slot, go to the second.
        drop(sends.remove(0));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(poll(&mut sends[0], &waker), Poll::Ready(Ok(())));
        drop(sends.remove(0));
        assert_eq!(len(&tx), 2);
        assert!(poll(&mut sends[0], &waker).is_pending(), "4 waits: full");
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(len(&tx), 0);
        for send in &mut sends {
            assert_eq!(poll(send, &waker), Poll::Ready(Ok(())));
        }
        assert_eq!(rx.try_recv(), Ok(4));
        assert_eq!(rx.try_recv(), Ok(5));
        assert_eq!(tx.capacity(), 2);
    }

    /// The spin state of a bounded receiver.
    fn spin_of(rx: &mut Receiver<u32>) -> &mut Spin {
        match &mut rx.inner {
            Inner::Bounded { spin, .. } => spin,
            Inner::Unbounded { .. } => unreachable!("a bounded receiver"),
        }
    }

    #[test]
    fn only_a_short_wait_ended_from_another_thread_turns_the_spin_on() {
        let (tx, mut rx) = channel::<u32>(4);
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        // The first wait spins (nothing comes), which turns spinning off, then parks.
        assert!(rx.poll_recv(&mut cx).is_pending());
        assert!(!spin_of(&mut rx).on);

        // Woken by a send of the receiver's own thread: spinning stays off (that
        // sender could not have run while the receiver spun).
        tx.try_send(1).unwrap();
        spin_of(&mut rx).parked_at = Some(Instant::now());
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert!(!spin_of(&mut rx).on);

        // Woken by a send of another thread, after a short wait: on again.
        assert!(rx.poll_recv(&mut cx).is_pending());
        std::thread::scope(|s| {
            s.spawn(|| tx.try_send(2).unwrap());
        });
        spin_of(&mut rx).parked_at = Some(Instant::now());
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert!(spin_of(&mut rx).on);

        // A long wait turns it off, whoever ends it.
        assert!(rx.poll_recv(&mut cx).is_pending());
        assert!(!spin_of(&mut rx).on, "the spin found nothing");
        spin_of(&mut rx).on = true;
        std::thread::scope(|s| {
            s.spawn(|| tx.try_send(3).unwrap());
        });
        spin_of(&mut rx).parked_at = Some(Instant::now() - SHORT_WAIT);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(3)));
        assert!(!spin_of(&mut rx).on);
    }

    /// A receiver's waker that receives as soon as it is woken, from inside `wake`.
    struct ReceivesInline(std::sync::Mutex<Receiver<u32>>, std::sync::Mutex<Vec<u32>>);

    impl Wake for ReceivesInline {
        fn wake(self: Arc<Self>) {
            if let Ok(value) = self.0.lock().unwrap().try_recv() {
                self.1.lock().unwrap().push(value);
            }
        }
    }

    #[test]
    fn a_waiting_send_wakes_the_receiver_only_after_letting_go_of_its_lock() {
        // If the first waiting send woke the receiver while it held the waiters' lock,
        // a waker that receives at once (and so hands the send's turn on) would take
        // that lock again: a deadlock. Run it where a hang can be seen.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (tx, rx) = channel::<u32>(1);
            let inline = Arc::new(ReceivesInline(
                std::sync::Mutex::new(rx),
                std::sync::Mutex::new(Vec::new()),
            ));
            let (_, plain) = counting();
            tx.try_send(0).unwrap();
            let mut send = tx.send(1);
            assert!(poll(&mut send, &plain).is_pending(), "full: the send waits");
            // The receiver takes 0 (the send is told), then parks with the inline waker.
            let waker = Waker::from(inline.clone());
            let mut cx = Context::from_waker(&waker);
            {
                let mut rx = inline.0.lock().unwrap();
                assert_eq!(rx.try_recv(), Ok(0));
                assert!(rx.poll_recv(&mut cx).is_pending());
            }
            assert_eq!(poll(&mut send, &plain), Poll::Ready(Ok(())));
            let received = inline.1.lock().unwrap().clone();
            done_tx.send(received).unwrap();
        });
        let received = done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the send and the receiver's wake deadlocked");
        assert_eq!(received, [1]);
    }
}
