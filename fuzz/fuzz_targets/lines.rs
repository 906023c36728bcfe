//! Raw TCP lines on the same port (SPEC §13), and the sniffing of a
//! connection's first bytes: a WebSocket handshake, an HTTP-in request, a
//! plain request, or a line client (first byte `/`). An `arbitrary`-derived
//! scenario drives one `Region` with connections of each kind, client lines
//! (escaped messages, raw lines, CRLF, control lines, long and partial
//! lines) in fuzzer-chosen chunks, script sends and closes, lifecycle
//! revocations, re-requests and time. Checked:
//!
//! - nothing panics, and timers always advance;
//! - on a connection whose first byte was `/`, every server line is an
//!   escaped message (each backslash followed by `n`, `r` or `\`, no raw CR,
//!   UTF-8, within the cap; on the region endpoint a server envelope) or a
//!   well-formed control line (`\error <status> <reason>` as the first line
//!   only, `\close <code> <reason>` with a code allowed on the wire,
//!   `\ping`, `\pong`); nothing follows `\close` or `\error`, and the server
//!   closes after them; the server writes whole lines;
//! - the messages a line client gets are, in order, the texts the script sent it;
//! - every `WS_TEXT` of an object-scope line session equals, in order, the
//!   next line the client sent as unescaped by a reference unescaper here;
//!   no `WS_TEXT` is over the cap; a refused line client causes no event;
//! - no event of a revoked URL (object scope) or of a stopped listener
//!   (region scope) reaches a script after the revocation, nothing follows a
//!   session's `WS_CLOSE`;
//! - other connections: a 101 is followed by valid server frames
//!   (`WireChecker`), anything else is one HTTP response.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lsl_websocket::{
    CloseError, Config, ConnectionId, EventKind, HttpMethod, Input, Key, Output, Region, Scope, ScriptInfo,
    SeededEntropy, SendError, WebsocketRequest,
};
use lsl_websocket_fuzz::{WireChecker, chunks, client_frame, path_of, upgrade_head};

const OBJ: ScriptInfo =
    ScriptInfo { script: Key::from_bytes([1; 16]), object: Key::from_bytes([2; 16]), owner: Key::from_bytes([3; 16]) };
const REG: ScriptInfo =
    ScriptInfo { script: Key::from_bytes([4; 16]), object: Key::from_bytes([5; 16]), owner: Key::from_bytes([6; 16]) };
const MAX_CONNS: usize = 24;

#[derive(Arbitrary, Debug)]
struct Scenario {
    small: bool,
    serve_other_paths: bool,
    ops: Vec<Op>,
}

/// Which URL a structured connection names.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Target {
    Object,
    OldObject(u8),
    Region,
    OldRegion(u8),
    Http,
    Nowhere,
}

#[derive(Arbitrary, Debug)]
enum Start {
    /// A line client: `<path of target>c<n>[?query]\n` then these lines.
    Line { target: Target, query: Option<String>, lines: Vec<Line> },
    /// A WebSocket upgrade for the target.
    Ws { target: Target },
    /// An HTTP-in request (`method` picks GET/POST/PUT/DELETE/other).
    HttpIn { method: u8, target: Target, body: String },
    /// A plain GET of some other path.
    Plain { path: String },
    /// Raw bytes; `$o`, `$r`, `$h` stand for the live object, region and HTTP-in paths.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Line {
    /// Escaped by the harness, so it arrives as exactly this text.
    Text(String),
    /// As written, then `\n`.
    Raw(Vec<u8>),
    /// Escaped, ending `\r\n`.
    Crlf(String),
    /// `n` bytes of `a` (over the cap for the larger ones).
    Long(u16),
    Ping,
    Pong,
    Close(Option<(u16, String)>),
    /// Bytes with no newline.
    Partial(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Txt {
    Short(u8),
    Long(u16),
    Any(String),
}

impl Txt {
    fn text(&self) -> String {
        match self {
            Txt::Short(n) => format!("s\\{n}\n\r"),
            Txt::Long(n) => "y".repeat(usize::from(*n) % 2100),
            Txt::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connect { start: Start, sizes: Vec<u8> },
    Lines { c: u8, lines: Vec<Line>, sizes: Vec<u8> },
    Bytes { c: u8, bytes: Vec<u8> },
    Frame { c: u8, text: String },
    Send { c: u8, text: Txt },
    Broadcast { text: Txt },
    Close { c: u8, code: u16, reason: u8 },
    DrainObject { n: u8 },
    DrainRegion { n: u8 },
    ResetObject,
    ResetRegion,
    ReleaseObject,
    ReleaseDomain,
    Rezzed,
    ChangedRegion,
    OwnerChanged,
    ObjectRemoved,
    Restart,
    RequestObject,
    RequestRegion,
    PeerClosed { c: u8 },
    Hold { c: u8, hold: bool },
    Advance { ms: u16 },
    AdvanceSecs { s: u8 },
}

/// The server side of a line connection, checked line by line.
#[derive(Debug, Default)]
struct LineCheck {
    buf: Vec<u8>,
    /// `\close` or `\error` seen: nothing may follow.
    ended: bool,
    refused: bool,
    lines: usize,
    region: bool,
    cap: usize,
    /// The messages received, unescaped.
    messages: Vec<String>,
}

/// Unescapes a server line strictly: only `\n`, `\r`, `\\`, and no raw CR.
fn strict_unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut it = line.iter().copied();
    while let Some(b) = it.next() {
        match b {
            b'\\' => match it.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b'\\') => out.push(b'\\'),
                other => panic!("bad escape \\{other:?} in server line {:?}", String::from_utf8_lossy(line)),
            },
            b'\r' => panic!("raw CR in server line {:?}", String::from_utf8_lossy(line)),
            b => out.push(b),
        }
    }
    out
}

/// The reference client-side unescaper: `\n`, `\r`, `\\`; any other escape
/// (and a trailing backslash) stays as written.
fn ref_unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'\\' && i + 1 < line.len() {
            match line[i + 1] {
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'\\' => out.push(b'\\'),
                other => out.extend_from_slice(&[b'\\', other]),
            }
            i += 2;
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    out
}

fn escape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    for &b in text {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b => out.push(b),
        }
    }
    out
}

/// The texts a client stream carries after its first line, up to the first
/// line that ends the session (a `\close`, an over-cap or invalid line).
fn ref_texts(stream: &[u8], cap: usize) -> Vec<String> {
    let mut lines = stream.split(|&b| b == b'\n');
    let _first = lines.next();
    let complete = stream.iter().filter(|&&b| b == b'\n').count().saturating_sub(1);
    let mut out = Vec::new();
    for line in lines.take(complete) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"\\ping" || line == b"\\pong" {
            continue;
        }
        if line.starts_with(b"\\close") && (line.len() == 6 || line[6] == b' ') {
            break;
        }
        let text = ref_unescape(line);
        if text.len() > cap {
            break;
        }
        match String::from_utf8(text) {
            Ok(t) => out.push(t),
            Err(_) => break,
        }
    }
    out
}

impl LineCheck {
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            self.line(&line[..end]);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let shown = String::from_utf8_lossy(line).into_owned();
        assert!(!self.ended, "a server line after \\close or \\error: {shown:?}");
        self.lines += 1;
        let control = line.first() == Some(&b'\\') && !matches!(line.get(1), Some(b'n' | b'r' | b'\\'));
        if !control {
            let text = String::from_utf8(strict_unescape(line)).expect("a server message is UTF-8");
            if self.region {
                lsl_websocket::envelope::parse_server(&text)
                    .unwrap_or_else(|e| panic!("server envelope line {text:?} does not parse: {e}"));
            } else {
                assert!(text.len() <= self.cap, "a server message over the cap: {} bytes", text.len());
            }
            self.messages.push(text);
            return;
        }
        if line == b"\\ping" || line == b"\\pong" {
            return;
        }
        if let Some(rest) = line.strip_prefix(b"\\close ") {
            let (code, reason) = rest.split_at(rest.iter().position(|&b| b == b' ').expect("\\close <code> <reason>"));
            let code: u16 = std::str::from_utf8(code).ok().and_then(|c| c.parse().ok()).expect("numeric close code");
            assert!(
                matches!(code, 1000 | 1001 | 1002 | 1003 | 1007 | 1008 | 1009 | 1011 | 3000..=4999),
                "close code {code} on the wire: {shown:?}"
            );
            let reason = String::from_utf8(strict_unescape(&reason[1..])).expect("close reason is UTF-8");
            assert!(reason.len() <= 123, "close reason of {} bytes", reason.len());
            self.ended = true;
            return;
        }
        if let Some(rest) = line.strip_prefix(b"\\error ") {
            assert_eq!(self.lines, 1, "\\error is only ever the first server line: {shown:?}");
            assert!(
                matches!(rest, b"404 not found" | b"400 bad request" | b"429 too many requests" | b"503 unavailable"),
                "unknown error line {shown:?}"
            );
            self.ended = true;
            self.refused = true;
            return;
        }
        panic!("unknown control line {shown:?}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aim {
    /// An object URL (index into `obj_urls`).
    Object(usize),
    Region,
    Other,
}

struct Conn {
    id: ConnectionId,
    /// Bytes the core took, in order.
    given: Vec<u8>,
    /// Bytes the server wrote.
    out: Vec<u8>,
    lines: Option<LineCheck>,
    ws: Option<WireChecker>,
    aim: Aim,
    /// Structured start: its path info names it (`/c<n>`).
    named: bool,
    key: Option<Key>,
    texts: usize,
    sent: Vec<String>,
    hold: bool,
    paused: bool,
    pending: Vec<u8>,
    closed: bool,
    gone: bool,
}

struct State {
    region: Region,
    now: Instant,
    cap: usize,
    conns: Vec<Conn>,
    /// Object URLs granted, and whether still live.
    obj_urls: Vec<(String, bool)>,
    http_url: Option<String>,
    endpoints: Vec<String>,
    /// Requests whose answer may still come, and whether of the region script.
    pending_requests: HashMap<Key, bool>,
    stale_requests: HashSet<Key>,
    listening: bool,
    keys: HashMap<Key, usize>,
    closed_keys: HashSet<Key>,
}

impl State {
    fn new(small: bool, serve_other_paths: bool) -> State {
        let base = Config { handshakes_per_second: 1000, serve_other_paths, ..Config::default() };
        let config = if small {
            Config {
                max_message: 16,
                event_queue: 4,
                outgoing_buffer: 256,
                sessions_per_url: 3,
                region_endpoint_sessions: 3,
                ..base
            }
        } else {
            base
        };
        let cap = config.max_message;
        let now = Instant::now();
        let region = Region::new(config, Box::new(SeededEntropy::new(5)), now);
        let endpoints = vec![region.region_url()];
        let mut state = State {
            region,
            now,
            cap,
            conns: Vec::new(),
            obj_urls: Vec::new(),
            http_url: None,
            endpoints,
            pending_requests: HashMap::new(),
            stale_requests: HashSet::new(),
            listening: false,
            keys: HashMap::new(),
            closed_keys: HashSet::new(),
        };
        state.request_object();
        state.request_region();
        state.drain(OBJ.script, usize::MAX);
        state.drain(REG.script, usize::MAX);
        state
    }

    fn request_object(&mut self) {
        let k = self.region.request_websocket(OBJ, &WebsocketRequest::default());
        self.pending_requests.insert(k, false);
        let k = self.region.request_url(OBJ);
        self.pending_requests.insert(k, false);
    }

    fn request_region(&mut self) {
        let request = WebsocketRequest { scope: Scope::Region, domain: Some("echo".into()), ..Default::default() };
        let k = self.region.request_websocket(REG, &request);
        self.pending_requests.insert(k, true);
    }

    /// Every request so far is void (a restart).
    fn void_requests(&mut self) {
        self.stale_requests.extend(self.pending_requests.drain().map(|(k, _)| k));
    }

    fn revoke_object(&mut self) {
        for u in &mut self.obj_urls {
            u.1 = false;
        }
        self.http_url = None;
    }

    // ---- outputs

    fn pump(&mut self) {
        loop {
            let mut resumed = Vec::new();
            while let Some(out) = self.region.poll_output() {
                match out {
                    Output::Transmit(conn) => {
                        let c = self.conn(conn);
                        assert!(!self.conns[c].closed, "Transmit after Close");
                        if !self.conns[c].hold {
                            self.take(c);
                        }
                    }
                    Output::Close(conn) => {
                        let c = self.conn(conn);
                        assert!(!self.conns[c].closed, "two Close outputs for one connection");
                        self.conns[c].closed = true;
                        if !self.conns[c].hold {
                            self.take(c);
                        }
                    }
                    Output::PauseReading(conn) => {
                        let c = self.conn(conn);
                        self.conns[c].paused = true;
                    }
                    Output::ResumeReading(conn) => {
                        let c = self.conn(conn);
                        self.conns[c].paused = false;
                        resumed.push(c);
                    }
                    Output::Events(_) | Output::Revoked { .. } | Output::ListenerStopped { .. } => {}
                    Output::HttpRequest { conn, .. } => {
                        let c = self.conn(conn);
                        assert!(self.conns[c].lines.is_none(), "a line client handed out as a plain request");
                        self.region.respond(conn, 200, "text/plain", b"page").expect("respond to HttpRequest");
                    }
                }
            }
            if resumed.is_empty() {
                return;
            }
            for c in resumed {
                let pending = std::mem::take(&mut self.conns[c].pending);
                if !pending.is_empty() {
                    self.give(c, &pending);
                }
            }
        }
    }

    fn conn(&self, conn: ConnectionId) -> usize {
        let c = conn.0 as usize;
        assert!(c < self.conns.len(), "output for a connection never accepted: {conn:?}");
        c
    }

    fn take(&mut self, c: usize) {
        let id = self.conns[c].id;
        while let Some(bytes) = self.region.poll_transmit(id) {
            let conn = &mut self.conns[c];
            conn.out.extend_from_slice(&bytes);
            if let Some(lines) = &mut conn.lines {
                lines.feed(&bytes);
            } else if let Some(ws) = &mut conn.ws {
                ws.feed(&bytes);
            } else if conn.out.starts_with(b"HTTP/1.1 101 ") {
                let mut ws = WireChecker::new(conn.aim == Aim::Region);
                ws.feed(&conn.out);
                conn.ws = Some(ws);
            } else {
                assert!(
                    conn.out.starts_with(&b"HTTP/1.1 "[..conn.out.len().min(9)]),
                    "not an HTTP response: {:?}",
                    String::from_utf8_lossy(&conn.out)
                );
            }
        }
    }

    // ---- events

    fn drain(&mut self, script: Key, n: usize) {
        for _ in 0..n {
            let Some(e) = self.region.poll_event(script) else { break };
            self.pump();
            match e.kind {
                EventKind::UrlGranted | EventKind::UrlDenied | EventKind::Http(HttpMethod::UrlRequestGranted) => {
                    // A denial is no URL: it may answer a request made before a release.
                    let grant = e.kind != EventKind::UrlDenied;
                    assert!(!(grant && self.stale_requests.contains(&e.id)), "a grant of a revoked request: {e:?}");
                    self.pending_requests.remove(&e.id);
                    if e.kind == EventKind::UrlDenied {
                        continue;
                    }
                    if script == REG.script {
                        assert_eq!(path_of(&e.data), path_of(self.endpoints.last().unwrap()));
                        self.listening = true;
                    } else if e.kind == EventKind::UrlGranted {
                        self.obj_urls.push((e.data.to_string(), true));
                    } else {
                        self.http_url = Some(e.data.to_string());
                    }
                }
                EventKind::Http(HttpMethod::UrlRequestDenied) => {
                    self.pending_requests.remove(&e.id);
                }
                EventKind::Http(_) => {
                    assert_eq!(script, OBJ.script);
                    let _ = self.region.http_response(self.now, OBJ.script, e.id, 200, "ok");
                }
                _ if script == REG.script => {
                    assert!(self.listening, "a region event after the listener stopped: {e:?}");
                    assert_eq!(&*e.domain, "echo");
                    if e.kind == EventKind::Text {
                        assert!(e.data.len() <= self.cap, "a region WS_TEXT over the cap");
                    }
                }
                kind => {
                    assert!(e.domain.is_empty());
                    assert!(!self.closed_keys.contains(&e.id), "an event after the session's WS_CLOSE: {e:?}");
                    if kind == EventKind::Open {
                        let c = e
                            .data
                            .strip_prefix("/c")
                            .map(|n| n.bytes().take_while(u8::is_ascii_digit).collect::<Vec<u8>>())
                            .and_then(|n| std::str::from_utf8(&n).ok()?.parse::<usize>().ok())
                            .filter(|&c| c < self.conns.len() && self.conns[c].named && self.conns[c].key.is_none());
                        if let Some(c) = c {
                            self.conns[c].key = Some(e.id);
                            self.keys.insert(e.id, c);
                        }
                    }
                    if kind == EventKind::Close {
                        self.closed_keys.insert(e.id);
                    }
                    let Some(&c) = self.keys.get(&e.id) else {
                        if kind == EventKind::Text {
                            assert!(e.data.len() <= self.cap, "a WS_TEXT over the cap");
                        }
                        continue;
                    };
                    let conn = &self.conns[c];
                    if let Some(lines) = &conn.lines {
                        assert!(!lines.refused, "an event of a refused line client: {e:?}");
                    }
                    let Aim::Object(u) = conn.aim else {
                        panic!("an object event of conn {c} aimed at {:?}", conn.aim)
                    };
                    assert!(self.obj_urls[u].1, "an event of a revoked URL: {e:?}");
                    if kind == EventKind::Text {
                        assert!(e.data.len() <= self.cap, "a WS_TEXT over the cap");
                        if conn.lines.is_some() {
                            let expected = ref_texts(&conn.given, self.cap);
                            let i = conn.texts;
                            assert!(
                                i < expected.len(),
                                "WS_TEXT {:?} beyond the client's {} lines",
                                e.data,
                                expected.len()
                            );
                            assert_eq!(&*e.data, expected[i], "WS_TEXT {i} differs from the client's line");
                        }
                        self.conns[c].texts += 1;
                    }
                }
            }
        }
        self.pump();
    }

    // ---- time

    fn advance(&mut self, by: Duration) {
        let to = self.now + by;
        for _ in 0..10_000 {
            match self.region.poll_timeout() {
                Some(at) if at <= to => {
                    self.now = self.now.max(at);
                    self.region.handle_input(self.now, Input::Timeout).unwrap();
                    self.pump();
                }
                _ => {
                    self.now = to;
                    return;
                }
            }
        }
        panic!("poll_timeout keeps reporting a due deadline");
    }

    // ---- clients

    /// Hands bytes to the core (held while the connection is paused).
    fn give(&mut self, c: usize, bytes: &[u8]) {
        let conn = &mut self.conns[c];
        if conn.gone || bytes.is_empty() {
            return;
        }
        if conn.paused {
            if conn.pending.len() < 1 << 16 {
                conn.pending.extend_from_slice(bytes);
            }
            return;
        }
        if conn.given.is_empty() && bytes[0] == b'/' {
            conn.lines = Some(LineCheck { region: conn.aim == Aim::Region, cap: self.cap, ..LineCheck::default() });
        }
        let id = conn.id;
        if self.region.handle_input(self.now, Input::Received { conn: id, data: bytes }).is_ok() {
            self.conns[c].given.extend_from_slice(bytes);
        }
        self.pump();
    }

    fn feed(&mut self, c: usize, bytes: &[u8], sizes: &[u8]) {
        for chunk in chunks(bytes, &sizes[..sizes.len().min(8)]) {
            self.give(c, chunk);
        }
    }

    fn target_path(&self, t: Target) -> (String, Aim) {
        let live = self.obj_urls.iter().rposition(|u| u.1);
        match t {
            Target::Object => match live {
                Some(u) => (path_of(&self.obj_urls[u].0).to_string(), Aim::Object(u)),
                None => ("/lslws/00000000-0000-4000-8000-000000000000/".into(), Aim::Other),
            },
            Target::OldObject(i) if !self.obj_urls.is_empty() => {
                let u = usize::from(i) % self.obj_urls.len();
                (path_of(&self.obj_urls[u].0).to_string(), Aim::Object(u))
            }
            Target::Region => (path_of(self.endpoints.last().unwrap()).to_string(), Aim::Region),
            Target::OldRegion(i) => {
                (path_of(&self.endpoints[usize::from(i) % self.endpoints.len()]).to_string(), Aim::Region)
            }
            Target::Http => (
                self.http_url.as_deref().map_or("/lslhttp/00000000-0000-4000-8000-000000000000/", path_of).to_string(),
                Aim::Other,
            ),
            _ => ("/lslws/00000000-0000-4000-8000-000000000001/".into(), Aim::Other),
        }
    }

    fn line_bytes(&self, lines: &[Line]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines.iter().take(64) {
            match line {
                Line::Text(t) => {
                    out.extend(escape(t.as_bytes()));
                    out.push(b'\n');
                }
                Line::Raw(b) => {
                    out.extend_from_slice(b);
                    out.push(b'\n');
                }
                Line::Crlf(t) => {
                    out.extend(escape(t.as_bytes()));
                    out.extend_from_slice(b"\r\n");
                }
                Line::Long(n) => {
                    out.extend(std::iter::repeat_n(b'a', usize::from(*n) % 5000));
                    out.push(b'\n');
                }
                Line::Ping => out.extend_from_slice(b"\\ping\n"),
                Line::Pong => out.extend_from_slice(b"\\pong\n"),
                Line::Close(None) => out.extend_from_slice(b"\\close\n"),
                Line::Close(Some((code, reason))) => {
                    out.extend_from_slice(format!("\\close {code} ").as_bytes());
                    out.extend(escape(reason.as_bytes()));
                    out.push(b'\n');
                }
                Line::Partial(b) => out.extend_from_slice(b),
            }
        }
        out
    }

    fn connect(&mut self, start: &Start, sizes: &[u8]) {
        if self.conns.len() >= MAX_CONNS {
            return;
        }
        let c = self.conns.len();
        let (bytes, aim, named) = match start {
            Start::Line { target, query, lines } => {
                let (path, aim) = self.target_path(*target);
                let mut b = format!("{path}c{c}").into_bytes();
                if let Some(q) = query {
                    b.push(b'?');
                    b.extend_from_slice(q.as_bytes());
                }
                b.push(b'\n');
                b.extend(self.line_bytes(lines));
                (b, aim, true)
            }
            Start::Ws { target } => {
                let (path, aim) = self.target_path(*target);
                (upgrade_head(&format!("{path}c{c}")), aim, true)
            }
            Start::HttpIn { method, target, body } => {
                let (path, _) = self.target_path(*target);
                let method = ["GET", "POST", "PUT", "DELETE", "PATCH"][usize::from(*method) % 5];
                let head =
                    format!("{method} {path}c{c} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                (head.into_bytes(), Aim::Other, false)
            }
            Start::Plain { path } => {
                (format!("GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(), Aim::Other, false)
            }
            Start::Raw(raw) => {
                let mut out = Vec::with_capacity(raw.len() + 64);
                let mut aim = Aim::Other;
                let mut i = 0;
                while i < raw.len() {
                    let sub = match (raw[i], raw.get(i + 1)) {
                        (b'$', Some(b'o')) => Some(Target::Object),
                        (b'$', Some(b'r')) => Some(Target::Region),
                        (b'$', Some(b'h')) => Some(Target::Http),
                        _ => None,
                    };
                    match sub {
                        Some(t) => {
                            let (path, a) = self.target_path(t);
                            if aim == Aim::Other {
                                aim = a;
                            }
                            out.extend_from_slice(path.as_bytes());
                            i += 2;
                        }
                        None => {
                            out.push(raw[i]);
                            i += 1;
                        }
                    }
                }
                (out, aim, false)
            }
        };
        let id = ConnectionId(c as u64);
        self.conns.push(Conn {
            id,
            given: Vec::new(),
            out: Vec::new(),
            lines: None,
            ws: None,
            aim,
            named,
            key: None,
            texts: 0,
            sent: Vec::new(),
            hold: false,
            paused: false,
            pending: Vec::new(),
            closed: false,
            gone: false,
        });
        let remote = std::net::IpAddr::from([10, 0, 0, c as u8]);
        self.region.handle_input(self.now, Input::Accepted { conn: id, remote }).unwrap();
        self.pump();
        self.feed(c, &bytes, sizes);
    }

    fn pick(&self, c: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| usize::from(c) % self.conns.len())
    }

    // ---- one step

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Connect { start, sizes } => self.connect(start, sizes),
            Op::Lines { c, lines, sizes } => {
                if let Some(c) = self.pick(*c) {
                    let bytes = self.line_bytes(lines);
                    self.feed(c, &bytes, sizes);
                }
            }
            Op::Bytes { c, bytes } => {
                if let Some(c) = self.pick(*c) {
                    self.give(c, bytes);
                }
            }
            Op::Frame { c, text } => {
                if let Some(c) = self.pick(*c) {
                    self.give(c, &client_frame(true, 1, [7, 7, 7, 7], text.as_bytes()));
                }
            }
            Op::Send { c, text } => {
                let Some(c) = self.pick(*c) else { return };
                let Some(key) = self.conns[c].key else { return };
                let text = text.text();
                let result = self.region.websocket_send(OBJ.script, key, &text);
                assert!(
                    matches!(result, Ok(()) | Err(SendError::NoSession | SendError::Busy | SendError::TooLarge)),
                    "{result:?}"
                );
                if result.is_ok() {
                    assert!(text.len() <= self.cap, "a send over the cap was accepted");
                    self.conns[c].sent.push(text);
                }
            }
            Op::Broadcast { text } => {
                let result = self.region.websocket_broadcast(REG.script, "echo", &text.text());
                assert!(matches!(result, Ok(_) | Err(SendError::BadDomain | SendError::TooLarge)), "{result:?}");
            }
            Op::Close { c, code, reason } => {
                let Some(c) = self.pick(*c) else { return };
                let Some(key) = self.conns[c].key else { return };
                let reason = "r\n\\".repeat(usize::from(*reason) % 50);
                let result = self.region.websocket_close(now, OBJ.script, key, *code, &reason);
                assert!(
                    matches!(
                        result,
                        Ok(()) | Err(CloseError::NoSession | CloseError::BadCode(_) | CloseError::ReasonTooLong(_))
                    ),
                    "{result:?}"
                );
            }
            Op::DrainObject { n } => self.drain(OBJ.script, usize::from(*n)),
            Op::DrainRegion { n } => self.drain(REG.script, usize::from(*n)),
            Op::ResetObject | Op::Rezzed | Op::ChangedRegion | Op::OwnerChanged | Op::ObjectRemoved => {
                self.revoke_object();
                self.void_requests_of(false);
                match op {
                    Op::ResetObject => self.region.script_reset(now, OBJ.script),
                    Op::Rezzed => self.region.object_rezzed(now, OBJ.object),
                    Op::ChangedRegion => self.region.object_changed_region(now, OBJ.object),
                    Op::OwnerChanged => self.region.owner_changed(now, OBJ.object),
                    _ => self.region.object_removed(now, OBJ.object),
                }
            }
            Op::ResetRegion | Op::ReleaseDomain => {
                self.listening = false;
                self.void_requests_of(true);
                if matches!(op, Op::ResetRegion) {
                    self.region.script_reset(now, REG.script);
                } else {
                    let _ = self.region.release_domain(now, REG.script, "echo");
                }
            }
            Op::ReleaseObject => {
                if let Some(u) = self.obj_urls.iter().rposition(|u| u.1) {
                    self.obj_urls[u].1 = false;
                    let url = self.obj_urls[u].0.clone();
                    self.region.release_websocket(now, OBJ.script, &url).expect("release a live URL");
                }
            }
            Op::Restart => {
                self.revoke_object();
                self.listening = false;
                self.void_requests();
                self.region.region_restart(now);
                self.pump();
                self.endpoints.push(self.region.region_url());
            }
            Op::RequestObject => self.request_object(),
            Op::RequestRegion => self.request_region(),
            Op::PeerClosed { c } => {
                if let Some(c) = self.pick(*c)
                    && !self.conns[c].gone
                {
                    self.conns[c].gone = true;
                    let id = self.conns[c].id;
                    let _ = self.region.handle_input(now, Input::PeerClosed { conn: id });
                }
            }
            Op::Hold { c, hold } => {
                if let Some(c) = self.pick(*c) {
                    self.conns[c].hold = *hold;
                    if !hold {
                        self.take(c);
                    }
                }
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(*ms))),
            Op::AdvanceSecs { s } => self.advance(Duration::from_secs(u64::from(*s))),
        }
        self.pump();
    }

    /// The requests in flight of one script are void: their grants must not come.
    fn void_requests_of(&mut self, region: bool) {
        let void: Vec<Key> = self.pending_requests.iter().filter(|(_, r)| **r == region).map(|(k, _)| *k).collect();
        for k in void {
            self.pending_requests.remove(&k);
            self.stale_requests.insert(k);
        }
    }

    fn finish(&mut self) {
        self.drain(OBJ.script, usize::MAX);
        self.drain(REG.script, usize::MAX);
        for c in 0..self.conns.len() {
            self.conns[c].hold = false;
            self.conns[c].paused = false;
            let pending = std::mem::take(&mut self.conns[c].pending);
            self.give(c, &pending);
            self.take(c);
        }
        self.drain(OBJ.script, usize::MAX);
        self.drain(REG.script, usize::MAX);
        self.advance(Duration::from_secs(100));
        self.drain(OBJ.script, usize::MAX);
        self.drain(REG.script, usize::MAX);
        for conn in &self.conns {
            if let Some(lines) = &conn.lines {
                assert!(lines.buf.is_empty(), "a partial server line: {:?}", String::from_utf8_lossy(&lines.buf));
                if lines.ended {
                    assert!(conn.closed || conn.gone, "no Close after \\close or \\error");
                }
                if !lines.region {
                    assert!(lines.messages.len() <= conn.sent.len(), "more messages than the script sent");
                    assert_eq!(lines.messages[..], conn.sent[..lines.messages.len()], "messages differ from sends");
                }
            }
        }
    }
}

fuzz_target!(|scenario: Scenario| {
    let mut state = State::new(scenario.small, scenario.serve_other_paths);
    for op in scenario.ops.iter().take(200) {
        state.apply(op);
    }
    state.finish();
    if std::env::var_os("LINES_DEBUG").is_some() {
        eprintln!("{scenario:#?}");
        for (i, c) in state.conns.iter().enumerate() {
            eprintln!(
                "conn {i}: {:?} given={:?} out={:?} closed={}",
                c.aim,
                String::from_utf8_lossy(&c.given),
                String::from_utf8_lossy(&c.out),
                c.closed
            );
        }
    }
});
