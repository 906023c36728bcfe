//! Region-scope routing: which scripts listen on a domain, which client
//! connections subscribe to it, and the domains each client has addressed (SPEC §6).
//!
//! The table is keyed by the domain's CLEP channel (§7), as a CLEP bridge
//! keys its chat listeners, and then by the exact domain string: two domains
//! whose channels collide share a bucket but never each other's traffic.

use std::sync::Arc;

use crate::clep;
use crate::envelope::{ClientFrame, ErrorWord};
use crate::hash::Map;
use crate::index::{ConnIdx, ScriptIdx, UrlIdx};
use crate::key::Key;
use crate::queues::Queues;
use crate::urls::Urls;

/// Everything routed to one domain.
#[derive(Debug)]
pub(crate) struct Domain {
    /// Shared by every event and frame that names the domain.
    pub(crate) name: Arc<str>,
    /// Listening grants (URL records of region scope), in the order they were granted.
    pub(crate) listeners: Vec<UrlIdx>,
    /// Client connections subscribed with `sub,<domain>`, in subscription order.
    pub(crate) subscribers: Vec<ConnIdx>,
}

/// The routing table of one region endpoint.
#[derive(Debug)]
pub(crate) struct Router {
    buckets: Map<i32, Vec<Domain>>,
    hash: fn(&str) -> i32,
}

impl Default for Router {
    fn default() -> Router {
        Router { buckets: Map::default(), hash: clep::channel }
    }
}

impl Router {
    pub(crate) fn get(&self, domain: &str) -> Option<&Domain> {
        self.buckets.get(&(self.hash)(domain))?.iter().find(|d| &*d.name == domain)
    }

    pub(crate) fn get_mut(&mut self, domain: &str) -> Option<&mut Domain> {
        self.buckets.get_mut(&(self.hash)(domain))?.iter_mut().find(|d| &*d.name == domain)
    }

    /// The domain's entry, created empty if it has none.
    pub(crate) fn entry(&mut self, domain: &str) -> &mut Domain {
        let bucket = self.buckets.entry((self.hash)(domain)).or_default();
        match bucket.iter().position(|d| &*d.name == domain) {
            Some(i) => &mut bucket[i],
            None => {
                bucket.push(Domain { name: Arc::from(domain), listeners: Vec::new(), subscribers: Vec::new() });
                bucket.last_mut().expect("just pushed")
            }
        }
    }

    /// Drops the domain's entry once nobody listens or subscribes.
    pub(crate) fn prune(&mut self, domain: &str) {
        let channel = (self.hash)(domain);
        if let Some(bucket) = self.buckets.get_mut(&channel) {
            bucket.retain(|d| &*d.name != domain || !d.listeners.is_empty() || !d.subscribers.is_empty());
            if bucket.is_empty() {
                self.buckets.remove(&channel);
            }
        }
    }

    /// Forgets everything (region restart).
    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
    }

    /// A table keyed by another hash: tests use it to force collisions.
    pub(crate) fn with_hash(hash: fn(&str) -> i32) -> Router {
        Router { buckets: Map::default(), hash }
    }
}

/// How a frame treats full listener queues (SPEC §5 busy grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Wait for a full queue, unless it is stalled.
    Wait,
    /// The grace ran out (or there is none): full queues are answered
    /// `busy` and marked stalled.
    GraceOver,
    /// The client is gone: deliver past the limit.
    PastLimit,
}

/// A listening grant and the queue of its script.
pub(crate) type Listener = (UrlIdx, ScriptIdx);

/// What one client frame comes to, decided from the tables alone; the
/// coordinator carries it out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to do: a repeated `sub`, an `uns` of a domain not subscribed.
    Nothing,
    /// Answer `err,<domain>,<word>`.
    Refuse(ErrorWord),
    /// Hold the frame until this full queue has room.
    Wait(ScriptIdx),
    /// Subscribe the client; each listener gets `WS_OPEN`.
    Subscribe(Vec<Listener>),
    /// End the client's subscription; listeners get `WS_CLOSE`.
    Unsubscribe,
    /// `WS_TEXT` to each listener in `to`; then `err,…,too-large` and
    /// `err,…,busy` if some listeners were skipped for that.
    Deliver { to: Vec<Listener>, too_large: bool, busy: bool },
}

impl Router {
    /// The script's listening grant on `domain`, if it has one.
    pub(crate) fn listener(&self, urls: &Urls, script: Key, domain: &str) -> Option<UrlIdx> {
        self.get(domain)?.listeners.iter().copied().find(|&id| urls.get(id).is_some_and(|u| u.script == script))
    }

    /// Decides what a client frame comes to, given the client's contacts
    /// and at most `subscriptions` subscriptions per client. With
    /// [`Room::GraceOver`] the full queues it meets are marked stalled.
    pub(crate) fn plan(
        &self,
        frame: &ClientFrame<'_>,
        contacts: &Contacts,
        subscriptions: usize,
        urls: &Urls,
        queues: &mut Queues,
        room: Room,
    ) -> Plan {
        let domain = frame.domain();
        let listeners: Vec<Listener> = self
            .get(domain)
            .map(|d| d.listeners.iter().filter_map(|&id| Some((id, urls.get(id)?.queue))).collect())
            .unwrap_or_default();
        let subscribed = contacts.find(domain).is_some_and(|c| c.subscribed);
        match frame {
            ClientFrame::Sub { .. } if listeners.is_empty() => Plan::Refuse(ErrorWord::NoListener),
            ClientFrame::Sub { .. } if subscribed => Plan::Nothing,
            ClientFrame::Sub { .. } if contacts.subscriptions() >= subscriptions => Plan::Refuse(ErrorWord::Busy),
            ClientFrame::Sub { .. } => match wait_for(&listeners, queues, room) {
                Some(queue) => Plan::Wait(queue),
                // Every WS_OPEN must find room: a stalled listener refuses the `sub`.
                None if room != Room::PastLimit && listeners.iter().any(|l| queues.is_full(l.1)) => {
                    Plan::Refuse(ErrorWord::Busy)
                }
                None => Plan::Subscribe(listeners),
            },
            ClientFrame::Uns { .. } if !subscribed => Plan::Nothing,
            // A client's `uns` is never refused: its WS_CLOSE goes out even to a stalled queue.
            ClientFrame::Uns { .. } => wait_for(&listeners, queues, room).map_or(Plan::Unsubscribe, Plan::Wait),
            ClientFrame::Msg { payload, .. } | ClientFrame::To { payload, .. } => {
                let object = match frame {
                    ClientFrame::To { object, .. } => Some(*object),
                    _ => None,
                };
                let chosen: Vec<Listener> = listeners
                    .into_iter()
                    .filter(|(id, _)| object.is_none_or(|o| urls.get(*id).is_some_and(|u| u.object == o)))
                    .collect();
                if chosen.is_empty() {
                    return Plan::Refuse(ErrorWord::NoListener);
                }
                // A listener the payload is too large for needs no room.
                let fits = |(id, _): &Listener| urls.get(*id).is_some_and(|u| payload.len() <= u.max_message);
                let fitting: Vec<Listener> = chosen.iter().copied().filter(fits).collect();
                if let Some(queue) = wait_for(&fitting, queues, room) {
                    return Plan::Wait(queue);
                }
                let too_large = fitting.len() < chosen.len();
                let (to, full): (Vec<Listener>, Vec<Listener>) =
                    fitting.into_iter().partition(|l| room == Room::PastLimit || !queues.is_full(l.1));
                Plan::Deliver { to, too_large, busy: !full.is_empty() }
            }
        }
    }
}

/// The first full queue among `listeners` a frame must wait for; with
/// [`Room::GraceOver`], full queues are marked stalled instead.
fn wait_for(listeners: &[Listener], queues: &mut Queues, room: Room) -> Option<ScriptIdx> {
    for &(_, queue) in listeners {
        if !queues.is_full(queue) {
            continue;
        }
        match room {
            Room::Wait if !queues.is_stalled(queue) => return Some(queue),
            Room::GraceOver => queues.stall(queue),
            Room::Wait | Room::PastLimit => {}
        }
    }
    None
}

/// A domain a region-endpoint client has addressed, and the session key
/// listeners of that domain know the client by.
#[derive(Debug)]
pub(crate) struct Contact {
    pub(crate) domain: Arc<str>,
    pub(crate) key: Key,
    /// Sent `sub` (and got no `uns` since): receives broadcasts, listeners saw `WS_OPEN`.
    pub(crate) subscribed: bool,
}

/// The contacts of one region-endpoint client, bounded: a new one pushes out
/// the oldest that is not a subscription.
#[derive(Debug, Default)]
pub(crate) struct Contacts(Vec<Contact>);

impl Contacts {
    pub(crate) fn find(&self, domain: &str) -> Option<&Contact> {
        self.0.iter().find(|c| &*c.domain == domain)
    }

    pub(crate) fn by_key(&self, key: Key) -> Option<&Contact> {
        self.0.iter().find(|c| c.key == key)
    }

    pub(crate) fn subscriptions(&self) -> usize {
        self.0.iter().filter(|c| c.subscribed).count()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Contact> {
        self.0.iter()
    }

    /// Adds a contact under `limit`; `Err(())` when every slot is a
    /// subscription, else the key of the contact pushed out, if any.
    pub(crate) fn add(&mut self, contact: Contact, limit: usize) -> Result<Option<Key>, ()> {
        let mut evicted = None;
        if self.0.len() >= limit {
            let oldest = self.0.iter().position(|c| !c.subscribed).ok_or(())?;
            evicted = Some(self.0.remove(oldest).key);
        }
        self.0.push(contact);
        Ok(evicted)
    }

    pub(crate) fn subscribe(&mut self, key: Key) {
        self.0.iter_mut().filter(|c| c.key == key).for_each(|c| c.subscribed = true);
    }

    pub(crate) fn remove(&mut self, domain: &str) -> Option<Contact> {
        Some(self.0.remove(self.0.iter().position(|c| &*c.domain == domain)?))
    }

    pub(crate) fn into_vec(self) -> Vec<Contact> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_channels_never_cross() {
        let mut urls = slotmap::SlotMap::<UrlIdx, ()>::with_key();
        let (one, two) = (urls.insert(()), urls.insert(()));
        let conn = slotmap::SlotMap::<ConnIdx, ()>::with_key().insert(());
        let mut router = Router::with_hash(|_| 42);
        router.entry("alpha").listeners.push(one);
        router.entry("beta").listeners.push(two);
        router.entry("alpha").subscribers.push(conn);
        assert_eq!(router.buckets.len(), 1, "both domains share channel 42");
        assert_eq!(router.get("alpha").unwrap().listeners, vec![one]);
        assert_eq!(router.get("beta").unwrap().listeners, vec![two]);
        assert!(router.get("beta").unwrap().subscribers.is_empty());
        assert!(router.get("gamma").is_none());
        router.get_mut("beta").unwrap().listeners.clear();
        router.prune("beta");
        assert!(router.get("beta").is_none());
        assert_eq!(router.get("alpha").unwrap().listeners, vec![one]);
    }

    #[test]
    fn keyed_by_clep_channel() {
        let mut router = Router::default();
        router.entry("chat");
        assert!(router.buckets.contains_key(&clep::channel("chat")));
    }
}
