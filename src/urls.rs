//! Capability URLs: minting, resolving, the budget, and what revocation removes (SPEC §2–§4).

use std::sync::Arc;

use slotmap::SlotMap;

use crate::config::Config;
use crate::entropy::Entropy;
use crate::envelope;
use crate::hash::Map;
use crate::index::{ScriptIdx, UrlIdx};
use crate::key::Key;
use crate::script::{DenyReason, Scope, ScriptInfo, WebsocketRequest};
use crate::url;

/// One grant: an object-scope URL with its sessions, or a script listening
/// on a domain of the region endpoint.
#[derive(Debug)]
pub(crate) struct UrlRecord {
    pub(crate) url: String,
    pub(crate) cap: Key,
    pub(crate) script: Key,
    pub(crate) queue: ScriptIdx,
    pub(crate) object: Key,
    pub(crate) owner: Key,
    pub(crate) max_message: usize,
    /// Region scope: the domain listened on. Object scope: `None`.
    pub(crate) domain: Option<Arc<str>>,
    /// Object scope: open sessions, in the order they opened; HTTP-in: the
    /// connections with a request in flight.
    pub(crate) sessions: Vec<crate::index::ConnIdx>,
    /// An HTTP-in URL (SPEC §8), and whether it is the secure kind.
    pub(crate) http: Option<bool>,
    /// Grant order: revocations report in it, whatever the slots' order.
    seq: u64,
}

/// What a capability resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Url(UrlIdx),
    /// The shared region endpoint.
    Endpoint,
}

/// Every live grant of the region, and the capabilities that lead to them.
#[derive(Debug)]
pub(crate) struct Urls {
    records: SlotMap<UrlIdx, UrlRecord>,
    caps: Map<Key, Resolved>,
    /// The region endpoint's capability for this region life.
    endpoint: Key,
    next_seq: u64,
    /// [`Config::route_tag`]: the first two bytes of every capability.
    tag: Option<u16>,
}

impl Urls {
    pub(crate) fn new(entropy: &mut dyn Entropy, tag: Option<u16>) -> Urls {
        let mut urls =
            Urls { records: SlotMap::with_key(), caps: Map::default(), endpoint: Key::default(), next_seq: 0, tag };
        urls.mint_endpoint(entropy);
        urls
    }

    /// A new region endpoint capability (at start and after a restart); the old one stops resolving.
    pub(crate) fn mint_endpoint(&mut self, entropy: &mut dyn Entropy) {
        self.caps.remove(&self.endpoint);
        self.endpoint = self.mint_cap(entropy);
        self.caps.insert(self.endpoint, Resolved::Endpoint);
    }

    pub(crate) fn endpoint(&self) -> Key {
        self.endpoint
    }

    pub(crate) fn resolve(&self, cap: Key) -> Option<Resolved> {
        self.caps.get(&cap).copied()
    }

    pub(crate) fn get(&self, idx: UrlIdx) -> Option<&UrlRecord> {
        self.records.get(idx)
    }

    pub(crate) fn get_mut(&mut self, idx: UrlIdx) -> Option<&mut UrlRecord> {
        self.records.get_mut(idx)
    }

    /// Checks a request against the options, the script's limits and the
    /// budget, and records the grant. A region-scope grant is a listener on
    /// the endpoint's capability; the caller enters it in the routing table.
    pub(crate) fn grant(
        &mut self,
        config: &Config,
        entropy: &mut dyn Entropy,
        caller: ScriptInfo,
        queue: ScriptIdx,
        request: &WebsocketRequest,
    ) -> Result<UrlIdx, DenyReason> {
        let max_message = request.max_message.unwrap_or(config.max_message);
        if max_message == 0 || max_message > config.max_message {
            return Err(DenyReason::BadOption);
        }
        let domain = match (request.scope, request.domain.as_deref()) {
            (Scope::Object, None) => None,
            (Scope::Region, Some(d)) if envelope::validate_domain(d).is_ok() => Some(d),
            _ => return Err(DenyReason::BadOption),
        };
        let mine = || self.records.values().filter(|u| u.script == caller.script && u.http.is_none());
        if domain.is_some_and(|d| mine().any(|u| u.domain.as_deref() == Some(d))) {
            return Err(DenyReason::BadOption);
        }
        let authority = match (request.secure, &config.secure_authority) {
            (false, _) => &config.authority,
            (true, Some(secure)) => secure,
            (true, None) => return Err(DenyReason::NoSecure),
        };
        let (held, limit) = match domain {
            None => (mine().filter(|u| u.domain.is_none()).count(), config.urls_per_script),
            Some(_) => (mine().filter(|u| u.domain.is_some()).count(), config.domains_per_script),
        };
        if held >= limit {
            return Err(DenyReason::TooMany);
        }
        // Listening on the shared endpoint mints no URL, so only object scope spends the budget.
        if domain.is_none() && self.free(config, caller.owner) == 0 {
            return Err(DenyReason::Budget);
        }
        let cap = if domain.is_some() { self.endpoint } else { self.mint_cap(entropy) };
        let record = UrlRecord {
            url: url::format_url(request.secure, authority, cap),
            cap,
            script: caller.script,
            queue,
            object: caller.object,
            owner: caller.owner,
            max_message,
            domain: domain.map(Arc::from),
            sessions: Vec::new(),
            http: None,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let idx = self.records.insert(record);
        if domain.is_none() {
            self.caps.insert(cap, Resolved::Url(idx));
        }
        Ok(idx)
    }

    /// `llRequestURL` / `llRequestSecureURL`: an HTTP-in URL on the same
    /// budget as WebSocket URLs; a script holds at most `urls_per_script` of them.
    pub(crate) fn grant_http(
        &mut self,
        config: &Config,
        entropy: &mut dyn Entropy,
        caller: ScriptInfo,
        queue: ScriptIdx,
        secure: bool,
    ) -> Result<UrlIdx, DenyReason> {
        let authority = match (secure, &config.secure_authority) {
            (false, _) => &config.authority,
            (true, Some(secure)) => secure,
            (true, None) => return Err(DenyReason::NoSecure),
        };
        let held = self.records.values().filter(|u| u.script == caller.script && u.http.is_some()).count();
        if held >= config.urls_per_script {
            return Err(DenyReason::TooMany);
        }
        if self.free(config, caller.owner) == 0 {
            return Err(DenyReason::Budget);
        }
        let cap = self.mint_cap(entropy);
        let record = UrlRecord {
            url: url::format_http_url(secure, authority, cap),
            cap,
            script: caller.script,
            queue,
            object: caller.object,
            owner: caller.owner,
            max_message: config.max_body,
            domain: None,
            sessions: Vec::new(),
            http: Some(secure),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let idx = self.records.insert(record);
        self.caps.insert(cap, Resolved::Url(idx));
        Ok(idx)
    }

    /// `llGetFreeWebsockets`: URLs `owner` may still mint. Region-scope listening mints none.
    pub(crate) fn free(&self, config: &Config, owner: Key) -> usize {
        let minted = || self.records.values().filter(|u| u.domain.is_none());
        let region_free = config.region_url_budget.saturating_sub(minted().count());
        match config.owner_url_budget {
            Some(budget) => region_free.min(budget.saturating_sub(minted().filter(|u| u.owner == owner).count())),
            None => region_free,
        }
    }

    /// The grants `pred` selects, in grant order.
    pub(crate) fn select(&self, pred: impl Fn(&UrlRecord) -> bool) -> Vec<UrlIdx> {
        let mut chosen: Vec<(u64, UrlIdx)> =
            self.records.iter().filter(|(_, u)| pred(u)).map(|(idx, u)| (u.seq, idx)).collect();
        chosen.sort_unstable();
        chosen.into_iter().map(|(_, idx)| idx).collect()
    }

    /// Removes a grant; an object-scope URL's capability stops resolving.
    pub(crate) fn remove(&mut self, idx: UrlIdx) -> Option<UrlRecord> {
        let record = self.records.remove(idx)?;
        if record.domain.is_none() {
            self.caps.remove(&record.cap);
        }
        Some(record)
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    fn mint_cap(&self, entropy: &mut dyn Entropy) -> Key {
        loop {
            let mut bytes = [0; 16];
            entropy.fill(&mut bytes);
            crate::route::stamp(&mut bytes, self.tag);
            let cap = Key::from_bytes(bytes);
            // A capability is never reused; with 128 random bits a repeat means a broken source.
            if !cap.is_null() && !self.caps.contains_key(&cap) && cap != self.endpoint {
                return cap;
            }
        }
    }
}
