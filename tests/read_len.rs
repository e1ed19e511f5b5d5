//! What a read does to the length of the buffer it hands back: the length becomes
//! the number of bytes read (for every buffer type that has a length, on every kind
//! of read), while a read into a slice only ever grows the buffer under it.

use std::io::Write as _;
use std::os::unix::net::UnixStream as StdUnix;

use runtime::buf::IoBuf;
use runtime::fs::File;
use runtime::net::{UdpSocket, UnixStream};
use tests::{rt, within, TempDir};

fn pair() -> (StdUnix, UnixStream) {
    let (a, b) = StdUnix::pair().unwrap();
    (a, UnixStream::from_std(b).unwrap())
}

#[test]
fn a_stream_read_sets_the_length_to_what_came() {
    rt().block_on(within("stream reads", async {
        let (mut peer, ours) = pair();
        peer.write_all(b"hello").unwrap();
        let (n, buf) = ours.read(vec![0xAA; 20]).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf, b"hello", "the length is what was read, not 20");
        assert_eq!(buf.capacity(), 20);

        // The same buffer again: it still reads up to its capacity.
        peer.write_all(&[7; 20]).unwrap();
        let (n, buf) = ours.read(buf).await;
        assert_eq!(n.unwrap(), 20);
        assert_eq!(buf, [7; 20]);

        // An empty Vec with room behaves the same.
        peer.write_all(b"abc").unwrap();
        let (n, buf) = ours.read(Vec::with_capacity(64)).await;
        assert_eq!(n.unwrap(), 3);
        assert_eq!(buf, b"abc");

        // The end of the stream leaves an empty buffer.
        drop(peer);
        let (n, buf) = ours.read(vec![1; 8]).await;
        assert_eq!(n.unwrap(), 0);
        assert!(buf.is_empty());
    }));
}

#[test]
fn a_read_into_a_slice_keeps_the_bytes_around_it() {
    rt().block_on(within("slice reads", async {
        let (mut peer, ours) = pair();
        peer.write_all(b"XY").unwrap();
        // Bytes 0..4 and 6..10 are data the caller keeps; the read goes to 4..6.
        let buf = b"0123456789".to_vec();
        let (n, slice) = ours.read(buf.slice(4..6)).await;
        assert_eq!(n.unwrap(), 2);
        assert_eq!(
            slice.into_inner(),
            b"0123XY6789",
            "nothing cut off after the window"
        );

        // Appending: a read into the spare capacity grows the length by what came.
        peer.write_all(b"tail").unwrap();
        let mut buf = Vec::with_capacity(16);
        buf.extend_from_slice(b"head-");
        let len = buf.len();
        let (n, slice) = ours.read(buf.slice(len..)).await;
        assert_eq!(n.unwrap(), 4);
        assert_eq!(slice.into_inner(), b"head-tail");
    }));
}

#[test]
fn read_exact_fills_the_whole_capacity() {
    rt().block_on(within("read_exact", async {
        let (mut peer, ours) = pair();
        let writer = std::thread::spawn(move || {
            for chunk in [&b"ab"[..], b"cdef", b"gh"] {
                peer.write_all(chunk).unwrap();
            }
            peer
        });
        let (r, buf) = ours.read_exact(Vec::with_capacity(8)).await;
        r.unwrap();
        assert_eq!(buf, b"abcdefgh");
        drop(writer.join().unwrap());
    }));
}

#[test]
fn vectored_reads_set_each_length_to_its_share() {
    rt().block_on(within("vectored reads", async {
        let (mut peer, ours) = pair();
        peer.write_all(b"abcdefg").unwrap();
        let (n, bufs) = ours
            .read_vectored(vec![vec![0; 4], vec![0; 4], vec![0; 4]])
            .await;
        assert_eq!(n.unwrap(), 7);
        assert_eq!(bufs, [&b"abcd"[..], b"efg", b""]);
    }));
}

#[test]
fn datagram_and_file_reads_set_the_length_too() {
    let dir = TempDir::new("read-len");
    let path = dir.join("f");
    std::fs::write(&path, b"0123456789").unwrap();
    rt().block_on(within("datagram and file reads", async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (r, _) = a
            .send_to(b"datagram".to_vec(), b.local_addr().unwrap())
            .await;
        r.unwrap();
        let (r, buf) = b.recv_from(vec![0; 1500]).await;
        assert_eq!(r.unwrap().0, 8);
        assert_eq!(buf, b"datagram");

        let file = File::open(&path).await.unwrap();
        let (n, buf) = file.read_at(vec![0; 100], 6).await;
        assert_eq!(n.unwrap(), 4);
        assert_eq!(buf, b"6789", "a short read at the end of the file");
        let (n, buf) = file.read_at(vec![0; 100], 10).await;
        assert_eq!(n.unwrap(), 0);
        assert!(buf.is_empty());
        file.close().await.unwrap();
    }));
}

#[test]
fn bytes_mut_reads_set_the_length() {
    rt().block_on(within("BytesMut reads", async {
        let (mut peer, ours) = pair();
        peer.write_all(b"xyz").unwrap();
        let mut buf = bytes::BytesMut::with_capacity(32);
        buf.resize(32, 0);
        let (n, buf) = ours.read(buf).await;
        assert_eq!(n.unwrap(), 3);
        assert_eq!(&buf[..], b"xyz");
    }));
}
