use std::future::poll_fn;
use std::pin::Pin;

use futures_core::Stream;
use runtime::net::{TcpListener, TcpStream};

#[test]
fn smoke() {
    let mut rt = runtime::Builder::new().cores(1).pin(false).build().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = runtime::spawn(async move {
            let mut incoming = listener.incoming();
            let stream = poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx))
                .await
                .unwrap()
                .unwrap();
            let mut rs = stream.recv_stream();
            let mut total = 0;
            while let Some(buf) = poll_fn(|cx| Pin::new(&mut rs).poll_next(cx)).await {
                let buf = buf.unwrap();
                total += buf.len();
                let (r, _) = stream.write_all(buf).await;
                r.unwrap();
            }
            total
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (r, data) = client.write_all(data).await;
        r.unwrap();
        client.shutdown(std::net::Shutdown::Write).await.unwrap();
        let (r, back) = client.read_exact(Vec::with_capacity(data.len())).await;
        r.unwrap();
        assert_eq!(back, data);
        assert_eq!(server.await.unwrap(), data.len());
    });
}
