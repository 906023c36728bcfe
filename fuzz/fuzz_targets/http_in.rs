//! Structure-aware: a `Region` whose scripts hold HTTP-in URLs (SPEC §8),
//! driven through fuzzer-chosen requests (heads, `Content-Length` and chunked
//! bodies, pipelining, `Expect: 100-continue`, truncation and raw bytes, any
//! split into reads), script answers (to live, answered, ended, foreign and
//! unknown ids), lifecycle revocations, peer closes, clients that stop reading,
//! and the passing of time. Checked as it runs and after a final phase in which
//! every client reads again, the scripts answer everything and time passes:
//!
//! - nothing panics; every byte written on a connection parses (httparse) as a
//!   sequence of complete HTTP/1.1 responses, nothing after a
//!   `Connection: close` one, every 429/503 refusal with `Retry-After`;
//! - each request that became an event is answered exactly once, in request
//!   order on its connection, by the script (that status, body and
//!   `Content-Type`), the timeout (never before 25 s) or the 503 of a revocation
//!   (never left to time out), unless its client went away; a clean connection
//!   (only well-formed requests) gets one answer per request until one closes it;
//! - `http_response` / `set_content_type` / `http_header` agree with the model:
//!   `Ok` only once, for the owner, while the client is there and the URL live;
//!   the error of an ended request never changes; headers only for the owner
//!   and only while the request is open;
//! - no event of a revoked URL, no event to a script that does not own the URL;
//!   the event body is the request body transcoded and cut as SPEC §8 says;
//! - no more than `http_in_flight` requests per script in flight;
//! - memory: no single allocation inside a `Region` call exceeds a bound that
//!   does not grow with body size, and the bytes a connection that does not
//!   read holds stay under the outgoing buffer plus one answer.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lsl_websocket::{
    Config, ConnectionId, ContentType, EventKind, HttpError, HttpMethod, Input, Key, Output, Region, ReleaseError,
    ScriptInfo, SeededEntropy,
};

// ------------------------------------------------------------------ allocation tracking

struct Tracking;
static TRACK: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if TRACK.load(Relaxed) {
        LARGEST.fetch_max(size, Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs a `Region` call with allocation tracking on.
fn rc<T>(f: impl FnOnce() -> T) -> T {
    TRACK.store(true, Relaxed);
    let out = f();
    TRACK.store(false, Relaxed);
    out
}

/// Largest single allocation a `Region` call may make: a read plus a held
/// head, doubled by `Vec` growth, with room for the region's own tables. A
/// body of any size must not show up here.
const ALLOC_BOUND: usize = 128 * 1024;
/// Largest read the simulated socket hands the region.
const MAX_READ: usize = 16 * 1024;
/// Longest text (request body part, answer body part).
const MAX_TXT: usize = 5000;
const MAX_CLIENTS: usize = 64;

// ------------------------------------------------------------------ input

#[derive(Arbitrary, Debug)]
struct Scenario {
    mode: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Txt {
    Short(u8),
    Long(u16),
    Any(String),
    Bytes(Vec<u8>),
}

impl Txt {
    fn bytes(&self) -> Vec<u8> {
        let mut b = match self {
            Txt::Short(n) => format!("b{n}").into_bytes(),
            Txt::Long(n) => vec![b'x'; usize::from(*n) % MAX_TXT],
            Txt::Any(s) => s.as_bytes().to_vec(),
            Txt::Bytes(b) => b.clone(),
        };
        b.truncate(MAX_TXT);
        b
    }
}

#[derive(Arbitrary, Debug)]
enum Target {
    Grant(u8),
    Unknown,
    WebSocket,
    OtherPath,
}

#[derive(Arbitrary, Debug)]
enum BodyShape {
    None,
    Length(Txt),
    Chunked { body: Txt, sizes: Vec<u8>, ext: bool, trailer: bool, upper: bool },
}

#[derive(Arbitrary, Debug)]
struct Req {
    method: u8,
    target: Target,
    query: bool,
    http10: bool,
    connection: u8,
    expect: bool,
    charset: u8,
    body: BodyShape,
    extra: Vec<(u8, Txt)>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    RequestUrl { s: u8, secure: bool },
    Release { s: u8, g: u8, slash: bool },
    Life { what: u8, who: u8 },
    Connect { remote: u8 },
    Send { c: u8, req: Req, splits: Vec<u8>, truncate: Option<u16> },
    Flood { c: u8, g: u8, kib: u8, chunked: bool, finish: bool },
    Raw { c: u8, bytes: Vec<u8> },
    Drain { s: u8, n: u8 },
    Respond { s: u8, e: u8, status: u8, body: Txt },
    RespondKey { s: u8, k: u8 },
    SetType { s: u8, e: u8, t: u8 },
    Header { s: u8, e: u8, name: u8 },
    PeerClosed { c: u8 },
    Hold { c: u8, hold: bool },
    Advance { ms: u16 },
    AdvanceSecs { s: u8 },
}

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"];
/// `Content-Type` header values; `None` sends none.
const CHARSETS: [Option<&str>; 8] = [
    None,
    Some("text/plain"),
    Some("text/plain; charset=utf-8"),
    Some("application/json; charset=\"UTF-8\""),
    Some("text/plain; charset=ISO-8859-1"),
    Some("text/plain; charset=us-ascii"),
    Some("text/plain; charset=windows-1252"),
    Some("text/plain; charset=x-bogus"),
];
const STATUSES: [i32; 14] = [200, 201, 204, 304, 404, 500, 503, 504, 599, 600, 0, -7, 99, 302];
const HEADER_NAMES: [&str; 7] =
    ["x-script-url", "x-path-info", "x-query-string", "x-remote-ip", "x-h0", "host", "nope"];
const REMOTES: [&str; 4] = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8:0:1::2"];

/// Script index → object index. Scripts 0 and 1 request URLs; 2 is a sibling of 0 with none.
const SCRIPT_OBJECT: [usize; 3] = [0, 1, 0];

fn key(tag: u8, n: usize) -> Key {
    let mut b = [tag; 16];
    b[8..].copy_from_slice(&(n as u64).to_be_bytes());
    Key::from_bytes(b)
}

fn cut(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut end = limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// What the script must receive for this body, if the harness can compute it.
fn expected_text(body: &[u8], content_type: Option<&str>, keep: usize, max: usize) -> Option<String> {
    let raw = &body[..body.len().min(keep)];
    let label = content_type.and_then(|ct| ct.split_once("charset=")).map(|(_, v)| v.trim_matches('"'));
    let s: String = match label.map(str::to_ascii_lowercase).as_deref() {
        None | Some("iso-8859-1") => raw.iter().map(|&b| char::from(b)).collect(),
        Some("utf-8") | Some("x-bogus") => String::from_utf8_lossy(raw).into_owned(),
        Some("us-ascii") => raw.iter().map(|&b| if b.is_ascii() { char::from(b) } else { '\u{FFFD}' }).collect(),
        _ => return None,
    };
    Some(cut(s, max))
}

// ------------------------------------------------------------------ model

#[derive(Debug)]
struct Grant {
    s: usize,
    url: String,
    /// `/lslhttp/{cap}/`
    path: String,
    revoked: Option<Instant>,
}

#[derive(Debug)]
struct SentReq {
    /// Stream offset just past the request.
    end: usize,
    delivered_at: Option<Instant>,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    close: bool,
    query: String,
    /// The grant it targets, if any.
    g: Option<usize>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// When the harness took it, and whether that was when it was queued (the client was reading).
    at: Instant,
    exact_time: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

struct Client {
    conn: ConnectionId,
    remote: IpAddr,
    resps: Vec<Resp>,
    /// A `Connection: close` response was seen: nothing may follow.
    wire_done: bool,
    hold: bool,
    /// Held since the last take: what is taken now may have been queued earlier.
    was_held: bool,
    paused: bool,
    pending: Vec<u8>,
    /// Bytes handed to the region, and sent in all (handed or pending).
    delivered: usize,
    sent: usize,
    /// `Output::Close` seen.
    closed: bool,
    /// We reported `PeerClosed`.
    gone: bool,
    /// Only complete, well-formed requests were sent.
    clean: bool,
    reqs: Vec<SentReq>,
    /// Indices into `State::evs`, in the order the script saw them.
    events: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Open,
    Script { status: u16, body: Vec<u8>, content_type: ContentType },
    Ended(HttpError),
}

#[derive(Debug)]
struct Ev {
    id: Key,
    s: usize,
    c: usize,
    n: usize,
    g: usize,
    answer: Answer,
    content_type: ContentType,
}

struct State {
    region: Region,
    now: Instant,
    step: usize,
    config: Config,
    keep: usize,
    scripts: Vec<ScriptInfo>,
    /// URL request keys not yet answered: script, and whether revoked since.
    url_requests: HashMap<Key, (usize, bool)>,
    grants: Vec<Grant>,
    clients: Vec<Client>,
    evs: Vec<Ev>,
    resumed: Vec<usize>,
    serial: usize,
    /// Events whose tag could not be read (only from dirty clients).
    strays: usize,
}

impl State {
    fn new(mode: u8) -> State {
        let small = mode & 1 != 0;
        let base = Config {
            secure_authority: Some("127.0.0.1:8443".into()),
            refuse_large_bodies: mode & 2 != 0,
            allow_html: mode & 4 != 0,
            http_timeout_status: if mode & 8 != 0 { 500 } else { 504 },
            http_timeout_body: if mode & 8 != 0 { "Script timeout".into() } else { "T/O".into() },
            header_lifetime: Duration::from_secs(100_000),
            handshakes_per_second: if mode & 16 != 0 { 3 } else { 1000 },
            ..Config::default()
        };
        let config = if small {
            Config {
                event_queue: 4,
                http_in_flight: 3,
                outgoing_buffer: 512,
                max_body: 64,
                max_request_head: 1024,
                ..base
            }
        } else {
            base
        };
        let now = Instant::now();
        let region = rc(|| Region::new(config.clone(), Box::new(SeededEntropy::new(11)), now));
        let scripts = SCRIPT_OBJECT
            .iter()
            .enumerate()
            .map(|(s, &o)| ScriptInfo { script: key(0xa0, s), object: key(0xb0, o), owner: key(0xc0, o) })
            .collect();
        State {
            region,
            now,
            step: 0,
            keep: config.max_body * 2 + 4,
            config,
            scripts,
            url_requests: HashMap::new(),
            grants: Vec::new(),
            clients: Vec::new(),
            evs: Vec::new(),
            resumed: Vec::new(),
            serial: 0,
            strays: 0,
        }
    }

    fn timeout_resp(&self, r: &Resp) -> bool {
        r.status == self.config.http_timeout_status && r.body == self.config.http_timeout_body.as_bytes()
    }

    // ---------------------------------------------------------------- outputs

    fn pump(&mut self) {
        loop {
            while let Some(out) = rc(|| self.region.poll_output()) {
                match out {
                    Output::Transmit(conn) => {
                        let c = self.client(conn);
                        assert!(!self.clients[c].closed, "Transmit after Close");
                        if !self.clients[c].hold {
                            self.take(c);
                        }
                    }
                    Output::Close(conn) => {
                        let c = self.client(conn);
                        assert!(!self.clients[c].closed, "two Close outputs for one connection");
                        self.clients[c].closed = true;
                        self.clients[c].pending.clear();
                        if !self.clients[c].hold {
                            self.take(c);
                        }
                    }
                    Output::PauseReading(conn) => {
                        let c = self.client(conn);
                        assert!(!self.clients[c].closed, "PauseReading after Close");
                        self.clients[c].paused = true;
                    }
                    Output::ResumeReading(conn) => {
                        let c = self.client(conn);
                        self.clients[c].paused = false;
                        self.resumed.push(c);
                    }
                    Output::Events(script) => {
                        assert!(self.scripts.iter().any(|i| i.script == script), "Events for a stranger");
                    }
                    Output::Revoked { url, .. } => {
                        if let Some(g) = self.grants.iter().find(|g| g.url == url) {
                            assert!(g.revoked.is_some(), "Revoked({url}) for a URL the model holds live");
                        }
                    }
                    other => panic!("unexpected output {other:?}"),
                }
            }
            let Some(c) = self.resumed.pop() else { return };
            self.feed_chunk(c, MAX_READ);
        }
    }

    fn client(&self, conn: ConnectionId) -> usize {
        let c = conn.0 as usize;
        assert!(c < self.clients.len(), "output for a connection never accepted: {conn:?}");
        c
    }

    /// Takes every pending byte of client `c` (a socket with room).
    fn take(&mut self, c: usize) {
        let conn = self.clients[c].conn;
        let exact = !self.clients[c].hold && !self.clients[c].was_held;
        self.clients[c].was_held = self.clients[c].hold;
        let mut total = 0;
        while let Some(bytes) = rc(|| self.region.poll_transmit(conn)) {
            total += bytes.len();
            self.parse_response(c, &bytes, exact);
        }
        // Answers pile up only to the outgoing buffer, plus the answer (and its
        // `100 Continue`) that crossed it, plus a closing refusal.
        let bound = self.config.outgoing_buffer + MAX_TXT + 600;
        assert!(total <= bound, "a connection held {total} unsent bytes (bound {bound})");
    }

    /// One `poll_transmit` chunk: whole responses, never a part of one.
    fn parse_response(&mut self, c: usize, bytes: &[u8], exact_time: bool) {
        let now = self.now;
        let cl = &mut self.clients[c];
        let mut rest = bytes;
        while !rest.is_empty() {
            assert!(!cl.wire_done, "bytes after a Connection: close response: {:?}", String::from_utf8_lossy(rest));
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Response::new(&mut headers);
            let len = match r.parse(rest) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => panic!("a partial response: {:?}", String::from_utf8_lossy(rest)),
                Err(e) => panic!("a response that does not parse ({e}): {:?}", String::from_utf8_lossy(rest)),
            };
            assert_eq!(r.version, Some(1), "HTTP/1.1 responses");
            let status = r.code.expect("status");
            let hs: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    let v = std::str::from_utf8(h.value).expect("ASCII header value");
                    (h.name.to_ascii_lowercase(), v.to_string())
                })
                .collect();
            let length = hs.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<usize>().unwrap());
            let bodiless = status < 200 || status == 204 || status == 304;
            let body_len = if bodiless {
                assert!(length.is_none_or(|l| l == 0), "a {status} with a body");
                0
            } else {
                length.unwrap_or_else(|| panic!("a {status} without Content-Length"))
            };
            assert!(len + body_len <= rest.len(), "a truncated response body");
            let body = rest[len..len + body_len].to_vec();
            rest = &rest[len + body_len..];
            assert_ne!(status, 101, "no WebSocket URL exists");
            if status < 200 {
                assert_eq!(status, 100, "the only interim response is 100 Continue");
                assert!(hs.is_empty(), "100 Continue with headers");
                continue;
            }
            let resp = Resp { status, headers: hs, body, at: now, exact_time };
            if matches!(status, 429 | 503) && resp.header("content-type").is_none() {
                assert!(resp.header("retry-after").is_some(), "a {status} refusal without Retry-After");
            }
            if resp.header("content-type").is_none() && !bodiless {
                // The core's own refusals close the connection.
                assert!(resp.closes(), "a refusal that keeps the connection: {resp:?}");
            }
            cl.wire_done = resp.closes();
            cl.resps.push(resp);
        }
    }

    // ---------------------------------------------------------------- client bytes

    /// Queues bytes from the client and hands them to the region while it reads.
    fn deliver(&mut self, c: usize, bytes: &[u8], splits: &[u8]) {
        let cl = &mut self.clients[c];
        if cl.gone || cl.closed {
            return;
        }
        cl.sent += bytes.len();
        cl.pending.extend_from_slice(bytes);
        for &s in splits {
            if !self.feed_chunk(c, usize::from(s) + 1) {
                return;
            }
            self.pump();
        }
        while self.feed_chunk(c, MAX_READ) {
            self.pump();
        }
    }

    /// Hands at most `max` pending bytes to the region; false when nothing was handed.
    fn feed_chunk(&mut self, c: usize, max: usize) -> bool {
        let now = self.now;
        let cl = &mut self.clients[c];
        if cl.gone || cl.closed || cl.paused || cl.pending.is_empty() {
            return false;
        }
        let n = cl.pending.len().min(max);
        let chunk: Vec<u8> = cl.pending.drain(..n).collect();
        let conn = cl.conn;
        cl.delivered += n;
        let delivered = cl.delivered;
        for r in cl.reqs.iter_mut().filter(|r| r.delivered_at.is_none() && r.end <= delivered) {
            r.delivered_at = Some(now);
        }
        let result = rc(|| self.region.handle_input(now, Input::Received { conn, data: &chunk }));
        assert_eq!(result, Ok(()), "bytes for an open connection");
        true
    }

    fn build(&mut self, c: usize, req: &Req) -> (Vec<u8>, SentReq) {
        let n = self.clients[c].reqs.len();
        let method = METHODS[usize::from(req.method) % METHODS.len()];
        let (path, g) = match req.target {
            Target::Grant(g) if !self.grants.is_empty() => {
                let g = usize::from(g) % self.grants.len();
                (self.grants[g].path.clone(), g)
            }
            Target::Grant(_) | Target::Unknown => ("/lslhttp/00000000-0000-4000-8000-000000000000/".into(), 99),
            Target::WebSocket => ("/lslws/00000000-0000-4000-8000-000000000000/".into(), 99),
            Target::OtherPath => ("/index.html/".into(), 99),
        };
        let query = if req.query { format!("q={n}&x=%20") } else { String::new() };
        let mut head = format!("{method} {path}c{c}/r{n}/g{g}");
        if req.query {
            head.push('?');
            head.push_str(&query);
        }
        head.push_str(if req.http10 { " HTTP/1.0\r\n" } else { " HTTP/1.1\r\n" });
        head.push_str("Host: 127.0.0.1:8787\r\n");
        let close = match req.connection % 3 {
            1 => {
                head.push_str("Connection: close\r\n");
                true
            }
            2 => {
                head.push_str("Connection: keep-alive\r\n");
                false
            }
            _ => req.http10,
        };
        if req.expect {
            head.push_str("Expect: 100-continue\r\n");
        }
        let content_type = CHARSETS[usize::from(req.charset) % CHARSETS.len()];
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        let mut head = head.into_bytes();
        for (i, (name, value)) in req.extra.iter().take(8).enumerate() {
            head.extend_from_slice(format!("X-H{}: ", (usize::from(*name) + i) % 4).as_bytes());
            let mut v = value.bytes();
            v.truncate(600);
            if v.iter().any(|&b| b == b'\r' || b == b'\n') {
                // A line break ends the header, or the head: the request is not what the model built.
                self.clients[c].clean = false;
            }
            head.extend_from_slice(&v);
            head.extend_from_slice(b"\r\n");
        }
        let tag = format!("c{c}r{n}g{g};").into_bytes();
        let (framing, wire_body, body): (String, Vec<u8>, Vec<u8>) = match &req.body {
            BodyShape::None => (String::new(), Vec::new(), Vec::new()),
            BodyShape::Length(t) => {
                let body = [tag, t.bytes()].concat();
                (format!("Content-Length: {}\r\n", body.len()), body.clone(), body)
            }
            BodyShape::Chunked { body: t, sizes, ext, trailer, upper } => {
                let body = [tag, t.bytes()].concat();
                let mut wire = Vec::new();
                let mut pos = 0;
                let mut sizes = sizes.iter().cycle();
                while pos < body.len() {
                    let size = sizes.next().map_or(body.len(), |&s| usize::from(s).max(1) * 7).min(body.len() - pos);
                    let hex = if *upper { format!("{size:X}") } else { format!("{size:x}") };
                    wire.extend_from_slice(hex.as_bytes());
                    if *ext {
                        wire.extend_from_slice(b";e=1");
                    }
                    wire.extend_from_slice(b"\r\n");
                    wire.extend_from_slice(&body[pos..pos + size]);
                    wire.extend_from_slice(b"\r\n");
                    pos += size;
                }
                wire.extend_from_slice(b"0\r\n");
                if *trailer {
                    wire.extend_from_slice(b"X-Trailer: 1\r\n");
                }
                wire.extend_from_slice(b"\r\n");
                ("Transfer-Encoding: chunked\r\n".into(), wire, body)
            }
        };
        head.extend_from_slice(framing.as_bytes());
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&wire_body);
        let end = self.clients[c].sent + head.len();
        let g = (g != 99).then_some(g);
        (head, SentReq { end, delivered_at: None, body, content_type, close, query, g })
    }

    // ---------------------------------------------------------------- events

    fn drain(&mut self, s: usize, n: usize, answer: bool) {
        let script = self.scripts[s].script;
        for _ in 0..n {
            let Some(e) = rc(|| self.region.poll_event(script)) else { break };
            self.pump();
            let EventKind::Http(method) = e.kind else { panic!("a non-HTTP event: {e:?}") };
            match method {
                HttpMethod::UrlRequestGranted | HttpMethod::UrlRequestDenied => {
                    let (owner, revoked) = self.url_requests.remove(&e.id).expect("an answer to a request we made");
                    assert_eq!(owner, s, "a URL answer to another script");
                    if method == HttpMethod::UrlRequestDenied {
                        assert!(matches!(&*e.data, "budget" | "no-secure" | "bad-option" | "too-many"), "{e:?}");
                        continue;
                    }
                    assert!(!revoked, "URL_REQUEST_GRANTED of a revoked URL: {e:?}");
                    let after = e.data.split_once("://").expect("scheme").1;
                    let path = after[after.find('/').expect("path")..].to_string();
                    assert!(path.starts_with("/lslhttp/") || path.starts_with("/lslhttps/"), "{e:?}");
                    assert!(path.ends_with('/'), "the granted URL ends with /: {e:?}");
                    self.grants.push(Grant { s, url: e.data.to_string(), path, revoked: None });
                }
                _ => {
                    assert!(e.data.len() <= self.config.max_body, "an event body over max_body");
                    self.request_event(s, e.id, &e.data);
                    if answer {
                        let ei = self.evs.len() - 1;
                        if self.evs[ei].answer == Answer::Open {
                            self.respond(s, ei, 200, b"final");
                        }
                    }
                }
            }
        }
    }

    fn request_event(&mut self, s: usize, id: Key, data: &str) {
        let script = self.scripts[s].script;
        let path_info = rc(|| self.region.http_header(script, id, "x-path-info"));
        let script_url = rc(|| self.region.http_header(script, id, "x-script-url"));
        let by_url = (!script_url.is_empty()).then(|| {
            self.grants
                .iter()
                .position(|g| g.url.trim_end_matches('/') == script_url)
                .unwrap_or_else(|| panic!("x-script-url {script_url:?} is no URL granted"))
        });
        let parse = |t: &str| -> Option<(usize, usize, usize)> {
            let (c, rest) = t.split_once('r')?;
            let (n, g) = rest.split_once('g')?;
            Some((c.parse().ok()?, n.parse().ok()?, g.parse().ok()?))
        };
        let tag = if path_info.is_empty() {
            data.strip_prefix('c').and_then(|d| d.split_once(';')).and_then(|(t, _)| parse(t))
        } else {
            path_info
                .strip_prefix("/c")
                .map(|p| p.replacen("/r", "r", 1).replacen("/g", "g", 1))
                .and_then(|p| parse(&p))
        };
        let tag = tag.filter(|&(c, n, g)| {
            self.clients.get(c).is_some_and(|cl| cl.clean && n < cl.reqs.len()) && g < self.grants.len()
        });
        if let Some(g) = by_url {
            assert_eq!(self.grants[g].s, s, "a request event to a script that does not own the URL");
            assert!(self.grants[g].revoked.is_none(), "an event of a revoked URL (g{g})");
        }
        let Some((c, n, g)) = tag else {
            // A dirty client's request, or a bodiless one that ended before the
            // script looked (its answer is then a timeout the pairing allows).
            if !(path_info.is_empty() && data.is_empty()) {
                assert!(self.clients.iter().any(|cl| !cl.clean), "an untagged event from clean clients: {data:?}");
                self.strays += 1;
            }
            let answer = Answer::Open;
            self.evs.push(Ev { id, s, c: usize::MAX, n: 0, g: 0, answer, content_type: ContentType::Text });
            return;
        };
        if let Some(by_url) = by_url {
            assert_eq!(by_url, g, "x-script-url and the path disagree");
        }
        assert_eq!(self.grants[g].s, s, "a request event to a script that does not own the URL");
        assert!(self.grants[g].revoked.is_none(), "an event of a revoked URL (c{c} r{n} g{g})");
        let cl = &self.clients[c];
        if let Some(&last) = cl.events.last() {
            assert!(self.evs[last].n < n, "events out of request order on c{c}: r{} then r{n}", self.evs[last].n);
        }
        let req = &cl.reqs[n];
        if let Some(want) = expected_text(&req.body, req.content_type, self.keep, self.config.max_body) {
            assert_eq!(data, want, "event body of c{c} r{n}");
        }
        let query = rc(|| self.region.http_header(script, id, "x-query-string"));
        assert!(query.is_empty() || query == req.query, "x-query-string {query:?}");
        let ei = self.evs.len();
        self.evs.push(Ev { id, s, c, n, g, answer: Answer::Open, content_type: ContentType::Text });
        self.clients[c].events.push(ei);
    }

    fn delivered_at(&self, ei: usize) -> Option<Instant> {
        let e = &self.evs[ei];
        let cl = self.clients.get(e.c)?;
        if !cl.clean {
            return None;
        }
        cl.reqs.get(e.n)?.delivered_at
    }

    fn respond(&mut self, s: usize, ei: usize, status: i32, body: &[u8]) {
        let (script, id) = (self.scripts[s].script, self.evs[ei].id);
        self.serial += 1;
        let mut text = format!("A{};", self.serial);
        text.push_str(&String::from_utf8_lossy(body));
        let now = self.now;
        let result = rc(|| self.region.http_response(now, script, id, status, &text));
        self.pump();
        let e = &self.evs[ei];
        let owner = e.s == s;
        let gone = self.clients.get(e.c).is_some_and(|cl| cl.gone);
        let revoked = e.c != usize::MAX && self.grants[e.g].revoked.is_some();
        match result {
            Ok(()) => {
                assert!(owner, "http_response Ok for another script's request");
                assert_eq!(e.answer, Answer::Open, "http_response Ok twice or after the request ended");
                assert!(!gone, "http_response Ok after the client went away");
                assert!(!revoked, "http_response Ok after the URL was revoked");
                let st = u16::try_from(status).ok().filter(|s| (100..=599).contains(s)).unwrap_or(500);
                let ct = e.content_type;
                self.evs[ei].answer = Answer::Script { status: st, body: text.into_bytes(), content_type: ct };
            }
            Err(HttpError::NotYours) => assert!(!owner, "NotYours for the owner"),
            Err(err) => {
                assert!(owner, "{err:?} for another script's request (want NotYours)");
                self.ended(ei, err);
            }
        }
    }

    /// An owner's call on a request that is no longer open failed with `err`.
    fn ended(&mut self, ei: usize, err: HttpError) {
        let e = &self.evs[ei];
        match (&e.answer, err) {
            (Answer::Script { .. }, HttpError::AlreadyAnswered) => {}
            (Answer::Script { .. }, _) => panic!("{err:?} for a request the script answered"),
            (Answer::Ended(first), _) => assert_eq!(*first, err, "the error of an ended request changed"),
            (Answer::Open, HttpError::AlreadyAnswered | HttpError::UnknownRequest | HttpError::NotYours) => {
                panic!("{err:?} for an open request")
            }
            (Answer::Open, HttpError::ClientGone) => {
                assert!(self.clients.get(e.c).is_none_or(|cl| cl.gone), "ClientGone while the client is there")
            }
            (Answer::Open, HttpError::Revoked) => {
                assert!(e.c == usize::MAX || self.grants[e.g].revoked.is_some(), "Revoked for a live URL")
            }
            (Answer::Open, HttpError::Expired) => {
                if let Some(at) = self.delivered_at(ei) {
                    assert!(self.now >= at + self.config.http_timeout, "Expired before the timeout");
                }
            }
        }
        if self.evs[ei].answer == Answer::Open {
            self.evs[ei].answer = Answer::Ended(err);
        }
    }

    // ---------------------------------------------------------------- time

    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..100_000 {
            match self.region.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    rc(|| self.region.handle_input(now, Input::Timeout)).unwrap();
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

    // ---------------------------------------------------------------- ops

    fn pick_client(&self, c: u8) -> Option<usize> {
        (!self.clients.is_empty()).then(|| usize::from(c) % self.clients.len())
    }

    fn pick_ev(&self, e: u8) -> Option<usize> {
        (!self.evs.is_empty()).then(|| self.evs.len() - 1 - usize::from(e) % self.evs.len())
    }

    fn revoke_scripts(&mut self, affected: &[usize]) {
        let now = self.now;
        for g in self.grants.iter_mut().filter(|g| affected.contains(&g.s) && g.revoked.is_none()) {
            g.revoked = Some(now);
        }
        for (s, revoked) in self.url_requests.values_mut() {
            if affected.contains(s) {
                *revoked = true;
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::RequestUrl { s, secure } => {
                let s = usize::from(s) % 2;
                let info = self.scripts[s];
                let id =
                    rc(|| if secure { self.region.request_secure_url(info) } else { self.region.request_url(info) });
                self.url_requests.insert(id, (s, false));
            }
            Op::Release { s, g, slash } => {
                let s = usize::from(s) % 3;
                let (url, expect_ok) = match self.grants.get(usize::from(g)) {
                    Some(gr) => {
                        let url = if slash { gr.url.clone() } else { gr.url.trim_end_matches('/').to_string() };
                        (url, gr.s == s && gr.revoked.is_none())
                    }
                    None => ("http://127.0.0.1:8787/lslhttp/nope/".to_string(), false),
                };
                let script = self.scripts[s].script;
                let result = rc(|| self.region.release_url(now, script, &url));
                if expect_ok {
                    assert_eq!(result, Ok(()), "release of a live URL by its owner");
                    self.grants[usize::from(g)].revoked = Some(now);
                } else {
                    assert_eq!(result, Err(ReleaseError::UnknownUrl), "release of {url} by s{s}");
                }
            }
            Op::Life { what, who } => {
                let s = usize::from(who) % 3;
                let o = usize::from(who) % 2;
                let in_object: Vec<usize> = (0..3).filter(|&x| SCRIPT_OBJECT[x] == o).collect();
                let object = self.scripts[in_object[0]].object;
                let script = self.scripts[s].script;
                let affected = match what % 7 {
                    0 => {
                        rc(|| self.region.script_reset(now, script));
                        vec![s]
                    }
                    1 => {
                        rc(|| self.region.script_removed(now, script));
                        vec![s]
                    }
                    2 => {
                        rc(|| self.region.object_rezzed(now, object));
                        in_object
                    }
                    3 => {
                        rc(|| self.region.object_changed_region(now, object));
                        in_object
                    }
                    4 => {
                        rc(|| self.region.owner_changed(now, object));
                        in_object
                    }
                    5 => {
                        rc(|| self.region.object_removed(now, object));
                        in_object
                    }
                    _ => {
                        rc(|| self.region.region_restart(now));
                        vec![0, 1, 2]
                    }
                };
                self.revoke_scripts(&affected);
                if what % 7 <= 1 {
                    // The queue is emptied: the URL answers still queued are gone.
                    self.url_requests.retain(|_, (owner, _)| *owner != s);
                }
            }
            Op::Connect { remote } => {
                if self.clients.len() >= MAX_CLIENTS {
                    return;
                }
                let conn = ConnectionId(self.clients.len() as u64);
                let remote: IpAddr = REMOTES[usize::from(remote) % REMOTES.len()].parse().unwrap();
                self.clients.push(Client {
                    conn,
                    remote,
                    resps: Vec::new(),
                    wire_done: false,
                    hold: false,
                    was_held: false,
                    paused: false,
                    pending: Vec::new(),
                    delivered: 0,
                    sent: 0,
                    closed: false,
                    gone: false,
                    clean: true,
                    reqs: Vec::new(),
                    events: Vec::new(),
                });
                assert_eq!(rc(|| self.region.handle_input(now, Input::Accepted { conn, remote })), Ok(()));
            }
            Op::Send { c, ref req, ref splits, truncate } => {
                let Some(c) = self.pick_client(c) else { return };
                if self.clients[c].gone || self.clients[c].closed {
                    return;
                }
                let (mut bytes, sent) = self.build(c, req);
                if let Some(t) = truncate {
                    bytes.truncate(usize::from(t) % (bytes.len() + 1));
                    self.clients[c].clean = false;
                }
                self.clients[c].reqs.push(sent);
                self.deliver(c, &bytes, splits);
            }
            Op::Flood { c, g, kib, chunked, finish } => {
                let Some(c) = self.pick_client(c) else { return };
                if self.clients[c].gone || self.clients[c].closed || self.grants.is_empty() {
                    return;
                }
                let n = self.clients[c].reqs.len();
                let g = usize::from(g) % self.grants.len();
                let mut body = format!("c{c}r{n}g{g};").into_bytes();
                body.resize(body.len() + usize::from(kib) * 1024, b'y');
                let path = format!("{}c{c}/r{n}/g{g}", self.grants[g].path);
                let mut bytes = if chunked {
                    format!("POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes()
                } else {
                    format!("POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes()
                };
                let mut wire_body = Vec::new();
                if chunked {
                    for part in body.chunks(4096) {
                        wire_body.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                        wire_body.extend_from_slice(part);
                        wire_body.extend_from_slice(b"\r\n");
                    }
                    if finish {
                        wire_body.extend_from_slice(b"0\r\n\r\n");
                    }
                } else {
                    wire_body.extend_from_slice(&body);
                    if !finish {
                        wire_body.truncate(wire_body.len() / 2);
                    }
                }
                bytes.extend_from_slice(&wire_body);
                if !finish {
                    self.clients[c].clean = false;
                }
                let end = self.clients[c].sent + bytes.len();
                let sent = SentReq {
                    end,
                    delivered_at: None,
                    body,
                    content_type: None,
                    close: false,
                    query: String::new(),
                    g: Some(g),
                };
                self.clients[c].reqs.push(sent);
                self.deliver(c, &bytes, &[]);
            }
            Op::Raw { c, ref bytes } => {
                let Some(c) = self.pick_client(c) else { return };
                // A connection whose first byte is `/` is a line client (SPEC §13, fuzz `lines`).
                if self.clients[c].sent == 0 && bytes.first() == Some(&b'/') {
                    return;
                }
                self.clients[c].clean = false;
                self.deliver(c, bytes, &[]);
            }
            Op::Drain { s, n } => self.drain(usize::from(s) % 3, usize::from(n), false),
            Op::Respond { s, e, status, ref body } => {
                let Some(ei) = self.pick_ev(e) else { return };
                // A script answer's status defaults to its event's owner; s picks a stranger 1 time in 4.
                let s = if s % 4 == 3 { (self.evs[ei].s + 1 + usize::from(s / 4) % 2) % 3 } else { self.evs[ei].s };
                let status = STATUSES[usize::from(status) % STATUSES.len()];
                self.respond(s, ei, status, &body.bytes());
            }
            Op::RespondKey { s, k } => {
                let script = self.scripts[usize::from(s) % 3].script;
                let id = match self.url_requests.keys().next() {
                    Some(&k) if s % 2 == 0 => k,
                    _ => key(0xdd, usize::from(k)),
                };
                let result = rc(|| self.region.http_response(now, script, id, 200, "x"));
                assert_eq!(result, Err(HttpError::UnknownRequest), "an answer to an id that is no request");
                let result = rc(|| self.region.set_content_type(script, id, ContentType::Json));
                assert_eq!(result, Err(HttpError::UnknownRequest));
                assert_eq!(rc(|| self.region.http_header(script, id, "x-path-info")), "");
            }
            Op::SetType { s, e, t } => {
                let Some(ei) = self.pick_ev(e) else { return };
                let s = if s % 4 == 3 { (self.evs[ei].s + 1) % 3 } else { self.evs[ei].s };
                let ct = ContentType::ALL[usize::from(t) % ContentType::ALL.len()];
                let (script, id) = (self.scripts[s].script, self.evs[ei].id);
                let result = rc(|| self.region.set_content_type(script, id, ct));
                let owner = self.evs[ei].s == s;
                match result {
                    Ok(()) => {
                        assert!(owner, "set_content_type Ok for a stranger");
                        assert_eq!(self.evs[ei].answer, Answer::Open, "set_content_type Ok on a closed request");
                        assert!(!self.clients.get(self.evs[ei].c).is_some_and(|cl| cl.gone));
                        self.evs[ei].content_type = ct;
                    }
                    Err(HttpError::NotYours) => assert!(!owner),
                    Err(err) => {
                        assert!(owner, "{err:?} for a stranger");
                        self.ended(ei, err);
                    }
                }
            }
            Op::Header { s, e, name } => {
                let Some(ei) = self.pick_ev(e) else { return };
                let s = if s % 4 == 3 { (self.evs[ei].s + 1) % 3 } else { self.evs[ei].s };
                let name = HEADER_NAMES[usize::from(name) % HEADER_NAMES.len()];
                let (script, id) = (self.scripts[s].script, self.evs[ei].id);
                let value = rc(|| self.region.http_header(script, id, name));
                let e = &self.evs[ei];
                if value.is_empty() {
                    return;
                }
                assert!(value.len() <= 255, "a header value over 255 bytes");
                assert_eq!(e.s, s, "a header of another script's request");
                assert_eq!(e.answer, Answer::Open, "a header after the request ended");
                if e.c == usize::MAX || !self.clients[e.c].clean {
                    return;
                }
                let want = match name {
                    "x-script-url" => Some(self.grants[e.g].url.trim_end_matches('/').to_string()),
                    "x-path-info" => Some(format!("/c{}/r{}/g{}", e.c, e.n, e.g)),
                    "x-remote-ip" => Some(self.clients[e.c].remote.to_string()),
                    "host" => Some("127.0.0.1:8787".into()),
                    "nope" => Some(String::new()),
                    _ => None,
                };
                if let Some(want) = want {
                    assert_eq!(value, want, "{name}");
                }
            }
            Op::PeerClosed { c } => {
                let Some(c) = self.pick_client(c) else { return };
                if self.clients[c].gone {
                    return;
                }
                let conn = self.clients[c].conn;
                let result = rc(|| self.region.handle_input(now, Input::PeerClosed { conn }));
                if !self.clients[c].closed {
                    assert_eq!(result, Ok(()), "PeerClosed of an open connection");
                }
                let cl = &mut self.clients[c];
                cl.gone = true;
                cl.pending.clear();
            }
            Op::Hold { c, hold } => {
                let Some(c) = self.pick_client(c) else { return };
                self.clients[c].hold = hold;
                self.clients[c].was_held |= hold;
                if !hold && !self.clients[c].gone {
                    self.take(c);
                }
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(ms))),
            Op::AdvanceSecs { s } => self.advance(Duration::from_secs(u64::from(s))),
        }
        self.pump();
    }

    fn check_step(&self) {
        let largest = LARGEST.load(Relaxed);
        assert!(largest <= ALLOC_BOUND, "a Region call made a {largest}-byte allocation");
        // Requests reach only URLs the harness saw granted; a revoked URL's requests ended with it.
        let mut owners: Vec<usize> = self.grants.iter().filter(|g| g.revoked.is_none()).map(|g| g.s).collect();
        owners.sort_unstable();
        owners.dedup();
        let in_flight = self.region.http_requests_in_flight();
        let cap = owners.len() * self.config.http_in_flight;
        assert!(in_flight <= cap, "{in_flight} requests in flight for {} scripts with live URLs", owners.len());
    }

    // ---------------------------------------------------------------- the end

    fn finish(&mut self) {
        for c in 0..self.clients.len() {
            self.clients[c].hold = false;
            if !self.clients[c].gone {
                self.take(c);
            }
        }
        self.pump();
        let mut idle = 0;
        for _ in 0..2000 {
            let before = self.signature();
            for s in 0..2 {
                self.drain(s, usize::MAX, true);
            }
            for c in 0..self.clients.len() {
                while self.feed_chunk(c, MAX_READ) {
                    self.pump();
                }
            }
            self.pump();
            if self.signature() == before {
                idle += 1;
                if idle > 4 {
                    break;
                }
                self.advance(Duration::from_secs(31));
            } else {
                idle = 0;
            }
        }
        self.check_step();
        for c in 0..self.clients.len() {
            self.check_client(c);
        }
    }

    fn signature(&self) -> (usize, usize, usize, usize) {
        let resps = self.clients.iter().map(|c| c.resps.len()).sum();
        let pending = self.clients.iter().map(|c| c.pending.len()).sum();
        (self.evs.len(), resps, pending, self.grants.len())
    }

    /// The answers on a connection pair up with its events, in order.
    fn check_client(&self, c: usize) {
        let cl = &self.clients[c];
        let timeout = self.config.http_timeout;
        if !cl.clean && self.strays > 0 {
            return;
        }
        let mut j = 0;
        for (i, r) in cl.resps.iter().enumerate() {
            let last = i + 1 == cl.resps.len();
            if let Some(&ei) = cl.events.get(j) {
                let e = &self.evs[ei];
                let matched = match &e.answer {
                    Answer::Script { status, body, content_type } => {
                        let bodiless = *status < 200 || *status == 204 || *status == 304;
                        r.status == *status
                            && (bodiless
                                || (r.body == *body
                                    && r.header("content-type")
                                        == Some(content_type.header_value(self.config.allow_html))))
                    }
                    _ => self.timeout_resp(r) || (r.status == 503 && r.closes() && self.grants[e.g].revoked.is_some()),
                };
                if matched {
                    j += 1;
                    continue;
                }
            }
            // The timeout of a request whose event waited for room, or a closing refusal.
            if self.timeout_resp(r) || (last && (r.closes() || cl.closed)) {
                continue;
            }
            panic!(
                "c{c}: response {i} ({} {:?}) answers none of its requests; events {:?}",
                r.status,
                String::from_utf8_lossy(&r.body),
                cl.events.iter().map(|&e| &self.evs[e]).collect::<Vec<_>>()
            );
        }
        if j < cl.events.len() {
            assert!(cl.gone, "c{c}: request r{} became an event and was never answered", self.evs[cl.events[j]].n);
        }
        if !cl.clean {
            return;
        }
        // A clean connection: every request is complete and well-formed, so
        // response i answers request i, whatever the script saw of it.
        assert!(cl.resps.len() <= cl.reqs.len(), "c{c}: more answers than requests");
        if !cl.gone && !cl.closed {
            assert_eq!(cl.resps.len(), cl.reqs.len(), "c{c}: every request of a clean, open connection is answered");
        }
        for (i, (r, req)) in cl.resps.iter().zip(&cl.reqs).enumerate() {
            if r.header("content-type").is_some() {
                assert_eq!(r.closes(), req.close, "Connection: close on the answer to c{c} r{i}");
            }
            let Some(at) = req.delivered_at else {
                // A refusal may come after the head, before the body is all sent.
                assert!(r.closes(), "c{c} r{i} answered before it was all sent, and kept open");
                continue;
            };
            if self.timeout_resp(r) {
                if r.exact_time {
                    assert!(r.at >= at + timeout, "c{c} r{i} timed out early");
                }
                if let Some(rev) = req.g.and_then(|g| self.grants[g].revoked) {
                    assert!(rev >= at + timeout, "c{c} r{i}: in flight at revocation, yet left to time out");
                }
            }
        }
        for &ei in &cl.events {
            let e = &self.evs[ei];
            if let Answer::Script { status, body, .. } = &e.answer {
                match cl.resps.get(e.n) {
                    Some(r) => {
                        assert_eq!(r.status, *status, "c{c} r{}: the script's status", e.n);
                        if !(*status < 200 || *status == 204 || *status == 304) {
                            assert_eq!(&r.body, body, "c{c} r{}: the script's body", e.n);
                        }
                    }
                    None => assert!(cl.gone, "c{c} r{}: the script's answer never went out", e.n),
                }
            }
        }
    }
}

fuzz_target!(|scenario: Scenario| {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let debug = *DEBUG.get_or_init(|| std::env::var_os("HTTP_IN_DEBUG").is_some());
    if debug {
        eprintln!("{scenario:#?}");
    }
    LARGEST.store(0, Relaxed);
    let mut state = State::new(scenario.mode);
    for op in scenario.ops.iter().take(400) {
        state.step += 1;
        state.apply(op);
        state.check_step();
    }
    state.finish();
    if debug {
        for (c, cl) in state.clients.iter().enumerate() {
            let statuses: Vec<u16> = cl.resps.iter().map(|r| r.status).collect();
            let events: Vec<usize> = cl.events.iter().map(|&e| state.evs[e].n).collect();
            eprintln!(
                "c{c}: clean {} gone {} closed {} reqs {} events {events:?} answers {statuses:?}",
                cl.clean,
                cl.gone,
                cl.closed,
                cl.reqs.len()
            );
        }
        eprintln!("events {} strays {} grants {}", state.evs.len(), state.strays, state.grants.len());
    }
});
