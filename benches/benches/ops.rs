//! Micro-benchmarks of `runtime` alone, on one core: the cost of one nop
//! round trip, of 64 nops in flight at once, of spawning and joining one
//! task, and of one `yield_now`. `cargo bench -p benches --bench ops`.
//!
//! The benchmark thread is pinned to CPU 1 when the machine has one, as in
//! the `nop` and `spawn` groups of `benches`, so that figures from both line up.

use std::future::{poll_fn, Future};
use std::hint::black_box;
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 64;

/// The CPU the `nop` and `spawn` groups pin to by default.
const CPU: usize = 1;

fn runtime() -> runtime::Runtime {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if let Some(&core) = cores.iter().find(|core| core.id == CPU) {
        core_affinity::set_for_current(core);
    }
    runtime::Builder::new()
        .cores(1)
        .build()
        .expect("cannot start the runtime")
}

/// Times `iters` runs of `op` inside one `block_on`.
fn timed<F, Fut>(rt: &mut runtime::Runtime, iters: u64, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            op().await;
        }
        start.elapsed()
    })
}

/// Polls every future of `futures` until all have finished; fails with the
/// first error.
async fn all_ok<F, const N: usize>(futures: [F; N]) -> io::Result<()>
where
    F: Future<Output = io::Result<()>>,
{
    let mut slots = pin!(futures.map(Some));
    poll_fn(|cx| {
        let mut pending = false;
        for i in 0..N {
            // SAFETY: the array is pinned and no element is ever moved out of
            // it: a finished future is dropped in place by `Pin::set`.
            let mut slot = unsafe { slots.as_mut().map_unchecked_mut(|slots| &mut slots[i]) };
            let Some(future) = slot.as_mut().as_pin_mut() else {
                continue;
            };
            match future.poll(cx) {
                Poll::Ready(result) => {
                    slot.set(None);
                    result?;
                }
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    })
    .await
}

fn nop(c: &mut Criterion) {
    let mut rt = runtime();
    let mut group = c.benchmark_group("nop");
    group.throughput(Throughput::Elements(1));
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            timed(&mut rt, iters, || async {
                runtime::nop().await.expect("nop failed");
            })
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_64", |b| {
        b.iter_custom(|iters| {
            timed(&mut rt, iters, || async {
                let nops: [_; BATCH] = std::array::from_fn(|_| runtime::nop());
                all_ok(nops).await.expect("nop failed");
            })
        })
    });
    group.finish();
}

fn tasks(c: &mut Criterion) {
    let mut rt = runtime();
    c.bench_function("spawn_join_one", |b| {
        b.iter_custom(|iters| {
            timed(&mut rt, iters, || async {
                let value = runtime::spawn(async { black_box(1u64) })
                    .await
                    .expect("task failed");
                black_box(value);
            })
        })
    });
    c.bench_function("yield_now", |b| {
        b.iter_custom(|iters| timed(&mut rt, iters, runtime::yield_now))
    });
}

criterion_group!(benches, nop, tasks);
criterion_main!(benches);
