//! HTTP-in (SPEC §8): the script calls, request heads and bodies, answers
//! and timeouts, and what a revocation does to requests in flight.

use core::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;

use super::{Output, Region, ScriptInfo};
use crate::conns::Kind;
use crate::http::conn::{HttpIn, Phase};
use crate::http::head::{self, Head, Parsed};
use crate::http::readable::Readable;
use crate::http::{ContentType, HttpError, HttpMethod, body::Body, charset, response};
use crate::index::{ConnIdx, ReqIdx};
use crate::inflight::Request;
use crate::key::Key;
use crate::lifecycle::Cause;
use crate::script::{Event, EventKind, ReleaseError, Text};
use crate::urls::Resolved;
use crate::{trust, url};

impl Region {
    /// `llRequestURL`: returns the request key at once; the answer comes as an
    /// `http_request` event with method `URL_REQUEST_GRANTED` (data: the
    /// `http://…/lslhttp/{cap}/` URL) or `URL_REQUEST_DENIED` (data: the
    /// reason word). HTTP-in URLs spend the same budget as WebSocket URLs.
    pub fn request_url(&mut self, caller: ScriptInfo) -> Key {
        self.request_http_url(caller, false)
    }

    /// `llRequestSecureURL`: as [`request_url`](Region::request_url) for an
    /// `https://…/lslhttps/{cap}/` URL; denied `no-secure` when the region
    /// has no [`Config::secure_authority`](crate::Config::secure_authority).
    pub fn request_secure_url(&mut self, caller: ScriptInfo) -> Key {
        self.request_http_url(caller, true)
    }

    fn request_http_url(&mut self, caller: ScriptInfo, secure: bool) -> Key {
        let request_key = self.mint_key();
        let queue = self.queues.get_or_insert(caller.script);
        let (url, method, data) = match self.urls.grant_http(&self.config, self.entropy.as_mut(), caller, queue, secure)
        {
            Ok(id) => {
                let url = self.urls.get(id).map(|u| u.url.clone()).unwrap_or_default();
                (Some(id), HttpMethod::UrlRequestGranted, Text::from(url))
            }
            Err(reason) => (None, HttpMethod::UrlRequestDenied, Text::from(reason.as_str())),
        };
        let event = Event { id: request_key, kind: EventKind::Http(method), domain: Text::default(), data };
        self.push_event(queue, url, event);
        request_key
    }

    /// `llReleaseURL`: the HTTP-in URL (with or without its trailing `/`)
    /// dies; requests in flight on it are answered 503 at once.
    pub fn release_url(&mut self, now: Instant, script: Key, url: &str) -> Result<(), ReleaseError> {
        self.now = self.now.max(now);
        let (cap, secure) = url::cap_of_http_url(url).ok_or(ReleaseError::UnknownUrl)?;
        let Some(Resolved::Url(id)) = self.urls.resolve(cap) else { return Err(ReleaseError::UnknownUrl) };
        if !self.urls.get(id).is_some_and(|u| u.script == script && u.http == Some(secure)) {
            return Err(ReleaseError::UnknownUrl);
        }
        self.revoke(id, Cause::Released);
        Ok(())
    }

    /// `llHTTPResponse`: answers the request with `status` (outside
    /// 100..=599: 500; a 1xx too, since HTTP reads it as interim) and `body`, with the `Content-Type` that
    /// [`set_content_type`](Region::set_content_type) chose.
    pub fn http_response(
        &mut self,
        now: Instant,
        script: Key,
        id: Key,
        status: i32,
        body: &str,
    ) -> Result<(), HttpError> {
        self.now = self.now.max(now);
        let req = self.inflight.find(script, id)?;
        let Some(r) = self.inflight.get(req) else { return Err(HttpError::UnknownRequest) };
        let bytes =
            response::render(status, r.content_type.header_value(self.config.allow_html), body.as_bytes(), r.close);
        self.finish_request(req, HttpError::AlreadyAnswered, bytes);
        Ok(())
    }

    /// `llSetContentType`: the `Content-Type` of the request's response.
    pub fn set_content_type(&mut self, script: Key, id: Key, content_type: ContentType) -> Result<(), HttpError> {
        let req = self.inflight.find(script, id)?;
        if let Some(r) = self.inflight.get_mut(req) {
            r.content_type = content_type;
        }
        Ok(())
    }

    /// `llGetHTTPHeader`: a header of the request by its lower-case name
    /// (`x-script-url`, `x-path-info`, `x-query-string`, `x-remote-ip`, or
    /// one the client sent), cut to 255 bytes; `""` when absent, not the
    /// caller's, after the response, or [`Config::header_lifetime`](crate::Config::header_lifetime) after the event.
    pub fn http_header(&self, script: Key, id: Key, name: &str) -> String {
        let Some(r) = self.inflight.find(script, id).ok().and_then(|req| self.inflight.get(req)) else {
            return String::new();
        };
        if r.headers_until.is_none_or(|until| self.now >= until) {
            return String::new();
        }
        let script_url = self.urls.get(r.url).map_or("", |u| u.url.strip_suffix('/').unwrap_or(&u.url));
        r.headers.get(name, script_url, self.config.max_header_value).unwrap_or_default()
    }

    /// `llGetFreeURLs`: URLs `owner` may still request in this region, HTTP-in
    /// and WebSocket alike (one budget).
    pub fn free_urls(&self, owner: Key) -> usize {
        self.urls.free(&self.config, owner)
    }

    /// HTTP-in requests in flight in the region (for the embedder's metrics).
    pub fn http_requests_in_flight(&self) -> usize {
        self.inflight.len()
    }

    // ------------------------------------------------------------ the wire

    /// A complete request head for the core to answer (HTTP-in, a send URL),
    /// past the head limit and the rate limit, with its length and the
    /// client's address; `None` when it is incomplete (kept) or was refused.
    ///
    /// The address is per request, not per connection: a trusted proxy's
    /// kept-alive connection carries requests of many clients.
    pub(super) fn request_head<'b>(
        &mut self,
        now: Instant,
        idx: ConnIdx,
        buf: &'b [u8],
    ) -> Option<(Head<'b>, usize, IpAddr)> {
        let c = self.conns.get_mut(idx)?;
        let remote = c.remote;
        c.served = true;
        let (head, len) = match head::parse(buf, &self.config) {
            Parsed::Partial => {
                c.inbuf.set(buf);
                return None;
            }
            Parsed::Refused(status) => {
                self.http_refuse(idx, status);
                return None;
            }
            Parsed::Complete(head, len) => (head, len),
        };
        let hops = head.forwarded.iter().copied();
        let client = trust::client_of(remote, &self.config.trusted_proxies, self.config.forwarded_header, hops);
        if !self.rate.allow(now, client) {
            self.http_refuse(idx, 429);
            return None;
        }
        Some((head, len, client))
    }

    /// A request head on an HTTP-in URL, complete or not.
    pub(super) fn http_head(&mut self, now: Instant, idx: ConnIdx, buf: Vec<u8>) {
        let Some((head, len, remote)) = self.request_head(now, idx, &buf) else { return };
        let secure = head.target.starts_with(head::SECURE_PREFIX);
        let prefix = if secure { head::SECURE_PREFIX } else { head::PREFIX };
        let found = url::parse_target_under(head.target, prefix).and_then(|t| match self.urls.resolve(t.cap) {
            Some(Resolved::Url(id)) if self.urls.get(id).is_some_and(|u| u.http == Some(secure)) => Some(id),
            _ => None,
        });
        let Some(url) = found else { return self.http_refuse(idx, 404) };
        let Some(method) = HttpMethod::of_request(head.method) else { return self.http_refuse(idx, 405) };
        let Some(record) = self.urls.get_mut(url) else { return self.http_refuse(idx, 404) };
        let (queue, script) = (record.queue, record.script);
        if self.inflight.count(queue) >= self.config.http_in_flight {
            return self.http_refuse(idx, 503);
        }
        let keep = charset::raw_bytes_for(self.config.max_body, head.charset);
        if self.config.refuse_large_bodies && matches!(head.framing, head::Framing::Length(n) if n > keep as u64) {
            // Decided before `100 Continue`, so the client need not send it.
            return self.http_refuse(idx, 413);
        }
        record.sessions.push(idx);
        let id = self.mint_key();
        let request = Request {
            id,
            conn: idx,
            url,
            queue,
            script,
            headers: Readable::new(&buf[..len], remote),
            headers_until: None,
            content_type: ContentType::Text,
            close: head.close,
        };
        let req = self.inflight.insert(request);
        let body = Body::new(head.framing, keep);
        if head.expect_continue && !body.is_done() {
            self.queue(idx, Bytes::from_static(response::CONTINUE));
        }
        let charset = head.charset.map(Box::from);
        let deadline = now + self.config.handshake_timeout;
        let phase = Phase::Body { body, method, charset, deadline };
        self.conns.set_kind(idx, Kind::HttpIn(Box::new(HttpIn { req: Some(req), phase, paused: false })));
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.arm(idx);
        self.http_input(now, idx, &buf[len..]);
    }

    /// Bytes on an HTTP-in connection: body bytes of the current request, or
    /// the next request's, held until the current one is answered.
    pub(super) fn http_input(&mut self, now: Instant, idx: ConnIdx, data: &[u8]) {
        let hold_limit = self.config.max_request_head;
        let Some(c) = self.conns.get_mut(idx) else { return };
        let id = c.id;
        let Kind::HttpIn(h) = &mut c.kind else { return };
        let Phase::Body { body, deadline, charset: cs, .. } = &mut h.phase else {
            c.inbuf.extend(data);
            // Pipelined requests wait their turn; past a head's worth, TCP holds the rest.
            if c.inbuf.len() > hold_limit && !std::mem::replace(&mut h.paused, true) {
                self.outputs.push_back(Output::PauseReading(id));
            }
            return;
        };
        let used = match body.feed(data) {
            Ok(used) => used,
            Err(_) => return self.http_refuse(idx, 400),
        };
        let keep = charset::raw_bytes_for(self.config.max_body, cs.as_deref());
        if self.config.refuse_large_bodies && body.seen() > keep as u64 {
            return self.http_refuse(idx, 413);
        }
        // A body that keeps coming keeps its connection; a stalled one is dropped.
        *deadline = now + self.config.handshake_timeout;
        if !body.is_done() {
            return;
        }
        if used < data.len() {
            c.inbuf.extend(&data[used..]);
        }
        self.http_complete(now, idx);
    }

    /// The whole body arrived: the request becomes the script's event.
    fn http_complete(&mut self, now: Instant, idx: ConnIdx) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        let id = c.id;
        let Kind::HttpIn(h) = &mut c.kind else { return };
        let deadline = now + self.config.http_timeout;
        let headers_until = Some(now + self.config.header_lifetime);
        let Phase::Body { body, method, charset, .. } =
            std::mem::replace(&mut h.phase, Phase::Waiting { deadline, headers_until, held: None })
        else {
            return;
        };
        let mut text = charset::decode(&body.into_kept(), charset.as_deref());
        if text.len() > self.config.max_body && self.config.refuse_large_bodies {
            return self.http_refuse(idx, 413);
        }
        charset::cut(&mut text, self.config.max_body);
        let Some(r) = h.req.and_then(|req| self.inflight.get_mut(req)) else { return };
        r.headers_until = headers_until;
        let (queue, url) = (r.queue, r.url);
        let event = Event { id: r.id, kind: EventKind::Http(method), domain: Text::default(), data: Text::from(text) };
        if self.queues.is_full(queue) {
            // Back-pressure as for a session: the event waits for room, reading stops.
            h.phase = Phase::Waiting { deadline, headers_until, held: Some(Box::new(event)) };
            if !std::mem::replace(&mut h.paused, true) {
                self.outputs.push_back(Output::PauseReading(id));
            }
            self.queues.wait(queue, idx);
        } else {
            self.push_event(queue, Some(url), event);
        }
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.arm(idx);
    }

    /// The script's queue has room for the event this connection holds.
    pub(super) fn http_resume(&mut self, idx: ConnIdx) {
        let Some(Kind::HttpIn(h)) = self.conns.get_mut(idx).map(|c| &mut c.kind) else { return };
        let Phase::Waiting { held, .. } = &mut h.phase else { return };
        let Some(event) = held.take() else { return };
        let Some(r) = h.req.and_then(|req| self.inflight.get(req)) else { return };
        let (queue, url) = (r.queue, r.url);
        if self.queues.is_full(queue) {
            *held = Some(event);
            self.queues.wait(queue, idx);
        } else {
            // Reading stays paused until the answer: further requests would only wait.
            self.push_event(queue, Some(url), *event);
        }
    }

    /// The request ends with `bytes` as its answer; the connection closes or reads the next request.
    fn finish_request(&mut self, req: ReqIdx, why: HttpError, bytes: Bytes) {
        let Some(r) = self.inflight.end(req, why) else { return };
        if let Some(u) = self.urls.get_mut(r.url) {
            u.sessions.retain(|&c| c != r.conn);
        }
        let idx = r.conn;
        self.queue(idx, bytes);
        if r.close {
            return self.close_now(idx);
        }
        let (limit, deadline) = (self.config.outgoing_buffer, self.now + self.config.idle_interval);
        let Some(c) = self.conns.get_mut(idx) else { return };
        let (id, backlog) = (c.id, c.out_len() > limit);
        let Kind::HttpIn(h) = &mut c.kind else { return };
        h.req = None;
        if backlog {
            // A client that does not read its answers gets no more of them until it does.
            h.phase = Phase::Flushing { deadline };
            if !std::mem::replace(&mut h.paused, true) {
                self.outputs.push_back(Output::PauseReading(id));
            }
            c.timer = None;
            return self.arm(idx);
        }
        self.read_next(idx);
    }

    /// Back to reading a request head, with what the client already sent.
    pub(super) fn read_next(&mut self, idx: ConnIdx) {
        let now = self.now;
        let deadline = now + self.config.handshake_timeout;
        let Some(Kind::HttpIn(h)) = self.conns.set_kind(idx, Kind::Head { deadline }) else { return };
        let Some(c) = self.conns.get_mut(idx) else { return };
        c.timer = None;
        if h.paused {
            self.outputs.push_back(Output::ResumeReading(c.id));
        }
        let pending = !c.inbuf.is_empty();
        self.arm(idx);
        if pending {
            self.head(now, idx);
        }
    }

    /// The connection's deadline passed.
    pub(super) fn http_expired(&mut self, now: Instant, idx: ConnIdx) {
        let Some(Kind::HttpIn(h)) = self.conns.get_mut(idx).map(|c| &mut c.kind) else { return };
        if let Phase::Waiting { headers_until: until @ Some(_), .. } = &mut h.phase
            && until.is_some_and(|t| t <= now)
        {
            // Unreadable from now on, so not worth holding either.
            *until = None;
            if let Some(r) = h.req.and_then(|req| self.inflight.get_mut(req)) {
                r.headers = Readable::default();
            }
            return self.arm(idx);
        }
        match (&h.phase, h.req) {
            (Phase::Waiting { .. }, Some(req)) => {
                let (status, body) = (self.config.http_timeout_status, self.config.http_timeout_body.as_bytes());
                let close = self.inflight.get(req).is_some_and(|r| r.close);
                let bytes = response::render(i32::from(status), ContentType::Text.header_value(false), body, close);
                self.finish_request(req, HttpError::Expired, bytes);
            }
            // A stalled body, or answers the client does not take.
            _ => self.close_now(idx),
        }
    }

    /// The core's own answer (no request of the script's yet, or ending the current one), then close.
    pub(super) fn http_refuse(&mut self, idx: ConnIdx, status: u16) {
        self.http_gone(idx, HttpError::Revoked);
        self.queue(idx, response::refusal(status));
        self.close_now(idx);
    }

    /// The connection's current request, if any, ends without an answer from the script.
    pub(super) fn http_gone(&mut self, idx: ConnIdx, why: HttpError) {
        let Some(Kind::HttpIn(h)) = self.conns.get_mut(idx).map(|c| &mut c.kind) else { return };
        let Some(r) = h.req.take().and_then(|req| self.inflight.end(req, why)) else { return };
        if let Some(u) = self.urls.get_mut(r.url) {
            u.sessions.retain(|&c| c != idx);
        }
    }
}
