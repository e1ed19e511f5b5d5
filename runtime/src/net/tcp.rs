//! TCP: listeners, streams, and a socket builder for options set before bind/connect.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::buf::{IoBuf, IoBufMut};

use super::{
    domain_of, each_addr, resolve, socket_traits, stream_io, Accept, Accepted, Incoming,
    RecvStream, Socket,
};
use crate::sys::socket::SockAddr;

/// Backlog of [`TcpListener::bind`] (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 1024;

/// A TCP socket listening for connections.
///
/// [`bind`](TcpListener::bind) sets `SO_REUSEPORT`, so each core may bind the same
/// address and the kernel spreads connections over the cores. Use [`TcpSocket`] for
/// another backlog or without port sharing.
pub struct TcpListener {
    socket: Socket,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works, if it names several) with
    /// `SO_REUSEADDR` and `SO_REUSEPORT` on and a backlog of 1024, and listens.
    ///
    /// Port 0 asks the kernel for a free port: see [`local_addr`](Self::local_addr).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let socket = TcpSocket::for_addr(&addr)?;
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            socket.listen(BACKLOG)
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

    /// Binds to `addr`.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.socket.bind(&SockAddr::from_inet(&addr))
    }

    /// Listens, with `backlog` connections queued at most.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self.socket.listen(backlog)?;
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
