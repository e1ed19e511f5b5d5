//! The request heads `hello` takes: HTTP/1.1 (RFC 9112), parsed strictly. Two parsers
//! that read one message two ways (a proxy in front of a server, say) are how requests
//! get smuggled, so anything ambiguous is refused rather than guessed at.
//!
//! - Lines end in CRLF or a bare LF (RFC 9112 §2.2 lets a recipient take a bare LF);
//!   a CR anywhere else is a 400. Empty lines before the request line are skipped (§2.2).
//! - The request line is `method SP target SP HTTP/D.D` with single spaces: the method
//!   a token, the target visible ASCII in origin form (`/...`), absolute form
//!   (`http://...`) or `*`. HTTP/1.0 and 1.x are taken (1.2 and up read as 1.1, RFC
//!   9110 §2.5); another version is a 505.
//! - A field line is `name ":" OWS value OWS`, the name a token: so whitespace before
//!   the colon and a line that begins with SP or HTAB (obs-fold, §5.2) are 400s, as is
//!   a control character other than HTAB in a value (NUL, a lone CR, DEL).
//! - `Content-Length` is digits only. Repeated fields must agree (RFC 9110 §8.6 lets a
//!   recipient accept identical ones; this one does); a list (`5, 5`) is a 400.
//! - `Transfer-Encoding` with `Content-Length` is a 400 (RFC 9112 §6.3); alone it is a
//!   501: this server does not read chunked bodies.
//! - An HTTP/1.1 request needs one `Host` field (§3.2); more than one is a 400 in any
//!   version. Its value is not checked further.
//! - A head that does not end within [`MAX_HEAD`] bytes is a 431.
//!
//! A verdict other than [`Parsed::Partial`] depends only on the bytes it has seen: more
//! bytes after them never change it. So a request is rejected as soon as a bad line is
//! complete, and pipelined requests are parsed one after the other from one buffer.

/// Largest request head (request line, fields and the empty line) taken.
pub const MAX_HEAD: usize = 8 * 1024;

/// What the bytes at the start of a buffer are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The start of a head that may still turn out well: read more.
    Partial,
    /// A complete request head.
    Request(Request),
    /// A request this server will not take: answer with this status and close.
    Reject(Status),
}

/// A request head this server takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head, its final empty line included.
    pub len: usize,
    /// Bytes of body that follow the head.
    pub body: u64,
    /// A `HEAD` request: the answer has no body.
    pub head_only: bool,
    /// The request came as HTTP/1.0, whose connections close by default.
    pub http10: bool,
    /// The connection stays open after the answer.
    pub keep_alive: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 400: the head breaks the grammar or is ambiguous.
    BadRequest,
    /// 431: the head is longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// 501: a chunked body or a `CONNECT`.
    NotImplemented,
    /// 505: a well-formed version other than HTTP/1.x.
    VersionNotSupported,
}

use Status::{BadRequest, HeadTooLarge, NotImplemented, VersionNotSupported};

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    // Only the first MAX_HEAD bytes are looked at: a head must end within them.
    let mut lines = Lines {
        buf: &buf[..buf.len().min(MAX_HEAD)],
        pos: 0,
    };
    let incomplete = if buf.len() >= MAX_HEAD {
        Parsed::Reject(HeadTooLarge)
    } else {
        Parsed::Partial
    };
    let request_line = loop {
        match lines.next() {
            None => return incomplete,
            Some(Err(status)) => return Parsed::Reject(status),
            Some(Ok(b"")) => continue,
            Some(Ok(line)) => break line,
        }
    };
    let (method, http10) = match request_line_of(request_line) {
        Ok(parts) => parts,
        Err(status) => return Parsed::Reject(status),
    };

    let mut content_length = None;
    let mut transfer_encoding = false;
    let mut hosts = 0;
    let (mut close, mut keep_alive, mut expect_continue) = (false, false, false);
    loop {
        let line = match lines.next() {
            None => return incomplete,
            Some(Err(status)) => return Parsed::Reject(status),
            Some(Ok(line)) => line,
        };
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = field_of(line) else {
            return Parsed::Reject(BadRequest);
        };
        if name.eq_ignore_ascii_case(b"content-length") {
            match (digits(value), content_length) {
                (Some(n), None) => content_length = Some(n),
                (Some(n), Some(seen)) if n == seen => {}
                _ => return Parsed::Reject(BadRequest),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(trim_ows) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }

    if (transfer_encoding && content_length.is_some()) || hosts > 1 || (!http10 && hosts == 0) {
        return Parsed::Reject(BadRequest);
    }
    if transfer_encoding || method == b"CONNECT" {
        return Parsed::Reject(NotImplemented);
    }
    let body = content_length.unwrap_or(0);
    let persistent = if http10 { keep_alive } else { true };
    // A client that waits for `100 Continue` before its body gets the answer first and
    // may never send the body: the connection cannot be reused.
    let unambiguous = !(expect_continue && body > 0);
    Parsed::Request(Request {
        len: lines.pos,
        body,
        head_only: method == b"HEAD",
        http10,
        keep_alive: persistent && unambiguous && !close,
    })
}

/// The lines of a head, each without its line ending.
struct Lines<'a> {
    buf: &'a [u8],
    /// Where the next line starts.
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<&'a [u8], Status>;

    /// The next complete line, or `None` if its end has not arrived yet.
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        self.pos += end + 1;
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&b'\r') {
            return Some(Err(BadRequest));
        }
        Some(Ok(line))
    }
}

/// Checks a request line; returns its method and whether it is HTTP/1.0.
fn request_line_of(line: &[u8]) -> Result<(&[u8], bool), Status> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest);
    };
    let target_ok = !target.is_empty()
        && target.iter().all(|&b| b.is_ascii_graphic())
        && (target.starts_with(b"/")
            || target == b"*"
            || starts_with_ignore_case(target, b"http://")
            || starts_with_ignore_case(target, b"https://"));
    if !is_token(method) || !target_ok {
        return Err(BadRequest);
    }
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major == b'1' {
                Ok((method, *minor == b'0'))
            } else {
                Err(VersionNotSupported)
            }
        }
        _ => Err(BadRequest),
    }
}

/// Splits a field line into its name and its value without the whitespace around
/// it; `None` if the line is not a valid field line.
fn field_of(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, rest) = line.split_at(colon);
    let value = trim_ows(&rest[1..]);
    // The name being a token rules out obs-fold and whitespace before the colon.
    let value_ok = value.iter().all(|&b| b == b'\t' || !b.is_ascii_control());
    (is_token(name) && value_ok).then_some((name, value))
}

/// The value of a `Content-Length`: one or more digits, nothing else, not too big.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// A token (RFC 9110 §5.6.2): one or more of the visible characters that are not
/// delimiters.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `s` without the spaces and tabs (optional whitespace) at either end.
fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(len: usize, body: u64, keep_alive: bool) -> Parsed {
        Parsed::Request(Request {
            len,
            body,
            head_only: false,
            http10: false,
            keep_alive,
        })
    }

    #[test]
    fn takes_well_formed_heads() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse(get), request(get.len(), 0, true));
        let post = b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse(post), request(post.len() - 5, 5, true));
        // Identical repeats of Content-Length are taken (RFC 9110 §8.6).
        let twice = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length:3\r\n\r\n";
        assert_eq!(parse(twice), request(twice.len(), 3, true));
        // Bare LF line endings, OWS around values, obs-text in a value, empty lines
        // before the request line.
        let lax = b"\r\n\nGET * HTTP/1.1\nHost:\t a \t\nX: caf\xc3\xa9\n\n";
        assert_eq!(parse(lax), request(lax.len(), 0, true));
        let absolute = b"GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        assert_eq!(parse(absolute), request(absolute.len(), 0, false));
    }

    #[test]
    fn decides_keep_alive_per_version_and_connection_options() {
        let cases: &[(&[u8], bool, bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false, true),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
                false,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n",
                false,
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", true, false),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                true,
                true,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                true,
                false,
            ),
            // A higher 1.x minor reads as 1.1.
            (b"GET / HTTP/1.7\r\nHost: a\r\n\r\n", false, true),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                false,
                false,
            ),
        ];
        for &(head, http10, keep_alive) in cases {
            let Parsed::Request(request) = parse(head) else {
                panic!("{:?} not taken", String::from_utf8_lossy(head));
            };
            assert_eq!(
                (request.http10, request.keep_alive),
                (http10, keep_alive),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        let Parsed::Request(head) = parse(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n") else {
            panic!("HEAD not taken");
        };
        assert!(head.head_only);
    }

    /// Heads each of which must be refused, with their status.
    #[rustfmt::skip]
    const REFUSED: &[(&str, &[u8], Status)] = &[
        ("sign in Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", BadRequest),
        ("minus in Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", BadRequest),
        ("letter in Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\n", BadRequest),
        ("list in Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", BadRequest),
        ("empty Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", BadRequest),
        ("huge Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", BadRequest),
        ("differing Content-Lengths", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", BadRequest),
        ("Content-Length with Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", BadRequest),
        ("space before the colon", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\n\r\n", BadRequest),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", BadRequest),
        ("tab-led obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", BadRequest),
        ("whitespace before the first field", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", BadRequest),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", BadRequest),
        ("CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", BadRequest),
        ("bare CR ending a line", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", BadRequest),
        ("no colon", b"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", BadRequest),
        ("empty field name", b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", BadRequest),
        ("bad character in a field name", b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", BadRequest),
        ("bad character in the method", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
        ("empty method", b" / HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
        ("two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
        ("no version", b"GET /\r\nHost: a\r\n\r\n", BadRequest),
        ("extra word in the request line", b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", BadRequest),
        ("target not in origin form", b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
        ("control character in the target", b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest),
        ("lower-case version", b"GET / http/1.1\r\nHost: a\r\n\r\n", BadRequest),
        ("malformed version", b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", BadRequest),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", BadRequest),
        ("two Hosts", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", BadRequest),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", VersionNotSupported),
        ("chunked body", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", NotImplemented),
        ("CONNECT", b"CONNECT /a:443 HTTP/1.1\r\nHost: a\r\n\r\n", NotImplemented),
    ];

    #[test]
    fn refuses_bad_heads() {
        for &(what, head, status) in REFUSED {
            assert_eq!(parse(head), Parsed::Reject(status), "{what}");
        }
    }

    #[test]
    fn refuses_a_bad_line_before_the_head_ends() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Name: x\r\n"),
            Parsed::Reject(BadRequest)
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00\x01\n"),
            Parsed::Reject(BadRequest)
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial);
        assert_eq!(parse(b"GET / HTTP/1.1\r"), Parsed::Partial);
    }

    #[test]
    fn a_head_must_end_within_the_limit() {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        head.resize(MAX_HEAD - 1, b'a');
        assert_eq!(parse(&head), Parsed::Partial);
        head.push(b'a');
        assert_eq!(parse(&head), Parsed::Reject(HeadTooLarge));
        // Empty lines count too: they cannot keep a connection busy for free.
        assert_eq!(
            parse(&b"\r\n".repeat(MAX_HEAD / 2)),
            Parsed::Reject(HeadTooLarge)
        );
        // A head that ends exactly at the limit is taken.
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        head.resize(MAX_HEAD - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&head), request(MAX_HEAD, 0, true));
    }

    /// A small deterministic generator (xorshift), so a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    /// Checks what must hold whatever the bytes: no panic, a request's length within
    /// the buffer and ending in an empty line, and a verdict that more bytes do not
    /// change.
    fn check(buf: &[u8], rng: &mut Rng) -> Parsed {
        let verdict = parse(buf);
        match &verdict {
            Parsed::Partial => assert!(buf.len() < MAX_HEAD, "partial past the limit"),
            Parsed::Request(request) => {
                assert!(request.len <= buf.len() && request.len <= MAX_HEAD);
                let head = &buf[..request.len];
                assert!(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"));
                assert_eq!(parse(head), verdict);
            }
            Parsed::Reject(_) => {}
        }
        if verdict != Parsed::Partial {
            let mut more = buf.to_vec();
            more.extend((0..rng.below(16)).map(|_| rng.next() as u8));
            assert_eq!(parse(&more), verdict, "more bytes changed the verdict");
        }
        verdict
    }

    #[test]
    fn random_and_mutated_heads_never_panic_and_get_sane_verdicts() {
        const PIECES: &[&[u8]] = &[
            b"GET",
            b"HEAD",
            b"POST",
            b" ",
            b"  ",
            b"/",
            b"/a?b",
            b"*",
            b"http://h/",
            b"HTTP/1.1",
            b"HTTP/1.0",
            b"HTTP/2.0",
            b"HTTP/1.",
            b"\r\n",
            b"\n",
            b"\r",
            b"\0",
            b"\t",
            b":",
            b": ",
            b"Host",
            b"Content-Length",
            b"Transfer-Encoding",
            b"Connection",
            b"close",
            b"keep-alive",
            b"0",
            b"5",
            b"-1",
            b"+1",
            b",",
            b"99999999999999999999999",
            b"\x7f",
            b"\xff",
            b"x",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut taken = 0;
        for _ in 0..20_000 {
            // Heads assembled from pieces of the grammar, then mutated.
            let mut buf: Vec<u8> = (0..rng.below(40))
                .flat_map(|_| rng.pick(PIECES).iter().copied())
                .collect();
            if rng.below(2) == 0 {
                buf = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc".to_vec();
            }
            for _ in 0..rng.below(4) {
                let at = rng.below(buf.len() + 1);
                match rng.below(3) {
                    0 if at < buf.len() => buf[at] = rng.next() as u8,
                    1 if at < buf.len() => {
                        buf.remove(at);
                    }
                    _ => {
                        let tail = buf.split_off(at);
                        let piece = *rng.pick(PIECES);
                        buf.extend_from_slice(piece);
                        buf.extend(tail);
                    }
                }
            }
            if matches!(check(&buf, &mut rng), Parsed::Request(_)) {
                taken += 1;
            }
            // Fed a byte at a time, the first verdict is the verdict of the whole.
            let first = (1..=buf.len())
                .map(|n| parse(&buf[..n]))
                .find(|verdict| *verdict != Parsed::Partial)
                .unwrap_or(Parsed::Partial);
            assert_eq!(first, parse(&buf), "{:?}", String::from_utf8_lossy(&buf));
        }
        // The generator is not so wild that nothing ever parses.
        assert!(taken > 1_000, "only {taken} heads taken");
    }

    #[test]
    fn long_random_buffers_never_panic() {
        let mut rng = Rng(7);
        for _ in 0..200 {
            let len = rng.below(2 * MAX_HEAD);
            let buf: Vec<u8> = (0..len)
                .map(|_| *rng.pick(b"GET / HTTP/1.1\r\n: \0aZ\t"))
                .collect();
            check(&buf, &mut rng);
        }
    }
}
