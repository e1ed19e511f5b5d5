//! Many cores: placement, spawn_on, handles, wakes across threads, panics, shutdown.

use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use runtime::channel::oneshot;
use runtime::time::timeout;
use runtime::Builder;

const BOUND: Duration = Duration::from_secs(10);

/// The tests here run one at a time: two of them count this process's fds, and every
/// runtime the others start opens some.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn cores(n: usize) -> runtime::Runtime {
    Builder::new()
        .cores(n)
        .pin(false)
        .build()
        .expect("the runtime starts")
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn each_core_runs_on_its_own_cpu_and_the_building_thread_gets_its_mask_back() {
    let _serial = serial();
    let mask = tests::thread_cpus();
    let mut rt = Builder::new().build().expect("the runtime starts");
    assert_eq!(
        rt.handle().core_count(),
        mask.len(),
        "one core per allowed CPU"
    );
    let placed = rt.block_on(async {
        let mut placed = Vec::new();
        for core in 0..runtime::core_count() {
            let there = runtime::spawn_on(core, move || async move {
                (runtime::core_id(), tests::thread_cpus())
            });
            placed.push(timeout(BOUND, there).await.unwrap().unwrap());
        }
        placed
    });
    for (core, (id, cpus)) in placed.into_iter().enumerate() {
        assert_eq!(id, core);
        assert_eq!(cpus, vec![mask[core]], "core {core} is pinned to its CPU");
    }
    drop(rt);
    assert_eq!(tests::thread_cpus(), mask);
}

#[test]
fn pinning_more_cores_than_cpus_is_a_clear_error() {
    let _serial = serial();
    let n = tests::thread_cpus().len() + 1;
    let err = Builder::new()
        .cores(n)
        .build()
        .expect_err("too many pinned cores");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("pin(false)"), "{err}");
}

#[test]
fn without_pinning_there_may_be_more_cores_than_cpus() {
    let _serial = serial();
    let n = tests::thread_cpus().len() * 2;
    let mut rt = cores(n);
    let seen = rt.run_on_all(|core| async move {
        runtime::yield_now().await;
        (core, runtime::core_id(), runtime::core_count())
    });
    let expected: Vec<_> = (0..n).map(|core| (core, core, n)).collect();
    assert_eq!(seen, expected);
}

#[test]
fn spawn_on_runs_on_the_target_core_and_the_future_need_not_be_send() {
    let _serial = serial();
    let mut rt = cores(2);
    let out = rt.block_on(async {
        let there = runtime::spawn_on(1, || async {
            let local = std::rc::Rc::new(runtime::core_id());
            runtime::yield_now().await;
            *local
        });
        let here = runtime::spawn_on(0, || async { runtime::core_id() });
        (
            timeout(BOUND, there).await.unwrap().unwrap(),
            here.await.unwrap(),
        )
    });
    assert_eq!(out, (1, 0));
}

#[test]
fn a_handle_spawns_from_a_thread_the_runtime_does_not_own() {
    let _serial = serial();
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<runtime::Handle>();
    let rt = cores(2);
    let handle = rt.handle();
    // Core 1 runs on its own thread: nobody needs to be in block_on.
    let got = std::thread::spawn(move || {
        let task = handle.spawn_on(1, || async { runtime::core_id() * 10 });
        tests::block_on_thread(task)
    })
    .join()
    .unwrap();
    assert_eq!(got.unwrap(), 10);
    let err = rt
        .handle()
        .try_spawn_on(2, || async {})
        .expect_err("no core 2");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("2 cores"), "{err}");
}

#[test]
fn a_handle_outliving_its_runtime_reports_cancellation() {
    let _serial = serial();
    let rt = cores(2);
    let handle = rt.handle();
    drop(rt);
    assert_eq!(handle.core_count(), 0);
    assert!(handle.stats().is_empty());
    let err = handle
        .try_spawn_on(1, || async {})
        .expect_err("runtime gone");
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    let task = handle.spawn_on(1, || async { 1 });
    assert!(tests::block_on_thread(task).unwrap_err().is_cancelled());
}

#[test]
fn a_waker_woken_on_a_foreign_thread_wakes_its_task_on_its_own_core() {
    let _serial = serial();
    let mut rt = cores(2);
    let (core_seen, stats) = rt.block_on(async {
        let task = runtime::spawn_on(1, || async {
            let woken = Arc::new(AtomicBool::new(false));
            let mut thread = None;
            let core = std::future::poll_fn(|cx| {
                if woken.load(Ordering::SeqCst) {
                    return Poll::Ready(runtime::core_id());
                }
                if thread.is_none() {
                    let (waker, woken) = (cx.waker().clone(), woken.clone());
                    thread = Some(std::thread::spawn(move || {
                        woken.store(true, Ordering::SeqCst);
                        waker.wake();
                    }));
                }
                Poll::Pending
            })
            .await;
            thread.unwrap().join().unwrap();
            (core, runtime::stats())
        });
        timeout(BOUND, task).await.unwrap().unwrap()
    });
    assert_eq!(core_seen, 1);
    assert!(
        stats.remote_wakes_received >= 1,
        "the wake came through core 1's inbox: {stats:?}"
    );
    // A thread that is not a core has no ring to send a MSG_RING from.
    assert!(
        stats.eventfd_wakes_received >= 1,
        "the wake came by core 1's eventfd: {stats:?}"
    );
}

#[test]
fn wakes_between_cores_work_with_and_without_msg_ring_and_with_spinning() {
    let _serial = serial();
    let probe = runtime::Probe::get().unwrap();
    // On the epoll backend a MSG_RING wake-up is an eventfd write: that is checked too.
    let kernel_has_msg_ring =
        probe.supports(io_uring::opcode::MsgRingData::CODE) && !tests::on_epoll();
    if !kernel_has_msg_ring {
        println!("no IORING_OP_MSG_RING (kernel or backend): every wake-up goes by eventfd");
    }
    let spin = Some(Duration::from_micros(50));
    for (msg_ring, spin) in [(true, None), (false, None), (true, spin)] {
        let mut rt = Builder::new()
            .cores(2)
            .pin(false)
            .msg_ring(msg_ring)
            .spin_before_park(spin)
            .build()
            .unwrap();
        let handle = rt.handle();
        let rounds = rt.block_on(async {
            let mut rounds = 0;
            for i in 0..1000u64 {
                // Each await parks core 0 until core 1's reply wakes it.
                let (tx, rx) = oneshot();
                runtime::spawn_on(1, move || async move {
                    runtime::yield_now().await;
                    tx.send(i * 2).unwrap();
                });
                assert_eq!(timeout(BOUND, rx).await.unwrap().unwrap(), i * 2);
                rounds += 1;
            }
            rounds
        });
        assert_eq!(rounds, 1000);
        let stats = handle.stats();
        let what = format!("msg_ring {msg_ring}, spin {spin:?}: {stats:#?}");
        assert_eq!(stats.len(), 2);
        assert!(stats[0].remote_wakes_sent >= 1000, "{what}");
        assert!(stats[1].remote_wakes_received >= 1000, "{what}");
        assert!(stats[1].remote_wakes_sent >= 1, "{what}");
        assert!(stats[1].tasks_spawned >= 1000, "{what}");
        for core in &stats {
            // One wake-up per batch of messages: never more wake-ups than messages.
            assert!(
                core.msg_ring_wakes_sent + core.eventfd_wakes_sent <= core.remote_wakes_sent,
                "{what}"
            );
            if msg_ring && kernel_has_msg_ring {
                // Every wake-up between the two cores is a ring message: an eventfd
                // write here would be a silent fall-back.
                assert!(core.msg_ring_wakes_sent >= 1, "{what}");
                assert_eq!(core.eventfd_wakes_sent, 0, "{what}");
                assert_eq!(core.eventfd_wakes_received, 0, "{what}");
            } else {
                assert_eq!(core.msg_ring_wakes_sent, 0, "{what}");
                assert!(core.eventfd_wakes_sent >= 1, "{what}");
                assert!(core.eventfd_wakes_received >= 1, "{what}");
            }
        }
        // Without spinning, core 1 parks between rounds, so (almost) every reply needs
        // a wake-up of core 0; and core 0 wakes core 1 for each job.
        if spin.is_none() {
            let woken_by_1 = stats[1].msg_ring_wakes_sent + stats[1].eventfd_wakes_sent;
            let woken_by_0 = stats[0].msg_ring_wakes_sent + stats[0].eventfd_wakes_sent;
            assert!(woken_by_1 >= 500 && woken_by_0 >= 500, "{what}");
        }
        // Only the cores sent eventfd wake-ups here, and each one landed on the other.
        assert_eq!(
            stats[0].eventfd_wakes_sent + stats[1].eventfd_wakes_sent,
            stats[0].eventfd_wakes_received + stats[1].eventfd_wakes_received,
            "{what}"
        );
    }
}

#[test]
fn a_panic_in_block_on_reaches_the_caller_and_the_runtime_stays_usable() {
    let _serial = serial();
    let mut rt = cores(2);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { panic!("main future failed") })
    }))
    .expect_err("the panic comes through");
    assert_eq!(panic_message(&*payload), "main future failed");
    let there = rt.block_on(async { runtime::spawn_on(1, || async { 7 }).await.unwrap() });
    assert_eq!(there, 7);
}

#[test]
fn a_panic_on_another_core_reaches_run_on_all_at_once() {
    let _serial = serial();
    let mut rt = cores(2);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        rt.run_on_all(|core| async move {
            if core == 1 {
                panic!("core 1 failed");
            }
            // Core 0 never finishes: the panic must not wait for it.
            std::future::pending::<()>().await
        })
    }))
    .expect_err("the panic comes through");
    assert_eq!(panic_message(&*payload), "core 1 failed");
}

#[test]
fn a_panicking_task_on_another_core_gives_a_panic_join_error() {
    let _serial = serial();
    let mut rt = cores(2);
    let err = rt.block_on(async {
        let task = runtime::spawn_on(1, || async { panic!("task failed") });
        timeout(BOUND, task).await.unwrap().unwrap_err()
    });
    assert!(err.is_panic());
    assert_eq!(panic_message(&*err.into_panic()), "task failed");
}

#[test]
fn abort_stops_a_task_on_another_core_and_drops_its_future_first() {
    let _serial = serial();
    let mut rt = cores(2);
    rt.block_on(async {
        let dropped = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = oneshot();
        let flag = DropFlag(dropped.clone());
        let task = runtime::spawn_on(1, move || async move {
            let _flag = flag;
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await
        });
        timeout(BOUND, started_rx).await.unwrap().unwrap();
        task.abort();
        let err = timeout(BOUND, task).await.unwrap().unwrap_err();
        assert!(err.is_cancelled());
        assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    });
}

/// Starts reads that never complete, one per core, each in a task of that core.
fn pending_reads(rt: &mut runtime::Runtime) -> Vec<std::os::fd::OwnedFd> {
    let n = rt.handle().core_count();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..n {
        let (r, w) = tests::pipe();
        readers.push(Mutex::new(Some(r)));
        writers.push(w);
    }
    let readers = Arc::new(readers);
    let started = Arc::new(AtomicUsize::new(0));
    let started_seen = started.clone();
    rt.block_on(async move {
        let mut ready = Vec::new();
        for core in 0..n {
            let (readers, started) = (readers.clone(), started.clone());
            let (tx, rx) = oneshot();
            ready.push(rx);
            runtime::spawn_on(core, move || async move {
                let fd = readers[core].lock().unwrap().take().unwrap();
                let file = runtime::fs::File::from_std(std::fs::File::from(fd));
                let read = file.read_at(vec![0u8; 64], 0);
                let mut read = std::pin::pin!(read);
                // Poll once so the read is queued, then say so and wait forever.
                let _ = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
                started.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
                read.await
            });
        }
        for rx in ready {
            timeout(BOUND, rx).await.unwrap().unwrap();
        }
    });
    assert_eq!(started_seen.load(Ordering::SeqCst), n);
    writers
}

#[test]
fn shutdown_with_a_pending_read_on_every_core_is_prompt_and_leaks_no_fd() {
    let _serial = serial();
    let before = tests::open_fds();
    let mut rt = cores(4);
    let writers = pending_reads(&mut rt);
    let start = Instant::now();
    rt.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        start.elapsed()
    );
    drop(writers);
    assert_eq!(
        tests::open_fds(),
        before,
        "every ring, eventfd and file is closed"
    );
}

#[test]
fn many_runtimes_in_a_row_leak_no_fd() {
    let _serial = serial();
    let before = tests::open_fds();
    for _ in 0..20 {
        let mut rt = cores(3);
        let sum: usize = rt.run_on_all(|core| async move { core }).into_iter().sum();
        assert_eq!(sum, 3);
    }
    assert_eq!(tests::open_fds(), before);
}

#[test]
fn tasks_spawned_on_a_stopped_runtime_report_cancellation() {
    let _serial = serial();
    let mut rt = cores(2);
    let handle = rt.handle();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // A task on core 1 that spawns back onto core 0 while the runtime shuts down.
    rt.block_on(async move {
        runtime::spawn_on(1, move || async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
    });
    drop(rt);
    assert!(
        rx.recv().is_err(),
        "core 1's task was dropped, not completed"
    );
    let late = handle.spawn_on(0, || async { 1 });
    assert!(tests::block_on_thread(late).unwrap_err().is_cancelled());
}

#[test]
fn a_million_messages_cross_cores_without_loss_or_duplicate() {
    const PER_SENDER: u64 = 250_000;
    let _serial = serial();
    let mut rt = cores(2);
    // Four senders into one receiver on core 1: a task on core 0, a task on core 1,
    // a bounded sender on a plain thread, and an unbounded sender on core 0.
    let (tx, mut rx) = runtime::channel::mpsc::channel::<(usize, u64)>(1024);
    let (utx, mut urx) = runtime::channel::mpsc::unbounded::<u64>();
    let receiver = rt.handle().spawn_on(1, move || async move {
        let mut next = [0u64; 3];
        let mut unbounded_next = 0u64;
        let mut bounded_open = true;
        let mut unbounded_open = true;
        while bounded_open || unbounded_open {
            if bounded_open {
                match rx.try_recv() {
                    Ok((sender, seq)) => {
                        assert_eq!(seq, next[sender], "sender {sender}: lost or duplicated");
                        next[sender] += 1;
                        continue;
                    }
                    Err(runtime::channel::mpsc::TryRecvError::Disconnected) => {
                        bounded_open = false;
                        continue;
                    }
                    Err(runtime::channel::mpsc::TryRecvError::Empty) => {}
                }
            }
            if unbounded_open {
                match urx.try_recv() {
                    Ok(seq) => {
                        assert_eq!(seq, unbounded_next, "unbounded: lost or duplicated");
                        unbounded_next += 1;
                        continue;
                    }
                    Err(runtime::channel::mpsc::TryRecvError::Disconnected) => {
                        unbounded_open = false;
                        continue;
                    }
                    Err(runtime::channel::mpsc::TryRecvError::Empty) => {}
                }
            }
            // Both empty: wait on whichever is still open (no spinning).
            if bounded_open {
                match rx.recv().await {
                    Some((sender, seq)) => {
                        assert_eq!(seq, next[sender], "sender {sender}: lost or duplicated");
                        next[sender] += 1;
                    }
                    None => bounded_open = false,
                }
            } else if let Some(seq) = urx.recv().await {
                assert_eq!(seq, unbounded_next, "unbounded: lost or duplicated");
                unbounded_next += 1;
            } else {
                unbounded_open = false;
            }
        }
        (next, unbounded_next)
    });
    let thread_tx = tx.clone();
    let thread = std::thread::spawn(move || {
        tests::block_on_thread(async move {
            for seq in 0..PER_SENDER {
                thread_tx.send((2, seq)).await.unwrap();
            }
        })
    });
    let (counts, unbounded) = rt.block_on(async move {
        let tx1 = tx.clone();
        let on_core_1 = runtime::spawn_on(1, move || async move {
            for seq in 0..PER_SENDER {
                tx1.send((1, seq)).await.unwrap();
            }
        });
        for seq in 0..PER_SENDER {
            tx.send((0, seq)).await.unwrap();
            utx.send(seq).unwrap();
        }
        drop((tx, utx));
        on_core_1.await.unwrap();
        timeout(Duration::from_secs(60), receiver)
            .await
            .unwrap()
            .unwrap()
    });
    thread.join().unwrap();
    assert_eq!(counts, [PER_SENDER; 3]);
    assert_eq!(unbounded, PER_SENDER);
}
