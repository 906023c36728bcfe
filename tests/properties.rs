//! Properties over random inputs:
//! (a) how a client's byte stream is cut into reads never matters;
//! (b) under any mix of script calls, lifecycle events and client frames, no
//!     event of a revoked URL reaches a script, and every accepted message
//!     reaches its script exactly once, in order.

mod common;

use std::collections::BTreeMap;

use common::*;
use lsl_websocket::{
    Cause, CloseError, Config, ConnectionId, Event, EventKind, Key, Output, ReleaseError, ScriptInfo, SendError,
    WebsocketRequest,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ------------------------------------------------------------------ (a) chunking

#[derive(Debug, Clone)]
enum Item {
    Text(String, [u8; 4]),
    /// A text message cut at the given byte offsets (fragments may be empty
    /// and may split a code point).
    Fragmented(String, Vec<usize>, [u8; 4]),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn message() -> impl Strategy<Value = String> {
    prop_oneof![3 => "\\PC{0,40}", 1 => "[a-z]{100,300}", 1 => Just(String::new())]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (message(), any::<[u8; 4]>()).prop_map(|(s, m)| Item::Text(s, m)),
        3 => (message(), prop::collection::vec(any::<Index>(), 1..5), any::<[u8; 4]>()).prop_map(|(s, cuts, m)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(s.len() + 1)).collect();
            cuts.sort_unstable();
            Item::Fragmented(s, cuts, m)
        }),
        1 => prop::collection::vec(any::<u8>(), 0..=125).prop_map(Item::Ping),
        1 => prop::collection::vec(any::<u8>(), 0..=20).prop_map(Item::Pong),
    ]
}

fn encode(item: &Item) -> Vec<u8> {
    match item {
        Item::Text(s, mask) => frame(OP_TEXT, s).mask(*mask).build(),
        Item::Fragmented(s, cuts, mask) => {
            let bytes = s.as_bytes();
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(bytes.len());
            let parts: Vec<&[u8]> = bounds.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            let mut out = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let op = if i == 0 { OP_TEXT } else { OP_CONT };
                out.extend(frame(op, part).fin(i + 1 == parts.len()).mask(*mask).build());
            }
            out
        }
        Item::Ping(p) => ping(p),
        Item::Pong(p) => pong(p),
    }
}

/// What one run shows the embedder and the script.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    wire: Vec<u8>,
    events: Vec<Event>,
    log: Vec<Output>,
}

fn run(stream: &[u8], cuts: &[usize]) -> Observed {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = sim.request_url(who);
    let conn = sim.accept();
    let _ = url;
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        if cut > start {
            // After the close the core may have forgotten the connection; extra bytes are harmless.
            let _ = sim.feed(conn, &stream[start..cut]);
            start = cut;
        }
    }
    let events = sim.events(who.script);
    Observed { wire: sim.bytes(conn).to_vec(), events, log: sim.log.clone() }
}

fn stream_of(url_path: &str, items: &[Item], close_code: u16) -> Vec<u8> {
    let mut stream = upgrade_head(&format!("{url_path}some/path?q=1"));
    for item in items {
        stream.extend(encode(item));
    }
    stream.extend(close(close_code, "done"));
    stream
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_events_and_bytes(
        items in prop::collection::vec(item(), 0..20),
        close_code in prop_oneof![Just(1000u16), Just(1001), 3000u16..5000],
        cuts in prop::collection::vec(any::<Index>(), 0..40),
    ) {
        // The URL is the same in every run: same seed, same calls.
        let url_path = {
            let mut sim = Sim::new();
            let who = sim.script();
            path_of(&sim.request_url(who))
        };
        let stream = stream_of(&url_path, &items, close_code);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
        cuts.sort_unstable();
        let whole = run(&stream, &[]);
        let chunked = run(&stream, &cuts);
        let byte_by_byte = run(&stream, &(1..stream.len()).collect::<Vec<_>>());

        // The whole stream was understood: one WS_OPEN, every text, the close.
        let expected_texts: Vec<&str> = items.iter().filter_map(|i| match i {
            Item::Text(s, _) | Item::Fragmented(s, _, _) => Some(s.as_str()),
            _ => None,
        }).collect();
        let texts: Vec<&str> = whole.events.iter().filter(|e| e.kind == EventKind::Text).map(|e| e.data.as_str()).collect();
        prop_assert_eq!(texts, expected_texts);
        prop_assert_eq!(whole.events.first().map(|e| (e.kind, e.data.to_string())), Some((EventKind::Open, "/some/path".to_string())));
        let last = whole.events.last().unwrap();
        prop_assert_eq!((last.kind, last.data.to_string()), (EventKind::Close, format!("{close_code} done")));
        let pongs = parse_frames(split_head(&whole.wire).1).iter().filter(|f| f.opcode == OP_PONG).count();
        prop_assert_eq!(pongs, items.iter().filter(|i| matches!(i, Item::Ping(_))).count());

        prop_assert_eq!(&chunked, &whole);
        prop_assert_eq!(&byte_by_byte, &whole);
    }
}

// ------------------------------------------------------------------ (b) revocation and delivery

const SCRIPTS: usize = 4;
const OBJECTS: usize = 3;
const QUEUE: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    Request(usize),
    Release(usize, usize),
    Connect(usize),
    /// Client texts written in one go (one read for the server).
    Text(usize, Vec<String>),
    Ping(usize),
    ClientClose(usize),
    PeerClosed(usize),
    Send(usize),
    ScriptClose(usize, u16),
    Poll(usize, usize),
    Reset(usize),
    Object(usize, usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let script = 0..SCRIPTS;
    prop_oneof![
        6 => script.clone().prop_map(Op::Request),
        2 => (script.clone(), any::<usize>()).prop_map(|(s, i)| Op::Release(s, i)),
        8 => any::<usize>().prop_map(Op::Connect),
        32 => (any::<usize>(), prop::collection::vec("[a-z0-9 ]{0,12}", 1..12)).prop_map(|(i, t)| Op::Text(i, t)),
        2 => any::<usize>().prop_map(Op::Ping),
        2 => any::<usize>().prop_map(Op::ClientClose),
        2 => any::<usize>().prop_map(Op::PeerClosed),
        4 => any::<usize>().prop_map(Op::Send),
        2 => (any::<usize>(), prop_oneof![Just(1000u16), 3000u16..5000]).prop_map(|(i, c)| Op::ScriptClose(i, c)),
        8 => (script.clone(), 0usize..12).prop_map(|(s, n)| Op::Poll(s, n)),
        2 => script.prop_map(Op::Reset),
        2 => (0usize..4, 0..OBJECTS).prop_map(|(k, o)| Op::Object(k, o)),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug)]
struct UrlModel {
    url: String,
    script: usize,
    revoked: bool,
}

#[derive(Debug)]
struct SessModel {
    conn: ConnectionId,
    key: Key,
    url: usize,
    script: usize,
    /// The URL was revoked: nothing of this session may reach the script.
    revoked: bool,
    /// The client sent a close frame (and whether it was held by back-pressure).
    client_closed: Option<bool>,
    peer_closed: bool,
    /// `llWebsocketClose` succeeded with this `"<code> <reason>"`.
    script_closed: Option<String>,
    ws_close_seen: bool,
    /// Texts the client sent while the session was open, and whether each was
    /// held by back-pressure at the time.
    sent: Vec<(String, bool)>,
    received: usize,
}

impl SessModel {
    /// Whether the core has certainly ended the session.
    fn surely_ended(&self) -> bool {
        self.revoked
            || self.peer_closed
            || self.script_closed.is_some()
            || self.ws_close_seen
            || self.client_closed == Some(false)
    }

    fn client_may_send(&self) -> bool {
        self.client_closed.is_none() && !self.peer_closed
    }
}

struct Model {
    sim: Sim,
    scripts: Vec<ScriptInfo>,
    urls: Vec<UrlModel>,
    sessions: Vec<SessModel>,
    by_key: BTreeMap<Key, usize>,
    next_ip: u32,
}

impl Model {
    fn new() -> Model {
        let config = Config {
            event_queue: QUEUE,
            urls_per_script: 3,
            region_url_budget: 8,
            owner_url_budget: Some(6),
            ..Config::default()
        };
        let mut sim = Sim::with_config(config);
        let objects: Vec<(Key, Key)> = (0..OBJECTS).map(|_| (sim.key(), sim.key())).collect();
        // Scripts 0 and 1 share object 0; objects 0 and 1 share an owner.
        let placement = [0, 0, 1, 2];
        let scripts = placement
            .iter()
            .map(|&o| {
                let owner = if o == 1 { objects[0].1 } else { objects[o].1 };
                sim.script_in(objects[o].0, owner)
            })
            .collect();
        Model { sim, scripts, urls: Vec::new(), sessions: Vec::new(), by_key: BTreeMap::new(), next_ip: 0 }
    }

    /// Checks one event against the model. Returns a new session's key for `WS_OPEN`.
    fn check(&mut self, script: usize, event: &Event) -> Result<Option<Key>, TestCaseError> {
        match event.kind {
            EventKind::Open => {
                prop_assert!(!self.by_key.contains_key(&event.id), "session keys are never reused");
                Ok(Some(event.id))
            }
            EventKind::UrlGranted | EventKind::UrlDenied | EventKind::Http(_) => {
                // The model requests no HTTP-in URLs, so an HTTP event is as stray as a late answer.
                prop_assert!(false, "an answer outlived its request call: {:?}", event);
                unreachable!()
            }
            EventKind::Text | EventKind::Close => {
                let Some(&i) = self.by_key.get(&event.id) else {
                    prop_assert!(false, "event of an unknown session: {:?}", event);
                    unreachable!()
                };
                let s = &mut self.sessions[i];
                prop_assert_eq!(s.script, script, "event delivered to the wrong script");
                prop_assert!(!s.revoked, "event of a revoked URL's session: {:?}", event);
                prop_assert!(!self.urls[s.url].revoked, "event of a revoked URL: {:?}", event);
                prop_assert!(!s.ws_close_seen, "event after WS_CLOSE: {:?}", event);
                if event.kind == EventKind::Text {
                    prop_assert!(s.received < s.sent.len(), "a message delivered twice or never sent: {:?}", event);
                    prop_assert_eq!(event.data.as_str(), s.sent[s.received].0.as_str(), "out of order");
                    s.received += 1;
                } else {
                    s.ws_close_seen = true;
                    let data = event.data.as_str();
                    if let Some(expected) = &s.script_closed {
                        prop_assert_eq!(data, expected.as_str());
                    } else if s.client_closed.is_some() && s.peer_closed {
                        // A close held by back-pressure may or may not have been read before the transport went.
                        prop_assert!(data == "1000 bye" || data.starts_with("1006 "), "{:?}", data);
                    } else if s.client_closed.is_some() {
                        prop_assert_eq!(data, "1000 bye");
                    } else {
                        prop_assert!(s.peer_closed, "unexplained WS_CLOSE: {:?}", event);
                        prop_assert!(data.starts_with("1006 "), "{:?}", data);
                    }
                }
                Ok(None)
            }
        }
    }

    /// Drains up to `n` events of a script through the checker.
    fn poll(&mut self, script: usize, n: usize) -> Result<Vec<Key>, TestCaseError> {
        let mut opened = Vec::new();
        for _ in 0..n {
            let Some(event) = self.sim.region.poll_event(self.scripts[script].script) else { break };
            self.sim.pump();
            opened.extend(self.check(script, &event)?);
        }
        self.sim.pump();
        Ok(opened)
    }

    /// Applies a revocation to the model and checks the embedder was told of exactly it.
    fn revoked(&mut self, mark: usize, which: impl Fn(&UrlModel) -> bool, cause: Cause) -> Result<(), TestCaseError> {
        let mut expected = Vec::new();
        for (i, u) in self.urls.iter_mut().enumerate() {
            if !u.revoked && which(u) {
                u.revoked = true;
                expected.push((u.url.clone(), cause));
                for s in self.sessions.iter_mut().filter(|s| s.url == i) {
                    s.revoked = true;
                }
            }
        }
        // Only object-scope URLs are modelled; a restart also revokes the region endpoint.
        let known = |url: &String| self.urls.iter().any(|u| u.url == *url);
        let mut told: Vec<_> = self
            .sim
            .log_since(mark)
            .iter()
            .filter_map(|o| match o {
                Output::Revoked { url, cause } if known(url) || *cause != Cause::RegionRestart => {
                    Some((url.clone(), *cause))
                }
                _ => None,
            })
            .collect();
        told.sort_by(|a, b| a.0.cmp(&b.0));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        prop_assert_eq!(told, expected);
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.sim.now;
        let mark = self.sim.mark();
        match op {
            Op::Request(s) => {
                let who = self.scripts[*s];
                let key = self.sim.region.request_websocket(who, &WebsocketRequest::default());
                self.sim.pump();
                // The script handles its queue up to the answer.
                loop {
                    let event = self.sim.region.poll_event(who.script).expect("the answer is queued");
                    self.sim.pump();
                    if event.id == key {
                        if event.kind == EventKind::UrlGranted {
                            self.urls.push(UrlModel { url: event.data.to_string(), script: *s, revoked: false });
                        }
                        break;
                    }
                    let opened = self.check(*s, &event)?;
                    prop_assert!(opened.is_none());
                }
            }
            Op::Release(s, i) => {
                if self.urls.is_empty() {
                    return Ok(());
                }
                let u = i % self.urls.len();
                let url = self.urls[u].url.clone();
                let result = self.sim.region.release_websocket(now, self.scripts[*s].script, &url);
                self.sim.pump();
                if self.urls[u].script == *s && !self.urls[u].revoked {
                    prop_assert_eq!(result, Ok(()));
                    self.revoked(mark, |m| m.url == url, Cause::Released)?;
                } else {
                    prop_assert_eq!(result, Err(ReleaseError::UnknownUrl));
                    self.revoked(mark, |_| false, Cause::Released)?;
                }
            }
            Op::Connect(i) => {
                if self.urls.is_empty() {
                    return Ok(());
                }
                let u = i % self.urls.len();
                self.next_ip += 1;
                let remote = ip(10, (self.next_ip >> 8) as u8, self.next_ip as u8, 1);
                let conn = self.sim.accept_from(remote);
                self.sim.send(conn, &upgrade_head(&path_of(&self.urls[u].url)));
                if self.urls[u].revoked {
                    prop_assert_eq!(self.sim.status(conn), 404);
                    return Ok(());
                }
                prop_assert_eq!(self.sim.status(conn), 101);
                let script = self.urls[u].script;
                let opened = self.poll(script, usize::MAX)?;
                prop_assert_eq!(opened.len(), 1);
                self.by_key.insert(opened[0], self.sessions.len());
                self.sessions.push(SessModel {
                    conn,
                    key: opened[0],
                    url: u,
                    script,
                    revoked: false,
                    client_closed: None,
                    peer_closed: false,
                    script_closed: None,
                    ws_close_seen: false,
                    sent: Vec::new(),
                    received: 0,
                });
            }
            Op::Text(i, texts) => {
                let Some(n) = self.pick(i) else { return Ok(()) };
                if !self.sessions[n].client_may_send() {
                    return Ok(());
                }
                let conn = self.sessions[n].conn;
                let script = self.scripts[self.sessions[n].script].script;
                // The server decodes until the script's queue is full and holds the rest.
                let before = self.sim.region.pending_events(script);
                let room = if self.sim.paused.contains(&conn) { 0 } else { QUEUE.saturating_sub(before) };
                let bytes: Vec<u8> = texts.iter().flat_map(|t| common::text(t)).collect();
                let _ = self.sim.feed(conn, &bytes);
                let s = &mut self.sessions[n];
                // Accepted: the session is open as far as anyone knows. (After a
                // revocation or a script close the client's frames cross the close.)
                if !s.revoked && s.script_closed.is_none() {
                    for (k, t) in texts.iter().enumerate() {
                        s.sent.push((t.clone(), k >= room));
                    }
                    let queued = texts.len().min(room);
                    prop_assert_eq!(
                        self.sim.region.pending_events(script),
                        before + queued,
                        "queued at once up to the room"
                    );
                    if texts.len() > room {
                        prop_assert!(self.sim.paused.contains(&conn), "reading paused while messages are held");
                    }
                }
            }
            Op::Ping(i) => {
                let Some(n) = self.pick(i) else { return Ok(()) };
                if self.sessions[n].client_may_send() {
                    let _ = self.sim.feed(self.sessions[n].conn, &ping(b"p"));
                }
            }
            Op::ClientClose(i) => {
                let Some(n) = self.pick(i) else { return Ok(()) };
                if !self.sessions[n].client_may_send() {
                    return Ok(());
                }
                let conn = self.sessions[n].conn;
                let script = self.scripts[self.sessions[n].script].script;
                let held = self.sim.paused.contains(&conn) || self.sim.region.pending_events(script) >= QUEUE;
                let _ = self.sim.feed(conn, &close(1000, "bye"));
                self.sessions[n].client_closed = Some(held);
            }
            Op::PeerClosed(i) => {
                let Some(n) = self.pick(i) else { return Ok(()) };
                if self.sessions[n].peer_closed {
                    return Ok(());
                }
                // The core may have forgotten a connection whose session ended; that is fine.
                let _ = self.sim.peer_closed(self.sessions[n].conn);
                self.sessions[n].peer_closed = true;
            }
            Op::Send(i) => {
                let Some(n) = self.pick(i) else { return Ok(()) };
                let s = &self.sessions[n];
                let result = self.sim.region.websocket_send(self.scripts[s.script].script, s.key, "hello");
                self.sim.pump();
                if s.surely_ended() {
                    prop_assert_eq!(result, Err(SendError::NoSession));
                } else if s.client_closed.is_none() {
                    prop_assert_eq!(result, Ok(()));
                } else {
                    prop_assert!(matches!(result, Ok(()) | Err(SendError::NoSession)));
                }
                // A foreign script never may.
                let other = self.scripts[(s.script + 1) % SCRIPTS].script;
                prop_assert_eq!(self.sim.region.websocket_send(other, s.key, "x"), Err(SendError::NoSession));
            }
            Op::ScriptClose(i, code) => {
                let Some(n) = self.pick(i) else { return Ok(()) };
                let s = &self.sessions[n];
                let result = self.sim.region.websocket_close(now, self.scripts[s.script].script, s.key, *code, "ok");
                self.sim.pump();
                if s.surely_ended() {
                    prop_assert_eq!(result, Err(CloseError::NoSession));
                } else if s.client_closed.is_none() {
                    prop_assert_eq!(result, Ok(()));
                }
                if result.is_ok() {
                    self.sessions[n].script_closed = Some(format!("{code} ok"));
                }
            }
            Op::Poll(s, n) => {
                let opened = self.poll(*s, *n)?;
                prop_assert!(opened.is_empty());
            }
            Op::Reset(s) => {
                self.sim.region.script_reset(now, self.scripts[*s].script);
                self.sim.pump();
                self.revoked(mark, |u| u.script == *s, Cause::ScriptReset)?;
            }
            Op::Object(kind, o) => {
                let object = self.object_key(*o);
                let cause = match kind {
                    0 => {
                        self.sim.region.object_rezzed(now, object);
                        Cause::ObjectRezzed
                    }
                    1 => {
                        self.sim.region.object_changed_region(now, object);
                        Cause::RegionChange
                    }
                    2 => {
                        self.sim.region.owner_changed(now, object);
                        Cause::OwnerChange
                    }
                    _ => {
                        self.sim.region.object_removed(now, object);
                        Cause::ObjectRemoved
                    }
                };
                self.sim.pump();
                let in_object: Vec<usize> = (0..SCRIPTS).filter(|&s| self.scripts[s].object == object).collect();
                self.revoked(mark, |u| in_object.contains(&u.script), cause)?;
            }
            Op::Restart => {
                self.sim.region.region_restart(now);
                self.sim.pump();
                self.revoked(mark, |_| true, Cause::RegionRestart)?;
            }
        }
        Ok(())
    }

    fn object_key(&self, o: usize) -> Key {
        let placement = [0, 0, 1, 2];
        let first = placement.iter().position(|&p| p == o).unwrap();
        self.scripts[first].object
    }

    fn pick(&self, i: &usize) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| i % self.sessions.len())
    }

    /// Drains every queue, then checks that every accepted message arrived.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..1000 {
            let mut any = false;
            for s in 0..SCRIPTS {
                if self.sim.region.pending_events(self.scripts[s].script) > 0 {
                    any = true;
                    let opened = self.poll(s, usize::MAX)?;
                    prop_assert!(opened.is_empty());
                }
            }
            if !any {
                break;
            }
        }
        for s in &self.sessions {
            if s.revoked {
                continue;
            }
            if s.script_closed.is_some() {
                // A script that closes its own session discards what the client
                // sent that it had not read yet (held by back-pressure), as
                // closing a socket discards unread input; all queued before arrived.
                let required = s.sent.iter().rposition(|(_, held)| !held).map_or(0, |i| i + 1);
                prop_assert!(s.received >= required, "lost a queued message: {s:?}");
            } else {
                prop_assert_eq!(s.received, s.sent.len(), "lost a message: {:?}", s);
            }
            if s.script_closed.is_none() && !s.peer_closed {
                prop_assert_eq!(s.ws_close_seen, s.client_closed.is_some(), "{:?}", s);
            }
            if s.surely_ended() {
                prop_assert!(s.ws_close_seen, "an ended session of a live URL gets its WS_CLOSE: {:?}", s);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn revoked_urls_stay_silent_and_accepted_messages_arrive_once_in_order(
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut model = Model::new();
        for op in &ops {
            model.apply(op)?;
        }
        model.finish()?;
    }
}

#[test]
fn model_sees_back_pressure() {
    // The property's configuration does reach the paused state it is meant to cover.
    let mut model = Model::new();
    model.apply(&Op::Request(0)).unwrap();
    model.apply(&Op::Connect(0)).unwrap();
    for i in 0..QUEUE + 4 {
        model.apply(&Op::Text(0, vec![format!("{i}")])).unwrap();
    }
    model.apply(&Op::Text(0, (0..5).map(|i| format!("burst {i}")).collect())).unwrap();
    assert!(model.sim.paused.contains(&model.sessions[0].conn));
    assert!(model.sessions[0].sent.iter().any(|(_, held)| *held));
    model.finish().unwrap();
    assert_eq!(model.sessions[0].received, QUEUE + 9);
}
