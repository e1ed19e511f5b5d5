//! Unix domain sockets: streams and datagrams, by path or abstract name.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use crate::buf::{IoBuf, IoBufMut};
use crate::sys::socket::{self as sys, SockAddr};

use super::{
    socket_traits, stream_io, Accept, Accepted, Incoming, Read, RecvFrom, RecvStream, SendTo,
    Socket, Write,
};

/// Backlog of [`UnixListener::bind`].
const BACKLOG: i32 = 1024;

/// `e`, or for a path in use, an [`io::ErrorKind::AddrInUse`] error that names it.
fn path_in_use(path: &Path, e: io::Error) -> io::Error {
    super::in_use_because(
        &path.display(),
        "a socket is bound there, or its file was left behind (remove it if no program \
         listens)",
        e,
    )
}

/// A Unix stream socket listening for connections.
pub struct UnixListener {
    socket: Socket,
}

impl UnixListener {
    /// Binds to `path` (a leading NUL byte names an abstract socket) and listens. The
    /// file is not removed when the listener is dropped.
    ///
    /// A path that exists already (a socket file left behind, or one a program
    /// listens on) is an [`io::ErrorKind::AddrInUse`] error that names it: the file
    /// is never removed to make room.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let addr = SockAddr::from_unix_path(path)?;
        let socket = Socket::new_sync(libc::AF_UNIX, libc::SOCK_STREAM)?;
        socket.bind(&addr).map_err(|e| path_in_use(path, e))?;
        socket.listen(BACKLOG)?;
        Ok(UnixListener { socket })
    }

    /// Takes over a listening standard socket (made blocking: the ring waits for it).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
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
    pub fn into_std(self) -> std::os::unix::net::UnixListener {
        std::os::unix::net::UnixListener::from(self.socket.into_std_fd())
    }

    /// Waits for a connection. If the future is dropped and a connection is accepted
    /// anyway, it is closed.
    #[inline]
    pub fn accept(&self) -> Accept<'_, UnixStream> {
        Accept::new(&self.socket)
    }

    /// The connections as they come, as a `Stream` (multishot accept); see
    /// [`Incoming`].
    pub fn incoming(&self) -> Incoming<'_, UnixStream> {
        Incoming::new(self.socket.incoming())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()?.to_unix()
    }
}

socket_traits!(UnixListener);

/// A Unix stream connection.
pub struct UnixStream {
    socket: Socket,
}

impl Accepted for UnixStream {
    fn from_socket(socket: Socket) -> UnixStream {
        UnixStream { socket }
    }
}

impl UnixStream {
    /// Connects to the socket at `path`, through the ring. If the future is dropped
    /// while connecting, the socket is closed once the kernel is done with it.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::from_unix_path(path.as_ref())?;
        let socket = Socket::connect_new(libc::AF_UNIX, libc::SOCK_STREAM, addr).await?;
        Ok(UnixStream { socket })
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = sys::socketpair(libc::SOCK_STREAM)?;
        Ok((
            UnixStream {
                socket: Socket::from_fd(a),
            },
            UnixStream {
                socket: Socket::from_fd(b),
            },
        ))
    }

    /// Takes over a connected standard stream (made blocking: the ring waits for it).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
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
    pub fn into_std(self) -> std::os::unix::net::UnixStream {
        std::os::unix::net::UnixStream::from(self.socket.into_std_fd())
    }

    stream_io!();

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()?.to_unix()
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()?.to_unix()
    }
}

socket_traits!(UnixStream);

/// A Unix datagram socket.
pub struct UnixDatagram {
    socket: Socket,
}

impl UnixDatagram {
    /// Binds to `path` (a leading NUL byte names an abstract socket). A path that
    /// exists already is an [`io::ErrorKind::AddrInUse`] error that names it.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let addr = SockAddr::from_unix_path(path)?;
        let socket = Socket::new_sync(libc::AF_UNIX, libc::SOCK_DGRAM)?;
        socket.bind(&addr).map_err(|e| path_in_use(path, e))?;
        Ok(UnixDatagram { socket })
    }

    /// A socket bound to no address (it can send, and receive once connected).
    pub fn unbound() -> io::Result<UnixDatagram> {
        let socket = Socket::new_sync(libc::AF_UNIX, libc::SOCK_DGRAM)?;
        Ok(UnixDatagram { socket })
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = sys::socketpair(libc::SOCK_DGRAM)?;
        Ok((
            UnixDatagram {
                socket: Socket::from_fd(a),
            },
            UnixDatagram {
                socket: Socket::from_fd(b),
            },
        ))
    }

    /// Takes over a standard datagram socket (made blocking: the ring waits for it).
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            socket: Socket::adopt(OwnedFd::from(socket))?,
        })
    }

    /// Gives the socket back as a standard datagram socket, to move it to another thread or
    /// core, where [`from_std`](Self::from_std) takes it over again (runtime sockets
    /// stay on their thread: they are `!Send`). The socket is in blocking mode.
    ///
    /// Nothing of the runtime's touches the socket afterwards: what this core had
    /// queued goes to the kernel first, while the socket is still the runtime's, and
    /// ops on it that were dropped in flight are waited for (they were cancelled), so
    /// no late operation can reach it, or whatever file later takes its number.
    pub fn into_std(self) -> std::os::unix::net::UnixDatagram {
        std::os::unix::net::UnixDatagram::from(self.socket.into_std_fd())
    }

    /// Sets the default peer for [`send`](Self::send) and [`recv`](Self::recv).
    pub async fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let addr = SockAddr::from_unix_path(path.as_ref())?;
        self.socket.connect(addr).await
    }

    /// Sends `buf`'s initialised bytes as one datagram to the socket at `path`.
    /// A path that cannot be a socket address (too long, say) is an `InvalidInput`
    /// error, with the buffer, when the future is first polled.
    #[inline]
    pub fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> SendTo<'_, B> {
        SendTo::new(&self.socket, buf, SockAddr::from_unix_path(path.as_ref()))
    }

    /// Receives one datagram into `buf`; returns its length and sender, with the
    /// buffer's length set to the datagram's (see
    /// [`buf`](crate::buf#what-a-read-does-to-the-buffers-length)).
    #[inline]
    pub fn recv_from<B: IoBufMut>(&self, buf: B) -> RecvFrom<'_, B, SocketAddr> {
        RecvFrom::new(&self.socket, buf)
    }

    /// Sends one datagram to the connected peer.
    #[inline]
    pub fn send<B: IoBuf>(&self, buf: B) -> Write<'_, B> {
        Write::new(&self.socket, buf)
    }

    /// Receives one datagram from the connected peer.
    #[inline]
    pub fn recv<B: IoBufMut>(&self, buf: B) -> Read<'_, B> {
        Read::new(&self.socket, buf)
    }

    /// This socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()?.to_unix()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()?.to_unix()
    }
}

socket_traits!(UnixDatagram);
