//! What the soak counts, shared by every client thread.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One counter per figure the soak reports; all clients add to them.
#[derive(Default)]
pub struct Counters {
    /// Messages written by a client that expects them back.
    pub sent: AtomicU64,
    /// Messages that came back to the client that sent them, as sent.
    pub delivered: AtomicU64,
    /// Messages (or connection attempts) answered with a defined refusal:
    /// a close code, `err,…`, `\error`, `\close`, an HTTP status.
    pub refused: AtomicU64,
    /// Messages sent that neither came back nor got a defined answer.
    pub lost: AtomicU64,
    /// A reply carrying another client's or session's tag.
    pub misrouted: AtomicU64,
    /// A reply older than one already seen on the same session.
    pub reordered: AtomicU64,
    /// Anything but 404 (or `\error 404`) from a URL known to be revoked.
    pub after_revoke: AtomicU64,
    /// A faulty client that should have got a defined answer and did not.
    pub unanswered: AtomicU64,
    /// Lifecycle commands sent to the server.
    pub churn: AtomicU64,
    /// Revoked URLs probed (every kind of client), all expected 404.
    pub probes: AtomicU64,
    /// Faulty clients run.
    pub faults: AtomicU64,
    /// Handshakes of the flood answered 429.
    pub flood_429: AtomicU64,
    /// SSE streams resumed with `Last-Event-ID`.
    pub resumes: AtomicU64,
    /// `refused` by the answer given (`ws 1001`, `http 503`, …).
    pub answers: Mutex<BTreeMap<String, u64>>,
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl Counters {
    /// `n` messages (or attempts) got the defined answer `why`.
    pub fn refuse(&self, why: &str, n: u64) {
        if n == 0 {
            return;
        }
        add(&self.refused, n);
        *self.answers.lock().unwrap().entry(why.to_string()).or_default() += n;
    }

    /// The answers, as `answer=count` pairs.
    pub fn answers(&self) -> String {
        let a = self.answers.lock().unwrap();
        a.iter().map(|(k, v)| format!("{}={v}", k.replace(' ', "_"))).collect::<Vec<_>>().join(" ")
    }

    /// Every counter as `name=value`, in report order.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Relaxed);
        vec![
            ("lost", g(&self.lost)),
            ("misrouted", g(&self.misrouted)),
            ("reordered", g(&self.reordered)),
            ("after_revoke", g(&self.after_revoke)),
            ("unanswered", g(&self.unanswered)),
            ("sent", g(&self.sent)),
            ("delivered", g(&self.delivered)),
            ("refused", g(&self.refused)),
            ("churn", g(&self.churn)),
            ("probes", g(&self.probes)),
            ("faults", g(&self.faults)),
            ("flood_429", g(&self.flood_429)),
            ("resumes", g(&self.resumes)),
        ]
    }
}
