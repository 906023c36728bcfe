//! HTTP-in responses: the script's answer, and the core's own (SPEC §8 table).

use bytes::Bytes;

/// `100 Continue`, sent before a body the client holds back (`Expect: 100-continue`).
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A complete response. `close` adds `Connection: close`. A status outside
/// 100..=599 is answered 500 (SPEC §8), and so is a 1xx: it is interim in
/// HTTP, so a client would go on waiting for an answer that never comes.
/// 204 and 304 carry no body and are sent without one.
pub(crate) fn render(status: i32, content_type: &str, body: &[u8], close: bool) -> Bytes {
    let status = u16::try_from(status).ok().filter(|s| (200..=599).contains(s)).unwrap_or(500);
    let bodiless = status == 204 || status == 304;
    let body = if bodiless { &[][..] } else { body };
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if !bodiless {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// `204 No Content`, with `Connection: close` when the connection ends after it.
pub(crate) fn no_content(close: bool) -> Bytes {
    if close {
        Bytes::from_static(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    } else {
        Bytes::from_static(b"HTTP/1.1 204 No Content\r\n\r\n")
    }
}

/// One of the core's own answers (404, 405, 503, …), always closing the connection.
pub(crate) fn refusal(status: u16) -> Bytes {
    let extra = match status {
        405 => "Allow: GET, POST, PUT, DELETE\r\n",
        429 | 503 => "Retry-After: 1\r\n",
        _ => "",
    };
    Bytes::from(format!(
        "HTTP/1.1 {status} {}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n",
        reason(status)
    ))
}

/// The reason phrase of a status.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let r = render(200, "text/plain; charset=utf-8", b"hi", false);
        assert_eq!(
            &r[..],
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi"
        );
        let r = render(700, "text/plain", b"x", true);
        assert!(r.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n") && r.ends_with(b"Connection: close\r\n\r\nx"));
        assert!(render(100, "text/plain", b"x", false).starts_with(b"HTTP/1.1 500 "), "1xx cannot end a request");
        let r = render(204, "text/plain", b"dropped", false);
        assert_eq!(&r[..], b"HTTP/1.1 204 No Content\r\n\r\n");
        assert!(refusal(405).windows(6).any(|w| w == b"Allow:"));
    }
}
