//! The `Region` state machine: all URLs, sessions and script queues of one region.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Config;
use crate::entropy::Entropy;
use crate::envelope::{self, ClientFrame, ErrorWord, ServerFrame};
use crate::frame::{self, Decoded, Violation};
use crate::handshake::{self, Parsed, Status};
use crate::hash::Map;
use crate::key::Key;
use crate::lifecycle::Cause;
use crate::routing::Router;
use crate::script::{
    CloseError, DenyReason, Event, EventKind, ReleaseError, Scope, ScriptQueue, SendError, Text, UrlId,
    WebsocketRequest,
};
use crate::session::{Conn, ConnectionId, Contact, Headers, Phase, Route, Session};
use crate::url;

/// Who makes a script call: the script and the object and owner it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScriptInfo {
    /// The script's key.
    pub script: Key,
    /// The key of the object (prim) the script is in.
    pub object: Key,
    /// The key of the object's owner.
    pub owner: Key,
}

/// A transport event or the passing of time, fed to [`Region::handle_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A connection was accepted from `remote`; `conn` is the embedder's id for it.
    Accepted {
        /// The embedder's id for the connection.
        conn: ConnectionId,
        /// The peer's address (`x-remote-ip`, and the key of the handshake rate limit).
        remote: core::net::IpAddr,
    },
    /// Bytes arrived on a connection.
    Received {
        /// The connection.
        conn: ConnectionId,
        /// The bytes, in order; any split is fine.
        data: &'a [u8],
    },
    /// The peer closed the connection, or it failed. The core forgets it.
    PeerClosed {
        /// The connection.
        conn: ConnectionId,
    },
    /// The deadline from [`Region::poll_timeout`] passed.
    Timeout,
}

/// Something the embedder must act on, drained with [`Region::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The connection has bytes to write: call [`Region::poll_transmit`] when the
    /// socket can take them. Bytes stay in the core (and count against the
    /// outgoing buffer) until taken, which is what makes `WS_ERR_BUSY` honest.
    Transmit(ConnectionId),
    /// Write what [`Region::poll_transmit`] still yields for the connection,
    /// then close it. Once `poll_transmit` returns `None` the id is free again.
    Close(ConnectionId),
    /// Stop reading from the connection: its script's event queue is full.
    PauseReading(ConnectionId),
    /// Read from the connection again.
    ResumeReading(ConnectionId),
    /// The script has events: drain them with [`Region::poll_event`].
    Events(Key),
    /// With [`Config::serve_other_paths`], a request for a path outside
    /// `/lslws/`: answer it with [`Region::respond`].
    HttpRequest {
        /// The connection to answer on.
        conn: ConnectionId,
        /// The request method, e.g. `GET`.
        method: String,
        /// The request target, e.g. `/index.html?x=1`.
        target: String,
    },
    /// A URL was revoked (for the embedder's log; the script learns from LSL's own events):
    /// an object-scope URL, or the region endpoint at a restart. A script that
    /// stops listening on a region domain revokes no URL (the endpoint lives
    /// on), so it is not reported here.
    Revoked {
        /// The URL that stopped resolving.
        url: String,
        /// Why.
        cause: Cause,
    },
}

/// An input the core cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `Received` or `PeerClosed` for a connection the core does not know
    /// (never accepted, or already forgotten). Harmless to ignore.
    #[error("unknown connection {0:?}")]
    UnknownConnection(ConnectionId),
    /// `Accepted` for an id that is still in use.
    #[error("connection {0:?} is still in use")]
    ConnectionInUse(ConnectionId),
}

#[derive(Debug)]
struct UrlRecord {
    url: String,
    cap: Key,
    script: Key,
    object: Key,
    owner: Key,
    max_message: usize,
    /// Region scope: the domain listened on. Object scope: `None`.
    domain: Option<Arc<str>>,
    /// Object scope: open sessions, in the order they opened.
    sessions: Vec<ConnectionId>,
}

/// Why held input is being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pump {
    /// New bytes from the transport: a paused session keeps holding them.
    Read,
    /// The script made room: decode what is held while the queue has room.
    Resume,
    /// The peer is gone: deliver everything held, past the queue limit.
    Drain,
}

/// What the capability map points the region endpoint's capability at.
const REGION_ENDPOINT: UrlId = UrlId::MAX;

/// Room for an envelope head (`to,<key>,<domain>,`) on top of the message cap.
const ENVELOPE_HEAD: usize = 3 + 37 + envelope::MAX_DOMAIN_LEN + 1;

/// Header names `llGetWebsocketHeader` answers, in [`Headers`] order after the first two.
const STORED_HEADERS: [&str; 5] = ["x-path-info", "x-query-string", "user-agent", "origin", "sec-websocket-protocol"];

/// All WebSocket state of one region: URLs, sessions, script queues, timers.
///
/// A `Region` does no I/O. Feed it transport events with
/// [`handle_input`](Region::handle_input), make script calls and lifecycle
/// notifications with its methods, and drain [`poll_output`](Region::poll_output),
/// [`poll_transmit`](Region::poll_transmit), [`poll_event`](Region::poll_event)
/// and [`poll_timeout`](Region::poll_timeout). See the [crate docs](crate) for a whole session.
pub struct Region {
    config: Config,
    entropy: Box<dyn Entropy>,
    /// The latest time any input carried; used where a call has no `now` of its own.
    now: Instant,
    next_url: UrlId,
    urls: BTreeMap<UrlId, UrlRecord>,
    caps: Map<Key, UrlId>,
    sessions: Map<Key, ConnectionId>,
    conns: Map<ConnectionId, Conn>,
    scripts: Map<Key, ScriptQueue>,
    outputs: VecDeque<Output>,
    timers: BinaryHeap<Reverse<(Instant, ConnectionId)>>,
    /// Handshakes per remote address in the current one-second window.
    rate: Map<core::net::IpAddr, (Instant, u32)>,
    /// The region endpoint's capability for this region life.
    endpoint: Key,
    region_sessions: usize,
    router: Router,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("urls", &self.urls.len())
            .field("connections", &self.conns.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Region {
    /// A region with no URLs. `entropy` mints every capability and key; `now` is the start time.
    pub fn new(config: Config, entropy: Box<dyn Entropy>, now: Instant) -> Region {
        let mut region = Region {
            config,
            entropy,
            now,
            next_url: 0,
            urls: BTreeMap::new(),
            caps: Map::default(),
            sessions: Map::default(),
            conns: Map::default(),
            scripts: Map::default(),
            outputs: VecDeque::new(),
            timers: BinaryHeap::new(),
            rate: Map::default(),
            endpoint: crate::key::NULL_KEY,
            region_sessions: 0,
            router: Router::default(),
        };
        region.mint_endpoint();
        region
    }

    /// The region endpoint's `ws://` URL for this region life (it changes at a restart).
    pub fn region_url(&self) -> String {
        url::format_url(false, &self.config.authority, self.endpoint)
    }

    fn mint_endpoint(&mut self) {
        self.endpoint = self.mint_cap();
        self.caps.insert(self.endpoint, REGION_ENDPOINT);
    }

    /// Replaces the CLEP channel hash the routing table is keyed by, so a test
    /// can force domains onto one channel. Not for production use.
    #[doc(hidden)]
    pub fn set_channel_hash_for_tests(&mut self, hash: fn(&str) -> i32) {
        self.router = Router::with_hash(hash);
    }

    /// The configuration the region runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---------------------------------------------------------------- transport

    /// Applies a transport event or a timeout at time `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), InputError> {
        self.now = self.now.max(now);
        match input {
            Input::Accepted { conn, remote } => {
                if self.conns.get(&conn).is_some_and(|c| !matches!(c.phase, Phase::Closed)) {
                    return Err(InputError::ConnectionInUse(conn));
                }
                self.conns.insert(conn, Conn::new(remote, now + self.config.handshake_timeout));
                self.arm(conn);
                Ok(())
            }
            Input::Received { conn, data } => self.received(now, conn, data),
            Input::PeerClosed { conn } => {
                let Some(c) = self.conns.get(&conn) else {
                    return Err(InputError::UnknownConnection(conn));
                };
                if c.session().is_some() {
                    // What the client sent before it left is delivered, even past a full queue.
                    if !c.inbuf.is_empty() {
                        self.pump_with(conn, &[], Pump::Drain);
                    }
                    self.end_session(conn, Some((1006, "connection lost")));
                }
                self.conns.remove(&conn);
                Ok(())
            }
            Input::Timeout => {
                self.handle_timeout(now);
                Ok(())
            }
        }
    }

    /// The next output, if any. Call until `None` after every input and script call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next bytes to write to `conn`, in order. `None` when nothing is pending.
    pub fn poll_transmit(&mut self, conn: ConnectionId) -> Option<Bytes> {
        let c = self.conns.get_mut(&conn)?;
        c.tx_notified = false;
        if let Some(bytes) = c.out.pop_front() {
            // Returned at once, so the bytes move straight to the caller.
            c.out_len -= bytes.len();
            return Some(bytes);
        }
        if matches!(c.phase, Phase::Closed) {
            self.conns.remove(&conn);
        } else if c.out.capacity() > 8 {
            // Give back a queue that grew during a burst.
            c.out = VecDeque::new();
        }
        None
    }

    /// When the embedder must next call [`handle_input`](Region::handle_input)
    /// with [`Input::Timeout`]. It may be early, never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Answers an [`Output::HttpRequest`] with a complete response, then closes the connection.
    /// Fails with [`InputError::UnknownConnection`] if the connection is gone.
    pub fn respond(
        &mut self,
        conn: ConnectionId,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), InputError> {
        if !self.conns.get(&conn).is_some_and(|c| matches!(c.phase, Phase::Http { .. })) {
            return Err(InputError::UnknownConnection(conn));
        }
        let mut response = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            handshake::reason_phrase(status),
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body);
        self.queue(conn, Bytes::from(response));
        self.close_now(conn);
        Ok(())
    }

    // ---------------------------------------------------------------- script calls

    /// `llRequestWebsocket`: returns the request key at once; the answer comes
    /// as a `WS_URL_GRANTED` or `WS_URL_DENIED` event.
    ///
    /// Object scope mints a new URL. Region scope makes the script listen on
    /// `request.domain` of the region endpoint, whose URL is granted; clients
    /// already subscribed to the domain then open to the script (`WS_OPEN`).
    pub fn request_websocket(&mut self, caller: ScriptInfo, request: &WebsocketRequest) -> Key {
        let request_key = self.mint_key();
        let domain = Text::from(request.domain.as_deref().unwrap_or(""));
        let outcome = self.grant(caller, request);
        let (url, kind, data) = match outcome {
            Ok(id) => (Some(id), EventKind::UrlGranted, Text::from(self.urls[&id].url.clone())),
            Err(reason) => (None, EventKind::UrlDenied, Text::from(reason.as_str())),
        };
        self.push_event(caller.script, url, Event { id: request_key, kind, domain, data });
        if let Some(id) = url {
            self.greet_subscribers(id);
        }
        request_key
    }

    fn grant(&mut self, caller: ScriptInfo, request: &WebsocketRequest) -> Result<UrlId, DenyReason> {
        let max_message = request.max_message.unwrap_or(self.config.max_message);
        if max_message == 0 || max_message > self.config.max_message {
            return Err(DenyReason::BadOption);
        }
        let domain = match (request.scope, request.domain.as_deref()) {
            (Scope::Object, None) => None,
            (Scope::Region, Some(d)) if envelope::validate_domain(d).is_ok() => Some(d),
            _ => return Err(DenyReason::BadOption),
        };
        if let Some(d) = domain
            && self.urls.values().any(|u| u.script == caller.script && u.domain.as_deref() == Some(d))
        {
            return Err(DenyReason::BadOption);
        }
        let authority = if request.secure {
            self.config.secure_authority.clone().ok_or(DenyReason::NoSecure)?
        } else {
            self.config.authority.clone()
        };
        let (held, limit) = match domain {
            None => (
                self.urls.values().filter(|u| u.script == caller.script && u.domain.is_none()).count(),
                self.config.urls_per_script,
            ),
            Some(_) => (
                self.urls.values().filter(|u| u.script == caller.script && u.domain.is_some()).count(),
                self.config.domains_per_script,
            ),
        };
        if held >= limit {
            return Err(DenyReason::TooMany);
        }
        // Listening on the shared endpoint mints no URL, so only object scope spends the budget.
        if domain.is_none() && self.free_websockets(caller.owner) == 0 {
            return Err(DenyReason::Budget);
        }
        let cap = if domain.is_some() { self.endpoint } else { self.mint_cap() };
        let id = self.next_url;
        self.next_url += 1;
        let domain = domain.map(|d| {
            let entry = self.router.entry(d);
            entry.listeners.push(id);
            entry.name.clone()
        });
        let record = UrlRecord {
            url: url::format_url(request.secure, &authority, cap),
            cap,
            script: caller.script,
            object: caller.object,
            owner: caller.owner,
            max_message,
            domain: domain.clone(),
            sessions: Vec::new(),
        };
        self.urls.insert(id, record);
        if domain.is_none() {
            self.caps.insert(cap, id);
        }
        Ok(id)
    }

    /// A new listener opens to every client already subscribed to its domain.
    fn greet_subscribers(&mut self, id: UrlId) {
        let Some((script, Some(domain))) = self.urls.get(&id).map(|u| (u.script, u.domain.clone())) else { return };
        let subscribers = self.router.get(&domain).map(|d| d.subscribers.clone()).unwrap_or_default();
        for conn in subscribers {
            let Some(s) = self.conns.get(&conn).and_then(|c| c.session()) else { continue };
            let Route::Region { contacts } = &s.route else { continue };
            let Some(contact) = contacts.iter().find(|c| c.domain == domain) else { continue };
            let event = Event {
                id: contact.key,
                kind: EventKind::Open,
                domain: Text::from(domain.clone()),
                data: Text::from(s.headers.get(0)),
            };
            self.push_event(script, Some(id), event);
        }
    }

    /// `llReleaseWebsocket`: an object-scope URL dies and its sessions are
    /// closed with 1001 `url released`. Given the region endpoint's URL, the
    /// script stops listening on all its domains (see [`release_domain`](Region::release_domain) for one).
    pub fn release_websocket(&mut self, now: Instant, script: Key, url: &str) -> Result<(), ReleaseError> {
        self.now = self.now.max(now);
        let id = url::cap_of_url(url).and_then(|cap| self.caps.get(&cap).copied()).ok_or(ReleaseError::UnknownUrl)?;
        if id == REGION_ENDPOINT {
            let before = self.urls.len();
            self.revoke_where(Cause::Released, |u| u.script == script && u.domain.is_some());
            return if self.urls.len() < before { Ok(()) } else { Err(ReleaseError::UnknownUrl) };
        }
        if !self.urls.get(&id).is_some_and(|u| u.script == script && u.url == url) {
            return Err(ReleaseError::UnknownUrl);
        }
        self.revoke(id, Cause::Released);
        Ok(())
    }

    /// Region scope: the script stops listening on `domain`. Clients subscribed
    /// to a domain that lost its last listener get `uns,<domain>`.
    pub fn release_domain(&mut self, now: Instant, script: Key, domain: &str) -> Result<(), ReleaseError> {
        self.now = self.now.max(now);
        let id = self.listener(script, domain).ok_or(ReleaseError::UnknownUrl)?;
        self.revoke(id, Cause::Released);
        Ok(())
    }

    /// `llWebsocketSend`: one text message to one client of the calling
    /// script. To a region-endpoint client it goes as `msg,<domain>,<text>`
    /// on the domain the session key belongs to.
    pub fn websocket_send(&mut self, script: Key, session: Key, text: &str) -> Result<(), SendError> {
        // As `own_session`, with one lookup of the connection: this is every message's path.
        let conn = *self.sessions.get(&session).ok_or(SendError::NoSession)?;
        let limit = self.config.outgoing_buffer;
        let c = self.conns.get_mut(&conn).ok_or(SendError::NoSession)?;
        let s = c.session().ok_or(SendError::NoSession)?;
        let (max, domain) = match &s.route {
            Route::Object { script: owner, .. } if *owner == script => (s.max_message, None),
            Route::Object { .. } => return Err(SendError::NoSession),
            Route::Region { contacts } => {
                let contact = contacts.iter().find(|c| c.key == session).ok_or(SendError::NoSession)?;
                let id = listener_of(&self.router, &self.urls, script, &contact.domain).ok_or(SendError::NoSession)?;
                (self.urls[&id].max_message, Some(contact.domain.clone()))
            }
        };
        if text.len() > max {
            return Err(SendError::TooLarge);
        }
        let head = domain.as_ref().map_or(0, |d| d.len() + 5);
        if c.out_len + head + text.len() + frame::MAX_HEADER > limit {
            return Err(SendError::Busy);
        }
        let bytes = match &domain {
            Some(d) => frame::text_parts(&[b"msg,", d.as_bytes(), b",", text.as_bytes()]),
            None => frame::text(text.as_bytes()),
        };
        if c.push_out(bytes) {
            self.outputs.push_back(Output::Transmit(conn));
        }
        Ok(())
    }

    /// `llWebsocketBroadcast`: `msg,<domain>,<text>` to every client subscribed
    /// to a domain the script listens on. The frame is built once and shared.
    ///
    /// A subscriber whose outgoing buffer cannot take it is closed with 1008
    /// `too slow` rather than skipped, so no client silently misses a message.
    /// Returns how many clients it was queued for.
    pub fn websocket_broadcast(&mut self, script: Key, domain: &str, text: &str) -> Result<usize, SendError> {
        let id = self.listener(script, domain).ok_or(SendError::BadDomain)?;
        if text.len() > self.urls[&id].max_message {
            return Err(SendError::TooLarge);
        }
        let frame = frame::text_parts(&[b"msg,", domain.as_bytes(), b",", text.as_bytes()]);
        let subscribers = self.router.get(domain).map(|d| d.subscribers.clone()).unwrap_or_default();
        let mut sent = 0;
        for conn in subscribers {
            let Some(c) = self.conns.get(&conn) else { continue };
            if c.out_len + frame.len() > self.config.outgoing_buffer {
                self.fail(conn, 1008, "too slow");
            } else {
                self.queue(conn, frame.clone());
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// `llWebsocketClose`: closes one session of the calling script with `code`
    /// (1000 or 3000..=4999) and `reason` (at most 123 bytes). The script gets
    /// its `WS_CLOSE` event with that code and reason.
    ///
    /// A region-endpoint connection is shared by many domains, so there it ends
    /// only this domain's session: the client gets `uns,<domain>`, every
    /// listener of the domain gets `WS_CLOSE`, and the connection stays open.
    pub fn websocket_close(
        &mut self,
        now: Instant,
        script: Key,
        session: Key,
        code: u16,
        reason: &str,
    ) -> Result<(), CloseError> {
        self.now = self.now.max(now);
        if code != 1000 && !(3000..=4999).contains(&code) {
            return Err(CloseError::BadCode(code));
        }
        if reason.len() > 123 {
            return Err(CloseError::ReasonTooLong(reason.len()));
        }
        let (conn, domain) = self.own_session(script, session).ok_or(CloseError::NoSession)?;
        match domain {
            Some(domain) => {
                self.queue_envelope(conn, &ServerFrame::Uns { domain: &domain });
                self.drop_contact(conn, &domain, Some((code, reason)));
            }
            None => {
                self.queue(conn, frame::close(code, reason));
                self.end_session(conn, Some((code, reason)));
                self.start_closing(conn);
            }
        }
        Ok(())
    }

    /// `llGetWebsocketHeader`: one of `x-script-url`, `x-path-info`,
    /// `x-query-string`, `x-remote-ip`, `user-agent`, `origin`,
    /// `sec-websocket-protocol` (lower case); `""` when absent, unknown, or
    /// the session is gone or not the caller's.
    pub fn websocket_header(&self, script: Key, session: Key, name: &str) -> String {
        let Some((conn, domain)) = self.own_session(script, session) else {
            return String::new();
        };
        let c = &self.conns[&conn];
        let Some(s) = c.session() else {
            return String::new();
        };
        match (name, &s.route) {
            ("x-script-url", Route::Object { url, .. }) => {
                self.urls.get(url).map(|u| u.url.clone()).unwrap_or_default()
            }
            ("x-script-url", Route::Region { .. }) => {
                domain.and_then(|d| self.listener(script, &d)).map(|id| self.urls[&id].url.clone()).unwrap_or_default()
            }
            ("x-remote-ip", _) => c.remote.to_string(),
            _ => {
                STORED_HEADERS.iter().position(|h| *h == name).map(|i| s.headers.get(i).to_string()).unwrap_or_default()
            }
        }
    }

    /// `llGetFreeWebsockets`: URLs `owner` may still request in this region.
    /// Region-scope listening mints no URL, so only object-scope URLs count.
    pub fn free_websockets(&self, owner: Key) -> usize {
        let minted = || self.urls.values().filter(|u| u.domain.is_none());
        let region_free = self.config.region_url_budget.saturating_sub(minted().count());
        match self.config.owner_url_budget {
            Some(budget) => {
                let held = minted().filter(|u| u.owner == owner).count();
                region_free.min(budget.saturating_sub(held))
            }
            None => region_free,
        }
    }

    /// The script's next event, in order. Draining makes room in its queue and
    /// resumes sessions paused for it.
    pub fn poll_event(&mut self, script: Key) -> Option<Event> {
        let queue = self.scripts.get_mut(&script)?;
        queue.notified = false;
        if queue.paused.is_empty() {
            // The usual case, kept apart so the event moves straight to the caller.
            return queue.pop();
        }
        let event = queue.pop();
        self.make_room(script);
        event
    }

    /// Resumes sessions paused for the script, in the order they paused, for
    /// as long as its queue has room: one freed slot costs one resume, not a
    /// pass over every paused session (10,000 of them under load).
    fn make_room(&mut self, script: Key) {
        loop {
            let Some(queue) = self.scripts.get_mut(&script) else { return };
            if queue.len() >= self.config.event_queue {
                return;
            }
            let Some(conn) = queue.paused.pop_front() else { return };
            if let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session_mut()) {
                s.waiting = false;
            }
            // Either it stops paused, or it filled the queue and the loop ends.
            self.resume(conn);
        }
    }

    /// Events waiting in the script's queue.
    pub fn pending_events(&self, script: Key) -> usize {
        self.scripts.get(&script).map_or(0, |q| q.len())
    }

    // ---------------------------------------------------------------- lifecycle

    /// The script was reset or recompiled: its URLs are revoked (`script reset`)
    /// and its queue is emptied, as LSL empties the event queue on reset.
    pub fn script_reset(&mut self, now: Instant, script: Key) {
        self.now = self.now.max(now);
        self.revoke_where(Cause::ScriptReset, |u| u.script == script);
        if let Some(queue) = self.scripts.get_mut(&script) {
            queue.clear();
            // An emptied queue announces its next event afresh.
            queue.notified = false;
        }
        self.make_room(script);
    }

    /// The script was deleted: as [`script_reset`](Region::script_reset), and its queue is forgotten.
    pub fn script_removed(&mut self, now: Instant, script: Key) {
        self.script_reset(now, script);
        self.scripts.remove(&script);
    }

    /// The object was rezzed from inventory (`on_rez`): its URLs are revoked.
    pub fn object_rezzed(&mut self, now: Instant, object: Key) {
        self.revoke_object(now, object, Cause::ObjectRezzed);
    }

    /// The object changed region (`CHANGED_REGION`): its URLs are revoked.
    pub fn object_changed_region(&mut self, now: Instant, object: Key) {
        self.revoke_object(now, object, Cause::RegionChange);
    }

    /// The object's owner changed (`CHANGED_OWNER`): its URLs are revoked.
    pub fn owner_changed(&mut self, now: Instant, object: Key) {
        self.revoke_object(now, object, Cause::OwnerChange);
    }

    /// The object was removed from the world: its URLs are revoked.
    pub fn object_removed(&mut self, now: Instant, object: Key) {
        self.revoke_object(now, object, Cause::ObjectRemoved);
    }

    /// The region restarts or shuts down: every URL is revoked (`region restart`).
    /// The region endpoint's sessions are closed and a new endpoint capability is minted.
    pub fn region_restart(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let reason = Cause::RegionRestart.reason();
        let conns: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.session().is_some_and(|s| matches!(s.route, Route::Region { .. })))
            .map(|(id, _)| *id)
            .collect();
        // Sorted so a seeded run writes its bytes in a reproducible order.
        let mut conns = conns;
        conns.sort_unstable();
        for conn in conns {
            self.silence(conn);
            self.queue(conn, frame::close(1001, reason));
            self.start_closing(conn);
        }
        self.router.clear();
        self.revoke_where(Cause::RegionRestart, |_| true);
        let old = self.region_url();
        self.caps.remove(&self.endpoint);
        self.outputs.push_back(Output::Revoked { url: old, cause: Cause::RegionRestart });
        self.mint_endpoint();
    }

    fn revoke_object(&mut self, now: Instant, object: Key, cause: Cause) {
        self.now = self.now.max(now);
        self.revoke_where(cause, |u| u.object == object);
    }

    fn revoke_where(&mut self, cause: Cause, pred: impl Fn(&UrlRecord) -> bool) {
        let ids: Vec<UrlId> = self.urls.iter().filter(|(_, u)| pred(u)).map(|(id, _)| *id).collect();
        for id in ids {
            self.revoke(id, cause);
        }
    }

    /// The heart of SPEC §4: the capability stops resolving, sessions are
    /// closed 1001 without telling the script, queued events are purged.
    fn revoke(&mut self, id: UrlId, cause: Cause) {
        let Some(record) = self.urls.remove(&id) else {
            return;
        };
        if let Some(queue) = self.scripts.get_mut(&record.script) {
            queue.purge(id);
            queue.notified &= !queue.is_empty();
        }
        if let Some(domain) = &record.domain {
            self.unlisten(id, domain);
        } else {
            self.caps.remove(&record.cap);
            for &conn in &record.sessions {
                if self.silence(conn) {
                    self.queue(conn, frame::close(1001, cause.reason()));
                    self.start_closing(conn);
                }
            }
            self.outputs.push_back(Output::Revoked { url: record.url, cause });
        }
        // Purged events free room that other sessions paused for this script
        // may be waiting for; this URL's own sessions are silent by now.
        self.make_room(record.script);
    }

    /// A listener stops; if it was the domain's last, its subscribers get `uns,<domain>`.
    fn unlisten(&mut self, id: UrlId, domain: &str) {
        let Some(entry) = self.router.get_mut(domain) else { return };
        entry.listeners.retain(|&l| l != id);
        if entry.listeners.is_empty() {
            for conn in std::mem::take(&mut entry.subscribers) {
                self.queue_envelope(conn, &ServerFrame::Uns { domain });
                self.forget_contact(conn, domain);
            }
        }
        self.router.prune(domain);
    }

    /// Ends an open session without a word to any script: its keys die at once.
    /// Returns whether it was open.
    fn silence(&mut self, conn: ConnectionId) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else { return false };
        let Some(s) = c.session() else { return false };
        match &s.route {
            Route::Object { key, .. } => {
                self.sessions.remove(key);
            }
            Route::Region { contacts } => {
                for contact in contacts {
                    self.sessions.remove(&contact.key);
                }
                self.region_sessions -= 1;
            }
        }
        if s.paused {
            // The close echo must be read.
            self.outputs.push_back(Output::ResumeReading(conn));
        }
        c.inbuf = Vec::new();
        c.phase = Phase::Closing { deadline: self.now };
        true
    }

    // ---------------------------------------------------------------- internals

    fn mint_key(&mut self) -> Key {
        let mut bytes = [0; 16];
        self.entropy.fill(&mut bytes);
        Key::from_random_bytes(bytes)
    }

    fn mint_cap(&mut self) -> Key {
        loop {
            let mut bytes = [0; 16];
            self.entropy.fill(&mut bytes);
            let cap = Key::from_bytes(bytes);
            // A capability is never reused; with 128 random bits a repeat means a broken source.
            if !cap.is_null() && !self.caps.contains_key(&cap) {
                return cap;
            }
        }
    }

    /// The connection of a session key the script may use, and for a
    /// region-endpoint client the domain the key belongs to.
    fn own_session(&self, script: Key, session: Key) -> Option<(ConnectionId, Option<Arc<str>>)> {
        let conn = *self.sessions.get(&session)?;
        match &self.conns.get(&conn)?.session()?.route {
            Route::Object { script: owner, .. } => (*owner == script).then_some((conn, None)),
            Route::Region { contacts } => {
                let contact = contacts.iter().find(|c| c.key == session)?;
                self.listener(script, &contact.domain)?;
                Some((conn, Some(contact.domain.clone())))
            }
        }
    }

    /// The script's listening grant on `domain`, if it has one.
    fn listener(&self, script: Key, domain: &str) -> Option<UrlId> {
        listener_of(&self.router, &self.urls, script, domain)
    }

    fn push_event(&mut self, script: Key, url: Option<UrlId>, event: Event) {
        // `entry` reserves room on every call; the queue almost always exists.
        let queue = match self.scripts.get_mut(&script) {
            Some(queue) => queue,
            None => self.scripts.entry(script).or_default(),
        };
        queue.push(url, event);
        if !queue.notified {
            queue.notified = true;
            self.outputs.push_back(Output::Events(script));
        }
    }

    fn queue(&mut self, conn: ConnectionId, bytes: Bytes) {
        if self.conns.get_mut(&conn).is_some_and(|c| c.push_out(bytes)) {
            self.outputs.push_back(Output::Transmit(conn));
        }
    }

    /// Puts the connection's next deadline in the timer heap, unless an earlier one is there.
    fn arm(&mut self, conn: ConnectionId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some(at) = c.deadline(&self.config) else { return };
        if c.timer.is_none_or(|t| at < t) {
            c.timer = Some(at);
            self.timers.push(Reverse((at, conn)));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, conn))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(&conn) else { continue };
            if c.timer != Some(at) {
                continue; // superseded by an earlier entry
            }
            c.timer = None;
            match c.deadline(&self.config) {
                Some(due) if due <= now => self.fire(now, conn),
                _ => self.arm(conn),
            }
        }
        self.prune_rate(now);
    }

    fn fire(&mut self, now: Instant, conn: ConnectionId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        match &mut c.phase {
            Phase::Open(s) if s.ping_sent.is_none() => {
                s.ping_sent = Some(now);
                self.queue(conn, frame::ping());
                self.arm(conn);
            }
            Phase::Open(_) => {
                // 1006 is reported to the script and never sent on the wire.
                self.end_session(conn, Some((1006, "ping timeout")));
                self.close_now(conn);
            }
            Phase::Handshake { .. } | Phase::Http { .. } | Phase::Closing { .. } => self.close_now(conn),
            Phase::Closed => {}
        }
    }

    fn received(&mut self, now: Instant, conn: ConnectionId, data: &[u8]) -> Result<(), InputError> {
        let c = self.conns.get_mut(&conn).ok_or(InputError::UnknownConnection(conn))?;
        match &mut c.phase {
            Phase::Handshake { .. } => {
                c.inbuf.extend_from_slice(data);
                self.handshake(now, conn);
            }
            Phase::Open(s) => {
                s.last_rx = now;
                s.ping_sent = None;
                let held = std::mem::take(&mut c.inbuf);
                self.pump_held(conn, held, data, Pump::Read);
            }
            Phase::Closing { .. } => self.pump_closing(conn, data),
            // A request body or pipelined request waits for `respond`, which closes.
            Phase::Http { .. } | Phase::Closed => {}
        }
        Ok(())
    }

    fn handshake(&mut self, now: Instant, conn: ConnectionId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let buf = std::mem::take(&mut c.inbuf);
        let remote = c.remote;
        let (request, head_len) = match handshake::parse(&buf, &self.config) {
            Parsed::Partial => {
                c.inbuf = buf;
                return;
            }
            Parsed::Refused(status) => return self.refuse(conn, status),
            Parsed::Complete(request, len) => (request, len),
        };
        if !self.rate_ok(now, remote) {
            return self.refuse(conn, Status::TooManyRequests);
        }
        if self.config.serve_other_paths && !request.path.starts_with(url::PATH_PREFIX) {
            if let Some(c) = self.conns.get_mut(&conn) {
                // Answered by `respond`, which closes; until then the handshake timer runs.
                c.phase = Phase::Http { deadline: now + self.config.handshake_timeout };
            }
            let (method, target) = (request.method.to_string(), request.path.to_string());
            self.outputs.push_back(Output::HttpRequest { conn, method, target });
            return;
        }
        let Some((target, id)) = request.target.and_then(|t| Some((t, *self.caps.get(&t.cap)?))) else {
            return self.refuse(conn, Status::NotFound);
        };
        let ws_key = match request.upgrade {
            Ok(key) => key,
            Err(status) => return self.refuse(conn, status),
        };
        let headers = Headers::new([
            target.path_info,
            target.query,
            request.user_agent.unwrap_or(""),
            request.origin.unwrap_or(""),
            request.protocol.unwrap_or(""),
        ]);
        let mut open = None;
        let (route, max_message) = if id == REGION_ENDPOINT {
            if self.region_sessions >= self.config.region_endpoint_sessions {
                return self.refuse(conn, Status::Unavailable);
            }
            self.region_sessions += 1;
            (Route::Region { contacts: Vec::new() }, self.config.max_message + ENVELOPE_HEAD)
        } else {
            let Some(record) = self.urls.get_mut(&id) else {
                return self.refuse(conn, Status::NotFound);
            };
            if record.sessions.len() >= self.config.sessions_per_url {
                return self.refuse(conn, Status::Unavailable);
            }
            record.sessions.push(conn);
            let (script, max_message) = (record.script, record.max_message);
            let key = self.mint_key();
            self.sessions.insert(key, conn);
            let event =
                Event { id: key, kind: EventKind::Open, domain: Text::default(), data: target.path_info.into() };
            open = Some((script, id, event));
            (Route::Object { key, url: id, script }, max_message)
        };
        let session = Session {
            route,
            max_message,
            decoder: frame::Decoder::default(),
            headers,
            last_rx: now,
            ping_sent: None,
            paused: false,
            waiting: false,
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Open(Box::new(session));
            c.timer = None;
        }
        self.queue(conn, Bytes::from(handshake::accept_response(ws_key)));
        if let Some((script, id, event)) = open {
            self.push_event(script, Some(id), event);
        }
        self.arm(conn);
        // A client may send frames right behind its head.
        let rest = &buf[head_len..];
        if !rest.is_empty() {
            self.pump(conn, rest);
        }
    }

    fn refuse(&mut self, conn: ConnectionId, status: Status) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.inbuf = Vec::new();
        }
        self.queue(conn, Bytes::from_static(status.refusal()));
        self.close_now(conn);
    }

    /// Fixed one-second windows per remote address; IPv6 per /64, the block
    /// one subscriber is usually given, so one host cannot fill the table.
    fn rate_ok(&mut self, now: Instant, remote: core::net::IpAddr) -> bool {
        let bucket = match remote {
            core::net::IpAddr::V6(v6) => core::net::IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            v4 => v4,
        };
        let entry = self.rate.entry(bucket).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.config.handshakes_per_second
    }

    fn prune_rate(&mut self, now: Instant) {
        if self.rate.len() > 1024 {
            self.rate.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
        }
    }

    /// Decodes and delivers frames of an open session from its held bytes
    /// followed by `data`, until the input runs out or the script queue is full.
    fn pump(&mut self, conn: ConnectionId, data: &[u8]) {
        self.pump_with(conn, data, Pump::Read);
    }

    /// `pump` in the given mode; returns whether it stopped on a full queue.
    fn pump_with(&mut self, conn: ConnectionId, data: &[u8], mode: Pump) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else { return false };
        let held = std::mem::take(&mut c.inbuf);
        self.pump_held(conn, held, data, mode)
    }

    /// `pump_with` for a caller that already took the connection's held bytes.
    fn pump_held(&mut self, conn: ConnectionId, mut held: Vec<u8>, data: &[u8], mode: Pump) -> bool {
        let input: &[u8] = if held.is_empty() {
            data
        } else {
            held.extend_from_slice(data);
            &held
        };
        let mut pos = 0;
        let mut open = true;
        let mut held_back = false;
        while open && pos < input.len() {
            let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session_mut()) else { break };
            let object = match s.route {
                Route::Object { key, url, script } => Some((key, url, script)),
                Route::Region { .. } => None,
            };
            // Object scope pushes back on the client; region scope answers `busy` per message instead.
            if let Some((_, _, script)) = object
                && mode != Pump::Drain
                && ((s.paused && mode == Pump::Read)
                    || self.scripts.get(&script).is_some_and(|q| q.len() >= self.config.event_queue))
            {
                self.pause(conn, script);
                held_back = true;
                break;
            }
            match s.decoder.decode(&input[pos..], s.max_message) {
                Ok(None) => break,
                Ok(Some((decoded, used))) => {
                    pos += used;
                    open = self.deliver(conn, object, decoded);
                }
                Err(Violation { code, reason }) => {
                    self.fail(conn, code, reason);
                    open = false;
                }
            }
        }
        // Nothing else puts bytes in `inbuf` meanwhile, so it is still the empty
        // buffer `take` left unless a partial frame must be kept.
        if open
            && pos < input.len()
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.inbuf = input[pos..].to_vec();
        }
        held_back
    }

    /// Acts on one decoded frame of an open session whose route, for object
    /// scope, is `object` (session key, URL, script); returns whether the session is still open.
    fn deliver(&mut self, conn: ConnectionId, object: Option<(Key, UrlId, Key)>, decoded: Decoded) -> bool {
        match decoded {
            Decoded::Text(text) => {
                match object {
                    Some((key, url, script)) => {
                        let event =
                            Event { id: key, kind: EventKind::Text, domain: Text::default(), data: text.into() };
                        self.push_event(script, Some(url), event);
                    }
                    None => self.route_envelope(conn, &text),
                }
                true
            }
            Decoded::Ping(payload) => {
                self.queue(conn, frame::pong(&payload));
                true
            }
            Decoded::Nothing => true,
            Decoded::Close(code, reason) => {
                self.queue(conn, code.map_or_else(frame::close_empty, |code| frame::close(code, &reason)));
                self.end_session(conn, Some((code.unwrap_or(1005), &reason)));
                self.close_now(conn);
                false
            }
        }
    }

    /// One text frame from a region-endpoint client (SPEC §6).
    fn route_envelope(&mut self, conn: ConnectionId, text: &str) {
        let frame = match envelope::parse_client(text) {
            Ok(frame) => frame,
            Err(_) => return self.queue_envelope(conn, &ServerFrame::BAD_FRAME),
        };
        match frame {
            ClientFrame::Sub { domain } => self.subscribe(conn, domain),
            ClientFrame::Uns { domain } => {
                if self.contact(conn, domain).is_some_and(|c| c.subscribed) {
                    self.drop_contact(conn, domain, Some((1000, "unsubscribed")));
                }
            }
            ClientFrame::Msg { domain, payload } => self.route_to_listeners(conn, domain, payload, None),
            ClientFrame::To { object, domain, payload } => self.route_to_listeners(conn, domain, payload, Some(object)),
        }
    }

    fn subscribe(&mut self, conn: ConnectionId, domain: &str) {
        let Some(listeners) = self.router.get(domain).map(|d| d.listeners.clone()).filter(|l| !l.is_empty()) else {
            return self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::NoListener });
        };
        if self.contact(conn, domain).is_some_and(|c| c.subscribed) {
            return;
        }
        let subscribed = self.contacts(conn).map_or(0, |cs| cs.iter().filter(|c| c.subscribed).count());
        if subscribed >= self.config.subscriptions_per_session {
            return self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::Busy });
        }
        let Some(key) = self.contact_key(conn, domain) else {
            return self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::Busy });
        };
        let Some(entry) = self.router.get_mut(domain) else { return };
        entry.subscribers.push(conn);
        let name = entry.name.clone();
        let mut path_info = Text::default();
        if let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session_mut()) {
            path_info = Text::from(s.headers.get(0));
            if let Route::Region { contacts } = &mut s.route {
                contacts.iter_mut().filter(|c| c.key == key).for_each(|c| c.subscribed = true);
            }
        }
        for id in listeners {
            let script = self.urls[&id].script;
            let event =
                Event { id: key, kind: EventKind::Open, domain: Text::from(name.clone()), data: path_info.clone() };
            self.push_event(script, Some(id), event);
        }
    }

    /// `msg` and `to`: one payload buffer shared by every listener's event.
    fn route_to_listeners(&mut self, conn: ConnectionId, domain: &str, payload: &str, object: Option<Key>) {
        let Some(entry) = self.router.get(domain) else {
            return self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::NoListener });
        };
        let name = entry.name.clone();
        let listeners: Vec<UrlId> =
            entry.listeners.iter().copied().filter(|id| object.is_none_or(|o| self.urls[id].object == o)).collect();
        if listeners.is_empty() {
            return self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::NoListener });
        }
        let Some(key) = self.contact_key(conn, domain) else {
            return self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::Busy });
        };
        let data = Text::from(Arc::<str>::from(payload));
        let (mut too_large, mut busy) = (false, false);
        for id in listeners {
            let (script, max) = (self.urls[&id].script, self.urls[&id].max_message);
            if payload.len() > max {
                too_large = true;
            } else if self.scripts.get(&script).is_some_and(|q| q.len() >= self.config.event_queue) {
                busy = true;
            } else {
                let event =
                    Event { id: key, kind: EventKind::Text, domain: Text::from(name.clone()), data: data.clone() };
                self.push_event(script, Some(id), event);
            }
        }
        if too_large {
            self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::TooLarge });
        }
        if busy {
            self.queue_envelope(conn, &ServerFrame::Err { domain, word: ErrorWord::Busy });
        }
    }

    fn contacts(&self, conn: ConnectionId) -> Option<&Vec<Contact>> {
        match &self.conns.get(&conn)?.session()?.route {
            Route::Region { contacts } => Some(contacts),
            Route::Object { .. } => None,
        }
    }

    fn contact(&self, conn: ConnectionId, domain: &str) -> Option<&Contact> {
        self.contacts(conn)?.iter().find(|c| &*c.domain == domain)
    }

    /// The session key listeners of `domain` know this client by, minted on
    /// first contact. Contacts are bounded: the oldest one that is not a
    /// subscription makes room, and if all are subscriptions there is none.
    fn contact_key(&mut self, conn: ConnectionId, domain: &str) -> Option<Key> {
        if let Some(c) = self.contact(conn, domain) {
            return Some(c.key);
        }
        let limit = 2 * self.config.subscriptions_per_session.max(1);
        let name = self.router.get(domain).map_or_else(|| Arc::from(domain), |d| d.name.clone());
        let key = self.mint_key();
        let Route::Region { contacts } = &mut self.conns.get_mut(&conn)?.session_mut()?.route else { return None };
        if contacts.len() >= limit {
            let oldest = contacts.iter().position(|c| !c.subscribed)?;
            self.sessions.remove(&contacts.remove(oldest).key);
        }
        contacts.push(Contact { domain: name, key, subscribed: false });
        self.sessions.insert(key, conn);
        Some(key)
    }

    /// Ends one domain's session on a region-endpoint connection; listeners get `WS_CLOSE`.
    fn drop_contact(&mut self, conn: ConnectionId, domain: &str, close: Option<(u16, &str)>) {
        let Some(contact) = self.forget_contact(conn, domain) else { return };
        if let Some(entry) = self.router.get_mut(domain) {
            entry.subscribers.retain(|&c| c != conn);
        }
        if contact.subscribed
            && let Some((code, reason)) = close
        {
            self.close_route_to_listeners(&contact, code, reason);
        }
        self.router.prune(domain);
    }

    fn forget_contact(&mut self, conn: ConnectionId, domain: &str) -> Option<Contact> {
        let Route::Region { contacts } = &mut self.conns.get_mut(&conn)?.session_mut()?.route else { return None };
        let contact = contacts.remove(contacts.iter().position(|c| &*c.domain == domain)?);
        self.sessions.remove(&contact.key);
        Some(contact)
    }

    fn close_route_to_listeners(&mut self, contact: &Contact, code: u16, reason: &str) {
        let listeners = self.router.get(&contact.domain).map(|d| d.listeners.clone()).unwrap_or_default();
        let data = Text::from(Arc::<str>::from(format!("{code} {reason}")));
        for id in listeners {
            let script = self.urls[&id].script;
            let event = Event {
                id: contact.key,
                kind: EventKind::Close,
                domain: Text::from(contact.domain.clone()),
                data: data.clone(),
            };
            self.push_event(script, Some(id), event);
        }
    }

    fn queue_envelope(&mut self, conn: ConnectionId, frame: &ServerFrame<'_>) {
        let mut payload = Vec::with_capacity(frame.encoded_len());
        frame.encode_into(&mut payload);
        self.queue(conn, frame::text(&payload));
    }

    /// Fails the connection: close frame with the SPEC's code, then close the transport.
    fn fail(&mut self, conn: ConnectionId, code: u16, reason: &str) {
        self.queue(conn, frame::close(code, reason));
        self.end_session(conn, Some((code, reason)));
        self.close_now(conn);
    }

    /// In `Closing`, only a close (or garbage) from the client matters.
    fn pump_closing(&mut self, conn: ConnectionId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let mut held = std::mem::take(&mut c.inbuf);
        held.extend_from_slice(data);
        let mut decoder = frame::Decoder::default();
        let mut pos = 0;
        loop {
            // Data frames are skipped, so any size is allowed here.
            match decoder.decode(&held[pos..], usize::MAX) {
                Ok(Some((Decoded::Close(..), _))) | Err(_) => return self.close_now(conn),
                Ok(Some((_, used))) => pos += used,
                Ok(None) => break,
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            held.drain(..pos);
            // A client still streaming a huge frame at us is not worth waiting for.
            if held.len() > self.config.max_message + frame::MAX_HEADER {
                return self.close_now(conn);
            }
            c.inbuf = held;
        }
    }

    /// Marks the session paused (telling the embedder once) and waiting for room in the script's queue.
    fn pause(&mut self, conn: ConnectionId, script: Key) {
        let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session_mut()) else { return };
        if !std::mem::replace(&mut s.paused, true) {
            self.outputs.push_back(Output::PauseReading(conn));
        }
        if !std::mem::replace(&mut s.waiting, true) {
            self.scripts.entry(script).or_default().paused.push_back(conn);
        }
    }

    /// Delivers what a paused session holds; the embedder reads again only
    /// once all of it fit in the queue.
    fn resume(&mut self, conn: ConnectionId) {
        if !self.conns.get(&conn).and_then(|c| c.session()).is_some_and(|s| s.paused) {
            return;
        }
        if self.pump_with(conn, &[], Pump::Resume) {
            return;
        }
        let now = self.now;
        let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session_mut()) else { return };
        s.paused = false;
        // Silence while paused was ours, not the client's.
        s.last_rx = now;
        self.outputs.push_back(Output::ResumeReading(conn));
        self.arm(conn);
    }

    /// The session stops being the script's: its keys die, it leaves its URL
    /// or its domains, and listening scripts get `WS_CLOSE` if still live.
    fn end_session(&mut self, conn: ConnectionId, close: Option<(u16, &str)>) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        // The caller moves the connection on to `Closing` or `Closed`.
        let interim = Phase::Closing { deadline: self.now };
        let Phase::Open(s) = std::mem::replace(&mut c.phase, interim) else { return };
        c.inbuf = Vec::new();
        match s.route {
            Route::Object { key, url, script } => {
                self.sessions.remove(&key);
                let Some(record) = self.urls.get_mut(&url) else { return };
                record.sessions.retain(|&other| other != conn);
                if let Some((code, reason)) = close {
                    let data = Text::from(format!("{code} {reason}"));
                    let event = Event { id: key, kind: EventKind::Close, domain: Text::default(), data };
                    self.push_event(script, Some(url), event);
                }
            }
            Route::Region { contacts } => {
                self.region_sessions -= 1;
                for contact in contacts {
                    self.sessions.remove(&contact.key);
                    if let Some(entry) = self.router.get_mut(&contact.domain) {
                        entry.subscribers.retain(|&c| c != conn);
                    }
                    if contact.subscribed
                        && let Some((code, reason)) = close
                    {
                        self.close_route_to_listeners(&contact, code, reason);
                    }
                    self.router.prune(&contact.domain);
                }
            }
        }
    }

    /// After the server's close frame: wait for the echo until the close timeout.
    fn start_closing(&mut self, conn: ConnectionId) {
        let deadline = self.now + self.config.close_timeout;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Closing { deadline };
            c.timer = None;
        }
        self.arm(conn);
    }

    /// Tells the embedder to close after flushing; forgets the connection once flushed.
    fn close_now(&mut self, conn: ConnectionId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if matches!(c.phase, Phase::Closed) {
            return;
        }
        c.phase = Phase::Closed;
        c.inbuf = Vec::new();
        c.timer = None;
        if c.out.is_empty() {
            self.conns.remove(&conn);
        }
        self.outputs.push_back(Output::Close(conn));
    }
}

/// The script's listening grant on `domain`, if it has one (see `Region::listener`).
fn listener_of(router: &Router, urls: &BTreeMap<UrlId, UrlRecord>, script: Key, domain: &str) -> Option<UrlId> {
    router.get(domain)?.listeners.iter().copied().find(|id| urls[id].script == script)
}
