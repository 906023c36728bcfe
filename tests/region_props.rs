//! Property tests of region-scope routing (`SPEC.md` §4, §6) against a plain
//! reference model written with `HashMap`s and `Vec`s.
//!
//! (a) Random sequences of listen / release / reset / remove-object / client
//!     `sub`, `uns`, `msg`, `to` / script send, broadcast, close / connection
//!     drop / queue drains deliver exactly what the model predicts: the same
//!     events, in the same order, at every script, and the same frames at every
//!     client. Session keys are matched to the model's symbolic sessions
//!     one-to-one, so a key that changes or is reused is a failure too.
//! (b) No event ever names a domain a script no longer listens on, and a
//!     revoked listener's sends and broadcasts fail.

mod region_harness;

use std::collections::{HashMap, HashSet, VecDeque};

use lsl_websocket::{Config, ConnectionId, EventKind, Key, SendError, WebsocketRequest};
use proptest::prelude::*;
use proptest::sample::Index;
use region_harness::{Harness, key, object, region_request, script};

/// Script `i` lives in object `SCRIPT_OBJECT[i]`: two scripts share object 0.
const SCRIPT_OBJECT: [usize; 4] = [0, 0, 1, 2];
const OBJECTS: usize = 3;
const DOMAINS: [&str; 3] = ["a", "b", "ü ✓"];
const CLIENTS: usize = 3;
/// Short queues so `busy` happens; two subscriptions per session so `sub` can be refused.
/// No busy grace: a full listener is answered `busy` at once, which this model
/// follows (the grace itself is in tests/region_scope.rs and the scenarios).
const QUEUE: usize = 4;
const SUBSCRIPTIONS: usize = 2;
/// `WS_MAX_MESSAGE` of a "small" listener; payloads are longer or shorter.
const SMALL_MAX: usize = 6;
const PAYLOADS: [&str; 6] = ["", "a,b", "x\ny", "ü😀", "msg,a,b,", "long payload, really"];

#[derive(Debug, Clone)]
enum Op {
    Listen { s: usize, d: usize, small: bool },
    ReleaseDomain { s: usize, d: usize },
    Reset { s: usize },
    RemoveObject { o: usize },
    Sub { c: usize, d: usize },
    Uns { c: usize, d: usize },
    Msg { c: usize, d: usize, p: usize },
    To { c: usize, o: usize, d: usize, p: usize },
    Send { s: usize, k: Index, p: usize },
    Broadcast { s: usize, d: usize, p: usize },
    Close { s: usize, k: Index },
    Drop { c: usize },
    Drain { s: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let (s, d, c, o, p) = (0..SCRIPT_OBJECT.len(), 0..DOMAINS.len(), 0..CLIENTS, 0..OBJECTS, 0..PAYLOADS.len());
    prop_oneof![
        4 => (s.clone(), d.clone(), prop::bool::weighted(0.25)).prop_map(|(s, d, small)| Op::Listen { s, d, small }),
        1 => (s.clone(), d.clone()).prop_map(|(s, d)| Op::ReleaseDomain { s, d }),
        1 => s.clone().prop_map(|s| Op::Reset { s }),
        1 => o.clone().prop_map(|o| Op::RemoveObject { o }),
        3 => (c.clone(), d.clone()).prop_map(|(c, d)| Op::Sub { c, d }),
        1 => (c.clone(), d.clone()).prop_map(|(c, d)| Op::Uns { c, d }),
        4 => (c.clone(), d.clone(), p.clone()).prop_map(|(c, d, p)| Op::Msg { c, d, p }),
        2 => (c.clone(), o, d.clone(), p.clone()).prop_map(|(c, o, d, p)| Op::To { c, o, d, p }),
        2 => (s.clone(), any::<Index>(), p.clone()).prop_map(|(s, k, p)| Op::Send { s, k, p }),
        2 => (s.clone(), d, p).prop_map(|(s, d, p)| Op::Broadcast { s, d, p }),
        1 => (s.clone(), any::<Index>()).prop_map(|(s, k)| Op::Close { s, k }),
        1 => c.prop_map(|c| Op::Drop { c }),
        3 => s.prop_map(|s| Op::Drain { s }),
    ]
}

fn info(s: usize) -> lsl_websocket::ScriptInfo {
    script(s as u32, SCRIPT_OBJECT[s] as u32)
}

fn config() -> Config {
    Config {
        event_queue: QUEUE,
        subscriptions_per_session: SUBSCRIPTIONS,
        busy_grace: std::time::Duration::ZERO,
        ..Config::default()
    }
}

/// Distinct payload text per op, so a message delivered twice or to the wrong place shows.
fn payload(p: usize, n: usize) -> String {
    format!("{}#{n}", PAYLOADS[p])
}

// ------------------------------------------------------------ the reference model

/// Who an expected event names: a request key known up front, or a model session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Request(Key),
    Session(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    id: Id,
    kind: EventKind,
    domain: String,
    data: String,
}

#[derive(Debug, Clone, Copy)]
struct Listener {
    id: u64,
    script: usize,
    domain: usize,
    max: usize,
}

#[derive(Debug, Clone, Copy)]
struct Contact {
    domain: usize,
    session: u32,
    subscribed: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// Every live listener, in grant order.
    listeners: Vec<Listener>,
    next_listener: u64,
    /// Per client slot: the domains it addressed, in first-contact order.
    contacts: Vec<Vec<Contact>>,
    /// Per domain: subscribed client slots, in subscription order.
    subscribers: HashMap<usize, Vec<usize>>,
    next_session: u32,
    /// Per script: queued events tagged with the listener they belong to.
    queues: Vec<VecDeque<(Option<u64>, Expected)>>,
    /// Per client slot: frames expected since the last check.
    frames: Vec<Vec<String>>,
}

impl Model {
    fn new() -> Model {
        Model {
            contacts: vec![Vec::new(); CLIENTS],
            queues: vec![VecDeque::new(); SCRIPT_OBJECT.len()],
            frames: vec![Vec::new(); CLIENTS],
            ..Model::default()
        }
    }

    fn listeners_of(&self, d: usize) -> Vec<Listener> {
        self.listeners.iter().copied().filter(|l| l.domain == d).collect()
    }

    fn listener(&self, s: usize, d: usize) -> Option<Listener> {
        self.listeners.iter().copied().find(|l| l.script == s && l.domain == d)
    }

    fn push(&mut self, l: Listener, id: Id, kind: EventKind, data: &str) {
        let e = Expected { id, kind, domain: DOMAINS[l.domain].to_string(), data: data.to_string() };
        self.queues[l.script].push_back((Some(l.id), e));
    }

    fn contact(&self, c: usize, d: usize) -> Option<Contact> {
        self.contacts[c].iter().copied().find(|x| x.domain == d)
    }

    fn contact_session(&mut self, c: usize, d: usize) -> u32 {
        if let Some(x) = self.contact(c, d) {
            return x.session;
        }
        // Three domains never reach the bound on contacts (twice the subscriptions).
        let session = self.next_session;
        self.next_session += 1;
        self.contacts[c].push(Contact { domain: d, session, subscribed: false });
        session
    }

    fn forget(&mut self, c: usize, d: usize) -> Option<Contact> {
        let i = self.contacts[c].iter().position(|x| x.domain == d)?;
        Some(self.contacts[c].remove(i))
    }

    /// Where a session lives: client slot and domain.
    fn find_session(&self, session: u32) -> Option<(usize, Contact)> {
        (0..CLIENTS).find_map(|c| self.contacts[c].iter().find(|x| x.session == session).map(|x| (c, *x)))
    }

    fn close_to_listeners(&mut self, contact: Contact, data: &str) {
        if contact.subscribed {
            for l in self.listeners_of(contact.domain) {
                self.push(l, Id::Session(contact.session), EventKind::Close, data);
            }
        }
    }

    fn listen(&mut self, s: usize, d: usize, max: usize, request: Key, url: &str) {
        if self.listener(s, d).is_some() {
            let e = Expected {
                id: Id::Request(request),
                kind: EventKind::UrlDenied,
                domain: DOMAINS[d].into(),
                data: "bad-option".into(),
            };
            self.queues[s].push_back((None, e));
            return;
        }
        let l = Listener { id: self.next_listener, script: s, domain: d, max };
        self.next_listener += 1;
        self.listeners.push(l);
        self.push(l, Id::Request(request), EventKind::UrlGranted, url);
        for c in self.subscribers.get(&d).cloned().unwrap_or_default() {
            let session = self.contact(c, d).expect("a subscriber has a contact").session;
            self.push(l, Id::Session(session), EventKind::Open, "");
        }
    }

    fn revoke(&mut self, l: Listener) {
        self.queues[l.script].retain(|(tag, _)| *tag != Some(l.id));
        self.listeners.retain(|x| x.id != l.id);
        if self.listeners_of(l.domain).is_empty() {
            for c in self.subscribers.remove(&l.domain).unwrap_or_default() {
                self.frames[c].push(format!("uns,{}", DOMAINS[l.domain]));
                self.forget(c, l.domain);
            }
        }
    }

    fn revoke_where(&mut self, pred: impl Fn(&Listener) -> bool) {
        let doomed: Vec<Listener> = self.listeners.iter().copied().filter(|l| pred(l)).collect();
        for l in doomed {
            self.revoke(l);
        }
    }

    fn sub(&mut self, c: usize, d: usize) {
        let listeners = self.listeners_of(d);
        if listeners.is_empty() {
            return self.frames[c].push(format!("err,{},no-listener", DOMAINS[d]));
        }
        if self.contact(c, d).is_some_and(|x| x.subscribed) {
            return;
        }
        if self.contacts[c].iter().filter(|x| x.subscribed).count() >= SUBSCRIPTIONS {
            return self.frames[c].push(format!("err,{},busy", DOMAINS[d]));
        }
        // Every WS_OPEN needs room: a full listener refuses the `sub` (SPEC §5).
        if listeners.iter().any(|l| self.queues[l.script].len() >= QUEUE) {
            return self.frames[c].push(format!("err,{},busy", DOMAINS[d]));
        }
        let session = self.contact_session(c, d);
        self.contacts[c].iter_mut().filter(|x| x.domain == d).for_each(|x| x.subscribed = true);
        self.subscribers.entry(d).or_default().push(c);
        for l in listeners {
            self.push(l, Id::Session(session), EventKind::Open, "");
        }
    }

    /// Ends one contact (client `uns`, script close): subscribers list, listeners, key.
    fn drop_contact(&mut self, c: usize, d: usize, close: &str) {
        let Some(contact) = self.forget(c, d) else { return };
        if let Some(subs) = self.subscribers.get_mut(&d) {
            subs.retain(|&x| x != c);
        }
        self.close_to_listeners(contact, close);
    }

    fn msg(&mut self, c: usize, object: Option<usize>, d: usize, text: &str) {
        let listeners: Vec<Listener> =
            self.listeners_of(d).into_iter().filter(|l| object.is_none_or(|o| SCRIPT_OBJECT[l.script] == o)).collect();
        if listeners.is_empty() {
            return self.frames[c].push(format!("err,{},no-listener", DOMAINS[d]));
        }
        let session = self.contact_session(c, d);
        let (mut too_large, mut busy) = (false, false);
        for l in listeners {
            if text.len() > l.max {
                too_large = true;
            } else if self.queues[l.script].len() >= QUEUE {
                busy = true;
            } else {
                self.push(l, Id::Session(session), EventKind::Text, text);
            }
        }
        if too_large {
            self.frames[c].push(format!("err,{},too-large", DOMAINS[d]));
        }
        if busy {
            self.frames[c].push(format!("err,{},busy", DOMAINS[d]));
        }
    }

    fn send(&mut self, s: usize, session: Option<u32>, text: &str) -> Result<(), SendError> {
        let (c, contact) = session.and_then(|x| self.find_session(x)).ok_or(SendError::NoSession)?;
        let l = self.listener(s, contact.domain).ok_or(SendError::NoSession)?;
        if text.len() > l.max {
            return Err(SendError::TooLarge);
        }
        self.frames[c].push(format!("msg,{},{text}", DOMAINS[contact.domain]));
        Ok(())
    }

    fn broadcast(&mut self, s: usize, d: usize, text: &str) -> Result<usize, SendError> {
        let l = self.listener(s, d).ok_or(SendError::BadDomain)?;
        if text.len() > l.max {
            return Err(SendError::TooLarge);
        }
        let subs = self.subscribers.get(&d).cloned().unwrap_or_default();
        for &c in &subs {
            self.frames[c].push(format!("msg,{},{text}", DOMAINS[d]));
        }
        Ok(subs.len())
    }

    fn close(&mut self, s: usize, session: Option<u32>) -> Result<(), ()> {
        let (c, contact) = session.and_then(|x| self.find_session(x)).ok_or(())?;
        self.listener(s, contact.domain).ok_or(())?;
        self.frames[c].push(format!("uns,{}", DOMAINS[contact.domain]));
        self.drop_contact(c, contact.domain, "1000 bye");
        Ok(())
    }

    fn connection_lost(&mut self, c: usize) {
        for contact in std::mem::take(&mut self.contacts[c]) {
            if let Some(subs) = self.subscribers.get_mut(&contact.domain) {
                subs.retain(|&x| x != c);
            }
            self.close_to_listeners(contact, "1006 connection lost");
        }
        self.frames[c].clear();
    }
}

// ------------------------------------------------------------ running both side by side

struct Run {
    h: Harness,
    model: Model,
    conns: Vec<ConnectionId>,
    /// Real session keys and model sessions, one-to-one.
    key_of: HashMap<u32, Key>,
    session_of: HashMap<Key, u32>,
    /// Session keys each script has seen, in order: what it may send to.
    known: Vec<Vec<Key>>,
    url: String,
}

impl Run {
    fn new(colliding: bool) -> Run {
        let mut h = if colliding { Harness::colliding(config()) } else { Harness::new(config()) };
        let conns = (0..CLIENTS).map(|_| h.connect()).collect();
        let url = h.region.region_url();
        Run {
            h,
            model: Model::new(),
            conns,
            key_of: HashMap::new(),
            session_of: HashMap::new(),
            known: vec![Vec::new(); SCRIPT_OBJECT.len()],
            url,
        }
    }

    /// A key the script knows (or a key nobody minted, if it knows none) and its model session.
    fn pick(&self, s: usize, k: &Index) -> (Key, Option<u32>) {
        if self.known[s].is_empty() {
            return (key(0xee, 0), None);
        }
        let real = *k.get(&self.known[s]);
        (real, self.session_of.get(&real).copied())
    }

    fn apply(&mut self, n: usize, op: &Op) -> Result<(), TestCaseError> {
        let now = self.h.now;
        match *op {
            Op::Listen { s, d, small } => {
                let request =
                    WebsocketRequest { max_message: small.then_some(SMALL_MAX), ..region_request(DOMAINS[d]) };
                let key = self.h.region.request_websocket(info(s), &request);
                let max = if small { SMALL_MAX } else { self.h.region.config().max_message };
                self.model.listen(s, d, max, key, &self.url);
            }
            Op::ReleaseDomain { s, d } => {
                let real = self.h.region.release_domain(now, info(s).script, DOMAINS[d]);
                let l = self.model.listener(s, d);
                prop_assert_eq!(real.is_ok(), l.is_some());
                if let Some(l) = l {
                    self.model.revoke(l);
                }
            }
            Op::Reset { s } => {
                self.h.region.script_reset(now, info(s).script);
                self.model.revoke_where(|l| l.script == s);
                self.model.queues[s].clear();
            }
            Op::RemoveObject { o } => {
                self.h.region.object_removed(now, object(o as u32));
                self.model.revoke_where(|l| SCRIPT_OBJECT[l.script] == o);
            }
            Op::Sub { c, d } => {
                self.h.send(self.conns[c], &format!("sub,{}", DOMAINS[d]));
                self.model.sub(c, d);
            }
            Op::Uns { c, d } => {
                self.h.send(self.conns[c], &format!("uns,{}", DOMAINS[d]));
                if self.model.contact(c, d).is_some_and(|x| x.subscribed) {
                    self.model.drop_contact(c, d, "1000 unsubscribed");
                }
            }
            Op::Msg { c, d, p } => {
                let text = payload(p, n);
                self.h.send(self.conns[c], &format!("msg,{},{text}", DOMAINS[d]));
                self.model.msg(c, None, d, &text);
            }
            Op::To { c, o, d, p } => {
                let text = payload(p, n);
                self.h.send(self.conns[c], &format!("to,{},{},{text}", object(o as u32), DOMAINS[d]));
                self.model.msg(c, Some(o), d, &text);
            }
            Op::Send { s, ref k, p } => {
                let text = payload(p, n);
                let (real_key, session) = self.pick(s, k);
                let real = self.h.region.websocket_send(info(s).script, real_key, &text);
                prop_assert_eq!(real, self.model.send(s, session, &text), "send {} by {}", real_key, s);
            }
            Op::Broadcast { s, d, p } => {
                let text = payload(p, n);
                let real = self.h.region.websocket_broadcast(info(s).script, DOMAINS[d], &text);
                prop_assert_eq!(real, self.model.broadcast(s, d, &text));
            }
            Op::Close { s, ref k } => {
                let (real_key, session) = self.pick(s, k);
                let real = self.h.region.websocket_close(now, info(s).script, real_key, 1000, "bye");
                prop_assert_eq!(real.is_ok(), self.model.close(s, session).is_ok());
            }
            Op::Drop { c } => {
                self.h.peer_closed(self.conns[c]);
                self.model.connection_lost(c);
                self.conns[c] = self.h.connect();
            }
            Op::Drain { s } => self.drain_script(s)?,
        }
        self.check_frames()
    }

    fn check_frames(&mut self) -> Result<(), TestCaseError> {
        self.h.drain();
        for c in 0..CLIENTS {
            let real = self.h.texts(self.conns[c]);
            let expected = std::mem::take(&mut self.model.frames[c]);
            prop_assert_eq!(real, expected, "frames at client {}", c);
        }
        Ok(())
    }

    fn drain_script(&mut self, s: usize) -> Result<(), TestCaseError> {
        let real = self.h.events(info(s).script);
        let expected: Vec<Expected> = self.model.queues[s].drain(..).map(|(_, e)| e).collect();
        prop_assert_eq!(real.len(), expected.len(), "script {}: got {:?}, expected {:?}", s, real, expected);
        for (r, e) in real.iter().zip(&expected) {
            prop_assert_eq!(
                (r.kind, r.domain.as_str(), r.data.as_str()),
                (e.kind, e.domain.as_str(), e.data.as_str()),
                "script {}: got {:?}, expected {:?}",
                s,
                real,
                expected
            );
            match e.id {
                Id::Request(key) => prop_assert_eq!(r.id, key),
                Id::Session(session) => {
                    self.match_key(session, r.id)?;
                    if !self.known[s].contains(&r.id) {
                        self.known[s].push(r.id);
                    }
                }
            }
        }
        Ok(())
    }

    /// Model sessions and real keys must correspond one-to-one.
    fn match_key(&mut self, session: u32, real: Key) -> Result<(), TestCaseError> {
        match (self.key_of.get(&session), self.session_of.get(&real)) {
            (Some(&k), _) => prop_assert_eq!(k, real, "session {} changed key", session),
            (None, Some(&other)) => {
                prop_assert!(false, "key {} of session {} reused for session {}", real, other, session)
            }
            (None, None) => {
                self.key_of.insert(session, real);
                self.session_of.insert(real, session);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// (a) Every message reaches exactly what the reference model predicts.
    #[test]
    fn routing_matches_the_reference_model(colliding in any::<bool>(), ops in prop::collection::vec(op(), 1..80)) {
        let mut run = Run::new(colliding);
        for (n, op) in ops.iter().enumerate() {
            run.apply(n, op)?;
        }
        for s in 0..SCRIPT_OBJECT.len() {
            run.drain_script(s)?;
        }
    }

    /// (b) After a revocation, no event names the revoked listener's domain at
    /// its script (until it listens again), queued ones included, and its keys
    /// and broadcasts fail.
    #[test]
    fn no_event_after_revocation(colliding in any::<bool>(), ops in prop::collection::vec(op(), 1..80)) {
        let mut h = if colliding { Harness::colliding(config()) } else { Harness::new(config()) };
        let mut conns: Vec<ConnectionId> = (0..CLIENTS).map(|_| h.connect()).collect();
        // What each script listens on, as the API told it.
        let mut listening: Vec<HashSet<usize>> = vec![HashSet::new(); SCRIPT_OBJECT.len()];
        // Keys each script saw, with their domain.
        let mut keys: Vec<Vec<(Key, usize)>> = vec![Vec::new(); SCRIPT_OBJECT.len()];

        // Drains a script and checks that every session event names a domain it listens on.
        let check = |h: &mut Harness, s: usize, listening: &[HashSet<usize>], keys: &mut Vec<Vec<(Key, usize)>>| -> Result<(), TestCaseError> {
            for e in h.events(info(s).script) {
                if matches!(e.kind, EventKind::UrlGranted | EventKind::UrlDenied) {
                    continue;
                }
                let d = DOMAINS.iter().position(|d| *d == e.domain.as_str());
                prop_assert!(d.is_some_and(|d| listening[s].contains(&d)), "script {} not listening got {:?}", s, e);
                keys[s].push((e.id, d.unwrap()));
            }
            Ok(())
        };

        for (n, op) in ops.iter().enumerate() {
            let now = h.now;
            // Scripts whose listening changes, with the domains they lose.
            let mut revoked: Vec<(usize, Vec<usize>)> = Vec::new();
            match *op {
                Op::Listen { s, d, small } => {
                    check(&mut h, s, &listening, &mut keys)?;
                    let request = WebsocketRequest { max_message: small.then_some(SMALL_MAX), ..region_request(DOMAINS[d]) };
                    h.region.request_websocket(info(s), &request);
                    listening[s].insert(d);
                }
                Op::ReleaseDomain { s, d } => {
                    if h.region.release_domain(now, info(s).script, DOMAINS[d]).is_ok() {
                        revoked.push((s, vec![d]));
                    }
                }
                Op::Reset { s } => {
                    h.region.script_reset(now, info(s).script);
                    revoked.push((s, (0..DOMAINS.len()).collect()));
                }
                Op::RemoveObject { o } => {
                    h.region.object_removed(now, object(o as u32));
                    for s in (0..SCRIPT_OBJECT.len()).filter(|&s| SCRIPT_OBJECT[s] == o) {
                        revoked.push((s, (0..DOMAINS.len()).collect()));
                    }
                }
                Op::Sub { c, d } => h.send(conns[c], &format!("sub,{}", DOMAINS[d])),
                Op::Uns { c, d } => h.send(conns[c], &format!("uns,{}", DOMAINS[d])),
                Op::Msg { c, d, p } => h.send(conns[c], &format!("msg,{},{}", DOMAINS[d], payload(p, n))),
                Op::To { c, o, d, p } => {
                    h.send(conns[c], &format!("to,{},{},{}", object(o as u32), DOMAINS[d], payload(p, n)));
                }
                Op::Send { s, ref k, p } => {
                    if !keys[s].is_empty() {
                        let (key, d) = *k.get(&keys[s]);
                        let result = h.region.websocket_send(info(s).script, key, &payload(p, n));
                        if !listening[s].contains(&d) {
                            prop_assert_eq!(result, Err(SendError::NoSession));
                        }
                    }
                }
                Op::Broadcast { s, d, p } => {
                    let result = h.region.websocket_broadcast(info(s).script, DOMAINS[d], &payload(p, n));
                    prop_assert_eq!(result == Err(SendError::BadDomain), !listening[s].contains(&d));
                }
                Op::Close { s, ref k } => {
                    if !keys[s].is_empty() {
                        let (key, d) = *k.get(&keys[s]);
                        let result = h.region.websocket_close(now, info(s).script, key, 1000, "bye");
                        if !listening[s].contains(&d) {
                            prop_assert!(result.is_err());
                        }
                    }
                }
                Op::Drop { c } => {
                    h.peer_closed(conns[c]);
                    conns[c] = h.connect();
                }
                Op::Drain { s } => check(&mut h, s, &listening, &mut keys)?,
            }
            for (s, domains) in revoked {
                for d in domains {
                    listening[s].remove(&d);
                    prop_assert_eq!(h.region.websocket_broadcast(info(s).script, DOMAINS[d], "x"), Err(SendError::BadDomain));
                }
                // Right after the revocation: nothing queued of it may be left.
                check(&mut h, s, &listening, &mut keys)?;
            }
            h.drain();
        }
        for s in 0..SCRIPT_OBJECT.len() {
            check(&mut h, s, &listening, &mut keys)?;
        }
    }
}

#[test]
fn model_sanity() {
    // A fixed sequence through the model runner, so a broken runner cannot pass vacuously.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let k = any::<Index>().new_tree(&mut runner).unwrap().current();
    let mut run = Run::new(false);
    let ops = [
        Op::Listen { s: 0, d: 0, small: false },
        Op::Listen { s: 2, d: 0, small: false },
        Op::Sub { c: 0, d: 0 },
        Op::Msg { c: 1, d: 0, p: 1 },
        Op::Drain { s: 0 },
        Op::Drain { s: 2 },
        Op::Send { s: 0, k, p: 2 },
        Op::Broadcast { s: 2, d: 0, p: 3 },
        Op::RemoveObject { o: 0 },
        Op::ReleaseDomain { s: 2, d: 0 },
        Op::Drain { s: 0 },
        Op::Drain { s: 2 },
    ];
    for (n, op) in ops.iter().enumerate() {
        run.apply(n, op).unwrap();
    }
    assert_eq!(run.known[0].len(), 2, "saw the subscriber's and the talker's keys");
    assert_eq!(run.key_of.len(), 2);
}
