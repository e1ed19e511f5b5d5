//! The ring under pressure: a full SQ, an overflowing CQ, signals interrupting the
//! wait, and SQPOLL; and the setup flags each core's ring really got. No completion
//! may be lost and nothing may panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::channel::oneshot;
use runtime::net::{TcpListener, TcpStream};
use runtime::time::{sleep, timeout};

const BOUND: Duration = Duration::from_secs(20);

/// The tests here run one at a time: the SQPOLL ones count the kernel's SQ threads
/// (every SQPOLL ring in the process has one) and compare enters with a spinning core
/// and its SQ thread on a CPU each, which busy threads of another test would share.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_tiny_ring_with_thousands_of_ops_loses_no_completion() {
    let _serial = serial();
    // 2 SQ entries and 4 CQ entries against 5,000 ops in flight: the SQ is full on
    // almost every push and most CQEs go through the kernel's overflow list.
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .ring_entries(2)
        .build()
        .unwrap();
    let before = rt.stats();
    rt.block_on(async {
        let tasks: Vec<_> = (0..5_000)
            .map(|_| runtime::spawn(async { runtime::nop().await }))
            .collect();
        for t in tasks {
            timeout(BOUND, t)
                .await
                .expect("no lost CQE")
                .unwrap()
                .unwrap();
        }
    });
    assert_eq!(rt.stats().ops_completed - before.ops_completed, 5_000);
}

extern "C" fn on_signal(_: libc::c_int) {}

#[test]
fn signals_during_the_wait_neither_hang_nor_fire_timers_early() {
    let _serial = serial();
    // SIGUSR1 without SA_RESTART, as a profiler's signal would arrive: each one
    // interrupts io_uring_enter with EINTR.
    // SAFETY: the handler does nothing, so it is async-signal-safe; the sigaction
    // struct is fully initialised and lives for the call.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let killer = std::thread::spawn(move || {
        let mut sent = 0u32;
        while !s.load(Ordering::SeqCst) {
            // SAFETY: `me` is a live thread until `stop` is set, which happens before
            // that thread's test function returns.
            unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
            sent += 1;
            std::thread::yield_now();
        }
        sent
    });
    tests::rt().block_on(async {
        for ms in [1u64, 5, 20, 50] {
            let d = Duration::from_millis(ms);
            let start = Instant::now();
            timeout(BOUND, sleep(d)).await.expect("the sleep ends");
            assert!(start.elapsed() >= d, "sleep({d:?}) ended early");
        }
        for _ in 0..1000 {
            runtime::nop().await.unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    let sent = killer.join().unwrap();
    assert!(sent > 0, "signals were sent during the waits");
}

/// An SQPOLL runtime of `cores` cores, or `None` (with the reason printed) only where
/// the probe says this kernel, or this process's privileges, give no SQPOLL ring. Where
/// the probe says SQPOLL works, a runtime that does not build is a failure.
fn sqpoll_runtime(
    cores: usize,
    pin: bool,
    spin: Option<Duration>,
) -> Option<(std::sync::MutexGuard<'static, ()>, runtime::Runtime)> {
    let serial = serial();
    if let Err(why) = runtime::Probe::get().unwrap().sqpoll() {
        // The probe must not hide a working SQPOLL: a bare SQPOLL ring, with no other
        // flag, must fail here too.
        let bare = io_uring::IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder()
            .setup_sqpoll(10)
            .build(4);
        if let Ok(ring) = bare {
            assert!(
                !ring.params().is_feature_sqpoll_nonfixed(),
                "the probe says there is no SQPOLL ({why}), yet a bare SQPOLL ring builds"
            );
        }
        println!("skipped: the probe says this kernel gives no SQPOLL ring: {why}");
        return None;
    }
    let rt = runtime::Builder::new()
        .cores(cores)
        .pin(pin)
        .sqpoll(Some(SQ_IDLE))
        .spin_before_park(spin)
        .build()
        .unwrap_or_else(|e| panic!("the probe says SQPOLL works, yet build failed: {e}"));
    Some((serial, rt))
}

/// The SQ threads' idle time: long enough that they stay awake through a test's bursts.
const SQ_IDLE: Duration = Duration::from_millis(50);

/// Kernel SQ polling threads of this process (`iou-sqp-PID`), from /proc/self/task.
fn sq_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("iou-sqp-"))
        .count()
}

/// Asserts that this process has at least `n` SQ threads. A new SQ thread names itself
/// once it runs, so its name may lag the ring's setup a little: look again, up to a
/// bound.
fn assert_sq_threads(n: usize) {
    let deadline = Instant::now() + BOUND;
    while sq_threads() < n {
        assert!(
            Instant::now() < deadline,
            "expected {n} kernel SQ threads (one per SQPOLL ring), found {}",
            sq_threads()
        );
        std::thread::yield_now();
    }
}

/// What every core of an SQPOLL runtime must report about its ring.
fn assert_sqpoll_rings(stats: &[runtime::CoreStats]) {
    for (core, s) in stats.iter().enumerate() {
        let ring = s.ring;
        assert!(ring.sqpoll, "core {core}: {ring}");
        assert!(
            !ring.defer_taskrun && !ring.coop_taskrun && !ring.taskrun_flag,
            "core {core}: the kernel takes none of these with SQPOLL: {ring}"
        );
        if runtime::Probe::get().unwrap().kernel_release() >= (6, 1) {
            assert!(
                ring.single_issuer,
                "core {core}: 6.1+ takes SQPOLL|SINGLE_ISSUER: {ring}"
            );
        }
    }
}

#[test]
fn sqpoll_runs_ops_and_timers() {
    if tests::ring_only("SQPOLL") {
        return;
    }
    let Some((_serial, mut rt)) = sqpoll_runtime(1, false, None) else {
        return;
    };
    assert_sqpoll_rings(&rt.handle().stats());
    assert_sq_threads(1);
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                runtime::spawn(async {
                    for _ in 0..200 {
                        runtime::nop().await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            timeout(BOUND, t).await.unwrap().unwrap();
        }
        for ms in [1u64, 5, 20] {
            let d = Duration::from_millis(ms);
            let start = Instant::now();
            timeout(BOUND, sleep(d)).await.expect("the sleep ends");
            assert!(start.elapsed() >= d, "sleep({d:?}) ended early");
        }
        // Let the SQ thread fall asleep (it idles SQ_IDLE), then make sure a
        // submission still wakes it (IORING_SQ_NEED_WAKEUP, ENTER_SQ_WAKEUP).
        sleep(SQ_IDLE * 3).await;
        timeout(BOUND, runtime::nop()).await.unwrap().unwrap();
    });
    assert!(rt.stats().ops_completed > 64 * 200);
}

/// Pins this thread to `cpu`; hands back its old mask.
fn pin_this_thread(cpu: usize) -> libc::cpu_set_t {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is a plain bit array; the calls fill or read the sets we pass,
    // which live across each call.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, size, &mut old), 0);
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        let res = libc::sched_setaffinity(0, size, &one);
        assert_eq!(res, 0, "pinning: {}", std::io::Error::last_os_error());
        old
    }
}

/// Gives this thread back the mask `pin_this_thread` returned.
fn unpin_this_thread(old: &libc::cpu_set_t) {
    // SAFETY: the set is the one sched_getaffinity filled.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), old) };
}

/// Pins every kernel SQ thread of this process to `cpu` (an SQ thread of a ring that
/// is going away may be gone before it is pinned).
fn pin_sq_threads(cpu: usize) {
    assert_sq_threads(1);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let Ok(task) = task else { continue };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("iou-sqp-") {
            continue;
        }
        let tid: libc::pid_t = task.file_name().to_str().unwrap().parse().unwrap();
        // SAFETY: cpu_set_t is a plain bit array, filled here and read by the call.
        let res = unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &one)
        };
        let err = std::io::Error::last_os_error();
        assert!(
            res == 0 || err.raw_os_error() == Some(libc::ESRCH),
            "{tid}: {err}"
        );
    }
}

/// Sequential nops on a core that spins before it parks: without SQPOLL each one
/// needs an io_uring_enter to reach the kernel; with SQPOLL the kernel thread takes
/// them from the SQ, so the core hardly enters at all.
#[test]
fn sqpoll_submits_without_entering_the_kernel() {
    if tests::ring_only("SQPOLL") {
        return;
    }
    const OPS: u64 = 2000;
    let spin = Some(Duration::from_millis(1));
    async fn nops() -> runtime::CoreStats {
        let before = runtime::stats();
        for _ in 0..OPS {
            timeout(BOUND, runtime::nop()).await.unwrap().unwrap();
        }
        let after = runtime::stats();
        let mut delta = after.clone();
        delta.enters = after.enters - before.enters;
        delta.ops_completed = after.ops_completed - before.ops_completed;
        delta
    }
    let Some((_serial, mut rt)) = sqpoll_runtime(1, false, spin) else {
        return;
    };
    let mut plain = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .spin_before_park(spin)
        .build()
        .unwrap();
    let without = plain.block_on(nops());
    drop(plain);
    // A spinning core and the SQ thread on one CPU take turns (each submission then
    // waits for the scheduler): give them a CPU each where there are two.
    let cpus = tests::thread_cpus();
    let separate = cpus.len() >= 2;
    let old_mask = separate.then(|| pin_this_thread(cpus[0]));
    let with = rt.block_on(async {
        // Wake the SQ thread up first (it may have fallen asleep while the other
        // runtime ran); a request it has taken also means it is running and named.
        runtime::nop().await.unwrap();
        if separate {
            pin_sq_threads(cpus[1]);
        }
        nops().await
    });
    if let Some(old) = &old_mask {
        unpin_this_thread(old);
    }
    println!(
        "{OPS} sequential nops: {} enters without SQPOLL, {} with",
        without.enters, with.enters
    );
    assert!(without.ops_completed >= OPS && with.ops_completed >= OPS);
    assert!(
        without.enters >= OPS,
        "without SQPOLL every submission is an enter: {without:?}"
    );
    if !separate {
        println!("enters not compared: one CPU, which the SQ thread shares with the core");
        return;
    }
    assert!(
        with.enters < OPS / 10,
        "with SQPOLL the kernel thread submits: {} enters for {OPS} ops ({})",
        with.enters,
        with.ring
    );
}

#[test]
fn sqpoll_round_trips_bytes_over_tcp_and_a_pipe() {
    if tests::ring_only("SQPOLL") {
        return;
    }
    const LEN: usize = 1 << 20;
    let Some((_serial, mut rt)) = sqpoll_runtime(1, false, None) else {
        return;
    };
    rt.block_on(tests::within("the round trips", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = runtime::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, buf) = stream.read_exact(Vec::with_capacity(LEN)).await;
            r.unwrap();
            let (r, _) = stream.write_all(buf).await;
            r.unwrap();
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let data = tests::pattern(LEN, 3);
        let (r, data) = client.write_all(data).await;
        r.unwrap();
        let (r, back) = client.read_exact(Vec::with_capacity(LEN)).await;
        r.unwrap();
        tests::assert_same_bytes("the TCP echo", &back, &data);
        echo.await.unwrap();

        let (r, w) = tests::pipe();
        let reader = std::rc::Rc::new(runtime::fs::File::from_std(std::fs::File::from(r)));
        let writer = runtime::fs::File::from_std(std::fs::File::from(w));
        for round in 0..100u64 {
            let msg = tests::pattern(512, round);
            let reader = reader.clone();
            // The read waits in the kernel for the write.
            let read = runtime::spawn(async move {
                let (r, buf) = reader.read_at(Vec::with_capacity(512), 0).await;
                assert_eq!(r.unwrap(), 512);
                buf
            });
            runtime::yield_now().await;
            let (r, msg) = writer.write_all_at(msg, 0).await;
            r.unwrap();
            tests::assert_same_bytes("the pipe", &read.await.unwrap(), &msg);
        }
    }));
    assert_sqpoll_rings(&[rt.stats()]);
    assert_sq_threads(1);
}

/// Two SQPOLL cores wake each other with MSG_RING, which the SQ threads send.
#[test]
fn sqpoll_cores_wake_each_other_by_msg_ring() {
    if tests::ring_only("SQPOLL") {
        return;
    }
    let Some((_serial, mut rt)) = sqpoll_runtime(2, false, None) else {
        return;
    };
    let handle = rt.handle();
    assert_sqpoll_rings(&handle.stats());
    assert_sq_threads(2);
    rt.block_on(async {
        for i in 0..300u64 {
            let (tx, rx) = oneshot();
            runtime::spawn_on(1, move || async move {
                runtime::yield_now().await;
                tx.send(i + 1).unwrap();
            });
            assert_eq!(timeout(BOUND, rx).await.unwrap().unwrap(), i + 1);
        }
    });
    let stats = handle.stats();
    let msg_ring = runtime::Probe::get()
        .unwrap()
        .supports(io_uring::opcode::MsgRingData::CODE);
    for core in &stats {
        assert!(
            core.msg_ring_wakes_sent + core.eventfd_wakes_sent >= 1,
            "{stats:#?}"
        );
        if msg_ring {
            assert_eq!(core.eventfd_wakes_sent, 0, "{stats:#?}");
            assert_eq!(core.eventfd_wakes_received, 0, "{stats:#?}");
        }
    }
}

/// The ring each core really got: on Linux 6.1 and later the kernel has every flag the
/// runtime asks for by default, so each one must be there (not silently dropped).
#[test]
fn every_core_ring_has_the_default_flags_the_kernel_offers() {
    if tests::ring_only("ring setup flags") {
        return;
    }
    let _serial = serial();
    let probe = runtime::Probe::get().unwrap();
    let release = probe.kernel_release();
    let rt = runtime::Builder::new().cores(2).pin(false).build().unwrap();
    let stats = rt.handle().stats();
    for (core, s) in stats.iter().enumerate() {
        let ring = s.ring;
        println!("core {core} on Linux {}.{}: {ring}", release.0, release.1);
        assert!(!ring.sqpoll, "core {core}: {ring}");
        if release >= (6, 1) {
            assert!(
                ring.single_issuer && ring.defer_taskrun,
                "core {core}: Linux {release:?} has SINGLE_ISSUER and DEFER_TASKRUN: {ring}"
            );
            assert!(
                ring.coop_taskrun && ring.taskrun_flag,
                "core {core}: {ring}"
            );
            assert!(
                ring.registered_fd,
                "core {core}: 5.18+ registers ring fds: {ring}"
            );
        } else {
            println!("not checked: Linux {release:?} predates DEFER_TASKRUN (6.1)");
        }
        // The record is the probe's answer, whatever the release.
        assert_eq!(ring.single_issuer, probe.single_issuer(), "core {core}");
        assert_eq!(ring.defer_taskrun, probe.defer_taskrun(), "core {core}");
        assert_eq!(ring.no_iowait, probe.no_iowait(), "core {core}");
    }
}

#[test]
fn bad_builder_settings_are_errors() {
    let _serial = serial();
    for (b, what) in [
        (runtime::Builder::new().cores(0), "cores(0)"),
        (runtime::Builder::new().ring_entries(0), "ring_entries(0)"),
        (
            runtime::Builder::new().ring_entries(1 << 20),
            "ring_entries(1 << 20)",
        ),
    ] {
        let err = b.build().expect_err(what);
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{what}: {err}"
        );
    }
}
