//! Dropping an operation mid-flight: its buffer lives until the kernel's final CQE,
//! no data is lost to a cancelled read, and no fd leaks.

use std::cell::Cell;
use std::future::Future as _;
use std::rc::Rc;
use std::sync::Mutex;

use runtime::fs::File;
use tests::{open_fds, pipe, poll_once, rt, TrackedBuf};

/// fd counts are per process: tests that count them do not run side by side.
static FDS: Mutex<()> = Mutex::new(());

#[test]
fn a_dropped_read_frees_its_buffer_only_after_its_cqe() {
    if tests::ring_only("the ring holds a dropped read's buffer until its CQE") {
        return;
    }
    let _serial = FDS.lock().unwrap();
    rt().block_on(async {
        let (rx, tx) = pipe();
        let rx = File::from_std(rx);
        let tx = File::from_std(tx);
        // When the buffer is dropped, note how many ops had completed by then.
        let completed_at_drop = Rc::new(Cell::new(None));
        let seen = completed_at_drop.clone();
        let buf = TrackedBuf::new(64, move || seen.set(Some(runtime::stats().ops_completed)));

        let read = Box::pin(rx.read_at(buf, 0));
        let (out, read) = poll_once(read).await;
        assert!(out.is_none(), "an empty pipe has nothing to read");
        // A turn of the ring hands the read to the kernel (dropped before, it would be
        // withdrawn unrun: tests/cancel_unsubmitted.rs).
        runtime::yield_now().await;
        let completed_before = runtime::stats().ops_completed;
        drop(read);
        assert_eq!(
            completed_at_drop.get(),
            None,
            "the buffer must outlive the dropped future while the read is in flight"
        );
        // The cancel's CQE arrives at a later turn of the ring.
        for _ in 0..1000 {
            if completed_at_drop.get().is_some() {
                break;
            }
            runtime::yield_now().await;
        }
        let at_drop = completed_at_drop
            .get()
            .expect("the buffer is freed after the CQE");
        assert_eq!(
            at_drop,
            completed_before + 1,
            "freed right after the read's CQE was reaped, not before"
        );

        // The cancelled read took nothing: what is written next is read whole.
        let (n, _) = tx.write_at(b"hello".as_slice(), 0).await;
        assert_eq!(n.unwrap(), 5);
        let (n, buf) = rx.read_at(Vec::with_capacity(16), 0).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf, b"hello");
    });
}

#[test]
fn a_read_dropped_after_completing_frees_at_once() {
    let _serial = FDS.lock().unwrap();
    rt().block_on(async {
        let (rx, tx) = pipe();
        let rx = File::from_std(rx);
        let tx = File::from_std(tx);
        let freed = Rc::new(Cell::new(false));
        let f = freed.clone();
        let read = Box::pin(rx.read_at(TrackedBuf::new(8, move || f.set(true)), 0));
        let (out, read) = poll_once(read).await;
        assert!(out.is_none());
        tx.write_at(b"x".as_slice(), 0).await.0.unwrap();
        // Let the read's CQE be reaped without polling the read again.
        runtime::nop().await.unwrap();
        runtime::yield_now().await;
        assert!(!freed.get());
        drop(read);
        assert!(
            freed.get(),
            "a completed op's buffer is freed when its future drops"
        );
    });
}

#[test]
fn dropping_files_and_cancelled_ops_leaks_no_fd() {
    let _serial = FDS.lock().unwrap();
    let mut rt = rt();
    let before = open_fds();
    rt.block_on(async {
        for _ in 0..200 {
            let (rx, tx) = pipe();
            let rx = File::from_std(rx);
            let _tx = File::from_std(tx);
            // Dropped before its submission (withdrawn) and after it (cancelled).
            let read = Box::pin(rx.read_at(vec![0u8; 0].into_boxed_slice(), 0));
            let (_, read) = poll_once(read).await;
            drop(read);
            let read = Box::pin(rx.read_at(Vec::with_capacity(4), 0));
            let (_, read) = poll_once(read).await;
            runtime::yield_now().await;
            drop(read);
        }
        // Closing goes through the ring: let those ops complete.
        for _ in 0..10 {
            runtime::nop().await.unwrap();
        }
    });
    assert_eq!(open_fds(), before, "every pipe end was closed");
    drop(rt);
}

#[test]
fn file_close_reports_the_kernels_answer() {
    let _serial = FDS.lock().unwrap();
    rt().block_on(async {
        let before = open_fds();
        let (rx, tx) = pipe();
        File::from_std(rx).close().await.unwrap();
        File::from_std(tx).close().await.unwrap();
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn an_op_outside_a_runtime_is_an_error_not_a_panic() {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut nop = runtime::nop();
    match std::future::Future::poll(std::pin::Pin::new(&mut nop), &mut cx) {
        std::task::Poll::Ready(Err(e)) => assert!(e.to_string().contains("no runtime")),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A waker whose last clone, when dropped, drops an in-flight op, as a foreign
/// executor's last waker may drop the task (and the op futures) it owns.
fn waker_owning(op: std::pin::Pin<Box<runtime::Nop>>) -> std::task::Waker {
    use std::rc::Rc;
    use std::task::{RawWaker, RawWakerVTable, Waker};
    type Owned = std::pin::Pin<Box<runtime::Nop>>;
    fn clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` is a live Rc<Owned> pointer (from Rc::into_raw below).
        unsafe { Rc::increment_strong_count(data as *const Owned) };
        RawWaker::new(data, &VTABLE)
    }
    fn noop(_: *const ()) {}
    fn drop_ref(data: *const ()) {
        // SAFETY: each waker holds one strong count of the Rc, given back once here.
        drop(unsafe { Rc::from_raw(data as *const Owned) });
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, drop_ref);
    let data = Rc::into_raw(Rc::new(op)) as *const ();
    // SAFETY: the vtable counts references with the Rc and frees the op with the last
    // one. The Rc is not atomic, so this waker must stay on this thread: it does.
    unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
}

#[test]
fn a_waker_dropped_by_the_driver_may_drop_ops() {
    let _serial = FDS.lock().unwrap();
    rt().block_on(async {
        // An op parked in a waker, in flight.
        let mut inner = Box::pin(runtime::nop());
        std::future::poll_fn(|cx| {
            assert!(inner.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        let owning = waker_owning(inner);
        // Register that waker for another op, then replace it: the driver drops it,
        // which drops the in-flight op and so calls back into the driver.
        let mut outer = Box::pin(runtime::nop());
        let mut cx = std::task::Context::from_waker(&owning);
        assert!(outer.as_mut().poll(&mut cx).is_pending());
        drop(owning); // the driver's copy is now the last one
        let res = std::future::poll_fn(|cx| outer.as_mut().poll(cx)).await;
        res.unwrap();
        runtime::nop().await.unwrap(); // the abandoned op's CQE is reaped cleanly
    });
}
