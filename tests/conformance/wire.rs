//! The simulated client's side of the wire: request heads and masked frames
//! out, HTTP responses and server frames in.

use std::fmt;

// The event stream of an SSE client (SPEC §14).
mod sse;
pub use sse::{Event, json_member, json_text};

/// The mask every client frame uses unless a step says otherwise (RFC 6455 §5.7's example).
pub const DEFAULT_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame the client sends.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    pub fin: bool,
    /// The three RSV bits as one number: 4 = RSV1, 2 = RSV2, 1 = RSV3.
    pub rsv: u8,
    pub opcode: u8,
    /// `None`: unmasked.
    pub mask: Option<[u8; 4]>,
    /// The payload length written in the header (normally the payload's length).
    pub declared_len: u64,
    pub payload: Vec<u8>,
}

impl FrameSpec {
    pub fn new(opcode: u8, payload: Vec<u8>) -> FrameSpec {
        FrameSpec { fin: true, rsv: 0, opcode, mask: Some(DEFAULT_MASK), declared_len: payload.len() as u64, payload }
    }

    pub fn encode(&self) -> Vec<u8> {
        let frame = crate::common::frame(self.opcode, &self.payload).fin(self.fin).rsv(self.rsv);
        let frame = match self.mask {
            Some(mask) => frame.mask(mask),
            None => frame.unmasked(),
        };
        frame.declared_len(self.declared_len).build()
    }
}

/// One thing the client observed from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An HTTP response head and its body (by `Content-Length`).
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A complete text message (fragments reassembled).
    Text(String),
    Binary(Vec<u8>),
    /// A close frame: `None` for an empty payload.
    Close(Option<(u16, String)>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// One line from the server to a line client (SPEC §13), as written,
    /// without its `\n`; [`classify_line`] reads it as a message or a control line.
    Line(String),
    /// One block of an event stream (SPEC §14): an event, or comments only.
    Sse(Event),
    /// Something a conforming server never sends (masked frame, bad UTF-8, …).
    Violation(String),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Http { status, headers, body } => {
                write!(f, "http {status}")?;
                for (name, value) in headers {
                    write!(f, " {}={value:?}", name.to_ascii_lowercase())?;
                }
                if !body.is_empty() {
                    write!(f, " body={}", show_bytes(body))?;
                }
                Ok(())
            }
            Item::Text(t) => write!(f, "text {t:?}"),
            Item::Binary(b) => write!(f, "binary hex={}", hex::encode(b)),
            Item::Close(None) => write!(f, "close (empty payload)"),
            Item::Close(Some((code, reason))) => write!(f, "close {code} {reason:?}"),
            Item::Ping(p) => write!(f, "ping {}", show_bytes(p)),
            Item::Pong(p) => write!(f, "pong {}", show_bytes(p)),
            Item::Line(l) => write!(f, "line {l:?}"),
            Item::Sse(e) => write!(f, "{e}"),
            Item::Violation(v) => write!(f, "protocol violation by the server: {v}"),
        }
    }
}

pub fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("hex={}", hex::encode(b)),
    }
}

/// What the client expects next on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// An HTTP response head (again after a response that keeps the connection open).
    #[default]
    Http,
    /// WebSocket frames (after a 101).
    Frames,
    /// Nothing more (after a `Connection: close` response): any byte is a violation.
    Done,
    /// Lines (a line client, SPEC §13).
    Lines,
    /// The blocks of an event stream (after an SSE client's 200, SPEC §14).
    Events,
}

/// The client's reading state.
#[derive(Debug, Default)]
pub struct Reader {
    pub buf: Vec<u8>,
    pub mode: Mode,
    /// An SSE client: a 200 response is followed by an event stream.
    pub sse: bool,
    /// A fragmented message being reassembled: its opcode and bytes so far.
    partial: Option<(u8, Vec<u8>)>,
}

impl Reader {
    /// The next complete item in the buffer, consuming it; `None` when incomplete.
    pub fn next(&mut self) -> Option<Item> {
        loop {
            match self.mode {
                Mode::Done => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let extra = std::mem::take(&mut self.buf);
                    return Some(Item::Violation(format!("bytes after the response: {}", show_bytes(&extra))));
                }
                Mode::Http => return self.http(),
                Mode::Lines => return self.line(),
                Mode::Events => return self.sse_event(),
                Mode::Frames => {
                    let (first, payload) = match self.frame()? {
                        Ok(frame) => frame,
                        Err(violation) => return Some(Item::Violation(violation)),
                    };
                    let opcode = first & 0x0f;
                    let fin = first & 0x80 != 0;
                    match opcode {
                        0x8 => {
                            return Some(match payload.as_slice() {
                                [] => Item::Close(None),
                                [_] => Item::Violation("close payload of 1 byte".into()),
                                [hi, lo, reason @ ..] => match std::str::from_utf8(reason) {
                                    Ok(r) => Item::Close(Some((u16::from_be_bytes([*hi, *lo]), r.to_string()))),
                                    Err(_) => Item::Violation("close reason is not UTF-8".into()),
                                },
                            });
                        }
                        0x9 => return Some(Item::Ping(payload)),
                        0xa => return Some(Item::Pong(payload)),
                        0x0 => {
                            let Some((_, buf)) = self.partial.as_mut() else {
                                return Some(Item::Violation("continuation without a start".into()));
                            };
                            buf.extend_from_slice(&payload);
                            if !fin {
                                continue;
                            }
                            let (op, buf) = self.partial.take().unwrap_or_default();
                            return Some(message(op, buf));
                        }
                        0x1 | 0x2 if self.partial.is_some() => {
                            return Some(Item::Violation("new message inside a fragmented one".into()));
                        }
                        0x1 | 0x2 if !fin => {
                            self.partial = Some((opcode, payload));
                            continue;
                        }
                        0x1 | 0x2 => return Some(message(opcode, payload)),
                        other => return Some(Item::Violation(format!("reserved opcode {other}"))),
                    }
                }
            }
        }
    }

    /// One frame: the first header byte and the payload, or why a server may not send it.
    fn frame(&mut self) -> Option<Result<(u8, Vec<u8>), String>> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize, 4),
            127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize, 10),
            n => (n as usize, 2),
        };
        let mask = if masked {
            let m: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            at += 4;
            Some(m)
        } else {
            None
        };
        let mut payload = b.get(at..at + len)?.to_vec();
        let first = b[0];
        self.buf.drain(..at + len);
        if let Some(m) = mask {
            payload.iter_mut().enumerate().for_each(|(i, x)| *x ^= m[i % 4]);
        }
        if masked || first & 0x70 != 0 {
            self.mode = Mode::Done;
            let what = if masked { "masked server frame" } else { "RSV bit set on a server frame" };
            return Some(Err(format!("{what} (first byte {first:#04x})")));
        }
        Some(Ok((first, payload)))
    }

    /// One server line: UTF-8, and never a raw CR (the server escapes it).
    fn line(&mut self) -> Option<Item> {
        let end = self.buf.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
        Some(match String::from_utf8(line) {
            Ok(l) if l.contains('\r') => Item::Violation(format!("raw CR in a server line {l:?}")),
            Ok(l) => Item::Line(l),
            Err(e) => Item::Violation(format!("server line is not UTF-8: hex={}", hex::encode(e.as_bytes()))),
        })
    }

    fn http(&mut self) -> Option<Item> {
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let parsed = response.parse(&self.buf[..end]);
        let (status, headers) = match parsed {
            Ok(httparse::Status::Complete(_)) => (
                response.code.unwrap_or(0),
                response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect::<Vec<_>>(),
            ),
            _ => {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end);
                self.mode = Mode::Done;
                return Some(Item::Violation(format!("malformed HTTP response {head:?}")));
            }
        };
        let body: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        if status != 101 && !(self.sse && status == 200) && self.buf.len() < end + body {
            return None;
        }
        self.buf.drain(..end);
        let closes = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection") && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        });
        let body = if status == 101 {
            self.mode = Mode::Frames;
            Vec::new()
        } else if self.sse && status == 200 {
            // The response body is the event stream, read block by block.
            self.mode = Mode::Events;
            Vec::new()
        } else {
            // Keep-alive (SPEC §8): another response may follow unless this one closes.
            if closes {
                self.mode = Mode::Done;
            }
            self.buf.drain(..body).collect()
        };
        Some(Item::Http { status, headers, body })
    }
}

fn message(opcode: u8, payload: Vec<u8>) -> Item {
    match opcode {
        0x1 => match String::from_utf8(payload) {
            Ok(t) => Item::Text(t),
            Err(e) => Item::Violation(format!("text message is not UTF-8: hex={}", hex::encode(e.as_bytes()))),
        },
        0x2 => Item::Binary(payload),
        _ => Item::Violation(String::from_utf8_lossy(&payload).into_owned()),
    }
}

/// A server line read as what it carries (SPEC §13, FORMAT.md §5.4 and D37):
/// `\ping`, `\pong`, `\close [code [reason]]` as those frames, a message
/// line as its unescaped text; a control word that no message line can be
/// (`\error …`) stays a line. Any other item is returned as it is.
pub fn classify_line(item: Item) -> Item {
    let Item::Line(raw) = item else { return item };
    match raw.as_str() {
        "\\ping" => return Item::Ping(Vec::new()),
        "\\pong" => return Item::Pong(Vec::new()),
        "\\close" => return Item::Close(None),
        _ => {}
    }
    if let Some(rest) = raw.strip_prefix("\\close ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        return match (code.parse::<u16>(), unescape(reason)) {
            (Ok(code), Ok(reason)) => Item::Close(Some((code, reason))),
            _ => Item::Violation(format!("malformed close line {raw:?}")),
        };
    }
    match unescape(&raw) {
        Ok(text) => Item::Text(text),
        // A control word the server may send (`\error`): no message can start so.
        Err(_) if raw.strip_prefix('\\').and_then(|r| r.chars().next()).is_some_and(|c| c.is_ascii_alphabetic()) => {
            Item::Line(raw)
        }
        Err(e) => Item::Violation(format!("{e} in server line {raw:?}")),
    }
}

/// A message as a line's text: LF, CR and backslash escaped (no `\n` appended).
pub fn escape_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

/// The text of a server's message line; the server writes only `\n`, `\r`, `\\`.
fn unescape(line: &str) -> Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            other => {
                return Err(format!(
                    "escape \\{} the server may not write",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

/// Hex digits with optional whitespace to bytes.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&digits).map_err(|e| format!("bad hex {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_response_then_frames() {
        let mut r = Reader::default();
        r.buf.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi\x01\x01a");
        assert!(matches!(r.next(), Some(Item::Http { status: 101, .. })));
        assert_eq!(r.next(), Some(Item::Text("hi".into())));
        assert_eq!(r.next(), None);
        r.buf.extend_from_slice(b"\x89\x00\x80\x01b\x88\x02\x03\xe8");
        assert_eq!(r.next(), Some(Item::Ping(vec![])));
        assert_eq!(r.next(), Some(Item::Text("ab".into())));
        assert_eq!(r.next(), Some(Item::Close(Some((1000, String::new())))));
        r.buf.extend_from_slice(b"\x81\x81\x00\x00\x00\x00a");
        assert!(matches!(r.next(), Some(Item::Violation(v)) if v.contains("masked")));
    }

    #[test]
    fn reads_lines() {
        let mut r = Reader { mode: Mode::Lines, ..Reader::default() };
        r.buf.extend_from_slice(b"a\\nb\\\\\n\\close 1001 script reset\n\\error 404 not found\n\\ping\n\\x\npart");
        assert_eq!(r.next().map(classify_line), Some(Item::Text("a\nb\\".into())));
        assert_eq!(r.next().map(classify_line), Some(Item::Close(Some((1001, "script reset".into())))));
        assert_eq!(r.next().map(classify_line), Some(Item::Line("\\error 404 not found".into())));
        assert_eq!(r.next().map(classify_line), Some(Item::Ping(vec![])));
        assert_eq!(r.next().map(classify_line), Some(Item::Line("\\x".into())));
        assert_eq!(r.next(), None);
        r.buf.extend_from_slice(b"\\q\r\n");
        assert!(matches!(r.next(), Some(Item::Violation(v)) if v.contains("raw CR")));
        assert!(matches!(classify_line(Item::Line("a\\tb".into())), Item::Violation(_)));
        assert_eq!(classify_line(Item::Line("\\r\\n".into())), Item::Text("\r\n".into()));
        assert_eq!(escape_line("a\nb\\c\r"), "a\\nb\\\\c\\r");
    }

    #[test]
    fn encodes_masked_frames() {
        let f = FrameSpec { mask: Some([1, 2, 3, 4]), ..FrameSpec::new(1, b"hi".to_vec()) };
        assert_eq!(f.encode(), vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        let f = FrameSpec { declared_len: 3000, mask: None, fin: false, rsv: 4, ..FrameSpec::new(1, vec![]) };
        assert_eq!(f.encode(), vec![0x41, 126, 0x0b, 0xb8]);
    }
}
