//! Files as a user sees them: bytes written at an offset read back the same, many
//! reads in flight at once each get their own bytes, errors carry the kind std gives,
//! and the path operations (rename, links, directories) do what their names say.

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use runtime::fs::{self, File, OpenOptions};
use tests::{
    assert_same_bytes, create_rw, open_fds, pattern, poll_once, rt, settle_fds, within, TempDir,
};

/// Tests that count this process's fds hold this exclusively; every other test holds
/// it shared, so no fd opens or closes under a count.
static FDS: RwLock<()> = RwLock::new(());

fn fds_shared() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|e| e.into_inner())
}

fn fds_exclusive() -> RwLockWriteGuard<'static, ()> {
    FDS.write().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn create_write_all_at_then_read_exact_at_round_trips() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-round-trip");
    let path = dir.join("data");
    rt().block_on(within("the round trip", async {
        let data = pattern(300_000, 7);
        let file = File::create(&path).await.unwrap();
        let (r, data) = file.write_all_at(data, 1000).await;
        r.unwrap();
        file.sync_all().await.unwrap();
        file.sync_data().await.unwrap();
        file.close().await.unwrap();

        let file = File::open(&path).await.unwrap();
        let (r, back) = file
            .read_exact_at(Vec::with_capacity(data.len()), 1000)
            .await;
        r.unwrap();
        assert_same_bytes("read back", &back, &data);
        let (r, head) = file.read_exact_at(Vec::with_capacity(1000), 0).await;
        r.unwrap();
        assert!(
            head.iter().all(|&b| b == 0),
            "the hole before the data reads as zeroes"
        );
    }));
}

/// A tiny deterministic generator (xorshift), so a failure replays the same way.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn ten_thousand_random_writes_and_reads_match_a_model() {
    let _fds = fds_shared();
    const SPAN: u64 = 64 * 1024;
    let dir = TempDir::new("fs-model");
    let path = dir.join("data");
    rt().block_on(within("the random ops", async {
        let file = create_rw(&path).await;
        let mut model: Vec<u8> = Vec::new();
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for i in 0..10_000u64 {
            let pos = rng.below(SPAN);
            let len = 1 + rng.below(512) as usize;
            if rng.below(2) == 0 {
                let data = pattern(len, i);
                let (r, data) = file.write_all_at(data, pos).await;
                r.unwrap();
                let end = pos as usize + len;
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[pos as usize..end].copy_from_slice(&data);
            } else {
                let (r, got) = file.read_at(Vec::with_capacity(len), pos).await;
                let n = r.unwrap();
                let start = (pos as usize).min(model.len());
                let want = &model[start..(start + len).min(model.len())];
                assert_eq!(n, want.len(), "op {i}: read of {len} at {pos}");
                assert_same_bytes(&format!("op {i}: read at {pos}"), &got, want);
            }
        }
        assert_eq!(file.metadata().await.unwrap().len(), model.len() as u64);
    }));
}

#[test]
fn two_hundred_fifty_six_reads_in_flight_all_get_their_bytes() {
    let _fds = fds_shared();
    const CHUNK: usize = 4096;
    const READS: usize = 256;
    let dir = TempDir::new("fs-in-flight");
    let path = dir.join("data");
    rt().block_on(within("the reads", async {
        let data = pattern(CHUNK * READS, 3);
        fs::write(&path, data.clone()).await.unwrap();
        let file = Rc::new(File::open(&path).await.unwrap());
        let tasks: Vec<_> = (0..READS)
            .map(|i| {
                let file = Rc::clone(&file);
                runtime::spawn(async move {
                    let pos = ((i * 97) % READS * CHUNK) as u64;
                    let (r, buf) = file.read_exact_at(Vec::with_capacity(CHUNK), pos).await;
                    r.unwrap();
                    (pos as usize, buf)
                })
            })
            .collect();
        for task in tasks {
            let (pos, buf) = task.await.unwrap();
            assert_same_bytes(&format!("chunk at {pos}"), &buf, &data[pos..pos + CHUNK]);
        }
    }));
}

#[test]
fn a_read_at_the_end_returns_what_is_left_then_nothing() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-eof");
    let path = dir.join("data");
    rt().block_on(within("the reads", async {
        fs::write(&path, b"0123456789".to_vec()).await.unwrap();
        let file = File::open(&path).await.unwrap();
        let (r, buf) = file.read_at(Vec::with_capacity(100), 6).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(buf, b"6789");
        let (r, buf) = file.read_at(Vec::with_capacity(100), 10).await;
        assert_eq!(r.unwrap(), 0);
        assert!(buf.is_empty());

        let (r, buf) = file.read_exact_at(Vec::with_capacity(8), 6).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(
            buf, b"6789",
            "the bytes read before the end are handed back"
        );
    }));
}

#[test]
fn opening_fails_the_way_std_does() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-errors");
    rt().block_on(within("the opens", async {
        let missing = File::open(dir.join("missing")).await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);

        let sub = dir.join("sub");
        fs::create_dir(&sub).await.unwrap();
        let e = OpenOptions::new().write(true).open(&sub).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR), "{e}");

        // Root passes permission checks on ordinary files; sysctl files are the
        // exception (a read-only one refuses writers, root included).
        // SAFETY: geteuid takes nothing and cannot fail.
        let denied = if unsafe { libc::geteuid() } == 0 {
            std::path::PathBuf::from("/proc/sys/kernel/osrelease")
        } else {
            let locked = dir.join("locked");
            std::fs::write(&locked, "x").unwrap();
            std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o444))
                .unwrap();
            locked
        };
        let e = OpenOptions::new()
            .write(true)
            .open(&denied)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

        let e = File::open("a\0b").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("NUL"), "{e}");

        let existing = dir.join("existing");
        fs::write(&existing, "x").await.unwrap();
        let e = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&existing)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);

        let e = OpenOptions::new()
            .read(true)
            .create(true)
            .open(dir.join("new"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "create without write");
        let e = OpenOptions::new().open(&existing).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "no access mode");
        let e = OpenOptions::new()
            .append(true)
            .truncate(true)
            .open(&existing)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "append with truncate");
    }));
}

#[test]
fn a_dropped_open_closes_the_file_it_opened_late() {
    let _fds = fds_exclusive();
    let dir = TempDir::new("fs-dropped-open");
    let path = dir.join("data");
    std::fs::write(&path, "x").unwrap();
    rt().block_on(within("the dropped opens", async {
        let before = open_fds();
        let mut dropped_in_flight = 0;
        for _ in 0..100 {
            let (done, open) = poll_once(Box::pin(File::open(&path))).await;
            dropped_in_flight += usize::from(done.is_none());
            // An open that finished at the first poll hands its file back; drop it too.
            drop(done);
            drop(open);
        }
        // On the epoll backend an open runs to the end inside its first poll.
        assert!(
            dropped_in_flight > 0 || tests::on_epoll(),
            "no open was still in flight when dropped"
        );
        assert_eq!(settle_fds(before).await, before, "an opened fd leaked");
    }));
}

#[test]
fn metadata_reports_length_and_kind() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-metadata");
    let path = dir.join("data");
    rt().block_on(within("the stats", async {
        fs::write(&path, vec![1u8; 12345]).await.unwrap();
        let file = File::open(&path).await.unwrap();
        let m = file.metadata().await.unwrap();
        assert_eq!(m.len(), 12345);
        assert!(m.is_file() && !m.is_dir() && !m.is_symlink(), "{m:?}");
        assert!(m.modified().unwrap() > std::time::SystemTime::UNIX_EPOCH);

        let by_path = fs::metadata(&path).await.unwrap();
        assert_eq!(by_path.len(), 12345);
        assert_eq!(by_path.ino(), m.ino());
        assert_eq!(
            by_path.mode() & 0o777,
            std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&path).unwrap().permissions()
            ) & 0o777
        );

        let d = fs::metadata(dir.join(".")).await.unwrap();
        assert!(d.is_dir() && !d.is_file(), "{d:?}");
        let e = fs::metadata(dir.join("missing")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }));
}

#[test]
fn set_len_and_fallocate_change_the_length() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-len");
    let path = dir.join("data");
    rt().block_on(within("the resizes", async {
        let file = create_rw(&path).await;
        file.set_len(10_000).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 10_000);
        file.set_len(10).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 10);
        match file.fallocate(0, 65536).await {
            Ok(()) => assert_eq!(file.metadata().await.unwrap().len(), 65536),
            // A filesystem may not have fallocate; then the system call without the
            // runtime must say so too, or the runtime is at fault.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                let plain = std::fs::File::create(dir.join("plain")).unwrap();
                // SAFETY: fallocate takes a live fd and plain integers.
                let res = unsafe { libc::fallocate(plain.as_raw_fd(), 0, 0, 65536) };
                let plain_err = std::io::Error::last_os_error();
                assert!(
                    res != 0 && plain_err.raw_os_error() == Some(libc::EOPNOTSUPP),
                    "File::fallocate failed ({e}), yet fallocate(2) works on this filesystem"
                );
                println!(
                    "skipped fallocate: the filesystem of {} ({}) refuses it ({e})",
                    path.parent().unwrap().display(),
                    tests::filesystem_of(&path)
                );
            }
            Err(e) => panic!("fallocate: {e}"),
        }
    }));
}

#[test]
fn the_path_functions_round_trip() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-paths");
    rt().block_on(within("the path ops", async {
        let a = dir.join("a");
        fs::write(&a, "hello").await.unwrap();
        assert_eq!(fs::read(&a).await.unwrap(), b"hello");

        let big = pattern(1 << 20, 5);
        fs::write(&a, big.clone()).await.unwrap();
        assert_same_bytes("read of a mebibyte", &fs::read(&a).await.unwrap(), &big);

        let b = dir.join("b");
        fs::rename(&a, &b).await.unwrap();
        assert_eq!(
            fs::metadata(&a).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );

        let c = dir.join("c");
        fs::hard_link(&b, &c).await.unwrap();
        assert_eq!(fs::metadata(&c).await.unwrap().nlink(), 2);

        let s = dir.join("s");
        fs::symlink(&b, &s).await.unwrap();
        assert!(fs::symlink_metadata(&s).await.unwrap().is_symlink());
        assert!(fs::metadata(&s).await.unwrap().is_file());
        assert_eq!(std::fs::read_link(&s).unwrap(), b);

        for p in [&b, &c, &s] {
            fs::remove_file(p).await.unwrap();
        }
        assert_eq!(
            fs::remove_file(&b).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );

        let deep = dir.join("x/y/z");
        fs::create_dir_all(&deep).await.unwrap();
        fs::create_dir_all(&deep).await.unwrap();
        assert!(fs::metadata(&deep).await.unwrap().is_dir());
        let e = fs::create_dir(&deep).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        fs::write(dir.join("x/file"), "f").await.unwrap();
        assert!(fs::create_dir_all(dir.join("x/file/sub")).await.is_err());
        fs::remove_file(dir.join("x/file")).await.unwrap();
        for p in ["x/y/z", "x/y", "x"] {
            fs::remove_dir(dir.join(p)).await.unwrap();
        }
        assert!(std::fs::read_dir(dir.join(".")).unwrap().next().is_none());
    }));
}

#[test]
fn an_o_direct_file_round_trips_an_aligned_buffer() {
    let _fds = fds_shared();
    const LEN: usize = 64 * 1024;
    // On the target directory's filesystem: /tmp may be a tmpfs, which refuses
    // O_DIRECT before Linux 6.6.
    let dir = TempDir::new_in(env!("CARGO_TARGET_TMPDIR").as_ref(), "fs-direct");
    let path = dir.join("data");
    rt().block_on(within("the direct I/O", async {
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .direct(true)
            .open(&path)
            .await;
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let why = tests::o_direct_refused(path.parent().unwrap()).unwrap_or_else(|| {
                    panic!("open with O_DIRECT failed ({e}), yet open(2) with O_DIRECT works here")
                });
                println!("skipped: {why}");
                return;
            }
            Err(e) => panic!("open with O_DIRECT: {e}"),
        };
        let data = pattern(LEN, 9);
        let mut out = file.aligned_buf(LEN).await.unwrap();
        out.extend_from_slice(&data);
        let (r, _) = file.write_all_at(out, 4096).await;
        r.unwrap();
        let (r, back) = file
            .read_exact_at(file.aligned_buf(LEN).await.unwrap(), 4096)
            .await;
        r.unwrap();
        assert_same_bytes("direct read", &back, &data);
        // The data went to the device, not only to a cache: std reads it back too.
        let on_disk = std::fs::read(&path).unwrap();
        assert_same_bytes("read by std", &on_disk[4096..], &data);
        file.close().await.unwrap();
    }));
}

#[test]
fn vectored_reads_and_writes_at_an_offset_fill_buffers_in_order() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-vectored");
    let path = dir.join("data");
    rt().block_on(within("the vectored I/O", async {
        let file = create_rw(&path).await;
        let data = pattern(10_000, 4);
        let parts = vec![
            data[..3000].to_vec(),
            data[3000..3001].to_vec(),
            data[3001..].to_vec(),
        ];
        let (r, parts) = file.write_vectored_at(parts, 500).await;
        assert_eq!(r.unwrap(), 10_000);
        assert_eq!(parts.len(), 3, "the buffers come back");
        let bufs = vec![Vec::with_capacity(4000), Vec::with_capacity(8000)];
        let (r, bufs) = file.read_vectored_at(bufs, 500).await;
        assert_eq!(
            r.unwrap(),
            10_000,
            "a short read only at the end of the file"
        );
        assert_eq!(bufs[0].len(), 4000, "the first buffer is filled first");
        assert_same_bytes("first", &bufs[0], &data[..4000]);
        assert_same_bytes("second", &bufs[1], &data[4000..]);
        assert_same_bytes("std", &std::fs::read(&path).unwrap()[500..], &data);
    }));
}

#[test]
fn read_dir_lists_what_std_lists_with_types_and_closes_its_fd() {
    let _fds = fds_exclusive();
    let tmp = TempDir::new("fs-read-dir");
    let dir = tmp.join("list");
    std::fs::create_dir(&dir).unwrap();
    // Enough entries for several getdents64 batches (32 KiB each), with long names.
    let names: Vec<String> = (0..2_000)
        .map(|i| format!("entry-{i:05}-{}", "n".repeat(40)))
        .collect();
    for name in &names[..1_990] {
        std::fs::write(dir.join(name), name.as_bytes()).unwrap();
    }
    for name in &names[1_990..] {
        std::fs::create_dir(dir.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(dir.join(&names[0]), dir.join("link")).unwrap();
    rt().block_on(within("read_dir", async {
        let before = open_fds();
        let mut entries = fs::read_dir(&dir).await.unwrap();
        let mut seen = std::collections::BTreeMap::new();
        while let Some(entry) = entries.next_entry().await.unwrap() {
            let name = entry.file_name().into_string().unwrap();
            assert_eq!(entry.path(), dir.join(&name));
            let kind = entry.file_type().await.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            assert_eq!(kind.is_dir(), meta.is_dir(), "{name}");
            assert_eq!(kind.is_file(), meta.is_file(), "{name}");
            assert_eq!(kind.is_symlink(), meta.file_type().is_symlink(), "{name}");
            assert_eq!(entry.ino(), std::os::unix::fs::MetadataExt::ino(&meta));
            assert!(seen.insert(name, kind).is_none(), "an entry listed twice");
        }
        // The end stays the end.
        assert!(entries.next_entry().await.unwrap().is_none());
        let want: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            seen.keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            want
        );
        assert_eq!(seen.len(), 2_001);
        assert!(seen["link"].is_symlink());
        drop(entries);
        // An empty directory lists nothing (no `.` or `..`).
        fs::create_dir(dir.join("empty")).await.unwrap();
        assert!(fs::read_dir(dir.join("empty"))
            .await
            .unwrap()
            .next_entry()
            .await
            .unwrap()
            .is_none());
        assert_eq!(settle_fds(before).await, before, "read_dir left an fd open");
    }));
}

#[test]
fn read_dir_fails_the_way_std_does() {
    let _fds = fds_shared();
    let dir = TempDir::new("fs-read-dir-errors");
    std::fs::write(dir.join("file"), "x").unwrap();
    rt().block_on(within("read_dir errors", async {
        for path in [dir.join("missing"), dir.join("file")] {
            let ours = fs::read_dir(&path).await.unwrap_err();
            let std = std::fs::read_dir(&path).unwrap_err();
            assert_eq!(ours.kind(), std.kind(), "{}", path.display());
        }
    }));
}
