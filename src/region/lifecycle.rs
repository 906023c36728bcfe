//! Lifecycle notices and revocation (SPEC §4): the causes, and what a
//! revocation takes away at once.

use std::time::Instant;

use super::Region;
use crate::index::ConnIdx;
use crate::index::UrlIdx;
use crate::key::Key;
use crate::lifecycle::Cause;
use crate::session::Route;
use crate::urls::UrlRecord;
use crate::{Output, conns::Kind};

impl Region {
    /// The script was reset or recompiled: its URLs are revoked (`script reset`)
    /// and its queue is emptied, as LSL empties the event queue on reset.
    pub fn script_reset(&mut self, now: Instant, script: Key) {
        self.now = self.now.max(now);
        self.revoke_where(Cause::ScriptReset, |u| u.script == script);
        if let Some(queue) = self.queues.find(script) {
            self.queues.clear(queue);
            self.make_room(queue);
        }
    }

    /// The script was deleted: as [`script_reset`](Region::script_reset), and its queue is forgotten.
    pub fn script_removed(&mut self, now: Instant, script: Key) {
        self.script_reset(now, script);
        self.queues.remove(script);
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
    /// The region endpoint's sessions are closed and a new endpoint capability is minted.
    pub fn region_restart(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let reason = Cause::RegionRestart.reason();
        let mut endpoint: Vec<(crate::ConnectionId, ConnIdx)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.session().is_some_and(|s| matches!(s.route, Route::Region { .. })))
            .map(|(idx, c)| (c.id, idx))
            .collect();
        // Sorted so a seeded run writes its bytes in a reproducible order.
        endpoint.sort_unstable();
        for (_, idx) in endpoint {
            let (t, close) = (self.transport(idx), self.close_message(idx, 1001, reason));
            self.silence(idx);
            self.queue(idx, close);
            self.start_closing(idx, t);
        }
        self.router.clear();
        self.revoke_where(Cause::RegionRestart, |_| true);
        self.outputs.push_back(Output::Revoked { url: self.region_url(), cause: Cause::RegionRestart });
        self.urls.mint_endpoint(self.entropy.as_mut());
    }

    fn revoke_object(&mut self, now: Instant, object: Key, cause: Cause) {
        self.now = self.now.max(now);
        self.revoke_where(cause, |u| u.object == object);
    }

    pub(super) fn revoke_where(&mut self, cause: Cause, pred: impl Fn(&UrlRecord) -> bool) {
        self.revoke_where_because(cause, cause.reason(), pred);
    }

    /// [`revoke_where`](Region::revoke_where) with the 1001 close's reason
    /// given; how many URLs it revoked.
    pub(super) fn revoke_where_because(
        &mut self,
        cause: Cause,
        reason: &str,
        pred: impl Fn(&UrlRecord) -> bool,
    ) -> usize {
        let ids = self.urls.select(pred);
        for &idx in &ids {
            self.revoke_because(idx, cause, reason);
        }
        ids.len()
    }

    /// The heart of SPEC §4: the capability stops resolving, sessions are
    /// closed 1001 without telling the script, queued events are purged.
    pub(super) fn revoke(&mut self, id: UrlIdx, cause: Cause) {
        self.revoke_because(id, cause, cause.reason());
    }

    /// [`revoke`](Region::revoke) with the 1001 close's reason given.
    pub(super) fn revoke_because(&mut self, id: UrlIdx, cause: Cause, reason: &str) {
        let Some(record) = self.urls.remove(id) else { return };
        self.queues.purge(record.queue, id);
        match &record.domain {
            Some(domain) => {
                self.unlisten(id, domain);
                let (script, domain) = (record.script, domain.to_string());
                self.outputs.push_back(Output::ListenerStopped { script, domain, cause });
            }
            None if record.http.is_some() => {
                // SPEC §8: requests in flight are answered at once, never left to time out.
                for &idx in &record.sessions {
                    self.http_refuse(idx, 503);
                }
                self.outputs.push_back(Output::Revoked { url: record.url, cause });
            }
            None => {
                for &idx in &record.sessions {
                    let (t, close) = (self.transport(idx), self.close_message(idx, 1001, reason));
                    if self.silence(idx) {
                        self.queue(idx, close);
                        self.start_closing(idx, t);
                    }
                }
                self.outputs.push_back(Output::Revoked { url: record.url, cause });
            }
        }
        // Purged events free room that other sessions waiting for this script
        // may be waiting for; this URL's own sessions are silent by now.
        self.make_room(record.queue);
    }

    /// Ends an open session without a word to any script: its keys die at once.
    /// Returns whether it was open.
    fn silence(&mut self, idx: ConnIdx) -> bool {
        let Some(c) = self.conns.get(idx) else { return false };
        let Some(s) = c.session() else { return false };
        let (id, paused, keys) = (c.id, s.paused && !c.detached, s.keys());
        if let Some(stream) = &s.stream {
            self.streams.end(stream.token);
        }
        self.region_sessions -= usize::from(s.contacts().is_some());
        for key in keys {
            self.conns.unbind_key(key);
        }
        if paused {
            // The close echo must be read.
            self.outputs.push_back(Output::ResumeReading(id));
        }
        self.conns.set_kind(idx, Kind::Closing { deadline: self.now });
        if let Some(c) = self.conns.get_mut(idx) {
            c.inbuf.clear();
        }
        true
    }
}
