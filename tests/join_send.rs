//! A `JoinHandle` is `Send` when its output is: awaited, aborted, asked and dropped on
//! another core or a plain thread, it gives the same answers as at home, and the
//! task's cell (its future, its output) is only ever touched on the task's core.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::Poll;
use std::thread::{self, ThreadId};
use std::time::Instant;

use runtime::channel::oneshot;
use runtime::JoinHandle;
use tests::{block_on_thread, rt, thread_waker, within, TempDir, BOUND};

fn assert_send<T: Send>(t: T) -> T {
    t
}

/// Polls `future` once on this thread: `None` if it is pending.
fn poll_here<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    let waker = thread_waker();
    match std::pin::Pin::new(future).poll(&mut std::task::Context::from_waker(&waker)) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Runs `f` on a new plain thread and waits for it from a task, without blocking the
/// core (which may have to run the job the handle sends home meanwhile).
async fn on_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = oneshot();
    let thread = thread::spawn(move || {
        let _ = tx.send(f());
    });
    let out = within("the thread's answer", rx)
        .await
        .expect("the thread answers");
    thread.join().expect("the thread finishes");
    out
}

/// Counts its drops and records the thread of the last one.
struct Output {
    drops: Arc<AtomicUsize>,
    dropped_on: Arc<Mutex<Option<ThreadId>>>,
}

impl Output {
    /// An output, its drop count and the thread of its last drop.
    fn counted() -> (Output, Arc<AtomicUsize>, Arc<Mutex<Option<ThreadId>>>) {
        let drops = Arc::new(AtomicUsize::new(0));
        let dropped_on = Arc::new(Mutex::new(None));
        let output = Output {
            drops: drops.clone(),
            dropped_on: dropped_on.clone(),
        };
        (output, drops, dropped_on)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        *self.dropped_on.lock().unwrap() = Some(thread::current().id());
    }
}

/// Sets its flag when dropped (so a test sees a task's future go).
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Yields until `done` holds, for at most the tests' bound.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < BOUND,
            "{what}: still waiting after {BOUND:?}"
        );
        runtime::yield_now().await;
    }
}

#[test]
fn a_send_future_awaits_a_task_that_uses_this_cores_types() {
    let dir = TempDir::new("join-send");
    let path = dir.join("greeting");
    std::fs::write(&path, b"hello from the core").unwrap();
    let (bytes, shared) = rt().block_on(async move {
        // What an axum handler does: a `Send` future awaiting `!Send` work.
        let read = assert_send(async move {
            runtime::spawn(async move { runtime::fs::read(&path).await })
                .await
                .unwrap()
                .unwrap()
        });
        let rc = assert_send(async {
            runtime::spawn(async {
                let rc = Rc::new(41);
                runtime::yield_now().await;
                *rc + 1
            })
            .await
            .unwrap()
        });
        (read.await, rc.await)
    });
    assert_eq!(bytes, b"hello from the core");
    assert_eq!(shared, 42);
}

#[test]
fn awaited_on_another_core() {
    let mut rt = runtime::Builder::new().cores(2).pin(false).build().unwrap();
    let (got, home, ran_on) = rt.block_on(async {
        let (tx, rx) = oneshot::<u32>();
        let handle = runtime::spawn(async move {
            let rc = Rc::new(rx.await.unwrap());
            (*rc * 2, runtime::core_id())
        });
        let other = runtime::spawn_on(1, move || async move {
            let mut handle = handle;
            // Pending (the task waits for `tx`): the handle sends the cell home.
            let first = tests::poll_once(&mut handle).await.0.is_none();
            tx.send(21).unwrap();
            (first, handle.await.unwrap(), runtime::core_id())
        });
        let (first, (value, home), ran_on) = within("the other core", other).await.unwrap();
        assert!(first, "the task was still waiting when first polled");
        (value, home, ran_on)
    });
    assert_eq!(got, 42);
    assert_eq!((home, ran_on), (0, 1));
}

#[test]
fn awaited_on_a_plain_thread() {
    let got = rt().block_on(async {
        let (tx, rx) = oneshot::<u32>();
        let handle = runtime::spawn(async move { rx.await.unwrap() + 1 });
        on_thread(move || {
            let mut handle = handle;
            assert!(poll_here(&mut handle).is_none(), "pending before the send");
            tx.send(6).unwrap();
            block_on_thread(handle).unwrap()
        })
        .await
    });
    assert_eq!(got, 7);
}

#[test]
fn a_finished_task_awaited_on_a_plain_thread() {
    let got = rt().block_on(async {
        let handle = runtime::spawn(async { String::from("done") });
        until("the task to finish", || handle.is_finished()).await;
        on_thread(move || {
            assert!(handle.is_finished(), "is_finished answers on any thread");
            block_on_thread(handle).unwrap()
        })
        .await
    });
    assert_eq!(got, "done");
}

#[test]
fn is_finished_answers_on_another_thread() {
    rt().block_on(async {
        let (tx, rx) = oneshot::<()>();
        let handle = runtime::spawn(async move { rx.await.unwrap() });
        on_thread(move || {
            assert!(!handle.is_finished());
            tx.send(()).unwrap();
            let start = Instant::now();
            while !handle.is_finished() {
                assert!(start.elapsed() < BOUND, "the task never finished");
                thread::yield_now();
            }
            block_on_thread(handle).unwrap();
        })
        .await;
    });
}

#[test]
fn dropped_elsewhere_its_output_is_dropped_once_at_home() {
    rt().block_on(async {
        let (output, drops, dropped_on) = Output::counted();
        let handle = runtime::spawn(async move { output });
        until("the task to finish", || handle.is_finished()).await;
        on_thread(move || drop(handle)).await;
        until("the output's drop", || drops.load(Ordering::SeqCst) > 0).await;
        // A few more turns: nothing drops it a second time.
        for _ in 0..10 {
            runtime::yield_now().await;
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(*dropped_on.lock().unwrap(), Some(thread::current().id()));
    });
}

#[test]
fn dropped_elsewhere_before_it_finished_the_task_runs_on() {
    rt().block_on(async {
        let (output, drops, dropped_on) = Output::counted();
        let (tx, rx) = oneshot::<()>();
        let (done_tx, done_rx) = oneshot::<()>();
        let handle = runtime::spawn(async move {
            rx.await.unwrap();
            done_tx.send(()).unwrap();
            output
        });
        on_thread(move || drop(handle)).await;
        tx.send(()).unwrap();
        within("the detached task", done_rx).await.unwrap();
        until("the output's drop", || drops.load(Ordering::SeqCst) > 0).await;
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(*dropped_on.lock().unwrap(), Some(thread::current().id()));
    });
}

/// A waiting task's handle is aborted on a plain thread, after a first poll there if
/// `poll_first`: the thread gets a cancellation and the task's future is dropped.
fn abort_on_another_thread(poll_first: bool) {
    rt().block_on(async {
        let gone = Arc::new(AtomicBool::new(false));
        let flag = Dropped(gone.clone());
        let handle = runtime::spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        runtime::yield_now().await; // it started and waits
        let err = on_thread(move || {
            let mut handle = handle;
            if poll_first {
                assert!(poll_here(&mut handle).is_none());
            }
            handle.abort();
            block_on_thread(handle).unwrap_err()
        })
        .await;
        assert!(err.is_cancelled(), "{err:?}");
        assert!(
            gone.load(Ordering::SeqCst),
            "the aborted future was dropped"
        );
    });
}

#[test]
fn aborted_from_another_thread() {
    abort_on_another_thread(false);
}

#[test]
fn aborted_after_it_was_polled_elsewhere() {
    abort_on_another_thread(true);
}

#[test]
fn abort_elsewhere_leaves_a_finished_task_its_output() {
    let got = rt().block_on(async {
        let handle = runtime::spawn(async { 5u8 });
        until("the task to finish", || handle.is_finished()).await;
        on_thread(move || {
            handle.abort();
            block_on_thread(handle)
        })
        .await
    });
    assert_eq!(got.unwrap(), 5);
}

#[test]
fn a_panic_reaches_another_thread() {
    let err = rt().block_on(async {
        let (tx, rx) = oneshot::<()>();
        let handle: JoinHandle<()> = runtime::spawn(async move {
            rx.await.unwrap();
            panic!("boom over there");
        });
        on_thread(move || {
            let mut handle = handle;
            assert!(poll_here(&mut handle).is_none());
            tx.send(()).unwrap();
            block_on_thread(handle).unwrap_err()
        })
        .await
    });
    assert!(err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("boom over there"), "{err}");
}

#[test]
fn shutdown_cancels_a_task_awaited_on_another_thread() {
    let mut rt = rt();
    let gone = Arc::new(AtomicBool::new(false));
    let (polled_tx, polled_rx) = mpsc::channel();
    let waiter = rt.block_on(async {
        let flag = Dropped(gone.clone());
        let handle = runtime::spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        thread::spawn(move || {
            let mut handle = handle;
            let first = poll_here(&mut handle);
            polled_tx.send(first.is_none()).unwrap();
            block_on_thread(handle)
        })
    });
    assert!(
        polled_rx.recv_timeout(BOUND).unwrap(),
        "pending when first polled"
    );
    // Let the core take the job the first poll sent, then shut down.
    rt.block_on(async {
        for _ in 0..10 {
            runtime::yield_now().await;
        }
    });
    drop(rt);
    let err = waiter.join().unwrap().unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(gone.load(Ordering::SeqCst), "the task's future was dropped");
}

#[test]
fn polled_elsewhere_after_its_runtime_is_gone() {
    let mut rt = rt();
    let (handle,) = rt.block_on(async {
        // Never polled: `block_on` returns first, and the shutdown cancels it.
        let handle = runtime::spawn(std::future::pending::<()>());
        (handle,)
    });
    drop(rt);
    // The runtime cancelled the task at shutdown; a handle that then leaves home
    // cannot reach the core and reports it cancelled.
    let err = thread::spawn(move || block_on_thread(handle))
        .join()
        .unwrap()
        .unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
}

#[test]
fn a_finished_task_outlives_its_runtime_on_another_thread() {
    let drops = Arc::new(AtomicUsize::new(0));
    let dropped_on = Arc::new(Mutex::new(None));
    let mut rt = rt();
    let (kept, dropped) = rt.block_on(async {
        let output = |drops: &Arc<AtomicUsize>, on: &Arc<Mutex<_>>| Output {
            drops: drops.clone(),
            dropped_on: on.clone(),
        };
        let (a, b) = (output(&drops, &dropped_on), output(&drops, &dropped_on));
        let kept = runtime::spawn(async move { (a, 7u8) });
        let dropped = runtime::spawn(async move { b });
        until("both tasks", || kept.is_finished() && dropped.is_finished()).await;
        (kept, dropped)
    });
    drop(rt);
    let (value, dropped_here) = thread::spawn(move || {
        drop(dropped);
        let (output, value) = block_on_thread(kept).expect("the output survived the runtime");
        drop(output);
        (value, thread::current().id())
    })
    .join()
    .unwrap();
    assert_eq!(value, 7);
    assert_eq!(drops.load(Ordering::SeqCst), 2, "each output dropped once");
    assert_eq!(*dropped_on.lock().unwrap(), Some(dropped_here));
}

#[test]
fn many_handles_cross_and_come_back() {
    let total = rt().block_on(async {
        let handles: Vec<_> = (0..1000u64)
            .map(|i| {
                runtime::spawn(async move {
                    if i % 2 == 0 {
                        runtime::yield_now().await;
                    }
                    i
                })
            })
            .collect();
        on_thread(move || {
            handles
                .into_iter()
                .map(|h| block_on_thread(h).unwrap())
                .sum::<u64>()
        })
        .await
    });
    assert_eq!(total, (0..1000u64).sum());
}
