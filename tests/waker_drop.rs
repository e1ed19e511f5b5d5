//! A waker is foreign code: dropping one may run anything, including dropping another
//! operation of the same core. The runtime never drops a waker while it is in the
//! middle of its own bookkeeping, so such a drop neither panics ("already borrowed")
//! nor aborts, for single-shot ops, multishot ops, timers and streams, whether the op
//! had reached the kernel or not.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use runtime::fs::File;
use runtime::net::{TcpListener, TcpStream};
use tests::{next, pipe, rt, within, TrackedBuf};

thread_local! {
    /// What the next drop of a cloned foreign waker drops (on this thread).
    static VICTIM: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// How many victims such drops have dropped.
    static DROPPED: Cell<usize> = const { Cell::new(0) };
}

/// A waker whose clones, when dropped, drop the current [`VICTIM`]. The data pointer
/// only says whether it is the original (null) or a clone; it is thread-safe as a
/// waker must be, and only touches thread-local state of the thread that drops it.
fn foreign_waker() -> Waker {
    const ORIGINAL: *const () = std::ptr::null();
    const CLONE: *const () = std::ptr::dangling();
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(CLONE, &VTABLE)
    }
    fn wake(data: *const ()) {
        drop_waker(data);
    }
    fn wake_by_ref(_: *const ()) {}
    fn drop_waker(data: *const ()) {
        if data == CLONE {
            let victim = VICTIM.with(|v| v.borrow_mut().take());
            if victim.is_some() {
                drop(victim);
                DROPPED.with(|d| d.set(d.get() + 1));
            }
        }
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);
    // SAFETY: the vtable functions ignore the data pointer but for comparing it, so
    // any value is valid, on any thread.
    unsafe { Waker::from_raw(RawWaker::new(ORIGINAL, &VTABLE)) }
}

/// Polls `future` once with the foreign waker.
fn poll_foreign<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = foreign_waker();
    Pin::new(future).poll(&mut Context::from_waker(&waker))
}

/// An op in flight on a pipe nobody writes, that frees its buffer (and says so) only
/// after its CQE; and the pipe's write end, to keep it open.
fn victim_read(freed: &Rc<Cell<bool>>) -> (impl Future + Unpin, File, File) {
    let (rx, tx) = pipe();
    let rx = File::from_std(rx);
    let flag = freed.clone();
    let buf = TrackedBuf::new(16, move || flag.set(true));
    // Reads at the file position of a pipe: the borrow is of `rx`, kept alive by the
    // caller, so the future owns a clone of the fd's file only through the op.
    let rx2 = rx.try_clone_std_for_test();
    let read = Box::pin(async move { rx2.read_at(buf, 0).await });
    (read, rx, File::from_std(tx))
}

/// Makes `future` (a victim op) reach the kernel, then arms it as the victim.
async fn arm_victim(mut future: impl Future + Unpin + 'static) {
    let waker = futures_noop();
    assert!(Pin::new(&mut future)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    // One turn of the ring submits it.
    runtime::yield_now().await;
    VICTIM.with(|v| *v.borrow_mut() = Some(Box::new(future)));
}

fn futures_noop() -> Waker {
    Waker::noop().clone()
}

/// Waits until `freed` is set (the victim's buffer went after its CQE), bounded.
async fn until(what: &str, freed: &Rc<Cell<bool>>) {
    within(what, async {
        while !freed.get() {
            runtime::nop().await.unwrap();
            runtime::yield_now().await;
        }
    })
    .await;
}

fn dropped() -> usize {
    DROPPED.with(Cell::get)
}

trait TryCloneForTest {
    fn try_clone_std_for_test(&self) -> File;
}

impl TryCloneForTest for File {
    fn try_clone_std_for_test(&self) -> File {
        use std::os::fd::AsFd;
        File::from_std(self.as_fd().try_clone_to_owned().unwrap())
    }
}

#[test]
fn dropping_an_op_whose_waker_drops_another_op() {
    rt().block_on(async {
        for submitted in [false, true] {
            let freed = Rc::new(Cell::new(false));
            let (victim, _rx, _tx) = victim_read(&freed);
            arm_victim(victim).await;
            let before = dropped();

            let (rx, _tx2) = pipe();
            let rx = File::from_std(rx);
            let mut target = Box::pin(rx.read_at(vec![0u8; 8], 0));
            assert!(poll_foreign(&mut target).is_pending());
            if submitted {
                runtime::yield_now().await;
            }
            // The op's slot held the foreign waker's clone: dropping the op drops it.
            drop(target);
            assert_eq!(
                dropped(),
                before + 1,
                "the waker's drop ran (submitted: {submitted})"
            );
            until("the victim's buffer is freed after its CQE", &freed).await;
        }
    });
}

#[test]
fn re_polling_an_op_with_another_waker_drops_the_foreign_one_safely() {
    rt().block_on(async {
        let freed = Rc::new(Cell::new(false));
        let (victim, _rx, _tx) = victim_read(&freed);
        arm_victim(victim).await;
        let before = dropped();
        let (rx, tx) = pipe();
        let rx = File::from_std(rx);
        let tx = File::from_std(tx);
        let mut target = Box::pin(rx.read_at(vec![0u8; 8], 0));
        assert!(poll_foreign(&mut target).is_pending());
        runtime::yield_now().await;
        // Polled again by the task: the foreign waker is replaced, and dropped.
        let (out, target) = tests::poll_once(target).await;
        assert!(out.is_none());
        assert_eq!(dropped(), before + 1);
        tx.write_at(b"x".to_vec(), 0).await.0.unwrap();
        let (n, _) = within("the target read", target).await;
        assert_eq!(n.unwrap(), 1);
        until("the victim's buffer", &freed).await;
    });
}

#[test]
fn re_polling_a_join_handle_with_another_waker_drops_the_foreign_one_safely() {
    rt().block_on(async {
        let freed = Rc::new(Cell::new(false));
        let (victim, _rx, _tx) = victim_read(&freed);
        arm_victim(victim).await;
        let before = dropped();
        // A task that finishes only when told: its handle keeps a waker meanwhile.
        let go = Rc::new(Cell::new(false));
        let told = go.clone();
        let mut handle = runtime::spawn(async move {
            while !told.get() {
                runtime::yield_now().await;
            }
            7
        });
        assert!(poll_foreign(&mut handle).is_pending());
        runtime::yield_now().await;
        // Polled again by this task: the foreign waker is replaced, and its drop (which
        // drops an op in flight) runs with no borrow of the task held.
        let (out, handle) = tests::poll_once(handle).await;
        assert!(out.is_none());
        assert_eq!(dropped(), before + 1);
        go.set(true);
        assert_eq!(within("the task", handle).await.unwrap(), 7);
        until("the victim's buffer", &freed).await;
    });
}

#[test]
fn dropping_a_stream_whose_waker_drops_another_op() {
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for submitted in [false, true] {
            // A multishot accept (incoming) holding the foreign waker.
            let freed = Rc::new(Cell::new(false));
            let (victim, _rx, _tx) = victim_read(&freed);
            arm_victim(victim).await;
            let before = dropped();
            let mut incoming = listener.incoming();
            assert!(poll_foreign(&mut next(&mut incoming)).is_pending());
            if submitted {
                runtime::yield_now().await;
            }
            drop(incoming);
            assert_eq!(dropped(), before + 1, "incoming (submitted: {submitted})");
            until("the victim's buffer", &freed).await;
        }
        if !runtime::Probe::get().unwrap().multishot_recv() {
            eprintln!("skipped the recv_stream half: no multishot receive (Linux 6.0)");
            return;
        }
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (stream, _): (TcpStream, _) = listener.accept().await.unwrap();
        for submitted in [false, true] {
            let freed = Rc::new(Cell::new(false));
            let (victim, _rx, _tx) = victim_read(&freed);
            arm_victim(victim).await;
            let before = dropped();
            let mut chunks = stream.recv_stream();
            assert!(poll_foreign(&mut next(&mut chunks)).is_pending());
            if submitted {
                runtime::yield_now().await;
            }
            drop(chunks);
            assert_eq!(
                dropped(),
                before + 1,
                "recv_stream (submitted: {submitted})"
            );
            until("the victim's buffer", &freed).await;
        }
    });
}

#[test]
fn dropping_a_timer_whose_waker_drops_an_op() {
    rt().block_on(async {
        let freed = Rc::new(Cell::new(false));
        let (victim, _rx, _tx) = victim_read(&freed);
        arm_victim(victim).await;
        let before = dropped();
        let mut sleep = Box::pin(runtime::time::sleep(Duration::from_secs(3600)));
        assert!(poll_foreign(&mut sleep).is_pending());
        drop(sleep);
        assert_eq!(dropped(), before + 1);
        until("the victim's buffer", &freed).await;

        // A timer that fires wakes (and so drops) the foreign waker from the ring turn.
        let freed = Rc::new(Cell::new(false));
        let (victim, _rx, _tx) = victim_read(&freed);
        arm_victim(victim).await;
        let before = dropped();
        let mut sleep = Box::pin(runtime::time::sleep(Duration::from_millis(1)));
        assert!(poll_foreign(&mut sleep).is_pending());
        within("the victim is dropped by the fired timer's wake", async {
            while dropped() == before {
                runtime::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        until("the victim's buffer", &freed).await;
        drop(sleep);
    });
}
