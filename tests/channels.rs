//! Channels: values arrive once and in order, bounded senders wait their turn and
//! never strand a slot, and the end of either side is seen by the other, across
//! threads.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use runtime::channel::mpsc::{self, SendError, TryRecvError, TrySendError};
use runtime::channel::{oneshot, oneshot::RecvError};
use runtime::time::timeout;
use tests::{block_on_thread, poll_once, thread_waker};

const BOUND: Duration = Duration::from_secs(20);

/// A value that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Yields until `flag` is set by another task of this core.
async fn until(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        runtime::yield_now().await;
    }
}

#[test]
fn values_from_one_sender_arrive_in_order() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(8);
        let producer = runtime::spawn(async move {
            for i in 0..1_000 {
                tx.send(i).await.unwrap();
            }
        });
        let mut expected = 0;
        while let Some(i) = timeout(BOUND, rx.recv()).await.expect("a value or the end") {
            assert_eq!(i, expected);
            expected += 1;
        }
        assert_eq!(expected, 1_000);
        producer.await.unwrap();

        let (tx, mut rx) = mpsc::unbounded();
        for i in 0..1_000 {
            tx.send(i).unwrap();
        }
        drop(tx);
        for i in 0..1_000 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(rx.recv().await, None);
    });
}

/// Checks that every `(sender, seq)` pair came exactly once, and each sender's in order.
fn check_all_once(received: &[(usize, u32)], senders: usize, per_sender: u32) {
    assert_eq!(received.len(), senders * per_sender as usize);
    let mut next = vec![0; senders];
    let mut seen = HashSet::with_capacity(received.len());
    for &(sender, seq) in received {
        assert!(seen.insert((sender, seq)), "({sender}, {seq}) came twice");
        assert_eq!(seq, next[sender], "sender {sender} out of order");
        next[sender] += 1;
    }
    assert!(next.iter().all(|&n| n == per_sender));
}

/// Has `threads` plain threads each hand `per_thread` numbered values to `send` on a
/// clone of `tx`, receives them all on a one-core runtime (each receive bounded, with
/// `expect` as the failure), and checks every value came once and in order.
fn fan_in<S: Clone + Send + 'static>(
    (tx, mut rx): (S, mpsc::Receiver<(usize, u32)>),
    threads: usize,
    per_thread: u32,
    send: fn(&S, (usize, u32)),
    expect: &str,
) {
    tests::rt().block_on(async {
        let handles: Vec<_> = (0..threads)
            .map(|sender| {
                let tx = tx.clone();
                thread::spawn(move || {
                    for seq in 0..per_thread {
                        send(&tx, (sender, seq));
                    }
                })
            })
            .collect();
        drop(tx);
        let mut received = Vec::new();
        while let Some(pair) = timeout(BOUND, rx.recv()).await.expect(expect) {
            received.push(pair);
        }
        check_all_once(&received, threads, per_thread);
        handles.into_iter().for_each(|t| t.join().unwrap());
    });
}

#[test]
fn four_threads_send_100k_values_each_to_one_receiver_without_loss_or_duplicate() {
    fan_in(
        mpsc::unbounded(),
        4,
        100_000,
        |tx, value| tx.send(value).unwrap(),
        "a value or the end",
    );
}

#[test]
fn four_threads_waiting_on_a_small_bounded_channel_lose_nothing() {
    fan_in(
        mpsc::channel(16),
        4,
        100_000,
        |tx, value| block_on_thread(tx.send(value)).unwrap(),
        "a value or the end",
    );
}

/// Sends `value`, but first starts a send, waits for its wake and drops it, whatever
/// the wake was for: a slot granted to the dropped send must go on to another.
fn send_after_a_cancelled_try(tx: &mpsc::Sender<(usize, u32)>, value: (usize, u32)) {
    let waker = thread_waker();
    let mut first = tx.send(value);
    if let Poll::Ready(result) = Pin::new(&mut first).poll(&mut Context::from_waker(&waker)) {
        return result.unwrap();
    }
    thread::park();
    drop(first);
    block_on_thread(tx.send(value)).unwrap();
}

#[test]
fn sends_cancelled_after_their_wake_strand_no_slot_across_threads() {
    fan_in(
        mpsc::channel(2),
        4,
        20_000,
        send_after_a_cancelled_try,
        "no slot stranded",
    );
}

#[test]
fn a_bounded_channel_carries_values_between_cores_in_both_directions() {
    const VALUES: u32 = 50_000;
    let mut rt = runtime::Builder::new()
        .cores(2)
        .pin(false)
        .build()
        .expect("the runtime starts");
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(8);
        let (back_tx, mut back_rx) = mpsc::channel(8);
        // Core 1 echoes every value back, waiting on both channels in turn.
        let echo = runtime::spawn_on(1, move || async move {
            assert_eq!(runtime::core_id(), 1);
            while let Some(v) = rx.recv().await {
                back_tx.send(v).await.unwrap();
            }
        });
        let producer = runtime::spawn(async move {
            for v in 0..VALUES {
                tx.send(v).await.unwrap();
            }
        });
        for v in 0..VALUES {
            let got = timeout(BOUND, back_rx.recv()).await.expect("echoed");
            assert_eq!(got, Some(v));
        }
        producer.await.unwrap();
        timeout(BOUND, echo).await.expect("the echo ends").unwrap();
        assert_eq!(back_rx.recv().await, None);

        let (tx, rx) = oneshot();
        runtime::spawn_on(
            1,
            move || async move { tx.send(runtime::core_id()).unwrap() },
        );
        assert_eq!(timeout(BOUND, rx).await.expect("woken"), Ok(1));
    });
}

#[test]
fn a_full_channel_refuses_try_send_and_makes_send_wait_for_a_slot() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(4);
        assert_eq!(tx.max_capacity(), 4);
        for i in 0..4 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(tx.capacity(), 0);
        match tx.try_send(4) {
            Err(TrySendError::Full(4)) => {}
            other => panic!("expected Full(4), got {other:?}"),
        }

        let (done, send) = poll_once(tx.send(4)).await;
        assert!(done.is_none(), "the send waits while the channel is full");
        assert_eq!(rx.recv().await, Some(0));
        timeout(BOUND, send)
            .await
            .expect("the slot went to the send")
            .unwrap();
        for i in 1..5 {
            assert_eq!(rx.try_recv(), Ok(i));
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(tx.capacity(), 4);
    });
}

#[test]
fn a_send_waiting_in_another_task_completes_once_the_receiver_takes_a_value() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(1);
        tx.send(0).await.unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let sender = runtime::spawn(async move {
            s.store(true, Ordering::SeqCst);
            tx.send(1).await
        });
        until(&started).await;
        assert!(!sender.is_finished());
        assert_eq!(rx.recv().await, Some(0));
        timeout(BOUND, sender)
            .await
            .expect("woken")
            .unwrap()
            .unwrap();
        assert_eq!(rx.recv().await, Some(1));
    });
}

#[test]
fn waiting_senders_are_served_in_arrival_order_and_not_overtaken() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send('0').unwrap();
        let (a, send_a) = poll_once(tx.send('a')).await;
        let (b, send_b) = poll_once(tx.send('b')).await;
        let (c, send_c) = poll_once(tx.send('c')).await;
        assert!(a.is_none() && b.is_none() && c.is_none());

        assert_eq!(rx.recv().await, Some('0'));
        // The freed slot belongs to 'a': neither a newcomer nor 'b' may take it.
        assert!(matches!(tx.try_send('x'), Err(TrySendError::Full('x'))));
        let (b, send_b) = poll_once(send_b).await;
        assert!(b.is_none(), "'b' must not overtake 'a'");
        let (late, late_send) = poll_once(tx.send('z')).await;
        assert!(
            late.is_none(),
            "a new send must queue behind the waiting ones"
        );

        timeout(BOUND, send_a)
            .await
            .expect("'a' got the slot")
            .unwrap();
        assert_eq!(rx.recv().await, Some('a'));
        timeout(BOUND, send_b)
            .await
            .expect("'b' got the slot")
            .unwrap();
        assert_eq!(rx.recv().await, Some('b'));
        timeout(BOUND, send_c)
            .await
            .expect("'c' got the slot")
            .unwrap();
        assert_eq!(rx.recv().await, Some('c'));
        timeout(BOUND, late_send)
            .await
            .expect("'z' got the slot")
            .unwrap();
        assert_eq!(rx.recv().await, Some('z'));
    });
}

#[test]
fn a_cancelled_send_hands_its_slot_to_the_next_waiting_task() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(1);
        let tx = Rc::new(tx);
        tx.send(0).await.unwrap();
        // 'a' waits first, polled by this task.
        let (a, send_a) = poll_once(tx.send(1)).await;
        assert!(a.is_none());
        // 'b' waits in a task of its own, which runs only when woken.
        let started = Arc::new(AtomicBool::new(false));
        let (s, tx2) = (started.clone(), tx.clone());
        let b = runtime::spawn(async move {
            s.store(true, Ordering::SeqCst);
            tx2.send(2).await
        });
        until(&started).await;

        assert_eq!(rx.recv().await, Some(0)); // the slot is granted to 'a' ...
        drop(send_a); // ... which gives up: the grant and its wake go on to 'b'.
        timeout(BOUND, b)
            .await
            .expect("the slot was not stranded")
            .unwrap()
            .unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn a_cancelled_send_without_a_successor_frees_its_slot() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(0).unwrap();
        let (a, send_a) = poll_once(tx.send(1)).await;
        let (b, send_b) = poll_once(tx.send(2)).await;
        assert!(a.is_none() && b.is_none());
        drop(send_b); // not granted yet: frees nothing, and is skipped later
        assert_eq!(rx.recv().await, Some(0));
        drop(send_a); // granted: the slot is free again
        assert_eq!(tx.capacity(), 1);
        tx.try_send(3).unwrap();
        assert_eq!(rx.recv().await, Some(3));
    });
}

#[test]
fn a_dropped_receiver_fails_later_sends_with_the_value_and_drops_what_was_queued() {
    tests::rt().block_on(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel(8);
        let (utx, urx) = mpsc::unbounded();
        for _ in 0..3 {
            tx.try_send(Counted(drops.clone())).unwrap();
            utx.send(Counted(drops.clone())).unwrap();
        }
        assert!(!tx.is_closed() && !utx.is_closed());
        drop(rx);
        drop(urx);
        assert_eq!(drops.load(Ordering::SeqCst), 6, "queued values are dropped");
        assert!(tx.is_closed() && utx.is_closed());

        let marker = Arc::new(AtomicUsize::new(100));
        match tx.send(Counted(marker.clone())).await {
            Err(SendError(value)) => assert!(Arc::ptr_eq(&value.0, &marker)),
            Ok(()) => panic!("sent to a dropped receiver"),
        }
        match tx.try_send(Counted(marker.clone())) {
            Err(TrySendError::Closed(value)) => assert!(Arc::ptr_eq(&value.0, &marker)),
            other => panic!(
                "expected Closed, got {:?}",
                other.map_err(|e| e.to_string())
            ),
        }
        let value = utx.send(Counted(marker.clone())).unwrap_err().into_inner();
        assert!(Arc::ptr_eq(&value.0, &marker));
        drop(value);
        assert_eq!(drops.load(Ordering::SeqCst), 6);
    });
}

#[test]
fn a_waiting_send_fails_when_the_receiver_is_dropped() {
    tests::rt().block_on(async {
        let (tx, rx) = mpsc::channel(1);
        tx.send(0).await.unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let sender = runtime::spawn(async move {
            s.store(true, Ordering::SeqCst);
            tx.send(1).await
        });
        until(&started).await;
        let dropper = thread::spawn(move || drop(rx));
        let result = timeout(BOUND, sender).await.expect("woken").unwrap();
        assert_eq!(result, Err(SendError(1)));
        dropper.join().unwrap();
    });
}

#[test]
fn when_every_sender_is_gone_the_receiver_drains_then_ends() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(4);
        let tx2 = tx.clone();
        tx.send(1).await.unwrap();
        tx2.send(2).await.unwrap();
        drop(tx);
        drop(tx2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv().await, None, "the end stays the end");
    });
}

#[test]
fn a_waiting_receiver_is_woken_when_the_last_sender_drops_on_another_thread() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::unbounded::<u32>();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let receiver = runtime::spawn(async move {
            s.store(true, Ordering::SeqCst);
            rx.recv().await
        });
        until(&started).await;
        let tx2 = tx.clone();
        drop(tx);
        let dropper = thread::spawn(move || drop(tx2));
        let got = timeout(BOUND, receiver).await.expect("woken").unwrap();
        assert_eq!(got, None);
        dropper.join().unwrap();
    });
}

#[test]
fn close_fails_sends_but_keeps_queued_values() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::channel(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let (waiting, send) = poll_once(tx.send(3)).await;
        assert!(waiting.is_none());

        rx.close();
        assert!(tx.is_closed());
        let result = timeout(BOUND, send)
            .await
            .expect("the waiting send is woken");
        assert_eq!(result, Err(SendError(3)));
        assert!(matches!(tx.try_send(4), Err(TrySendError::Closed(4))));
        assert_eq!(tx.send(5).await, Err(SendError(5)));

        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(
            rx.recv().await,
            None,
            "senders live on, but the channel is closed"
        );

        let (utx, mut urx) = mpsc::unbounded();
        utx.send('a').unwrap();
        urx.close();
        assert_eq!(utx.send('b'), Err(SendError('b')));
        assert_eq!(urx.try_recv(), Ok('a'));
        assert_eq!(urx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn unbounded_sends_never_wait_and_try_recv_reports_empty_then_disconnected() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::unbounded();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        for i in 0..10_000 {
            tx.send(i).unwrap();
        }
        for i in 0..5_000 {
            assert_eq!(rx.try_recv(), Ok(i));
        }
        // Sends that land while the receiver works through a batch come after it.
        tx.send(10_000).unwrap();
        for i in 5_000..=10_000 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn poll_recv_registers_the_task_and_is_woken_by_a_send_from_another_thread() {
    tests::rt().block_on(async {
        let (tx, mut rx) = mpsc::unbounded();
        let mut polls = 0;
        let mut sender = Some(tx);
        let got = timeout(
            BOUND,
            std::future::poll_fn(|cx| {
                polls += 1;
                let poll = rx.poll_recv(cx);
                if let Some(tx) = sender.take() {
                    assert!(poll.is_pending());
                    thread::spawn(move || tx.send("from afar").unwrap());
                }
                poll
            }),
        )
        .await
        .expect("woken");
        assert_eq!(got, Some("from afar"));
        assert!(polls >= 2);
    });
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn a_bounded_channel_of_capacity_zero_is_refused() {
    let _ = mpsc::channel::<u8>(0);
}

#[test]
fn oneshot_delivers_one_value_across_threads() {
    tests::rt().block_on(async {
        let (tx, rx) = runtime::channel::oneshot();
        assert!(!tx.is_closed());
        let sender = thread::spawn(move || tx.send(vec![1, 2, 3]));
        let got = timeout(BOUND, rx).await.expect("woken");
        assert_eq!(got, Ok(vec![1, 2, 3]));
        sender.join().unwrap().unwrap();
    });
}

#[test]
fn oneshot_receiver_fails_when_the_sender_is_dropped_without_sending() {
    tests::rt().block_on(async {
        let (tx, rx) = runtime::channel::oneshot::<u8>();
        let (waiting, rx) = poll_once(rx).await;
        assert!(waiting.is_none());
        let dropper = thread::spawn(move || drop(tx));
        let result = timeout(BOUND, rx).await.expect("woken");
        let _: RecvError = result.expect_err("no value was sent");
        dropper.join().unwrap();
    });
}

#[test]
fn oneshot_send_to_a_dropped_or_closed_receiver_returns_the_value() {
    let (tx, rx) = runtime::channel::oneshot();
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send("unwanted"), Err("unwanted"));

    let (tx, mut rx) = runtime::channel::oneshot();
    rx.close();
    assert!(tx.is_closed());
    assert_eq!(tx.send(5), Err(5));
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Disconnected));

    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = runtime::channel::oneshot();
    assert!(tx.send(Counted(drops.clone())).is_ok());
    drop(rx);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "an unreceived value is dropped"
    );
}

#[test]
fn oneshot_try_recv_reports_empty_then_the_value() {
    let (tx, mut rx) = runtime::channel::oneshot();
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Empty));
    tx.send('v').unwrap();
    assert_eq!(rx.try_recv(), Ok('v'));
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Disconnected));
}

#[test]
fn errors_convert_to_io_errors_and_print_without_the_value() {
    struct Opaque;
    let err = SendError(Opaque);
    assert_eq!(format!("{err:?}"), "SendError(..)");
    assert!(!err.to_string().is_empty());
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);

    let full: std::io::Error = TrySendError::Full(Opaque).into();
    assert_eq!(full.kind(), std::io::ErrorKind::WouldBlock);
    let closed: std::io::Error = TrySendError::Closed(Opaque).into();
    assert_eq!(closed.kind(), std::io::ErrorKind::BrokenPipe);
    let empty: std::io::Error = TryRecvError::Empty.into();
    assert_eq!(empty.kind(), std::io::ErrorKind::WouldBlock);

    let (tx, rx) = runtime::channel::oneshot::<u8>();
    drop(tx);
    let err = tests::rt().block_on(rx).unwrap_err();
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);

    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<SendError<u8>>();
    is_error::<TrySendError<u8>>();
    is_error::<TryRecvError>();
    is_error::<RecvError>();
    is_error::<oneshot::TryRecvError>();
}

#[test]
fn endpoints_can_cross_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    fn clone<T: Clone>() {}
    send::<mpsc::Sender<String>>();
    sync::<mpsc::Sender<String>>();
    clone::<mpsc::Sender<String>>();
    send::<mpsc::UnboundedSender<String>>();
    sync::<mpsc::UnboundedSender<String>>();
    clone::<mpsc::UnboundedSender<String>>();
    send::<mpsc::Receiver<String>>();
    send::<mpsc::SendFuture<'static, String>>();
    send::<mpsc::Recv<'static, String>>();
    send::<oneshot::Sender<String>>();
    send::<oneshot::Receiver<String>>();
}

/// CPU time this thread has used so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_bounded_receiver_spins_only_briefly_then_sleeps_through_a_long_wait() {
    const GAP: Duration = Duration::from_millis(300);
    let mut rt = runtime::Builder::new().cores(2).build().unwrap();
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel::<u32>(4);
        let (gap_tx, gap_rx) = oneshot();
        let sender = runtime::spawn_on(1, move || async move {
            // Values close together (the receiver spins between them), then a gap
            // that starts once the receiver has them all.
            for i in 0..1_000 {
                tx.send(i).await.unwrap();
            }
            gap_rx.await.unwrap();
            runtime::time::sleep(GAP).await;
            tx.send(1_000).await.unwrap();
        });
        for i in 0..1_000 {
            assert_eq!(timeout(BOUND, rx.recv()).await.unwrap(), Some(i));
        }
        let (cpu, wall) = (thread_cpu_time(), std::time::Instant::now());
        gap_tx.send(()).unwrap();
        assert_eq!(timeout(BOUND, rx.recv()).await.unwrap(), Some(1_000));
        let (cpu, wall) = (thread_cpu_time() - cpu, wall.elapsed());
        assert!(wall >= GAP, "the value came after the gap ({wall:?})");
        assert!(
            cpu < GAP / 10,
            "the receiver's core used {cpu:?} of CPU over a {wall:?} wait: it spun"
        );
        sender.await.unwrap();
    });
}

#[test]
fn bounded_channels_of_any_capacity_keep_order_over_many_laps_across_cores() {
    for cap in [1, 3, 5, 64, 100] {
        let mut rt = runtime::Builder::new().cores(2).build().unwrap();
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel::<u64>(cap);
            let sender = runtime::spawn_on(1, move || async move {
                for i in 0..20_000u64 {
                    tx.send(i).await.unwrap();
                }
            });
            let mut next = 0;
            while let Some(i) = timeout(BOUND, rx.recv()).await.expect("a value or the end") {
                assert_eq!(i, next, "capacity {cap}");
                next += 1;
            }
            assert_eq!(next, 20_000, "capacity {cap}");
            sender.await.unwrap();
        });
    }
}
