//! An HTTP-in request head (SPEC §8), parsed with `httparse`.
//!
//! Unlike a WebSocket handshake, a long header value is not refused: the
//! script reads values cut to 255 bytes. Only the whole head is limited
//! (8 KiB → 431).

use crate::config::Config;

/// How many headers a request head may carry before it is answered 431.
pub(crate) const MAX_HEADERS: usize = 64;

/// The path prefixes of HTTP-in URLs: plain and secure.
pub(crate) const PREFIX: &str = "/lslhttp/";
pub(crate) const SECURE_PREFIX: &str = "/lslhttps/";

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` (0 when absent).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What a complete HTTP-in head says.
#[derive(Debug)]
pub(crate) struct Head<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) framing: Framing,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// HTTP/1.0 without `keep-alive`, or `Connection: close`: close after the response.
    pub(crate) close: bool,
    /// The `charset` of `Content-Type`, if any.
    pub(crate) charset: Option<&'a str>,
    /// The values of the configured forwarded header, in order (empty, so
    /// unallocated, unless a proxy sent it).
    pub(crate) forwarded: Vec<&'a [u8]>,
}

/// Outcome of offering the bytes received so far.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    Partial,
    /// The head and its length in bytes.
    Complete(Head<'a>, usize),
    /// Answered before the capability is looked at (400, 431, 501).
    Refused(u16),
}

/// Whether the request line received so far targets an HTTP-in URL. Decided
/// from the start of the head, so the WebSocket handshake's header-value
/// limit is never applied to one.
pub(crate) fn is_http_in(buf: &[u8]) -> bool {
    // A request line cut short is decided again once more arrives.
    is_under(buf, PREFIX) || is_under(buf, SECURE_PREFIX)
}

/// Whether the request line received so far targets a path under `prefix`.
pub(crate) fn is_under(buf: &[u8], prefix: &str) -> bool {
    let Some(space) = buf.iter().take(16).position(|&b| b == b' ') else { return false };
    buf[space + 1..].starts_with(prefix.as_bytes())
}

/// The headers the parser acts on, lower case.
const WATCHED: [&str; 5] = ["content-length", "transfer-encoding", "connection", "expect", "content-type"];

/// Parses a request head, enforcing the head limit.
pub(crate) fn parse<'a>(buf: &'a [u8], config: &Config) -> Parsed<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= config.max_request_head { Parsed::Refused(431) } else { Parsed::Partial };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refused(431),
        Err(_) => return Parsed::Refused(400),
    };
    if len > config.max_request_head {
        return Parsed::Refused(431);
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Refused(400);
    };
    let mut length = None;
    let mut chunked = false;
    let mut close = version == 0;
    let mut expect_continue = false;
    let mut charset = None;
    let mut forwarded = Vec::new();
    let forwarded_name = config.forwarded_header.name();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case(forwarded_name) {
            forwarded.push(h.value);
        }
        // Only the headers that shape framing are looked at; the script's
        // headers are read later from the kept head (`http::readable`).
        let Some(name) = WATCHED.into_iter().find(|w| h.name.eq_ignore_ascii_case(w)) else { continue };
        let text = std::str::from_utf8(h.value).map(str::trim);
        match (name, text) {
            ("content-length", Ok(v)) => {
                let Ok(n) = v.parse::<u64>() else { return Parsed::Refused(400) };
                // Two different lengths are a smuggling attempt.
                if length.is_some_and(|l| l != n) {
                    return Parsed::Refused(400);
                }
                length = Some(n);
            }
            ("content-length", Err(_)) => return Parsed::Refused(400),
            ("transfer-encoding", Ok(v)) => {
                if !v.eq_ignore_ascii_case("chunked") {
                    return Parsed::Refused(501);
                }
                chunked = true;
            }
            ("transfer-encoding", Err(_)) => return Parsed::Refused(501),
            ("connection", Ok(v)) => {
                for token in v.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && version == 0 {
                        close = false;
                    }
                }
            }
            ("expect", Ok(v)) => expect_continue |= v.eq_ignore_ascii_case("100-continue"),
            ("content-type", Ok(v)) => charset = charset_param(v),
            _ => {}
        }
    }
    let framing = match (chunked, length) {
        // Both at once is how requests are smuggled past proxies.
        (true, Some(_)) => return Parsed::Refused(400),
        (true, None) if version == 0 => return Parsed::Refused(400),
        (true, None) => Framing::Chunked,
        (false, n) => Framing::Length(n.unwrap_or(0)),
    };
    let head = Head { method, target, framing, expect_continue, close, charset, forwarded };
    Parsed::Complete(head, len)
}

/// The `charset` parameter of a `Content-Type` value, unquoted.
fn charset_param(value: &str) -> Option<&str> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(head: &str) -> Head<'_> {
        match parse(head.as_bytes(), &Config::default()) {
            Parsed::Complete(h, len) => {
                assert_eq!(len, head.len());
                h
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prefixes() {
        assert!(is_http_in(b"GET /lslhttp/x"));
        assert!(is_http_in(b"POST /lslhttps/x"));
        assert!(!is_http_in(b"GET /lslws/x/abc"));
        assert!(!is_http_in(b"GET /lsl"));
        assert!(!is_http_in(b"GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn framing_and_connection() {
        let h = complete("POST /lslhttp/c/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Length(5), false));
        let h = complete("POST /lslhttp/c/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Chunked, true));
        let h = complete("GET /lslhttp/c/ HTTP/1.0\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Length(0), true));
        let h = complete("GET /lslhttp/c/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(!h.close);
        let h = complete(
            "PUT /lslhttp/c/ HTTP/1.1\r\nExpect: 100-continue\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n",
        );
        assert!(h.expect_continue);
        assert_eq!(h.charset, Some("UTF-8"));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let refused = |head: &str| matches!(parse(head.as_bytes(), &Config::default()), Parsed::Refused(_));
        assert!(refused("POST /lslhttp/c/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"));
        assert!(refused("POST /lslhttp/c/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"));
        assert!(refused("POST /lslhttp/c/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n"));
        assert!(refused("POST /lslhttp/c/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"));
    }
}
