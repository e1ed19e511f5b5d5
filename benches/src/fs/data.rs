//! The data file and what is printed about the machine above the tables.
//!
//! The file holds [`FILE_SIZE`] pseudo-random bytes, written for real and
//! synced: a sparse file would answer reads of its holes without touching the
//! device. A file already there with the right size and every block allocated
//! is reused.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{CHUNK, FILE_SIZE};

/// The default data file: `fsbench.dat` under `$CARGO_TARGET_DIR`, or under
/// `target/` of the current directory.
pub fn default_path() -> PathBuf {
    crate::tools::target_dir().join("fsbench.dat")
}

/// [`ensure`], with its outcome in `report`: `false` if the file could not be made.
pub fn ensure_reported(path: &Path, report: &mut crate::report::GroupReport) -> bool {
    match ensure(path) {
        Ok(line) => {
            report.about(line);
            true
        }
        Err(err) => {
            report.fail(format!(
                "cannot write the data file {}: {err}",
                path.display()
            ));
            false
        }
    }
}

/// Makes sure `path` holds the data file; says whether it was written or
/// reused.
pub fn ensure(path: &Path) -> io::Result<String> {
    if let Ok(meta) = fs::metadata(path) {
        // st_blocks counts 512-byte units; a sparse file has fewer than its size.
        if meta.is_file() && meta.len() == FILE_SIZE && meta.blocks() * 512 >= FILE_SIZE {
            return Ok(format!("data file: {} (reused)", path.display()));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let started = std::time::Instant::now();
    let mut file = File::create(path)?;
    let mut state = super::SEED;
    let mut chunk = vec![0u8; CHUNK];
    for _ in 0..FILE_SIZE / CHUNK as u64 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    Ok(format!(
        "data file: {} (written and synced in {:.1} s)",
        path.display(),
        started.elapsed().as_secs_f64()
    ))
}

/// Reads the whole file once, so that the buffered benchmark starts with it
/// in the page cache.
pub fn warm_page_cache(path: &Path) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut chunk = vec![0u8; CHUNK];
    while file.read(&mut chunk)? > 0 {}
    Ok(())
}

/// Where `path` lives: `DEVICE (FSTYPE) on MOUNTPOINT`, from the mount in
/// `/proc/self/mountinfo` that holds it, with the block device's scheduler
/// and logical block size when `/sys` tells them.
pub fn describe_storage(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mountinfo = match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(err) => return format!("unknown (/proc/self/mountinfo: {err})"),
    };
    let Some(mount) = containing_mount(&mountinfo, &path) else {
        return "unknown (no mount in /proc/self/mountinfo holds it)".to_string();
    };
    let mut text = format!(
        "{} ({}, {}) on {}",
        mount.source, mount.fstype, mount.options, mount.point
    );
    if let Some(queue) = block_queue(&mount.source) {
        text.push_str(&format!("; {queue}"));
    }
    text
}

/// One line of `/proc/self/mountinfo`, the fields we print.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    point: String,
    fstype: String,
    source: String,
    options: String,
}

/// The mount whose mount point is the longest prefix of `path` (the last
/// such line wins: it is mounted over the earlier ones).
fn containing_mount(mountinfo: &str, path: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(dash) = fields.iter().position(|&f| f == "-") else {
            continue;
        };
        let (Some(point), Some(fstype), Some(source)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 2))
        else {
            continue;
        };
        let point = unescape(point);
        if !path.starts_with(&point) {
            continue;
        }
        if best.as_ref().is_some_and(|b| b.point.len() > point.len()) {
            continue;
        }
        best = Some(Mount {
            point,
            fstype: fstype.to_string(),
            source: source.to_string(),
            options: fields.get(5).unwrap_or(&"").to_string(),
        });
    }
    best
}

/// Mount points escape spaces and the like as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4);
        if bytes[i] == b'\\' && octal.is_some_and(|o| o.iter().all(|b| (b'0'..=b'7').contains(b))) {
            let code = octal
                .unwrap_or_default()
                .iter()
                .fold(0u32, |code, b| code * 8 + u32::from(b - b'0'));
            out.push(code as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `scheduler mq-deadline, logical block 512 B` of `/dev/NAME`'s disk.
fn block_queue(source: &str) -> Option<String> {
    let name = source.strip_prefix("/dev/")?;
    // A partition's queue is its disk's: /sys/class/block/NAME/../queue.
    let class = Path::new("/sys/class/block").join(name);
    let queue = [class.join("queue"), class.join("../queue")]
        .into_iter()
        .find(|q| q.is_dir())?;
    let read = |file: &str| {
        fs::read_to_string(queue.join(file))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut parts = Vec::new();
    if let Some(scheduler) = read("scheduler") {
        parts.push(format!("scheduler {scheduler}"));
    }
    if let Some(block) = read("logical_block_size") {
        parts.push(format!("logical block {block} B"));
    }
    if let Some(rotational) = read("rotational") {
        parts.push(
            if rotational == "0" {
                "non-rotational"
            } else {
                "rotational"
            }
            .to_string(),
        );
    }
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{containing_mount, unescape};

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /proc rw,nosuid - proc proc rw
40 22 254:16 / /work/my\\040disk rw,noatime - xfs /dev/vdb1 rw
";

    #[test]
    fn the_longest_mount_point_holds_the_path() {
        let mount = containing_mount(MOUNTINFO, Path::new("/work/target/fsbench.dat")).unwrap();
        assert_eq!(
            (mount.source.as_str(), mount.fstype.as_str()),
            ("/dev/vda", "ext4")
        );
        let mount = containing_mount(MOUNTINFO, Path::new("/work/my disk/f")).unwrap();
        assert_eq!(mount.source, "/dev/vdb1");
        assert_eq!(mount.options, "rw,noatime");
        assert_eq!(unescape("a\\040b"), "a b");
    }
}
