//! The readiness backend's kernel: runs an op's SQE as the plain syscall it stands for,
//! at once and without blocking.
//!
//! Every op builds its SQE with [`Completable::prepare`](super::Completable::prepare)
//! on both backends; on the readiness backend it is never handed to a ring but read
//! here, field by field as the kernel's `struct io_uring_sqe` lays it out, and turned
//! into the system call with the same arguments. So an op has one description of what
//! it does, and the two backends cannot drift apart: the same buffer, length, offset,
//! flags and socket address reach the kernel either way, and the result comes back as
//! a CQE's would (`-errno` or the value), for the op's own `complete`.
//!
//! The call is made with the socket's non-blocking behaviour: `MSG_DONTWAIT` for the
//! socket calls, `O_NONBLOCK` (set once per fd, see [`Fds`]) where the call has no such
//! flag. When it would block, the result is [`Exec::Wait`] with the events to wait for;
//! the op waits for them and runs again. Regular files never block in this sense:
//! their calls run to the end on the core's thread (see `docs/architecture.md`).

use std::os::fd::RawFd;

use io_uring::opcode;
use io_uring::squeue::Entry;

/// The kernel's `struct io_uring_sqe` (64 bytes), with the unions named after the use
/// the runtime's opcodes make of them.
#[repr(C)]
#[derive(Clone, Copy)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    /// `off`, or `addr2`.
    off: u64,
    addr: u64,
    len: u32,
    /// `rw_flags`, `msg_flags`, `accept_flags`, `open_flags`, `statx_flags`, ...
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    /// `file_index`, or `addr_len` in its low half.
    file_index: u32,
    addr3: u64,
    pad: u64,
}

const _: () = assert!(std::mem::size_of::<Sqe>() == 64);
const _: () = assert!(std::mem::size_of::<Entry>() == 64);

/// `IORING_FSYNC_DATASYNC`.
const FSYNC_DATASYNC: u32 = 1;

/// What running an SQE came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exec {
    /// The result, as a CQE would carry it: the value, or `-errno`.
    Done(i32),
    /// It would block: wait for these `poll` events on this fd, then run it again.
    Wait(RawFd, u32),
    /// Run it again after the next turn of the backend (a nop's round trip).
    NextTurn,
}

/// What the interpreter needs of the backend: the fds it has made non-blocking.
pub(crate) trait Fds {
    /// Makes sure `fd` has `O_NONBLOCK`, for calls that have no per-call flag.
    fn ensure_nonblocking(&mut self, fd: RawFd);
    /// `fd` is about to be closed.
    fn forget(&mut self, fd: RawFd);
    /// Whether `fd` is a stream socket whose input is known to be used up: its last
    /// receive got less than it asked for (or nothing), and no input was reported since.
    /// A receive then waits for readiness without a call that could only fail.
    fn drained(&mut self, fd: RawFd) -> bool;
    /// A receive on `fd` got `got` bytes of the `asked` for (`got` < 0: would block).
    fn received(&mut self, fd: RawFd, got: i32, asked: usize);
}

/// The result of a syscall, as a CQE's: `-errno` on failure.
fn result(ret: isize) -> i32 {
    if ret < 0 {
        -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        i32::try_from(ret).unwrap_or(i32::MAX)
    }
}

/// Runs `call` again while a signal interrupts it.
fn restart(mut call: impl FnMut() -> isize) -> i32 {
    loop {
        let r = result(call());
        if r != -libc::EINTR {
            return r;
        }
    }
}

/// An offset of `-1` means "at the file position" (streams, pipes, eventfds).
fn at_position(off: u64) -> bool {
    off == u64::MAX
}

/// A positioned call, or the stream call where the file has no positions (a pipe, a
/// socket: `ESPIPE`), as the ring does, which ignores the offset of such a file.
fn positioned(
    fd: RawFd,
    off: u64,
    fds: &mut dyn Fds,
    mut at: impl FnMut(i64) -> isize,
    mut stream: impl FnMut() -> isize,
) -> i32 {
    if !at_position(off) {
        let r = restart(|| at(off as i64));
        if r != -libc::ESPIPE {
            return r;
        }
    }
    fds.ensure_nonblocking(fd);
    restart(&mut stream)
}

/// Runs `entry` once as a plain, non-blocking syscall. `retry` says whether this op ran
/// before and waited for readiness (a connect that reports `EISCONN` then succeeded).
///
/// # Safety
///
/// `entry` was built by an op's `prepare`, and the op is alive and untouched by Rust
/// for the duration of the call: by the [`Completable`](super::Completable) contract
/// (rule 1), every pointer in it is valid for the access its opcode makes, which is all
/// a syscall with those arguments makes.
pub(crate) unsafe fn exec(entry: &Entry, retry: bool, fds: &mut dyn Fds) -> Exec {
    // SAFETY: an `Entry` is a `repr(C)` wrapper of the kernel's 64-byte SQE, and `Sqe`
    // is that layout; every field is a plain integer, valid for any bits.
    let sqe: Sqe = unsafe { std::mem::transmute_copy(entry) };
    let fd = sqe.fd;
    let addr = sqe.addr as *mut libc::c_void;
    let len = sqe.len as usize;
    let off = sqe.off;
    let msg_flags = sqe.op_flags as i32 | libc::MSG_DONTWAIT;
    let would_block = |r: i32, events: i16| {
        if r == -libc::EAGAIN {
            Exec::Wait(fd, events as u32)
        } else {
            Exec::Done(r)
        }
    };
    // SAFETY: (every call below) the pointers are the SQE's, valid for the access the
    // opcode makes, which is exactly the syscall's (the caller's promise); the rest
    // are plain integers the kernel checks.
    unsafe {
        match sqe.opcode {
            // A round trip through the backend, as on the ring: done at the next turn.
            opcode::Nop::CODE if retry => Exec::Done(0),
            opcode::Nop::CODE => Exec::NextTurn,
            opcode::Read::CODE | opcode::ReadFixed::CODE => {
                let r = positioned(
                    fd,
                    off,
                    fds,
                    |at| libc::pread(fd, addr, len, at),
                    || libc::read(fd, addr, len),
                );
                would_block(r, libc::POLLIN)
            }
            opcode::Write::CODE | opcode::WriteFixed::CODE => {
                let r = positioned(
                    fd,
                    off,
                    fds,
                    |at| libc::pwrite(fd, addr, len, at),
                    || libc::write(fd, addr, len),
                );
                would_block(r, libc::POLLOUT)
            }
            opcode::Readv::CODE => {
                let (iov, n) = (addr as *const libc::iovec, len as i32);
                let r = positioned(
                    fd,
                    off,
                    fds,
                    |at| libc::preadv(fd, iov, n, at),
                    || libc::readv(fd, iov, n),
                );
                would_block(r, libc::POLLIN)
            }
            opcode::Writev::CODE => {
                let (iov, n) = (addr as *const libc::iovec, len as i32);
                let r = positioned(
                    fd,
                    off,
                    fds,
                    |at| libc::pwritev(fd, iov, n, at),
                    || libc::writev(fd, iov, n),
                );
                would_block(r, libc::POLLOUT)
            }
            opcode::Recv::CODE => {
                let peek = msg_flags & libc::MSG_PEEK != 0;
                if !peek && fds.drained(fd) {
                    return Exec::Wait(fd, libc::POLLIN as u32);
                }
                let r = restart(|| libc::recv(fd, addr, len, msg_flags));
                if !peek && (r == -libc::EAGAIN || r > 0) {
                    fds.received(fd, r, len);
                }
                would_block(r, libc::POLLIN)
            }
            opcode::Send::CODE | opcode::SendZc::CODE => {
                let r = if sqe.off != 0 {
                    // A destination address (`addr2`, with its length in `addr_len`).
                    let to = sqe.off as *const libc::sockaddr;
                    let to_len = (sqe.file_index & 0xffff) as libc::socklen_t;
                    restart(|| libc::sendto(fd, addr, len, msg_flags, to, to_len))
                } else {
                    restart(|| libc::send(fd, addr, len, msg_flags))
                };
                would_block(r, libc::POLLOUT)
            }
            opcode::SendMsg::CODE => {
                let msg = addr as *const libc::msghdr;
                would_block(restart(|| libc::sendmsg(fd, msg, msg_flags)), libc::POLLOUT)
            }
            opcode::RecvMsg::CODE => {
                let msg = addr as *mut libc::msghdr;
                would_block(restart(|| libc::recvmsg(fd, msg, msg_flags)), libc::POLLIN)
            }
            opcode::Accept::CODE => {
                fds.ensure_nonblocking(fd);
                let name = addr as *mut libc::sockaddr;
                let name_len = off as *mut libc::socklen_t;
                let flags = sqe.op_flags as i32;
                let r = restart(|| libc::accept4(fd, name, name_len, flags) as isize);
                would_block(r, libc::POLLIN)
            }
            opcode::Connect::CODE => {
                fds.ensure_nonblocking(fd);
                let to = addr as *const libc::sockaddr;
                let r = result(libc::connect(fd, to, off as libc::socklen_t) as isize);
                match -r {
                    libc::EINPROGRESS | libc::EALREADY | libc::EAGAIN | libc::EINTR => {
                        Exec::Wait(fd, libc::POLLOUT as u32)
                    }
                    // Connected while it waited.
                    libc::EISCONN if retry => Exec::Done(0),
                    _ => Exec::Done(r),
                }
            }
            opcode::Close::CODE => {
                fds.forget(fd);
                Exec::Done(result(libc::close(fd) as isize))
            }
            opcode::Shutdown::CODE => {
                Exec::Done(result(libc::shutdown(fd, sqe.len as i32) as isize))
            }
            opcode::Socket::CODE => {
                let ty = off as i32;
                Exec::Done(result(libc::socket(fd, ty, sqe.len as i32) as isize))
            }
            opcode::Statx::CODE => {
                let path = addr as *const libc::c_char;
                let buf = off as *mut libc::statx;
                let flags = sqe.op_flags as i32;
                Exec::Done(restart(|| {
                    libc::statx(fd, path, flags, sqe.len, buf) as isize
                }))
            }
            opcode::OpenAt::CODE => {
                let path = addr as *const libc::c_char;
                let flags = sqe.op_flags as i32;
                Exec::Done(restart(|| libc::openat(fd, path, flags, sqe.len) as isize))
            }
            opcode::Fallocate::CODE => {
                let (mode, offset, size) = (sqe.len as i32, off as i64, sqe.addr as i64);
                Exec::Done(restart(|| libc::fallocate(fd, mode, offset, size) as isize))
            }
            opcode::Fsync::CODE => Exec::Done(restart(|| {
                if sqe.op_flags & FSYNC_DATASYNC != 0 {
                    libc::fdatasync(fd) as isize
                } else {
                    libc::fsync(fd) as isize
                }
            })),
            opcode::Ftruncate::CODE => {
                Exec::Done(restart(|| libc::ftruncate(fd, off as i64) as isize))
            }
            opcode::LinkAt::CODE => {
                let (old, new) = (addr as *const libc::c_char, off as *const libc::c_char);
                let (new_dir, flags) = (sqe.len as i32, sqe.op_flags as i32);
                Exec::Done(result(libc::linkat(fd, old, new_dir, new, flags) as isize))
            }
            opcode::SymlinkAt::CODE => {
                let (target, link) = (addr as *const libc::c_char, off as *const libc::c_char);
                Exec::Done(result(libc::symlinkat(target, fd, link) as isize))
            }
            opcode::MkDirAt::CODE => {
                let path = addr as *const libc::c_char;
                Exec::Done(result(libc::mkdirat(fd, path, sqe.len) as isize))
            }
            opcode::RenameAt::CODE => {
                let (old, new) = (addr as *const libc::c_char, off as *const libc::c_char);
                let new_dir = sqe.len as i32;
                Exec::Done(result(libc::syscall(
                    libc::SYS_renameat2,
                    fd,
                    old,
                    new_dir,
                    new,
                    sqe.op_flags,
                ) as isize))
            }
            opcode::UnlinkAt::CODE => {
                let path = addr as *const libc::c_char;
                Exec::Done(result(
                    libc::unlinkat(fd, path, sqe.op_flags as i32) as isize
                ))
            }
            opcode::PollAdd::CODE => {
                // Level-triggered, as the ring's one-shot poll: ready now, or wait.
                let events = sqe.op_flags as i16;
                let mut pfd = libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                };
                match restart(|| libc::poll(&mut pfd, 1, 0) as isize) {
                    0 => Exec::Wait(fd, events as u16 as u32),
                    r if r < 0 => Exec::Done(r),
                    // Not an open fd: the ring's poll fails with EBADF then.
                    _ if pfd.revents & libc::POLLNVAL != 0 => Exec::Done(-libc::EBADF),
                    _ => Exec::Done(i32::from(pfd.revents as u16)),
                }
            }
            // Registered-file updates need a registered-file table, which the readiness
            // backend does not have; the driver's own opcodes never come here.
            _ => Exec::Done(-libc::EOPNOTSUPP),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use io_uring::{opcode, types};

    use super::{exec, Exec, Fds};

    struct Plain;
    impl Fds for Plain {
        fn ensure_nonblocking(&mut self, fd: i32) {
            crate::sys::socket::set_nonblocking_raw(fd, true);
        }
        fn forget(&mut self, _fd: i32) {}
        fn drained(&mut self, _fd: i32) -> bool {
            false
        }
        fn received(&mut self, _fd: i32, _got: i32, _asked: usize) {}
    }

    #[test]
    fn a_recv_waits_for_input_then_reads_what_came() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut buf = vec![0u8; 16];
        let entry = opcode::Recv::new(types::Fd(a.as_raw_fd()), buf.as_mut_ptr(), 16).build();
        // SAFETY: the entry points into `buf`, alive and untouched across each call.
        let first = unsafe { exec(&entry, false, &mut Plain) };
        assert_eq!(first, Exec::Wait(a.as_raw_fd(), libc::POLLIN as u32));
        b.write_all(b"hello").unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { exec(&entry, true, &mut Plain) }, Exec::Done(5));
        assert_eq!(&buf[..5], b"hello");
    }

    #[test]
    fn a_read_at_an_offset_is_a_pread_and_errors_are_negative_errnos() {
        let dir = std::env::temp_dir().join(format!("exec-{}", std::process::id()));
        std::fs::write(&dir, b"0123456789").unwrap();
        let file = std::fs::File::open(&dir).unwrap();
        let mut buf = vec![0u8; 4];
        let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), buf.as_mut_ptr(), 4)
            .offset(3)
            .build();
        // SAFETY: the entry points into `buf`, alive and untouched across the call.
        assert_eq!(unsafe { exec(&entry, false, &mut Plain) }, Exec::Done(4));
        assert_eq!(&buf, b"3456");
        std::fs::remove_file(&dir).unwrap();
        let bad = opcode::Read::new(types::Fd(-1), buf.as_mut_ptr(), 4).build();
        assert_eq!(
            // SAFETY: as above.
            unsafe { exec(&bad, false, &mut Plain) },
            Exec::Done(-libc::EBADF)
        );
    }
}
