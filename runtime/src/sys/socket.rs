//! Socket addresses in the kernel's layout, and the socket system calls that stay
//! synchronous (creating, binding, listening, options).

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A socket address as the kernel reads and writes it: a `sockaddr_storage` and the
/// length in use. Ops keep it boxed, so the kernel's pointer to it stays put.
#[derive(Clone)]
pub(crate) struct SockAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl SockAddr {
    /// An empty address for the kernel to fill (accept, recvmsg).
    pub(crate) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value
            // (family AF_UNSPEC).
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    pub(crate) fn family(&self) -> libc::c_int {
        libc::c_int::from(self.storage.ss_family)
    }

    pub(crate) fn from_inet(addr: &SocketAddr) -> SockAddr {
        let mut out = SockAddr::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { out.as_mut_ptr().cast::<libc::sockaddr_in>().write(sin) };
                out.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { out.as_mut_ptr().cast::<libc::sockaddr_in6>().write(sin6) };
                out.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        out
    }

    /// The address of a Unix socket at `path` (a leading NUL byte names an abstract
    /// socket).
    pub(crate) fn from_unix_path(path: &Path) -> io::Result<SockAddr> {
        let bytes = path.as_os_str().as_bytes();
        let mut out = SockAddr::empty();
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_un.
        let sun = unsafe { &mut *out.as_mut_ptr().cast::<libc::sockaddr_un>() };
        if bytes.len() >= sun.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "Unix socket path {} is {} bytes; the limit is {}",
                    path.display(),
                    bytes.len(),
                    sun.sun_path.len() - 1
                ),
            ));
        }
        if bytes.first() != Some(&0) && bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Unix socket path contains a NUL byte",
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let base = mem::size_of::<libc::sa_family_t>();
        // A path gets its terminating NUL counted; an abstract name is exactly its bytes.
        let extra = usize::from(bytes.first() != Some(&0) && !bytes.is_empty());
        out.len = (base + bytes.len() + extra) as libc::socklen_t;
        Ok(out)
    }

    /// The address as an IP socket address, if it is one.
    pub(crate) fn to_inet(&self) -> io::Result<SocketAddr> {
        match self.family() {
            libc::AF_INET => {
                // SAFETY: the kernel wrote an AF_INET address, so the storage holds a
                // sockaddr_in.
                let sin = unsafe { &*self.as_ptr().cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for AF_INET6.
                let sin6 = unsafe { &*self.as_ptr().cast::<libc::sockaddr_in6>() };
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected an IPv4 or IPv6 address, got address family {family}"),
            )),
        }
    }

    /// The address as a Unix socket address, if it is one.
    pub(crate) fn to_unix(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::SocketAddr as UnixAddr;
        // A peer without a name (unbound, or one end of a pair): accept reports only
        // the family, recvmsg nothing at all. std has no constructor for an unnamed
        // address, but an unbound socket's own address is one.
        if (self.len as usize) <= mem::size_of::<libc::sa_family_t>() {
            return std::os::unix::net::UnixDatagram::unbound()?.local_addr();
        }
        if self.family() != libc::AF_UNIX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "expected a Unix address, got address family {}",
                    self.family()
                ),
            ));
        }
        // SAFETY: the family is AF_UNIX, so the storage holds a sockaddr_un.
        let sun = unsafe { &*self.as_ptr().cast::<libc::sockaddr_un>() };
        let base = mem::size_of::<libc::sa_family_t>();
        let len = (self.len as usize)
            .saturating_sub(base)
            .min(sun.sun_path.len());
        let path: Vec<u8> = sun.sun_path[..len].iter().map(|&c| c as u8).collect();
        // The length checked above leaves at least one byte of path.
        if path.first() == Some(&0) {
            UnixAddr::from_abstract_name(&path[1..])
        } else {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            UnixAddr::from_pathname(std::ffi::OsStr::from_bytes(&path[..end]))
        }
    }
}

/// A close-on-exec socket, made synchronously (for binds, which are synchronous).
pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // socket takes plain integers.
    let fd = super::syscall!(socket(domain, ty | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: `fd` was just returned by socket and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn bind(fd: &OwnedFd, addr: &SockAddr) -> io::Result<()> {
    // The address points to `len` valid bytes of a live SockAddr.
    super::syscall!(bind(fd.as_raw_fd(), addr.as_ptr(), addr.len)).map(drop)
}

pub(crate) fn listen(fd: &OwnedFd, backlog: i32) -> io::Result<()> {
    super::syscall!(listen(fd.as_raw_fd(), backlog)).map(drop)
}

/// `getsockname` (`peer` false) or `getpeername` (`peer` true).
pub(crate) fn name(fd: RawFd, peer: bool) -> io::Result<SockAddr> {
    let mut addr = SockAddr::empty();
    let (ptr, len) = (addr.as_mut_ptr(), &mut addr.len as *mut libc::socklen_t);
    if peer {
        // Both pointers are into `addr`, which outlives the call; len holds its size.
        super::syscall!(getpeername(fd, ptr, len))?;
    } else {
        // As above.
        super::syscall!(getsockname(fd, ptr, len))?;
    }
    Ok(addr)
}

pub(crate) fn set_opt<T: Copy>(fd: RawFd, level: i32, name: i32, value: T) -> io::Result<()> {
    // The pointer is to a live `T` of the size passed.
    super::syscall!(setsockopt(
        fd,
        level,
        name,
        (&value as *const T).cast(),
        mem::size_of::<T>() as libc::socklen_t
    ))
    .map(drop)
}

pub(crate) fn get_opt<T: Copy + Default>(fd: RawFd, level: i32, name: i32) -> io::Result<T> {
    let mut value = T::default();
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // Both pointers are to live locals; len holds the size of `value`.
    super::syscall!(getsockopt(
        fd,
        level,
        name,
        (&mut value as *mut T).cast(),
        &mut len
    ))?;
    Ok(value)
}

/// A connected pair of Unix sockets of type `ty`.
pub(crate) fn socketpair(ty: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // The pointer is to a live array of two ints, as socketpair expects.
    super::syscall!(socketpair(
        libc::AF_UNIX,
        ty | libc::SOCK_CLOEXEC,
        0,
        fds.as_mut_ptr()
    ))?;
    // SAFETY: both fds were just returned by socketpair and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Clears `O_NONBLOCK`: io_uring answers an op on a non-blocking fd that cannot
/// proceed with `-EAGAIN` instead of waiting for it, so adopted sockets are made
/// blocking (the ring never blocks a thread on them).
pub(crate) fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // fcntl with F_GETFL/F_SETFL takes plain integers.
    let flags = super::syscall!(fcntl(raw, libc::F_GETFL))?;
    if flags & libc::O_NONBLOCK != 0 {
        super::syscall!(fcntl(raw, libc::F_SETFL, flags & !libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Sets or clears `O_NONBLOCK` on `fd` (the readiness backend's sockets, pipes and
/// eventfds); `false` if the fd has no flags to set (it is not open).
pub(crate) fn set_nonblocking_raw(fd: RawFd, nonblocking: bool) -> bool {
    // fcntl with F_GETFL/F_SETFL takes plain integers.
    let Ok(flags) = super::syscall!(fcntl(fd, libc::F_GETFL)) else {
        return false;
    };
    let wanted = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    wanted == flags || super::syscall!(fcntl(fd, libc::F_SETFL, wanted)).is_ok()
}
