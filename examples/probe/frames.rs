//! WebSocket frames: building, parsing, raw sessions and tungstenite sessions.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use tungstenite::handshake::HandshakeError;
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::checks::Outcome;
use crate::net::{Head, Stream, Target, exchange, shown, upgrade_request};
use crate::{Probe, RATE_RETRIES};

// Opcodes (RFC 6455 §5.2).
pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;
// ---------------------------------------------------------------------------
// Frames

/// One frame as the server sent it.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A close frame's code (`None` for an empty close) and reason.
    pub fn close(&self) -> Option<(Option<u16>, String)> {
        if self.opcode != OP_CLOSE {
            return None;
        }
        match self.payload.as_slice() {
            [] => Some((None, String::new())),
            [a, b, reason @ ..] => Some((Some(u16::from_be_bytes([*a, *b])), String::from_utf8_lossy(reason).into())),
            [_] => Some((None, "<1-byte close payload>".into())),
        }
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fin = if self.fin { "" } else { " (no FIN)" };
        match (self.opcode, self.close()) {
            (_, Some((Some(code), reason))) => write!(f, "close {code} {reason:?}"),
            (_, Some((None, _))) => write!(f, "close without a code"),
            (OP_TEXT, _) => write!(f, "text{fin} {}", shown(&self.payload)),
            (OP_CONT, _) => write!(f, "continuation{fin} {}", shown(&self.payload)),
            (OP_BINARY, _) => write!(f, "binary{fin} of {} bytes", self.payload.len()),
            (OP_PING, _) => write!(f, "ping {}", shown(&self.payload)),
            (OP_PONG, _) => write!(f, "pong {}", shown(&self.payload)),
            (op, _) => write!(f, "opcode {op:#x} of {} bytes", self.payload.len()),
        }
    }
}

/// A client frame: masked when `mask` is given.
pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let bit = if mask.is_some() { 0x80 } else { 0 };
    frame_length(&mut out, bit, payload.len() as u64);
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

pub fn frame_length(out: &mut Vec<u8>, mask_bit: u8, len: u64) {
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// A masked frame, as a conforming client sends them.
pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// Parses one server frame; `Err` for what RFC 6455 forbids a server to send.
pub fn parse_frame(buf: &[u8], limit: usize) -> Result<Option<(Frame, usize)>, String> {
    let &[b0, b1, ..] = buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(format!("the server set RSV bits ({b0:#04x}) with no extension negotiated"));
    }
    if b1 & 0x80 != 0 {
        return Err("the server masked a frame (RFC 6455 §5.1 forbids it)".into());
    }
    let opcode = b0 & 0x0f;
    if !matches!(opcode, OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
        return Err(format!("the server sent reserved opcode {opcode:#x}"));
    }
    let (len, start) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let fin = b0 & 0x80 != 0;
    if opcode >= OP_CLOSE && (len > 125 || !fin) {
        return Err(format!("the server sent a control frame of {len} bytes{}", if fin { "" } else { " without FIN" }));
    }
    if len > limit as u64 {
        return Err(format!("the server announced a frame of {len} bytes"));
    }
    let end = start + len as usize;
    let Some(payload) = buf.get(start..end) else { return Ok(None) };
    Ok(Some((Frame { fin, opcode, payload: payload.to_vec() }, end)))
}

/// An open session spoken to frame by frame.
pub struct Raw<'p> {
    probe: &'p Probe,
    stream: Stream,
    buf: Vec<u8>,
}

impl<'p> Raw<'p> {
    /// Opens a session on `t`, checking the 101 and its accept value.
    pub fn open(p: &'p Probe, t: &Target) -> Result<Raw<'p>, String> {
        let key = generate_key();
        let (head, stream, rest) =
            exchange(p, t, &upgrade_request(t, &key, "")).map_err(|e| format!("opening a session: {e}"))?;
        check_101(&head, &key).map_err(|e| format!("opening a session: {e}"))?;
        Ok(Raw { probe: p, stream, buf: rest })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Outcome {
        self.stream.arm();
        self.stream.write_all(bytes).map_err(|e| format!("sending to the server: {e}"))
    }

    /// The next frame; `None` when the connection ended (EOF or reset).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        self.stream.arm();
        let limit = self.probe.frame_limit();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf, limit)? {
                self.buf.drain(..used);
                if let Some((code, _)) = frame.close() {
                    self.probe.saw_close(code, &frame);
                }
                return Ok(Some(frame));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::TimedOut => return Err(format!("waiting for a frame: {e}")),
                Err(_) => return Ok(None),
            }
        }
    }

    pub fn frame(&mut self, waiting_for: &str) -> Result<Frame, String> {
        self.next_frame()?.ok_or_else(|| format!("the connection closed; {waiting_for} was expected"))
    }

    /// The next text message (reassembled if fragmented; pings and pongs skipped).
    pub fn text(&mut self) -> Result<String, String> {
        let mut message: Option<Vec<u8>> = None;
        loop {
            let f = self.frame("a text message")?;
            match (f.opcode, &mut message) {
                (OP_TEXT, None) => message = Some(f.payload),
                (OP_CONT, Some(m)) => m.extend_from_slice(&f.payload),
                (OP_PING | OP_PONG, _) => continue,
                _ => return Err(format!("expected a text message, got {f}")),
            }
            if f.fin {
                let bytes = message.unwrap_or_default();
                return String::from_utf8(bytes).map_err(|_| "the server sent text that is not UTF-8".to_string());
            }
            if message.as_ref().is_some_and(|m| m.len() > self.probe.frame_limit()) {
                return Err("the server's text message grows without end".into());
            }
        }
    }

    /// Expects a close with `code` (`None`: without a code); answers it when
    /// `reply` (the server started the close), then expects the transport
    /// to close with nothing more sent.
    pub fn expect_close(&mut self, code: Option<u16>, reply: bool) -> Result<String, String> {
        let want = code.map_or("a close without a code".to_string(), |c| format!("close {c}"));
        let f = self.frame(&want)?;
        let Some((got, reason)) = f.close() else { return Err(format!("expected {want}, got {f}")) };
        if got != code || f.payload.len() == 1 {
            return Err(format!("expected {want}, got {f}"));
        }
        if reply {
            // The closing handshake as a client completes it; the server may
            // have closed already, so a failed write is fine.
            let _ = self.send(&masked(true, OP_CLOSE, &f.payload));
        }
        self.expect_end(&format!("after {f}")).map(|()| reason)
    }

    /// Expects the end of the connection with no further frame.
    pub fn expect_end(&mut self, when: &str) -> Outcome {
        match self.next_frame() {
            Ok(None) => Ok(()),
            Ok(Some(f)) => Err(format!("{when}: the server sent {f} instead of closing the connection")),
            Err(e) => Err(format!("{when}: the connection stayed open ({e})")),
        }
    }
}

/// A 101 with the accept value for `key` and the upgrade headers.
pub fn check_101(head: &Head, key: &str) -> Outcome {
    if head.status != 101 {
        return Err(format!("got {:?}, want 101", head.first_line()));
    }
    let want = derive_accept_key(key.as_bytes());
    match head.header("sec-websocket-accept") {
        Some(got) if got == want => {}
        Some(got) => return Err(format!("Sec-WebSocket-Accept is {got:?}, want {want:?}")),
        None => return Err("the 101 has no Sec-WebSocket-Accept".into()),
    }
    if !head.has_token("upgrade", "websocket") {
        return Err("the 101 has no Upgrade: websocket".into());
    }
    if !head.has_token("connection", "upgrade") {
        return Err("the 101 has no Connection: Upgrade".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// tungstenite sessions

pub type Ws = WebSocket<Stream>;

pub fn ws_open(p: &Probe, t: &Target) -> Result<Ws, String> {
    let limit = p.frame_limit();
    let config = WebSocketConfig::default().max_message_size(Some(limit)).max_frame_size(Some(limit));
    let mut tries = 0;
    loop {
        let mut stream = p.connect(t).map_err(|e| format!("opening a session: {e}"))?;
        stream.arm();
        match tungstenite::client::client_with_config(t.url.as_str(), stream, Some(config)) {
            Ok((ws, _)) => return Ok(ws),
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                if status == 429 && tries < RATE_RETRIES {
                    tries += 1;
                    let secs = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1)
                        .clamp(1, 5);
                    std::thread::sleep(Duration::from_secs(secs));
                    continue;
                }
                return Err(format!("opening a session: the server answered {status}"));
            }
            Err(HandshakeError::Failure(e)) => return Err(format!("opening a session: {e}")),
            Err(HandshakeError::Interrupted(_)) => return Err("opening a session: the handshake timed out".into()),
        }
    }
}

pub fn ws_send(ws: &mut Ws, text: &str) -> Outcome {
    ws.get_mut().arm();
    ws.send(Message::text(text)).map_err(|e| format!("sending {}: {e}", shown(text.as_bytes())))
}

/// The next text message; pings (answered by tungstenite) and pongs are skipped.
pub fn ws_recv(p: &Probe, ws: &mut Ws) -> Result<String, String> {
    loop {
        ws.get_mut().arm();
        match ws.read() {
            Ok(Message::Text(t)) => return Ok(t.to_string()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(Message::Binary(b)) => return Err(format!("expected text, got a binary message of {} bytes", b.len())),
            Ok(Message::Close(frame)) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                p.note_close(code, &format!("{frame:?}"));
                let (code, reason) = frame.map_or((String::from("without a code"), String::new()), |f| {
                    (u16::from(f.code).to_string(), f.reason.to_string())
                });
                return Err(format!("the server closed the session ({code} {reason:?}) instead of answering"));
            }
            Err(e) => return Err(format!("waiting for a text message: {e}")),
        }
    }
}

/// Sends `text` and expects `want` back as the next text message.
pub fn ws_roundtrip(p: &Probe, ws: &mut Ws, text: &str, want: &str) -> Outcome {
    ws_send(ws, text)?;
    let got = ws_recv(p, ws)?;
    if got != want {
        return Err(format!(
            "sent {}, got {}, want {}",
            shown(text.as_bytes()),
            shown(got.as_bytes()),
            shown(want.as_bytes())
        ));
    }
    Ok(())
}
