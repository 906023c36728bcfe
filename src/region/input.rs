//! Connection input: request heads, WebSocket frames, and the pause and
//! resume of back-pressure (SPEC §5).

use std::time::Instant;

use bytes::Bytes;

use super::Region;
use crate::conns::Kind;
use crate::frame::{Decoded, Violation};
use crate::handshake::{self, Parsed, Status};
use crate::index::ConnIdx;
use crate::index::ScriptIdx;
use crate::index::UrlIdx;
use crate::key::Key;
use crate::routing::Room;
use crate::script::{Event, EventKind, Text};
use crate::session::{Headers, Held, Route, Session};
use crate::transport::Transport;
use crate::urls::Resolved;
use crate::{Output, envelope, url};

/// Room for an envelope head (`to,<key>,<domain>,`) on top of the message cap.
const ENVELOPE_HEAD: usize = 3 + 37 + envelope::MAX_DOMAIN_LEN + 1;

/// Why held input is being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pump {
    /// New bytes from the transport: a paused session keeps holding them.
    Read,
    /// The script made room: decode what is held while the queue has room.
    Resume,
    /// The peer is gone: deliver everything held, past the queue limit.
    Drain,
}

impl Region {
    pub(super) fn received(&mut self, now: Instant, idx: ConnIdx, data: &[u8]) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        match &mut c.kind {
            Kind::Head { .. } => {
                c.inbuf.extend(data);
                self.head(now, idx);
            }
            Kind::Session(s) => {
                s.heard(now);
                self.pump(idx, data, Pump::Read);
            }
            Kind::Closing { .. } => {
                if c.closing_input(data, self.config.max_message) {
                    self.close_now(idx);
                }
            }
            Kind::HttpIn(_) => self.http_input(now, idx, data),
            Kind::SsePost(_) => self.sse_post_input(now, idx, data),
            // A request body or pipelined request waits for `respond`, which closes.
            Kind::Http { .. } | Kind::Closed => {}
        }
    }

    pub(super) fn peer_closed(&mut self, idx: ConnIdx) {
        self.http_gone(idx, crate::http::HttpError::ClientGone);
        let Some(c) = self.conns.get(idx) else { return };
        if c.session().is_some() {
            // What the client sent before it left is delivered, even past a full queue.
            self.pump(idx, &[], Pump::Drain);
            self.end_session(idx, Some((1006, "connection lost")));
        }
    }

    /// A request head is complete (or refused): decide what the connection becomes.
    /// Once per connection, so kept out of line, away from the message path.
    #[inline(never)]
    pub(super) fn head(&mut self, now: Instant, idx: ConnIdx) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        let buf = c.inbuf.take();
        // Sniffed from the connection's first byte only (SPEC §13), before anything else.
        if buf.first() == Some(&b'/') && !c.served {
            return self.line_head(now, idx, buf);
        }
        if crate::http::head::is_http_in(&buf) {
            return self.http_head(now, idx, buf);
        }
        if crate::http::head::is_under(&buf, crate::sse::SEND_PREFIX) {
            return self.sse_post_head(now, idx, buf);
        }
        let (request, head_len) = match handshake::parse(&buf, &self.config, c.remote) {
            Parsed::Partial => {
                c.inbuf.set(&buf);
                return;
            }
            Parsed::Refused(status) => return self.refuse(idx, status),
            Parsed::Complete(request, len) => (request, len),
        };
        // The client's address from here on: `x-remote-ip` and the rate-limit key.
        c.remote = request.client;
        if !self.rate.allow(now, request.client) {
            return self.refuse(idx, Status::TooManyRequests);
        }
        if self.config.serve_other_paths && !request.path.starts_with(url::PATH_PREFIX) {
            // Answered by `respond`, which closes; until then the handshake timer runs.
            self.conns.set_kind(idx, Kind::Http { deadline: now + self.config.handshake_timeout });
            let (method, target) = (request.method.to_string(), request.path.to_string());
            let id = self.conns.get(idx).map(|c| c.id).expect("connection just seen");
            self.outputs.push_back(Output::HttpRequest { conn: id, method, target });
            return;
        }
        let Some((target, resolved)) = request.target.and_then(|t| Some((t, self.resolve_ws(t.cap)?))) else {
            return self.refuse(idx, Status::NotFound);
        };
        let ws_key = match request.upgrade {
            Ok(key) => key,
            // SPEC §14: no upgrade, but an event stream is welcome.
            Err(Status::UpgradeRequired) if request.accept_sse => {
                return self.sse_open(now, idx, &target, resolved, &request);
            }
            Err(status) => return self.refuse(idx, status),
        };
        let headers = Headers::of(&target, &request);
        let Some(session) = self.new_session(now, idx, resolved, Transport::WebSocket, headers) else {
            return self.refuse(idx, Status::Unavailable);
        };
        self.conns.set_kind(idx, Kind::Session(Box::new(session)));
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.queue(idx, Bytes::from(handshake::accept_response(ws_key)));
        self.arm(idx);
        // A client may send frames right behind its head.
        self.pump(idx, &buf[head_len..], Pump::Read);
    }

    /// What a capability names for a WebSocket-style session (an HTTP-in URL names none).
    pub(super) fn resolve_ws(&self, cap: Key) -> Option<Resolved> {
        match self.urls.resolve(cap)? {
            Resolved::Url(url) if self.urls.get(url)?.http.is_some() => None,
            resolved => Some(resolved),
        }
    }

    /// A session of the URL `resolved` names for connection `idx`, entered in
    /// its URL's sessions (or counted on the region endpoint); `None` when
    /// that is full or the capability is no WebSocket URL (answered 503 or 404).
    pub(super) fn new_session(
        &mut self,
        now: Instant,
        idx: ConnIdx,
        resolved: Resolved,
        transport: Transport,
        headers: Headers,
    ) -> Option<Session> {
        let (route, max_message) = match resolved {
            Resolved::Endpoint => {
                if self.region_sessions >= self.config.region_endpoint_sessions {
                    return None;
                }
                self.region_sessions += 1;
                (Route::Region { contacts: Default::default() }, self.config.max_message + ENVELOPE_HEAD)
            }
            Resolved::Url(url) => {
                let record = self.urls.get_mut(url)?;
                if record.sessions.len() >= self.config.sessions_per_url {
                    return None;
                }
                record.sessions.push(idx);
                let (queue, max_message) = (record.queue, record.max_message);
                let key = self.mint_key();
                self.conns.bind_key(key, idx);
                (Route::Object { key, url, queue }, max_message)
            }
        };
        let mut session = Session::new(route, max_message, transport, headers, now);
        // WS_OPEN counts against the script's queue like any event: it waits for room.
        session.held = session.object().map(|_| Box::new(Held::Open));
        Some(session)
    }

    /// Decodes and delivers what a session holds followed by `data`, until
    /// the input runs out or a script queue it has input for is full.
    /// Returns whether it stopped on a full queue.
    pub(super) fn pump(&mut self, idx: ConnIdx, data: &[u8], mode: Pump) -> bool {
        let Some(c) = self.conns.get_mut(idx) else { return false };
        let Some(s) = c.session() else { return false };
        if s.paused && mode == Pump::Read {
            // At most the chunk read before the pause took effect.
            c.inbuf.extend(data);
            return true;
        }
        let mut held = c.inbuf.take();
        let input: &[u8] = if held.is_empty() {
            data
        } else {
            held.extend_from_slice(data);
            &held
        };
        let mut pos = 0;
        let mut open = true;
        let mut waiting = None;
        while open {
            let Some(s) = self.conns.session_mut(idx) else { break };
            if s.held.is_some() {
                match self.place_held(idx, mode) {
                    Some(full) => {
                        waiting = Some(full);
                        break;
                    }
                    None => continue,
                }
            }
            if pos >= input.len() {
                break;
            }
            let object = s.object();
            // Object scope waits before decoding, so control frames keep their place too.
            if let Some((_, _, queue)) = object
                && mode != Pump::Drain
                && self.queues.is_full(queue)
            {
                waiting = Some(queue);
                break;
            }
            match s.transport.decode(&mut s.decoder, &input[pos..], s.max_message) {
                Ok(None) => break,
                Ok(Some((decoded, used))) => {
                    pos += used;
                    open = self.deliver(idx, object, decoded, mode);
                }
                Err(Violation { code, reason }) => {
                    self.fail(idx, code, reason);
                    open = false;
                }
            }
        }
        // Nothing else puts bytes in `inbuf` meanwhile, so it is still the empty
        // buffer `take` left unless a partial frame must be kept.
        if open
            && pos < input.len()
            && let Some(c) = self.conns.get_mut(idx)
        {
            c.inbuf.set(&input[pos..]);
        }
        if let Some(queue) = waiting {
            self.pause(idx, queue);
        }
        waiting.is_some()
    }

    /// Hands on what the session held back, if there is room now; otherwise
    /// the queue it still waits for.
    #[cold]
    fn place_held(&mut self, idx: ConnIdx, mode: Pump) -> Option<ScriptIdx> {
        let s = self.conns.session_mut(idx)?;
        let held = s.held.take()?;
        match *held {
            Held::Open => {
                let (key, url, queue) = s.object()?;
                if mode != Pump::Drain && self.queues.is_full(queue) {
                    s.held = Some(held);
                    return Some(queue);
                }
                let data = Text::from(s.headers.path_info());
                let event = Event { id: key, kind: EventKind::Open, domain: Text::default(), data };
                self.push_event(queue, Some(url), event);
                None
            }
            Held::Envelope { ref text, .. } => {
                let full = self.route_envelope(idx, text, self.room(mode));
                if full.is_some() {
                    self.conns.session_mut(idx)?.held = Some(held);
                }
                full
            }
        }
    }

    /// How a region-scope frame decoded in `mode` treats full listener queues.
    fn room(&self, mode: Pump) -> Room {
        match mode {
            Pump::Drain => Room::PastLimit,
            // No grace configured: a full listener is answered `busy` at once.
            _ if self.config.busy_grace.is_zero() => Room::GraceOver,
            _ => Room::Wait,
        }
    }

    /// Acts on one decoded frame of a session whose route, for object scope, is
    /// `object`; returns whether the session is still open.
    fn deliver(
        &mut self,
        idx: ConnIdx,
        object: Option<(Key, UrlIdx, ScriptIdx)>,
        decoded: Decoded,
        mode: Pump,
    ) -> bool {
        match decoded {
            Decoded::Text(text) => {
                match object {
                    Some((key, url, queue)) => {
                        let event =
                            Event { id: key, kind: EventKind::Text, domain: Text::default(), data: text.into() };
                        self.push_event(queue, Some(url), event);
                    }
                    None => {
                        if self.route_envelope(idx, &text, self.room(mode)).is_some()
                            && let Some(s) = self.conns.session_mut(idx)
                        {
                            // Held until there is room, for at most the busy grace.
                            let until = self.now + self.config.busy_grace;
                            s.held = Some(Box::new(Held::Envelope { text: text.into_boxed_str(), until }));
                        }
                    }
                }
                true
            }
            Decoded::Ping(payload) => {
                let pong = self.transport(idx).pong(&payload);
                self.queue(idx, pong);
                true
            }
            Decoded::Nothing => true,
            Decoded::Close(code, reason) => {
                let t = self.transport(idx);
                self.queue(idx, code.map_or_else(|| t.close_empty(), |code| t.close(code, &reason)));
                self.end_session(idx, Some((code.unwrap_or(1005), &reason)));
                self.close_now(idx);
                false
            }
        }
    }

    /// Marks the session paused (telling the embedder once) and in the waiting line of `queue`.
    #[cold]
    fn pause(&mut self, idx: ConnIdx, queue: ScriptIdx) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        let (id, detached) = (c.id, c.detached);
        let Some(s) = c.session_mut() else { return };
        if !std::mem::replace(&mut s.paused, true) && !detached {
            self.outputs.push_back(Output::PauseReading(id));
        }
        if s.waiting_on.replace(queue) != Some(queue) {
            self.queues.wait(queue, idx);
        }
        c.timer = None;
        self.arm(idx);
    }

    /// Delivers what a paused session holds; the embedder reads again only
    /// once all of it found room.
    pub(super) fn resume(&mut self, idx: ConnIdx) {
        if matches!(self.conns.get(idx).map(|c| &c.kind), Some(Kind::HttpIn(_))) {
            return self.http_resume(idx);
        }
        if !self.conns.session(idx).is_some_and(|s| s.paused) {
            return;
        }
        if self.pump(idx, &[], Pump::Resume) {
            return;
        }
        let now = self.now;
        let Some(c) = self.conns.get_mut(idx) else { return };
        let (id, detached) = (c.id, c.detached);
        let Some(s) = c.session_mut() else { return };
        s.paused = false;
        // Silence while paused was ours, not the client's.
        s.last_rx = now;
        if !detached {
            self.outputs.push_back(Output::ResumeReading(id));
        }
        self.arm(idx);
    }

    /// The busy grace of a held region message ran out: it is answered
    /// `busy` for the listeners still full, and the rest of the input flows.
    pub(super) fn grace_over(&mut self, idx: ConnIdx) {
        let Some(s) = self.conns.session_mut(idx) else { return };
        if let Some(held) = s.held.take()
            && let Held::Envelope { text, .. } = *held
        {
            self.route_envelope(idx, &text, Room::GraceOver);
        }
        if let Some(s) = self.conns.session_mut(idx) {
            s.waiting_on = None;
        }
        self.resume(idx);
    }

    /// Resumes connections waiting for the script's queue, in the order they
    /// started waiting, while it has room.
    pub(super) fn make_room(&mut self, queue: ScriptIdx) {
        while let Some(idx) = self.queues.next_waiting(queue) {
            match self.conns.get_mut(idx).map(|c| &mut c.kind) {
                Some(Kind::Session(s)) if s.waiting_on == Some(queue) => s.waiting_on = None,
                Some(Kind::HttpIn(h)) if h.holds_event() => {}
                // It moved on to another queue, or is gone.
                _ => continue,
            }
            // Either it stops paused, or it filled the queue and the loop ends.
            self.resume(idx);
        }
    }

    /// Fails the connection: close frame with the SPEC's code, then close the transport.
    pub(super) fn fail(&mut self, idx: ConnIdx, code: u16, reason: &str) {
        let close = self.close_message(idx, code, reason);
        self.queue(idx, close);
        self.end_session(idx, Some((code, reason)));
        self.close_now(idx);
    }

    /// The session stops being the script's: its keys die, it leaves its URL
    /// or its domains, and listening scripts get `WS_CLOSE` if still live.
    pub(super) fn end_session(&mut self, idx: ConnIdx, close: Option<(u16, &str)>) {
        // The caller moves the connection on to `Closing` or `Closed`.
        let interim = Kind::Closing { deadline: self.now };
        let Some(Kind::Session(s)) = self.conns.set_kind(idx, interim) else { return };
        if let Some(c) = self.conns.get_mut(idx) {
            c.inbuf.clear();
        }
        if let Some(stream) = &s.stream {
            self.streams.end(stream.token);
        }
        match s.route {
            Route::Object { key, url, queue } => {
                self.conns.unbind_key(key);
                let Some(record) = self.urls.get_mut(url) else { return };
                record.sessions.retain(|&other| other != idx);
                if let Some((code, reason)) = close {
                    if matches!(s.held.as_deref(), Some(Held::Open)) {
                        // Its WS_OPEN was still waiting for room: it goes first, past the limit,
                        // so the script never sees a close of a session it did not see open.
                        let data = Text::from(s.headers.path_info());
                        self.push_event(
                            queue,
                            Some(url),
                            Event { id: key, kind: EventKind::Open, domain: Text::default(), data },
                        );
                    }
                    let data = Text::from(format!("{code} {reason}"));
                    self.push_event(
                        queue,
                        Some(url),
                        Event { id: key, kind: EventKind::Close, domain: Text::default(), data },
                    );
                }
            }
            Route::Region { contacts } => {
                self.region_sessions -= 1;
                for contact in contacts.into_vec() {
                    self.conns.unbind_key(contact.key);
                    self.leave_domain(idx, &contact, close);
                }
            }
        }
    }

    /// Queues an event for a script, telling the embedder once per batch.
    pub(super) fn push_event(&mut self, queue: ScriptIdx, url: Option<UrlIdx>, event: Event) {
        if let Some(script) = self.queues.push(queue, url, event) {
            self.outputs.push_back(Output::Events(script));
        }
    }
}
