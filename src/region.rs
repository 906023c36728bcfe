//! The `Region` state machine: all URLs, sessions and script queues of one region.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Config;
use crate::entropy::Entropy;
use crate::frame::{self, Decoded, Violation};
use crate::handshake::{self, Parsed, Status};
use crate::key::Key;
use crate::lifecycle::Cause;
use crate::script::{
    CloseError, DenyReason, Event, EventKind, ReleaseError, Scope, ScriptQueue, SendError, Text, UrlId,
    WebsocketRequest,
};
use crate::session::{Conn, ConnectionId, Headers, Phase, Session};
use crate::url;

/// Hash maps with a fixed hasher: the core draws no randomness of its own, and
/// its keys are capabilities it minted or ids the embedder chose.
type Map<K, V> = HashMap<K, V, BuildHasherDefault<std::hash::DefaultHasher>>;

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
    /// A URL was revoked (for the embedder's log; the script learns from LSL's own events).
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
    /// Open sessions, in the order they opened.
    sessions: Vec<ConnectionId>,
}

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
        Region {
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
        }
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
        let bytes = c.out.pop_front();
        match &bytes {
            Some(b) => c.out_len -= b.len(),
            None if matches!(c.phase, Phase::Closed) => {
                self.conns.remove(&conn);
            }
            // Give back a queue that grew during a burst.
            None if c.out.capacity() > 8 => c.out = VecDeque::new(),
            None => {}
        }
        bytes
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
        if !self.conns.get(&conn).is_some_and(|c| matches!(c.phase, Phase::Handshake { .. })) {
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
    pub fn request_websocket(&mut self, caller: ScriptInfo, request: &WebsocketRequest) -> Key {
        let request_key = self.mint_key();
        let domain = Text::from(request.domain.as_deref().unwrap_or(""));
        let outcome = self.grant(caller, request);
        let (url, kind, data) = match outcome {
            Ok(id) => (Some(id), EventKind::UrlGranted, Text::from(self.urls[&id].url.clone())),
            Err(reason) => (None, EventKind::UrlDenied, Text::from(reason.as_str())),
        };
        self.push_event(caller.script, url, Event { id: request_key, kind, domain, data });
        request_key
    }

    fn grant(&mut self, caller: ScriptInfo, request: &WebsocketRequest) -> Result<UrlId, DenyReason> {
        let max_message = request.max_message.unwrap_or(self.config.max_message);
        // Region scope is served by the region endpoint (its own issue); until then it is refused.
        if request.scope != Scope::Object
            || request.domain.is_some()
            || max_message == 0
            || max_message > self.config.max_message
        {
            return Err(DenyReason::BadOption);
        }
        let authority = if request.secure {
            self.config.secure_authority.clone().ok_or(DenyReason::NoSecure)?
        } else {
            self.config.authority.clone()
        };
        if self.urls.values().filter(|u| u.script == caller.script).count() >= self.config.urls_per_script {
            return Err(DenyReason::TooMany);
        }
        if self.free_websockets(caller.owner) == 0 {
            return Err(DenyReason::Budget);
        }
        let cap = self.mint_cap();
        let id = self.next_url;
        self.next_url += 1;
        let url = url::format_url(request.secure, &authority, cap);
        let record = UrlRecord {
            url,
            cap,
            script: caller.script,
            object: caller.object,
            owner: caller.owner,
            max_message,
            sessions: Vec::new(),
        };
        self.urls.insert(id, record);
        self.caps.insert(cap, id);
        Ok(id)
    }

    /// `llReleaseWebsocket`: the URL dies and its sessions are closed with 1001 `url released`.
    pub fn release_websocket(&mut self, now: Instant, script: Key, url: &str) -> Result<(), ReleaseError> {
        self.now = self.now.max(now);
        let id = url::cap_of_url(url)
            .and_then(|cap| self.caps.get(&cap).copied())
            .filter(|id| self.urls[id].script == script && self.urls[id].url == url)
            .ok_or(ReleaseError::UnknownUrl)?;
        self.revoke(id, Cause::Released);
        Ok(())
    }

    /// `llWebsocketSend`: one text message to one client of the calling script.
    pub fn websocket_send(&mut self, script: Key, session: Key, text: &str) -> Result<(), SendError> {
        let conn = self.own_session(script, session).ok_or(SendError::NoSession)?;
        let c = &self.conns[&conn];
        let max = c.session().map_or(0, |s| s.max_message);
        if text.len() > max {
            return Err(SendError::TooLarge);
        }
        if c.out_len + text.len() + frame::MAX_HEADER > self.config.outgoing_buffer {
            return Err(SendError::Busy);
        }
        self.queue(conn, frame::text(text.as_bytes()));
        Ok(())
    }

    /// `llWebsocketClose`: closes one session of the calling script with `code`
    /// (1000 or 3000..=4999) and `reason` (at most 123 bytes). The script gets
    /// its `WS_CLOSE` event with that code and reason.
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
        let conn = self.own_session(script, session).ok_or(CloseError::NoSession)?;
        self.queue(conn, frame::close(code, reason));
        self.end_session(conn, Some((code, reason)));
        self.start_closing(conn);
        Ok(())
    }

    /// `llGetWebsocketHeader`: one of `x-script-url`, `x-path-info`,
    /// `x-query-string`, `x-remote-ip`, `user-agent`, `origin`,
    /// `sec-websocket-protocol` (lower case); `""` when absent, unknown, or
    /// the session is gone or not the caller's.
    pub fn websocket_header(&self, script: Key, session: Key, name: &str) -> String {
        let Some(conn) = self.own_session(script, session) else {
            return String::new();
        };
        let c = &self.conns[&conn];
        let Some(s) = c.session() else {
            return String::new();
        };
        match name {
            "x-script-url" => self.urls.get(&s.url).map(|u| u.url.clone()).unwrap_or_default(),
            "x-remote-ip" => c.remote.to_string(),
            _ => {
                STORED_HEADERS.iter().position(|h| *h == name).map(|i| s.headers.get(i).to_string()).unwrap_or_default()
            }
        }
    }

    /// `llGetFreeWebsockets`: URLs `owner` may still request in this region.
    pub fn free_websockets(&self, owner: Key) -> usize {
        let region_free = self.config.region_url_budget.saturating_sub(self.urls.len());
        match self.config.owner_url_budget {
            Some(budget) => {
                let held = self.urls.values().filter(|u| u.owner == owner).count();
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
        let event = queue.events.pop_front().map(|(_, e)| e);
        if queue.events.len() < self.config.event_queue && !queue.paused.is_empty() {
            for conn in std::mem::take(&mut queue.paused) {
                self.resume(conn);
            }
        }
        event
    }

    /// Events waiting in the script's queue.
    pub fn pending_events(&self, script: Key) -> usize {
        self.scripts.get(&script).map_or(0, |q| q.events.len())
    }

    // ---------------------------------------------------------------- lifecycle

    /// The script was reset or recompiled: its URLs are revoked (`script reset`)
    /// and its queue is emptied, as LSL empties the event queue on reset.
    pub fn script_reset(&mut self, now: Instant, script: Key) {
        self.now = self.now.max(now);
        self.revoke_where(Cause::ScriptReset, |u| u.script == script);
        if let Some(queue) = self.scripts.get_mut(&script) {
            queue.events.clear();
        }
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
    pub fn region_restart(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.revoke_where(Cause::RegionRestart, |_| true);
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
        self.caps.remove(&record.cap);
        if let Some(queue) = self.scripts.get_mut(&record.script) {
            queue.events.retain(|(url, _)| *url != Some(id));
        }
        for conn in record.sessions {
            let Some(c) = self.conns.get_mut(&conn) else { continue };
            let Some(s) = c.session() else { continue };
            self.sessions.remove(&s.key);
            if s.paused {
                // The close echo must be read.
                self.outputs.push_back(Output::ResumeReading(conn));
            }
            c.inbuf = Vec::new();
            self.queue(conn, frame::close(1001, cause.reason()));
            self.start_closing(conn);
        }
        self.outputs.push_back(Output::Revoked { url: record.url, cause });
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

    fn own_session(&self, script: Key, session: Key) -> Option<ConnectionId> {
        let conn = *self.sessions.get(&session)?;
        let s = self.conns.get(&conn)?.session()?;
        (s.script == script).then_some(conn)
    }

    fn push_event(&mut self, script: Key, url: Option<UrlId>, event: Event) {
        let queue = self.scripts.entry(script).or_default();
        queue.events.push_back((url, event));
        if !queue.notified {
            queue.notified = true;
            self.outputs.push_back(Output::Events(script));
        }
    }

    fn queue(&mut self, conn: ConnectionId, bytes: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.out_len += bytes.len();
        c.out.push_back(bytes);
        if !c.tx_notified {
            c.tx_notified = true;
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
            Phase::Handshake { .. } | Phase::Closing { .. } => self.close_now(conn),
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
                self.pump(conn, data);
            }
            Phase::Closing { .. } => self.pump_closing(conn, data),
            Phase::Closed => {}
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
                c.phase = Phase::Handshake { deadline: now + self.config.handshake_timeout };
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
        let Some(record) = self.urls.get(&id) else {
            return self.refuse(conn, Status::NotFound);
        };
        if record.sessions.len() >= self.config.sessions_per_url {
            return self.refuse(conn, Status::Unavailable);
        }
        let (script, max_message) = (record.script, record.max_message);
        let headers = Headers::new([
            target.path_info,
            target.query,
            request.user_agent.unwrap_or(""),
            request.origin.unwrap_or(""),
            request.protocol.unwrap_or(""),
        ]);
        let path_info = Text::from(target.path_info);
        let response = handshake::accept_response(ws_key);
        let key = self.mint_key();
        let session = Session {
            key,
            url: id,
            script,
            max_message,
            decoder: frame::Decoder::default(),
            headers,
            last_rx: now,
            ping_sent: None,
            paused: false,
        };
        if let Some(record) = self.urls.get_mut(&id) {
            record.sessions.push(conn);
        }
        self.sessions.insert(key, conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Open(Box::new(session));
            c.timer = None;
        }
        self.queue(conn, Bytes::from(response));
        let open = Event { id: key, kind: EventKind::Open, domain: Text::default(), data: path_info };
        self.push_event(script, Some(id), open);
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

    /// Fixed one-second windows per remote address.
    fn rate_ok(&mut self, now: Instant, remote: core::net::IpAddr) -> bool {
        let entry = self.rate.entry(remote).or_insert((now, 0));
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
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let mut held = std::mem::take(&mut c.inbuf);
        let input: &[u8] = if held.is_empty() {
            data
        } else {
            held.extend_from_slice(data);
            &held
        };
        let mut pos = 0;
        let mut open = true;
        while open && pos < input.len() {
            let Some(c) = self.conns.get_mut(&conn) else { return };
            let Some(s) = c.session_mut() else { break };
            let script = s.script;
            let url = s.url;
            let key = s.key;
            if s.paused || self.scripts.get(&script).is_some_and(|q| q.events.len() >= self.config.event_queue) {
                self.pause(conn, script);
                break;
            }
            match s.decoder.decode(&input[pos..], s.max_message) {
                Ok(None) => break,
                Ok(Some((decoded, used))) => {
                    pos += used;
                    open = self.deliver(conn, key, script, url, decoded);
                }
                Err(Violation { code, reason }) => {
                    self.fail(conn, code, reason);
                    open = false;
                }
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.inbuf = if open && pos < input.len() { input[pos..].to_vec() } else { Vec::new() };
        }
    }

    /// Acts on one decoded frame; returns whether the session is still open.
    fn deliver(&mut self, conn: ConnectionId, key: Key, script: Key, url: UrlId, decoded: Decoded) -> bool {
        match decoded {
            Decoded::Text(text) => {
                let event = Event { id: key, kind: EventKind::Text, domain: Text::default(), data: text.into() };
                self.push_event(script, Some(url), event);
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

    fn pause(&mut self, conn: ConnectionId, script: Key) {
        let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session_mut()) else { return };
        if !s.paused {
            s.paused = true;
            self.scripts.entry(script).or_default().paused.push(conn);
            self.outputs.push_back(Output::PauseReading(conn));
        }
    }

    fn resume(&mut self, conn: ConnectionId) {
        let now = self.now;
        let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session_mut()) else { return };
        if !s.paused {
            return;
        }
        s.paused = false;
        // Silence while paused was ours, not the client's.
        s.last_rx = now;
        self.pump(conn, &[]);
        if self.conns.get(&conn).and_then(|c| c.session()).is_some_and(|s| !s.paused) {
            self.outputs.push_back(Output::ResumeReading(conn));
            self.arm(conn);
        }
    }

    /// The session stops being the script's: its key dies, it leaves its URL,
    /// and the script gets `WS_CLOSE` if the URL is still live.
    fn end_session(&mut self, conn: ConnectionId, close: Option<(u16, &str)>) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        // The caller moves the connection on to `Closing` or `Closed`.
        let interim = Phase::Closing { deadline: self.now };
        let Phase::Open(s) = std::mem::replace(&mut c.phase, interim) else { return };
        c.inbuf = Vec::new();
        self.sessions.remove(&s.key);
        let Some(record) = self.urls.get_mut(&s.url) else { return };
        record.sessions.retain(|&other| other != conn);
        if let Some((code, reason)) = close {
            let data = Text::from(format!("{code} {reason}"));
            let event = Event { id: s.key, kind: EventKind::Close, domain: Text::default(), data };
            self.push_event(s.script, Some(s.url), event);
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
