//! The connection timers, folded into one deadline for the embedder.
//!
//! Each connection has at most one deadline that matters (its kind decides
//! which: handshake, idle ping, busy grace, close echo); the heap holds one
//! entry per arming, and an entry whose connection has since moved on to
//! another deadline is skipped when it comes up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::index::ConnIdx;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Ordered by time, then by slot, so ties fire in a reproducible order.
    heap: BinaryHeap<Reverse<(Instant, ConnIdx)>>,
}

impl Timers {
    /// Arms `at` for a connection whose earliest armed deadline is `*armed`;
    /// a later deadline waits behind the earlier entry already in the heap.
    pub(crate) fn arm(&mut self, armed: &mut Option<Instant>, at: Instant, idx: ConnIdx) {
        if armed.is_none_or(|t| at < t) {
            *armed = Some(at);
            self.heap.push(Reverse((at, idx)));
        }
    }

    /// The next entry due at or before `now`, removed from the heap.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnIdx)> {
        let &Reverse((at, idx)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some((at, idx))
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }
}
