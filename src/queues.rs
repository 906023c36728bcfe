//! Script event queues and their pacing (SPEC §5 back-pressure).
//!
//! Each script has one bounded queue (LSL's 64 events; every kind counts).
//! Connections that have input for a full queue wait in that script's line,
//! first paused first resumed, so a freed slot costs one resume rather than
//! a pass over every paused connection.

use std::collections::VecDeque;

use slotmap::SlotMap;

use crate::hash::Map;
use crate::index::{ConnIdx, ScriptIdx, UrlIdx};
use crate::key::Key;
use crate::script::Event;

/// One script's queue, in delivery order.
#[derive(Debug)]
pub(crate) struct ScriptQueue {
    /// The script's key, for `Output::Events`.
    pub(crate) key: Key,
    /// Each event with the URL it belongs to, so revocation can purge it.
    /// The event comes first in the pair, so handing it out copies a prefix.
    events: VecDeque<(Event, Option<UrlIdx>)>,
    /// An `Output::Events` for this script is outstanding.
    pub(crate) notified: bool,
    /// Connections waiting for room, in the order they started waiting.
    /// Entries of connections that moved on since are skipped when popped.
    pub(crate) waiting: VecDeque<ConnIdx>,
    /// A region-scope message waited the busy grace for this full queue:
    /// until it has room again, messages for it are answered `busy` at once.
    pub(crate) stalled: bool,
}

/// Every script queue of the region, by key and by dense index.
#[derive(Debug)]
pub(crate) struct Queues {
    slots: SlotMap<ScriptIdx, ScriptQueue>,
    index: Map<Key, ScriptIdx>,
    /// Events a queue holds before it counts as full.
    capacity: usize,
}

impl Queues {
    pub(crate) fn new(capacity: usize) -> Queues {
        Queues { slots: SlotMap::with_key(), index: Map::default(), capacity }
    }

    pub(crate) fn find(&self, script: Key) -> Option<ScriptIdx> {
        self.index.get(&script).copied()
    }

    /// The script's queue, made empty if it has none.
    pub(crate) fn get_or_insert(&mut self, script: Key) -> ScriptIdx {
        if let Some(&idx) = self.index.get(&script) {
            return idx;
        }
        let idx = self.slots.insert(ScriptQueue {
            key: script,
            events: VecDeque::new(),
            notified: false,
            waiting: VecDeque::new(),
            stalled: false,
        });
        self.index.insert(script, idx);
        idx
    }

    /// Forgets the script (deleted).
    pub(crate) fn remove(&mut self, script: Key) {
        if let Some(idx) = self.index.remove(&script) {
            self.slots.remove(idx);
        }
    }

    pub(crate) fn len(&self, idx: ScriptIdx) -> usize {
        self.slots.get(idx).map_or(0, |q| q.events.len())
    }

    pub(crate) fn is_full(&self, idx: ScriptIdx) -> bool {
        self.len(idx) >= self.capacity
    }

    pub(crate) fn is_stalled(&self, idx: ScriptIdx) -> bool {
        self.slots.get(idx).is_some_and(|q| q.stalled)
    }

    /// Queues an event; returns the script's key when the embedder must be
    /// told (`Output::Events` for the script is not outstanding yet).
    #[inline]
    pub(crate) fn push(&mut self, idx: ScriptIdx, url: Option<UrlIdx>, event: Event) -> Option<Key> {
        let queue = self.slots.get_mut(idx)?;
        queue.events.push_back((event, url));
        (!std::mem::replace(&mut queue.notified, true)).then_some(queue.key)
    }

    /// Marks a full queue as stalled (see [`ScriptQueue::stalled`]).
    pub(crate) fn stall(&mut self, idx: ScriptIdx) {
        if let Some(queue) = self.slots.get_mut(idx) {
            queue.stalled = true;
        }
    }

    /// The next event of the queue at `idx`. Clears its notice, so the next
    /// push notifies again.
    #[inline]
    pub(crate) fn pop(&mut self, idx: ScriptIdx) -> Option<Event> {
        let queue = self.slots.get_mut(idx)?;
        queue.notified = false;
        let event = queue.events.pop_front().map(|(event, _)| event);
        if queue.stalled && queue.events.len() < self.capacity {
            queue.stalled = false;
        }
        event
    }

    /// Whether connections wait for room in the queue at `idx`.
    #[inline]
    pub(crate) fn has_waiting(&self, idx: ScriptIdx) -> bool {
        self.slots.get(idx).is_some_and(|q| !q.waiting.is_empty())
    }

    /// The next connection waiting for the script, if the queue has room for it.
    pub(crate) fn next_waiting(&mut self, idx: ScriptIdx) -> Option<ConnIdx> {
        let capacity = self.capacity;
        let queue = self.slots.get_mut(idx)?;
        if queue.events.len() >= capacity {
            return None;
        }
        queue.waiting.pop_front()
    }

    pub(crate) fn wait(&mut self, idx: ScriptIdx, conn: ConnIdx) {
        if let Some(queue) = self.slots.get_mut(idx) {
            queue.waiting.push_back(conn);
        }
    }

    /// Drops the events of URL `url`; an emptied queue announces its next event afresh.
    pub(crate) fn purge(&mut self, idx: ScriptIdx, url: UrlIdx) {
        if let Some(queue) = self.slots.get_mut(idx) {
            queue.events.retain(|(_, u)| *u != Some(url));
            queue.notified &= !queue.events.is_empty();
            queue.stalled &= queue.events.len() >= self.capacity;
        }
    }

    /// Empties the queue (script reset), as LSL does.
    pub(crate) fn clear(&mut self, idx: ScriptIdx) {
        if let Some(queue) = self.slots.get_mut(idx) {
            queue.events.clear();
            queue.notified = false;
            queue.stalled = false;
        }
    }
}
