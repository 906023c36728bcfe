//! The opening handshake (SPEC §5, first table): parse a request head with
//! `httparse`, decide the answer, and render the response.

use core::net::IpAddr;

use crate::config::Config;
use crate::trust;
use crate::url::{self, Target};

/// How many headers a request head may carry before it is answered 431.
const MAX_HEADERS: usize = 64;

/// An HTTP answer the handshake can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 101 Switching Protocols: the session is open.
    SwitchingProtocols,
    /// 400: missing or invalid `Sec-WebSocket-Key`, `Connection` or `Upgrade`, or not HTTP/1.1.
    BadRequest,
    /// 404: unknown or revoked capability.
    NotFound,
    /// 405: not `GET`.
    MethodNotAllowed,
    /// 426 without a version header: a plain request (no `Upgrade`, no
    /// `Sec-WebSocket-Key`, no `Connection: upgrade`).
    UpgradeRequired,
    /// 426 with `Sec-WebSocket-Version: 13`: another protocol version.
    UnsupportedVersion,
    /// 429: too many handshakes from this remote address.
    TooManyRequests,
    /// 431: a header value over the limit, or a request head over the limit.
    HeaderTooLarge,
    /// 503: the URL holds its maximum of sessions.
    Unavailable,
}

impl Status {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Status::SwitchingProtocols => 101,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::UpgradeRequired | Status::UnsupportedVersion => 426,
            Status::TooManyRequests => 429,
            Status::HeaderTooLarge => 431,
            Status::Unavailable => 503,
        }
    }

    /// The complete response for a refusal (every status but 101).
    pub(crate) fn refusal(self) -> &'static [u8] {
        match self {
            Status::SwitchingProtocols | Status::BadRequest => {
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            Status::MethodNotAllowed => {
                b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Status::UpgradeRequired => {
                b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Status::UnsupportedVersion => {
                b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Status::TooManyRequests => {
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Status::HeaderTooLarge => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Status::Unavailable => {
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
        }
    }
}

/// The 101 response for a valid `Sec-WebSocket-Key`.
pub(crate) fn accept_response(key: &str) -> Vec<u8> {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// A complete `Connection: close` response with `body`.
pub(crate) fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// What a complete request head says, once it passed the size limits.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// `None` when the target names no capability.
    pub(crate) target: Option<Target<'a>>,
    /// The raw target, for embedders serving other paths.
    pub(crate) path: &'a str,
    pub(crate) method: &'a str,
    /// `Ok(key)` when the request is a valid version-13 upgrade, else the refusal
    /// that applies once the capability is known to be live.
    pub(crate) upgrade: Result<&'a str, Status>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) origin: Option<&'a str>,
    pub(crate) protocol: Option<&'a str>,
    /// `Accept` names `text/event-stream` (SPEC §14).
    pub(crate) accept_sse: bool,
    /// `Last-Event-ID`, for a stream that reconnects.
    pub(crate) last_event_id: Option<&'a str>,
    /// The client's address: the peer's, or the rightmost untrusted hop of
    /// the forwarded header when the peer is a trusted proxy (SPEC §15).
    pub(crate) client: IpAddr,
}

/// Outcome of offering the bytes received so far.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// More bytes are needed.
    Partial,
    /// The head is complete: the request and the head's length in bytes.
    Complete(Request<'a>, usize),
    /// Refused before the capability is looked at (400 or 431).
    Refused(Status),
}

/// Parses a request head, enforcing the head and header-value limits.
pub(crate) fn parse<'a>(buf: &'a [u8], config: &Config, peer: IpAddr) -> Parsed<'a> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            // Values are checked as they arrive, so a slow client cannot hold 8 KiB of one header.
            return if buf.len() >= config.max_request_head || partial_value_too_long(buf, config) {
                Parsed::Refused(Status::HeaderTooLarge)
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refused(Status::HeaderTooLarge),
        Err(_) => return Parsed::Refused(Status::BadRequest),
    };
    if len > config.max_request_head || req.headers.iter().any(|h| h.value.len() > config.max_header_value) {
        return Parsed::Refused(Status::HeaderTooLarge);
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Refused(Status::BadRequest);
    };
    let mut upgrade_hdr = None;
    let mut connection_upgrade = false;
    let mut ws_keys = 0;
    let mut ws_key = None;
    let mut ws_version = None;
    let mut user_agent = None;
    let mut origin = None;
    let mut protocol = None;
    let mut accept_sse = false;
    let mut last_event_id = None;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            // Values the script may read must be text; the others are not inspected.
            if is_one_of(h.name, &["user-agent", "origin", "sec-websocket-protocol", "sec-websocket-key"]) {
                return Parsed::Refused(Status::BadRequest);
            }
            continue;
        };
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade_hdr = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            ws_keys += 1;
            ws_key = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            ws_version = Some(value);
        } else if name.eq_ignore_ascii_case("user-agent") {
            user_agent = Some(value);
        } else if name.eq_ignore_ascii_case("origin") {
            origin = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocol = Some(value);
        } else if name.eq_ignore_ascii_case("accept") {
            accept_sse |=
                value.split(',').any(|t| t.split(';').next().is_some_and(|m| m.trim() == "text/event-stream"));
        } else if name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = Some(value);
        }
    }
    let upgrade = if method != "GET" {
        Err(Status::MethodNotAllowed)
    } else if upgrade_hdr.is_none() && ws_keys == 0 && !connection_upgrade {
        // A plain request: nothing in it asks for a WebSocket. One that carries
        // a key or `Connection: upgrade` but no `Upgrade` is a broken handshake (400).
        Err(Status::UpgradeRequired)
    } else if version != 1
        || !upgrade_hdr.is_some_and(|u| has_token(u, "websocket"))
        || !connection_upgrade
        || ws_keys != 1
        || !ws_key.is_some_and(valid_key)
    {
        Err(Status::BadRequest)
    } else if ws_version != Some("13") {
        Err(Status::UnsupportedVersion)
    } else {
        Ok(ws_key.unwrap_or_default())
    };
    let forwarded = config.forwarded_header.name();
    let hops = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(forwarded)).map(|h| h.value);
    let client = trust::client_of(peer, &config.trusted_proxies, config.forwarded_header, hops);
    let request = Request {
        target: url::parse_target(path),
        path,
        method,
        upgrade,
        user_agent,
        origin,
        protocol,
        accept_sse,
        last_event_id,
        client,
    };
    Parsed::Complete(request, len)
}

/// The reason phrase for the statuses an embedder is likely to answer with.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn is_one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn has_token(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A `Sec-WebSocket-Key` must be the base64 of exactly 16 bytes: 22 symbols,
/// `==`, and a last symbol whose unused low bits are zero.
fn valid_key(key: &str) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = key.as_bytes();
    if b.len() != 24 || &b[22..] != b"==" {
        return false;
    }
    let sextet = |c: u8| ALPHABET.iter().position(|&a| a == c);
    b[..22].iter().all(|&c| sextet(c).is_some()) && sextet(b[21]).is_some_and(|v| v & 0x0f == 0)
}

/// While the head is incomplete, whether the line being received (or any
/// complete header line) already holds a value over the limit.
fn partial_value_too_long(buf: &[u8], config: &Config) -> bool {
    buf.split(|&b| b == b'\n').skip(1).any(|line| {
        let value = line.iter().position(|&b| b == b':').map_or(0, |colon| line.len() - colon - 1);
        value > config.max_header_value + 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZR=="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key("dGhlIHNhbXBsZSBub25j*Q=="));
        assert!(!valid_key(""));
    }

    #[test]
    fn accept_key_matches_rfc6455_example() {
        let r = String::from_utf8(accept_response("dGhlIHNhbXBsZSBub25jZQ==")).unwrap();
        assert!(r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }
}
