//! Raw TCP lines on the same port (SPEC §13): the line codec.
//!
//! A connection whose first byte is `/` is a line client; its first line is
//! a WebSocket URL's path, and after it every line is one text message. A
//! line ends with `\n` (a `\r` before it is dropped). Inside a message, LF,
//! CR and backslash travel escaped as `\n`, `\r` and `\\`, both ways.
//!
//! Control lines, decided for this crate (the SPEC leaves it open), are
//! lines that start with a backslash and a word, which no escaped message
//! can (a message's own backslash is always doubled):
//!
//! | line | direction | meaning |
//! |---|---|---|
//! | `\error <status> <reason>` | server → client | the first line was refused (404 unknown or revoked URL, 503 full, 429 rate limit, 400 not a URL path); then the connection closes |
//! | `\close <code> <reason>` | both | the session ends with that code and reason (the script's `llWebsocketClose`, a revocation's 1001, a violation's 1007/1009); the server closes the connection after it. From the client, `\close` alone means 1000 |
//! | `\ping` | both | are you there? answered `\pong` |
//! | `\pong` | both | the answer; from the client it only shows it is alive |
//!
//! Idle: a line client can answer a ping, as above. After the idle interval
//! of silence the server sends `\ping`; any line back (a message, `\pong`,
//! `\ping`) keeps the session; silence for another interval drops it, and the
//! script gets `WS_CLOSE` `1006 ping timeout`, as for a WebSocket client.
//! Any other line starting with a backslash and a letter is a message whose
//! unknown escapes stay as written.

use bytes::Bytes;

use crate::frame::{Decoded, Violation};

/// The decoded text of one line, or a control line, or the line is not complete yet.
pub(crate) fn decode(input: &[u8], max_message: usize) -> Result<Option<(Decoded, usize)>, Violation> {
    let Some(end) = input.iter().position(|&b| b == b'\n') else {
        // Escapes at most double a message, so a longer partial line is over the cap.
        if input.len() > max_line(max_message) {
            return Err(Violation { code: 1009, reason: "message too big" });
        }
        return Ok(None);
    };
    let used = end + 1;
    let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    match line {
        b"\\ping" => return Ok(Some((Decoded::Ping(Bytes::new()), used))),
        b"\\pong" => return Ok(Some((Decoded::Nothing, used))),
        _ => {}
    }
    if let Some(rest) = line.strip_prefix(b"\\close")
        && (rest.is_empty() || rest[0] == b' ')
    {
        return Ok(Some((close_line(rest), used)));
    }
    let text = unescape(line);
    if text.len() > max_message {
        return Err(Violation { code: 1009, reason: "message too big" });
    }
    match String::from_utf8(text) {
        Ok(text) => Ok(Some((Decoded::Text(text), used))),
        Err(_) => Err(Violation { code: 1007, reason: "invalid utf-8" }),
    }
}

/// The longest line (escaped) a message under the cap can take.
pub(crate) fn max_line(max_message: usize) -> usize {
    max_message.saturating_mul(2).saturating_add(2)
}

/// `\close [code [reason]]` from the client: 1000 when no valid code is given.
fn close_line(rest: &[u8]) -> Decoded {
    let rest = String::from_utf8_lossy(&unescape(rest.strip_prefix(b" ").unwrap_or(rest))).into_owned();
    let (code, reason) = rest.split_once(' ').unwrap_or((&rest, ""));
    let code = code.parse::<u16>().ok().filter(|c| *c == 1000 || (3000..=4999).contains(c)).unwrap_or(1000);
    Decoded::Close(Some(code), crate::http::charset::cut_str(reason, 123).to_string())
}

fn unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'\\') => out.push(b'\\'),
            Some(other) => out.extend_from_slice(&[b'\\', other]),
            None => out.push(b'\\'),
        }
    }
    out
}

/// The length of [`text_parts`] for `parts`, without building it.
pub(crate) fn escaped_len(parts: &[&[u8]]) -> usize {
    parts.iter().flat_map(|p| p.iter()).map(|&b| if matches!(b, b'\n' | b'\r' | b'\\') { 2 } else { 1 }).sum::<usize>()
        + 1
}

/// One message as a line: its parts concatenated, escaped, then `\n`.
pub(crate) fn text_parts(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + len / 8 + 1);
    for part in parts {
        for &b in *part {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\\' => out.extend_from_slice(b"\\\\"),
                _ => out.push(b),
            }
        }
    }
    out.push(b'\n');
    Bytes::from(out)
}

/// `\close <code> <reason>`; the reason is escaped like a message.
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    let escaped = text_parts(&[reason.as_bytes()]);
    let mut out = format!("\\close {code} ").into_bytes();
    out.extend_from_slice(&escaped);
    Bytes::from(out)
}

/// `\error <status> <reason>` for a refused first line.
pub(crate) fn error(status: u16) -> Bytes {
    let reason = match status {
        404 => "not found",
        429 => "too many requests",
        503 => "unavailable",
        _ => "bad request",
    };
    Bytes::from(format!("\\error {status} {reason}\n"))
}

pub(crate) fn ping() -> Bytes {
    Bytes::from_static(b"\\ping\n")
}

pub(crate) fn pong() -> Bytes {
    Bytes::from_static(b"\\pong\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<Option<(Decoded, usize)>, Violation> {
        decode(input, 16)
    }

    #[test]
    fn lines_and_escapes() {
        assert_eq!(one(b"hi\nnext").unwrap(), Some((Decoded::Text("hi".into()), 3)));
        assert_eq!(one(b"hi\r\n").unwrap(), Some((Decoded::Text("hi".into()), 4)));
        assert_eq!(one(b"a\\nb\\\\c\\rd\n").unwrap().unwrap().0, Decoded::Text("a\nb\\c\rd".into()));
        assert_eq!(one(b"\\q\n").unwrap().unwrap().0, Decoded::Text("\\q".into()));
        assert_eq!(one(b"\n").unwrap().unwrap().0, Decoded::Text(String::new()));
        assert_eq!(one(b"partial").unwrap(), None);
        assert_eq!(&text_parts(&[b"a\nb\\c\r"])[..], b"a\\nb\\\\c\\r\n");
        assert_eq!(escaped_len(&[b"a\nb", b"\\c\r"]), text_parts(&[b"a\nb\\c\r"]).len());
        for text in ["", "plain", "a\nb", "\\close 1000", "\\ping", "\r\n\\"] {
            let line = text_parts(&[text.as_bytes()]);
            let (decoded, used) = decode(&line, 64).unwrap().unwrap();
            assert_eq!((decoded, used), (Decoded::Text(text.into()), line.len()), "{text:?} round trips");
        }
    }

    #[test]
    fn control_lines() {
        assert_eq!(one(b"\\ping\n").unwrap().unwrap().0, Decoded::Ping(Bytes::new()));
        assert_eq!(one(b"\\pong\r\n").unwrap().unwrap().0, Decoded::Nothing);
        assert_eq!(one(b"\\close\n").unwrap().unwrap().0, Decoded::Close(Some(1000), String::new()));
        assert_eq!(one(b"\\close 4000 bye now\n").unwrap().unwrap().0, Decoded::Close(Some(4000), "bye now".into()));
        assert_eq!(one(b"\\close 1006 x\n").unwrap().unwrap().0, Decoded::Close(Some(1000), "x".into()));
        assert_eq!(one(b"\\closed\n").unwrap().unwrap().0, Decoded::Text("\\closed".into()));
        assert_eq!(&close(1001, "script reset")[..], b"\\close 1001 script reset\n");
    }

    #[test]
    fn caps_and_utf8() {
        assert_eq!(one(&[b'a'; 16]).unwrap(), None);
        assert_eq!(one(b"aaaaaaaaaaaaaaaaa\n").unwrap_err().code, 1009);
        assert_eq!(one(&[b'a'; 35]).unwrap_err().code, 1009, "decided before the line ends");
        assert_eq!(one(b"\xff\n").unwrap_err().code, 1007);
        assert_eq!(decode("é\n".as_bytes(), 2).unwrap().unwrap().0, Decoded::Text("é".into()));
    }
}
