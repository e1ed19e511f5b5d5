//! glommio on the cross-core workloads: two `LocalExecutor`s, each on a
//! thread of its own fixed to its CPU (`Placement::Fixed`), joined by
//! glommio's `shared_channel`s, with glommio's defaults otherwise (no
//! spinning before parking). It needs no setup: its executors start within
//! the default `RLIMIT_MEMLOCK`, as root or not.
//!
//! With glommio 0.9, a ping-pong run has been seen to hang now and then (1 in
//! about 25 runs at most): both executors parked in `io_uring_enter`, each
//! waiting for the other's message. [`crate::cross::run_cross_rounds`] gives
//! up on such a run after a while, runs it again, and the table says so.

use std::io;

use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender};
use glommio::{LocalExecutorBuilder, Placement};

use crate::cross::{self, closed, Job, Receiver, Run, Sender, CAPACITY, CPU_A, CPU_B};

impl Sender for ConnectedSender<u64> {
    async fn send(&mut self, value: u64) -> io::Result<()> {
        ConnectedSender::send(self, value)
            .await
            .map_err(|_| closed())
    }
}

impl Receiver for ConnectedReceiver<u64> {
    async fn recv(&mut self) -> Option<u64> {
        ConnectedReceiver::recv(self).await
    }
}

/// Runs `job` with endpoint A in an executor fixed to CPU 0 and B in one
/// fixed to CPU 1.
pub fn run(job: Job) -> io::Result<Run> {
    let (to_b, from_a) = shared_channel::new_bounded(CAPACITY);
    let (to_a, from_b) = shared_channel::new_bounded(CAPACITY);
    // `connect` waits for the other end to connect too, so both endpoints
    // connect the A-to-B channel first: in any other order they could wait
    // on each other.
    let b = LocalExecutorBuilder::new(Placement::Fixed(CPU_B))
        .name("glommio-b")
        .spawn(move || async move {
            let from_a = from_a.connect().await;
            let to_a = to_a.connect().await;
            cross::endpoint_b(job, to_a, from_a).await
        })?;
    let a = LocalExecutorBuilder::new(Placement::Fixed(CPU_A))
        .name("glommio-a")
        .spawn(move || async move {
            let to_b = to_b.connect().await;
            let from_b = from_b.connect().await;
            cross::endpoint_a(job, to_b, from_b).await
        })?;
    let a = a.join();
    let b = b.join();
    Ok(Run::new(a??, b??))
}
