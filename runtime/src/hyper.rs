//! hyper on the runtime, natively (feature `hyper`): hyper's I/O traits for
//! [`Compat`](crate::io::Compat), an executor that spawns on the current core
//! ([`LocalExecutor`]) and a timer on the core's timers ([`CoreTimer`]).
//!
//! # I/O: `hyper::rt::Read` and `hyper::rt::Write` for `Compat<T>`
//!
//! `Compat<TcpStream>` (and `Compat<UnixStream>`) is hyper's connection type: no
//! `TokioIo`, no second adapter. The traits are implemented for [`Compat`](crate::io::Compat), not for
//! the streams, because a poll-based read lends a buffer for one poll only while the
//! kernel writes into a buffer until its completion, which may come after the caller
//! has gone. The buffer must live across polls, outside the caller's hands; `Compat`
//! is where the runtime already keeps it, with the read or write in flight, and it
//! promises what hyper needs: a read future dropped between polls loses nothing (the
//! receive stays in flight inside `Compat` and its bytes wait for the next read), and
//! a dropped `Compat` cancels its operations and keeps their buffers alive until their
//! completions. Putting that state into every `TcpStream` would make each stream pay
//! for buffers that the owned-buffer calls never use.
//!
//! Reads copy from `Compat`'s read buffer into hyper's. Writes take hyper's buffers
//! (vectored: `is_write_vectored` is true, so hyper hands over headers and body in
//! one call) into the write buffer and start the send; `poll_flush` waits until the
//! kernel has taken every byte, and `poll_shutdown` flushes, then shuts down the write
//! half (`SHUT_WR`).
//!
//! # Executor and timer
//!
//! [`LocalExecutor`] runs the tasks hyper spawns (HTTP/2 streams, the client's
//! connection tasks) with [`spawn`](crate::spawn) on the core that asks, so they need
//! not be `Send`. [`CoreTimer`] gives hyper sleeps on the timers of the core that
//! polls them (see [`CoreSleep`] for how a `Send + Sync` sleep stays sound with
//! per-core timers).
//!
//! # Example
//!
//! An HTTP/1.1 server and client on one core, each over a `Compat<TcpStream>`:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::{Request, Response};
//! use runtime::io::Compat;
//! use runtime::net::{TcpListener, TcpStream};
//!
//! # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! runtime::spawn(async move {
//!     let (stream, _) = listener.accept().await.unwrap();
//!     let service = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hi"))))
//!     });
//!     hyper::server::conn::http1::Builder::new()
//!         .timer(runtime::hyper::CoreTimer::new())
//!         .serve_connection(Compat::new(stream), service)
//!         .await
//!         .unwrap();
//! });
//!
//! let stream = TcpStream::connect(addr).await?;
//! let (mut sender, conn) = hyper::client::conn::http1::handshake(Compat::new(stream))
//!     .await
//!     .map_err(std::io::Error::other)?;
//! runtime::spawn(conn);
//! let request = Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
//! let response = sender.send_request(request).await.map_err(std::io::Error::other)?;
//! let body = response.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
//! assert_eq!(&body[..], b"hi");
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! For HTTP/2, give hyper a [`LocalExecutor`]:
//! `hyper::server::conn::http2::Builder::new(LocalExecutor::new())` and
//! `hyper::client::conn::http2::handshake(LocalExecutor::new(), io)`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::driver::{self, TimerKey};

/// A `hyper::rt::Executor` that spawns each future on the current core with
/// [`runtime::spawn`](crate::spawn): the futures need not be `Send`, and hyper's
/// HTTP/2 streams run on the core of their connection.
///
/// # Panics
///
/// `execute` outside a runtime panics, as [`spawn`](crate::spawn) does: there is no
/// core to run the task. hyper calls it from the connection's own polls, so a
/// connection served or driven by a runtime task never meets this.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor(());

impl LocalExecutor {
    /// The executor of the current core (it holds nothing: every call asks which core
    /// runs it).
    pub fn new() -> LocalExecutor {
        LocalExecutor(())
    }
}

impl<F> ::hyper::rt::Executor<F> for LocalExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        if crate::executor::current().is_none() {
            panic!(
                "runtime::hyper::LocalExecutor used outside a runtime: hyper spawns from \
                 the polls of a connection, so drive the connection in a runtime task"
            );
        }
        // Detached: hyper learns of the task's end through its own channels.
        drop(crate::spawn(future));
    }
}

/// A `hyper::rt::Timer` on the runtime's timers: its sleeps are [`CoreSleep`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreTimer(());

impl CoreTimer {
    /// The timer (it holds nothing: each sleep uses the timers of the core that polls
    /// it).
    pub fn new() -> CoreTimer {
        CoreTimer(())
    }
}

impl ::hyper::rt::Timer for CoreTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(CoreSleep::new(crate::time::deadline_after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(CoreSleep::new(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn ::hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<CoreSleep>() {
            Some(ours) => ours.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A sleep for hyper: `Send + Sync`, as `hyper::rt::Sleep` requires, on timers that
/// belong to one core each.
///
/// A core's timers are reachable only from its own thread (they live in its driver,
/// behind an `Rc`). So a `CoreSleep` holds no reference to any core: only its deadline
/// and, once a poll has registered it, the registration's key, the id of the driver it
/// is registered with (ids are never reused) and a [`Handle`](crate::Handle) with the
/// core's index, all plain `Send + Sync` data. Every touch of a core's timers happens
/// on that core's thread:
///
/// - a poll on the core it is registered with updates the registration's waker;
/// - a poll on another core (the sleep moved) registers with that core, and asks the
///   old core, through a task sent with the handle, to drop the old registration;
/// - a reset, the end of the sleep and its drop remove the registration directly on
///   its own core, and through such a task from anywhere else (if that runtime is
///   gone, so are its timers).
///
/// It is ready once [`Instant::now`] has reached the deadline, never earlier,
/// whatever woke it.
///
/// # Panics
///
/// Polling it outside a runtime before its deadline panics: there is no timer to wait
/// on.
#[must_use = "futures do nothing unless awaited"]
pub struct CoreSleep {
    deadline: Instant,
    registered: Option<Registration>,
}

/// Where a pending `CoreSleep` waits: a timer of one core's driver.
struct Registration {
    driver: u64,
    key: TimerKey,
    home: crate::Handle,
    core: usize,
}

impl Registration {
    /// Drops the timer, on its own core (now, if that is this thread).
    fn release(self) {
        if driver::current_id() == self.driver {
            if let Some(driver) = driver::current() {
                driver.remove_timer(self.key);
            }
            return;
        }
        let Registration {
            driver, key, home, ..
        } = self;
        // An error means that runtime is gone, and its timers with it.
        if let Ok(task) = home.try_spawn_on(self.core, move || async move {
            if let Some(current) = driver::current().filter(|d| d.id() == driver) {
                current.remove_timer(key);
            }
        }) {
            drop(task);
        }
    }
}

impl CoreSleep {
    /// A sleep until `deadline`; it registers with a timer at its first pending poll.
    pub fn new(deadline: Instant) -> CoreSleep {
        CoreSleep {
            deadline,
            registered: None,
        }
    }

    /// When the sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (earlier or later); the next poll waits for the new one.
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(registration) = self.registered.take() {
            registration.release();
        }
        self.deadline = deadline;
    }
}

impl Future for CoreSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            if let Some(registration) = this.registered.take() {
                registration.release();
            }
            return Poll::Ready(());
        }
        let Some(current) = driver::current() else {
            panic!(
                "runtime::hyper::CoreSleep polled outside a runtime: timers need the ring \
                 of a runtime core"
            )
        };
        match &this.registered {
            Some(registration) if registration.driver == current.id() => {
                current.update_timer(registration.key, cx.waker());
            }
            _ => {
                if let Some(old) = this.registered.take() {
                    old.release();
                }
                let key = current.add_timer(this.deadline, cx.waker());
                this.registered = Some(Registration {
                    driver: current.id(),
                    key,
                    home: crate::Handle::current(),
                    core: crate::core_id(),
                });
            }
        }
        Poll::Pending
    }
}

impl ::hyper::rt::Sleep for CoreSleep {}

impl Drop for CoreSleep {
    fn drop(&mut self) {
        if let Some(registration) = self.registered.take() {
            registration.release();
        }
    }
}

impl fmt::Debug for CoreSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.registered.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::hyper::rt::Timer;

    fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
        let waker = std::task::Waker::noop();
        future.poll(&mut Context::from_waker(waker))
    }

    fn timers() -> usize {
        driver::current().expect("on a core").timer_count()
    }

    #[test]
    fn sleeps_end_no_earlier_than_asked_and_leave_no_timer() {
        let mut rt = crate::Builder::new().cores(1).pin(false).build().unwrap();
        rt.block_on(async {
            let timer = CoreTimer::new();
            for ms in [0u64, 1, 3, 10] {
                let start = Instant::now();
                timer.sleep(Duration::from_millis(ms)).await;
                assert!(start.elapsed() >= Duration::from_millis(ms));
            }
            assert_eq!(timers(), 0);
        });
    }

    #[test]
    fn reset_moves_the_deadline_both_ways() {
        let mut rt = crate::Builder::new().cores(1).pin(false).build().unwrap();
        rt.block_on(async {
            let timer = CoreTimer::new();
            let start = Instant::now();
            let mut sleep = timer.sleep(Duration::from_secs(3600));
            assert!(poll_once(sleep.as_mut()).is_pending());
            assert_eq!(timers(), 1);
            // Earlier: the hour-long timer goes, the sleep ends after 5 ms.
            timer.reset(&mut sleep, start + Duration::from_millis(5));
            assert_eq!(timers(), 0);
            sleep.as_mut().await;
            assert!(start.elapsed() >= Duration::from_millis(5));
            // Later again, from a sleep that has ended.
            let later = Instant::now() + Duration::from_millis(20);
            timer.reset(&mut sleep, later);
            assert!(poll_once(sleep.as_mut()).is_pending());
            sleep.as_mut().await;
            assert!(Instant::now() >= later);
            assert_eq!(timers(), 0);
        });
    }

    #[test]
    fn a_dropped_sleep_leaves_no_timer() {
        let mut rt = crate::Builder::new().cores(1).pin(false).build().unwrap();
        rt.block_on(async {
            let timer = CoreTimer::new();
            for _ in 0..100 {
                let mut sleep = timer.sleep(Duration::from_secs(3600));
                assert!(poll_once(sleep.as_mut()).is_pending());
            }
            assert_eq!(timers(), 0);
        });
    }

    #[test]
    fn a_sleep_moved_to_another_core_or_thread_is_released_on_its_own_core() {
        let mut rt = crate::Builder::new().cores(2).pin(false).build().unwrap();
        rt.block_on(async {
            let mut sleep = CoreSleep::new(Instant::now() + Duration::from_secs(3600));
            assert!(poll_once(Pin::new(&mut sleep)).is_pending());
            assert_eq!(timers(), 1);
            // Polled on core 1: registered there, released here by a task.
            let (sleep, there) = crate::spawn_on(1, move || async move {
                let mut sleep = sleep;
                assert!(poll_once(Pin::new(&mut sleep)).is_pending());
                (sleep, timers())
            })
            .await
            .unwrap();
            assert_eq!(there, 1);
            let mut turns = 0;
            while timers() != 0 {
                assert!(turns < 10_000, "the moved sleep's timer stayed on core 0");
                crate::yield_now().await;
                turns += 1;
            }
            // Dropped on a thread of no runtime: core 1 drops its timer.
            std::thread::spawn(move || drop(sleep)).join().unwrap();
            let left = crate::spawn_on(1, || async {
                let mut turns = 0;
                while timers() != 0 && turns < 10_000 {
                    crate::yield_now().await;
                    turns += 1;
                }
                timers()
            })
            .await
            .unwrap();
            assert_eq!(left, 0);
        });
    }

    #[test]
    fn core_sleep_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<CoreSleep>();
        send_sync::<CoreTimer>();
        send_sync::<LocalExecutor>();
    }
}
