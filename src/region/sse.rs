//! Server-sent events (SPEC §14): opening and resuming streams, the `POST`s
//! that carry client messages, heartbeats and the resume window. The wire
//! format and the resume memory are in `crate::sse`.

use std::time::Instant;

use bytes::Bytes;

use super::input::Pump;
use super::{Output, Region};
use crate::conns::Kind;
use crate::handshake::{Request, Status};
use crate::http::conn::SsePost;
use crate::http::head::Framing;
use crate::http::{body::Body, response};
use crate::index::ConnIdx;
use crate::routing::Room;
use crate::script::{Event, EventKind, Text};
use crate::session::{Headers, Route};
use crate::sse::{self, Stream};
use crate::transport::Transport;
use crate::url::Target;
use crate::urls::Resolved;

impl Region {
    /// A `GET` with `Accept: text/event-stream` on a WebSocket URL: a new
    /// stream, the resume of a dropped one, or 204 for one that ended.
    pub(super) fn sse_open(
        &mut self,
        now: Instant,
        idx: ConnIdx,
        target: &Target<'_>,
        resolved: Resolved,
        request: &Request<'_>,
    ) {
        if let Some((token, seen)) = request.last_event_id.and_then(sse::parse_event_id) {
            if let Some(session) = self.streams.get(token).filter(|&s| self.same_url(s, resolved)) {
                return self.sse_resume(now, idx, session, seen);
            }
            if self.streams.has_ended(token) {
                // A non-200 answer is what stops `EventSource` retrying.
                self.queue(idx, response::no_content(true));
                return self.close_now(idx);
            }
            // An unknown id: a new session.
        }
        let headers = Headers::of(target, request);
        let Some(mut session) = self.new_session(now, idx, resolved, Transport::Sse, headers) else {
            return self.refuse(idx, Status::Unavailable);
        };
        let token = self.mint_token();
        let mut stream = Stream::new(token);
        stream.beat(now);
        let opening = stream.opening();
        session.stream = Some(Box::new(stream));
        self.streams.insert(token, idx);
        self.conns.set_kind(idx, Kind::Session(Box::new(session)));
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.queue(idx, opening);
        self.arm(idx);
        // Hands on the session's WS_OPEN (nothing else comes up a stream).
        self.pump(idx, &[], Pump::Read);
    }

    /// Whether the session at `session` belongs to the URL `resolved` names.
    fn same_url(&self, session: ConnIdx, resolved: Resolved) -> bool {
        match (self.conns.session(session).map(|s| &s.route), resolved) {
            (Some(Route::Object { url, .. }), Resolved::Url(other)) => *url == other,
            (Some(Route::Region { .. }), Resolved::Endpoint) => true,
            _ => false,
        }
    }

    /// The connection `idx` takes up the stream of `session` after event `seen`.
    fn sse_resume(&mut self, now: Instant, idx: ConnIdx, session: ConnIdx, seen: u64) {
        let missed = self.conns.session(session).and_then(|s| s.stream.as_ref()).map(|st| st.since(seen));
        let Some(missed) = missed else { return self.close_now(idx) };
        if let Some(old) = self.conns.reattach(session, idx) {
            // A proxy may still hold the old stream open: it is replaced.
            self.outputs.push_back(Output::Close(old));
        }
        if let Some(st) = self.conns.session_mut(session).and_then(|s| s.stream.as_mut()) {
            st.detached_until = None;
            st.beat(now);
        }
        self.queue(session, sse::head());
        match missed {
            Ok(events) => {
                for event in events {
                    self.queue(session, event);
                }
                if let Some(c) = self.conns.get_mut(session) {
                    c.timer = None;
                }
                self.arm(session);
            }
            // Never skip silently: a gap ends the session, with a reason.
            Err(sse::Gap) => self.fail(session, 1001, "cannot resume: events dropped"),
        }
    }

    /// The stream's connection went away: the session waits one idle
    /// interval for a resume. Returns whether `idx` was such a stream.
    pub(super) fn sse_detach(&mut self, now: Instant, idx: ConnIdx) -> bool {
        let until = now + self.config.idle_interval;
        let Some(c) = self.conns.get_mut(idx) else { return false };
        if c.detached {
            return true;
        }
        let Some(st) = c.session_mut().and_then(|s| s.stream.as_mut()) else { return false };
        st.detached_until = Some(until);
        self.conns.detach(idx);
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.arm(idx);
        true
    }

    /// A stream's deadline: its heartbeat, or the end of its resume window.
    pub(super) fn sse_expired(&mut self, now: Instant, idx: ConnIdx) {
        let Some(st) = self.conns.session_mut(idx).and_then(|s| s.stream.as_mut()) else { return };
        if st.detached_until.is_some_and(|t| t <= now) {
            self.end_session(idx, Some((1006, "connection lost")));
            return self.close_now(idx);
        }
        st.beat(now);
        self.queue(idx, sse::heartbeat());
        self.arm(idx);
    }

    // ------------------------------------------------------------ POST

    /// A request head for a send URL (`/lslsse/{token}/`), complete or not:
    /// `POST` one message, or `DELETE` to close the session (1000).
    pub(super) fn sse_post_head(&mut self, now: Instant, idx: ConnIdx, buf: Vec<u8>) {
        let Some((head, len, _client)) = self.request_head(now, idx, &buf) else { return };
        let token = head.target.strip_prefix(sse::SEND_PREFIX).and_then(|t| t.split(['/', '?']).next());
        let Some(session) = token.and_then(|t| t.parse().ok()).and_then(|t| self.streams.get(t)) else {
            return self.http_refuse(idx, 404);
        };
        if head.method == "DELETE" {
            // The client's close (an `EventSource` cannot say goodbye on its own).
            self.queue(idx, response::no_content(true));
            self.close_now(idx);
            let close = self.close_message(session, 1000, "");
            self.queue(session, close);
            self.end_session(session, Some((1000, "")));
            return self.close_now(session);
        }
        if head.method != "POST" {
            self.queue(idx, Bytes::from_static(
                b"HTTP/1.1 405 Method Not Allowed\r\nAllow: POST, DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ));
            return self.close_now(idx);
        }
        let Some(max) = self.conns.session(session).map(|s| s.max_message) else { return self.http_refuse(idx, 404) };
        if matches!(head.framing, Framing::Length(n) if n > max as u64) {
            return self.http_refuse(idx, 413);
        }
        let body = Body::new(head.framing, max + 1);
        if head.expect_continue && !body.is_done() {
            self.queue(idx, Bytes::from_static(response::CONTINUE));
        }
        let post = SsePost { session, body, close: head.close, deadline: now + self.config.handshake_timeout };
        self.conns.set_kind(idx, Kind::SsePost(Box::new(post)));
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.arm(idx);
        self.sse_post_input(now, idx, &buf[len..]);
    }

    /// Body bytes of a `POST` (or the next request's, held until it is answered).
    pub(super) fn sse_post_input(&mut self, now: Instant, idx: ConnIdx, data: &[u8]) {
        let Some(Kind::SsePost(post)) = self.conns.get(idx).map(|c| &c.kind) else { return };
        let max = self.conns.session(post.session).map_or(0, |s| s.max_message);
        let Some(c) = self.conns.get_mut(idx) else { return };
        let Kind::SsePost(post) = &mut c.kind else { return };
        let used = match post.body.feed(data) {
            Ok(used) => used,
            Err(_) => return self.http_refuse(idx, 400),
        };
        let Some(c) = self.conns.get_mut(idx) else { return };
        let Kind::SsePost(post) = &mut c.kind else { return };
        if post.body.seen() > max as u64 {
            return self.http_refuse(idx, 413);
        }
        post.deadline = now + self.config.handshake_timeout;
        if !post.body.is_done() {
            return;
        }
        if used < data.len() {
            c.inbuf.extend(&data[used..]);
        }
        let Some(Kind::SsePost(post)) =
            self.conns.set_kind(idx, Kind::Head { deadline: now + self.config.handshake_timeout })
        else {
            return;
        };
        let status = self.sse_deliver(post.session, post.body.into_kept());
        if status != 204 {
            return self.http_refuse(idx, status);
        }
        self.queue(idx, response::no_content(post.close));
        if post.close {
            return self.close_now(idx);
        }
        // Kept alive: the next request, which may already be here.
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.arm(idx);
        if self.conns.get(idx).is_some_and(|c| !c.inbuf.is_empty()) {
            self.head(now, idx);
        }
    }

    /// One posted message for the session: the status to answer with.
    fn sse_deliver(&mut self, session: ConnIdx, body: Vec<u8>) -> u16 {
        let Ok(text) = String::from_utf8(body) else { return 400 };
        let Some(s) = self.conns.session(session).filter(|s| s.stream.is_some()) else { return 404 };
        if text.len() > s.max_message {
            return 413;
        }
        match s.object() {
            Some((key, url, queue)) => {
                if self.queues.is_full(queue) {
                    return 503;
                }
                let event = Event { id: key, kind: EventKind::Text, domain: Text::default(), data: text.into() };
                self.push_event(queue, Some(url), event);
            }
            // Region scope: a full listener is answered `err,<domain>,busy` on the stream.
            None => {
                self.route_envelope(session, &text, Room::GraceOver);
            }
        }
        204
    }
}
