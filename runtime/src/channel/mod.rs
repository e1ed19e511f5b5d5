//! Channels between tasks, cores and threads.
//!
//! - [`mpsc`]: many senders, one receiver; bounded ([`mpsc::channel`], a send waits
//!   for room) or unbounded ([`mpsc::unbounded`]).
//! - [`oneshot()`]: one value, sent once (types in [`mod@oneshot`]).
//!
//! Every endpoint may live on any thread: on this core, on another core, or on a
//! thread that is not part of the runtime at all. Senders are `Send + Sync + Clone`
//! (when the value type is `Send`) and receivers are `Send`. Nothing here spins: an
//! endpoint that has to wait stores its task's [`Waker`] and is woken
//! exactly when it can make progress, through the runtime's usual path for wakes
//! from other threads.
//!
//! ```
//! use runtime::channel::{mpsc, oneshot};
//!
//! let mut rt = runtime::Builder::new().cores(1).build().unwrap();
//! rt.block_on(async {
//!     // A plain thread feeds an unbounded channel; a task on the runtime sums it.
//!     let (tx, mut rx) = mpsc::unbounded::<u64>();
//!     let feeder = std::thread::spawn(move || {
//!         for i in 1..=100 {
//!             tx.send(i).unwrap();
//!         }
//!         // Dropping the last sender ends the stream of values.
//!     });
//!
//!     let (done_tx, done_rx) = oneshot();
//!     runtime::spawn(async move {
//!         let mut sum = 0;
//!         while let Some(i) = rx.recv().await {
//!             sum += i;
//!         }
//!         let _ = done_tx.send(sum);
//!     });
//!
//!     assert_eq!(done_rx.await, Ok(5050));
//!     feeder.join().unwrap();
//!
//!     // A bounded channel makes a fast sender wait for the receiver.
//!     let (tx, mut rx) = mpsc::channel(2);
//!     let producer = runtime::spawn(async move {
//!         for word in ["one", "two", "three", "four"] {
//!             tx.send(word).await.unwrap();
//!         }
//!     });
//!     let mut words = Vec::new();
//!     while let Some(word) = rx.recv().await {
//!         words.push(word);
//!     }
//!     assert_eq!(words, ["one", "two", "three", "four"]);
//!     producer.await.unwrap();
//! });
//! ```
//!
//! A receiver belongs to one consumer: it is not `Clone`.
//!
//! ```compile_fail
//! let (_tx, rx) = runtime::channel::mpsc::unbounded::<u32>();
//! let _second = rx.clone();
//! ```
//!
//! A channel of values that must stay on their thread cannot send them elsewhere:
//!
//! ```compile_fail
//! fn needs_send<T: Send>(_: T) {}
//! let (tx, _rx) = runtime::channel::mpsc::unbounded::<std::rc::Rc<u32>>();
//! needs_send(tx);
//! ```
//!
//! # Locking
//!
//! A bounded channel passes values through a ring without a lock (see [`mpsc`]);
//! a mutex is taken only to start or stop waiting. An unbounded channel and a
//! oneshot keep their state behind one `std::sync::Mutex`, whose critical sections
//! are a handful of moves. No user code runs under any of these locks: values are
//! moved in and out, never dropped there, and wakers are woken only after the lock
//! is released.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

pub mod mpsc;
pub mod oneshot;
mod ring;

/// Makes a channel for one value: the sender sends it once and the receiver awaits it.
///
/// The [`Sender`](oneshot::Sender) and [`Receiver`](oneshot::Receiver) may be on
/// different threads or cores.
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// let (tx, rx) = runtime::channel::oneshot();
/// std::thread::spawn(move || tx.send("ready").unwrap());
/// assert_eq!(rx.await, Ok("ready"));
/// # });
/// ```
pub fn oneshot<T>() -> (oneshot::Sender<T>, oneshot::Receiver<T>) {
    oneshot::pair()
}

/// Locks a channel's state, whether or not another thread panicked while holding it.
///
/// Poisoning is ignored on purpose: no user code runs under these locks, and every
/// critical section leaves the state consistent at each step it could panic on, so a
/// poisoned lock never holds a half-made change.
fn lock<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stores `waker` in `slot` unless the waker there already wakes the same task.
///
/// Returns the waker it replaced, for the caller to drop after it releases its lock
/// (dropping a waker may run code of the executor that made it).
fn register(slot: &mut Option<Waker>, waker: &Waker) -> Option<Waker> {
    match slot {
        Some(stored) if stored.will_wake(waker) => None,
        _ => slot.replace(waker.clone()),
    }
}
