//! Routing a connection to its region when many share one port (SPEC §16).
//!
//! A region with [`Config::route_tag`](crate::Config::route_tag) mints
//! every capability with the tag as its first two bytes. A router (one
//! acceptor in front of many region threads) reads the first bytes of each
//! connection, after any PROXY header and TLS, and [`route`] tells it the
//! tag from the request line (or a line client's first line): no table is
//! shared between regions, nothing is locked, and a capability of one region
//! can never resolve in another, whose tables do not hold it. The router
//! hands the connection and the bytes it read to that region, which takes
//! them as its first [`Input::Received`](crate::Input::Received).
//!
//! ```
//! use lsl_websocket::route::{route, Route};
//!
//! let head = b"GET /lslws/002a9c1e-0000-4000-8000-000000000001/ HTTP/1.1\r\n";
//! assert_eq!(route(head), Route::Tag(0x002a));
//! assert_eq!(route(&head[..12]), Route::Incomplete);
//! assert_eq!(route(b"/lslhttps/FFFF"), Route::Tag(0xffff)); // a line client's first line
//! assert_eq!(route(b"GET / HTTP/1.1\r\n"), Route::Untagged); // the embedder's page
//! ```
//!
//! Send untagged connections and unknown tags to one default region: it
//! answers them (404 in the protocol the client speaks, or a page with
//! [`Config::serve_other_paths`](crate::Config::serve_other_paths)).

/// Where a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Not decided yet: read more (at most [`MAX_PREFIX`] bytes in all).
    Incomplete,
    /// The capability's tag: the region whose `route_tag` it is.
    Tag(u16),
    /// No capability path: the default region's.
    Untagged,
}

/// [`route`] decides within this many bytes.
pub const MAX_PREFIX: usize = MAX_METHOD + 1 + LONGEST_PREFIX + 4;

/// Longest method token looked for before the target.
const MAX_METHOD: usize = 16;
/// Where capabilities live: WebSocket URLs, HTTP-in URLs, SSE send URLs.
const PREFIXES: [&[u8]; 4] = [b"/lslws/", b"/lslhttp/", b"/lslhttps/", b"/lslsse/"];
const LONGEST_PREFIX: usize = 10;

/// The route of a connection from its first bytes (any split gives the same
/// answer once enough has arrived).
pub fn route(buf: &[u8]) -> Route {
    // SPEC §13: a line client's first byte is `/`; otherwise a request line.
    let target = if buf.first() == Some(&b'/') {
        buf
    } else {
        match buf.iter().take(MAX_METHOD + 1).position(|&b| b == b' ') {
            Some(space) if space > 0 && buf[..space].iter().all(u8::is_ascii_alphabetic) => &buf[space + 1..],
            None if buf.len() <= MAX_METHOD && buf.iter().all(u8::is_ascii_alphabetic) => return Route::Incomplete,
            _ => return Route::Untagged,
        }
    };
    let mut undecided = false;
    for prefix in PREFIXES {
        let want = prefix.len() + 4;
        let seen = &target[..target.len().min(want)];
        let fits = seen.iter().enumerate().all(|(i, &b)| match prefix.get(i) {
            Some(&p) => b == p,
            None => b.is_ascii_hexdigit(),
        });
        if !fits {
            continue;
        }
        if seen.len() < want {
            undecided = true;
            continue;
        }
        let hex = &seen[prefix.len()..];
        let tag = hex.iter().fold(0u16, |tag, &b| (tag << 4) | u16::from(hex_value(b)));
        return Route::Tag(tag);
    }
    if undecided { Route::Incomplete } else { Route::Untagged }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// The first two bytes of a capability minted with `tag`.
pub(crate) fn stamp(bytes: &mut [u8; 16], tag: Option<u16>) {
    if let Some(tag) = tag {
        bytes[..2].copy_from_slice(&tag.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_kind_and_every_split() {
        for (text, tag) in [
            ("GET /lslws/abcd0000-0000-4000-8000-000000000001/x HTTP/1.1\r\n", Some(0xabcd)),
            ("POST /lslhttp/0001aaaa-0000-4000-8000-000000000001/ HTTP/1.1\r\n", Some(1)),
            ("PUT /lslhttps/Fe01aaaa/ HTTP/1.1\r\n", Some(0xfe01)),
            ("POST /lslsse/12345678-0000-4000-8000-000000000001/ HTTP/1.1\r\n", Some(0x1234)),
            ("/lslws/00ff0000-0000-4000-8000-000000000001/\n", Some(0xff)),
            ("GET / HTTP/1.1\r\n", None),
            ("GET /lslws.js HTTP/1.1\r\n", None),
            ("GET /lslws/xyz HTTP/1.1\r\n", None),
            ("GET /lslhttpx/0000 HTTP/1.1\r\n", None),
            ("OPTIONS * HTTP/1.1\r\n", None),
            ("\x16\x03\x01\x02\x00", None), // a TLS hello on a plain port
        ] {
            let text = text.as_bytes();
            let want = tag.map_or(Route::Untagged, Route::Tag);
            assert_eq!(route(text), want, "{}", String::from_utf8_lossy(text));
            let mut decided = false;
            for cut in 0..text.len() {
                match route(&text[..cut]) {
                    Route::Incomplete => assert!(!decided && cut <= MAX_PREFIX, "undecided after deciding, at {cut}"),
                    got => {
                        assert_eq!(got, want, "cut {cut}");
                        decided = true;
                    }
                }
            }
        }
    }

    #[test]
    fn long_or_odd_methods_are_untagged() {
        assert_eq!(route(b"AVERYLONGMETHODNAME /lslws/0000"), Route::Untagged);
        assert_eq!(route(b"GE\0T"), Route::Untagged);
        assert_eq!(route(b""), Route::Incomplete);
    }

    #[test]
    fn stamping() {
        let mut bytes = [9; 16];
        stamp(&mut bytes, None);
        assert_eq!(bytes, [9; 16]);
        stamp(&mut bytes, Some(0x0102));
        assert_eq!(bytes[..3], [1, 2, 9]);
    }
}
