//! Structure-aware: a `Region` driven by arbitrary sequences of script calls,
//! lifecycle events, client connections, bytes, frames and closes, and the
//! passing of time. Checked after every step:
//!
//! - no event of a revoked URL (or of a session of one) reaches its script
//!   after the revocation, also none that was queued before it;
//! - no `WS_OPEN`/`WS_TEXT`/`WS_CLOSE` reaches a script that does not own the
//!   object URL or does not listen on the region domain it names;
//! - nothing follows a session's `WS_CLOSE` for that session key;
//! - a stale or foreign object-scope session key gives `NoSession`, `""`;
//! - handshakes to revoked URLs get 404 (or 429), to live ones 101/503/429;
//! - every byte after each 101 parses as valid server frames, and region
//!   endpoint text frames as server envelopes;
//! - the same session invariants hold for line clients (SPEC §13) and event
//!   streams (SPEC §14) of the same URLs: a dead URL gets `\error 404` or
//!   404, a live one no refusal but 429/503;
//! - HTTP-in (SPEC §8): no `http_request` of a revoked URL or to a script
//!   that does not own it; `llHTTPResponse` is `Ok` at most once per
//!   request and never for a revoked one; every request is answered exactly
//!   once on its connection (by the script, the timeout or the revocation),
//!   unless its client left first;
//! - nothing panics and timers always advance.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lsl_websocket::{
    Cause, CloseError, Config, ConnectionId, EventKind, HttpError, HttpMethod, Input, Key, Output, Region, Scope,
    ScriptInfo, SeededEntropy, SendError, WebsocketRequest,
};
use lsl_websocket_fuzz::{Answer, WireChecker, client_frame, path_of, upgrade_head};

const SCRIPT_OBJECT: [usize; 5] = [0, 0, 1, 2, 3];
const OBJECTS: usize = 4;
/// The last one is invalid (a comma).
const DOMAINS: [&str; 4] = ["a", "b", "ü ✓", "a,b"];
const HEADERS: [&str; 8] = [
    "x-script-url",
    "x-path-info",
    "x-query-string",
    "x-remote-ip",
    "user-agent",
    "origin",
    "sec-websocket-protocol",
    "bogus",
];

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
            Txt::Short(n) => format!("t{n}"),
            Txt::Long(n) => "x".repeat(usize::from(*n) % 3000),
            Txt::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Env {
    Sub(u8),
    Uns(u8),
    Msg(u8, Txt),
    To(u8, u8, Txt),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Text(Txt),
    Env(Env),
    Ping(Vec<u8>),
    Pong,
    Close(Option<(u16, String)>),
    Binary(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    RequestObject {
        s: u8,
        secure: bool,
        max: Option<u16>,
    },
    RequestRegion {
        s: u8,
        d: u8,
        secure: bool,
        max: Option<u16>,
    },
    Release {
        s: u8,
        url: u8,
    },
    ReleaseDomain {
        s: u8,
        d: u8,
    },
    Send {
        s: u8,
        k: u8,
        text: Txt,
    },
    Broadcast {
        s: u8,
        d: u8,
        text: Txt,
    },
    Close {
        s: u8,
        k: u8,
        code: u16,
        reason: u8,
    },
    Header {
        s: u8,
        k: u8,
        name: u8,
    },
    Free {
        s: u8,
    },
    Drain {
        s: u8,
        n: u8,
    },
    Reset {
        s: u8,
    },
    Removed {
        s: u8,
    },
    Rezzed {
        o: u8,
    },
    ChangedRegion {
        o: u8,
    },
    OwnerChanged {
        o: u8,
    },
    ObjectRemoved {
        o: u8,
    },
    Restart,
    Connect {
        url: u8,
        remote: u8,
        split: Option<u8>,
        via: u8,
    },
    /// `drain`: the script runs at once (and sees the grant).
    RequestHttp {
        s: u8,
        drain: bool,
    },
    ReleaseHttp {
        s: u8,
        url: u8,
    },
    HttpConnect {
        url: u8,
        remote: u8,
        body: u8,
    },
    HttpAnswer {
        k: u8,
        status: u16,
    },
    Raw {
        c: u8,
        bytes: Vec<u8>,
    },
    Frame {
        c: u8,
        kind: Kind,
        split: Option<u8>,
        mask: u32,
    },
    PeerClosed {
        c: u8,
    },
    Hold {
        c: u8,
        hold: bool,
    },
    Advance {
        ms: u16,
    },
    AdvanceSecs {
        s: u8,
    },
}

/// A lifecycle step, for deciding which grants it revoked.
#[derive(Debug)]
enum Life {
    Script(usize),
    Object(usize),
    Restart,
    /// A release of this URL string by this script; `endpoint` if it named the
    /// region endpoint live at the time.
    Url {
        s: usize,
        url: String,
        endpoint: bool,
    },
    Domain {
        s: usize,
        d: usize,
    },
}

#[derive(Debug)]
struct Request {
    at: usize,
    s: usize,
    o: usize,
    domain: Option<usize>,
}

#[derive(Debug)]
struct Grant {
    request: Key,
    url: String,
}

/// How a client speaks to its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    WebSocket,
    Lines,
    Sse,
    /// One HTTP-in request (`Connection: close`).
    Http,
}

#[derive(Debug)]
enum Target {
    /// Index into `grants`.
    Object(usize),
    /// Index into `http_grants`.
    Http(usize),
    /// A region endpoint URL, and whether it was live at connect time.
    Region,
    Nowhere,
}

struct Client {
    conn: ConnectionId,
    target: Target,
    via: Via,
    /// What a client that is not a WebSocket received.
    raw: Vec<u8>,
    /// HTTP-in: its request became an event; gone: its client left before the answer.
    http_event: bool,
    wire: WireChecker,
    hold: bool,
    paused: bool,
    pending: Vec<u8>,
    closed: bool,
    gone: bool,
}

struct State {
    region: Region,
    now: Instant,
    step: usize,
    scripts: Vec<ScriptInfo>,
    owners: Vec<Key>,
    requests: HashMap<Key, Request>,
    grants: Vec<Grant>,
    /// Region endpoint URLs, the last one live.
    endpoints: Vec<String>,
    life: Vec<(usize, Life)>,
    clients: Vec<Client>,
    /// Session key → (client index, domain index for region scope).
    keys: HashMap<Key, (usize, Option<usize>)>,
    key_pool: Vec<Key>,
    /// (script, session key) pairs whose `WS_CLOSE` the script has seen.
    closed_keys: HashSet<(usize, Key)>,
    /// Per script and domain: the latest region grant seen in its event stream.
    stream_grant: HashMap<(usize, usize), Key>,
    /// HTTP-in URLs granted, as object grants.
    http_grants: Vec<Grant>,
    /// HTTP-in requests seen as events and not yet answered `Ok`: (script, id, client).
    http_pending: Vec<(usize, Key, usize)>,
    /// HTTP-in requests answered `Ok` by a script.
    http_answered: HashSet<Key>,
}

fn key(tag: u8, n: usize) -> Key {
    let mut b = [tag; 16];
    b[8..].copy_from_slice(&(n as u64).to_be_bytes());
    Key::from_bytes(b)
}

impl State {
    fn new(small: bool) -> State {
        let base = Config { secure_authority: Some("127.0.0.1:8443".into()), ..Config::default() };
        let config = if small {
            Config {
                event_queue: 4,
                outgoing_buffer: 512,
                sessions_per_url: 3,
                urls_per_script: 3,
                domains_per_script: 2,
                subscriptions_per_session: 2,
                region_endpoint_sessions: 4,
                region_url_budget: 6,
                owner_url_budget: Some(4),
                handshakes_per_second: 3,
                max_message: 64,
                ..base
            }
        } else {
            Config { owner_url_budget: Some(8), ..base }
        };
        let now = Instant::now();
        let region = Region::new(config, Box::new(SeededEntropy::new(3)), now);
        let owners: Vec<Key> = (0..OBJECTS).map(|o| key(0xc0, o)).collect();
        let scripts = SCRIPT_OBJECT
            .iter()
            .enumerate()
            .map(|(s, &o)| ScriptInfo { script: key(0xa0, s), object: key(0xb0, o), owner: owners[o] })
            .collect();
        let endpoints = vec![region.region_url()];
        State {
            region,
            now,
            step: 0,
            scripts,
            owners,
            requests: HashMap::new(),
            grants: Vec::new(),
            endpoints,
            life: Vec::new(),
            clients: Vec::new(),
            keys: HashMap::new(),
            key_pool: vec![key(0xee, 0)],
            closed_keys: HashSet::new(),
            stream_grant: HashMap::new(),
            http_grants: Vec::new(),
            http_pending: Vec::new(),
            http_answered: HashSet::new(),
        }
    }

    fn info(&self, s: usize) -> ScriptInfo {
        let mut info = self.scripts[s];
        info.owner = self.owners[SCRIPT_OBJECT[s]];
        info
    }

    /// Whether a lifecycle step after the request revoked it (as of now).
    fn revoked(&self, request: &Key, url: &str) -> bool {
        let r = &self.requests[request];
        self.life.iter().filter(|(at, _)| *at > r.at).any(|(_, l)| match l {
            Life::Script(s) => *s == r.s,
            Life::Object(o) => *o == r.o,
            Life::Restart => true,
            Life::Url { s, url: released, endpoint } => {
                *s == r.s && if r.domain.is_some() { *endpoint } else { released == url }
            }
            Life::Domain { s, d } => *s == r.s && r.domain == Some(*d),
        })
    }

    fn grant_revoked(&self, g: usize) -> bool {
        self.revoked(&self.grants[g].request, &self.grants[g].url)
    }

    fn http_revoked(&self, g: usize) -> bool {
        self.revoked(&self.http_grants[g].request, &self.http_grants[g].url)
    }

    fn lifecycle(&mut self, l: Life) {
        self.life.push((self.step, l));
    }

    // ---- outputs

    fn pump(&mut self) {
        loop {
            let mut resumed = Vec::new();
            while let Some(out) = self.region.poll_output() {
                match out {
                    Output::Transmit(conn) => {
                        if let Some(c) = self.client(conn) {
                            assert!(!self.clients[c].closed, "Transmit after Close");
                            if !self.clients[c].hold {
                                self.take(c);
                            }
                        }
                    }
                    Output::Close(conn) => {
                        let c = self.client(conn).expect("Close for a connection we opened");
                        assert!(!self.clients[c].closed, "two Close outputs for one connection");
                        self.clients[c].closed = true;
                        if !self.clients[c].hold {
                            self.take(c);
                        }
                    }
                    Output::PauseReading(conn) => {
                        let c = self.client(conn).expect("pause of a known connection");
                        self.clients[c].paused = true;
                    }
                    Output::ResumeReading(conn) => {
                        let c = self.client(conn).expect("resume of a known connection");
                        self.clients[c].paused = false;
                        resumed.push(c);
                    }
                    Output::Events(_) => {}
                    Output::Revoked { url, cause } => self.check_revoked(&url, cause),
                    Output::ListenerStopped { script, domain, cause } => self.check_stopped(script, &domain, cause),
                    Output::HttpRequest { .. } => panic!("HttpRequest without serve_other_paths"),
                }
            }
            if resumed.is_empty() {
                return;
            }
            for c in resumed {
                let pending = std::mem::take(&mut self.clients[c].pending);
                if !pending.is_empty() && !self.clients[c].gone {
                    let conn = self.clients[c].conn;
                    let _ = self.region.handle_input(self.now, Input::Received { conn, data: &pending });
                }
            }
        }
    }

    fn check_revoked(&self, url: &str, cause: Cause) {
        if let Some(g) = self.grants.iter().position(|g| g.url == url) {
            assert!(self.grant_revoked(g), "Revoked({url}, {cause}) for a URL the model holds live");
        }
        if self.endpoints.iter().any(|e| e == url) {
            assert_eq!(cause, Cause::RegionRestart, "the region endpoint is revoked only by a restart");
        }
    }

    /// A listener is reported stopped only when the model holds a request of
    /// that script for that domain revoked.
    fn check_stopped(&self, script: Key, domain: &str, cause: Cause) {
        let s = self.scripts.iter().position(|i| i.script == script).expect("a script we made");
        let d = DOMAINS.iter().position(|x| *x == domain).expect("a domain we use");
        let revoked = self.requests.iter().any(|(k, r)| r.s == s && r.domain == Some(d) && self.revoked(k, ""));
        assert!(revoked, "ListenerStopped({script}, {domain}, {cause}) for a listener the model holds live");
    }

    fn client(&self, conn: ConnectionId) -> Option<usize> {
        usize::try_from(conn.0).ok().filter(|&c| c < self.clients.len())
    }

    fn take(&mut self, c: usize) {
        let conn = self.clients[c].conn;
        while let Some(bytes) = self.region.poll_transmit(conn) {
            match self.clients[c].via {
                Via::WebSocket => self.clients[c].wire.feed(&bytes),
                _ => self.clients[c].raw.extend_from_slice(&bytes),
            }
        }
    }

    // ---- events

    fn drain(&mut self, s: usize, n: usize) {
        let script = self.scripts[s].script;
        for _ in 0..n {
            let Some(e) = self.region.poll_event(script) else { break };
            self.pump();
            match e.kind {
                EventKind::Http(HttpMethod::UrlRequestGranted | HttpMethod::UrlRequestDenied) => {
                    let r = self.requests.get(&e.id).expect("an answer to an HTTP-in request we made");
                    assert_eq!(r.s, s, "an answer to another script's request");
                    if e.kind == EventKind::Http(HttpMethod::UrlRequestDenied) {
                        assert!(matches!(&*e.data, "budget" | "no-secure" | "too-many"), "{e:?}");
                        continue;
                    }
                    assert!(!self.revoked(&e.id, &e.data), "URL_REQUEST_GRANTED of a revoked URL: {e:?}");
                    self.http_grants.push(Grant { request: e.id, url: e.data.to_string() });
                }
                EventKind::Http(_) => {
                    // The body names the client (headers are gone once its client left).
                    let c: usize = e
                        .data
                        .strip_prefix('c')
                        .and_then(|b| b.split(':').next()?.parse().ok())
                        .expect("a body we sent");
                    let Target::Http(g) = self.clients[c].target else { panic!("http_request for client {c}") };
                    let owner = self.requests[&self.http_grants[g].request].s;
                    assert_eq!(owner, s, "an http_request to a script that does not own the URL: {e:?}");
                    assert!(!self.http_revoked(g), "an http_request of a revoked URL: {e:?}");
                    assert!(!self.clients[c].http_event, "two http_request events for one request");
                    self.clients[c].http_event = true;
                    self.http_pending.push((s, e.id, c));
                }
                EventKind::UrlGranted | EventKind::UrlDenied => {
                    let r = self.requests.get(&e.id).expect("an answer to a request we made");
                    assert_eq!(r.s, s, "an answer to another script's request");
                    let domain = r.domain;
                    assert_eq!(&*e.domain, domain.map_or("", |d| DOMAINS[d]));
                    if e.kind == EventKind::UrlDenied {
                        assert!(matches!(&*e.data, "budget" | "no-secure" | "bad-option" | "too-many"), "{e:?}");
                        continue;
                    }
                    assert!(!self.revoked(&e.id, &e.data), "WS_URL_GRANTED of a revoked URL: {e:?}");
                    match domain {
                        Some(d) => {
                            assert_eq!(path_of(&e.data), path_of(self.endpoints.last().unwrap()));
                            self.stream_grant.insert((s, d), e.id);
                        }
                        None => self.grants.push(Grant { request: e.id, url: e.data.to_string() }),
                    }
                }
                _ if e.domain.is_empty() => {
                    // Object scope: the client's path info names it.
                    let c = match e.kind {
                        EventKind::Open => {
                            let c: usize = e.data.strip_prefix("/c").and_then(|n| n.parse().ok()).expect("path info");
                            assert!(self.keys.insert(e.id, (c, None)).is_none(), "WS_OPEN twice for a key");
                            self.key_pool.push(e.id);
                            c
                        }
                        _ => self.keys.get(&e.id).expect("an event for a session never opened").0,
                    };
                    let Target::Object(g) = self.clients[c].target else { panic!("object event for {c}") };
                    let owner = self.requests[&self.grants[g].request].s;
                    assert_eq!(owner, s, "an object-scope event to a script that does not own the URL: {e:?}");
                    assert!(!self.grant_revoked(g), "an event of a revoked URL: {e:?}");
                    self.after_close(s, &e.id, e.kind);
                }
                _ => {
                    let d = DOMAINS.iter().position(|d| *d == &*e.domain).expect("a domain we use");
                    let g = self.stream_grant.get(&(s, d)).expect("a region event before the script listened");
                    assert!(!self.revoked(g, ""), "a region event of a released listener: {e:?}");
                    if e.kind == EventKind::Open {
                        let c: usize = e.data.strip_prefix("/c").and_then(|n| n.parse().ok()).expect("path info");
                        assert!(matches!(self.clients[c].target, Target::Region));
                    }
                    if let Some((_, Some(known))) = self.keys.get(&e.id) {
                        assert_eq!(*known, d, "a session key changed domain");
                    }
                    if let std::collections::hash_map::Entry::Vacant(v) = self.keys.entry(e.id) {
                        v.insert((usize::MAX, Some(d)));
                        self.key_pool.push(e.id);
                    }
                    self.after_close(s, &e.id, e.kind);
                }
            }
        }
    }

    fn after_close(&mut self, s: usize, id: &Key, kind: EventKind) {
        assert!(!self.closed_keys.contains(&(s, *id)), "an event after the session's WS_CLOSE");
        if kind == EventKind::Close {
            self.closed_keys.insert((s, *id));
        }
    }

    /// For an object-scope key: whether `s` may not use it (foreign or revoked).
    fn foreign_or_dead(&self, s: usize, k: &Key) -> bool {
        match self.keys.get(k) {
            Some((c, None)) => match self.clients[*c].target {
                Target::Object(g) => self.requests[&self.grants[g].request].s != s || self.grant_revoked(g),
                _ => false,
            },
            Some((_, Some(_))) => false,
            None => true,
        }
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

    fn feed(&mut self, c: usize, bytes: &[u8]) {
        let client = &mut self.clients[c];
        if client.gone {
            return;
        }
        if client.paused {
            if client.pending.len() < 1 << 16 {
                client.pending.extend_from_slice(bytes);
            }
            return;
        }
        let conn = client.conn;
        let _ = self.region.handle_input(self.now, Input::Received { conn, data: bytes });
        self.pump();
    }

    fn connect(&mut self, url: u8, remote: u8, split: Option<u8>, via: u8) {
        let n_targets = self.grants.len() + self.endpoints.len() + 1;
        let pick = usize::from(url) % n_targets;
        let (target, path, expect_live) = if pick < self.grants.len() {
            (Target::Object(pick), path_of(&self.grants[pick].url).to_string(), !self.grant_revoked(pick))
        } else if pick < self.grants.len() + self.endpoints.len() {
            let e = pick - self.grants.len();
            (Target::Region, path_of(&self.endpoints[e]).to_string(), e + 1 == self.endpoints.len())
        } else {
            (Target::Nowhere, "/lslws/00000000-0000-4000-8000-000000000000/".to_string(), false)
        };
        // The region endpoint is reached by WebSocket only here (its envelope is checked on frames).
        let via = match (via % 3, &target) {
            (_, Target::Region) | (0, _) => Via::WebSocket,
            (1, _) => Via::Lines,
            _ => Via::Sse,
        };
        let c = self.open(target, via, remote);
        let target = format!("{path}c{c}");
        let head = match via {
            Via::WebSocket => upgrade_head(&target),
            Via::Lines => format!("{target}\n").into_bytes(),
            _ => format!("GET {target} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").into_bytes(),
        };
        let cut = split.map_or(head.len(), |p| usize::from(p).min(head.len()));
        self.feed(c, &head[..cut]);
        self.feed(c, &head[cut..]);
        self.take(c);
        match (via, self.answer(c)) {
            (Via::WebSocket, Some(101)) | (Via::Sse, Some(200)) | (Via::Lines, None) => {
                assert!(expect_live, "{via:?} opened on a revoked or unknown URL")
            }
            (_, Some(status)) if expect_live => assert!(matches!(status, 429 | 503), "{status} on a live URL"),
            (_, Some(status)) => assert!(matches!(status, 404 | 429), "{status} on a dead URL, not 404"),
            (_, None) => panic!("a complete {via:?} head on a dead URL left unanswered"),
        }
    }

    /// A new connection from one of a few addresses; its client index.
    fn open(&mut self, target: Target, via: Via, remote: u8) -> usize {
        let c = self.clients.len();
        let conn = ConnectionId(c as u64);
        let region_wire = matches!(target, Target::Region);
        self.clients.push(Client {
            conn,
            target,
            via,
            raw: Vec::new(),
            http_event: false,
            wire: WireChecker::new(region_wire),
            hold: false,
            paused: false,
            pending: Vec::new(),
            closed: false,
            gone: false,
        });
        let remote: IpAddr = match remote % 6 {
            0..=3 => [198, 51, 100, remote % 6].into(),
            r => format!("2001:db8::{r}:{remote}").parse().unwrap(),
        };
        self.region.handle_input(self.now, Input::Accepted { conn, remote }).unwrap();
        c
    }

    /// The first answer on a connection: an HTTP status, `\error`'s status
    /// for a line client, `None` for nothing yet.
    fn answer(&self, c: usize) -> Option<u16> {
        let client = &self.clients[c];
        match client.via {
            Via::WebSocket => match client.wire.answer {
                Answer::Open => Some(101),
                Answer::Refused(status) => Some(status),
                Answer::Nothing => None,
            },
            Via::Lines => {
                let line = client.raw.split(|&b| b == b'\n').next().filter(|_| client.raw.contains(&b'\n'))?;
                let line = std::str::from_utf8(line).expect("server lines are UTF-8");
                let status = line.strip_prefix("\\error ")?;
                Some(status.split(' ').next().and_then(|n| n.parse().ok()).expect("\\error <status> <reason>"))
            }
            Via::Sse | Via::Http => http_statuses(&client.raw).first().copied(),
        }
    }

    /// An HTTP-in request (path info names the client) to a granted,
    /// revoked or unknown HTTP-in URL.
    fn http_connect(&mut self, url: u8, remote: u8, body: u8) {
        let pick = usize::from(url) % (self.http_grants.len() + 1);
        let (target, path, expect_live) = match self.http_grants.get(pick) {
            Some(g) => (Target::Http(pick), path_of(&g.url).to_string(), !self.http_revoked(pick)),
            None => (Target::Nowhere, "/lslhttp/00000000-0000-4000-8000-000000000000/".to_string(), false),
        };
        let c = self.open(target, Via::Http, remote);
        let body = format!("c{c}:{}", "b".repeat(usize::from(body) % 40));
        let head = format!(
            "POST {path}c{c} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.feed(c, head.as_bytes());
        self.take(c);
        match self.answer(c) {
            None => assert!(expect_live, "a request to a dead HTTP-in URL left unanswered"),
            Some(status) if expect_live => assert!(matches!(status, 429 | 503), "{status} at once on a live URL"),
            Some(status) => assert!(matches!(status, 404 | 429), "{status} on a dead HTTP-in URL, not 404"),
        }
    }

    /// A script answers one of the requests it has seen.
    fn http_answer(&mut self, k: u8, status: u16) {
        if self.http_pending.is_empty() {
            return;
        }
        let i = usize::from(k) % self.http_pending.len();
        let (s, id, c) = self.http_pending[i];
        let Target::Http(g) = self.clients[c].target else { unreachable!() };
        let status = 200 + i32::from(status % 400);
        let result = self.region.http_response(self.now, self.scripts[s].script, id, status, "ok");
        match result {
            Ok(()) => {
                assert!(!self.http_revoked(g), "llHTTPResponse Ok for a request of a revoked URL");
                assert!(self.http_answered.insert(id), "llHTTPResponse Ok twice for one request");
                self.http_pending.swap_remove(i);
            }
            Err(HttpError::Revoked) => assert!(self.http_revoked(g), "Revoked for a request of a live URL"),
            Err(HttpError::ClientGone | HttpError::Expired) => {
                self.http_pending.swap_remove(i);
            }
            Err(e) => panic!("{e:?} answering a request the script was given"),
        }
    }

    fn frame_bytes(&self, kind: &Kind, split: Option<u8>, mask: u32) -> Vec<u8> {
        let mask = mask.to_be_bytes();
        let text = |t: String| -> Vec<u8> { t.into_bytes() };
        let (opcode, payload) = match kind {
            Kind::Text(t) => (1, text(t.text())),
            Kind::Env(env) => (
                1,
                text(match env {
                    Env::Sub(d) => format!("sub,{}", DOMAINS[usize::from(*d) % DOMAINS.len()]),
                    Env::Uns(d) => format!("uns,{}", DOMAINS[usize::from(*d) % DOMAINS.len()]),
                    Env::Msg(d, t) => format!("msg,{},{}", DOMAINS[usize::from(*d) % DOMAINS.len()], t.text()),
                    Env::To(o, d, t) => format!(
                        "to,{},{},{}",
                        key(0xb0, usize::from(*o) % (OBJECTS + 1)),
                        DOMAINS[usize::from(*d) % DOMAINS.len()],
                        t.text()
                    ),
                    Env::Raw(s) => s.clone(),
                }),
            ),
            Kind::Ping(p) => (9, p.clone()),
            Kind::Pong => (10, Vec::new()),
            Kind::Close(None) => (8, Vec::new()),
            Kind::Close(Some((code, reason))) => (8, [&code.to_be_bytes()[..], reason.as_bytes()].concat()),
            Kind::Binary(b) => (2, b.clone()),
        };
        match split {
            Some(p) if opcode == 1 => {
                let p = usize::from(p).min(payload.len());
                let mut out = client_frame(false, 1, mask, &payload[..p]);
                out.extend(client_frame(true, 0, mask, &payload[p..]));
                out
            }
            _ => client_frame(true, opcode, mask, &payload),
        }
    }

    // ---- one step

    fn apply(&mut self, op: &Op) {
        self.step += 1;
        let s_of = |s: &u8| usize::from(*s) % SCRIPT_OBJECT.len();
        let o_of = |o: &u8| usize::from(*o) % OBJECTS;
        let now = self.now;
        match op {
            Op::RequestObject { s, secure, max } => {
                let s = s_of(s);
                let request = WebsocketRequest {
                    secure: *secure,
                    max_message: max.map(usize::from),
                    ..WebsocketRequest::default()
                };
                let k = self.region.request_websocket(self.info(s), &request);
                self.requests.insert(k, Request { at: self.step, s, o: SCRIPT_OBJECT[s], domain: None });
            }
            Op::RequestRegion { s, d, secure, max } => {
                let (s, d) = (s_of(s), usize::from(*d) % DOMAINS.len());
                let request = WebsocketRequest {
                    scope: Scope::Region,
                    secure: *secure,
                    domain: Some(DOMAINS[d].into()),
                    max_message: max.map(usize::from),
                };
                let k = self.region.request_websocket(self.info(s), &request);
                self.requests.insert(k, Request { at: self.step, s, o: SCRIPT_OBJECT[s], domain: Some(d) });
            }
            Op::Release { s, url } => {
                let s = s_of(s);
                let urls: Vec<String> =
                    self.grants.iter().map(|g| g.url.clone()).chain(self.endpoints.iter().cloned()).collect();
                let Some(url) = urls.get(usize::from(*url) % urls.len().max(1)).cloned() else { return };
                let endpoint = path_of(&url) == path_of(self.endpoints.last().unwrap());
                self.lifecycle(Life::Url { s, url: url.clone(), endpoint });
                let _ = self.region.release_websocket(now, self.scripts[s].script, &url);
            }
            Op::ReleaseDomain { s, d } => {
                let (s, d) = (s_of(s), usize::from(*d) % DOMAINS.len());
                self.lifecycle(Life::Domain { s, d });
                let _ = self.region.release_domain(now, self.scripts[s].script, DOMAINS[d]);
            }
            Op::Send { s, k, text } => {
                let s = s_of(s);
                let k = self.key_pool[usize::from(*k) % self.key_pool.len()];
                let result = self.region.websocket_send(self.scripts[s].script, k, &text.text());
                assert!(!matches!(result, Err(SendError::BadDomain)), "send returned BadDomain");
                if self.foreign_or_dead(s, &k) {
                    assert_eq!(result, Err(SendError::NoSession), "send on a foreign or dead session");
                }
            }
            Op::Broadcast { s, d, text } => {
                let (s, d) = (s_of(s), usize::from(*d) % DOMAINS.len());
                let result = self.region.websocket_broadcast(self.scripts[s].script, DOMAINS[d], &text.text());
                assert!(matches!(result, Ok(_) | Err(SendError::BadDomain | SendError::TooLarge)), "{result:?}");
            }
            Op::Close { s, k, code, reason } => {
                let s = s_of(s);
                let k = self.key_pool[usize::from(*k) % self.key_pool.len()];
                let reason = "r".repeat(usize::from(*reason) % 130);
                let result = self.region.websocket_close(now, self.scripts[s].script, k, *code, &reason);
                let valid = (*code == 1000 || (3000..=4999).contains(code)) && reason.len() <= 123;
                match result {
                    Err(CloseError::BadCode(_) | CloseError::ReasonTooLong(_)) => assert!(!valid, "{result:?}"),
                    Ok(()) => assert!(valid && !self.foreign_or_dead(s, &k), "close of a foreign/dead session"),
                    Err(CloseError::NoSession) => assert!(valid),
                }
            }
            Op::Header { s, k, name } => {
                let s = s_of(s);
                let k = self.key_pool[usize::from(*k) % self.key_pool.len()];
                let name = HEADERS[usize::from(*name) % HEADERS.len()];
                let value = self.region.websocket_header(self.scripts[s].script, k, name);
                if self.foreign_or_dead(s, &k) || name == "bogus" {
                    assert_eq!(value, "", "header {name} of a foreign/dead session");
                }
            }
            Op::Free { s } => {
                let free = self.region.free_websockets(self.info(s_of(s)).owner);
                assert!(free <= self.region.config().region_url_budget);
            }
            Op::Drain { s, n } => self.drain(s_of(s), usize::from(*n)),
            Op::Reset { s } => {
                let s = s_of(s);
                self.lifecycle(Life::Script(s));
                self.region.script_reset(now, self.scripts[s].script);
            }
            Op::Removed { s } => {
                let s = s_of(s);
                self.lifecycle(Life::Script(s));
                self.region.script_removed(now, self.scripts[s].script);
            }
            Op::Rezzed { o } => {
                self.lifecycle(Life::Object(o_of(o)));
                self.region.object_rezzed(now, key(0xb0, o_of(o)));
            }
            Op::ChangedRegion { o } => {
                self.lifecycle(Life::Object(o_of(o)));
                self.region.object_changed_region(now, key(0xb0, o_of(o)));
            }
            Op::OwnerChanged { o } => {
                let o = o_of(o);
                self.lifecycle(Life::Object(o));
                self.region.owner_changed(now, key(0xb0, o));
                self.owners[o] = key(0xc1, self.step);
            }
            Op::ObjectRemoved { o } => {
                self.lifecycle(Life::Object(o_of(o)));
                self.region.object_removed(now, key(0xb0, o_of(o)));
            }
            Op::Restart => {
                self.lifecycle(Life::Restart);
                self.region.region_restart(now);
                self.pump();
                self.endpoints.push(self.region.region_url());
            }
            Op::Connect { url, remote, split, via } => {
                if self.clients.len() < 64 {
                    self.connect(*url, *remote, *split, *via);
                }
            }
            Op::RequestHttp { s, drain } => {
                let s = s_of(s);
                let k = self.region.request_url(self.info(s));
                self.requests.insert(k, Request { at: self.step, s, o: SCRIPT_OBJECT[s], domain: None });
                if *drain {
                    self.pump();
                    self.drain(s, usize::MAX);
                }
            }
            Op::ReleaseHttp { s, url } => {
                let s = s_of(s);
                let Some(url) =
                    self.http_grants.get(usize::from(*url) % self.http_grants.len().max(1)).map(|g| g.url.clone())
                else {
                    return;
                };
                self.lifecycle(Life::Url { s, url: url.clone(), endpoint: false });
                let _ = self.region.release_url(now, self.scripts[s].script, &url);
            }
            Op::HttpConnect { url, remote, body } => {
                if self.clients.len() < 64 {
                    self.http_connect(*url, *remote, *body);
                }
            }
            Op::HttpAnswer { k, status } => self.http_answer(*k, *status),
            Op::Raw { c, bytes } => {
                if let Some(c) = self.pick_client(*c) {
                    self.feed(c, bytes);
                }
            }
            Op::Frame { c, kind, split, mask } => {
                if let Some(c) = self.pick_client(*c) {
                    let bytes = self.frame_bytes(kind, *split, *mask);
                    self.feed(c, &bytes);
                }
            }
            Op::PeerClosed { c } => {
                if let Some(c) = self.pick_client(*c)
                    && !self.clients[c].gone
                {
                    self.clients[c].gone = true;
                    let conn = self.clients[c].conn;
                    let _ = self.region.handle_input(now, Input::PeerClosed { conn });
                }
            }
            Op::Hold { c, hold } => {
                if let Some(c) = self.pick_client(*c) {
                    self.clients[c].hold = *hold;
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

    fn pick_client(&self, c: u8) -> Option<usize> {
        (!self.clients.is_empty()).then(|| usize::from(c) % self.clients.len())
    }

    fn finish(&mut self) {
        for s in 0..SCRIPT_OBJECT.len() {
            self.drain(s, usize::MAX);
        }
        // Scripts answer what they hold; the timeout answers what they do not.
        for k in 0..self.http_pending.len() {
            self.http_answer(k as u8, 0);
        }
        self.advance(Duration::from_secs(30));
        for c in 0..self.clients.len() {
            if self.clients[c].via != Via::Http {
                continue;
            }
            self.clients[c].hold = false;
            self.take(c);
            let answers = http_statuses(&self.clients[c].raw).len();
            let client = &self.clients[c];
            if client.gone {
                assert!(answers <= 1, "{answers} answers to one request");
            } else {
                assert_eq!(answers, 1, "client {c}: a request answered {answers} times");
            }
        }
        for c in 0..self.clients.len() {
            self.clients[c].hold = false;
            self.take(c);
            if !self.clients[c].gone {
                self.clients[c].gone = true;
                let conn = self.clients[c].conn;
                let _ = self.region.handle_input(self.now, Input::PeerClosed { conn });
                self.pump();
            }
        }
        self.step += 1;
        for s in 0..SCRIPT_OBJECT.len() {
            self.drain(s, usize::MAX);
        }
        self.advance(Duration::from_secs(120));
    }
}

/// The statuses of the whole HTTP responses in `bytes`, in order (an SSE
/// stream's body is not parsed).
fn http_statuses(mut bytes: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = r.parse(bytes) else { return out };
        let status = r.code.expect("a status");
        out.push(status);
        let body: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .unwrap_or(usize::MAX);
        if (100..200).contains(&status) {
            bytes = &bytes[len..];
            out.pop();
            continue;
        }
        let Some(rest) = bytes.get(len..).and_then(|b| b.get(body.min(b.len())..)) else { return out };
        if body == usize::MAX {
            return out;
        }
        bytes = rest;
    }
}

fuzz_target!(|scenario: Scenario| {
    let mut state = State::new(scenario.small);
    for op in scenario.ops.iter().take(400) {
        state.apply(op);
    }
    state.finish();
    if std::env::var_os("REGION_OPS_DEBUG").is_some() {
        eprintln!("{scenario:#?}");
        for (i, c) in state.clients.iter().enumerate() {
            eprintln!(
                "client {i}: {:?} {:?} {:?} frames={} closed={} http_event={} raw={}",
                c.via,
                c.target,
                c.wire.answer,
                c.wire.frames,
                c.closed,
                c.http_event,
                c.raw.len()
            );
        }
        eprintln!("grants={} keys={} closed_keys={}", state.grants.len(), state.keys.len(), state.closed_keys.len());
    }
});
