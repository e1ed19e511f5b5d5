//! Listeners and their ports: `TcpListener::bind` shares its port with nobody, and
//! `TcpListener::bind_per_core` shares one port among its own listeners only, on
//! both backends.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use runtime::net::{CoreListeners, TcpListener, TcpStream, UnixListener};
use runtime::Builder;
use tests::{rt, within, TempDir};

/// A listener of another program's making (a plain socket, outside the runtime) on a
/// free loopback port, with `SO_REUSEPORT` on if `reuseport`.
fn foreign_listener(reuseport: bool) -> std::net::TcpListener {
    // SAFETY: socket takes plain integers and touches no memory of ours.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` was just returned by socket and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    let mut options = vec![libc::SO_REUSEADDR];
    if reuseport {
        options.push(libc::SO_REUSEPORT);
    }
    for option in options {
        // SAFETY: the value pointer is to a live c_int of the size passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "setsockopt: {}", io::Error::last_os_error());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the address pointer is to a live sockaddr_in of the length passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "bind: {}", io::Error::last_os_error());
    // SAFETY: listen takes plain integers and touches no memory of ours.
    let r = unsafe { libc::listen(fd.as_raw_fd(), 128) };
    assert_eq!(r, 0, "listen: {}", io::Error::last_os_error());
    std::net::TcpListener::from(fd)
}

/// Asserts `result` is an `AddrInUse` error whose message names `addr`.
fn assert_in_use<T: std::fmt::Debug>(result: io::Result<T>, addr: SocketAddr) {
    let err = result.expect_err("the port is taken");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "got {err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&addr.to_string()) && message.contains("address in use"),
        "the message names the address: {message}"
    );
}

#[test]
fn bind_on_a_taken_port_is_addr_in_use_naming_the_address() {
    rt().block_on(async {
        // Taken by another program.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        assert_in_use(TcpListener::bind(addr), addr);
        // Taken by a listener of this program: no silent sharing either.
        let ours = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ours.local_addr().unwrap();
        assert_in_use(TcpListener::bind(addr), addr);
        // Nor does std's: the runtime's listener holds the port alone.
        let err = std::net::TcpListener::bind(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "got {err:?}");
        // A program that asks to share (SO_REUSEPORT) does not get to share either.
        let sharing = foreign_listener(true);
        let addr = sharing.local_addr().unwrap();
        assert_in_use(TcpListener::bind(addr), addr);
    });
}

#[test]
fn per_core_listeners_on_port_zero_share_one_port_and_both_cores_accept() {
    const CONNS: usize = 64;
    let mut rt = Builder::new().cores(2).pin(false).build().unwrap();
    let listeners = TcpListener::bind_per_core("127.0.0.1:0", 2).unwrap();
    let addr = listeners.local_addr();
    assert_ne!(addr.port(), 0, "the kernel picked a port");
    assert_eq!(listeners.cores(), 2);
    let counts = rt.block_on(within("the connections", async move {
        let accept_loops: Vec<_> = (0..2)
            .map(|core| {
                let listeners = listeners.clone();
                runtime::spawn_on(core, move || {
                    let listener = listeners.take(core);
                    async move {
                        let listener = listener.expect("each core takes its own listener");
                        assert_eq!(listener.local_addr().unwrap(), addr, "one port for all");
                        loop {
                            let (stream, _) = listener.accept().await.unwrap();
                            // Tell the client which core took it.
                            let (sent, _) = stream.write_all(vec![core as u8]).await;
                            sent.unwrap();
                        }
                    }
                })
            })
            .collect();
        let mut counts = [0usize; 2];
        for _ in 0..CONNS {
            let client = TcpStream::connect(addr).await.unwrap();
            let (read, byte) = client.read_exact(Vec::with_capacity(1)).await;
            read.unwrap();
            counts[usize::from(byte[0])] += 1;
        }
        for accept_loop in &accept_loops {
            accept_loop.abort();
        }
        counts
    }));
    assert_eq!(counts[0] + counts[1], CONNS);
    // The kernel spreads connections by a hash of their addresses: with this many,
    // both cores get some (the odds of all on one are 2 in 2^64).
    assert!(
        counts[0] > 0 && counts[1] > 0,
        "one core took them all: {counts:?}"
    );
}

#[test]
fn per_core_listeners_on_a_port_a_foreign_reuseport_socket_holds_are_addr_in_use() {
    // Same user, SO_REUSEPORT set, bound and listening: the kernel would let any
    // SO_REUSEPORT socket of ours join it, and bind_per_core must not.
    let foreign = foreign_listener(true);
    let addr = foreign.local_addr().unwrap();
    assert_in_use(TcpListener::bind_per_core(addr, 2), addr);
    assert_in_use(TcpListener::bind_per_core(addr, 1), addr);
    // The foreign listener still has the port to itself: it takes the connection.
    foreign.set_nonblocking(false).unwrap();
    let _client = std::net::TcpStream::connect(addr).unwrap();
    foreign
        .accept()
        .expect("the foreign listener got the connection");
}

#[test]
fn per_core_listeners_on_a_port_a_plain_foreign_socket_holds_are_addr_in_use() {
    let foreign = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = foreign.local_addr().unwrap();
    assert_in_use(TcpListener::bind_per_core(addr, 2), addr);
    let foreign = foreign_listener(false);
    let addr = foreign.local_addr().unwrap();
    assert_in_use(TcpListener::bind_per_core(addr, 2), addr);
}

#[test]
fn a_second_set_of_per_core_listeners_on_the_same_port_is_addr_in_use() {
    // Two copies of one server on one port: the second fails instead of taking half.
    let first = TcpListener::bind_per_core("127.0.0.1:0", 2).unwrap();
    let addr = first.local_addr();
    assert_in_use(TcpListener::bind_per_core(addr, 2), addr);
    rt().block_on(async { assert_in_use(TcpListener::bind(addr), addr) });
    // Nor does anything else get in beside them.
    assert!(std::net::TcpListener::bind(addr).is_err());
}

#[test]
fn after_the_runtime_drops_its_listeners_the_port_is_free_again() {
    let mut rt = Builder::new().cores(2).pin(false).build().unwrap();
    let listeners = TcpListener::bind_per_core("127.0.0.1:0", 2).unwrap();
    let addr = listeners.local_addr();
    let ports = rt.run_on_all(move |core| {
        let listener = listeners.take(core);
        async move { listener.and_then(|l| l.local_addr()).map(|a| a.port()) }
    });
    for port in ports {
        assert_eq!(port.unwrap(), addr.port());
    }
    drop(rt);
    // Every listener was closed: a listener that shares with nobody gets the port.
    let plain = std::net::TcpListener::bind(addr).expect("the port is free again");
    drop(plain);
    // Listeners never taken are closed with the last clone of their set.
    let untaken = TcpListener::bind_per_core(addr, 3).expect("the port is free again");
    assert!(
        std::net::TcpListener::bind(addr).is_err(),
        "the set holds it"
    );
    let clone = untaken.clone();
    drop(untaken);
    assert!(
        std::net::TcpListener::bind(addr).is_err(),
        "a clone holds it"
    );
    drop(clone);
    std::net::TcpListener::bind(addr).expect("the port is free once the set is gone");
}

#[test]
fn taking_a_listener_twice_or_of_a_core_not_there_is_invalid_input() {
    let listeners: CoreListeners = TcpListener::bind_per_core("127.0.0.1:0", 2).unwrap();
    rt().block_on(async {
        let first = listeners.take(0).unwrap();
        assert_eq!(first.local_addr().unwrap(), listeners.local_addr());
        let again = listeners.take(0).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidInput, "got {again:?}");
        assert!(again.to_string().contains("taken already"), "{again}");
        let beyond = listeners.take(2).unwrap_err();
        assert_eq!(beyond.kind(), ErrorKind::InvalidInput, "got {beyond:?}");
        assert!(beyond.to_string().contains("core 2"), "{beyond}");
        listeners.take(1).unwrap();
    });
    let none = TcpListener::bind_per_core("127.0.0.1:0", 0).unwrap_err();
    assert_eq!(none.kind(), ErrorKind::InvalidInput, "got {none:?}");
}

#[test]
fn a_unix_listener_on_a_path_in_use_is_addr_in_use_naming_the_path() {
    let dir = TempDir::new("listen");
    let path = dir.join("sock");
    rt().block_on(async {
        let _first = UnixListener::bind(&path).unwrap();
        let err = UnixListener::bind(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "got {err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "the message names the path: {err}"
        );
    });
}
