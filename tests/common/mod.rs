//! Test harness shared by the integration tests: a simulated embedder around
//! one [`Region`] with a fake clock, a hand-rolled client that writes request
//! heads and masked frames byte by byte, and parsers for what the server sends.
//!
//! Nothing here opens a socket or sleeps. Every `Sim` checks on drop that the
//! server never put an invalid frame on the wire (masked, RSV bits, close codes
//! 1005/1006/1015 or other codes a server may not send).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lsl_websocket::{
    Config, ConnectionId, Event, EventKind, InputError, Key, Output, Region, ScriptInfo, SeededEntropy,
    WebsocketRequest,
};
use tungstenite::protocol::frame::FrameHeader;

/// The seed every `Sim` uses unless told otherwise.
pub const SEED: u64 = 0x5eed_1e55;

/// The RFC 6455 §1.3 example key and its accept value.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The address clients connect from unless a test picks another.
pub const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

pub fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ------------------------------------------------------------------ opcodes

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

// ------------------------------------------------------------------ client frames

/// A client frame under construction: any opcode, FIN and RSV bits, mask on or
/// off, and a declared payload length that need not match the payload.
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    declared_len: Option<u64>,
    payload: Vec<u8>,
}

/// A final, masked frame with `opcode` and `payload`.
pub fn frame(opcode: u8, payload: impl AsRef<[u8]>) -> FrameBuilder {
    FrameBuilder {
        fin: true,
        rsv: 0,
        opcode,
        mask: Some([0x37, 0xfa, 0x21, 0x3d]),
        declared_len: None,
        payload: payload.as_ref().to_vec(),
    }
}

impl FrameBuilder {
    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// RSV bits as the three bits `0bABC` = RSV1, RSV2, RSV3.
    pub fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits & 0b111;
        self
    }

    pub fn unmasked(mut self) -> Self {
        self.mask = None;
        self
    }

    pub fn mask(mut self, mask: [u8; 4]) -> Self {
        self.mask = Some(mask);
        self
    }

    /// The length written in the header, whatever the payload really is.
    pub fn declared_len(mut self, len: u64) -> Self {
        self.declared_len = Some(len);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let len = self.declared_len.unwrap_or(self.payload.len() as u64);
        let mut out = vec![(u8::from(self.fin) << 7) | (self.rsv << 4) | (self.opcode & 0x0f)];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= u64::from(u16::MAX) {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        match self.mask {
            Some(mask) => {
                out.extend_from_slice(&mask);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }

    /// Only the header (with the mask key), none of the payload.
    pub fn header_only(&self) -> Vec<u8> {
        let all = self.build();
        all[..all.len() - self.payload.len()].to_vec()
    }
}

/// One final masked text frame.
pub fn text(s: &str) -> Vec<u8> {
    frame(OP_TEXT, s).build()
}

/// `parts` as one fragmented text message (text, continuation…, final continuation).
pub fn fragmented(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let op = if i == 0 { OP_TEXT } else { OP_CONT };
        out.extend(frame(op, part).fin(i + 1 == parts.len()).build());
    }
    out
}

pub fn ping(payload: &[u8]) -> Vec<u8> {
    frame(OP_PING, payload).build()
}

pub fn pong(payload: &[u8]) -> Vec<u8> {
    frame(OP_PONG, payload).build()
}

/// A client close frame with a status code and reason.
pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(OP_CLOSE, payload).build()
}

// ------------------------------------------------------------------ request heads

/// The headers of a valid version-13 upgrade with the RFC example key.
pub fn upgrade_headers() -> Vec<(String, String)> {
    [
        ("Host", "127.0.0.1:8787"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", RFC_KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// A request head built by hand: `{method} {target} HTTP/1.1`, the headers, a blank line.
pub fn head(method: &str, target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A valid upgrade head for `target`.
pub fn upgrade_head(target: &str) -> Vec<u8> {
    head("GET", target, &upgrade_headers())
}

/// The valid upgrade headers with `name` removed (case-insensitively).
pub fn without(name: &str) -> Vec<(String, String)> {
    upgrade_headers().into_iter().filter(|(n, _)| !n.eq_ignore_ascii_case(name)).collect()
}

/// The valid upgrade headers with `name` set to `value`.
pub fn with(name: &str, value: &str) -> Vec<(String, String)> {
    let mut headers = without(name);
    headers.push((name.to_string(), value.to_string()));
    headers
}

/// The request target (`/lslws/{cap}/`) of a URL.
pub fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").expect("URL has a scheme").1;
    after_scheme[after_scheme.find('/').expect("URL has a path")..].to_string()
}

// ------------------------------------------------------------------ server output

/// One frame the server wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    pub fin: bool,
    pub rsv: [bool; 3],
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl WireFrame {
    /// For a close frame: its status code, if it has one.
    pub fn close_code(&self) -> Option<u16> {
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// For a close frame: its reason.
    pub fn close_reason(&self) -> String {
        String::from_utf8(self.payload.get(2..).unwrap_or_default().to_vec()).expect("close reason is UTF-8")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).expect("text frame is UTF-8")
    }
}

/// Splits what the server wrote into the HTTP response head (if the bytes
/// start with one) and the rest.
pub fn split_head(bytes: &[u8]) -> (Option<String>, &[u8]) {
    if !bytes.starts_with(b"HTTP/") {
        return (None, bytes);
    }
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("complete response head") + 4;
    (Some(String::from_utf8(bytes[..end].to_vec()).expect("ASCII head")), &bytes[end..])
}

/// Parses server frames with tungstenite's `FrameHeader`; panics on a
/// truncated frame (the server always writes whole frames).
pub fn parse_frames(mut bytes: &[u8]) -> Vec<WireFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let mut cursor = Cursor::new(bytes);
        let (header, len) = FrameHeader::parse(&mut cursor).expect("valid frame header").expect("whole frame header");
        let start = cursor.position() as usize;
        let end = start + len as usize;
        assert!(end <= bytes.len(), "truncated server frame");
        let opcode: u8 = header.opcode.into();
        frames.push(WireFrame {
            fin: header.is_final,
            rsv: [header.rsv1, header.rsv2, header.rsv3],
            opcode,
            masked: header.mask.is_some(),
            payload: bytes[start..end].to_vec(),
        });
        bytes = &bytes[end..];
    }
    frames
}

/// The status code of an HTTP response head.
pub fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line")
}

/// The value of a response header (case-insensitive name).
pub fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Asserts what RFC 6455 and SPEC §5 demand of every server frame.
pub fn check_server_frames(frames: &[WireFrame]) {
    for f in frames {
        assert!(!f.masked, "server frames are never masked: {f:?}");
        assert_eq!(f.rsv, [false; 3], "server frames carry no RSV bits: {f:?}");
        if f.opcode == OP_CLOSE {
            assert_ne!(f.payload.len(), 1, "a close payload is never 1 byte");
            assert!(f.payload.len() <= 125, "control frames are at most 125 bytes");
            if let Some(code) = f.close_code() {
                assert!(
                    !matches!(code, 1005 | 1006 | 1015),
                    "close code {code} must never be sent on the wire (SPEC §5)"
                );
                assert!(
                    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                    "close code {code} is not one a server may send"
                );
                f.close_reason();
            }
        }
    }
}

// ------------------------------------------------------------------ the simulated embedder

/// A client session as the test sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub conn: ConnectionId,
    pub session: Key,
}

/// A simulated embedder: one region, a fake clock, and everything the region
/// told it.
pub struct Sim {
    pub region: Region,
    pub t0: Instant,
    pub now: Instant,
    next_key: u64,
    next_conn: u64,
    /// Every byte the region handed out per connection, in order.
    pub wire: BTreeMap<ConnectionId, Vec<u8>>,
    /// Connections the region told us to close.
    pub closed: BTreeSet<ConnectionId>,
    /// Connections whose reading is paused (per the last Pause/Resume output).
    pub paused: BTreeSet<ConnectionId>,
    /// Connections whose bytes the simulated socket does not take (a full socket).
    pub hold: BTreeSet<ConnectionId>,
    /// Every output other than `Transmit`, in order.
    pub log: Vec<Output>,
    /// Connections that speak no WebSocket frames after their head (line
    /// clients): left out of the frame checks when the `Sim` drops.
    pub raw: BTreeSet<ConnectionId>,
    /// Events already drained from the region that the test has not consumed.
    inbox: BTreeMap<Key, VecDeque<Event>>,
}

impl Default for Sim {
    fn default() -> Sim {
        Sim::new()
    }
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Sim {
        Sim::with_seed(config, SEED)
    }

    pub fn with_seed(config: Config, seed: u64) -> Sim {
        let t0 = Instant::now();
        Sim {
            region: Region::new(config, Box::new(SeededEntropy::new(seed)), t0),
            t0,
            now: t0,
            next_key: 0,
            next_conn: 0,
            wire: BTreeMap::new(),
            closed: BTreeSet::new(),
            paused: BTreeSet::new(),
            hold: BTreeSet::new(),
            log: Vec::new(),
            raw: BTreeSet::new(),
            inbox: BTreeMap::new(),
        }
    }

    // ---- keys and scripts

    /// A fresh key for a script, object or owner (never one the region mints).
    pub fn key(&mut self) -> Key {
        self.next_key += 1;
        let mut bytes = [0xab; 16];
        bytes[8..].copy_from_slice(&self.next_key.to_be_bytes());
        Key::from_bytes(bytes)
    }

    /// A script in a new object with a new owner.
    pub fn script(&mut self) -> ScriptInfo {
        let (script, object, owner) = (self.key(), self.key(), self.key());
        ScriptInfo { script, object, owner }
    }

    /// Another script in the given object.
    pub fn script_in(&mut self, object: Key, owner: Key) -> ScriptInfo {
        ScriptInfo { script: self.key(), object, owner }
    }

    // ---- outputs

    /// Drains every output; takes written bytes unless the connection is held.
    pub fn pump(&mut self) {
        while let Some(output) = self.region.poll_output() {
            match output {
                Output::Transmit(conn) => {
                    if !self.hold.contains(&conn) {
                        self.take(conn);
                    }
                }
                Output::Close(conn) => {
                    if !self.hold.contains(&conn) {
                        self.take(conn);
                    }
                    self.closed.insert(conn);
                    self.paused.remove(&conn);
                    self.log.push(output);
                }
                Output::PauseReading(conn) => {
                    self.paused.insert(conn);
                    self.log.push(output);
                }
                Output::ResumeReading(conn) => {
                    self.paused.remove(&conn);
                    self.log.push(output);
                }
                other => self.log.push(other),
            }
        }
    }

    /// Takes every pending byte of `conn` (as a socket with room would); returns how many.
    pub fn take(&mut self, conn: ConnectionId) -> usize {
        let mut n = 0;
        while let Some(bytes) = self.region.poll_transmit(conn) {
            n += bytes.len();
            self.wire.entry(conn).or_default().extend_from_slice(&bytes);
        }
        n
    }

    /// Index into [`log`](Sim::log) to look at what happens after this point.
    pub fn mark(&self) -> usize {
        self.log.len()
    }

    pub fn log_since(&self, mark: usize) -> &[Output] {
        &self.log[mark..]
    }

    /// Every `Output::Revoked` seen, as (url, cause).
    pub fn revoked(&self) -> Vec<(String, lsl_websocket::Cause)> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Revoked { url, cause } => Some((url.clone(), *cause)),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, mark: usize, wanted: &Output) -> usize {
        self.log[mark..].iter().filter(|o| *o == wanted).count()
    }

    // ---- time

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Moves the clock forward by `by`, firing `Input::Timeout` at every
    /// deadline `poll_timeout` reports on the way (at that deadline's time).
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..100_000 {
            match self.region.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.region.handle_input(self.now, lsl_websocket::Input::Timeout).unwrap();
                    self.pump();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("poll_timeout keeps reporting a due deadline");
    }

    pub fn advance_secs(&mut self, s: f64) {
        self.advance(secs(s));
    }

    // ---- script calls

    /// Calls `request_websocket` and returns the request key and its answer event.
    pub fn request(&mut self, who: ScriptInfo, request: &WebsocketRequest) -> (Key, Event) {
        let key = self.region.request_websocket(who, request);
        self.pump();
        self.drain_into_inbox(who.script);
        let inbox = self.inbox.entry(who.script).or_default();
        let at = inbox.iter().position(|e| e.id == key).expect("the request is answered at once");
        (key, inbox.remove(at).unwrap())
    }

    /// Requests an object-scope URL and returns it (asserting it was granted).
    pub fn request_url(&mut self, who: ScriptInfo) -> String {
        let (_, event) = self.request(who, &WebsocketRequest::default());
        assert_eq!(event.kind, EventKind::UrlGranted, "{event:?}");
        event.data.to_string()
    }

    fn drain_into_inbox(&mut self, script: Key) {
        while let Some(event) = self.region.poll_event(script) {
            self.inbox.entry(script).or_default().push_back(event);
        }
        self.pump();
    }

    /// All events of `script` not yet consumed, in order.
    pub fn events(&mut self, script: Key) -> Vec<Event> {
        self.drain_into_inbox(script);
        self.inbox.remove(&script).map(Vec::from).unwrap_or_default()
    }

    /// The data of the `WS_TEXT` events among `script`'s events.
    pub fn texts(&mut self, script: Key) -> Vec<String> {
        self.events(script).into_iter().filter(|e| e.kind == EventKind::Text).map(|e| e.data.to_string()).collect()
    }

    // ---- transport

    pub fn accept_from(&mut self, remote: IpAddr) -> ConnectionId {
        self.next_conn += 1;
        let conn = ConnectionId(self.next_conn);
        self.region.handle_input(self.now, lsl_websocket::Input::Accepted { conn, remote }).unwrap();
        self.pump();
        conn
    }

    pub fn accept(&mut self) -> ConnectionId {
        self.accept_from(CLIENT_IP)
    }

    /// Delivers client bytes to the region.
    pub fn feed(&mut self, conn: ConnectionId, data: &[u8]) -> Result<(), InputError> {
        let result = self.region.handle_input(self.now, lsl_websocket::Input::Received { conn, data });
        self.pump();
        result
    }

    /// Delivers client bytes that must be accepted.
    pub fn send(&mut self, conn: ConnectionId, data: &[u8]) {
        self.feed(conn, data).expect("connection known to the region");
    }

    pub fn peer_closed(&mut self, conn: ConnectionId) -> Result<(), InputError> {
        let result = self.region.handle_input(self.now, lsl_websocket::Input::PeerClosed { conn });
        self.pump();
        result
    }

    /// A new connection that sends `head`; returns it.
    pub fn try_handshake(&mut self, head: &[u8]) -> ConnectionId {
        let conn = self.accept();
        self.send(conn, head);
        conn
    }

    /// The HTTP status the server answered on `conn`.
    pub fn status(&self, conn: ConnectionId) -> u16 {
        status_of(&self.response(conn))
    }

    /// The response head the server wrote on `conn`.
    pub fn response(&self, conn: ConnectionId) -> String {
        split_head(self.bytes(conn)).0.expect("an HTTP response")
    }

    pub fn bytes(&self, conn: ConnectionId) -> &[u8] {
        self.wire.get(&conn).map_or(&[], Vec::as_slice)
    }

    /// Frames the server wrote on `conn` after its response head.
    pub fn frames(&self, conn: ConnectionId) -> Vec<WireFrame> {
        let frames = parse_frames(split_head(self.bytes(conn)).1);
        check_server_frames(&frames);
        frames
    }

    /// (code, reason) of every close frame the server wrote on `conn`.
    pub fn close_frames(&self, conn: ConnectionId) -> Vec<(Option<u16>, String)> {
        self.frames(conn).iter().filter(|f| f.opcode == OP_CLOSE).map(|f| (f.close_code(), f.close_reason())).collect()
    }

    /// Opens a session on `url` for `owner`'s script from `remote` with `extra`
    /// request headers and path suffix; returns the client and the `WS_OPEN` event.
    pub fn connect_with(
        &mut self,
        owner: Key,
        target: &str,
        headers: &[(String, String)],
        remote: IpAddr,
    ) -> (Client, Event) {
        let conn = self.accept_from(remote);
        self.send(conn, &head("GET", target, headers));
        assert_eq!(self.status(conn), 101, "{}", self.response(conn));
        self.drain_into_inbox(owner);
        let inbox = self.inbox.entry(owner).or_default();
        let at = inbox.iter().rposition(|e| e.kind == EventKind::Open).expect("WS_OPEN for the new session");
        let open = inbox.remove(at).unwrap();
        (Client { conn, session: open.id }, open)
    }

    /// Opens a session on `url` of `owner`'s script.
    pub fn connect(&mut self, owner: Key, url: &str) -> Client {
        self.connect_with(owner, &path_of(url), &upgrade_headers(), CLIENT_IP).0
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // Every close frame any test saw: never 1005/1006/1015 (SPEC §5).
        for conn in self.wire.keys().filter(|c| !self.raw.contains(c)) {
            let (head, rest) = split_head(self.bytes(*conn));
            if head.as_deref().is_none_or(|h| status_of(h) == 101) {
                check_server_frames(&parse_frames(rest));
            }
        }
    }
}
