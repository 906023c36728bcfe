//! Region-scope routing: which scripts listen on a domain and which client
//! connections subscribe to it (SPEC §6).
//!
//! The table is keyed by the domain's CLEP channel (§7), as a CLEP bridge
//! keys its chat listeners, and then by the exact domain string: two domains
//! whose channels collide share a bucket but never each other's traffic.

use std::sync::Arc;

use crate::clep;
use crate::hash::Map;
use crate::script::UrlId;
use crate::session::ConnectionId;

/// Everything routed to one domain.
#[derive(Debug)]
pub(crate) struct Domain {
    /// Shared by every event and frame that names the domain.
    pub(crate) name: Arc<str>,
    /// Listening grants (URL records of region scope), in the order they were granted.
    pub(crate) listeners: Vec<UrlId>,
    /// Client connections subscribed with `sub,<domain>`, in subscription order.
    pub(crate) subscribers: Vec<ConnectionId>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_channels_never_cross() {
        let mut router = Router::with_hash(|_| 42);
        router.entry("alpha").listeners.push(1);
        router.entry("beta").listeners.push(2);
        router.entry("alpha").subscribers.push(ConnectionId(7));
        assert_eq!(router.buckets.len(), 1, "both domains share channel 42");
        assert_eq!(router.get("alpha").unwrap().listeners, vec![1]);
        assert_eq!(router.get("beta").unwrap().listeners, vec![2]);
        assert!(router.get("beta").unwrap().subscribers.is_empty());
        assert!(router.get("gamma").is_none());
        router.get_mut("beta").unwrap().listeners.clear();
        router.prune("beta");
        assert!(router.get("beta").is_none());
        assert_eq!(router.get("alpha").unwrap().listeners, vec![1]);
    }

    #[test]
    fn keyed_by_clep_channel() {
        let mut router = Router::default();
        router.entry("chat");
        assert!(router.buckets.contains_key(&clep::channel("chat")));
    }
}
