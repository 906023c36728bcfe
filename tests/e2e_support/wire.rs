//! A raw RFC 6455 client for wire-level checks, HTTP probes, and a tungstenite client.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::protocol::WebSocket;
use tungstenite::protocol::frame::coding::CloseCode;

use super::WAIT;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The RFC 6455 §1.3 example key and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// `ws://host:port/path` → (address, path).
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("ws://").unwrap_or_else(|| panic!("not a ws:// URL: {url}"));
    let slash = rest.find('/').unwrap_or(rest.len());
    let addr = rest[..slash].parse().unwrap_or_else(|e| panic!("bad authority in {url}: {e}"));
    let path = if slash == rest.len() { "/".to_string() } else { rest[slash..].to_string() };
    (addr, path)
}

/// A TCP connection to 127.0.0.1 with read and write timeouts.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback(), "tests talk to loopback only, not {addr}");
    let stream = TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A WebSocket upgrade request for `path` with the given extra header lines.
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A parsed HTTP response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub text: String,
}

impl Head {
    /// The value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response head; returns it and any bytes after it.
pub fn read_head(stream: &mut TcpStream) -> (Head, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
            return (Head { status, text }, buf[end + 4..].to_vec());
        }
        match stream.read(&mut chunk) {
            Ok(0) => panic!("connection closed before a response head; got {:?}", String::from_utf8_lossy(&buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading a response head: {e}; got {:?}", String::from_utf8_lossy(&buf)),
        }
    }
}

/// Sends a raw request on a new connection and returns the response head.
pub fn http(addr: SocketAddr, request: &str) -> Head {
    let mut stream = tcp(addr);
    stream.write_all(request.as_bytes()).unwrap();
    read_head(&mut stream).0
}

/// Sends a raw request and returns the response head and body (the server closes after it).
pub fn http_body(addr: SocketAddr, request: &str) -> (Head, Vec<u8>) {
    let mut stream = tcp(addr);
    stream.write_all(request.as_bytes()).unwrap();
    let (head, mut body) = read_head(&mut stream);
    stream.read_to_end(&mut body).unwrap();
    (head, body)
}

/// One frame as the client builds it.
pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked frame, as a conforming client sends them.
pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A close frame payload.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// One frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Code and reason of a close frame.
    pub fn close(&self) -> Option<(u16, String)> {
        if self.opcode != OP_CLOSE || self.payload.len() < 2 {
            return None;
        }
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        Some((code, String::from_utf8_lossy(&self.payload[2..]).into_owned()))
    }
}

/// An open session spoken to frame by frame.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Opens a session on `url`, asserting the 101 and its accept value.
    pub fn open(url: &str) -> Raw {
        let (addr, path) = split_url(url);
        let mut stream = tcp(addr);
        stream.write_all(upgrade_request(&path, "").as_bytes()).unwrap();
        let (head, rest) = read_head(&mut stream);
        assert_eq!(head.status, 101, "handshake on {url}: {}", head.text);
        assert_eq!(head.header("sec-websocket-accept"), Some(ACCEPT));
        Raw { stream, buf: rest }
    }

    /// A second reader on the same connection, for reading while another thread writes.
    pub fn reader(&self) -> Raw {
        assert!(self.buf.is_empty(), "bytes already buffered");
        Raw { stream: self.stream.try_clone().unwrap(), buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to the server");
    }

    pub fn text(&mut self, text: &str) {
        self.send(&masked(true, OP_TEXT, text.as_bytes()));
    }

    /// The next frame, or `None` at end of stream (or a reset after the server closed).
    pub fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("no frame from the server within {WAIT:?}")
                }
                Err(_) => return None,
            }
        }
    }

    /// The next frame, which must exist.
    pub fn frame(&mut self) -> Frame {
        self.read_frame().expect("the server closed the connection, a frame was expected")
    }

    /// The next text message (single frame, as this server sends them).
    pub fn expect_text(&mut self) -> String {
        let f = self.frame();
        assert_eq!((f.opcode, f.fin), (OP_TEXT, true), "expected a text frame, got {f:?}");
        String::from_utf8(f.payload).expect("server text is UTF-8")
    }

    /// Expects a close frame with `code`, then end of stream; returns the reason.
    pub fn expect_close(&mut self, code: u16) -> String {
        let f = self.frame();
        let (got, reason) = f.close().unwrap_or_else(|| panic!("expected close {code}, got {f:?}"));
        assert_eq!(got, code, "close code (reason {reason:?})");
        reason
    }

    /// Expects the end of the stream with no further frame.
    pub fn expect_eof(&mut self) {
        if let Some(f) = self.read_frame() {
            panic!("expected end of stream, got {f:?}");
        }
    }
}

/// Parses one server frame (unmasked, as RFC 6455 requires of servers).
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[0] & 0x70, 0, "server set an RSV bit");
    assert_eq!(buf[1] & 0x80, 0, "server masked a frame");
    let (len, mut pos) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    let payload = buf.get(pos..pos + len)?.to_vec();
    pos += len;
    Some((Frame { fin: buf[0] & 0x80 != 0, opcode: buf[0] & 0x0f, payload }, pos))
}

/// A tungstenite client session with timeouts.
pub type Client = WebSocket<TcpStream>;

/// Opens a tungstenite client on `url`.
pub fn client(url: &str) -> Client {
    let (addr, _) = split_url(url);
    let (ws, response) =
        tungstenite::client::client(url, tcp(addr)).unwrap_or_else(|e| panic!("handshake on {url}: {e}"));
    assert_eq!(response.status().as_u16(), 101);
    ws
}

/// Reads the next text message, answering pings on the way (tungstenite does).
pub fn recv_text(ws: &mut Client) -> String {
    loop {
        match ws.read().unwrap_or_else(|e| panic!("reading a message: {e}")) {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame and returns its code and reason.
pub fn recv_close(ws: &mut Client) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return (u16::from(frame.code), frame.reason.to_string()),
            Ok(Message::Close(None)) => return (u16::from(CloseCode::Status), String::new()),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got error {e}"),
        }
    }
    panic!("no close frame within {WAIT:?}")
}

/// Sends text and expects it back.
pub fn echo_once(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).unwrap();
    assert_eq!(recv_text(ws), text);
}

/// Polls `cond` every 10 ms until it holds, for at most [`WAIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
