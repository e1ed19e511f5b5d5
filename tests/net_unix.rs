//! Unix domain sockets: streams by path and in pairs, datagrams that carry their
//! sender's path, and paths the kernel cannot take refused up front.

use std::io::ErrorKind;
use std::net::Shutdown;

use runtime::net::{UnixDatagram, UnixListener, UnixStream};
use tests::{assert_same_bytes, next, pattern, rt, within, TempDir};

const MIB: usize = 1 << 20;

#[test]
fn a_mebibyte_round_trips_over_a_unix_stream() {
    let dir = TempDir::new("unix-round-trip");
    let path = dir.join("echo.sock");
    rt().block_on(within("the round trip", async {
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let server = runtime::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            assert!(peer.is_unnamed(), "the client did not bind a path");
            let (r, buf) = stream.read_exact(Vec::with_capacity(MIB)).await;
            r.unwrap();
            let (r, buf) = stream.write_all(buf).await;
            r.unwrap();
            buf
        });
        let client = UnixStream::connect(&path).await.unwrap();
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let data = pattern(MIB, 11);
        let (r, data) = client.write_all(data).await;
        r.unwrap();
        let (r, back) = client.read_exact(Vec::with_capacity(MIB)).await;
        r.unwrap();
        assert_same_bytes("what the server read", &server.await.unwrap(), &data);
        assert_same_bytes("the echo", &back, &data);
        let (n, _) = client.read(Vec::with_capacity(1)).await;
        assert_eq!(n.unwrap(), 0, "the server's end closed");
    }));
}

#[test]
fn a_pair_talks_both_ways_and_sees_the_other_end_close() {
    rt().block_on(within("the exchange", async {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, _) = a.write_all(b"ping".as_slice()).await;
        r.unwrap();
        let (r, got) = b.read_exact(Vec::with_capacity(4)).await;
        r.unwrap();
        assert_eq!(got, b"ping");
        let (r, _) = b.write_all(b"pong".as_slice()).await;
        r.unwrap();
        let (r, got) = a.read_exact(Vec::with_capacity(4)).await;
        r.unwrap();
        assert_eq!(got, b"pong");
        drop(a);
        let (n, _) = b.read(Vec::with_capacity(8)).await;
        assert_eq!(n.unwrap(), 0, "end of stream once the other end is gone");
    }));
}

#[test]
fn recv_stream_over_a_pair_yields_every_byte_then_ends() {
    rt().block_on(within("the transfer", async {
        let (a, b) = UnixStream::pair().unwrap();
        let data = pattern(256 << 10, 12);
        let writer = runtime::spawn({
            let data = data.clone();
            async move {
                let (r, _) = a.write_all(data).await;
                r.unwrap();
                a.shutdown(Shutdown::Write).await.unwrap();
                a
            }
        });
        let mut received = Vec::new();
        let mut chunks = b.recv_stream();
        while let Some(buf) = next(&mut chunks).await {
            received.extend_from_slice(&buf.unwrap());
        }
        assert!(next(&mut chunks).await.is_none(), "it stays ended");
        assert_same_bytes("what recv_stream yielded", &received, &data);
        drop(writer.await.unwrap());
    }));
}

#[test]
fn a_datagram_names_its_senders_path_and_the_reply_finds_it() {
    let dir = TempDir::new("unix-dgram");
    let (server_path, client_path) = (dir.join("server.sock"), dir.join("client.sock"));
    rt().block_on(within("the exchange", async {
        let server = UnixDatagram::bind(&server_path).unwrap();
        let client = UnixDatagram::bind(&client_path).unwrap();
        let (n, _) = client.send_to(b"question".as_slice(), &server_path).await;
        assert_eq!(n.unwrap(), 8);
        let (r, buf) = server.recv_from(Vec::with_capacity(64)).await;
        let (n, from) = r.unwrap();
        assert_eq!(&buf[..n], b"question");
        assert_eq!(from.as_pathname(), Some(client_path.as_path()));
        let reply_to = from.as_pathname().unwrap().to_owned();
        let (n, _) = server.send_to(b"answer".as_slice(), &reply_to).await;
        assert_eq!(n.unwrap(), 6);
        let (r, buf) = client.recv_from(Vec::with_capacity(64)).await;
        let (n, from) = r.unwrap();
        assert_eq!(&buf[..n], b"answer");
        assert_eq!(from.as_pathname(), Some(server_path.as_path()));
    }));
}

#[test]
fn a_datagram_from_a_sender_without_a_path_comes_from_an_unnamed_address() {
    let dir = TempDir::new("unix-dgram-unnamed");
    let server_path = dir.join("server.sock");
    rt().block_on(within("the datagrams", async {
        let server = UnixDatagram::bind(&server_path).unwrap();
        let anonymous = UnixDatagram::unbound().unwrap();
        let (n, _) = anonymous.send_to(b"hi".as_slice(), &server_path).await;
        assert_eq!(n.unwrap(), 2);
        let (r, buf) = server.recv_from(Vec::with_capacity(64)).await;
        let (n, from) = r.expect("a datagram from an unbound socket is received");
        assert_eq!(&buf[..n], b"hi");
        assert!(from.is_unnamed());

        // The same for the sockets of a pair, which have no path either.
        let (x, y) = UnixDatagram::pair().unwrap();
        let (n, _) = x.send(b"paired".as_slice()).await;
        assert_eq!(n.unwrap(), 6);
        let (r, buf) = y.recv_from(Vec::with_capacity(64)).await;
        let (n, from) = r.expect("a datagram from a pair's other end is received");
        assert_eq!(&buf[..n], b"paired");
        assert!(from.is_unnamed());
    }));
}

#[test]
fn connected_datagram_sockets_send_and_recv() {
    let dir = TempDir::new("unix-dgram-connect");
    let (a_path, b_path) = (dir.join("a.sock"), dir.join("b.sock"));
    rt().block_on(within("the exchange", async {
        let a = UnixDatagram::bind(&a_path).unwrap();
        let b = UnixDatagram::bind(&b_path).unwrap();
        a.connect(&b_path).await.unwrap();
        b.connect(&a_path).await.unwrap();
        assert_eq!(a.peer_addr().unwrap().as_pathname(), Some(b_path.as_path()));
        let (n, _) = a.send(b"one".as_slice()).await;
        assert_eq!(n.unwrap(), 3);
        let (n, buf) = b.recv(Vec::with_capacity(16)).await;
        assert_eq!(n.unwrap(), 3);
        assert_eq!(buf, b"one");
        let (n, _) = b.send(b"two!".as_slice()).await;
        assert_eq!(n.unwrap(), 4);
        let (n, buf) = a.recv(Vec::with_capacity(16)).await;
        assert_eq!(n.unwrap(), 4);
        assert_eq!(buf, b"two!");

        // A pair: each datagram arrives whole, one per recv.
        let (x, y) = UnixDatagram::pair().unwrap();
        for msg in [&b"first"[..], b"second"] {
            let (n, _) = x.send(msg).await;
            assert_eq!(n.unwrap(), msg.len());
        }
        for msg in [&b"first"[..], b"second"] {
            let (n, buf) = y.recv(Vec::with_capacity(64)).await;
            assert_eq!(n.unwrap(), msg.len());
            assert_eq!(buf, msg);
        }
    }));
}

#[test]
fn a_path_too_long_for_the_kernel_is_invalid_input() {
    let dir = TempDir::new("unix-long");
    // sockaddr_un has room for 107 bytes and the NUL.
    let long = dir.join(&"x".repeat(120));
    rt().block_on(async {
        let err = UnixListener::bind(&long).expect_err("the bind fails");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "got {err:?}");
        let err = within("connect", UnixStream::connect(&long))
            .await
            .expect_err("the connect fails");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "got {err:?}");
        let err = UnixDatagram::bind(&long).expect_err("the bind fails");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "got {err:?}");
        let socket = UnixDatagram::unbound().unwrap();
        let (r, buf) = socket.send_to(b"lost".as_slice(), &long).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(buf, b"lost", "the buffer comes back");
    });
    assert!(!long.exists(), "nothing was made on disk");
}

#[test]
fn abstract_names_work_for_streams_and_datagrams() {
    use std::os::linux::net::SocketAddrExt;
    let tag = format!("runtime-tests-{}", std::process::id());
    let stream_name = format!("\0{tag}-stream");
    let dgram_name = format!("\0{tag}-dgram");
    rt().block_on(within("the exchange", async {
        let listener = UnixListener::bind(&stream_name).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_abstract_name(),
            Some(format!("{tag}-stream").as_bytes())
        );
        let client = UnixStream::connect(&stream_name).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (r, _) = client.write_all(b"abstract".as_slice()).await;
        r.unwrap();
        let (r, got) = server.read_exact(Vec::with_capacity(8)).await;
        r.unwrap();
        assert_eq!(got, b"abstract");

        let receiver = UnixDatagram::bind(&dgram_name).unwrap();
        let sender = UnixDatagram::bind(format!("\0{tag}-sender")).unwrap();
        let (n, _) = sender.send_to(b"named".as_slice(), &dgram_name).await;
        assert_eq!(n.unwrap(), 5);
        let (r, buf) = receiver.recv_from(Vec::with_capacity(16)).await;
        let (n, from) = r.unwrap();
        assert_eq!(&buf[..n], b"named");
        assert_eq!(
            from.as_abstract_name(),
            Some(format!("{tag}-sender").as_bytes())
        );
    }));
}
