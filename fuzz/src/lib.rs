//! Helpers shared by the fuzz targets: a checker for everything the server
//! writes on one connection, client-side frame and request-head builders,
//! and a chunker that splits a byte stream at fuzzer-chosen points.

use std::io::Cursor;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// The statuses SPEC §5 lets a handshake be refused with.
pub const REFUSALS: [u16; 7] = [400, 404, 405, 426, 429, 431, 503];

/// RFC 6455 §1.3's example key and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What a connection's response head said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Nothing written yet.
    Nothing,
    /// 101: frames follow.
    Open,
    /// A refusal with this status: nothing may follow.
    Refused(u16),
}

/// Follows everything the server writes on one connection and panics on the
/// first byte that breaks SPEC §5 / RFC 6455 for a server.
#[derive(Debug)]
pub struct WireChecker {
    buf: Vec<u8>,
    pub answer: Answer,
    /// The server has written a close frame: nothing may follow it.
    pub close_sent: bool,
    /// Region endpoint: every text frame must parse as a server envelope.
    pub region: bool,
    /// Frames seen after the 101, by opcode byte.
    pub frames: usize,
}

impl WireChecker {
    pub fn new(region: bool) -> WireChecker {
        WireChecker { buf: Vec::new(), answer: Answer::Nothing, close_sent: false, region, frames: 0 }
    }

    /// Takes the next bytes the server handed out.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.answer == Answer::Nothing {
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                assert!(self.buf.len() < 512, "no complete response head in {} bytes", self.buf.len());
                // The server writes whole heads at once.
                panic!("partial response head: {:?}", String::from_utf8_lossy(&self.buf));
            };
            let head = std::str::from_utf8(&self.buf[..end + 4]).expect("ASCII response head").to_string();
            self.buf.drain(..end + 4);
            let status: u16 = head
                .strip_prefix("HTTP/1.1 ")
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line: {head:?}"));
            if status == 101 {
                assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head:?}");
                assert!(head.contains("\r\nSec-WebSocket-Accept: "), "{head:?}");
                self.answer = Answer::Open;
            } else {
                assert!(REFUSALS.contains(&status), "status {status} is not one SPEC §5 allows: {head:?}");
                assert!(head.contains("\r\nContent-Length: 0\r\n"), "{head:?}");
                if status == 426 {
                    assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{head:?}");
                }
                self.answer = Answer::Refused(status);
            }
        }
        match self.answer {
            Answer::Refused(status) => assert!(self.buf.is_empty(), "bytes after a {status} refusal"),
            Answer::Open => self.frames_in_buf(),
            Answer::Nothing => unreachable!(),
        }
    }

    /// Parses every complete frame in the buffer. The server writes whole
    /// frames, so a `take` always ends on a frame boundary.
    fn frames_in_buf(&mut self) {
        let mut pos = 0;
        while pos < self.buf.len() {
            let mut cursor = Cursor::new(&self.buf[pos..]);
            let (header, len) = FrameHeader::parse(&mut cursor)
                .unwrap_or_else(|e| panic!("server frame header does not parse: {e}"))
                .unwrap_or_else(|| panic!("truncated server frame header"));
            let start = pos + cursor.position() as usize;
            let end = start.checked_add(usize::try_from(len).expect("length fits")).expect("no overflow");
            assert!(end <= self.buf.len(), "truncated server frame: {len} bytes announced");
            let payload = &self.buf[start..end];
            assert!(!self.close_sent, "a frame after the server's close frame: {:?}", header.opcode);
            assert!(header.mask.is_none(), "server frame is masked");
            assert!(!header.rsv1 && !header.rsv2 && !header.rsv3, "server frame has an RSV bit");
            assert!(header.is_final, "server frames are never fragmented");
            match header.opcode {
                OpCode::Data(Data::Text) => {
                    let text = std::str::from_utf8(payload).expect("server text frame is UTF-8");
                    if self.region {
                        lsl_websocket::envelope::parse_server(text)
                            .unwrap_or_else(|e| panic!("server envelope {text:?} does not parse: {e}"));
                    }
                }
                OpCode::Control(c) => {
                    assert!(payload.len() <= 125, "control frame of {} bytes", payload.len());
                    match c {
                        Control::Close => {
                            check_close_payload(payload);
                            self.close_sent = true;
                        }
                        Control::Ping | Control::Pong => {}
                        Control::Reserved(op) => panic!("reserved control opcode {op}"),
                    }
                }
                other => panic!("the server sends only text and control frames, not {other:?}"),
            }
            self.frames += 1;
            pos = end;
        }
        self.buf.clear();
    }
}

fn check_close_payload(payload: &[u8]) {
    assert_ne!(payload.len(), 1, "close payload of 1 byte");
    if payload.len() >= 2 {
        let code = u16::from_be_bytes([payload[0], payload[1]]);
        assert!(!matches!(code, 1005 | 1006 | 1015), "close code {code} on the wire");
        assert!(CloseCode::from(code).is_allowed(), "close code {code} is not allowed on the wire");
        std::str::from_utf8(&payload[2..]).expect("close reason is UTF-8");
    }
}

/// A valid version-13 upgrade head for `target`.
pub fn upgrade_head(target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// The request target of a URL (`/lslws/{cap}/`).
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// One client frame: masked with `mask`, any opcode, FIN as given.
pub fn client_frame(fin: bool, opcode: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (opcode & 0x0f)];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Splits `data` into chunks whose lengths cycle through `sizes` (each taken
/// as 1..=256); no sizes means one chunk.
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (usize::from(sizes[i % sizes.len()]) + 1).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
    out
}
