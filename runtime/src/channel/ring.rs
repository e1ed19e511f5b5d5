//! The shared state of a bounded channel: a ring of `cap` slots that senders fill and
//! the one receiver empties without a lock, and the two slow paths (a receiver that
//! waits for a value, sends that wait for a slot) that take one.
//!
//! # Positions and stamps
//!
//! Positions count values: `tail` is the next position to fill (its top bit is
//! [`CLOSED`]), `head` the next to empty, and position `p` lives in slot `p & mask`
//! of a ring of `mask + 1` slots, the smallest power of two not below `cap`. At
//! 10^9 values a second the positions last 292 years, so they never wrap.
//!
//! A sender may fill position `p` while `p < head + cap`: at most `cap` values are
//! in the ring, and the slot's previous value (of `p - mask - 1`, below `head`) has
//! been taken. Senders keep that bound, `limit`, beside `tail` and read `head` again
//! only when `tail` reaches it: with the receiver keeping up, about once per `cap`
//! values, not once a value. A sender reserves `tail` by moving it on with a
//! compare-exchange (the only write senders contend on; with one sending thread its
//! cache line stays with that thread), writes the value and stamps the slot `p + 1`.
//! The receiver, alone, takes the value of `head` once its slot's stamp is `head + 1`
//! (a stamp left from an earlier lap is smaller), then publishes the new `head` on a
//! cache line of its own. It never writes a slot: the slots' cache lines travel one
//! way, with the values, and `head`'s line the other way, about once per `cap`
//! values.
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
//! costs one locked instruction on each side (the stamp, `head`), on a cache line
//! that side owns at that moment.
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
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize};
use std::sync::Mutex;
use std::task::{Poll, Waker};

use super::{lock, register};

/// The bit of `tail` that marks the channel closed.
const CLOSED: u64 = 1 << 63;

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
    /// `p + 1` once the value of position `p` is in.
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Why a push did not happen; holds the value.
pub(super) enum Refused<T> {
    Full(T),
    Closed(T),
}

/// What senders write: `tail`, and the bound they may fill up to.
struct SendSide {
    tail: AtomicU64,
    /// `head + cap` for some `head` the receiver published: every position below is
    /// free to fill.
    limit: AtomicU64,
}

/// The flags each side reads on its fast path and writes only when it starts or
/// stops waiting.
struct Flags {
    rx_parked: AtomicBool,
    tx_wait: AtomicU8,
    /// The thread (its [`thread_token`]) whose send last woke the parked receiver.
    woken_by: AtomicUsize,
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
    send: Padded<SendSide>,
    /// The next position to empty. The receiver keeps its own copy and publishes it
    /// here after each value it takes.
    head: Padded<AtomicU64>,
    flags: Padded<Flags>,
    senders: AtomicUsize,
    cap: usize,
    /// The number of slots, less one (a power of two, less one).
    mask: u64,
    slots: Box<[Slot<T>]>,
    rx_waker: Mutex<Option<Waker>>,
    waiters: Mutex<Waiters>,
}

// SAFETY: values move from senders to the receiver, possibly across threads (so `T:
// Send`); no `&T` is ever shared. Each slot's value is written only by the sender
// that reserved its position and read only by the receiver after the stamp
// published it (the protocol in the module docs).
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; every shared field is an atomic or behind a mutex.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    pub(super) fn new(cap: usize) -> Ring<T> {
        // `channel` refuses 0 with its own message.
        debug_assert!(cap > 0);
        assert!(
            cap <= usize::MAX / 8,
            "runtime::channel::mpsc::channel: the capacity must be at most usize::MAX / 8"
        );
        let slots: Box<[Slot<T>]> = (0..cap.next_power_of_two())
            .map(|_| Slot {
                stamp: AtomicU64::new(0),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            send: Padded(SendSide {
                tail: AtomicU64::new(0),
                limit: AtomicU64::new(cap as u64),
            }),
            head: Padded(AtomicU64::new(0)),
            flags: Padded(Flags {
                rx_parked: AtomicBool::new(false),
                tx_wait: AtomicU8::new(IDLE),
                woken_by: AtomicUsize::new(0),
            }),
            senders: AtomicUsize::new(1),
            cap,
            mask: slots.len() as u64 - 1,
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

    #[inline]
    fn slot(&self, pos: u64) -> &Slot<T> {
        let index = (pos & self.mask) as usize;
        debug_assert!(index < self.slots.len());
        // SAFETY: `slots` has `mask + 1` entries, so `pos & mask` is in bounds.
        unsafe { self.slots.get_unchecked(index) }
    }

    /// Puts `value` in the next free slot and wakes the receiver if it waits, or says
    /// why not. With `fresh`, reads `head` again whatever `limit` says (a waiting
    /// send's second look).
    #[inline]
    pub(super) fn try_push(&self, value: T, fresh: bool) -> Result<(), Refused<T>> {
        self.push(value, fresh)?;
        self.wake_receiver();
        Ok(())
    }

    /// [`try_push`](Ring::try_push) without the wake, for a caller that holds a lock:
    /// it must call [`wake_receiver`](Ring::wake_receiver) after letting go of it.
    #[inline]
    fn push(&self, value: T, fresh: bool) -> Result<(), Refused<T>> {
        let send = &self.send.0;
        let mut tail = send.tail.load(Relaxed);
        let mut fresh = fresh;
        loop {
            if tail & CLOSED != 0 {
                return Err(Refused::Closed(value));
            }
            // Acquire: the receiver's read of the slot's previous value happens before
            // the write below (through `head`, read by whoever stored this bound).
            if fresh || tail >= send.limit.load(Acquire) {
                // SeqCst: the second half of the senders' wait pair (module docs).
                let limit = self.head.0.load(SeqCst) + self.cap as u64;
                send.limit.store(limit, Release);
                fresh = false;
                if tail >= limit {
                    // Every slot holds a value the receiver has not taken yet.
                    return Err(Refused::Full(value));
                }
            }
            match send
                .tail
                .compare_exchange_weak(tail, tail + 1, Relaxed, Relaxed)
            {
                Ok(_) => {
                    let slot = self.slot(tail);
                    // SAFETY: the compare-exchange reserved position `tail` for this
                    // call alone, and `tail < limit` says the receiver is done with
                    // the slot's previous value; the receiver reads it only after the
                    // stamp below.
                    unsafe { (*slot.value.get()).write(value) };
                    // SeqCst: the first half of the receiver's wait pair (the
                    // caller reads `rx_parked` next); also a release of the value.
                    slot.stamp.store(tail + 1, SeqCst);
                    return Ok(());
                }
                Err(now) => tail = now,
            }
        }
    }

    /// Takes the value at `head`, if it has been stamped.
    ///
    /// # Safety
    ///
    /// Only the channel's one receiver calls this, with the `head` it owns.
    #[inline]
    pub(super) unsafe fn pop(&self, head: &mut u64) -> Option<T> {
        let slot = self.slot(*head);
        // SeqCst: the second half of the receiver's wait pair; also an acquire of the
        // value.
        if slot.stamp.load(SeqCst) != *head + 1 {
            return None;
        }
        // SAFETY: the stamp says the sender of `head` wrote the value and let go of
        // it; only this receiver reads it (the caller's contract), once, as `head`
        // moves on below, and no sender writes the slot again before that.
        let value = unsafe { (*slot.value.get()).assume_init_read() };
        *head += 1;
        // SeqCst: the first half of the senders' wait pair; also a release of the
        // slot to the sender one lap later.
        self.head.0.store(*head, SeqCst);
        if self.flags.0.tx_wait.load(SeqCst) == WAITING {
            self.notify_first_waiter();
        }
        Some(value)
    }

    /// Whether the value of `head` has been stamped (a look, without taking it).
    #[inline]
    pub(super) fn is_ready(&self, head: u64) -> bool {
        self.slot(head).stamp.load(Relaxed) == head + 1
    }

    /// After a push: wakes the receiver if it waits.
    #[inline]
    fn wake_receiver(&self) {
        let parked = &self.flags.0.rx_parked;
        if parked.load(SeqCst) && parked.swap(false, AcqRel) {
            self.flags.0.woken_by.store(thread_token(), Relaxed);
            let waker = lock(&self.rx_waker).take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Whether the last wake of the parked receiver came from another thread than
    /// the caller's (a sender that can make progress while the receiver spins).
    pub(super) fn woken_from_elsewhere(&self) -> bool {
        self.flags.0.woken_by.load(Relaxed) != thread_token()
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
    pub(super) fn is_finished(&self, head: u64) -> bool {
        if self.senders.load(SeqCst) == 0 {
            return true;
        }
        let tail = self.send.0.tail.load(SeqCst);
        tail & CLOSED != 0 && tail & !CLOSED == head
    }

    pub(super) fn is_closed(&self) -> bool {
        self.send.0.tail.load(Acquire) & CLOSED != 0
    }

    /// How many values are in the ring (a snapshot, while it changes).
    pub(super) fn len(&self) -> usize {
        let head = self.head.0.load(Acquire);
        let tail = self.send.0.tail.load(Acquire) & !CLOSED;
        (tail.saturating_sub(head) as usize).min(self.cap)
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
        self.send.0.tail.fetch_or(CLOSED, SeqCst);
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

    /// Called by the receiver after it published `head` while `tx_wait` was
    /// `WAITING`.
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
            // The receiver is woken after the lock is let go (below): a waker may
            // run foreign code.
            match self.push(v, true) {
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
        if outcome.is_ok() {
            self.wake_receiver();
        }
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
        let tail = self.send.0.tail.load(SeqCst);
        let free = tail & CLOSED != 0 || tail < self.head.0.load(SeqCst) + self.cap as u64;
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
    pub(super) unsafe fn drain(&self, head: &mut u64) -> Vec<T> {
        self.close();
        let mut left = Vec::new();
        // SAFETY: the caller's contract.
        while let Some(value) = unsafe { self.pop(head) } {
            left.push(value);
        }
        left
    }
}

/// A number that tells the calling thread from every other live thread: the address
/// of a thread-local.
fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| t as *const u8 as usize)
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
        loop {
            let slot = &mut self.slots[(head & self.mask) as usize];
            if *slot.stamp.get_mut() != head + 1 {
                break;
            }
            *slot.stamp.get_mut() = 0;
            // SAFETY: stamped `head + 1` and not taken: the slot holds a value.
            drop(unsafe { slot.value.get_mut().assume_init_read() });
            head += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{Refused, Ring};

    /// A value that counts its drops.
    struct Counted(u64, Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A small deterministic generator (xorshift).
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn pushes_and_pops_match_a_queue_model_over_many_laps() {
        for cap in [1, 2, 3, 5, 8, 13] {
            let ring = Ring::new(cap);
            let mut model = VecDeque::new();
            let (mut head, mut sent, mut seed) = (0u64, 0u64, 0x9e37_79b9_7f4a_7c15);
            for _ in 0..20_000 {
                if next(&mut seed) % 2 == 0 {
                    match ring.try_push(sent, false) {
                        Ok(()) => {
                            assert!(model.len() < cap, "cap {cap}: pushed into a full ring");
                            model.push_back(sent);
                            sent += 1;
                        }
                        Err(Refused::Full(v)) => {
                            assert_eq!(v, sent);
                            assert_eq!(model.len(), cap, "cap {cap}: full while not full");
                        }
                        Err(Refused::Closed(_)) => panic!("not closed"),
                    }
                } else {
                    // SAFETY: this test is the ring's one receiver.
                    assert_eq!(unsafe { ring.pop(&mut head) }, model.pop_front());
                }
                assert_eq!(ring.len(), model.len());
            }
            assert!(sent > 5 * cap as u64, "cap {cap}: the ring went round");
        }
    }

    #[test]
    fn values_left_in_the_ring_drop_once_with_it() {
        let drops = Arc::new(AtomicUsize::new(0));
        let ring = Ring::new(3);
        let mut head = 0;
        for i in 0..5 {
            let pushed = ring.try_push(Counted(i, drops.clone()), false);
            assert_eq!(pushed.is_ok(), i < 4, "value {i}");
            if i == 1 {
                // SAFETY: this test is the ring's one receiver.
                let first = unsafe { ring.pop(&mut head) }.unwrap();
                assert_eq!(first.0, 0);
            }
        }
        // 0 was taken (and dropped); 1, 2, 3 are in; 4 was refused (and dropped).
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        drop(ring);
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_closed_ring_refuses_pushes_and_knows_where_it_ends() {
        let ring = Ring::new(4);
        let mut head = 0;
        assert!(ring.try_push(1u8, false).is_ok());
        ring.close();
        assert!(matches!(ring.try_push(2, false), Err(Refused::Closed(2))));
        assert!(!ring.is_finished(head), "a value is still in");
        // SAFETY: this test is the ring's one receiver.
        assert_eq!(unsafe { ring.pop(&mut head) }, Some(1));
        assert!(ring.is_finished(head));
    }

    #[test]
    fn four_threads_pushing_into_a_small_ring_lose_and_reorder_nothing() {
        const PER_THREAD: u64 = 20_000;
        let ring = Arc::new(Ring::new(8));
        for _ in 0..3 {
            ring.add_sender();
        }
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        let mut value = (t, i);
                        loop {
                            match ring.try_push(value, false) {
                                Ok(()) => break,
                                Err(Refused::Full(v)) => {
                                    value = v;
                                    std::thread::yield_now();
                                }
                                Err(Refused::Closed(_)) => panic!("not closed"),
                            }
                        }
                    }
                    ring.drop_sender();
                })
            })
            .collect();
        let mut next_of = [0u64; 4];
        let mut head = 0;
        let mut got = 0;
        while got < 4 * PER_THREAD {
            // SAFETY: this thread is the ring's one receiver.
            match unsafe { ring.pop(&mut head) } {
                Some((t, i)) => {
                    assert_eq!(i, next_of[t as usize], "thread {t} out of order");
                    next_of[t as usize] += 1;
                    got += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(ring.is_finished(head));
        // SAFETY: as above.
        assert!(unsafe { ring.pop(&mut head) }.is_none());
    }
}
