//! Shared pieces of the measurement programs: in-memory echo setups for the
//! core and for tungstenite's bare engine, and small statistics helpers.

use std::io::{self, Read, Write};
use std::time::Instant;

use lsl_websocket::{
    Config, ConnectionId, EventKind, Input, Key, Output, Region, ScriptInfo, SeededEntropy, WebsocketRequest,
};

/// The `Sec-WebSocket-Key` every in-memory client sends (RFC 6455's example).
pub const HEAD_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// One masked client text frame of `len` bytes of lowercase letters.
pub fn masked_text(len: usize) -> Vec<u8> {
    let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    masked(&text)
}

/// One masked client text frame carrying `text`.
pub fn masked(text: &[u8]) -> Vec<u8> {
    masked_frame(0x81, text)
}

/// One masked client frame with first byte `first` (FIN, RSV bits, opcode)
/// and `payload`, of any length.
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let len = payload.len();
    let mut frame = vec![first];
    match len {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The `n`-th simulated script (its own object and owner).
pub fn script(n: u8) -> ScriptInfo {
    ScriptInfo {
        script: Key::from_random_bytes([3 * n + 1; 16]),
        object: Key::from_random_bytes([3 * n + 2; 16]),
        owner: Key::from_random_bytes([3 * n + 3; 16]),
    }
}

/// A WebSocket upgrade request head for `path`.
pub fn head(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {HEAD_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Asks for an object-scope URL for `me` and returns its path.
pub fn request_url(region: &mut Region, me: ScriptInfo) -> String {
    region.request_websocket(me, &WebsocketRequest::default());
    let event = region.poll_event(me.script).expect("an answer");
    assert_eq!(event.kind, EventKind::UrlGranted, "{event:?}");
    let path = event.data.split_once("8787").expect("authority").1.to_string();
    while region.poll_output().is_some() {}
    path
}

/// An embedder loop with an echo script: every output handled, every text
/// answered to its session, every transmit taken. Returns the bytes taken.
pub fn run_outputs(region: &mut Region, me: Key) -> usize {
    let mut taken = 0;
    while let Some(output) = region.poll_output() {
        match output {
            Output::Events(script) => {
                while let Some(event) = region.poll_event(script) {
                    if event.kind == EventKind::Text {
                        let _ = region.websocket_send(me, event.id, &event.data);
                    }
                }
            }
            Output::Transmit(conn) => {
                while let Some(bytes) = region.poll_transmit(conn) {
                    taken += bytes.len();
                }
            }
            _ => {}
        }
    }
    taken
}

/// The core echo path of one open session: a region with one URL and one
/// session on connection 1, ready for frames.
pub struct CoreEcho {
    pub region: Region,
    pub conn: ConnectionId,
    pub me: Key,
    pub now: Instant,
}

impl CoreEcho {
    pub fn new(config: Config) -> CoreEcho {
        let now = Instant::now();
        let mut region = Region::new(config, Box::new(SeededEntropy::new(1)), now);
        let info = script(0);
        let path = request_url(&mut region, info);
        let conn = ConnectionId(1);
        region.handle_input(now, Input::Accepted { conn, remote: [127, 0, 0, 1].into() }).unwrap();
        region.handle_input(now, Input::Received { conn, data: head(&path).as_bytes() }).unwrap();
        run_outputs(&mut region, info.script);
        CoreEcho { region, conn, me: info.script, now }
    }

    /// One frame in, its echo out; returns the bytes written.
    #[inline]
    pub fn echo(&mut self, frame: &[u8]) -> usize {
        self.region.handle_input(self.now, Input::Received { conn: self.conn, data: frame }).unwrap();
        run_outputs(&mut self.region, self.me)
    }
}

/// In-memory stream for tungstenite: reads hand out the pending input, then
/// `WouldBlock`; writes are counted.
#[derive(Default)]
pub struct Pipe {
    pub input: Vec<u8>,
    pub pos: usize,
    pub written: usize,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bare tungstenite engine as an echo server over a [`Pipe`].
pub struct TungsteniteEcho {
    pub ws: tungstenite::WebSocket<Pipe>,
    /// Send back the received buffer itself instead of a copy of its text.
    zero_copy: bool,
}

impl TungsteniteEcho {
    /// With `zero_copy` false the echo sends a copy of the text (as
    /// `benches/echo.rs` does, and as a script holding a string must);
    /// with true it sends the received message back as it is.
    pub fn new(config: tungstenite::protocol::WebSocketConfig, zero_copy: bool) -> TungsteniteEcho {
        let ws =
            tungstenite::WebSocket::from_raw_socket(Pipe::default(), tungstenite::protocol::Role::Server, Some(config));
        TungsteniteEcho { ws, zero_copy }
    }

    /// One frame in, its echo out.
    #[inline]
    pub fn echo(&mut self, frame: &[u8]) -> usize {
        let pipe = self.ws.get_mut();
        pipe.input.clear();
        pipe.input.extend_from_slice(frame);
        pipe.pos = 0;
        let before = pipe.written;
        match self.ws.read() {
            Ok(tungstenite::Message::Text(text)) => {
                let text = if self.zero_copy { text } else { tungstenite::Utf8Bytes::from(text.as_str()) };
                self.ws.send(tungstenite::Message::Text(text)).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
        self.ws.get_ref().written - before
    }
}

/// The median of `v` (sorted in place); 0 when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The `q`-quantile (0..=1) of sorted `v`, nearest rank; 0 when empty.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock every process on the machine
/// reads alike, so a server can stamp a frame and a client time its arrival.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
