//! What `statx(2)` says about a file.

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

/// Information about a file, from `statx(2)` (through the ring with
/// `IORING_OP_STATX` where the kernel has it).
#[derive(Clone)]
pub struct Metadata {
    stat: libc::statx,
}

/// The `statx` fields every metadata call asks for.
pub(crate) const STATX_MASK: u32 =
    libc::STATX_BASIC_STATS | libc::STATX_BTIME | libc::STATX_DIOALIGN;

/// What `O_DIRECT` asks of I/O on a file: the buffer's address a multiple of `memory`,
/// the file offset and the length multiples of `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DioAlignment {
    /// Alignment of the buffer's address in memory, in bytes.
    pub memory: usize,
    /// Alignment of the file offset and of the length, in bytes.
    pub offset: usize,
}

impl Metadata {
    pub(crate) fn from_statx(stat: libc::statx) -> Metadata {
        Metadata { stat }
    }

    /// The alignment `O_DIRECT` I/O on this file needs, as the kernel reports it
    /// (`STATX_DIOALIGN`, Linux 6.1+). `None` where the kernel or the filesystem does
    /// not say, or the file does not support `O_DIRECT` at all.
    pub fn dio_alignment(&self) -> Option<DioAlignment> {
        let known = self.stat.stx_mask & libc::STATX_DIOALIGN != 0;
        (known && self.stat.stx_dio_mem_align != 0).then_some(DioAlignment {
            memory: self.stat.stx_dio_mem_align as usize,
            offset: self.stat.stx_dio_offset_align as usize,
        })
    }

    /// [`dio_alignment`](Metadata::dio_alignment), or where the kernel does not say,
    /// the file's preferred I/O size ([`blksize`](Metadata::blksize), 4096 on common
    /// filesystems) for both: a multiple of every block size in use, so safe if
    /// stricter than needed.
    pub(crate) fn dio_alignment_or_guess(&self) -> DioAlignment {
        self.dio_alignment().unwrap_or_else(|| {
            let block = (self.blksize() as usize).max(512).next_power_of_two();
            DioAlignment {
                memory: block,
                offset: block,
            }
        })
    }

    fn kind(&self) -> u32 {
        u32::from(self.stat.stx_mode) & libc::S_IFMT
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.stat.stx_size
    }

    /// Whether the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    /// Whether this is a symbolic link (only ever true for metadata that did not
    /// follow links, as [`symlink_metadata`](super::symlink_metadata) gives).
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }

    /// What kind of file this is.
    pub fn file_type(&self) -> super::FileType {
        super::FileType::from_mode(self.mode())
    }

    /// The full `st_mode`: file type and permission bits.
    pub fn mode(&self) -> u32 {
        u32::from(self.stat.stx_mode)
    }

    /// The permission bits, as the standard library represents them.
    pub fn permissions(&self) -> std::fs::Permissions {
        std::fs::Permissions::from_mode(self.mode() & 0o7777)
    }

    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.stat.stx_ino
    }

    /// Number of hard links.
    pub fn nlink(&self) -> u32 {
        self.stat.stx_nlink
    }

    /// Owner's user id.
    pub fn uid(&self) -> u32 {
        self.stat.stx_uid
    }

    /// Owner's group id.
    pub fn gid(&self) -> u32 {
        self.stat.stx_gid
    }

    /// Preferred I/O block size.
    pub fn blksize(&self) -> u32 {
        self.stat.stx_blksize
    }

    /// Number of 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.stat.stx_blocks
    }

    /// Time of the last change of the content.
    pub fn modified(&self) -> io::Result<SystemTime> {
        Ok(time(self.stat.stx_mtime))
    }

    /// Time of the last access.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        Ok(time(self.stat.stx_atime))
    }

    /// Time of creation; an `Unsupported` error where the filesystem does not record it.
    pub fn created(&self) -> io::Result<SystemTime> {
        if self.stat.stx_mask & libc::STATX_BTIME == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this filesystem does not record creation times",
            ));
        }
        Ok(time(self.stat.stx_btime))
    }
}

fn time(t: libc::statx_timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.tv_nsec));
    if t.tv_sec >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.tv_sec as u64) + nanos
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(t.tv_sec.unsigned_abs()) + nanos
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("len", &self.len())
            .field("mode", &format_args!("{:#o}", self.mode()))
            .field("ino", &self.ino())
            .field("nlink", &self.nlink())
            .finish_non_exhaustive()
    }
}
