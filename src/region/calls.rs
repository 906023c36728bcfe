//! Script calls (SPEC §3): each returns its LSL result at once.

use std::sync::Arc;
use std::time::Instant;

use super::{Output, Region, ScriptInfo};
use crate::envelope::ServerFrame;
use crate::frame;
use crate::index::{ConnIdx, UrlIdx};
use crate::key::Key;
use crate::lifecycle::Cause;
use crate::script::{CloseError, Event, EventKind, ReleaseError, SendError, Text, WebsocketRequest};
use crate::session::Route;
use crate::transport::Transport;
use crate::url;
use crate::urls::Resolved;

impl Region {
    /// `llRequestWebsocket`: returns the request key at once; the answer comes
    /// as a `WS_URL_GRANTED` or `WS_URL_DENIED` event.
    ///
    /// Object scope mints a new URL. Region scope makes the script listen on
    /// `request.domain` of the region endpoint, whose URL is granted; clients
    /// already subscribed to the domain then open to the script (`WS_OPEN`).
    pub fn request_websocket(&mut self, caller: ScriptInfo, request: &WebsocketRequest) -> Key {
        let request_key = self.mint_key();
        let domain = Text::from(request.domain.as_deref().unwrap_or(""));
        let queue = self.queues.get_or_insert(caller.script);
        let outcome = self.urls.grant(&self.config, self.entropy.as_mut(), caller, queue, request);
        let (url, kind, data) = match outcome {
            Ok(id) => {
                let record = self.urls.get(id).expect("just granted");
                if let Some(d) = &record.domain {
                    self.router.entry(d).listeners.push(id);
                }
                (Some(id), EventKind::UrlGranted, Text::from(record.url.clone()))
            }
            Err(reason) => (None, EventKind::UrlDenied, Text::from(reason.as_str())),
        };
        self.push_event(queue, url, Event { id: request_key, kind, domain, data });
        if let Some(id) = url {
            self.greet_subscribers(id);
        }
        request_key
    }

    /// `llReleaseWebsocket`: an object-scope URL dies and its sessions are
    /// closed with 1001 `url released`. Given the region endpoint's URL, the
    /// script stops listening on all its domains (see [`release_domain`](Region::release_domain) for one).
    pub fn release_websocket(&mut self, now: Instant, script: Key, url: &str) -> Result<(), ReleaseError> {
        self.release_websocket_with_reason(now, script, url, Cause::Released.reason())
    }

    /// [`release_websocket`](Region::release_websocket) for an embedder that
    /// releases on the script's behalf and knows why (a bridge whose remote
    /// script is gone): the sessions close 1001 with `reason` (at most 123
    /// bytes) instead of `url released`. [`Output::Revoked`]
    /// still names [`Cause::Released`].
    pub fn release_websocket_with_reason(
        &mut self,
        now: Instant,
        script: Key,
        url: &str,
        reason: &str,
    ) -> Result<(), ReleaseError> {
        self.now = self.now.max(now);
        if reason.len() > 123 {
            return Err(ReleaseError::ReasonTooLong(reason.len()));
        }
        match url::cap_of_url(url).and_then(|cap| self.urls.resolve(cap)).ok_or(ReleaseError::UnknownUrl)? {
            Resolved::Endpoint => {
                match self.revoke_where_because(Cause::Released, reason, |u| u.script == script && u.domain.is_some()) {
                    0 => Err(ReleaseError::UnknownUrl),
                    _ => Ok(()),
                }
            }
            Resolved::Url(id) => {
                if !self.urls.get(id).is_some_and(|u| u.script == script && u.url == url) {
                    return Err(ReleaseError::UnknownUrl);
                }
                self.revoke_because(id, Cause::Released, reason);
                Ok(())
            }
        }
    }

    /// Region scope: the script stops listening on `domain`. Clients subscribed
    /// to a domain that lost its last listener get `uns,<domain>`.
    pub fn release_domain(&mut self, now: Instant, script: Key, domain: &str) -> Result<(), ReleaseError> {
        self.now = self.now.max(now);
        let id = self.router.listener(&self.urls, script, domain).ok_or(ReleaseError::UnknownUrl)?;
        self.revoke(id, Cause::Released);
        Ok(())
    }

    /// `llWebsocketSend`: one text message to one client of the calling
    /// script. To a region-endpoint client it goes as `msg,<domain>,<text>`
    /// on the domain the session key belongs to.
    pub fn websocket_send(&mut self, script: Key, session: Key, text: &str) -> Result<(), SendError> {
        // As `own_session`, written out: this is every message's path.
        let idx = self.conns.by_key(session).ok_or(SendError::NoSession)?;
        let (max, domain) = match &self.conns.session(idx).ok_or(SendError::NoSession)?.route {
            Route::Object { url, .. } => {
                let record = self.urls.get(*url).filter(|u| u.script == script).ok_or(SendError::NoSession)?;
                (record.max_message, None)
            }
            Route::Region { contacts } => {
                let contact = contacts.by_key(session).ok_or(SendError::NoSession)?;
                let id = self.router.listener(&self.urls, script, &contact.domain).ok_or(SendError::NoSession)?;
                (self.urls.get(id).map_or(0, |u| u.max_message), Some(contact.domain.clone()))
            }
        };
        if text.len() > max {
            return Err(SendError::TooLarge);
        }
        let c = self.conns.get_mut(idx).ok_or(SendError::NoSession)?;
        if c.send_text(domain.as_deref(), text, self.config.outgoing_buffer)? {
            self.outputs.push_back(Output::Transmit(c.id));
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
        let id = self.router.listener(&self.urls, script, domain).ok_or(SendError::BadDomain)?;
        if self.urls.get(id).is_none_or(|u| text.len() > u.max_message) {
            return Err(SendError::TooLarge);
        }
        let parts: [&[u8]; 4] = [b"msg,", domain.as_bytes(), b",", text.as_bytes()];
        let frame = frame::text_parts(&parts);
        // Built on first use: most broadcasts reach no line client.
        let mut line = None;
        let subscribers = self.router.get(domain).map(|d| d.subscribers.clone()).unwrap_or_default();
        let mut sent = 0;
        for idx in subscribers {
            let limit = self.config.outgoing_buffer;
            let Some(c) = self.conns.get_mut(idx) else { continue };
            let bytes = match c.session().map(|s| s.transport) {
                Some(Transport::Lines) => line.get_or_insert_with(|| Transport::Lines.text(&parts)).clone(),
                // Each stream numbers its own events.
                Some(Transport::Sse) => c.message(&parts, limit),
                _ => frame.clone(),
            };
            if c.out_len() + bytes.len() > limit {
                self.fail(idx, 1008, "too slow");
            } else {
                self.queue(idx, bytes);
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
        CloseError::check(code, reason)?;
        let (idx, _, domain) = self.own_session(script, session).ok_or(CloseError::NoSession)?;
        match domain {
            Some(domain) => {
                self.queue_envelope(idx, &ServerFrame::Uns { domain: &domain });
                self.drop_contact(idx, &domain, Some((code, reason)));
            }
            None => {
                let (t, close) = (self.transport(idx), self.close_message(idx, code, reason));
                self.queue(idx, close);
                self.end_session(idx, Some((code, reason)));
                self.start_closing(idx, t);
            }
        }
        Ok(())
    }

    /// `llGetWebsocketHeader`: one of `x-script-url`, `x-path-info`,
    /// `x-query-string`, `x-remote-ip`, `user-agent`, `origin`,
    /// `sec-websocket-protocol` (lower case), or `x-transport`: how the client
    /// is connected, `websocket` or `lines` (SPEC §13); `""` when absent,
    /// unknown, or the session is gone or not the caller's.
    pub fn websocket_header(&self, script: Key, session: Key, name: &str) -> String {
        let Some((idx, url, _)) = self.own_session(script, session) else { return String::new() };
        let (Some(c), Some(record)) = (self.conns.get(idx), self.urls.get(url)) else { return String::new() };
        match name {
            "x-script-url" => Some(record.url.clone()),
            "x-remote-ip" => Some(c.remote.to_string()),
            "x-transport" => c.session().map(|s| s.transport.name().to_string()),
            _ => c.session().and_then(|s| s.headers.named(name)).map(str::to_string),
        }
        .unwrap_or_default()
    }

    /// `llGetFreeWebsockets`: URLs `owner` may still request in this region.
    /// Region-scope listening mints no URL, so only object-scope URLs count.
    pub fn free_websockets(&self, owner: Key) -> usize {
        self.urls.free(&self.config, owner)
    }

    /// The script's next event, in order. Draining makes room in its queue and
    /// resumes connections waiting for it.
    pub fn poll_event(&mut self, script: Key) -> Option<Event> {
        let queue = self.queues.find(script)?;
        if !self.queues.has_waiting(queue) {
            // The usual case, kept apart so the event moves straight to the caller.
            return self.queues.pop(queue);
        }
        let event = self.queues.pop(queue);
        self.make_room(queue);
        event
    }

    /// Events waiting in the script's queue.
    pub fn pending_events(&self, script: Key) -> usize {
        self.queues.find(script).map_or(0, |q| self.queues.len(q))
    }

    /// The connection of a session key the script may use, the grant it
    /// comes through (its object URL, or its listener on the domain), and
    /// for a region-endpoint client the domain the key belongs to.
    fn own_session(&self, script: Key, session: Key) -> Option<(ConnIdx, UrlIdx, Option<Arc<str>>)> {
        let idx = self.conns.by_key(session)?;
        match &self.conns.session(idx)?.route {
            Route::Object { url, .. } => (self.urls.get(*url)?.script == script).then_some((idx, *url, None)),
            Route::Region { contacts } => {
                let contact = contacts.by_key(session)?;
                let url = self.router.listener(&self.urls, script, &contact.domain)?;
                Some((idx, url, Some(contact.domain.clone())))
            }
        }
    }
}
