//! Structure-aware, SPEC §14: a `Region` driven by arbitrary sequences of
//! server-sent-event stream opens, POSTs to send URLs (split anywhere,
//! chunked or not, any bytes, pipelined on keep-alive connections),
//! DELETEs, stream drops, reconnects with real or chosen `Last-Event-ID`s,
//! script sends and closes, revocations, unread sockets and time. Checked
//! after every step:
//!
//! - nothing panics; every stream connection's bytes are one valid SSE
//!   response: the exact head, then only well-formed events and heartbeat
//!   comments, nothing after a `close` event (and the connection closes);
//!   a 204 / refusal is a bare head with nothing after it;
//! - event ids on a stream carry the session's token and strictly increase;
//! - across resumes, the messages the client receives are exactly the
//!   script's sends in order, each byte-exact (the client resumes from the
//!   last id it parsed, or from one the fuzzer picks): none skipped, none
//!   duplicated; a close event says every send reached the client, except a
//!   `1001 cannot resume: events dropped`, which comes exactly when the
//!   resume memory (modelled event by event) lost one;
//! - a resume tells the script nothing (one `WS_OPEN` per session, no
//!   `WS_CLOSE` while the session is live);
//! - every complete POST / DELETE gets exactly one answer, one of SPEC §14's
//!   statuses, and nothing answers a request that never completed; every
//!   204'd POST body reaches the script once, in order, and nothing else does;
//! - no event of a revoked URL reaches its script, no send succeeds on an
//!   ended session, and no stream byte follows a revocation but its close.
#![no_main]

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lsl_websocket::{
    CloseError, Config, ConnectionId, EventKind, Input, Key, Output, Region, ScriptInfo, SeededEntropy, SendError,
    WebsocketRequest,
};
use lsl_websocket_fuzz::{chunks, path_of};

const SCRIPTS: usize = 2;
/// A known core bug, tolerated so the run goes on: an SSE session ended by
/// DELETE (or its resume window, or a gap) while its `WS_OPEN` is held back
/// by a full event queue gives the script a `WS_CLOSE` with no `WS_OPEN`
/// (a WebSocket session's `peer_closed` drains the held `WS_OPEN` first).
const TOLERATE_CLOSE_WITHOUT_OPEN: bool = false;
const GAP: &str = "cannot resume: events dropped";
const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n\
                    X-Accel-Buffering: no\r\n\r\n";
const ENDED: &str = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
/// What a stream request may be refused with.
const STREAM_REFUSALS: [u16; 6] = [400, 404, 429, 431, 503, 405];
/// What a request to a send URL may be answered with (finally).
const POST_STATUSES: [u16; 9] = [204, 400, 404, 405, 413, 429, 431, 501, 503];

#[derive(Arbitrary, Debug)]
struct Scenario {
    small: bool,
    ops: Vec<Op>,
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
            Txt::Short(n) => {
                let tails = ["", "\r\n", "\"\\", "\u{1}\u{2028}", "✓\n\n", "\r"];
                format!("t{n}{}", tails[usize::from(*n) % tails.len()])
            }
            Txt::Long(n) => "x".repeat(usize::from(*n) % 3000),
            Txt::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Body {
    Text(Txt),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum LastId {
    None,
    /// The last id the client parsed on that session.
    Real(u8),
    /// That session's token with a number at most its sends.
    Chosen(u8, u16),
    Garbage(String),
}

#[derive(Arbitrary, Debug)]
enum To {
    Session(u8),
    Unknown,
    Garbage(String),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        url: u8,
        id: LastId,
        split: Option<u8>,
    },
    Post {
        to: To,
        body: Body,
        chunked: bool,
        expect: bool,
        close: bool,
        split: Vec<u8>,
        reuse: Option<u8>,
        cut: Option<u16>,
    },
    Delete {
        to: To,
        reuse: Option<u8>,
    },
    Raw {
        c: u8,
        bytes: Vec<u8>,
    },
    Drop {
        c: u8,
    },
    Hold {
        c: u8,
        hold: bool,
    },
    Send {
        s: u8,
        text: Txt,
    },
    Close {
        s: u8,
        code: u16,
        reason: u8,
    },
    Drain {
        script: u8,
        n: u8,
    },
    Reset {
        script: u8,
    },
    OwnerChanged {
        script: u8,
    },
    Release {
        url: u8,
    },
    RequestUrl {
        script: u8,
    },
    Advance {
        ms: u16,
    },
    AdvanceSecs {
        s: u8,
    },
}

struct Url {
    script: usize,
    url: String,
    revoked: bool,
}

/// One SSE session as the model knows it.
struct Session {
    token: String,
    url: usize,
    key: Option<Key>,
    /// The script's successful sends, id n = index + 1.
    sent: Vec<String>,
    /// The resume memory: (id, event bytes), newest last, and their total.
    replay: VecDeque<(u64, usize)>,
    replay_bytes: usize,
    /// The last message id the client parsed (or claimed on a reconnect).
    pos: u64,
    /// The connection carrying the stream, per the model.
    conn: Option<usize>,
    /// When the stream's connection went away.
    detached_at: Option<Instant>,
    /// The session is known to be over.
    ended: bool,
    /// 204'd POST bodies not yet seen by the script.
    posted: VecDeque<String>,
    open_seen: bool,
    close_seen: bool,
}

#[derive(Debug)]
enum Req {
    Post { session: Option<usize>, body: Vec<u8>, complete: bool },
    Delete { session: Option<usize> },
}

enum Role {
    Stream {
        url: usize,
        /// The session (and the number) its `Last-Event-ID` named, if a model one.
        asked: Option<(usize, u64)>,
        status: Option<u16>,
        session: Option<usize>,
        last_id: Option<u64>,
        close_event: bool,
        /// A resume whose replay is expected to end in a gap close.
        gap: bool,
    },
    Post {
        reqs: VecDeque<Req>,
        /// Bytes of unknown meaning were sent: answers after those to the
        /// `before_raw` requests outstanding then are not checked.
        raw: bool,
        before_raw: usize,
        /// A final answer that closes the connection came.
        done: bool,
        /// A request was left incomplete: nothing more may be sent.
        stuck: bool,
    },
}

struct Conn {
    id: ConnectionId,
    role: Role,
    buf: Vec<u8>,
    hold: bool,
    closed: bool,
    gone: bool,
}

struct State {
    region: Region,
    now: Instant,
    config: Config,
    scripts: Vec<ScriptInfo>,
    urls: Vec<Url>,
    sessions: Vec<Session>,
    conns: Vec<Conn>,
    requests: Vec<(Key, usize)>,
}

fn key(tag: u8, n: usize) -> Key {
    let mut b = [tag; 16];
    b[8..].copy_from_slice(&(n as u64).to_be_bytes());
    Key::from_bytes(b)
}

/// `text` as the JSON string SPEC §14 sends.
fn json(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Decodes a JSON string literal (panics on anything else).
fn unjson(s: &str) -> String {
    let inner =
        s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or_else(|| panic!("not a JSON string: {s:?}"));
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        match c {
            '"' => panic!("unescaped quote in {s:?}"),
            c if (c as u32) < 0x20 => panic!("raw control character in {s:?}"),
            '\\' => match it.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('/') => out.push('/'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('u') => {
                    let hex: String = it.by_ref().take(4).collect();
                    let n = u32::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad \\u in {s:?}"));
                    out.push(char::from_u32(n).unwrap_or_else(|| panic!("surrogate \\u{hex} in {s:?}")));
                }
                other => panic!("bad escape {other:?} in {s:?}"),
            },
            c => out.push(c),
        }
    }
    out
}

/// Parses `{"code":N,"reason":"…"}`.
fn close_data(data: &str) -> (u16, String) {
    let rest = data.strip_prefix("{\"code\":").unwrap_or_else(|| panic!("close data {data:?}"));
    let (code, rest) = rest.split_once(",\"reason\":").unwrap_or_else(|| panic!("close data {data:?}"));
    let reason = rest.strip_suffix('}').unwrap_or_else(|| panic!("close data {data:?}"));
    (code.parse().unwrap_or_else(|_| panic!("close code {code:?}")), unjson(reason))
}

/// The status of a response head, checking its form.
fn status_of(head: &str) -> u16 {
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    assert!(head.ends_with("\r\n\r\n"), "{head:?}");
    status
}

impl State {
    fn new(small: bool) -> State {
        let config = if small {
            Config {
                event_queue: 3,
                outgoing_buffer: 600,
                sessions_per_url: 3,
                max_message: 48,
                handshakes_per_second: 6,
                ..Config::default()
            }
        } else {
            Config { outgoing_buffer: 4096, handshakes_per_second: 1_000_000, ..Config::default() }
        };
        let now = Instant::now();
        let region = Region::new(config.clone(), Box::new(SeededEntropy::new(5)), now);
        let scripts = (0..SCRIPTS)
            .map(|s| ScriptInfo { script: key(0xa0, s), object: key(0xb0, s), owner: key(0xc0, s) })
            .collect();
        let mut st = State {
            region,
            now,
            config,
            scripts,
            urls: Vec::new(),
            sessions: Vec::new(),
            conns: Vec::new(),
            requests: Vec::new(),
        };
        for s in 0..SCRIPTS {
            st.request_url(s);
        }
        st
    }

    fn request_url(&mut self, s: usize) {
        let k = self.region.request_websocket(self.scripts[s], &WebsocketRequest::default());
        self.requests.push((k, s));
        self.pump();
        self.drain(s, usize::MAX);
    }

    // ---- model helpers

    /// Whether the session is certainly still live (a resume must find it).
    fn live(&self, i: usize) -> bool {
        let s = &self.sessions[i];
        if s.ended || self.urls[s.url].revoked {
            return false;
        }
        match (s.conn, s.detached_at) {
            (Some(c), _) => !self.conns[c].gone && !self.conns[c].closed,
            (None, Some(at)) => self.now < at + self.config.idle_interval,
            (None, None) => false,
        }
    }

    fn end(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        s.ended = true;
    }

    fn wire_len(token: &str, n: u64, text: &str) -> usize {
        format!("id: {token}-{n}\ndata: \n\n").len() + json(text).len()
    }

    // ---- outputs

    fn pump(&mut self) {
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
                    if !self.conns[c].hold {
                        self.take(c);
                    }
                    self.conns[c].closed = true;
                }
                Output::PauseReading(_) | Output::ResumeReading(_) | Output::Events(_) => {}
                Output::Revoked { url, .. } => {
                    if let Some(u) = self.urls.iter().position(|u| u.url == url) {
                        assert!(self.urls[u].revoked, "Revoked({url}) of a URL the model holds live");
                    }
                }
                Output::ListenerStopped { .. } => panic!("no listener was started"),
                Output::HttpRequest { .. } => panic!("HttpRequest without serve_other_paths"),
            }
        }
    }

    fn conn(&self, id: ConnectionId) -> usize {
        usize::try_from(id.0).ok().filter(|&c| c < self.conns.len()).expect("a connection we opened")
    }

    fn take(&mut self, c: usize) {
        let id = self.conns[c].id;
        while let Some(bytes) = self.region.poll_transmit(id) {
            if self.conns[c].gone {
                continue;
            }
            self.conns[c].buf.extend_from_slice(&bytes);
            self.parse(c);
        }
    }

    fn parse(&mut self, c: usize) {
        if matches!(self.conns[c].role, Role::Stream { .. }) {
            self.parse_stream(c);
        } else {
            self.parse_post(c);
        }
    }

    fn parse_post(&mut self, c: usize) {
        if let Role::Post { raw: true, before_raw: 0, .. } = self.conns[c].role {
            // Bytes of unknown meaning: the connection may have become anything.
            self.conns[c].buf.clear();
            return;
        }
        loop {
            let conn = &mut self.conns[c];
            let Some(end) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                assert!(conn.buf.is_empty(), "partial response: {:?}", String::from_utf8_lossy(&conn.buf));
                return;
            };
            let head = String::from_utf8(conn.buf.drain(..end + 4).collect()).expect("ASCII head");
            let status = status_of(&head);
            let Role::Post { reqs, raw, done, before_raw, .. } = &mut conn.role else { unreachable!() };
            assert!(!*done, "a response after the connection's last: {head:?}");
            if status == 100 {
                assert_eq!(head, "HTTP/1.1 100 Continue\r\n\r\n");
                continue;
            }
            assert!(POST_STATUSES.contains(&status), "status {status} on a send URL: {head:?}");
            if matches!(status, 429 | 503) {
                assert!(head.contains("\r\nRetry-After: 1\r\n"), "{head:?}");
            }
            if status != 204 {
                assert!(
                    head.contains("\r\nContent-Length: 0\r\n") && head.contains("\r\nConnection: close\r\n"),
                    "{head:?}"
                );
                *done = true;
            } else if head.contains("Connection: close") {
                *done = true;
            }
            let req = reqs.pop_front();
            let raw = *raw && *before_raw == 0;
            *before_raw = before_raw.saturating_sub(1);
            match req {
                None => assert!(raw, "an answer to no request: {head:?}"),
                Some(Req::Post { session, body, complete }) => {
                    if !complete {
                        assert!(raw || status != 204, "204 to a POST whose body never completed");
                    }
                    self.answered_post(status, session, body, complete && !raw);
                }
                Some(Req::Delete { session }) => {
                    assert!(matches!(status, 204 | 404 | 429), "{status} to a DELETE");
                    if status == 204 {
                        let i = session.expect("DELETE 204 for a token the model never saw");
                        self.end(i);
                    } else if status == 404
                        && let Some(i) = session
                    {
                        assert!(!self.live(i), "DELETE of a live session answered 404");
                    }
                }
            }
        }
    }

    fn answered_post(&mut self, status: u16, session: Option<usize>, body: Vec<u8>, exact: bool) {
        let max = self.config.max_message;
        let utf8 = String::from_utf8(body.clone()).ok();
        if status == 204 {
            let i = session.expect("204 to a POST to a token the model never saw");
            let text = utf8.expect("204 to a POST whose body is not UTF-8");
            assert!(text.len() <= max, "204 to a POST over the cap");
            assert!(!self.sessions[i].ended, "204 to a POST to an ended session");
            self.sessions[i].posted.push_back(text);
            return;
        }
        if !exact {
            return;
        }
        match status {
            413 => assert!(body.len() > max, "413 to a {} byte body", body.len()),
            400 => assert!(utf8.is_none() && body.len() <= max, "400 to a valid body"),
            404 => assert!(session.is_none_or(|i| !self.live(i)), "404 to a POST to a live session"),
            429 | 503 => {}
            _ => panic!("{status} to a well-formed POST"),
        }
    }

    fn parse_stream(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        let Role::Stream { status, .. } = &mut conn.role else { unreachable!() };
        if status.is_none() {
            let end = conn.buf.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head at once") + 4;
            let head = String::from_utf8(conn.buf.drain(..end).collect()).expect("ASCII head");
            let code = status_of(&head);
            *status = Some(code);
            match code {
                200 => {
                    assert_eq!(head, HEAD);
                    let fresh = conn.buf.starts_with(b"retry: 2000\n");
                    self.stream_opened(c, fresh);
                }
                204 => {
                    assert_eq!(head, ENDED);
                    self.stream_ended(c);
                }
                other => {
                    assert!(STREAM_REFUSALS.contains(&other), "status {other} to a stream request: {head:?}");
                    assert!(head.contains("\r\nContent-Length: 0\r\n"), "{head:?}");
                    self.stream_refused(c, other);
                }
            }
        }
        loop {
            let conn = &mut self.conns[c];
            let Role::Stream { status, .. } = &conn.role else { unreachable!() };
            if *status != Some(200) {
                assert!(conn.buf.is_empty(), "bytes after a {status:?} answer to a stream request");
                return;
            }
            let Some(end) = conn.buf.windows(2).position(|w| w == b"\n\n") else {
                assert!(conn.buf.is_empty(), "a partial event: {:?}", String::from_utf8_lossy(&conn.buf));
                return;
            };
            let block = String::from_utf8(conn.buf.drain(..end + 2).collect()).expect("UTF-8 events");
            self.event(c, &block[..end]);
        }
    }

    /// A 200 head: a new session (`fresh`) or a resume.
    fn stream_opened(&mut self, c: usize, fresh: bool) {
        let Role::Stream { url, asked, .. } = &self.conns[c].role else { unreachable!() };
        let (url, asked) = (*url, *asked);
        assert!(!self.urls[url].revoked, "a stream on a revoked URL");
        if fresh {
            if let Some((i, _)) = asked {
                let same_url = self.sessions[i].url == url;
                assert!(!(same_url && self.live(i)), "a new session where session {i} should have resumed");
            }
            return;
        }
        let (i, n) = asked.expect("a resume without a model Last-Event-ID");
        let s = &self.sessions[i];
        assert_eq!(s.url, url, "a resume on another URL");
        assert!(!s.ended, "a resume of an ended session");
        let oldest = s.replay.front().map_or(s.sent.len() as u64 + 1, |(n, _)| *n);
        if let Role::Stream { gap, .. } = &mut self.conns[c].role {
            *gap = n + 1 < oldest;
        }
        // The old stream, if still open, is replaced.
        if let Some(old) = s.conn
            && old != c
        {
            assert!(self.conns[old].gone || self.conns[old].closed, "the replaced stream {old} was not closed");
        }
        let s = &mut self.sessions[i];
        s.pos = n;
        s.conn = Some(c);
        s.detached_at = None;
        let Role::Stream { session, .. } = &mut self.conns[c].role else { unreachable!() };
        *session = Some(i);
    }

    fn stream_ended(&mut self, c: usize) {
        let Role::Stream { url, asked, .. } = &self.conns[c].role else { unreachable!() };
        let (i, _) = asked.expect("204 to a stream request that named no session");
        assert!(!self.urls[*url].revoked, "204 rather than 404 on a revoked URL");
        assert!(!(self.sessions[i].url == *url && self.live(i)), "204 to a resume of a live session");
        self.end(i);
    }

    fn stream_refused(&mut self, c: usize, status: u16) {
        let Role::Stream { url, .. } = &self.conns[c].role else { unreachable!() };
        match status {
            404 => assert!(self.urls[*url].revoked, "404 to a stream on a live URL"),
            429 | 503 => {}
            _ => panic!("{status} to a well-formed stream request"),
        }
    }

    /// One event block (without its blank line) on stream `c`.
    fn event(&mut self, c: usize, block: &str) {
        assert!(!block.contains('\r'), "CR in an event: {block:?}");
        let Role::Stream { session, last_id, close_event, gap, url, .. } = &mut self.conns[c].role else {
            unreachable!()
        };
        assert!(!*close_event, "bytes after the close event: {block:?}");
        if block.starts_with(':') {
            assert_eq!(block, ": heartbeat");
            return;
        }
        let url = *url;
        let mut lines: Vec<&str> = block.split('\n').collect();
        if lines[0].starts_with("retry:") {
            assert_eq!(lines[0], "retry: 2000");
            assert!(last_id.is_none(), "retry after the first event");
            lines.remove(0);
        }
        let id = lines.first().and_then(|l| l.strip_prefix("id: ")).unwrap_or_else(|| panic!("no id: {block:?}"));
        let (token, n) = id.rsplit_once('-').unwrap_or_else(|| panic!("id {id:?}"));
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("id number {id:?}"));
        if let Some(last) = *last_id {
            assert!(n > last, "event ids not increasing: {last} then {n}");
        }
        *last_id = Some(n);
        let (name, data) = match &lines[1..] {
            [d] => ("message", *d),
            [e, d] => (e.strip_prefix("event: ").unwrap_or_else(|| panic!("{block:?}")), *d),
            _ => panic!("malformed event: {block:?}"),
        };
        let data = data.strip_prefix("data: ").unwrap_or_else(|| panic!("no data: {block:?}"));
        match name {
            "session" => {
                assert!(session.is_none() && n == 0, "a session event that does not open the stream: {block:?}");
                assert_eq!(data, format!("{{\"send\":\"/lslsse/{token}/\"}}"));
                assert!(self.sessions.iter().all(|s| s.token != token), "a token minted twice");
                let i = self.sessions.len();
                *session = Some(i);
                self.sessions.push(Session {
                    token: token.to_string(),
                    url,
                    key: None,
                    sent: Vec::new(),
                    replay: VecDeque::new(),
                    replay_bytes: 0,
                    pos: 0,
                    conn: Some(c),
                    detached_at: None,
                    ended: false,
                    posted: VecDeque::new(),
                    open_seen: false,
                    close_seen: false,
                });
            }
            "message" => {
                let gap = *gap;
                let i = session.expect("a message event before the session");
                assert!(!gap, "a replayed message where a gap close was due");
                let s = &mut self.sessions[i];
                assert_eq!(token, s.token);
                assert_eq!(n, s.pos + 1, "message {n} after {}: skipped or duplicated", s.pos);
                let text = s.sent.get(n as usize - 1).unwrap_or_else(|| panic!("message {n} never sent"));
                assert_eq!(unjson(data), *text, "message {n}");
                assert_eq!(data, json(text), "message {n}'s encoding");
                s.pos = n;
            }
            "close" => {
                let gap = *gap;
                *close_event = true;
                let i = session.expect("a close event before the session");
                let (code, reason) = close_data(data);
                let s = &self.sessions[i];
                assert_eq!(token, s.token);
                assert_eq!(n, s.sent.len() as u64 + 1, "the close event's id");
                assert!(matches!(code, 1000 | 1001 | 3000..=4999), "close code {code}");
                if reason == GAP {
                    assert!(gap, "a gap close where the replay was complete");
                    assert_eq!(code, 1001);
                } else {
                    assert!(!gap, "a {code} close where a gap close was due");
                    assert_eq!(s.pos, s.sent.len() as u64, "closed with sends the client never got");
                }
                self.end(i);
            }
            other => panic!("event {other:?}"),
        }
    }

    // ---- events

    fn drain(&mut self, s: usize, n: usize) {
        let script = self.scripts[s].script;
        for _ in 0..n {
            let Some(e) = self.region.poll_event(script) else { break };
            self.pump();
            match e.kind {
                EventKind::UrlGranted => {
                    let at = self.requests.iter().position(|(k, _)| *k == e.id).expect("our request");
                    assert_eq!(self.requests[at].1, s);
                    self.urls.push(Url { script: s, url: e.data.to_string(), revoked: false });
                }
                EventKind::UrlDenied => {}
                EventKind::Open => {
                    if std::env::var_os("SSE_DEBUG").is_some() {
                        eprintln!("WS_OPEN {e:?}");
                    }
                    let c: usize = e.data.strip_prefix("/s").and_then(|n| n.parse().ok()).expect("path info /s<n>");
                    let Role::Stream { session, url, .. } = &self.conns[c].role else { panic!("WS_OPEN of a POST") };
                    assert_eq!(self.urls[*url].script, s, "WS_OPEN to a script that does not own the URL");
                    assert!(!self.urls[*url].revoked, "WS_OPEN of a revoked URL");
                    let i = session.expect("WS_OPEN for a stream whose session event never came");
                    assert!(!self.sessions[i].open_seen, "a second WS_OPEN for one session");
                    assert!(self.sessions.iter().all(|x| x.key != Some(e.id)), "a session key twice");
                    self.sessions[i].open_seen = true;
                    self.sessions[i].key = Some(e.id);
                }
                EventKind::Close
                    if TOLERATE_CLOSE_WITHOUT_OPEN && self.sessions.iter().all(|x| x.key != Some(e.id)) =>
                {
                    // Core bug (reported): an SSE session that ends while its
                    // WS_OPEN waits for room in a full queue sends WS_CLOSE alone.
                }
                EventKind::Text | EventKind::Close => {
                    let i = self
                        .sessions
                        .iter()
                        .position(|x| x.key == Some(e.id))
                        .unwrap_or_else(|| panic!("an event of an unknown session: {e:?}"));
                    let url = self.sessions[i].url;
                    assert_eq!(self.urls[url].script, s, "an event to a script that does not own the URL");
                    assert!(!self.urls[url].revoked, "an event of a revoked URL: {e:?}");
                    assert!(!self.sessions[i].close_seen, "an event after WS_CLOSE: {e:?}");
                    if e.kind == EventKind::Text {
                        let want = self.sessions[i].posted.pop_front();
                        assert_eq!(want.as_deref(), Some(&*e.data), "WS_TEXT that was no 204'd POST, or out of order");
                    } else {
                        assert!(!self.live(i), "WS_CLOSE of a session the model holds live: {e:?}");
                        self.sessions[i].close_seen = true;
                        self.end(i);
                    }
                }
                _ => panic!("unexpected event {e:?}"),
            }
        }
    }

    // ---- time

    fn advance(&mut self, by: Duration) {
        let to = self.now + by;
        for _ in 0..10_000 {
            match self.region.poll_timeout() {
                Some(at) if at <= to => {
                    self.now = self.now.max(at);
                    self.expire();
                    self.region.handle_input(self.now, Input::Timeout).unwrap();
                    self.pump();
                }
                _ => {
                    self.now = to;
                    self.expire();
                    return;
                }
            }
        }
        panic!("poll_timeout keeps reporting a due deadline");
    }

    /// Detached sessions past their resume window are over.
    fn expire(&mut self) {
        for i in 0..self.sessions.len() {
            let s = &self.sessions[i];
            if s.conn.is_none() && s.detached_at.is_some_and(|at| self.now >= at + self.config.idle_interval) {
                self.end(i);
            }
        }
    }

    // ---- clients

    fn accept(&mut self, role: Role) -> usize {
        let c = self.conns.len();
        let id = ConnectionId(c as u64);
        self.conns.push(Conn { id, role, buf: Vec::new(), hold: false, closed: false, gone: false });
        let remote: IpAddr = [198, 51, 100, (c % 3) as u8].into();
        self.region.handle_input(self.now, Input::Accepted { conn: id, remote }).unwrap();
        self.pump();
        c
    }

    fn feed(&mut self, c: usize, bytes: &[u8]) {
        let conn = &self.conns[c];
        if conn.gone || conn.closed || bytes.is_empty() {
            return;
        }
        let id = conn.id;
        let _ = self.region.handle_input(self.now, Input::Received { conn: id, data: bytes });
        self.pump();
    }

    fn session_of(&self, s: u8) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| usize::from(s) % self.sessions.len())
    }

    fn open(&mut self, url: u8, id: &LastId, split: Option<u8>) {
        let url = usize::from(url) % self.urls.len();
        let (header, asked) = match id {
            LastId::None => (None, None),
            LastId::Real(s) => match self.session_of(*s) {
                Some(i) => (
                    Some(format!("{}-{}", self.sessions[i].token, self.sessions[i].pos)),
                    Some((i, self.sessions[i].pos)),
                ),
                None => (None, None),
            },
            LastId::Chosen(s, n) => match self.session_of(*s) {
                Some(i) => {
                    let n = u64::from(*n) % (self.sessions[i].sent.len() as u64 + 1);
                    (Some(format!("{}-{n}", self.sessions[i].token)), Some((i, n)))
                }
                None => (None, None),
            },
            LastId::Garbage(g) => {
                (Some(g.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(64).collect()), None)
            }
        };
        let c = self.accept(Role::Stream {
            url,
            asked,
            status: None,
            session: None,
            last_id: None,
            close_event: false,
            gap: false,
        });
        let mut head = format!(
            "GET {}s{c} HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
            path_of(&self.urls[url].url)
        );
        if let Some(h) = header {
            head.push_str(&format!("Last-Event-ID: {h}\r\n"));
        }
        head.push_str("\r\n");
        let head = head.into_bytes();
        let cut = split.map_or(head.len(), |p| usize::from(p).min(head.len()));
        self.feed(c, &head[..cut]);
        self.feed(c, &head[cut..]);
        let Role::Stream { status, gap, session, .. } = &self.conns[c].role else { unreachable!() };
        let status = status.unwrap_or_else(|| panic!("a complete stream request left unanswered"));
        if status == 200 {
            let i = session.expect("a 200 stream names its session");
            if *gap {
                assert!(self.sessions[i].ended, "a resume with a gap did not close");
            } else if !self.sessions[i].ended {
                assert_eq!(
                    self.sessions[i].pos,
                    self.sessions[i].sent.len() as u64,
                    "a resume that replayed too little"
                );
            }
        }
    }

    fn post_conn(&mut self, reuse: Option<u8>) -> usize {
        if let Some(r) = reuse {
            let open: Vec<usize> = (0..self.conns.len())
                .filter(|&c| {
                    let conn = &self.conns[c];
                    matches!(conn.role, Role::Post { done: false, stuck: false, .. }) && !conn.gone && !conn.closed
                })
                .collect();
            if !open.is_empty() {
                return open[usize::from(r) % open.len()];
            }
        }
        self.accept(Role::Post { reqs: VecDeque::new(), raw: false, before_raw: 0, done: false, stuck: false })
    }

    fn target(&self, to: &To) -> (String, Option<usize>) {
        match to {
            To::Session(s) => match self.session_of(*s) {
                Some(i) => (self.sessions[i].token.clone(), Some(i)),
                None => ("00000000-0000-4000-8000-000000000000".into(), None),
            },
            To::Unknown => ("5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a".into(), None),
            To::Garbage(g) => (g.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect(), None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn post(
        &mut self,
        to: &To,
        body: &Body,
        chunked: bool,
        expect: bool,
        close: bool,
        split: &[u8],
        reuse: Option<u8>,
        cut: Option<u16>,
    ) {
        if self.conns.len() >= 200 {
            return;
        }
        let (token, session) = self.target(to);
        let body: Vec<u8> = match body {
            Body::Text(t) => t.text().into_bytes(),
            Body::Bytes(b) => b.clone(),
        };
        let mut req = format!("POST /lslsse/{token}/ HTTP/1.1\r\nHost: 127.0.0.1:8787\r\n");
        if chunked {
            req.push_str("Transfer-Encoding: chunked\r\n");
        } else {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if expect {
            req.push_str("Expect: 100-continue\r\n");
        }
        if close {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if chunked {
            for part in chunks(&body, split) {
                if !part.is_empty() {
                    bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    bytes.extend_from_slice(part);
                    bytes.extend_from_slice(b"\r\n");
                }
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        } else {
            bytes.extend_from_slice(&body);
        }
        let c = self.post_conn(reuse);
        let cut = cut.map(usize::from).filter(|&n| n < bytes.len());
        let sent = &bytes[..cut.unwrap_or(bytes.len())];
        if let Role::Post { reqs, stuck, .. } = &mut self.conns[c].role {
            reqs.push_back(Req::Post { session, body, complete: cut.is_none() });
            *stuck |= cut.is_some();
        }
        for piece in chunks(sent, split) {
            self.feed(c, piece);
        }
    }

    fn delete(&mut self, to: &To, reuse: Option<u8>) {
        if self.conns.len() >= 200 {
            return;
        }
        let (token, session) = self.target(to);
        let c = self.post_conn(reuse);
        if let Role::Post { reqs, .. } = &mut self.conns[c].role {
            reqs.push_back(Req::Delete { session });
        }
        self.feed(c, format!("DELETE /lslsse/{token}/ HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }

    fn pick(&self, c: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| usize::from(c) % self.conns.len())
    }

    // ---- one step

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Open { url, id, split } => {
                if self.conns.len() < 200 {
                    self.open(*url, id, *split);
                }
            }
            Op::Post { to, body, chunked, expect, close, split, reuse, cut } => {
                self.post(to, body, *chunked, *expect, *close, split, *reuse, *cut)
            }
            Op::Delete { to, reuse } => self.delete(to, *reuse),
            Op::Raw { c, bytes } => {
                if let Some(c) = self.pick(*c) {
                    if let Role::Post { raw, before_raw, reqs, .. } = &mut self.conns[c].role
                        && !bytes.is_empty()
                        && !*raw
                    {
                        *raw = true;
                        *before_raw = reqs.len();
                    }
                    self.feed(c, bytes);
                }
            }
            Op::Drop { c } => {
                if let Some(c) = self.pick(*c)
                    && !self.conns[c].gone
                {
                    self.conns[c].gone = true;
                    if let Role::Stream { session: Some(i), .. } = self.conns[c].role
                        && self.sessions[i].conn == Some(c)
                    {
                        self.sessions[i].conn = None;
                        self.sessions[i].detached_at = Some(now);
                    }
                    let id = self.conns[c].id;
                    let _ = self.region.handle_input(now, Input::PeerClosed { conn: id });
                }
            }
            Op::Hold { c, hold } => {
                // Streams only: a POST's answer read late would look like one given late.
                if let Some(c) = self.pick(*c)
                    && matches!(self.conns[c].role, Role::Stream { .. })
                {
                    self.conns[c].hold = *hold;
                    if !hold {
                        self.take(c);
                    }
                }
            }
            Op::Send { s, text } => {
                let Some(i) = self.session_of(*s) else { return };
                let Some(k) = self.sessions[i].key else { return };
                let script = self.scripts[self.urls[self.sessions[i].url].script].script;
                let text = text.text();
                let result = self.region.websocket_send(script, k, &text);
                if self.sessions[i].ended || self.urls[self.sessions[i].url].revoked {
                    assert_eq!(result, Err(SendError::NoSession), "a send on an ended session");
                }
                match result {
                    Ok(()) => {
                        let limit = self.config.outgoing_buffer;
                        let s = &mut self.sessions[i];
                        s.sent.push(text);
                        let n = s.sent.len() as u64;
                        let len = State::wire_len(&s.token, n, &s.sent[n as usize - 1]);
                        s.replay.push_back((n, len));
                        s.replay_bytes += len;
                        while s.replay_bytes > limit && s.replay.len() > 1 {
                            let (_, old) = s.replay.pop_front().unwrap();
                            s.replay_bytes -= old;
                        }
                    }
                    Err(SendError::NoSession) => assert!(!self.live(i), "NoSession for a live session"),
                    Err(SendError::Busy | SendError::TooLarge) => {}
                    Err(e) => panic!("send: {e:?}"),
                }
            }
            Op::Close { s, code, reason } => {
                let Some(i) = self.session_of(*s) else { return };
                let Some(k) = self.sessions[i].key else { return };
                let script = self.scripts[self.urls[self.sessions[i].url].script].script;
                let code = if code % 2 == 0 { 1000 } else { 3000 + code % 2000 };
                let reason = "r".repeat(usize::from(*reason) % 40);
                let result = self.region.websocket_close(now, script, k, code, &reason);
                match result {
                    Ok(()) => {
                        assert!(!self.sessions[i].ended, "close of an ended session");
                        self.end(i);
                    }
                    Err(CloseError::NoSession) => assert!(!self.live(i), "NoSession closing a live session"),
                    Err(e) => panic!("close: {e:?}"),
                }
            }
            Op::Drain { script, n } => self.drain(usize::from(*script) % SCRIPTS, usize::from(*n)),
            Op::Reset { script } => {
                let s = usize::from(*script) % SCRIPTS;
                self.revoke(|u| u.script == s);
                self.region.script_reset(now, self.scripts[s].script);
            }
            Op::OwnerChanged { script } => {
                let s = usize::from(*script) % SCRIPTS;
                self.revoke(|u| u.script == s);
                self.region.owner_changed(now, self.scripts[s].object);
                self.scripts[s].owner = key(0xc1, self.urls.len() + self.conns.len());
            }
            Op::Release { url } => {
                let u = usize::from(*url) % self.urls.len();
                self.urls[u].revoked = true;
                for i in 0..self.sessions.len() {
                    if self.sessions[i].url == u {
                        self.end(i);
                    }
                }
                let (script, url) = (self.scripts[self.urls[u].script].script, self.urls[u].url.clone());
                let _ = self.region.release_websocket(now, script, &url);
            }
            Op::RequestUrl { script } => {
                if self.urls.len() < 12 {
                    self.request_url(usize::from(*script) % SCRIPTS);
                }
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(*ms))),
            Op::AdvanceSecs { s } => self.advance(Duration::from_secs(u64::from(*s % 64))),
        }
        self.pump();
        self.check();
    }

    fn revoke(&mut self, which: impl Fn(&Url) -> bool) {
        for u in 0..self.urls.len() {
            if which(&self.urls[u]) {
                self.urls[u].revoked = true;
            }
        }
        for i in 0..self.sessions.len() {
            if self.urls[self.sessions[i].url].revoked {
                self.end(i);
            }
        }
    }

    /// After every step: a stream whose session ended, read by its client, has closed.
    fn check(&self) {
        for (c, conn) in self.conns.iter().enumerate() {
            if let Role::Stream { close_event: true, .. } = conn.role {
                assert!(conn.closed, "stream {c}: no Close after its close event");
            }
            if let Role::Stream { session: Some(i), close_event: false, .. } = conn.role
                && !conn.hold
                && !conn.gone
                && !conn.closed
                && self.sessions[i].conn == Some(c)
                && self.sessions[i].ended
                && self.urls[self.sessions[i].url].revoked
            {
                panic!("stream {c} of a revoked URL got no close event");
            }
        }
    }

    fn finish(&mut self) {
        for c in 0..self.conns.len() {
            self.conns[c].hold = false;
            self.take(c);
        }
        for s in 0..SCRIPTS {
            self.drain(s, usize::MAX);
        }
        // Every 204'd body reached its script, unless its URL was revoked.
        for s in &self.sessions {
            if !self.urls[s.url].revoked {
                assert!(s.posted.is_empty(), "204'd POST bodies never reached the script: {:?}", s.posted);
            }
        }
        // Every complete request on a connection that is still open was answered.
        for (c, conn) in self.conns.iter().enumerate() {
            if let Role::Post { reqs, raw: false, done: false, stuck: false, .. } = &conn.role
                && !conn.gone
                && !conn.closed
            {
                assert!(reqs.is_empty(), "connection {c}: requests never answered: {reqs:?}");
            }
        }
        self.advance(Duration::from_secs(120));
        for s in 0..SCRIPTS {
            self.drain(s, usize::MAX);
        }
    }
}

fuzz_target!(|scenario: Scenario| {
    if std::env::var_os("SSE_DEBUG").is_some() {
        eprintln!("{scenario:#?}");
    }
    let mut state = State::new(scenario.small);
    for op in scenario.ops.iter().take(300) {
        state.apply(op);
    }
    state.finish();
    if std::env::var_os("SSE_DEBUG").is_some() {
        for (i, s) in state.sessions.iter().enumerate() {
            eprintln!(
                "session {i}: url {} sent {} pos {} ended {} open {} close {}",
                s.url,
                s.sent.len(),
                s.pos,
                s.ended,
                s.open_seen,
                s.close_seen
            );
        }
        for (c, conn) in state.conns.iter().enumerate() {
            let what = match &conn.role {
                Role::Stream { status, session, last_id, close_event, gap, .. } => {
                    format!("stream {status:?} session {session:?} last {last_id:?} close {close_event} gap {gap}")
                }
                Role::Post { reqs, raw, done, stuck, .. } => {
                    format!("post left {} raw {raw} done {done} stuck {stuck}", reqs.len())
                }
            };
            eprintln!("conn {c}: {what} closed {} gone {}", conn.closed, conn.gone);
        }
    }
});
