//! Counters the bridge serves at `GET /stats` (for tests, benchmarks and operators).

/// Totals since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Successful registrations (first or again).
    pub registrations: u64,
    /// Registrations or pushes refused for a bad signature or secret.
    pub refused: u64,
    /// Client events taken from the region (open, text, close).
    pub client_events: u64,
    /// HTTP requests sent to scripts, retries included.
    pub deliveries: u64,
    /// Of those, batches (several records in one request).
    pub batches: u64,
    /// Answers that asked for a retry (503, 429) or could not be had.
    pub retries: u64,
    /// Answers 404: a revoked HTTP-in URL.
    pub gone: u64,
    /// Deliveries that failed for good (their sessions were closed).
    pub failures: u64,
    /// Push requests from scripts.
    pub pushes: u64,
    /// Push lines applied (from pushes and from batch answers).
    pub push_lines: u64,
    /// Scripts dropped after their grace ran out.
    pub expired: u64,
}

impl Stats {
    /// The counters and the current state as one JSON object.
    pub fn json(&self, scripts: usize, sessions: usize, queued: usize, in_flight: usize, gone: usize) -> String {
        format!(
            "{{\"scripts\":{scripts},\"sessions\":{sessions},\"queued\":{queued},\"in_flight\":{in_flight},\"scripts_gone\":{gone},\
             \"registrations\":{},\"refused\":{},\"client_events\":{},\"deliveries\":{},\"batches\":{},\
             \"retries\":{},\"gone\":{},\"failures\":{},\"pushes\":{},\"push_lines\":{},\"expired\":{}}}\n",
            self.registrations,
            self.refused,
            self.client_events,
            self.deliveries,
            self.batches,
            self.retries,
            self.gone,
            self.failures,
            self.pushes,
            self.push_lines,
            self.expired
        )
    }
}
