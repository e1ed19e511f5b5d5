//! Wakers woken from other threads: the wake reaches the task's core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use runtime::time::timeout;

const BOUND: Duration = Duration::from_secs(10);

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
    assert!(rt.stats().remote_wakes_received > before.remote_wakes_received);
}

#[test]
fn the_main_future_can_be_woken_from_another_thread() {
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
    let waker = tests::rt()
        .block_on(async { std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await });
    let w = waker.clone();
    std::thread::spawn(move || w.wake()).join().unwrap();
    waker.wake();
}
