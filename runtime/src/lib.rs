//! A thread-per-core async runtime for Linux, built on io_uring.
//!
//! Each core runs one thread that owns one io_uring ring and one single-threaded
//! executor. Futures need not be `Send`; I/O takes owned buffers and hands them back
//! with the result, so a dropped future can never free memory the kernel still writes.
//!
//! ```
//! #[runtime::main]
//! async fn main() {
//!     let task = runtime::spawn(async { 40 + 2 });
//!     runtime::time::sleep(std::time::Duration::from_millis(1)).await;
//!     assert_eq!(task.await.unwrap(), 42);
//! }
//! ```
//!
//! See `docs/architecture.md` for the layers and `docs/cancellation.md` for the rules
//! that keep cancellation sound.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub mod buf;
pub mod channel;
mod clock;
// Without either trait feature nothing calls the poll functions yet.
#[cfg_attr(
    not(any(feature = "futures-io", feature = "tokio", feature = "hyper")),
    allow(dead_code)
)]
mod compat;
mod coop;
mod driver;
mod executor;
pub mod fs;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod io;
pub mod net;
mod runtime;
pub mod signal;
mod stats;
mod sys;
pub mod task;
pub mod time;
#[cfg(feature = "tokio-bridge")]
pub mod tokio_bridge;

pub use executor::Stall;
pub use runtime::{
    backend, core_count, core_id, spawn_on, stats, Backend, Builder, Handle, Runtime,
    ShutdownReport, BACKEND_ENV,
};
pub use runtime_macros::{main, test};
pub use stats::{CoreStats, QueueStats, RingFlags, POLL_BUCKETS};
pub use sys::probe::Probe;
pub use task::{JoinError, JoinHandle};

/// Spawns a task on the current core and returns a handle to await its output.
///
/// The future need not be `Send`: it never leaves this core. The task starts at the
/// next tick of the run loop and keeps running if the handle is dropped.
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// let handle = runtime::spawn(async { "done" });
/// assert_eq!(handle.await.unwrap(), "done");
/// # });
/// ```
///
/// # Panics
///
/// Outside a runtime (there is no core to run the task).
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    task::spawn(future)
}

/// Lets the other ready tasks (and the ring) run before this task goes on.
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// runtime::yield_now().await;
/// # });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A round trip through the ring that does nothing (`IORING_OP_NOP`).
///
/// A diagnostic and benchmark op: it measures the runtime's own cost per operation,
/// without any device or socket. Outside a runtime it resolves to an error.
///
/// ```
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// runtime::nop().await.unwrap();
/// # });
/// ```
pub fn nop() -> Nop {
    Nop(driver::Op::new(driver::ops::Nop))
}

/// The future of [`nop`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Nop(driver::Op<driver::ops::Nop>);

impl Future for Nop {
    type Output = std::io::Result<()>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll(cx)
    }
}
