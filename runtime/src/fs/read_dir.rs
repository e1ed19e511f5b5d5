//! Listing a directory: [`read_dir`] opens it through the ring and reads its entries
//! with `getdents64(2)`, a batch at a time.
//!
//! io_uring has no opcode for reading directory entries, so each batch is one plain
//! system call on the core's thread. A directory the kernel has cached answers in
//! microseconds; one on a slow or remote file system stalls the core's other tasks
//! while it answers (as a `read_at` on the epoll backend would). The open goes
//! through the ring, so a path that must be looked up on disk does not block.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{File, Metadata, OpenOptions};

/// How many bytes of entries one `getdents64` asks for (a few hundred entries).
const BATCH: usize = 32 * 1024;

/// The entries of the directory at `path`, as a stream (or one at a time with
/// [`ReadDir::next_entry`]). `.` and `..` are left out; the order is the file
/// system's.
///
/// ```
/// # runtime::Builder::new().cores(1).pin(false).build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("rt-doc-read-dir-{}", std::process::id()));
/// runtime::fs::create_dir(&dir).await.unwrap();
/// runtime::fs::write(dir.join("a.txt"), "a").await.unwrap();
///
/// let mut entries = runtime::fs::read_dir(&dir).await.unwrap();
/// let mut names = Vec::new();
/// while let Some(entry) = entries.next_entry().await.unwrap() {
///     assert!(entry.file_type().await.unwrap().is_file());
///     names.push(entry.file_name());
/// }
/// assert_eq!(names, ["a.txt"]);
/// # runtime::fs::remove_file(dir.join("a.txt")).await.unwrap();
/// # runtime::fs::remove_dir(&dir).await.unwrap();
/// # });
/// ```
///
/// # Errors
///
/// As `std::fs::read_dir`: `NotFound`, `PermissionDenied`, and `NotADirectory` for a
/// path that is not a directory.
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref();
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
        .await?;
    Ok(ReadDir {
        dir,
        path: Arc::from(path),
        buf: Vec::new(),
        at: 0,
        ended: false,
    })
}

/// The entries of a directory, from [`read_dir`]: a [`Stream`] of
/// `io::Result<DirEntry>`, ending after the last entry or the first error.
pub struct ReadDir {
    dir: File,
    /// The directory's path as given, shared by its entries.
    path: Arc<Path>,
    /// The last batch `getdents64` returned (its length is what it filled), and where
    /// the next entry starts in it.
    buf: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ReadDir {
    /// The next entry, `Ok(None)` after the last.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }

    /// The next entry of the batch in hand, if there is one left.
    fn take(&mut self) -> Option<DirEntry> {
        // The fixed part of a `linux_dirent64`: inode (8), offset (8), record length
        // (2), type (1), then the NUL-terminated name.
        const HEAD: usize = 19;
        while self.buf.len() - self.at >= HEAD {
            let record = &self.buf[self.at..];
            let len = u16::from_ne_bytes([record[16], record[17]]) as usize;
            if len < HEAD || len > record.len() {
                // Not what the kernel writes; stop rather than read past the batch.
                self.at = self.buf.len();
                return None;
            }
            self.at += len;
            let ino = u64::from_ne_bytes(record[..8].try_into().expect("8 bytes"));
            let kind = record[18];
            let name = &record[HEAD..len];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name);
            return Some(DirEntry {
                dir: self.path.clone(),
                name: name.to_os_string(),
                ino,
                kind,
            });
        }
        None
    }

    /// The next batch: one `getdents64` into the buffer. `Ok(false)` at the end.
    fn refill(&mut self) -> io::Result<bool> {
        self.buf.clear();
        self.buf.reserve(BATCH);
        self.at = 0;
        let fd = self.dir.as_raw_fd();
        let room = self.buf.capacity();
        // The pointer and length describe the Vec's own allocation, writable for
        // `room` bytes and alive across the call; the fd is the open directory.
        let n = crate::sys::syscall!(syscall(
            libc::SYS_getdents64,
            fd,
            self.buf.as_mut_ptr(),
            room
        ))?;
        // SAFETY: the kernel wrote `n` bytes (at most `room`, the capacity) of entries.
        unsafe { self.buf.set_len(n as usize) };
        Ok(n > 0)
    }
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(entry) = self.take() {
                return Poll::Ready(Some(Ok(entry)));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            // A batch costs a system call on the core's thread: it takes a unit of the
            // task's budget, so a long listing lets the core's other tasks run.
            if crate::coop::poll_proceed(cx).is_pending() {
                return Poll::Pending;
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => self.ended = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ended = true;
                    self.buf.clear();
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir").field("path", &self.path).finish()
    }
}

/// One entry of a directory, from [`ReadDir`].
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The path of the directory it was listed from.
    dir: Arc<Path>,
    name: OsString,
    ino: u64,
    /// `d_type` of the entry (`DT_UNKNOWN` where the file system does not say).
    kind: u8,
}

impl DirEntry {
    /// The directory's path joined with the entry's name.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// The entry's name, without the directory.
    pub fn file_name(&self) -> OsString {
        self.name.clone()
    }

    /// The entry's inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The entry's type, without following a symbolic link. Most file systems give
    /// it with the entry; for those that do not, it is a `statx(2)` of the path.
    pub async fn file_type(&self) -> io::Result<FileType> {
        match self.kind {
            libc::DT_UNKNOWN => Ok(self.metadata().await?.file_type()),
            // `d_type` is the `S_IFMT` bits of the mode, shifted down by 12.
            kind => Ok(FileType::from_mode(u32::from(kind) << 12)),
        }
    }

    /// The entry's metadata, without following a symbolic link (`statx(2)` of the
    /// path, through the ring where it can be).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        super::symlink_metadata(self.path()).await
    }
}

/// What kind of file an entry or a [`Metadata`] names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileType {
    /// The `S_IFMT` bits of a mode.
    format: u32,
}

impl FileType {
    pub(crate) fn from_mode(mode: u32) -> FileType {
        FileType {
            format: mode & libc::S_IFMT,
        }
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.format == libc::S_IFREG
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.format == libc::S_IFDIR
    }

    /// A symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.format == libc::S_IFLNK
    }

    /// A named pipe.
    pub fn is_fifo(&self) -> bool {
        self.format == libc::S_IFIFO
    }

    /// A Unix domain socket.
    pub fn is_socket(&self) -> bool {
        self.format == libc::S_IFSOCK
    }

    /// A block device.
    pub fn is_block_device(&self) -> bool {
        self.format == libc::S_IFBLK
    }

    /// A character device.
    pub fn is_char_device(&self) -> bool {
        self.format == libc::S_IFCHR
    }
}

impl fmt::Debug for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.format {
            libc::S_IFREG => "file",
            libc::S_IFDIR => "dir",
            libc::S_IFLNK => "symlink",
            libc::S_IFIFO => "fifo",
            libc::S_IFSOCK => "socket",
            libc::S_IFBLK => "block device",
            libc::S_IFCHR => "char device",
            _ => "unknown",
        };
        f.write_str(name)
    }
}
