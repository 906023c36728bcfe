//! Delivery policy for one remote script, Sans-IO: queue, batches, in-flight
//! cap, retries with back-off, and the grace after its HTTP-in URL was revoked.
//!
//! No clock, no sockets: every call that depends on time takes `now`, and
//! [`Queue::poll_timeout`] says when to call back. The caller sends what
//! [`Queue::poll_delivery`] hands out and reports each answer with
//! [`Queue::finished`].
//!
//! Rules (Second Life's limits):
//! - At most `in_flight` deliveries outstanding (the grid answers 503 past
//!   64); a delivery waiting for its retry still holds its slot, so a busy
//!   grid is not pressed harder.
//! - One delivery per session at a time, so a session's events reach the
//!   script in order whatever the network reorders.
//! - A delivery body is at most `max_body` bytes: one record alone goes as
//!   it is (the text is at most the region's 2048-byte message cap); several
//!   go as record lines (see `wire`) if they fit, across sessions.
//! - At most `queue` records wait; the caller stops taking client events
//!   when [`Queue::has_room`] is false (the core then pauses reading).
//! - 503/429 or an unreachable grid: retried after `max(Retry-After,
//!   back-off)`, the back-off doubling from `backoff` up to `max_backoff`;
//!   after `attempts` tries the delivery fails for good.
//! - 404 (the URL was revoked): the records go back to the front of the
//!   queue and nothing is sent until [`Queue::register`] gives a new URL; if
//!   none comes within `grace`, [`Queue::grace_expired`] says so.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use lsl_websocket::Key;

use crate::wire::{self, Record};

/// The policy's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deliveries outstanding per script (Second Life: 64).
    pub in_flight: usize,
    /// Records waiting per script.
    pub queue: usize,
    /// Largest delivery body in bytes (Second Life: 2048).
    pub max_body: usize,
    /// Most records in one batch.
    pub max_batch: usize,
    /// Tries per delivery before it fails for good.
    pub attempts: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Longest retry delay (also caps a `Retry-After`).
    pub max_backoff: Duration,
    /// How long sessions wait for a re-registration after a 404.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            in_flight: 64,
            queue: 256,
            max_body: 2048,
            max_batch: 32,
            attempts: 8,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            grace: Duration::from_secs(60),
        }
    }
}

/// Names one delivery between [`Queue::poll_delivery`] and [`Queue::finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryId(u64);

/// One HTTP request to send to the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Report its answer with this.
    pub id: DeliveryId,
    /// The script's HTTP-in URL.
    pub url: String,
    /// `x-bridge-event`: `open`, `text`, `close`, or `batch`.
    pub event: &'static str,
    /// `x-bridge-session`, for a single record.
    pub session: Option<Key>,
    /// The body.
    pub body: String,
}

/// How a delivery ended, as the HTTP side saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx with this body.
    Answered(String),
    /// 503 or 429, with the `Retry-After` if one was given.
    Busy(Option<Duration>),
    /// No connection could be made (refused, reset before an answer, DNS).
    Unreachable(String),
    /// 404: the HTTP-in URL was revoked.
    Gone,
    /// Anything else that will not get better by retrying (timeout, other status).
    Failed(String),
}

/// What the caller must do after [`Queue::finished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Apply the script's answer: for one record, a non-empty body goes to
    /// its session; for a batch, the body holds push lines.
    Answered {
        /// The delivered records.
        records: Vec<Record>,
        /// Whether it went as a batch.
        batch: bool,
        /// The response body.
        body: String,
    },
    /// Nothing now: a retry is scheduled, or the records wait for a new URL.
    Waiting,
    /// The delivery failed for good: answer these sessions and close them.
    Failed {
        /// Sessions the delivery carried, in order.
        sessions: Vec<Key>,
        /// Why.
        reason: String,
    },
    /// An id this queue does not know (already finished).
    Unknown,
}

struct InFlight {
    records: Vec<Record>,
    batch: bool,
    /// Tries so far.
    attempts: u32,
    /// URL generation it was sent to.
    generation: u64,
    /// `Some` while it waits for its retry.
    retry_at: Option<Instant>,
}

/// One remote script's deliveries.
pub struct Queue {
    limits: Limits,
    queued: VecDeque<Record>,
    flights: HashMap<DeliveryId, InFlight>,
    /// Sessions with a delivery outstanding.
    busy: HashSet<Key>,
    url: String,
    /// Bumped by every new URL, so a 404 from an old one does not stop the new one.
    generation: u64,
    /// When a 404 showed the URL gone; `None` while it works.
    gone_since: Option<Instant>,
    next_id: u64,
}

impl Queue {
    /// A queue delivering to `url`.
    pub fn new(limits: Limits, url: String) -> Queue {
        Queue {
            limits,
            queued: VecDeque::new(),
            flights: HashMap::new(),
            busy: HashSet::new(),
            url,
            generation: 0,
            gone_since: None,
            next_id: 0,
        }
    }

    /// Whether another record may be queued.
    pub fn has_room(&self) -> bool {
        self.queued.len() < self.limits.queue
    }

    /// Queues a record; `false` (and nothing queued) when there is no room.
    pub fn push(&mut self, record: Record) -> bool {
        if !self.has_room() {
            return false;
        }
        self.queued.push_back(record);
        true
    }

    /// Records waiting (not in flight).
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Deliveries outstanding (sent, or waiting for their retry).
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// Whether a 404 stopped delivery until the next registration.
    pub fn is_gone(&self) -> bool {
        self.gone_since.is_some()
    }

    /// The script registered (again): deliveries resume to `url`.
    pub fn register(&mut self, url: String) {
        if url != self.url {
            self.generation += 1;
            self.url = url;
        }
        self.gone_since = None;
    }

    /// Whether the grace after a 404 ran out without a re-registration.
    pub fn grace_expired(&self, now: Instant) -> bool {
        self.gone_since.is_some_and(|since| now >= since + self.limits.grace)
    }

    /// Forgets every record of `session` still queued (it closed).
    pub fn forget(&mut self, session: Key) {
        self.queued.retain(|r| r.session != session);
    }

    /// When to call back: the earliest retry or the grace's end.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace = self.gone_since.map(|since| since + self.limits.grace);
        let retry =
            if self.gone_since.is_some() { None } else { self.flights.values().filter_map(|f| f.retry_at).min() };
        [grace, retry].into_iter().flatten().min()
    }

    /// The next request to send, if one may go now: a retry that is due
    /// first, then new records (while under the in-flight cap).
    pub fn poll_delivery(&mut self, now: Instant) -> Option<Delivery> {
        if self.gone_since.is_some() {
            return None;
        }
        let due = self.flights.iter().find(|(_, f)| f.retry_at.is_some_and(|at| at <= now)).map(|(id, _)| *id);
        if let Some(id) = due {
            let f = self.flights.get_mut(&id)?;
            f.retry_at = None;
            f.generation = self.generation;
            return Some(render(id, &self.url, &f.records, f.batch));
        }
        if self.flights.len() >= self.limits.in_flight {
            return None;
        }
        let records = self.take();
        if records.is_empty() {
            return None;
        }
        let id = DeliveryId(self.next_id);
        self.next_id += 1;
        let batch = records.len() > 1;
        for r in &records {
            self.busy.insert(r.session);
        }
        let delivery = render(id, &self.url, &records, batch);
        self.flights.insert(id, InFlight { records, batch, attempts: 0, generation: self.generation, retry_at: None });
        Some(delivery)
    }

    /// Takes the oldest record whose session is free, and after it every
    /// later one that fits the body, keeping each session's order (a
    /// session one of whose records was skipped gets no later one).
    fn take(&mut self) -> Vec<Record> {
        let mut picked = Vec::new();
        let mut skipped: HashSet<Key> = HashSet::new();
        let mut size = 0;
        let mut rest = VecDeque::with_capacity(self.queued.len());
        for r in self.queued.drain(..) {
            let free = !self.busy.contains(&r.session) && !skipped.contains(&r.session);
            let len = wire::record_line_len(&r);
            let fits =
                picked.is_empty() || (size + len <= self.limits.max_body && picked.len() < self.limits.max_batch);
            // The first record always fits alone (it goes as it is); a batch
            // is built only of records whose lines fit together.
            if free && fits {
                size += len;
                picked.push(r);
            } else {
                skipped.insert(r.session);
                rest.push_back(r);
            }
        }
        self.queued = rest;
        picked
    }

    /// Reports how delivery `id` ended.
    pub fn finished(&mut self, now: Instant, id: DeliveryId, outcome: Outcome) -> Done {
        let Some(mut f) = self.flights.remove(&id) else { return Done::Unknown };
        let (retry_after, why) = match outcome {
            Outcome::Answered(body) => {
                self.release(&f.records);
                return Done::Answered { records: f.records, batch: f.batch, body };
            }
            Outcome::Gone => {
                self.release(&f.records);
                if f.generation == self.generation && self.gone_since.is_none() {
                    self.gone_since = Some(now);
                }
                for r in f.records.into_iter().rev() {
                    self.queued.push_front(r);
                }
                return Done::Waiting;
            }
            Outcome::Failed(reason) => return self.fail(f, reason),
            Outcome::Busy(after) => (after, "grid busy".to_string()),
            Outcome::Unreachable(why) => (None, format!("grid unreachable ({why})")),
        };
        f.attempts += 1;
        if f.attempts >= self.limits.attempts {
            let reason = format!("{why} after {} tries", f.attempts);
            return self.fail(f, reason);
        }
        f.retry_at = Some(now + self.delay(f.attempts, retry_after));
        self.flights.insert(id, f);
        Done::Waiting
    }

    /// The wait before try `attempt + 1`.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.limits.backoff.saturating_mul(1 << (attempt - 1).min(20));
        backoff.max(retry_after.unwrap_or_default()).min(self.limits.max_backoff)
    }

    fn fail(&mut self, f: InFlight, reason: String) -> Done {
        self.release(&f.records);
        let mut sessions: Vec<Key> = Vec::new();
        for r in &f.records {
            if !sessions.contains(&r.session) {
                sessions.push(r.session);
            }
        }
        // Those sessions are closed; what else they sent is not delivered.
        for s in &sessions {
            self.forget(*s);
        }
        Done::Failed { sessions, reason }
    }

    fn release(&mut self, records: &[Record]) {
        for r in records {
            self.busy.remove(&r.session);
        }
    }
}

/// The request for `records`.
fn render(id: DeliveryId, url: &str, records: &[Record], batch: bool) -> Delivery {
    if batch {
        let mut body = String::with_capacity(records.iter().map(wire::record_line_len).sum());
        for r in records {
            wire::record_line(r, &mut body);
        }
        Delivery { id, url: url.to_string(), event: "batch", session: None, body }
    } else {
        let r = &records[0];
        Delivery { id, url: url.to_string(), event: r.kind.as_str(), session: Some(r.session), body: r.text.clone() }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
