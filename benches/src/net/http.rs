//! The HTTP every contender speaks: just enough HTTP/1.1 for `wrk` to keep its
//! connections busy, the same bytes from every server.
//!
//! A request is everything up to and including the blank line that ends its
//! head (`\r\n\r\n`); there are no bodies. Requests may come pipelined, several
//! in one read, or split over several reads. Each complete request gets exactly
//! [`RESPONSE`]. A connection whose unfinished request head grows past
//! [`MAX_REQUEST_HEAD`] is closed.

/// The one response every contender sends for every request.
pub const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";

/// The longest request head a server keeps waiting for the end of.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The size of a connection's read buffer: room for the longest request head
/// still unfinished after a read, and as much again for the next read.
pub const READ_BUFFER: usize = 2 * MAX_REQUEST_HEAD;

/// The end of a request head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// What [`parse`] found in the bytes a connection has received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Complete requests at the front of the bytes.
    pub requests: usize,
    /// Bytes those requests take up; what follows is an unfinished request.
    pub consumed: usize,
}

/// A request head longer than [`MAX_REQUEST_HEAD`]: the server closes the
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadTooLarge;

/// Counts the complete requests at the front of `received`, the bytes a
/// connection has received and not yet answered.
pub fn parse(received: &[u8]) -> Result<Parsed, HeadTooLarge> {
    let mut parsed = Parsed {
        requests: 0,
        consumed: 0,
    };
    while let Some(end) = find_head_end(&received[parsed.consumed..]) {
        parsed.requests += 1;
        parsed.consumed += end;
    }
    if received.len() - parsed.consumed > MAX_REQUEST_HEAD {
        return Err(HeadTooLarge);
    }
    Ok(parsed)
}

/// Puts the answer to `requests` complete requests into `out`, which is
/// cleared first.
pub fn respond(requests: usize, out: &mut Vec<u8>) {
    out.clear();
    for _ in 0..requests {
        out.extend_from_slice(RESPONSE);
    }
}

/// Where the first request head in `bytes` ends (just past its `\r\n\r\n`).
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(HEAD_END.len())
        .position(|window| window == HEAD_END)
        .map(|start| start + HEAD_END.len())
}

#[cfg(test)]
mod tests {
    use super::{parse, respond, HeadTooLarge, Parsed, MAX_REQUEST_HEAD, RESPONSE};

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

    #[test]
    fn counts_pipelined_and_split_requests() {
        let mut bytes = GET.to_vec();
        bytes.extend_from_slice(GET);
        bytes.extend_from_slice(&GET[..10]);
        assert_eq!(
            parse(&bytes),
            Ok(Parsed {
                requests: 2,
                consumed: 2 * GET.len()
            })
        );
        assert_eq!(
            parse(&GET[..GET.len() - 1]),
            Ok(Parsed {
                requests: 0,
                consumed: 0
            })
        );
        assert_eq!(parse(b"").map(|p| p.requests), Ok(0));
    }

    #[test]
    fn refuses_an_endless_head() {
        let long = vec![b'a'; MAX_REQUEST_HEAD + 1];
        assert_eq!(parse(&long), Err(HeadTooLarge));
        let mut after_a_request = GET.to_vec();
        after_a_request.extend_from_slice(&long[1..]);
        assert!(parse(&after_a_request).is_ok());
    }

    #[test]
    fn one_response_per_request() {
        let mut out = b"stale".to_vec();
        respond(3, &mut out);
        assert_eq!(out.len(), 3 * RESPONSE.len());
        assert!(out.starts_with(RESPONSE) && out.ends_with(RESPONSE));
        respond(0, &mut out);
        assert!(out.is_empty());
    }
}
