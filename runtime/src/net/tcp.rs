//! TCP: listeners, streams, and a socket builder for options set before bind/connect.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::buf::{IoBuf, IoBufMut};

use super::{
    domain_of, each_addr, in_use, resolve, socket_traits, stream_io, Accept, Accepted, Incoming,
    RecvStream, Socket,
};
use crate::sys::socket::{self as sys, SockAddr};

/// Backlog of [`TcpListener::bind`] (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 1024;

/// A TCP socket listening for connections.
///
/// [`bind`](TcpListener::bind) makes one listener that shares its port with nobody,
/// as the standard library's does. To serve one port on every core, make one listener
/// per core with [`bind_per_core`](TcpListener::bind_per_core). Use [`TcpSocket`] for
/// another backlog or other options.
pub struct TcpListener {
    socket: Socket,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works, if it names several) with
    /// `SO_REUSEADDR` on (a restarted server may bind a port whose old connections
    /// are still in `TIME_WAIT`) and a backlog of 1024, and listens.
    ///
    /// Port 0 asks the kernel for a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// A port another socket listens on is an [`io::ErrorKind::AddrInUse`] error
    /// whose message names the address; the port is never shared (no
    /// `SO_REUSEPORT`).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let socket = TcpSocket::for_addr(&addr)?;
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(BACKLOG)
        })
    }

    /// Binds `cores` listeners to one port, one for each core to
    /// [`take`](CoreListeners::take), and listens on all of them: the kernel spreads
    /// the connections over them (`SO_REUSEPORT`). Port 0 picks one free port, the
    /// same for every core. Call it once, on any thread, before the cores serve
    /// (with [`Runtime::run_on_all`](crate::Runtime::run_on_all), or with
    /// [`spawn_on`](crate::spawn_on) from `#[runtime::main]`, where
    /// [`core_count`](crate::core_count) is the number of cores).
    ///
    /// The port is shared among these listeners only. The first is bound and
    /// listening before it allows sharing, exactly like [`bind`](Self::bind), so
    /// the call fails if any other socket already listens on the port, even one
    /// with `SO_REUSEPORT` of a program of the same user (which the kernel would
    /// otherwise let join); the others then join the first. (A program of the same
    /// user that binds the port with `SO_REUSEPORT` *later* is let in by the
    /// kernel, as it is for any `SO_REUSEPORT` listener: that takes a deliberate
    /// choice on its side.)
    ///
    /// ```
    /// use runtime::net::TcpListener;
    ///
    /// let mut rt = runtime::Builder::new().cores(2).pin(false).build()?;
    /// // Port 0: the kernel picks a free port, the same one for every core.
    /// let listeners = TcpListener::bind_per_core("127.0.0.1:0", 2)?;
    /// let addr = listeners.local_addr();
    /// let ports = rt.run_on_all(move |core| {
    ///     // Called on `core`: its listener stays there.
    ///     let listener = listeners.take(core);
    ///     async move {
    ///         let listener = listener?;
    ///         // Serve: `loop { let (stream, _) = listener.accept().await?; ... }`
    ///         Ok::<_, std::io::Error>(listener.local_addr()?.port())
    ///     }
    /// });
    /// for port in ports {
    ///     assert_eq!(port?, addr.port());
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AddrInUse`], with the address in its message, if another
    /// socket listens on the port; [`io::ErrorKind::InvalidInput`] for zero cores.
    pub fn bind_per_core(addr: impl ToSocketAddrs, cores: usize) -> io::Result<CoreListeners> {
        if cores == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bind_per_core: a listener for each of 0 cores is no listener",
            ));
        }
        each_addr(addr, |addr| {
            let first = shared_listener(addr, false)?;
            let addr = sys::name(first.as_raw_fd(), false)?.to_inet()?;
            let mut listeners = Vec::with_capacity(cores);
            listeners.push(Some(first));
            for _ in 1..cores {
                listeners.push(Some(shared_listener(addr, true)?));
            }
            Ok(CoreListeners {
                shared: Arc::new(SharedPort {
                    addr,
                    listeners: Mutex::new(listeners),
                }),
            })
        })
    }

    /// Takes over a listening standard socket (made blocking: the ring waits for it).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            socket: Socket::adopt(OwnedFd::from(listener))?,
        })
    }

    /// Gives the socket back as a standard listener, to move it to another thread or
    /// core, where [`from_std`](Self::from_std) takes it over again (runtime sockets
    /// stay on their thread: they are `!Send`). The socket is in blocking mode.
    ///
    /// Nothing of the runtime's touches the socket afterwards: what this core had
    /// queued goes to the kernel first, while the socket is still the runtime's, and
    /// ops on it that were dropped in flight are waited for (they were cancelled), so
    /// no late operation can reach it, or whatever file later takes its number.
    pub fn into_std(self) -> std::net::TcpListener {
        std::net::TcpListener::from(self.socket.into_std_fd())
    }

    /// Waits for a connection.
    ///
    /// If the future is dropped and a connection is accepted anyway, it is closed.
    #[inline]
    pub fn accept(&self) -> Accept<'_, TcpStream> {
        Accept::new(&self.socket)
    }

    /// The connections as they come, as a `Stream` (multishot accept); see
    /// [`Incoming`].
    pub fn incoming(&self) -> Incoming<'_, TcpStream> {
        Incoming::new(self.socket.incoming())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()?.to_inet()
    }

    /// Sets the IP time-to-live of accepted connections' packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_ttl(ttl)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.ttl()
    }
}

socket_traits!(TcpListener);

/// One listening socket of [`TcpListener::bind_per_core`] on `addr`. The first
/// (`join` false) binds and listens without `SO_REUSEPORT`, so it fails if any other
/// socket listens on the port, and cannot join another program's group; only then
/// does it allow sharing, for the others (`join` true) to join it.
fn shared_listener(addr: SocketAddr, join: bool) -> io::Result<OwnedFd> {
    let fd = sys::socket(domain_of(&addr), libc::SOCK_STREAM)?;
    let raw = fd.as_raw_fd();
    let on: libc::c_int = 1;
    sys::set_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, on)?;
    if join {
        sys::set_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, on)?;
    }
    sys::bind(&fd, &SockAddr::from_inet(&addr)).map_err(|e| in_use(&addr, e))?;
    sys::listen(&fd, BACKLOG as i32).map_err(|e| in_use(&addr, e))?;
    if !join {
        // Set after listen, which put the socket in the kernel's listening table on
        // its own: from here the kernel lets our later sockets (same user,
        // SO_REUSEPORT) join this one's group.
        sys::set_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, on)?;
    }
    Ok(fd)
}

/// Every core's listener on one port, made by [`TcpListener::bind_per_core`]; each
/// core [`take`](CoreListeners::take)s its own.
///
/// It is `Send + Sync` and cheap to clone (clones share the listeners), so a
/// `run_on_all` closure or each `spawn_on` job may hold it. The listeners not yet
/// taken are closed when the last clone is dropped. Until then, one that is never
/// taken still gets its share of the connections, which wait unanswered: take every
/// core's.
#[derive(Clone, Debug)]
pub struct CoreListeners {
    shared: Arc<SharedPort>,
}

#[derive(Debug)]
struct SharedPort {
    addr: SocketAddr,
    /// By core; `None` once taken.
    listeners: Mutex<Vec<Option<OwnedFd>>>,
}

impl CoreListeners {
    /// Core `core`'s listener, to use on the core (thread) that takes it: call this
    /// on that core, in the `run_on_all` closure or in the future.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `core` is not below
    /// [`cores`](Self::cores), or if its listener was taken already.
    pub fn take(&self, core: usize) -> io::Result<TcpListener> {
        let mut listeners = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = listeners.len();
        let slot = listeners.get_mut(core).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: no listener for core {core}; there are {count} (cores 0 to {})",
                    self.shared.addr,
                    count - 1
                ),
            )
        })?;
        let fd = slot.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: the listener of core {core} was taken already",
                    self.shared.addr
                ),
            )
        })?;
        drop(listeners);
        Ok(TcpListener {
            socket: Socket::from_fd(fd),
        })
    }

    /// The address every listener is bound to (with the port the kernel picked, if
    /// port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// How many listeners there are: one per core, cores `0..cores()`.
    pub fn cores(&self) -> usize {
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A TCP connection.
///
/// Reads and writes take owned buffers and hand them back. Several operations may be
/// in flight at once on one stream (a read and a write from two tasks, say, since
/// they take `&self`).
pub struct TcpStream {
    socket: Socket,
}

impl Accepted for TcpStream {
    fn from_socket(socket: Socket) -> TcpStream {
        TcpStream { socket }
    }
}

impl TcpStream {
    /// Connects to `addr` (each address it names in turn, until one answers). The
    /// socket is made through the ring (`IORING_OP_SOCKET`) where the kernel has it.
    ///
    /// If the future is dropped while connecting, the half-open socket is closed once
    /// the kernel is done with it.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in resolve(addr)? {
            match Socket::connect_new(
                domain_of(&addr),
                libc::SOCK_STREAM,
                SockAddr::from_inet(&addr),
            )
            .await
            {
                Ok(socket) => return Ok(TcpStream { socket }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Takes over a connected standard stream (made blocking: the ring waits for it).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            socket: Socket::adopt(OwnedFd::from(stream))?,
        })
    }

    /// Gives the socket back as a standard stream, to move it to another thread or
    /// core, where [`from_std`](Self::from_std) takes it over again (runtime sockets
    /// stay on their thread: they are `!Send`). The socket is in blocking mode.
    ///
    /// Nothing of the runtime's touches the socket afterwards: what this core had
    /// queued goes to the kernel first, while the socket is still the runtime's, and
    /// ops on it that were dropped in flight are waited for (they were cancelled), so
    /// no late operation can reach it, or whatever file later takes its number.
    pub fn into_std(self) -> std::net::TcpStream {
        std::net::TcpStream::from(self.socket.into_std_fd())
    }

    stream_io!();

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()?.to_inet()
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()?.to_inet()
    }

    /// Sets `TCP_NODELAY`: small writes go out at once instead of being coalesced
    /// (Nagle's algorithm off). Request/response protocols want it.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket
            .set_flag(libc::IPPROTO_TCP, libc::TCP_NODELAY, nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.flag(libc::IPPROTO_TCP, libc::TCP_NODELAY)
    }

    /// Sets the IP time-to-live of this connection's packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_ttl(ttl)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.ttl()
    }

    /// Turns TCP keepalive on, probing after `idle` without traffic (whole seconds, at
    /// least one), or off with `None`.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.socket.set_keepalive(idle)
    }

    /// The keepalive idle time, `None` if keepalive is off.
    pub fn keepalive(&self) -> io::Result<Option<Duration>> {
        self.socket.keepalive()
    }
}

socket_traits!(TcpStream);

/// A TCP socket not yet bound or connected, for options that must be set before:
/// port sharing, the listen backlog, buffer sizes.
///
/// ```no_run
/// # runtime::Builder::new().cores(1).build().unwrap().block_on(async {
/// let addr = "127.0.0.1:8080".parse().unwrap();
/// let socket = runtime::net::TcpSocket::for_addr(&addr)?;
/// socket.set_reuseaddr(true)?;
/// socket.bind(addr)?;
/// let listener = socket.listen(4096)?;
/// # Ok::<(), std::io::Error>(())
/// # });
/// ```
pub struct TcpSocket {
    socket: Socket,
}

impl TcpSocket {
    /// An IPv4 TCP socket.
    pub fn new_v4() -> io::Result<TcpSocket> {
        Socket::new_sync(libc::AF_INET, libc::SOCK_STREAM).map(|socket| TcpSocket { socket })
    }

    /// An IPv6 TCP socket.
    pub fn new_v6() -> io::Result<TcpSocket> {
        Socket::new_sync(libc::AF_INET6, libc::SOCK_STREAM).map(|socket| TcpSocket { socket })
    }

    /// A TCP socket of `addr`'s family.
    pub fn for_addr(addr: &SocketAddr) -> io::Result<TcpSocket> {
        Socket::new_sync(domain_of(addr), libc::SOCK_STREAM).map(|socket| TcpSocket { socket })
    }

    /// `SO_REUSEADDR`: bind a port that still has connections in `TIME_WAIT`.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        self.socket
            .set_flag(libc::SOL_SOCKET, libc::SO_REUSEADDR, on)
    }

    /// `SO_REUSEPORT`: several sockets (one per core) bind the same address and the
    /// kernel spreads connections over them.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        self.socket
            .set_flag(libc::SOL_SOCKET, libc::SO_REUSEPORT, on)
    }

    /// `TCP_NODELAY` (see [`TcpStream::set_nodelay`]).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket
            .set_flag(libc::IPPROTO_TCP, libc::TCP_NODELAY, on)
    }

    /// Keepalive (see [`TcpStream::set_keepalive`]).
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.socket.set_keepalive(idle)
    }

    /// `SO_SNDBUF`, the kernel's send buffer size (it doubles the value asked).
    pub fn set_send_buffer_size(&self, bytes: u32) -> io::Result<()> {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_SNDBUF, bytes)
    }

    /// `SO_RCVBUF`, the kernel's receive buffer size (it doubles the value asked).
    pub fn set_recv_buffer_size(&self, bytes: u32) -> io::Result<()> {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)
    }

    /// Binds to `addr`. A taken address is an [`io::ErrorKind::AddrInUse`] error
    /// that names it.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.socket
            .bind(&SockAddr::from_inet(&addr))
            .map_err(|e| in_use(&addr, e))
    }

    /// Listens, with `backlog` connections queued at most. Another socket that
    /// listens on the port already is an [`io::ErrorKind::AddrInUse`] error.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        if let Err(e) = self.socket.listen(backlog) {
            return Err(match self.socket.local_addr().and_then(|a| a.to_inet()) {
                Ok(addr) => in_use(&addr, e),
                Err(_) => e,
            });
        }
        Ok(TcpListener {
            socket: self.socket,
        })
    }

    /// Connects to `addr` through the ring.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        self.socket.connect(SockAddr::from_inet(&addr)).await?;
        Ok(TcpStream {
            socket: self.socket,
        })
    }
}

socket_traits!(TcpSocket);
