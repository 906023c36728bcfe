//! The connection table both adapters drive: which connection is writing,
//! which is closing and by when, and one turn's output phase. Plain data fed
//! by events, so the thread-based and the async adapter share it; each
//! supplies only a [`Link`], what its runtime does to one socket.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{Handler, SHUTDOWN_GRACE};
use crate::hash::Map;
use crate::region::{Input, Output, Region};
use crate::session::ConnectionId;

/// Largest batch of core bytes handed to a socket writer at once.
const WRITE_BATCH: usize = 64 * 1024;
/// How long the last write of a closing connection may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a runtime does to one connection's socket; the table decides when.
pub(crate) trait Link {
    /// Starts writing `batch`. `true`: the runtime finishes it and reports
    /// when it is written; `false`: it was written at once.
    fn write(&mut self, batch: Bytes) -> bool;
    /// The core closes the connection: from now on reads only drain.
    fn closing(&mut self) {}
    /// Everything is written: shut down our side and linger. The table forgets the link.
    fn finish(self);
    /// Stops or restarts reading.
    fn set_paused(&self, paused: bool);
    /// Ends the connection at once (peer gone, flush overdue, shutdown).
    fn kill(self);
}

struct Entry<L> {
    link: L,
    /// The runtime holds a batch it has not finished writing.
    writing: bool,
    /// The core said [`Output::Close`]; the last write must end by then.
    closing: Option<Instant>,
}

/// The region's connections as its runtime sees them.
pub(crate) struct Table<L> {
    /// foldhash, as in the core: ids are the adapter's own, and SipHash was a
    /// tenth of the instructions per echoed message.
    map: Map<ConnectionId, Entry<L>>,
    /// Closing connections whose last write must finish by then.
    deadlines: BTreeSet<(Instant, ConnectionId)>,
    now: Instant,
    next_id: u64,
    shutdown_at: Option<Instant>,
}

impl<L: Link> Table<L> {
    pub(crate) fn new(now: Instant) -> Table<L> {
        Table { map: Map::default(), deadlines: BTreeSet::new(), now, next_id: 0, shutdown_at: None }
    }

    /// A fresh id for the next accepted connection (never reused, so a late
    /// byte from a closed socket can never reach a newer connection).
    pub(crate) fn next_id(&mut self) -> ConnectionId {
        self.next_id += 1;
        ConnectionId(self.next_id - 1)
    }

    /// The runtime side of a live connection (for runtimes whose loop owns the sockets).
    #[cfg(feature = "mio")]
    pub(crate) fn link_mut(&mut self, conn: ConnectionId) -> Option<&mut L> {
        self.map.get_mut(&conn).map(|entry| &mut entry.link)
    }

    /// A connection was accepted and its runtime side started.
    pub(crate) fn accepted(&mut self, region: &mut Region, conn: ConnectionId, remote: std::net::IpAddr, link: L) {
        self.map.insert(conn, Entry { link, writing: false, closing: None });
        // Ids are fresh, so the core cannot refuse them.
        let _ = region.handle_input(Instant::now(), Input::Accepted { conn, remote });
    }

    /// Bytes arrived on a connection.
    pub(crate) fn received(&mut self, region: &mut Region, now: Instant, conn: ConnectionId, data: &[u8]) {
        // A connection the core already forgot (it closed it) is harmless.
        let _ = region.handle_input(now, Input::Received { conn, data });
    }

    /// The runtime finished writing the connection's batch.
    pub(crate) fn written(&mut self, region: &mut Region, conn: ConnectionId) {
        if let Some(entry) = self.map.get_mut(&conn) {
            entry.writing = false;
            self.transmit(region, conn);
        }
    }

    /// The peer closed, or reading or writing failed.
    pub(crate) fn gone(&mut self, region: &mut Region, now: Instant, conn: ConnectionId) {
        if let Some(entry) = self.map.remove(&conn) {
            if let Some(deadline) = entry.closing {
                self.deadlines.remove(&(deadline, conn));
            }
            entry.link.kill();
            let _ = region.handle_input(now, Input::PeerClosed { conn });
        }
    }

    /// Starts the shutdown (once): every URL revoked as at a region restart,
    /// then at most [`SHUTDOWN_GRACE`] for sessions to finish.
    pub(crate) fn shutdown(&mut self, region: &mut Region, now: Instant) -> bool {
        if self.shutdown_at.is_some() {
            return false;
        }
        self.shutdown_at = Some(now + SHUTDOWN_GRACE);
        region.region_restart(now);
        true
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown_at.is_some()
    }

    /// When the event loop must wake at the latest: the core's deadline, an
    /// overdue flush, the end of the shutdown grace, or `also`.
    pub(crate) fn wake(&self, region: &Region, also: Option<Instant>) -> Option<Instant> {
        [region.poll_timeout(), self.deadlines.first().map(|d| d.0), self.shutdown_at, also].into_iter().flatten().min()
    }

    /// The end of one turn of the event loop, after its inputs: due timers,
    /// overdue flushes, then every output. Returns whether the loop is done.
    pub(crate) fn turn<H: Handler>(&mut self, region: &mut Region, handler: &mut H, now: Instant) -> bool {
        self.now = now;
        if region.poll_timeout().is_some_and(|at| at <= now) {
            let _ = region.handle_input(now, Input::Timeout);
        }
        while let Some(&(at, conn)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(entry) = self.map.remove(&conn) {
                entry.link.kill();
                let _ = region.handle_input(now, Input::PeerClosed { conn });
            }
        }
        self.drain(region, handler, now);
        self.shutdown_at.is_some_and(|at| self.map.is_empty() || at <= now)
    }

    /// The output phase: the handler's tick, then every output until the core has none.
    pub(crate) fn drain<H: Handler>(&mut self, region: &mut Region, handler: &mut H, now: Instant) {
        handler.tick(region, now);
        while let Some(output) = region.poll_output() {
            match output {
                Output::Transmit(conn) => self.transmit(region, conn),
                Output::Close(conn) => self.close(region, conn),
                Output::PauseReading(conn) => self.set_paused(conn, true),
                Output::ResumeReading(conn) => self.set_paused(conn, false),
                Output::Events(script) => handler.on_events(region, now, script),
                Output::HttpRequest { conn, method, target } => {
                    handler.on_http_request(region, now, conn, &method, &target)
                }
                Output::Revoked { url, cause } => handler.on_revoked(region, now, &url, cause),
                Output::ListenerStopped { script, domain, cause } => {
                    handler.on_listener_stopped(region, now, script, &domain, cause)
                }
            }
        }
    }

    /// Ends every connection (the loop is done).
    pub(crate) fn kill_all(&mut self) {
        for (_, entry) in self.map.drain() {
            entry.link.kill();
        }
    }

    /// The connection has bytes in the core: hand them to the runtime unless
    /// it is still writing a batch; once a closing connection is flushed, finish it.
    fn transmit(&mut self, region: &mut Region, conn: ConnectionId) {
        let Some(entry) = self.map.get_mut(&conn) else { return };
        if entry.writing {
            return; // taken when the current write completes
        }
        loop {
            match take_batch(region, conn) {
                Some(batch) => {
                    if entry.link.write(batch) {
                        entry.writing = true;
                        return;
                    }
                }
                None => {
                    if let Some(deadline) = entry.closing
                        && let Some(entry) = self.map.remove(&conn)
                    {
                        self.deadlines.remove(&(deadline, conn));
                        entry.link.finish();
                    }
                    return;
                }
            }
        }
    }

    /// Write what is left, then close.
    fn close(&mut self, region: &mut Region, conn: ConnectionId) {
        let Some(entry) = self.map.get_mut(&conn) else {
            // Not ours any more: let the core free what it holds.
            while region.poll_transmit(conn).is_some() {}
            return;
        };
        if entry.closing.is_none() {
            let deadline = self.now + FLUSH_TIMEOUT;
            entry.closing = Some(deadline);
            entry.link.closing();
            self.deadlines.insert((deadline, conn));
        }
        self.transmit(region, conn);
    }

    fn set_paused(&mut self, conn: ConnectionId, paused: bool) {
        if let Some(entry) = self.map.get(&conn) {
            entry.link.set_paused(paused);
        }
    }
}

/// Takes up to [`WRITE_BATCH`] bytes (at least one chunk) from the core for `conn`.
///
/// Small frames are coalesced so a burst of echoes costs one write; bytes
/// beyond the batch stay in the core, where they count against `WS_ERR_BUSY`.
fn take_batch(region: &mut Region, conn: ConnectionId) -> Option<Bytes> {
    let first = region.poll_transmit(conn)?;
    let mut len = first.len();
    let mut chunks = vec![first];
    while len < WRITE_BATCH {
        let Some(next) = region.poll_transmit(conn) else { break };
        len += next.len();
        chunks.push(next);
    }
    if chunks.len() == 1 {
        return chunks.pop();
    }
    let mut batch = BytesMut::with_capacity(len);
    for chunk in chunks {
        batch.extend_from_slice(&chunk);
    }
    Some(batch.freeze())
}
