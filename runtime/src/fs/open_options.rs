//! How a file is opened: the flags of `openat(2)`, checked the way the standard
//! library checks them.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::File;
use crate::driver::{ops, Op};

/// Options for opening a file, as [`std::fs::OpenOptions`] has them, plus
/// [`direct`](OpenOptions::direct) for `O_DIRECT`. The open goes through the ring
/// (`IORING_OP_OPENAT`), always with `O_CLOEXEC`.
///
/// ```
/// # runtime::Builder::new().cores(1).pin(false).build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("rt-doc-oo-{}", std::process::id()));
/// let file = runtime::fs::OpenOptions::new()
///     .write(true)
///     .create(true)
///     .truncate(true)
///     .open(&path)
///     .await
///     .unwrap();
/// file.close().await.unwrap();
/// runtime::fs::remove_file(&path).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    direct: bool,
    custom_flags: i32,
    mode: u32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// All options off; a new file gets mode `0o666` (less the umask).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            direct: false,
            custom_flags: 0,
            mode: 0o666,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    /// Open for appending (`O_APPEND`); implies writing.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    /// Truncate the file to length 0 (`O_TRUNC`); needs writing.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (`O_CREAT`); needs writing or appending.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists (`O_CREAT | O_EXCL`);
    /// `create` and `truncate` are then ignored. Needs writing or appending.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    /// Permission bits of a newly created file (less the umask); default `0o666`.
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = mode;
        self
    }

    /// Extra `open(2)` flags, or-ed in; the access mode bits (`O_ACCMODE`) are ignored.
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.custom_flags = flags;
        self
    }

    /// Bypass the page cache (`O_DIRECT`). Reads and writes must then use buffers,
    /// offsets and lengths aligned as the filesystem asks (often 512 or 4096 bytes);
    /// some filesystems refuse the flag with `EINVAL`.
    ///
    /// The file learns its alignment at open from `statx` (`STATX_DIOALIGN`, Linux
    /// 6.1+; before that, or where the filesystem does not say, the file's preferred
    /// I/O size, usually 4096, is assumed for both). Each read and write then checks
    /// it and answers a misaligned offset, length or buffer with an `InvalidInput`
    /// error that says which and what the rule is, instead of the kernel's bare
    /// `EINVAL`. [`File::aligned_buf`] makes a buffer that fits.
    pub fn direct(&mut self, direct: bool) -> &mut OpenOptions {
        self.direct = direct;
        self
    }

    /// Opens the file at `path` with these options.
    ///
    /// Fails with `InvalidInput` for a combination the standard library refuses too
    /// (nothing to read or write; `create`, `create_new` or `truncate` without writing;
    /// `truncate` with `append`), or for a path with a NUL byte inside it.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let flags = self.flags()?;
        let path = cstring(path.as_ref())?;
        let fd = Op::new(ops::OpenAt::new(path, flags, self.mode)).await?;
        let direct = if self.direct || self.custom_flags & libc::O_DIRECT != 0 {
            let stat = super::dir::statx(fd.as_raw_fd(), CString::default(), libc::AT_EMPTY_PATH);
            Some(stat.await?.dio_alignment_or_guess())
        } else {
            None
        };
        Ok(File::new(fd, direct))
    }

    fn flags(&self) -> io::Result<i32> {
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => {
                return Err(invalid(
                    "a file must be opened for reading, writing or appending",
                ))
            }
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) => {
                if self.truncate || self.create || self.create_new {
                    return Err(invalid(
                        "create, create_new and truncate need write or append access",
                    ));
                }
            }
            (_, true) => {
                if self.truncate && !self.create_new {
                    return Err(invalid("truncate and append cannot be used together"));
                }
            }
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (false, false, false) => 0,
        };
        let direct = if self.direct { libc::O_DIRECT } else { 0 };
        Ok(libc::O_CLOEXEC | access | creation | direct | (self.custom_flags & !libc::O_ACCMODE))
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `path` as the kernel takes it; a NUL byte inside it is `InvalidInput`.
pub(crate) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {path:?} contains an interior NUL byte"),
        )
    })
}
