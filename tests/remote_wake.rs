//! Wakers woken from other threads: the wake reaches the task's core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use runtime::time::timeout;

const BOUND: Duration = Duration::from_secs(10);

/// The tests here run one at a time: they count wake-ups, and a waker that outlives
/// its runtime (one test makes one on purpose) may be woken into the inbox of a later
/// runtime that got the same core number, which counts as an eventfd wake-up there.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A flag set by another thread, with the waker to call when it is.
#[derive(Default)]
struct Signal {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    fn fire(&self) {
        self.set.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.set.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[test]
fn a_waker_woken_on_another_thread_wakes_the_parked_core() {
    let _serial = serial();
    let mut rt = tests::rt();
    let before = rt.stats();
    rt.block_on(async {
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        // The task parks (nothing else to do) until the thread wakes it.
        let task = runtime::spawn(async move { s.wait().await });
        runtime::yield_now().await;
        let thread = std::thread::spawn(move || signal.fire());
        timeout(BOUND, task).await.expect("woken").unwrap();
        thread.join().unwrap();
    });
    let after = rt.stats();
    assert!(after.remote_wakes_received > before.remote_wakes_received);
    // The thread is no core: it has no ring to send a MSG_RING from, so the wake-up
    // that ended the park went by the core's eventfd, and the core itself sent none.
    assert!(
        after.eventfd_wakes_received > before.eventfd_wakes_received,
        "{after:?}"
    );
    assert_eq!(
        after.msg_ring_wakes_sent + after.eventfd_wakes_sent,
        0,
        "{after:?}"
    );
}

#[test]
fn a_waker_woken_on_another_core_goes_home_by_msg_ring_unless_built_without() {
    let _serial = serial();
    const ROUNDS: usize = 200;
    let probe = runtime::Probe::get().unwrap();
    // On the epoll backend a MSG_RING wake-up is an eventfd write: that is checked too.
    let kernel_has_msg_ring =
        probe.supports(io_uring::opcode::MsgRingData::CODE) && !tests::on_epoll();
    if !kernel_has_msg_ring {
        println!("no IORING_OP_MSG_RING (kernel or backend): every wake-up goes by eventfd");
    }
    for msg_ring in [true, false] {
        let mut rt = runtime::Builder::new()
            .cores(2)
            .pin(false)
            .msg_ring(msg_ring)
            .build()
            .unwrap();
        let handle = rt.handle();
        rt.block_on(async {
            for _ in 0..ROUNDS {
                let signal = Arc::new(Signal::default());
                let s = signal.clone();
                let (ready_tx, ready_rx) = runtime::channel::oneshot();
                // A task on core 1 waits for the signal and says so once its waker is
                // in place; core 0 then wakes that waker.
                let task = runtime::spawn_on(1, move || async move {
                    let mut ready = Some(ready_tx);
                    std::future::poll_fn(|cx| {
                        *s.waker.lock().unwrap() = Some(cx.waker().clone());
                        if let Some(tx) = ready.take() {
                            tx.send(()).unwrap();
                        }
                        if s.set.load(Ordering::SeqCst) {
                            Poll::Ready(runtime::core_id())
                        } else {
                            Poll::Pending
                        }
                    })
                    .await
                });
                timeout(BOUND, ready_rx).await.unwrap().unwrap();
                signal.fire();
                assert_eq!(timeout(BOUND, task).await.unwrap().unwrap(), 1);
            }
        });
        let stats = handle.stats();
        let what = format!("msg_ring {msg_ring}: {stats:#?}");
        // Core 0 woke core 1 at least once a round: the job always goes as a message,
        // and the signal wakes a task that said it was waiting. Core 1's wakes of
        // core 0 (ready, the join) are needed only when core 0 got to wait first,
        // which is a race it may lose every time the other way: at least one in all.
        for (index, core) in stats.iter().enumerate() {
            let woke = core.msg_ring_wakes_sent + core.eventfd_wakes_sent;
            let least = if index == 0 { ROUNDS as u64 } else { 1 };
            assert!(woke >= least, "core {index}: {what}");
            if msg_ring && kernel_has_msg_ring {
                assert_eq!(core.eventfd_wakes_sent, 0, "{what}");
                assert_eq!(core.eventfd_wakes_received, 0, "{what}");
            } else {
                assert_eq!(core.msg_ring_wakes_sent, 0, "{what}");
            }
        }
        let sent: u64 = stats.iter().map(|c| c.eventfd_wakes_sent).sum();
        let received: u64 = stats.iter().map(|c| c.eventfd_wakes_received).sum();
        assert_eq!(
            sent, received,
            "every eventfd wake-up came from a core: {what}"
        );
    }
}

#[test]
fn the_main_future_can_be_woken_from_another_thread() {
    let _serial = serial();
    tests::rt().block_on(async {
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        let thread = std::thread::spawn(move || s.fire());
        timeout(BOUND, signal.wait()).await.expect("woken");
        thread.join().unwrap();
    });
}

#[test]
fn wakes_from_many_threads_are_all_seen() {
    let _serial = serial();
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    tests::rt().block_on(async {
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..THREADS {
            let signals: Vec<Arc<Signal>> = (0..ROUNDS).map(|_| Arc::default()).collect();
            for s in &signals {
                let s = s.clone();
                let done = done.clone();
                tasks.push(runtime::spawn(async move {
                    s.wait().await;
                    done.fetch_add(1, Ordering::SeqCst);
                }));
            }
            threads.push(signals);
        }
        runtime::yield_now().await; // every task registers its waker
        let threads: Vec<_> = threads
            .into_iter()
            .map(|signals| std::thread::spawn(move || signals.iter().for_each(|s| s.fire())))
            .collect();
        for t in tasks {
            timeout(BOUND, t)
                .await
                .expect("every wake arrives")
                .unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), THREADS * ROUNDS);
    });
}

#[test]
fn a_waker_outliving_its_runtime_is_harmless() {
    let _serial = serial();
    let waker = tests::rt()
        .block_on(async { std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await });
    let w = waker.clone();
    std::thread::spawn(move || w.wake()).join().unwrap();
    waker.wake();
}
