//! Region scope (SPEC §6): envelope frames from region-endpoint clients,
//! their contacts, and the listeners they reach.
//!
//! A frame whose listeners have room is handed on at once. One whose
//! listener queue is full waits (the caller holds it and pauses the
//! connection) for at most the busy grace; after that it is answered `busy`,
//! and the listener counts as stalled until its queue has room again, so
//! further frames for it are answered `busy` without waiting.

use std::sync::Arc;

use super::Region;
use crate::conns::ConnIdx;
use crate::envelope::{self, ClientFrame, ErrorWord, ServerFrame};
use crate::frame;
use crate::key::Key;
use crate::queues::ScriptIdx;
use crate::routing::Contact;
use crate::script::{Event, EventKind, Text};
use crate::urls::UrlIdx;

/// What became of one envelope frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Routed {
    /// Handed on, or answered.
    Done,
    /// A listener's queue is full: hold the frame and wait for this queue.
    Wait(ScriptIdx),
}

/// How a frame treats full listener queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Wait for a full queue, unless it is stalled.
    Wait,
    /// The grace ran out: full queues are answered `busy` and become stalled.
    GraceOver,
    /// The client is gone: deliver past the limit.
    PastLimit,
}

impl Region {
    /// One text frame from a region-endpoint client; `past_limit` when the
    /// client is gone and what it sent is delivered regardless.
    pub(super) fn route_envelope(&mut self, idx: ConnIdx, text: &str, past_limit: bool) -> Routed {
        let room = match (past_limit, self.config.busy_grace.is_zero()) {
            (true, _) => Room::PastLimit,
            // No grace configured: a full listener is answered `busy` at once.
            (false, true) => Room::GraceOver,
            (false, false) => Room::Wait,
        };
        self.route_with(idx, text, room)
    }

    /// A held frame whose busy grace ran out.
    pub(super) fn route_envelope_after_grace(&mut self, idx: ConnIdx, text: &str) {
        self.route_with(idx, text, Room::GraceOver);
    }

    fn route_with(&mut self, idx: ConnIdx, text: &str, room: Room) -> Routed {
        let Ok(frame) = envelope::parse_client(text) else {
            self.queue_envelope(idx, &ServerFrame::BAD_FRAME);
            return Routed::Done;
        };
        match frame {
            ClientFrame::Sub { domain } => self.subscribe(idx, domain, room),
            ClientFrame::Uns { domain } => {
                if !self.contact(idx, domain).is_some_and(|c| c.subscribed) {
                    return Routed::Done;
                }
                if let Some(full) = self.full_listener(domain, room, |_| true) {
                    return Routed::Wait(full);
                }
                // A client's `uns` is never refused: its WS_CLOSE goes out even to a stalled queue.
                self.drop_contact(idx, domain, Some((1000, "unsubscribed")));
                Routed::Done
            }
            ClientFrame::Msg { domain, payload } => self.route_to_listeners(idx, domain, payload, None, room),
            ClientFrame::To { object, domain, payload } => {
                self.route_to_listeners(idx, domain, payload, Some(object), room)
            }
        }
    }

    /// The first listener of `domain` (among those `pick` chooses) whose full
    /// queue the frame must wait for; with [`Room::GraceOver`] full queues are
    /// marked stalled instead.
    fn full_listener(&mut self, domain: &str, room: Room, pick: impl Fn(&UrlIdx) -> bool) -> Option<ScriptIdx> {
        let listeners = self.router.get(domain)?.listeners.iter().copied().filter(|id| pick(id));
        let queues: Vec<ScriptIdx> = listeners.filter_map(|id| self.urls.get(id).map(|u| u.queue)).collect();
        for queue in queues {
            if !self.queues.is_full(queue) {
                continue;
            }
            match room {
                Room::Wait if !self.queues.is_stalled(queue) => return Some(queue),
                Room::GraceOver => self.queues.stall(queue),
                Room::Wait | Room::PastLimit => {}
            }
        }
        None
    }

    fn subscribe(&mut self, idx: ConnIdx, domain: &str, room: Room) -> Routed {
        let err = |word| ServerFrame::Err { domain, word };
        let Some(listeners) = self.router.get(domain).map(|d| d.listeners.clone()).filter(|l| !l.is_empty()) else {
            self.queue_envelope(idx, &err(ErrorWord::NoListener));
            return Routed::Done;
        };
        if self.contact(idx, domain).is_some_and(|c| c.subscribed) {
            return Routed::Done;
        }
        let subscribed = self.conns.session(idx).and_then(|s| s.contacts()).map_or(0, |c| c.subscriptions());
        if subscribed >= self.config.subscriptions_per_session {
            self.queue_envelope(idx, &err(ErrorWord::Busy));
            return Routed::Done;
        }
        if let Some(full) = self.full_listener(domain, room, |_| true) {
            return Routed::Wait(full);
        }
        // Every WS_OPEN must find room (or the client is gone): a stalled listener refuses the `sub`.
        let stalled = room != Room::PastLimit
            && listeners.iter().any(|&id| self.urls.get(id).is_some_and(|u| self.queues.is_full(u.queue)));
        let Some(key) = self.contact_key(idx, domain).filter(|_| !stalled) else {
            self.queue_envelope(idx, &err(ErrorWord::Busy));
            return Routed::Done;
        };
        let Some(entry) = self.router.get_mut(domain) else { return Routed::Done };
        entry.subscribers.push(idx);
        let name = entry.name.clone();
        let Some(s) = self.conns.session_mut(idx) else { return Routed::Done };
        let path_info = Text::from(s.headers.path_info());
        if let Some(contacts) = s.contacts_mut() {
            contacts.subscribe(key);
        }
        for id in listeners {
            let Some(queue) = self.urls.get(id).map(|u| u.queue) else { continue };
            let event =
                Event { id: key, kind: EventKind::Open, domain: Text::from(name.clone()), data: path_info.clone() };
            self.push_event(queue, Some(id), event);
        }
        Routed::Done
    }

    /// `msg` and `to`: one payload buffer shared by every listener's event.
    fn route_to_listeners(
        &mut self,
        idx: ConnIdx,
        domain: &str,
        payload: &str,
        object: Option<Key>,
        room: Room,
    ) -> Routed {
        let err = |word| ServerFrame::Err { domain, word };
        let Some(entry) = self.router.get(domain) else {
            self.queue_envelope(idx, &err(ErrorWord::NoListener));
            return Routed::Done;
        };
        let name = entry.name.clone();
        let urls = &self.urls;
        let chosen = |id: &UrlIdx| urls.get(*id).is_some_and(|u| object.is_none_or(|o| u.object == o));
        let listeners: Vec<UrlIdx> = entry.listeners.iter().copied().filter(chosen).collect();
        if listeners.is_empty() {
            self.queue_envelope(idx, &err(ErrorWord::NoListener));
            return Routed::Done;
        }
        // A listener the payload is too large for needs no room.
        let fits = |id: &UrlIdx| self.urls.get(*id).is_some_and(|u| payload.len() <= u.max_message);
        let fitting: Vec<UrlIdx> = listeners.iter().copied().filter(fits).collect();
        if let Some(full) = self.full_listener(domain, room, |id| fitting.contains(id)) {
            return Routed::Wait(full);
        }
        let Some(key) = self.contact_key(idx, domain) else {
            self.queue_envelope(idx, &err(ErrorWord::Busy));
            return Routed::Done;
        };
        let data = Text::from(Arc::<str>::from(payload));
        let busy = fitting.iter().any(|&id| self.urls.get(id).is_some_and(|u| self.queues.is_full(u.queue)));
        let busy = busy && room != Room::PastLimit;
        for &id in &fitting {
            let Some(queue) = self.urls.get(id).map(|u| u.queue) else { continue };
            if room == Room::PastLimit || !self.queues.is_full(queue) {
                let event =
                    Event { id: key, kind: EventKind::Text, domain: Text::from(name.clone()), data: data.clone() };
                self.push_event(queue, Some(id), event);
            }
        }
        if fitting.len() < listeners.len() {
            self.queue_envelope(idx, &err(ErrorWord::TooLarge));
        }
        if busy {
            self.queue_envelope(idx, &err(ErrorWord::Busy));
        }
        Routed::Done
    }

    pub(super) fn contact(&self, idx: ConnIdx, domain: &str) -> Option<&Contact> {
        self.conns.session(idx)?.contacts()?.find(domain)
    }

    /// The session key listeners of `domain` know this client by, minted on
    /// first contact. Contacts are bounded: the oldest one that is not a
    /// subscription makes room, and if all are subscriptions there is none.
    fn contact_key(&mut self, idx: ConnIdx, domain: &str) -> Option<Key> {
        if let Some(c) = self.contact(idx, domain) {
            return Some(c.key);
        }
        let limit = 2 * self.config.subscriptions_per_session.max(1);
        let name = self.router.get(domain).map_or_else(|| Arc::from(domain), |d| d.name.clone());
        let key = self.mint_key();
        let contacts = self.conns.session_mut(idx)?.contacts_mut()?;
        let evicted = contacts.add(Contact { domain: name, key, subscribed: false }, limit).ok()?;
        if let Some(old) = evicted {
            self.conns.unbind_key(old);
        }
        self.conns.bind_key(key, idx);
        Some(key)
    }

    /// Ends one domain's session on a region-endpoint connection; listeners get `WS_CLOSE`.
    pub(super) fn drop_contact(&mut self, idx: ConnIdx, domain: &str, close: Option<(u16, &str)>) {
        let Some(contact) = self.forget_contact(idx, domain) else { return };
        if let Some(entry) = self.router.get_mut(domain) {
            entry.subscribers.retain(|&c| c != idx);
        }
        if contact.subscribed
            && let Some((code, reason)) = close
        {
            self.close_to_listeners(&contact, code, reason);
        }
        self.router.prune(domain);
    }

    pub(super) fn forget_contact(&mut self, idx: ConnIdx, domain: &str) -> Option<Contact> {
        let contact = self.conns.session_mut(idx)?.contacts_mut()?.remove(domain)?;
        self.conns.unbind_key(contact.key);
        Some(contact)
    }

    pub(super) fn close_to_listeners(&mut self, contact: &Contact, code: u16, reason: &str) {
        let listeners = self.router.get(&contact.domain).map(|d| d.listeners.clone()).unwrap_or_default();
        let data = Text::from(Arc::<str>::from(format!("{code} {reason}")));
        for id in listeners {
            let Some(queue) = self.urls.get(id).map(|u| u.queue) else { continue };
            let domain = Text::from(contact.domain.clone());
            self.push_event(
                queue,
                Some(id),
                Event { id: contact.key, kind: EventKind::Close, domain, data: data.clone() },
            );
        }
    }

    /// A new listener opens to every client already subscribed to its domain.
    pub(super) fn greet_subscribers(&mut self, id: UrlIdx) {
        let Some((queue, Some(domain))) = self.urls.get(id).map(|u| (u.queue, u.domain.clone())) else { return };
        let subscribers = self.router.get(&domain).map(|d| d.subscribers.clone()).unwrap_or_default();
        for idx in subscribers {
            let Some(s) = self.conns.session(idx) else { continue };
            let Some(contact) = s.contacts().and_then(|c| c.find(&domain)) else { continue };
            let data = Text::from(s.headers.path_info());
            let event = Event { id: contact.key, kind: EventKind::Open, domain: Text::from(domain.clone()), data };
            self.push_event(queue, Some(id), event);
        }
    }

    /// A listener stops; if it was the domain's last, its subscribers get `uns,<domain>`.
    pub(super) fn unlisten(&mut self, id: UrlIdx, domain: &str) {
        let Some(entry) = self.router.get_mut(domain) else { return };
        entry.listeners.retain(|&l| l != id);
        if entry.listeners.is_empty() {
            for idx in std::mem::take(&mut entry.subscribers) {
                self.queue_envelope(idx, &ServerFrame::Uns { domain });
                self.forget_contact(idx, domain);
            }
        }
        self.router.prune(domain);
    }

    pub(super) fn queue_envelope(&mut self, idx: ConnIdx, frame: &ServerFrame<'_>) {
        let mut payload = Vec::with_capacity(frame.encoded_len());
        frame.encode_into(&mut payload);
        self.queue(idx, frame::text(&payload));
    }
}
