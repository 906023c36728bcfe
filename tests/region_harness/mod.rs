//! A small driver for region-scope tests: one [`Region`] on a fake clock,
//! in-memory WebSocket clients that speak masked frames, and per-script event
//! draining under the test's control.
//!
//! Nothing here opens a socket or sleeps; time only moves when a test moves it.

#![allow(dead_code)]

// The frame builders and wire checks shared with the other SPEC tests.
#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lsl_websocket::{
    Cause, Config, ConnectionId, Event, EventKind, Input, Key, Output, Region, Scope, ScriptInfo, SeededEntropy,
    WebsocketRequest,
};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// One frame the server wrote to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A text frame (region scope: an envelope frame).
    Text(String),
    /// A close frame: code (if any) and reason.
    Close(Option<u16>, String),
    /// A ping.
    Ping,
    /// A pong with its payload.
    Pong(Vec<u8>),
    /// Anything else (never expected from this server).
    Other(u8),
}

/// What the server has told one client so far.
#[derive(Debug, Default)]
pub struct Client {
    /// Bytes not yet parsed (a partial HTTP head or frame).
    raw: Vec<u8>,
    /// The handshake answer's status code, once it arrived.
    pub status: Option<u16>,
    /// Frames parsed and not yet taken by the test.
    pub frames: Vec<Wire>,
    /// The core emitted `Output::Close` for this connection.
    pub closed: bool,
}

/// The test region and everything it produced.
pub struct Harness {
    pub region: Region,
    pub now: Instant,
    pub clients: HashMap<ConnectionId, Client>,
    pub revoked: Vec<(String, Cause)>,
    /// Every `Output::ListenerStopped`, as (script, domain, cause).
    pub stopped: Vec<(Key, String, Cause)>,
    next_conn: u64,
}

/// A deterministic key from a small number and a tag (so scripts, objects and
/// owners never share keys).
pub fn key(tag: u8, n: u32) -> Key {
    let mut bytes = [0u8; 16];
    bytes[0] = tag;
    bytes[12..].copy_from_slice(&n.to_be_bytes());
    Key::from_random_bytes(bytes)
}

/// Script `n` in object `object`, owned by owner 1.
pub fn script(n: u32, object: u32) -> ScriptInfo {
    ScriptInfo { script: key(0x5c, n), object: key(0x0b, object), owner: key(0x0e, 1) }
}

/// Object key `n` (as [`script`] builds them).
pub fn object(n: u32) -> Key {
    key(0x0b, n)
}

/// The options of a region-scope request on `domain`.
pub fn region_request(domain: &str) -> WebsocketRequest {
    WebsocketRequest { scope: Scope::Region, domain: Some(domain.to_string()), ..WebsocketRequest::default() }
}

/// A masked, final client text frame.
pub fn text_frame(text: &str) -> Vec<u8> {
    common::text(text)
}

/// A masked client frame with the given first byte (FIN, RSV, opcode).
pub fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    common::frame(first & 0x0f, payload).fin(first & 0x80 != 0).rsv(first >> 4).mask(mask).build()
}

/// A masked client close frame.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    common::close(code, reason)
}

/// The request head of a WebSocket handshake for `url` (with optional path info appended).
pub fn handshake_request(url: &str, path_info: &str) -> String {
    let after_scheme = url.split_once("://").expect("scheme").1;
    let (authority, path) = after_scheme.split_at(after_scheme.find('/').expect("path"));
    format!(
        "GET {path}{path_info} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

impl Harness {
    /// A region with `config`, seeded entropy, at a fixed fake start time.
    pub fn new(config: Config) -> Harness {
        Harness::with_region(|now| Region::new(config, Box::new(SeededEntropy::new(0x5eed)), now))
    }

    /// Like [`new`](Harness::new), with every domain forced onto one CLEP channel.
    pub fn colliding(config: Config) -> Harness {
        Harness::with_region(|now| {
            let mut region = Region::new(config, Box::new(SeededEntropy::new(0x5eed)), now);
            region.set_channel_hash_for_tests(|_| 7);
            region
        })
    }

    fn with_region(make: impl FnOnce(Instant) -> Region) -> Harness {
        let now = Instant::now();
        Harness {
            region: make(now),
            now,
            clients: HashMap::new(),
            revoked: Vec::new(),
            stopped: Vec::new(),
            next_conn: 1,
        }
    }

    /// Moves the fake clock.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Moves the clock and fires every timer due by then, as an embedder does.
    pub fn advance_and_tick(&mut self, by: Duration) {
        self.now += by;
        while self.region.poll_timeout().is_some_and(|at| at <= self.now) {
            self.region.handle_input(self.now, Input::Timeout).unwrap();
            self.drain();
        }
    }

    /// Drains every output: transmits are parsed into client frames, closes and
    /// revocations recorded. Script events stay queued until [`events`](Harness::events).
    pub fn drain(&mut self) {
        while let Some(output) = self.region.poll_output() {
            match output {
                Output::Transmit(conn) => self.transmit(conn),
                Output::Close(conn) => {
                    self.transmit(conn);
                    self.clients.entry(conn).or_default().closed = true;
                }
                Output::Revoked { url, cause } => self.revoked.push((url, cause)),
                Output::ListenerStopped { script, domain, cause } => self.stopped.push((script, domain, cause)),
                Output::Events(_) | Output::PauseReading(_) | Output::ResumeReading(_) => {}
                Output::HttpRequest { .. } => panic!("unexpected {output:?}"),
            }
        }
    }

    fn transmit(&mut self, conn: ConnectionId) {
        while let Some(bytes) = self.region.poll_transmit(conn) {
            let client = self.clients.entry(conn).or_default();
            client.raw.extend_from_slice(&bytes);
            parse(client);
        }
    }

    /// Every event queued for `script`, in order (drains its queue).
    pub fn events(&mut self, script: Key) -> Vec<Event> {
        self.drain();
        let events = std::iter::from_fn(|| self.region.poll_event(script)).collect();
        self.drain();
        events
    }

    /// The one event queued for `script`.
    pub fn event(&mut self, script: Key) -> Event {
        let mut events = self.events(script);
        assert_eq!(events.len(), 1, "expected one event, got {events:?}");
        events.pop().unwrap()
    }

    /// `llRequestWebsocket` in region scope on `domain`; returns the answer event.
    pub fn listen(&mut self, info: ScriptInfo, domain: &str) -> Event {
        self.request(info, &region_request(domain))
    }

    /// Any request; returns its answer event (other queued events of the script are dropped).
    pub fn request(&mut self, info: ScriptInfo, request: &WebsocketRequest) -> Event {
        let request_key = self.region.request_websocket(info, request);
        let events = self.events(info.script);
        let answer = events
            .into_iter()
            .find(|e| e.id == request_key)
            .unwrap_or_else(|| panic!("no answer to request {request_key}"));
        assert!(matches!(answer.kind, EventKind::UrlGranted | EventKind::UrlDenied));
        answer
    }

    /// Like [`listen`](Harness::listen), asserting the grant.
    pub fn listen_ok(&mut self, info: ScriptInfo, domain: &str) {
        let answer = self.listen(info, domain);
        assert_eq!(answer.kind, EventKind::UrlGranted, "{answer:?}");
        assert_eq!(answer.data, self.region.region_url().as_str());
        assert_eq!(answer.domain, domain);
    }

    /// Opens a connection to `url` (plus path info) and returns it with the handshake's status.
    pub fn connect_to(&mut self, url: &str, path_info: &str) -> (ConnectionId, u16) {
        let conn = ConnectionId(self.next_conn);
        self.next_conn += 1;
        self.clients.insert(conn, Client::default());
        let remote = IpAddr::V4(Ipv4Addr::new(10, 0, 0, (conn.0 % 250) as u8 + 1));
        self.region.handle_input(self.now, Input::Accepted { conn, remote }).unwrap();
        let head = handshake_request(url, path_info);
        self.region.handle_input(self.now, Input::Received { conn, data: head.as_bytes() }).unwrap();
        self.drain();
        let status = self.clients[&conn].status.expect("a handshake answer");
        (conn, status)
    }

    /// A client on the region endpoint (asserting 101).
    pub fn connect(&mut self) -> ConnectionId {
        let url = self.region.region_url();
        let (conn, status) = self.connect_to(&url, "");
        assert_eq!(status, 101);
        conn
    }

    /// Sends raw bytes from the client.
    pub fn send_raw(&mut self, conn: ConnectionId, data: &[u8]) {
        self.region.handle_input(self.now, Input::Received { conn, data }).unwrap();
        self.drain();
    }

    /// Sends one text frame from the client.
    pub fn send(&mut self, conn: ConnectionId, text: &str) {
        self.send_raw(conn, &text_frame(text));
    }

    /// The client went away.
    pub fn peer_closed(&mut self, conn: ConnectionId) {
        self.region.handle_input(self.now, Input::PeerClosed { conn }).unwrap();
        self.drain();
    }

    /// Frames the client received since the last call.
    pub fn frames(&mut self, conn: ConnectionId) -> Vec<Wire> {
        self.drain();
        std::mem::take(&mut self.clients.get_mut(&conn).expect("known client").frames)
    }

    /// Text frames the client received since the last call (asserting there was nothing else).
    pub fn texts(&mut self, conn: ConnectionId) -> Vec<String> {
        self.frames(conn)
            .into_iter()
            .map(|f| match f {
                Wire::Text(t) => t,
                other => panic!("expected text frames only, got {other:?}"),
            })
            .collect()
    }

    /// Whether the core told the embedder to close the connection.
    pub fn is_closed(&self, conn: ConnectionId) -> bool {
        self.clients.get(&conn).is_some_and(|c| c.closed)
    }

    /// Subscribes and returns the session key the listener `script` learnt from its `WS_OPEN`.
    pub fn subscribe(&mut self, conn: ConnectionId, domain: &str, script: Key) -> Key {
        self.send(conn, &format!("sub,{domain}"));
        assert_eq!(self.texts(conn), Vec::<String>::new(), "sub is answered by nothing");
        let open = self.event(script);
        assert_eq!((open.kind, open.domain.as_str()), (EventKind::Open, domain));
        open.id
    }

    /// Domains whose events are in `events`.
    pub fn domains(events: &[Event]) -> BTreeSet<String> {
        events.iter().map(|e| e.domain.to_string()).collect()
    }

    /// Last bytes handed for a connection, as `Bytes` (for tests that need the raw chunk).
    pub fn raw_chunk(&mut self, conn: ConnectionId) -> Option<Bytes> {
        self.region.poll_transmit(conn)
    }
}

/// Parses the HTTP answer, then whole server frames, out of the client's raw bytes.
fn parse(client: &mut Client) {
    if client.status.is_none() {
        let Some(end) = client.raw.windows(4).position(|w| w == b"\r\n\r\n") else { return };
        let head = String::from_utf8_lossy(&client.raw[..end]).to_string();
        let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
        client.status = Some(code);
        client.raw.drain(..end + 4);
        if code != 101 {
            assert!(client.raw.is_empty(), "nothing after a refusal");
            return;
        }
    }
    loop {
        let mut cursor = Cursor::new(&client.raw[..]);
        let Some((header, len)) = FrameHeader::parse(&mut cursor).expect("server frame header") else { return };
        assert!(header.mask.is_none(), "server frames are unmasked");
        assert!(header.is_final, "this server never fragments");
        let start = cursor.position() as usize;
        let end = start + len as usize;
        if client.raw.len() < end {
            return;
        }
        let payload = client.raw[start..end].to_vec();
        client.raw.drain(..end);
        let frame = match header.opcode {
            OpCode::Data(Data::Text) => Wire::Text(String::from_utf8(payload).expect("UTF-8 text frame")),
            OpCode::Control(Control::Close) if payload.is_empty() => Wire::Close(None, String::new()),
            OpCode::Control(Control::Close) => Wire::Close(
                Some(u16::from_be_bytes([payload[0], payload[1]])),
                String::from_utf8(payload[2..].to_vec()).expect("UTF-8 reason"),
            ),
            OpCode::Control(Control::Ping) => Wire::Ping,
            OpCode::Control(Control::Pong) => Wire::Pong(payload),
            other => Wire::Other(u8::from(other)),
        };
        client.frames.push(frame);
    }
}
