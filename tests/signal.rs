//! Signals: a signal sent after a listener is made resolves every listener of its kind,
//! on any core, and only those; one sent before does not count; a listener sees each
//! next signal and keeps one that comes between two waits; a dropped listener leaks no
//! fd and frees its slot; signals that cannot be waited for are refused with a clear
//! `InvalidInput` and left as they were.
//!
//! Signals are process-wide, and the tests of this file run on parallel threads of one
//! process, so each test holds `SERIAL` while it runs (a test that fills the waiter
//! table would also make the others fail). Every test makes a listener for a signal
//! (which installs its handler) before it sends that signal: without the handler,
//! `SIGTERM`, `SIGINT`, `SIGHUP`, `SIGUSR1` and the realtime signals end the process.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use runtime::signal::{ctrl_c, signal, terminate, Signal, SignalKind, MAX_WAITERS};
use runtime::time::timeout;
use tests::{block_on_thread, open_fds, poll_once, rt};

/// Anything that should finish quickly is awaited with this bound, so a bug shows as a
/// failure, not a hang.
const BOUND: Duration = Duration::from_secs(5);

/// How long a listener that must not resolve is watched.
const QUIET: Duration = Duration::from_millis(100);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends `signal` to this process, as `kill` in a shell does.
fn raise(signal: i32) {
    // SAFETY: kill takes plain integers; the signal's handler is installed (see the
    // file docs).
    let res = unsafe { libc::kill(libc::getpid(), signal) };
    assert_eq!(res, 0, "kill: {}", io::Error::last_os_error());
}

/// Sends `SIGINT` to this process, as Ctrl-C in a terminal does.
fn sigint() {
    raise(libc::SIGINT);
}

/// Sends `signal` to this process from a thread that is not a runtime thread.
fn raise_from_another_thread(signal: i32) {
    std::thread::spawn(move || raise(signal))
        .join()
        .expect("the sending thread ran");
}

/// The handler this process has for `signal` now.
fn disposition(signal: i32) -> libc::sighandler_t {
    // SAFETY: all zeroes is a valid sigaction; sigaction only writes the old action
    // into the struct we pass.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Waits until every eventfd of the dropped listeners has been closed through the
/// ring, and fails if that does not happen.
async fn fds_back_to(before: usize) {
    timeout(BOUND, async {
        while open_fds() != before {
            runtime::nop().await.expect("a nop completes");
        }
    })
    .await
    .expect("the dropped listeners' eventfds were closed");
}

/// Makes a listener and polls it once, so that its read is in the ring.
async fn listening(listener: Signal) -> Signal {
    let kind = listener.kind();
    let (early, listener) = poll_once(listener).await;
    assert!(
        early.is_none(),
        "{kind} listener resolved before any signal: {early:?}"
    );
    listener
}

#[test]
fn a_waiting_future_resolves_on_sigint() {
    let _serial = serial();
    rt().block_on(async {
        let polled = Rc::new(Cell::new(false));
        let waiter = runtime::spawn({
            let polled = polled.clone();
            async move {
                let (early, waiter) = poll_once(ctrl_c()).await;
                assert!(early.is_none(), "resolved before any signal: {early:?}");
                polled.set(true);
                waiter.await
            }
        });
        timeout(BOUND, async {
            while !polled.get() {
                runtime::yield_now().await;
            }
        })
        .await
        .expect("the waiter was polled");
        sigint();
        timeout(BOUND, waiter)
            .await
            .expect("the waiter resolved after SIGINT")
            .expect("the waiter's task ran to its end")
            .expect("ctrl_c resolved to Ok");
    });
}

#[test]
fn terminate_resolves_on_sigterm_and_not_on_sigint() {
    let _serial = serial();
    rt().block_on(async {
        let interrupt = listening(ctrl_c()).await;
        let mut term = listening(terminate()).await;
        assert_eq!(term.kind(), SignalKind::terminate());
        sigint();
        // Its drop, on resolving, waits until no handler runs any more: from then on a
        // wrong write to the SIGTERM listener would already have been made.
        timeout(BOUND, interrupt)
            .await
            .expect("ctrl_c resolved after SIGINT")
            .expect("ctrl_c resolved to Ok");
        assert!(
            timeout(QUIET, &mut term).await.is_err(),
            "terminate() resolved on SIGINT"
        );
        raise(libc::SIGTERM);
        timeout(BOUND, term)
            .await
            .expect("terminate() resolved after SIGTERM")
            .expect("terminate() resolved to Ok");
    });
}

#[test]
fn signal_waits_for_sigusr1_and_sighup_each_on_its_own() {
    let _serial = serial();
    rt().block_on(async {
        let mut usr1 = listening(signal(SignalKind::user_defined1())).await;
        let mut hup = listening(signal(SignalKind::hangup())).await;

        raise(libc::SIGUSR1);
        timeout(BOUND, usr1.recv())
            .await
            .expect("the SIGUSR1 listener resolved after SIGUSR1")
            .expect("it resolved to Ok");
        assert!(
            timeout(QUIET, hup.recv()).await.is_err(),
            "the SIGHUP listener resolved on SIGUSR1"
        );

        raise(libc::SIGHUP);
        timeout(BOUND, hup.recv())
            .await
            .expect("the SIGHUP listener resolved after SIGHUP")
            .expect("it resolved to Ok");
        assert!(
            timeout(QUIET, usr1.recv()).await.is_err(),
            "the SIGUSR1 listener resolved on SIGHUP"
        );
    });
}

#[test]
fn a_realtime_signal_can_be_waited_for() {
    let _serial = serial();
    rt().block_on(async {
        let number = libc::SIGRTMIN() + 1;
        let kind = SignalKind::from_raw(number);
        assert_eq!(kind.to_string(), "SIGRTMIN+1");
        let listener = listening(signal(kind)).await;
        raise(number);
        timeout(BOUND, listener)
            .await
            .expect("the realtime listener resolved after its signal")
            .expect("it resolved to Ok");
    });
}

#[test]
fn waiters_on_two_cores_both_resolve_on_one_sigint() {
    let _serial = serial();
    let mut rt = runtime::Builder::new()
        .cores(2)
        .pin(false)
        .build()
        .expect("the runtime starts");
    rt.block_on(async {
        let (polled_tx, polled_rx) = runtime::channel::oneshot();
        let remote = runtime::spawn_on(1, move || async move {
            let (early, waiter) = poll_once(ctrl_c()).await;
            assert!(early.is_none(), "resolved before any signal: {early:?}");
            polled_tx.send(()).expect("core 0 waits for this");
            waiter.await
        });
        let (early, local) = poll_once(ctrl_c()).await;
        assert!(early.is_none(), "resolved before any signal: {early:?}");
        timeout(BOUND, polled_rx)
            .await
            .expect("core 1's waiter was polled")
            .expect("core 1 sent");
        sigint();
        timeout(BOUND, local)
            .await
            .expect("core 0's waiter resolved after SIGINT")
            .expect("core 0's ctrl_c resolved to Ok");
        timeout(BOUND, remote)
            .await
            .expect("core 1's waiter resolved after SIGINT")
            .expect("core 1's task ran to its end")
            .expect("core 1's ctrl_c resolved to Ok");
    });
}

#[test]
fn terminate_listeners_on_two_cores_both_resolve_on_a_sigterm_from_another_thread() {
    let _serial = serial();
    let mut rt = runtime::Builder::new()
        .cores(2)
        .pin(false)
        .build()
        .expect("the runtime starts");
    rt.block_on(async {
        let (polled_tx, polled_rx) = runtime::channel::oneshot();
        let remote = runtime::spawn_on(1, move || async move {
            let listener = listening(terminate()).await;
            polled_tx.send(()).expect("core 0 waits for this");
            listener.await
        });
        let local = listening(terminate()).await;
        timeout(BOUND, polled_rx)
            .await
            .expect("core 1's listener was polled")
            .expect("core 1 sent");
        raise_from_another_thread(libc::SIGTERM);
        timeout(BOUND, local)
            .await
            .expect("core 0's listener resolved after SIGTERM")
            .expect("core 0's terminate() resolved to Ok");
        timeout(BOUND, remote)
            .await
            .expect("core 1's listener resolved after SIGTERM")
            .expect("core 1's task ran to its end")
            .expect("core 1's terminate() resolved to Ok");
    });
}

/// Resolves at the first signal of either listener, and says which it was.
async fn first_of(a: &mut Signal, b: &mut Signal) -> io::Result<SignalKind> {
    poll_fn(|cx| {
        if let Poll::Ready(res) = a.poll_recv(cx) {
            return Poll::Ready(res.map(|()| a.kind()));
        }
        b.poll_recv(cx).map(|res| res.map(|()| b.kind()))
    })
    .await
}

#[test]
fn a_drain_wait_ends_on_the_first_of_sigterm_or_sigint() {
    let _serial = serial();
    rt().block_on(async {
        let mut interrupt = ctrl_c();
        let mut term = terminate();
        raise_from_another_thread(libc::SIGTERM);
        let stop = timeout(BOUND, first_of(&mut interrupt, &mut term))
            .await
            .expect("the drain wait ended after SIGTERM")
            .expect("it ended with Ok");
        assert_eq!(stop, SignalKind::terminate());

        // Both listeners go on: a Ctrl-C during the drain is seen too.
        raise_from_another_thread(libc::SIGINT);
        let stop = timeout(BOUND, first_of(&mut interrupt, &mut term))
            .await
            .expect("the second wait ended after SIGINT")
            .expect("it ended with Ok");
        assert_eq!(stop, SignalKind::interrupt());
    });
}

#[test]
fn a_listener_sees_each_signal_and_keeps_one_sent_between_waits() {
    let _serial = serial();
    rt().block_on(async {
        let before = open_fds();
        let mut usr2 = listening(signal(SignalKind::user_defined2())).await;
        for round in 0..3 {
            // Sent while nothing waits: the previous wait has returned and the next has
            // not begun.
            raise(libc::SIGUSR2);
            timeout(BOUND, usr2.recv())
                .await
                .unwrap_or_else(|_| panic!("wait {round} took the SIGUSR2 sent before it"))
                .expect("it resolved to Ok");
        }
        assert!(
            timeout(QUIET, usr2.recv()).await.is_err(),
            "a wait resolved with no signal left to take"
        );
        // That wait was dropped mid-read: the signal it would have taken is not lost.
        raise(libc::SIGUSR2);
        timeout(BOUND, usr2.recv())
            .await
            .expect("the wait after a dropped one took the next SIGUSR2")
            .expect("it resolved to Ok");
        assert_eq!(
            open_fds(),
            before + 1,
            "a listener holds one eventfd, however often it waits"
        );
        drop(usr2);
        fds_back_to(before).await;
    });
}

#[test]
fn a_dropped_waiter_leaks_no_fd() {
    let _serial = serial();
    rt().block_on(async {
        let before = open_fds();
        let (early, waiter) = poll_once(ctrl_c()).await;
        assert!(early.is_none(), "resolved before any signal: {early:?}");
        assert_eq!(open_fds(), before + 1, "a waiter holds one eventfd");
        // Its read is in the ring: dropping it cancels the read, and the eventfd is
        // closed through the ring behind it.
        drop(waiter);
        fds_back_to(before).await;

        // Listeners of other kinds, dropped mid-read and never polled.
        let polled = vec![
            listening(terminate()).await,
            listening(signal(SignalKind::user_defined1())).await,
            listening(signal(SignalKind::hangup())).await,
        ];
        let unpolled = signal(SignalKind::user_defined2());
        assert_eq!(open_fds(), before + 4, "each listener holds one eventfd");
        drop((polled, unpolled));
        fds_back_to(before).await;
    });
}

#[test]
fn a_signal_before_the_future_exists_does_not_resolve_it() {
    let _serial = serial();
    rt().block_on(async {
        for (kind, number) in [
            (SignalKind::interrupt(), libc::SIGINT),
            (SignalKind::terminate(), libc::SIGTERM),
            (SignalKind::user_defined1(), libc::SIGUSR1),
        ] {
            // Resolving it proves the earlier signal was handled; and its drop, on
            // resolving, waits until no handler runs any more.
            let witness = signal(kind);
            raise(number);
            timeout(BOUND, witness)
                .await
                .unwrap_or_else(|_| panic!("the {kind} witness resolved after {kind}"))
                .expect("the witness resolved to Ok");

            let mut later = signal(kind);
            assert!(
                timeout(QUIET, &mut later).await.is_err(),
                "a {kind} listener made after the signal resolved on it"
            );
            // It is live all the same: the next signal resolves it.
            raise(number);
            timeout(BOUND, later)
                .await
                .unwrap_or_else(|_| panic!("the later {kind} listener resolved on the next"))
                .expect("it resolved to Ok");
        }
    });
}

#[test]
fn signals_that_cannot_be_waited_for_are_refused_and_left_alone() {
    let _serial = serial();
    let faults = [
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    let mut refused: Vec<(i32, &str)> = vec![
        (
            libc::SIGKILL,
            "SIGKILL cannot be waited for: the kernel never lets",
        ),
        (
            libc::SIGSTOP,
            "SIGSTOP cannot be waited for: the kernel never lets",
        ),
        (libc::SIGABRT, "SIGABRT cannot be waited for: abort()"),
        (0, "0 is not a signal number"),
        (-1, "-1 is not a signal number"),
        (libc::SIGRTMAX() + 1, "is not a signal number"),
    ];
    refused.extend(faults.iter().map(|&(n, _)| (n, "reports a fault")));
    if libc::SIGRTMIN() > 32 {
        refused.push((32, "signal 32 cannot be waited for: the C library keeps it"));
    }
    let before: Vec<_> = faults.iter().map(|&(n, _)| disposition(n)).collect();
    let fds = open_fds();

    rt().block_on(async {
        for (number, says) in refused {
            let mut listener = signal(SignalKind::from_raw(number));
            for poll in ["first", "second"] {
                let err = timeout(BOUND, &mut listener)
                    .await
                    .unwrap_or_else(|_| panic!("signal {number}: the {poll} poll hung"))
                    .expect_err("a signal that cannot be waited for is refused");
                assert_eq!(
                    err.kind(),
                    io::ErrorKind::InvalidInput,
                    "signal {number}: {err}"
                );
                assert!(err.to_string().contains(says), "signal {number}: {err}");
            }
        }
        for &(number, name) in &faults {
            let err = signal(SignalKind::from_raw(number)).await.unwrap_err();
            assert!(err.to_string().starts_with(name), "names the signal: {err}");
        }
    });

    let after: Vec<_> = faults.iter().map(|&(n, _)| disposition(n)).collect();
    assert_eq!(
        before, after,
        "the fault signals keep the handlers they had"
    );
    assert_eq!(open_fds(), fds, "a refused listener holds no eventfd");
}

#[test]
fn too_many_waiters_is_an_error_and_slots_are_freed() {
    let _serial = serial();
    rt().block_on(async {
        let kinds = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::user_defined1(),
        ];
        // Each dropped listener gives its slot back: more than the table holds, in turn.
        for i in 0..2 * MAX_WAITERS {
            drop(listening(signal(kinds[i % kinds.len()])).await);
        }
        // The table is shared by all signals.
        let mut all = Vec::new();
        for i in 0..MAX_WAITERS {
            all.push(listening(signal(kinds[i % kinds.len()])).await);
        }
        for one_more in [ctrl_c(), signal(SignalKind::hangup())] {
            let err = one_more.await.expect_err("one more than the table holds");
            assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
            let text = err.to_string();
            assert!(
                text.contains("too many signal listeners")
                    && text.contains(&format!("at most {MAX_WAITERS}")),
                "the error says what the limit is: {err}"
            );
        }
        all.pop();
        let one_more = listening(signal(SignalKind::hangup())).await;
        drop((all, one_more));
    });
}

#[test]
fn outside_a_runtime_it_is_an_error_and_leaks_no_fd() {
    let _serial = serial();
    let before = open_fds();
    for listener in [ctrl_c(), terminate(), signal(SignalKind::user_defined1())] {
        let kind = listener.kind();
        let err = block_on_thread(listener).expect_err("no runtime on this thread");
        assert!(
            err.to_string().contains("no runtime"),
            "{kind}: says why: {err}"
        );
    }
    assert_eq!(open_fds(), before, "the eventfds were closed");
}
