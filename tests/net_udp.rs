//! UDP: datagrams arrive whole, in order when sent in lock-step, from the address they
//! say; a connected socket talks to its peer only.

use std::net::SocketAddr;

use runtime::net::UdpSocket;
use tests::{assert_same_bytes, pattern, rt, within};

const MIB: usize = 1 << 20;
/// Payload bytes per datagram; each also carries an 8-byte sequence number.
const CHUNK: usize = 8 << 10;

#[test]
fn a_mebibyte_round_trips_in_lock_step_datagrams() {
    rt().block_on(within("the round trip", async {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client_addr = client.local_addr().unwrap();
        let count = MIB / CHUNK;
        // Echoes each datagram to its sender, checking the sequence as it goes.
        let echo = runtime::spawn(async move {
            let mut seen = Vec::with_capacity(MIB);
            let mut buf = Vec::with_capacity(CHUNK + 8);
            for seq in 0..count as u64 {
                buf.clear();
                let (r, b) = server.recv_from(buf).await;
                let (n, from) = r.unwrap();
                assert_eq!(from, client_addr, "the datagram says who sent it");
                assert_eq!(n, CHUNK + 8, "datagram {seq} arrived whole");
                assert_eq!(u64::from_be_bytes(b[..8].try_into().unwrap()), seq);
                seen.extend_from_slice(&b[8..n]);
                let (r, b) = server.send_to(b, from).await;
                assert_eq!(r.unwrap(), CHUNK + 8);
                buf = b;
            }
            seen
        });
        let data = pattern(MIB, 21);
        let mut back = Vec::with_capacity(MIB);
        let mut datagram = Vec::with_capacity(CHUNK + 8);
        for (seq, chunk) in data.chunks(CHUNK).enumerate() {
            datagram.clear();
            datagram.extend_from_slice(&(seq as u64).to_be_bytes());
            datagram.extend_from_slice(chunk);
            let (r, d) = client.send_to(datagram, server_addr).await;
            assert_eq!(r.unwrap(), CHUNK + 8);
            let mut d = d;
            d.clear();
            let (r, d) = client.recv_from(d).await;
            let (n, from) = r.unwrap();
            assert_eq!(from, server_addr);
            assert_eq!(n, CHUNK + 8);
            assert_eq!(u64::from_be_bytes(d[..8].try_into().unwrap()), seq as u64);
            back.extend_from_slice(&d[8..n]);
            datagram = d;
        }
        assert_same_bytes("what the server saw", &echo.await.unwrap(), &data);
        assert_same_bytes("the echoes", &back, &data);
    }));
}

#[test]
fn a_connected_socket_sends_to_and_hears_from_its_peer_only() {
    rt().block_on(within("the exchange", async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        a.connect(b_addr).await.unwrap();
        b.connect(a_addr).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);

        let (n, _) = a.send(b"from a".as_slice()).await;
        assert_eq!(n.unwrap(), 6);
        let (n, buf) = b.recv(Vec::with_capacity(64)).await;
        assert_eq!(n.unwrap(), 6);
        assert_eq!(buf, b"from a");

        // A datagram from anyone but the peer never reaches a connected socket.
        let (n, _) = stranger.send_to(b"intruder".as_slice(), a_addr).await;
        assert_eq!(n.unwrap(), 8);
        let (n, _) = b.send(b"from b".as_slice()).await;
        assert_eq!(n.unwrap(), 6);
        let (n, buf) = a.recv(Vec::with_capacity(64)).await;
        assert_eq!(n.unwrap(), 6);
        assert_eq!(buf, b"from b");
    }));
}

#[test]
fn a_datagram_longer_than_the_buffer_is_cut_and_the_next_comes_whole() {
    rt().block_on(within("the datagrams", async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to: SocketAddr = b.local_addr().unwrap();
        for msg in [&b"0123456789"[..], b"next"] {
            let (n, _) = a.send_to(msg, to).await;
            assert_eq!(n.unwrap(), msg.len());
        }
        let (r, buf) = b.recv_from(Vec::with_capacity(4)).await;
        assert_eq!(r.unwrap().0, 4);
        assert_eq!(buf, b"0123", "the start of the long datagram");
        let (r, buf) = b.recv_from(Vec::with_capacity(64)).await;
        assert_eq!(r.unwrap().0, 4);
        assert_eq!(buf, b"next", "the rest of the long one was dropped");
    }));
}

#[test]
fn udp_options_reach_the_kernel() {
    rt().block_on(async {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_ttl(9).unwrap();
        assert_eq!(socket.ttl().unwrap(), 9);
        assert!(!socket.broadcast().unwrap());
        socket.set_broadcast(true).unwrap();
        assert!(socket.broadcast().unwrap());
        assert!(socket.take_error().unwrap().is_none());
    });
}

#[test]
fn a_datagram_too_big_for_udp_is_an_error_and_the_buffer_comes_back() {
    rt().block_on(within("the send", async {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let big = pattern(70_000, 22);
        let (r, back) = socket.send_to(big, to).await;
        let err = r.expect_err("no UDP datagram holds 70,000 bytes");
        assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE), "got {err:?}");
        assert_eq!(back.len(), 70_000);
    }));
}

#[test]
fn an_unconnected_socket_has_no_peer() {
    rt().block_on(async {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = socket.peer_addr().expect_err("not connected");
        assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    });
}
