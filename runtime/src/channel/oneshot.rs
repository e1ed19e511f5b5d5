//! The types of a channel for one value, made by [`oneshot()`](super::oneshot()).
//!
//! # State
//!
//! Sender and receiver share, behind one mutex:
//!
//! | field | holds | changed by |
//! |---|---|---|
//! | `value` | the value sent and not yet received | the sender puts it, the receiver takes it |
//! | `rx_waker` | the receiver's waker, while it waits | the receiver stores it; the sender takes it |
//! | `tx_done` | the sender has sent or was dropped | the sender, once |
//! | `rx_gone` | the receiver closed or was dropped | the receiver, once |
//!
//! # Why no wake is lost
//!
//! The receiver waits only while `value` is empty and `tx_done` is false, and it
//! checks both and stores its waker under the lock. The sender sets `tx_done` (with
//! the value, if it sends one) and takes the stored waker under the same lock, in
//! `send` or in its drop, whichever comes first; the other finds nothing left to do.
//! So the sender's last step comes either before the receiver's check, which then
//! sees it, or after the waker was stored, and wakes it. The wake happens after the
//! lock is released, and a value nobody will receive is dropped outside the lock.
//!
//! Nothing waits on the sender's side: [`Sender::is_closed`] is a plain look at
//! `rx_gone`, and [`Sender::send`] fails (returning the value) once it is set.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::{lock, register};

/// Makes the two halves; [`oneshot()`](super::oneshot()) is the public way in.
pub(super) fn pair<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            value: None,
            rx_waker: None,
            tx_done: false,
            rx_gone: false,
        }),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
    )
}

struct Inner<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Option<T>,
    rx_waker: Option<Waker>,
    tx_done: bool,
    rx_gone: bool,
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }
}

/// The sending half of a oneshot channel: sends one value, once.
///
/// It is `Send` when `T` is. Dropping it without sending makes the receiver fail
/// with [`RecvError`].
pub struct Sender<T> {
    /// `None` once the value has been sent.
    inner: Option<Arc<Inner<T>>>,
}

impl<T> Sender<T> {
    /// Sends `value` to the receiver, or hands it back if the receiver is gone (dropped
    /// or closed).
    ///
    /// A value sent successfully may still never be received, if the receiver is
    /// dropped before it looks; the value is then dropped with it.
    pub fn send(mut self, value: T) -> Result<(), T> {
        let Some(inner) = self.inner.take() else {
            // Only `send` takes `inner`, and it consumes the sender.
            return Err(value);
        };
        let mut state = inner.lock();
        state.tx_done = true;
        if state.rx_gone {
            return Err(value);
        }
        state.value = Some(value);
        let rx = state.rx_waker.take();
        drop(state);
        if let Some(waker) = rx {
            waker.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone (dropped or closed): a send would fail.
    pub fn is_closed(&self) -> bool {
        self.inner.as_ref().is_none_or(|inner| inner.lock().rx_gone)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let mut state = inner.lock();
        state.tx_done = true;
        let rx = state.rx_waker.take();
        drop(state);
        if let Some(waker) = rx {
            waker.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender").finish_non_exhaustive()
    }
}

/// The receiving half of a oneshot channel: a future of the value.
///
/// It resolves to the value, or to [`RecvError`] if the sender was dropped without
/// sending. It is `Send` when `T` is. Awaiting it is cancel-safe: the value is taken
/// only when the future completes, and stays available to [`try_recv`](Self::try_recv)
/// or a later poll until then. Polled again after it gave the value, it gives
/// [`RecvError`]: there is nothing left.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Receiver<T> {
    /// Takes the value if it has been sent, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.inner.lock();
        match state.value.take() {
            Some(value) => Ok(value),
            None if state.tx_done => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Tells the sender that no value is wanted: a later [`Sender::send`] fails and
    /// hands its value back. A value sent before the close can still be received.
    pub fn close(&mut self) {
        self.inner.lock().rx_gone = true;
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.inner.lock();
        if let Some(value) = state.value.take() {
            return Poll::Ready(Ok(value));
        }
        if state.tx_done {
            return Poll::Ready(Err(RecvError(())));
        }
        let old = register(&mut state.rx_waker, cx.waker());
        drop(state);
        drop(old);
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.rx_gone = true;
        let value = state.value.take();
        let own = state.rx_waker.take();
        drop(state);
        drop(value);
        drop(own);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Receiver").finish_non_exhaustive()
    }
}

/// The sender was dropped without sending a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(());

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sender was dropped without sending a value")
    }
}

impl Error for RecvError {}

impl From<RecvError> for io::Error {
    /// An [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) error.
    fn from(err: RecvError) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, err)
    }
}

/// Why [`Receiver::try_recv`] gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No value yet; the sender may still send one.
    Empty,
    /// No value and none will come: the sender was dropped without sending, or the
    /// value was already received.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "no value has been sent yet",
            TryRecvError::Disconnected => "the sender is gone and no value is left",
        })
    }
}

impl Error for TryRecvError {}

impl From<TryRecvError> for io::Error {
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when empty,
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) when disconnected.
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
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_the_send_and_gets_the_value() {
        let (tx, mut rx) = pair();
        let count = Arc::new(CountingWaker::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut rx).poll(&mut cx).is_pending());
        tx.send(7).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut rx).poll(&mut cx), Poll::Ready(Ok(7)));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn a_value_sent_before_close_is_still_received() {
        let (tx, mut rx) = pair();
        tx.send("kept").unwrap();
        rx.close();
        assert_eq!(rx.try_recv(), Ok("kept"));
    }
}
