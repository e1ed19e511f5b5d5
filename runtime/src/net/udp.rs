//! UDP sockets.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;

use crate::buf::{IoBuf, IoBufMut};
use crate::sys::socket::SockAddr;

use super::{domain_of, each_addr, resolve, socket_traits, Read, RecvFrom, SendTo, Socket, Write};

/// A UDP socket: datagrams to and from any address, or to and from one peer after
/// [`connect`](UdpSocket::connect).
pub struct UdpSocket {
    socket: Socket,
}

impl UdpSocket {
    /// Binds to `addr` (the first address that works, if it names several).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |addr| {
            let socket = Socket::new_sync(domain_of(&addr), libc::SOCK_DGRAM)?;
            socket.bind(&SockAddr::from_inet(&addr))?;
            Ok(UdpSocket { socket })
        })
    }

    /// Takes over a standard UDP socket (made blocking: the ring waits for it).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            socket: Socket::adopt(OwnedFd::from(socket))?,
        })
    }

    /// Gives the socket back as a standard socket, to move it to another thread or
    /// core, where [`from_std`](Self::from_std) takes it over again (runtime sockets
    /// stay on their thread: they are `!Send`). The socket is in blocking mode.
    ///
    /// Nothing of the runtime's touches the socket afterwards: what this core had
    /// queued goes to the kernel first, while the socket is still the runtime's, and
    /// ops on it that were dropped in flight are waited for (they were cancelled), so
    /// no late operation can reach it, or whatever file later takes its number.
    pub fn into_std(self) -> std::net::UdpSocket {
        std::net::UdpSocket::from(self.socket.into_std_fd())
    }

    /// Sets the default peer: [`send`](Self::send) goes there and only its datagrams
    /// are received.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let mut last = None;
        for addr in resolve(addr)? {
            match self.socket.connect(SockAddr::from_inet(&addr)).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Sends `buf`'s initialised bytes as one datagram to `addr`; returns how many
    /// were sent.
    #[inline]
    pub fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> SendTo<'_, B> {
        SendTo::new(&self.socket, buf, Ok(SockAddr::from_inet(&addr)))
    }

    /// Receives one datagram into `buf` (up to its capacity; the rest of a longer one
    /// is dropped); returns its length and sender, with the buffer's length set to the
    /// datagram's (see [`buf`](crate::buf#what-a-read-does-to-the-buffers-length)).
    #[inline]
    pub fn recv_from<B: IoBufMut>(&self, buf: B) -> RecvFrom<'_, B> {
        RecvFrom::new(&self.socket, buf)
    }

    /// Sends `buf`'s initialised bytes as one datagram to the connected peer.
    #[inline]
    pub fn send<B: IoBuf>(&self, buf: B) -> Write<'_, B> {
        Write::new(&self.socket, buf)
    }

    /// Receives one datagram from the connected peer into `buf`.
    #[inline]
    pub fn recv<B: IoBufMut>(&self, buf: B) -> Read<'_, B> {
        Read::new(&self.socket, buf)
    }

    /// This socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()?.to_inet()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()?.to_inet()
    }

    /// `SO_BROADCAST`: may send to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket
            .set_flag(libc::SOL_SOCKET, libc::SO_BROADCAST, on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket.flag(libc::SOL_SOCKET, libc::SO_BROADCAST)
    }

    /// Sets the IP time-to-live of sent datagrams.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_ttl(ttl)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.ttl()
    }

    /// The pending socket error (`SO_ERROR`), cleared by reading it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }
}

socket_traits!(UdpSocket);
