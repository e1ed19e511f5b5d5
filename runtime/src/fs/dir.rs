//! Whole-file helpers and operations on paths: each goes through the ring where the
//! kernel has the opcode ([`Probe::supports`](crate::Probe::supports)), and otherwise
//! makes the blocking system call on this core's thread (the same one the standard
//! library makes), which stalls the core's other tasks for its duration.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::path::Path;

use io_uring::opcode;

use super::open_options::cstring;
use super::{File, Metadata};
use crate::buf::IoBuf;
use crate::driver::{self, ops, Op};

/// `statx(2)` of `path` relative to `dirfd`, through the ring where it can be.
pub(crate) async fn statx(dirfd: RawFd, path: CString, flags: i32) -> io::Result<Metadata> {
    if driver::op_available(opcode::Statx::CODE) {
        let op = ops::Statx::new(dirfd, path, flags, super::metadata::STATX_MASK);
        return Ok(Metadata::from_statx(Op::new(op).await?));
    }
    statx_blocking(dirfd, &path, flags)
}

/// `statx(2)` of `path` relative to `dirfd` as a plain, blocking system call.
pub(crate) fn statx_blocking(dirfd: RawFd, path: &CStr, flags: i32) -> io::Result<Metadata> {
    // SAFETY: statx is plain old data; all zeroes is a valid value.
    let mut stat: libc::statx = unsafe { std::mem::zeroed() };
    // `path` is a NUL-terminated string and `stat` a live statx, both outliving the call.
    crate::sys::syscall!(statx(
        dirfd,
        path.as_ptr(),
        flags,
        super::metadata::STATX_MASK,
        &mut stat
    ))?;
    Ok(Metadata::from_statx(stat))
}

/// Reads the whole file at `path`.
///
/// ```
/// # runtime::Builder::new().cores(1).pin(false).build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("rt-doc-read-{}", std::process::id()));
/// runtime::fs::write(&path, "hello").await.unwrap();
/// assert_eq!(runtime::fs::read(&path).await.unwrap(), b"hello");
/// runtime::fs::remove_file(&path).await.unwrap();
/// # });
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let file = File::open(path).await?;
    // The size is a hint: the file may grow or shrink while it is read.
    let hint = file.metadata().await.map_or(0, |m| m.len());
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).max(4096) + 1);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(4096));
        }
        let start = buf.len();
        let (result, slice) = file.read_at(buf.slice(start..), start as u64).await;
        buf = slice.into_inner();
        match result {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.close().await?;
    Ok(buf)
}

/// Writes `data` as the whole content of the file at `path`, creating it (mode
/// `0o666` less the umask) or truncating it first.
pub async fn write(path: impl AsRef<Path>, data: impl Into<Vec<u8>>) -> io::Result<()> {
    let file = File::create(path).await?;
    let (result, _) = file.write_all_at(data.into(), 0).await;
    result?;
    file.close().await
}

/// The metadata of the file at `path`, following symbolic links.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    statx(libc::AT_FDCWD, cstring(path.as_ref())?, 0).await
}

/// The metadata of `path` itself: a symbolic link is not followed.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    statx(
        libc::AT_FDCWD,
        cstring(path.as_ref())?,
        libc::AT_SYMLINK_NOFOLLOW,
    )
    .await
}

/// Removes the file (or symbolic link) at `path` (`IORING_OP_UNLINKAT`, else
/// `unlink(2)`).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    if driver::op_available(opcode::UnlinkAt::CODE) {
        Op::new(ops::UnlinkAt::new(cstring(path)?, 0)).await
    } else {
        std::fs::remove_file(path)
    }
}

/// Removes the empty directory at `path` (`IORING_OP_UNLINKAT` with `AT_REMOVEDIR`,
/// else `rmdir(2)`).
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    if driver::op_available(opcode::UnlinkAt::CODE) {
        Op::new(ops::UnlinkAt::new(cstring(path)?, libc::AT_REMOVEDIR)).await
    } else {
        std::fs::remove_dir(path)
    }
}

/// Renames `from` to `to`, replacing `to` if it exists (`IORING_OP_RENAMEAT`, else
/// `rename(2)`).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    if driver::op_available(opcode::RenameAt::CODE) {
        Op::new(ops::RenameAt::new(cstring(from)?, cstring(to)?)).await
    } else {
        std::fs::rename(from, to)
    }
}

/// Creates the directory `path` with mode `0o777` less the umask
/// (`IORING_OP_MKDIRAT`, else `mkdir(2)`). Its parent must exist.
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    if driver::op_available(opcode::MkDirAt::CODE) {
        Op::new(ops::MkDirAt::new(cstring(path)?, 0o777)).await
    } else {
        std::fs::create_dir(path)
    }
}

/// Creates the directory `path` and any missing parents. A directory that already
/// exists (or appears meanwhile) is fine; anything else in the way is an error.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    // Walk up to the first ancestor that exists, then create downwards.
    let mut missing = Vec::new();
    let mut at = path;
    loop {
        if at.as_os_str().is_empty() {
            break;
        }
        match create_dir_tolerant(at).await {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(at);
                match at.parent() {
                    Some(parent) => at = parent,
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    for dir in missing.into_iter().rev() {
        create_dir_tolerant(dir).await?;
    }
    Ok(())
}

/// `create_dir`, where an existing directory counts as success.
async fn create_dir_tolerant(path: &Path) -> io::Result<()> {
    match create_dir(path).await {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if metadata(path).await.is_ok_and(|m| m.is_dir()) {
                Ok(())
            } else {
                Err(e)
            }
        }
        other => other,
    }
}

/// Makes `link` a new hard link to the file at `original` (`IORING_OP_LINKAT`, else
/// `link(2)`).
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    if driver::op_available(opcode::LinkAt::CODE) {
        Op::new(ops::LinkAt::new(cstring(original)?, cstring(link)?)).await
    } else {
        std::fs::hard_link(original, link)
    }
}

/// Makes `link` a symbolic link whose content is `original` (`IORING_OP_SYMLINKAT`,
/// else `symlink(2)`).
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    if driver::op_available(opcode::SymlinkAt::CODE) {
        Op::new(ops::SymlinkAt::new(cstring(original)?, cstring(link)?)).await
    } else {
        std::os::unix::fs::symlink(original, link)
    }
}
