//! Registered buffers, registered files and O_DIRECT as a user meets them: data
//! round-trips through fixed buffers on files and sockets, the pool makes a caller
//! wait instead of failing and hands buffers out in order, a cancelled read gives its
//! buffer back only once the kernel is done with it, a registered file's slot is
//! reused only after the ops queued on it, misaligned O_DIRECT transfers are refused
//! with an error that explains the rule, and a memlock limit too low for the pool is
//! reported without stopping the runtime.

use std::cell::Cell;
use std::io::ErrorKind;
use std::rc::Rc;

use runtime::buf::{FixedBuf, FixedBufPool, IoBuf};
use runtime::fs::{File, OpenOptions};
use runtime::net::{TcpListener, TcpStream};
use tests::{
    assert_same_bytes, create_rw, pattern, pipe, poll_once, within, TempDir, TrackedBuf, BOUND,
};

fn rt_with_pool(count: u16, size: usize) -> runtime::Runtime {
    runtime::Builder::new()
        .cores(1)
        .pin(false)
        .fixed_buffers(count, size)
        .build()
        .expect("the runtime starts")
}

/// Turns the ring until `done()` holds, for at most [`BOUND`].
async fn turn_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + BOUND;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after {BOUND:?}"
        );
        runtime::nop().await.expect("a nop completes");
    }
}

fn filled(pool: &FixedBufPool, data: &[u8]) -> impl std::future::Future<Output = FixedBuf> {
    let get = pool.get();
    let data = data.to_vec();
    async move {
        let mut buf = get.await;
        buf.extend_from_slice(&data);
        buf
    }
}

#[test]
fn fixed_buffers_round_trip_through_a_file() {
    const SIZE: usize = 64 * 1024;
    let dir = TempDir::new("fixed-file");
    let path = dir.join("data");
    rt_with_pool(4, SIZE).block_on(within("the fixed-buffer file I/O", async {
        let pool = FixedBufPool::current().unwrap();
        assert_eq!(
            (pool.capacity(), pool.available(), pool.buf_size()),
            (4, 4, SIZE)
        );
        let file = create_rw(&path).await;
        let data = pattern(3 * SIZE, 21);
        for (i, chunk) in data.chunks(SIZE).enumerate() {
            let buf = filled(&pool, chunk).await;
            let (r, _) = file.write_all_at(buf, (i * SIZE) as u64).await;
            r.unwrap();
        }
        assert_eq!(pool.available(), 4, "each write gave its buffer back");
        let mut back = Vec::new();
        for i in 0..3 {
            let (r, buf) = file
                .read_exact_at(pool.get().await, (i * SIZE) as u64)
                .await;
            r.unwrap();
            back.extend_from_slice(&buf);
        }
        assert_same_bytes("read back through fixed buffers", &back, &data);
        // A slice of a fixed buffer is still fixed: a read into its middle.
        let mut buf = pool.get().await;
        buf.set_len(buf.capacity());
        let (r, slice) = file.read_at(buf.slice(100..4196), 5).await;
        assert_eq!(r.unwrap(), 4096);
        let buf = slice.into_inner();
        assert_eq!(&buf[100..4196], &data[5..4101]);
        // The same data through std, for a check that does not use the ring at all.
        assert_same_bytes("std reads it", &std::fs::read(&path).unwrap(), &data);
    }));
}

#[test]
fn fixed_buffers_round_trip_through_a_socket() {
    rt_with_pool(4, 16 * 1024).block_on(within("the fixed-buffer socket I/O", async {
        let pool = FixedBufPool::current().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = pattern(10_000, 5);
        let sent = data.clone();
        let client = runtime::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let pool = FixedBufPool::current().unwrap();
            let (r, _) = stream.write_all(filled(&pool, &sent).await).await;
            r.unwrap();
            stream
        });
        let (server, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        while got.len() < data.len() {
            let (r, buf) = server.read(pool.get().await).await;
            let n = r.unwrap();
            assert!(n > 0, "early EOF after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        assert_same_bytes("received through fixed buffers", &got, &data);
        drop(client.await.unwrap());
        assert_eq!(pool.available(), 4);
    }));
}

#[test]
fn get_waits_while_every_buffer_is_out_and_serves_callers_in_order() {
    rt_with_pool(2, 4096).block_on(within("the waiting callers", async {
        let pool = FixedBufPool::current().unwrap();
        let a = pool.get().await;
        let b = pool.get().await;
        assert!(pool.try_get().is_none());
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..3 {
            let pool = pool.clone();
            let order = order.clone();
            waiters.push(runtime::spawn(async move {
                let buf = pool.get().await;
                order.borrow_mut().push(i);
                // Hold it for a turn, so the others really wait for it.
                runtime::yield_now().await;
                drop(buf);
            }));
        }
        // A caller that gives up while waiting must not swallow a buffer.
        let (none, gives_up) = poll_once(pool.get()).await;
        assert!(none.is_none(), "no buffer is free");
        for _ in 0..4 {
            runtime::yield_now().await;
        }
        assert!(
            order.borrow().is_empty(),
            "nobody got a buffer while both are out"
        );
        drop(a);
        drop(gives_up);
        drop(b);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(
            *order.borrow(),
            vec![0, 1, 2],
            "served in the order they asked"
        );
        assert_eq!(pool.available(), 2, "every buffer came back");
    }));
}

#[test]
fn a_cancelled_read_gives_its_buffer_back_only_after_its_cqe() {
    if tests::ring_only("the ring holds a dropped read's buffer until its CQE") {
        return;
    }
    rt_with_pool(1, 4096).block_on(within("the cancelled reads", async {
        let pool = FixedBufPool::current().unwrap();
        for fixed in [false, true] {
            let (rx, tx) = pipe();
            let file = File::from_std(rx);
            let freed = Rc::new(Cell::new(false));
            let read = {
                let freed = freed.clone();
                let file = &file;
                let pool = pool.clone();
                Box::pin(async move {
                    if fixed {
                        let (r, _) = file.read_at(pool.get().await, 0).await;
                        r.map(drop)
                    } else {
                        let buf = TrackedBuf::new(4096, move || freed.set(true));
                        file.read_at(buf, 0).await.0.map(drop)
                    }
                })
            };
            let (done, read) = poll_once(read).await;
            assert!(done.is_none(), "an empty pipe has nothing to read");
            // Let the ring take the read to the kernel, where it waits on the pipe.
            for _ in 0..3 {
                runtime::nop().await.unwrap();
            }
            drop(read);
            let back = || {
                if fixed {
                    pool.available() == 1
                } else {
                    freed.get()
                }
            };
            assert!(
                !back(),
                "the buffer stays with the read until its CQE (fixed: {fixed})"
            );
            turn_until("the cancelled read's buffer comes back", back).await;
            // The pipe is intact: what is written now is read whole by a new read.
            std::io::Write::write_all(&mut std::fs::File::from(tx), b"after").unwrap();
            let (r, buf) = file.read_at(Vec::with_capacity(16), 0).await;
            assert_eq!(r.unwrap(), 5);
            assert_eq!(
                buf, b"after",
                "the cancelled read took nothing (fixed: {fixed})"
            );
        }
    }));
}

#[test]
fn a_registered_file_does_io_through_its_slot_and_frees_it_after_queued_ops() {
    if tests::ring_only("the registered-file table") {
        return;
    }
    let dir = TempDir::new("fixed-files");
    let path = dir.join("data");
    std::fs::write(&path, pattern(1 << 16, 3)).unwrap();
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .fixed_files(1)
        .build()
        .unwrap();
    rt.block_on(within("the registered files", async {
        let want = pattern(1 << 16, 3);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        file.register().unwrap();
        assert!(file.is_registered());
        file.register().unwrap(); // a second call is a no-op
        let (r, buf) = file.read_exact_at(Vec::with_capacity(1 << 16), 0).await;
        r.unwrap();
        assert_same_bytes("read through the slot", &buf, &want);
        let (r, _) = file.write_all_at(b"slot".to_vec(), 10).await;
        r.unwrap();
        file.sync_data().await.unwrap();

        let mut other = File::open(&path).await.unwrap();
        let e = other.register().unwrap_err();
        assert!(e.to_string().contains("fixed_files"), "{e}");

        // Reads queued on the slot, dropped before the ring takes them, then the file:
        // the slot may only be reused after they have been issued.
        let mut queued = Vec::new();
        for i in 0..8 {
            let read = Box::pin(file.read_at(Vec::with_capacity(4096), i * 4096));
            queued.push(poll_once(read).await.1);
        }
        drop(queued);
        drop(file);
        assert!(
            other.register().is_err(),
            "the slot is not free before the FILES_UPDATE that empties it completes"
        );
        turn_until("the slot comes free", || other.register().is_ok()).await;
        let (r, buf) = other.read_exact_at(Vec::with_capacity(14), 0).await;
        r.unwrap();
        assert_eq!(&buf[10..14], b"slot", "the new file is in the slot");
        assert_eq!(&buf[..10], &want[..10]);
        other.close().await.unwrap();
    }));
    // A runtime without a table says how to get one.
    runtime::Builder::new()
        .cores(1)
        .pin(false)
        .fixed_files(0)
        .build()
        .unwrap()
        .block_on(async {
            let mut file = File::open(&path).await.unwrap();
            let e = file.register().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(e.to_string().contains("Builder::fixed_files"), "{e}");
        });
}

/// Opens `path` with O_DIRECT, or `None` (with the reason printed) where the
/// filesystem refuses it to a plain open(2) too.
async fn open_direct(path: &std::path::Path) -> Option<File> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .direct(true)
        .open(path)
        .await;
    match opened {
        Ok(file) => Some(file),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let why = tests::o_direct_refused(path.parent().unwrap()).unwrap_or_else(|| {
                panic!("open with O_DIRECT failed ({e}), yet open(2) with O_DIRECT works here")
            });
            println!("skipped: {why}");
            None
        }
        Err(e) => panic!("open with O_DIRECT: {e}"),
    }
}

#[test]
fn o_direct_explains_a_misaligned_offset_length_or_buffer() {
    // On the target directory's filesystem: /tmp may be a tmpfs, which refuses
    // O_DIRECT before Linux 6.6.
    let dir = TempDir::new_in(env!("CARGO_TARGET_TMPDIR").as_ref(), "direct-align");
    let path = dir.join("data");
    rt_with_pool(2, 8192).block_on(within("the O_DIRECT checks", async {
        let Some(file) = open_direct(&path).await else {
            return;
        };
        let align = file.dio_alignment().await.unwrap();
        assert!(
            align.memory.is_power_of_two() && align.offset.is_power_of_two(),
            "{align:?}"
        );
        assert!(align.offset >= 512 && align.offset <= 65536, "{align:?}");
        let block = align.offset;

        let mut buf = file.aligned_buf(4 * block).await.unwrap();
        assert_eq!(buf.capacity(), 4 * block);
        assert_eq!(buf.as_ptr() as usize % align.memory, 0);
        let data = pattern(4 * block, 17);
        buf.extend_from_slice(&data);
        let (r, buf) = file.write_all_at(buf, block as u64).await;
        r.unwrap();

        let check = |e: std::io::Error, which: &str| {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            let text = e.to_string();
            assert!(
                text.contains(which),
                "names what is wrong ({which}): {text}"
            );
            assert!(
                text.contains(&format!("multiples of {block}")),
                "says the rule: {text}"
            );
        };
        let (r, buf) = file.read_at(buf, 1).await;
        check(r.unwrap_err(), "offset 1");
        let (r, _) = file.read_at(buf.slice(0..block - 1), 0).await;
        check(r.unwrap_err(), &format!("length {}", block - 1));
        let mut odd = file.aligned_buf(2 * block).await.unwrap();
        odd.set_len(2 * block);
        let (r, _) = file.write_at(odd.slice(1..=block), 0).await;
        check(r.unwrap_err(), "address");

        // A fixed buffer starts on a page: fine for O_DIRECT as is.
        let pool = FixedBufPool::current().unwrap();
        let (r, fixed) = file
            .read_at(pool.get().await.slice(0..block), block as u64)
            .await;
        assert_eq!(r.unwrap(), block);
        assert_eq!(&fixed.into_inner()[..block], &data[..block]);

        // The file ends 4 blocks after `block`; set_len makes it end off a block
        // boundary. read_exact_at then stops at the end with UnexpectedEof, not with
        // a complaint about the alignment of the read that would follow.
        file.set_len((5 * block + 100) as u64).await.unwrap();
        let (r, back) = file
            .read_exact_at(file.aligned_buf(8 * block).await.unwrap(), 0)
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{e}");
        assert_eq!(back.len(), 5 * block + 100);
        assert_same_bytes("data before the end", &back[block..5 * block], &data);
        file.close().await.unwrap();
    }));
}

/// Child side of the memlock test: with CAP_IPC_LOCK dropped from this thread and a
/// 1 MiB RLIMIT_MEMLOCK (room for the ring, which some kernels charge too), a runtime
/// asking for 4 MiB of fixed buffers starts, reports the limit, and does plain I/O.
fn memlock_child() {
    const CAP_IPC_LOCK: u32 = 14;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset take a header and two data structs laid out as the kernel's
    // (version 3), all live for the calls. Capabilities are per thread: this drops
    // CAP_IPC_LOCK from the thread that builds the runtime, whose ring then charges
    // registered memory to RLIMIT_MEMLOCK.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_IPC_LOCK);
        data[0].permitted &= !(1 << CAP_IPC_LOCK);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
    let limit = libc::rlimit {
        rlim_cur: 1024 * 1024,
        rlim_max: 1024 * 1024,
    };
    // SAFETY: setrlimit reads the rlimit we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) }, 0);

    let mut rt = rt_with_pool(64, 64 * 1024);
    rt.block_on(async {
        let e = FixedBufPool::current().unwrap_err();
        let text = e.to_string();
        println!("the error: {text}");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(text.contains("RLIMIT_MEMLOCK"), "{text}");
        assert!(
            text.contains("4194304 bytes"),
            "says what was needed: {text}"
        );
        assert!(text.contains("1048576 bytes"), "says the limit: {text}");
        // Everything else works without the pool.
        let (rx, tx) = pipe();
        std::io::Write::write_all(&mut std::fs::File::from(tx), b"still runs").unwrap();
        let (r, buf) = File::from_std(rx).read_at(Vec::with_capacity(32), 0).await;
        assert_eq!(r.unwrap(), 10);
        assert_eq!(buf, b"still runs");
    });
    println!("memlock child: passed");
}

#[test]
fn a_memlock_limit_too_low_for_the_pool_is_reported_and_the_runtime_runs() {
    if tests::ring_only("registering buffers counts against RLIMIT_MEMLOCK") {
        return;
    }
    const CHILD: &str = "RUNTIME_TEST_MEMLOCK_CHILD";
    const NAME: &str = "a_memlock_limit_too_low_for_the_pool_is_reported_and_the_runtime_runs";
    if std::env::var_os(CHILD).is_some() {
        memlock_child();
        return;
    }
    // The limit and the capability change the whole process; a child of its own
    // keeps them away from the other tests.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again as a child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("memlock child: passed"),
        "the child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
