//! The shared state of a bounded channel: a ring of `cap` slots that senders fill and
//! the one receiver empties without a lock, and the two slow paths (a receiver that
//! waits for a value, sends that wait for a slot) that take one.
//!
//! # Positions and stamps
//!
//! A position names one use of one slot: its low bits are the slot's index (below
//! `cap`), the bits above count laps, in steps of `lap`, the smallest power of two
//! above `cap`; the top bit of `tail` is [`CLOSED`]. `tail` is the next position to
//! fill, `head` the next to empty. Each slot carries a stamp:
//!
//! | stamp of the slot of position `p` | means |
//! |---|---|
//! | `p` | free for the sender of `p` |
//! | `p + 1` | holds the value of `p` |
//! | `p + lap` | emptied: free for the sender one lap later |
//!
//! A sender that sees the stamp of `tail` equal to `tail` reserves it by moving `tail`
//! on with a compare-exchange (the only write senders contend on; with one sending
//! thread its cache line stays with that thread), writes the value and stamps the
//! slot `tail + 1`. A stamp of `tail - lap + 1` means the value of the previous lap is
//! still there: the ring is full. The receiver, alone, reads the slot of `head` once
//! its stamp is `head + 1` and stamps it `head + lap`. Neither side reads the other's
//! position on its fast path: only the slots' cache lines travel, with the values.
//!
//! # Waiting without lost wakes
//!
//! Each side may wait for the other, and each wait is a pair of flags read in
//! opposite order by the two sides (the shape Dekker's algorithm has):
//!
//! - The receiver waits on an empty ring: it stores its waker, sets `rx_parked`,
//!   then looks at the slot of `head` again. A sender stamps its value, then reads
//!   `rx_parked` and, if it can swap it back to false, wakes the stored waker.
//! - Sends wait for a slot in FIFO order, in `waiters` (under a mutex). The first of
//!   them sets `tx_wait` to `WAITING`, then tries the slot of `tail` again. The
//!   receiver stamps a slot empty, then reads `tx_wait` and, if it can move it from
//!   `WAITING` to `NOTIFIED`, wakes the first waiter.
//!
//! All four accesses of each pair are `SeqCst`, so in their one total order either
//! the waiting side's second look comes after the other side's stamp (and sees it) or
//! the other side's read of the flag comes after the flag was set (and wakes). On
//! x86 a `SeqCst` store is one `xchg` and a `SeqCst` load a plain `mov`: each value
//! costs one locked instruction on each side, on a cache line that side owns.
//!
//! While any send waits, new sends queue behind it instead of taking a slot (they
//! read `tx_wait`, a line written only when sends start or stop waiting), so waiting
//! sends are served in arrival order. Only the first waiter ever retries; when it
//! leaves (sent, failed or dropped) it hands the turn to the next one, waking it if a
//! slot is already free, so a cancelled send never strands one.
//!
//! # Closing
//!
//! The receiver closes the channel (by [`Receiver::close`](super::mpsc::Receiver::close)
//! or its drop) by setting [`CLOSED`] in `tail`. From then on no sender can reserve a
//! position (its compare-exchange fails and it sees the bit), and the receiver knows
//! the last position that will ever be filled: it receives until `head` reaches it,
//! waiting, if it must, for a value whose sender reserved its position before the
//! close. The last sender's drop is the other end: the receiver reads the count of
//! senders after setting `rx_parked`, and the last sender reads `rx_parked` after its
//! decrement.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Mutex;
use std::task::{Poll, Waker};

use super::{lock, register};

/// The bit of `tail` that marks the channel closed.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// `tx_wait`: no send waits.
const IDLE: u8 = 0;
/// `tx_wait`: sends wait, and the first must be woken once a slot is emptied.
const WAITING: u8 = 1;
/// `tx_wait`: sends wait, and the first was woken (or is running) to try again.
const NOTIFIED: u8 = 2;

/// Keeps what it holds on cache lines of its own (two, for the adjacent-line
/// prefetcher).
#[repr(align(128))]
struct Padded<T>(T);

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Why a push did not happen; holds the value.
pub(super) enum Refused<T> {
    Full(T),
    Closed(T),
}

/// The flags each side reads on its fast path and writes only when it starts or
/// stops waiting.
struct Flags {
    rx_parked: AtomicBool,
    tx_wait: AtomicU8,
}

struct Waiters {
    /// Waiting sends, oldest first, by ticket; the first is the one that retries.
    queue: VecDeque<Waiter>,
    next_ticket: u64,
}

struct Waiter {
    ticket: u64,
    /// `None` once taken to wake the send, until it polls again.
    waker: Option<Waker>,
}

pub(super) struct Ring<T> {
    /// The next position to fill, with [`CLOSED`].
    tail: Padded<AtomicUsize>,
    /// The next position to empty; the receiver keeps its own copy and publishes it
    /// here (for `len` and the final drop) with a plain store.
    head: Padded<AtomicUsize>,
    flags: Padded<Flags>,
    senders: AtomicUsize,
    cap: usize,
    lap: usize,
    slots: Box<[Slot<T>]>,
    rx_waker: Mutex<Option<Waker>>,
    waiters: Mutex<Waiters>,
}

// SAFETY: values move from senders to the receiver, possibly across threads (so `T:
// Send`); no `&T` is ever shared. Each slot's value is written only by the sender
// that reserved its position and read only by the receiver after the stamp
// published it (the stamp protocol in the module docs).
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; every shared field is an atomic or behind a mutex.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    pub(super) fn new(cap: usize) -> Ring<T> {
        assert!(cap > 0 && cap < CLOSED / 4, "channel capacity out of range");
        let lap = (cap + 1).next_power_of_two();
        let slots = (0..cap)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(AtomicUsize::new(0)),
            flags: Padded(Flags {
                rx_parked: AtomicBool::new(false),
                tx_wait: AtomicU8::new(IDLE),
            }),
            senders: AtomicUsize::new(1),
            cap,
            lap,
            slots,
            rx_waker: Mutex::new(None),
            waiters: Mutex::new(Waiters {
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// `pos` plus `n`, in the position space (which wraps below [`CLOSED`]).
    fn add(pos: usize, n: usize) -> usize {
        pos.wrapping_add(n) & !CLOSED
    }

    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline]
    fn next(&self, pos: usize) -> usize {
        if (pos & (self.lap - 1)) + 1 < self.cap {
            pos + 1
        } else {
            Self::add(pos & !(self.lap - 1), self.lap)
        }
    }

    #[inline]
    fn slot(&self, pos: usize) -> &Slot<T> {
        &self.slots[pos & (self.lap - 1)]
    }

    /// Puts `value` in the next free slot, or says why not.
    #[inline]
    pub(super) fn try_push(&self, value: T) -> Result<(), Refused<T>> {
        let mut tail = self.tail.0.load(Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(Refused::Closed(value));
            }
            let slot = self.slot(tail);
            // Acquire: the receiver's read of the previous lap's value happens before
            // the write below.
            let stamp = slot.stamp.load(Acquire);
            if stamp == tail {
                match self
                    .tail
                    .0
                    .compare_exchange_weak(tail, self.next(tail), Relaxed, Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: the compare-exchange reserved position `tail` for this
                        // call alone, and the stamp said its slot is empty; the
                        // receiver reads it only after the stamp below.
                        unsafe { (*slot.value.get()).write(value) };
                        // SeqCst: the first half of the receiver's wait pair (module
                        // docs); also a release of the value.
                        slot.stamp.store(tail + 1, SeqCst);
                        self.wake_receiver();
                        return Ok(());
                    }
                    Err(now) => tail = now,
                }
            } else if Self::add(stamp, self.lap) == tail + 1 {
                // The previous lap's value is still here: every slot is full.
                return Err(Refused::Full(value));
            } else {
                // Another sender filled `tail` since it was read: read it again.
                std::hint::spin_loop();
                tail = self.tail.0.load(Relaxed);
            }
        }
    }

    /// Takes the value at `head`, if it has been stamped.
    ///
    /// # Safety
    ///
    /// Only the channel's one receiver calls this, with the `head` it owns.
    #[inline]
    pub(super) unsafe fn pop(&self, head: &mut usize) -> Option<T> {
        let slot = self.slot(*head);
        // SeqCst: the second half of the receiver's wait pair; also an acquire of the
        // value.
        if slot.stamp.load(SeqCst) != *head + 1 {
            return None;
        }
        // SAFETY: the stamp says the sender of `head` wrote the value and let go of
        // it; only this receiver reads it (the caller's contract), once, as `head`
        // moves on below.
        let value = unsafe { (*slot.value.get()).assume_init_read() };
        // SeqCst: the first half of the senders' wait pair.
        slot.stamp.store(Self::add(*head, self.lap), SeqCst);
        *head = self.next(*head);
        self.head.0.store(*head, Relaxed);
        if self.flags.0.tx_wait.load(SeqCst) == WAITING {
            self.notify_first_waiter();
        }
        Some(value)
    }

    /// After a push: wakes the receiver if it waits.
    #[inline]
    fn wake_receiver(&self) {
        let parked = &self.flags.0.rx_parked;
        if parked.load(SeqCst) && parked.swap(false, AcqRel) {
            let waker = lock(&self.rx_waker).take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Prepares the receiver to wait: stores its waker and sets `rx_parked`. The caller
    /// must look for a value (and at the ends of the channel) again after this.
    pub(super) fn park_receiver(&self, waker: &Waker) {
        let old = register(&mut lock(&self.rx_waker), waker);
        drop(old);
        self.flags.0.rx_parked.store(true, SeqCst);
    }

    /// The receiver stops waiting (it found what it looked for after parking).
    pub(super) fn unpark_receiver(&self) {
        self.flags.0.rx_parked.store(false, Relaxed);
    }

    /// Whether no value will come after `head`: every sender is gone, or the channel
    /// is closed and `head` has reached the last position reserved before the close.
    /// After every sender is gone, the receiver must still take what was stamped
    /// before (one more [`pop`](Ring::pop)).
    pub(super) fn is_finished(&self, head: usize) -> bool {
        if self.senders.load(SeqCst) == 0 {
            return true;
        }
        let tail = self.tail.0.load(SeqCst);
        tail & CLOSED != 0 && tail & !CLOSED == head
    }

    pub(super) fn is_closed(&self) -> bool {
        self.tail.0.load(Acquire) & CLOSED != 0
    }

    /// How many values are in the ring (approximately, while it changes).
    pub(super) fn len(&self) -> usize {
        let head = self.head.0.load(Acquire);
        let tail = self.tail.0.load(Acquire) & !CLOSED;
        let (hi, ti) = (head & (self.lap - 1), tail & (self.lap - 1));
        let len = if head & !(self.lap - 1) == tail & !(self.lap - 1) {
            ti.wrapping_sub(hi)
        } else {
            (self.cap - hi).wrapping_add(ti)
        };
        len.min(self.cap)
    }

    /// Whether sends wait for a slot (so a new one must queue behind them).
    #[inline]
    pub(super) fn sends_wait(&self) -> bool {
        self.flags.0.tx_wait.load(Relaxed) != IDLE
    }

    pub(super) fn add_sender(&self) {
        // A sender is cloned from a live one: the count is not zero and needs no
        // ordering with anything else.
        self.senders.fetch_add(1, Relaxed);
    }

    pub(super) fn drop_sender(&self) {
        // SeqCst: the last sender's half of the pair with `is_finished`.
        if self.senders.fetch_sub(1, SeqCst) == 1 {
            self.wake_receiver();
        }
    }

    /// Closes the channel (the receiver's doing) and wakes every waiting send, which
    /// then fails.
    pub(super) fn close(&self) {
        self.tail.0.fetch_or(CLOSED, SeqCst);
        let wakers: Vec<Waker> = {
            let mut waiters = lock(&self.waiters);
            waiters
                .queue
                .iter_mut()
                .filter_map(|w| w.waker.take())
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Called by the receiver after an emptied slot when `tx_wait` was `WAITING`.
    #[cold]
    fn notify_first_waiter(&self) {
        if self
            .flags
            .0
            .tx_wait
            .compare_exchange(WAITING, NOTIFIED, SeqCst, Relaxed)
            .is_err()
        {
            return;
        }
        let waker = lock(&self.waiters)
            .queue
            .front_mut()
            .and_then(|w| w.waker.take());
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The slow path of a send: queue behind the waiting sends (or, as the first,
    /// try again), with `ticket` the send's place in the queue once it has one. On
    /// `Pending` the value is back in `value`; on failure it is returned.
    pub(super) fn poll_wait_send(
        &self,
        value: &mut Option<T>,
        ticket: &mut Option<u64>,
        waker: &Waker,
    ) -> Poll<Result<(), T>> {
        let mut waiters = lock(&self.waiters);
        let found = ticket.and_then(|t| waiters.position(t));
        let index = match found {
            Some(i) => i,
            None => {
                let t = waiters.next_ticket;
                waiters.next_ticket += 1;
                waiters.queue.push_back(Waiter {
                    ticket: t,
                    waker: None,
                });
                *ticket = Some(t);
                waiters.queue.len() - 1
            }
        };
        let Some(v) = value.take() else {
            unreachable!("a send polled without its value");
        };
        let outcome = if self.is_closed() {
            Err(v)
        } else if index == 0 {
            // The first waiter: say so before looking at the slot again (the pair
            // with `pop`).
            self.flags.0.tx_wait.store(WAITING, SeqCst);
            match self.try_push(v) {
                Ok(()) => Ok(()),
                Err(Refused::Closed(v)) => Err(v),
                Err(Refused::Full(v)) => {
                    *value = Some(v);
                    let old = register(&mut waiters.queue[0].waker, waker);
                    drop(waiters);
                    drop(old);
                    return Poll::Pending;
                }
            }
        } else {
            *value = Some(v);
            let old = register(&mut waiters.queue[index].waker, waker);
            drop(waiters);
            drop(old);
            return Poll::Pending;
        };
        // Done (sent or failed): leave the queue.
        *ticket = None;
        let (own, next) = self.leave(&mut waiters, index);
        drop(waiters);
        drop(own);
        if let Some(next) = next {
            next.wake();
        }
        Poll::Ready(outcome)
    }

    /// A waiting send is dropped: it leaves the queue, handing its turn on.
    pub(super) fn cancel_wait(&self, ticket: u64) {
        let mut waiters = lock(&self.waiters);
        let Some(index) = waiters.position(ticket) else {
            return;
        };
        let (own, next) = self.leave(&mut waiters, index);
        drop(waiters);
        drop(own);
        if let Some(next) = next {
            next.wake();
        }
    }

    /// Removes waiter `index`; if it was the first, hands the turn to the next (whose
    /// waker is returned when a slot is free already). Returns the removed waiter's
    /// own waker too, to drop after the lock.
    fn leave(&self, waiters: &mut Waiters, index: usize) -> (Option<Waker>, Option<Waker>) {
        let own = waiters.queue.remove(index).and_then(|w| w.waker);
        if index != 0 {
            return (own, None);
        }
        let tx_wait = &self.flags.0.tx_wait;
        if waiters.queue.is_empty() {
            tx_wait.store(IDLE, SeqCst);
            return (own, None);
        }
        // The next waiter is first now: it must be woken once a slot is free, which
        // may be already (the same pair as in `poll_wait_send`).
        tx_wait.store(WAITING, SeqCst);
        let tail = self.tail.0.load(SeqCst);
        let free = tail & CLOSED != 0 || self.slot(tail).stamp.load(SeqCst) == tail;
        if free
            && tx_wait
                .compare_exchange(WAITING, NOTIFIED, SeqCst, Relaxed)
                .is_ok()
        {
            return (own, waiters.queue[0].waker.take());
        }
        (own, None)
    }

    /// The receiver's drop: closes the channel and returns what is still in the ring,
    /// to drop outside any lock.
    ///
    /// # Safety
    ///
    /// As for [`pop`](Ring::pop).
    pub(super) unsafe fn drain(&self, head: &mut usize) -> Vec<T> {
        self.close();
        let mut left = Vec::new();
        // SAFETY: the caller's contract.
        while let Some(value) = unsafe { self.pop(head) } {
            left.push(value);
        }
        left
    }
}

impl Waiters {
    fn position(&self, ticket: u64) -> Option<usize> {
        self.queue.binary_search_by_key(&ticket, |w| w.ticket).ok()
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Every endpoint is gone: what a sender stamped after the receiver's drain is
        // still here.
        let mut head = *self.head.0.get_mut();
        let lap = self.lap;
        loop {
            let slot = &mut self.slots[head & (lap - 1)];
            if *slot.stamp.get_mut() != head + 1 {
                break;
            }
            *slot.stamp.get_mut() = Self::add(head, lap);
            // SAFETY: stamped `head + 1`: the slot holds a value nobody took.
            let value = unsafe { slot.value.get_mut().assume_init_read() };
            drop(value);
            head = if (head & (lap - 1)) + 1 < self.cap {
                head + 1
            } else {
                Self::add(head & !(lap - 1), lap)
            };
        }
    }
}
