//! HTTP-in requests in flight (SPEC §8): by id, per script (the 64 cap),
//! with the headers the script may read, and a bounded memory of the ids
//! that ended so a late `llHTTPResponse` learns why.

use std::collections::VecDeque;
use std::time::Instant;

use slotmap::SlotMap;

use crate::hash::Map;
use crate::http::readable::Readable;
use crate::http::{ContentType, HttpError};
use crate::index::{ConnIdx, ReqIdx, ScriptIdx, UrlIdx};
use crate::key::Key;

/// How many ended request ids are remembered.
const ENDED_MEMORY: usize = 4096;

/// One request from the moment its head was accepted until it is answered.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) id: Key,
    pub(crate) conn: ConnIdx,
    pub(crate) url: UrlIdx,
    pub(crate) queue: ScriptIdx,
    pub(crate) script: Key,
    /// Headers readable by the script (the raw head, looked into on demand).
    pub(crate) headers: Readable,
    /// Headers are readable until then (30 s after the event); set with the event.
    pub(crate) headers_until: Option<Instant>,
    pub(crate) content_type: ContentType,
    /// Close the connection after the response (HTTP/1.0, `Connection: close`).
    pub(crate) close: bool,
}

/// Every request in flight in the region.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    slots: SlotMap<ReqIdx, Request>,
    ids: Map<Key, ReqIdx>,
    per_script: Map<ScriptIdx, usize>,
    ended: Map<Key, (Key, HttpError)>,
    ended_order: VecDeque<Key>,
}

impl InFlight {
    pub(crate) fn count(&self, queue: ScriptIdx) -> usize {
        self.per_script.get(&queue).copied().unwrap_or(0)
    }

    pub(crate) fn insert(&mut self, request: Request) -> ReqIdx {
        *self.per_script.entry(request.queue).or_default() += 1;
        let id = request.id;
        let idx = self.slots.insert(request);
        self.ids.insert(id, idx);
        idx
    }

    pub(crate) fn get(&self, idx: ReqIdx) -> Option<&Request> {
        self.slots.get(idx)
    }

    pub(crate) fn get_mut(&mut self, idx: ReqIdx) -> Option<&mut Request> {
        self.slots.get_mut(idx)
    }

    /// The caller's request with this id, or why there is none.
    pub(crate) fn find(&self, script: Key, id: Key) -> Result<ReqIdx, HttpError> {
        if let Some(&idx) = self.ids.get(&id) {
            let request = &self.slots[idx];
            // Only once the event is out does the id belong to the script.
            return match (request.script == script, request.headers_until.is_some()) {
                (true, true) => Ok(idx),
                (false, true) => Err(HttpError::NotYours),
                (_, false) => Err(HttpError::UnknownRequest),
            };
        }
        match self.ended.get(&id) {
            Some(&(owner, _)) if owner != script => Err(HttpError::NotYours),
            Some(&(_, why)) => Err(why),
            None => Err(HttpError::UnknownRequest),
        }
    }

    /// Ends a request: it stops counting against its script's cap, and its
    /// id is remembered with `why` (if the script ever saw it).
    pub(crate) fn end(&mut self, idx: ReqIdx, why: HttpError) -> Option<Request> {
        let request = self.slots.remove(idx)?;
        self.ids.remove(&request.id);
        if let Some(n) = self.per_script.get_mut(&request.queue) {
            *n -= 1;
            if *n == 0 {
                self.per_script.remove(&request.queue);
            }
        }
        if request.headers_until.is_some() {
            if self.ended_order.len() == ENDED_MEMORY
                && let Some(old) = self.ended_order.pop_front()
            {
                self.ended.remove(&old);
            }
            self.ended.insert(request.id, (request.script, why));
            self.ended_order.push_back(request.id);
        }
        Some(request)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}
