//! Region scope (SPEC §6): carries out the routing part's plan for each
//! envelope frame from a region-endpoint client, and keeps contacts,
//! subscriptions and listeners in step.

use std::sync::Arc;

use super::Region;
use crate::envelope::{self, ClientFrame, ErrorWord, ServerFrame};
use crate::index::ConnIdx;
use crate::index::ScriptIdx;
use crate::index::UrlIdx;
use crate::key::Key;
use crate::routing::{Contact, Plan, Room};
use crate::script::{Event, EventKind, Text};

impl Region {
    /// One text frame from a region-endpoint client. `Some(queue)`: it must
    /// be held until that full queue has room (see [`Room`]).
    pub(super) fn route_envelope(&mut self, idx: ConnIdx, text: &str, room: Room) -> Option<ScriptIdx> {
        let Ok(frame) = envelope::parse_client(text) else {
            self.queue_envelope(idx, &ServerFrame::BAD_FRAME);
            return None;
        };
        let domain = frame.domain();
        let payload = match frame {
            ClientFrame::Msg { payload, .. } | ClientFrame::To { payload, .. } => payload,
            ClientFrame::Sub { .. } | ClientFrame::Uns { .. } => "",
        };
        let contacts = self.conns.session(idx)?.contacts()?;
        let limit = self.config.subscriptions_per_session;
        let refuse = |word| ServerFrame::Err { domain, word };
        match self.router.plan(&frame, contacts, limit, &self.urls, &mut self.queues, room) {
            Plan::Nothing => {}
            Plan::Wait(queue) => return Some(queue),
            Plan::Refuse(word) => self.queue_envelope(idx, &refuse(word)),
            Plan::Unsubscribe => self.drop_contact(idx, domain, Some((1000, "unsubscribed"))),
            Plan::Subscribe(listeners) => {
                let Some(key) = self.contact_key(idx, domain) else {
                    self.queue_envelope(idx, &refuse(ErrorWord::Busy));
                    return None;
                };
                let entry = self.router.entry(domain);
                entry.subscribers.push(idx);
                let name = entry.name.clone();
                let s = self.conns.session_mut(idx)?;
                let path_info = Text::from(s.headers.path_info());
                s.contacts_mut()?.subscribe(key);
                for (id, queue) in listeners {
                    let (domain, data) = (Text::from(name.clone()), path_info.clone());
                    self.push_event(queue, Some(id), Event { id: key, kind: EventKind::Open, domain, data });
                }
            }
            Plan::Deliver { to, too_large, busy } => {
                let Some(key) = self.contact_key(idx, domain) else {
                    self.queue_envelope(idx, &refuse(ErrorWord::Busy));
                    return None;
                };
                // One payload buffer shared by every listener's event.
                let name = self.router.get(domain).map_or_else(|| Arc::from(domain), |d| d.name.clone());
                let data = Text::from(Arc::<str>::from(payload));
                for (id, queue) in to {
                    let event =
                        Event { id: key, kind: EventKind::Text, domain: Text::from(name.clone()), data: data.clone() };
                    self.push_event(queue, Some(id), event);
                }
                for (word, on) in [(ErrorWord::TooLarge, too_large), (ErrorWord::Busy, busy)] {
                    if on {
                        self.queue_envelope(idx, &refuse(word));
                    }
                }
            }
        }
        None
    }

    /// The session key listeners of `domain` know this client by, minted on
    /// first contact. Contacts are bounded: the oldest one that is not a
    /// subscription makes room, and if all are subscriptions there is none.
    fn contact_key(&mut self, idx: ConnIdx, domain: &str) -> Option<Key> {
        if let Some(c) = self.conns.session(idx)?.contacts()?.find(domain) {
            return Some(c.key);
        }
        let limit = 2 * self.config.subscriptions_per_session.max(1);
        let name = self.router.get(domain).map_or_else(|| Arc::from(domain), |d| d.name.clone());
        let key = self.mint_key();
        let contacts = self.conns.session_mut(idx)?.contacts_mut()?;
        if let Some(old) = contacts.add(Contact { domain: name, key, subscribed: false }, limit).ok()? {
            self.conns.unbind_key(old);
        }
        self.conns.bind_key(key, idx);
        Some(key)
    }

    /// Ends one domain's session on a region-endpoint connection; listeners get `WS_CLOSE`.
    pub(super) fn drop_contact(&mut self, idx: ConnIdx, domain: &str, close: Option<(u16, &str)>) {
        let Some(contact) = self.forget_contact(idx, domain) else { return };
        self.leave_domain(idx, &contact, close);
    }

    /// A contact's client leaves its domain: off the subscriber list, and
    /// `WS_CLOSE` to the listeners if it was subscribed.
    pub(super) fn leave_domain(&mut self, idx: ConnIdx, contact: &Contact, close: Option<(u16, &str)>) {
        if let Some(entry) = self.router.get_mut(&contact.domain) {
            entry.subscribers.retain(|&c| c != idx);
        }
        if let (true, Some((code, reason))) = (contact.subscribed, close) {
            let listeners = self.router.get(&contact.domain).map(|d| d.listeners.clone()).unwrap_or_default();
            let data = Text::from(Arc::<str>::from(format!("{code} {reason}")));
            for id in listeners {
                let Some(queue) = self.urls.get(id).map(|u| u.queue) else { continue };
                let (key, domain) = (contact.key, Text::from(contact.domain.clone()));
                self.push_event(queue, Some(id), Event { id: key, kind: EventKind::Close, domain, data: data.clone() });
            }
        }
        self.router.prune(&contact.domain);
    }

    fn forget_contact(&mut self, idx: ConnIdx, domain: &str) -> Option<Contact> {
        let contact = self.conns.session_mut(idx)?.contacts_mut()?.remove(domain)?;
        self.conns.unbind_key(contact.key);
        Some(contact)
    }

    /// A new listener opens to every client already subscribed to its domain.
    pub(super) fn greet_subscribers(&mut self, id: UrlIdx) {
        let Some((queue, Some(domain))) = self.urls.get(id).map(|u| (u.queue, u.domain.clone())) else { return };
        let subscribers = self.router.get(&domain).map(|d| d.subscribers.clone()).unwrap_or_default();
        for idx in subscribers {
            let Some(s) = self.conns.session(idx) else { continue };
            let Some(contact) = s.contacts().and_then(|c| c.find(&domain)) else { continue };
            let (key, data) = (contact.key, Text::from(s.headers.path_info()));
            let event = Event { id: key, kind: EventKind::Open, domain: Text::from(domain.clone()), data };
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
        let limit = self.config.outgoing_buffer;
        let Some(c) = self.conns.get_mut(idx) else { return };
        let text = c.message(&[&payload], limit);
        self.queue(idx, text);
    }
}
