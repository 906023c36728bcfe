//! Connections by kind: the table the core routes transport input through.
//!
//! A connection starts as a request head being read; what the head turns out
//! to be decides its kind (a WebSocket session today; HTTP-in, SSE and line
//! clients join as further kinds of [`Kind`]). The table maps the embedder's
//! [`ConnectionId`] to a dense, generational [`ConnIdx`] once per input;
//! everything inside the core (URL sessions, subscribers, waiting lines,
//! timers) holds the index, so a stale entry can never reach a newer
//! connection in the same slot.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use slotmap::SlotMap;

use crate::config::Config;
use crate::frame;
use crate::hash::Map;
use crate::http::conn::HttpIn;
use crate::index::ConnIdx;
use crate::key::Key;
use crate::script::SendError;
use crate::session::{ConnectionId, Session};
use crate::transport::Transport;

/// What a connection is, and what it waits for.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Reading the request head until the deadline.
    Head { deadline: Instant },
    /// An `Output::HttpRequest` is out; waiting for `Region::respond` until the deadline.
    Http { deadline: Instant },
    /// An open session: a WebSocket, a line client or an event stream (its `Transport` says which).
    Session(Box<Session>),
    /// An HTTP-in request being read or answered (SPEC §8).
    HttpIn(Box<HttpIn>),
    /// A `POST` to an SSE session's send URL, its body being read (SPEC §14).
    SsePost(Box<crate::http::conn::SsePost>),
    /// The server sent a close and waits for the echo until the deadline.
    Closing { deadline: Instant },
    /// `Output::Close` was emitted; only unsent bytes remain.
    Closed,
}

/// One connection: its kind, and the bytes held in each direction.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: ConnectionId,
    pub(crate) remote: core::net::IpAddr,
    pub(crate) kind: Kind,
    /// Received bytes not yet consumed: a partial head or frame, or input held while paused.
    pub(crate) inbuf: Inbuf,
    out: VecDeque<Bytes>,
    /// Bytes in `out` (u32 keeps an idle connection small; it saturates, far above any buffer limit).
    out_len: u32,
    /// An `Output::Transmit` is outstanding.
    tx_notified: bool,
    /// The earliest deadline this connection has in the timer heap.
    pub(crate) timer: Option<Instant>,
    /// An SSE session whose stream connection went away: no embedder id, no
    /// bytes to write, until a reconnect takes it up (SPEC §14).
    pub(crate) detached: bool,
    /// A request was served on this connection already (kept alive): its
    /// next bytes are a request, never a line client's first line.
    pub(crate) served: bool,
}

impl Conn {
    /// Queues bytes to write; returns whether the embedder must be told
    /// (`Output::Transmit` is not already outstanding).
    pub(crate) fn push_out(&mut self, bytes: Bytes) -> bool {
        self.out_len = self.out_len.saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.out.push_back(bytes);
        !std::mem::replace(&mut self.tx_notified, true)
    }

    /// Forgets the bytes held either way: they belonged to a connection that is gone.
    fn drop_pending(&mut self) {
        self.out.clear();
        self.out_len = 0;
        self.tx_notified = false;
        self.inbuf.clear();
    }

    /// Bytes queued and not yet taken by the embedder.
    pub(crate) fn out_len(&self) -> usize {
        self.out_len as usize
    }

    /// Queues one text message (`msg,<domain>,<text>` when a domain is
    /// given) if it fits under `limit` outgoing bytes; returns whether the
    /// embedder must be told, as [`push_out`](Conn::push_out).
    #[inline]
    pub(crate) fn send_text(&mut self, domain: Option<&str>, text: &str, limit: usize) -> Result<bool, SendError> {
        let transport = self.session().map_or(Transport::WebSocket, |s| s.transport);
        let head = domain.map_or(0, |d| d.len() + 5);
        if transport == Transport::WebSocket {
            if self.out_len() + head + text.len() + frame::MAX_HEADER > limit {
                return Err(SendError::Busy);
            }
            if domain.is_none() {
                // The message path, kept short.
                let bytes = match &mut self.kind {
                    Kind::Session(s) => frame::text_in(&mut s.arena, text.as_bytes()),
                    _ => frame::text(text.as_bytes()),
                };
                return Ok(self.push_out(bytes));
            }
        }
        let parts: [&[u8]; 4] = match domain {
            Some(d) => [b"msg,", d.as_bytes(), b",", text.as_bytes()],
            None => [b"", b"", b"", text.as_bytes()],
        };
        // Lines and events are sized as written: escapes make them longer than the text.
        let written = match (transport, self.session().and_then(|s| s.stream.as_ref())) {
            (Transport::WebSocket, _) => head + text.len() + frame::MAX_HEADER,
            (_, Some(stream)) => stream.event_len(&parts),
            _ => crate::line::escaped_len(&parts),
        };
        if self.out_len() + written > limit {
            return Err(SendError::Busy);
        }
        if self.detached
            && !self.session().and_then(|s| s.stream.as_ref()).is_some_and(|st| st.has_room(written, limit))
        {
            // No stream to write to, and the resume memory is full.
            return Err(SendError::Busy);
        }
        let bytes = self.message(&parts, limit);
        Ok(!self.detached && self.push_out(bytes))
    }

    /// One text message in the session's wire format (an SSE event gets the
    /// next id and is kept for resuming, within `limit` bytes).
    pub(crate) fn message(&mut self, parts: &[&[u8]], limit: usize) -> Bytes {
        match self.session_mut() {
            Some(s) => match &mut s.stream {
                Some(stream) => stream.message(parts, limit),
                None => s.transport.text(parts),
            },
            None => frame::text_parts(parts),
        }
    }

    /// The session's close in its wire format.
    pub(crate) fn close_message(&self, code: u16, reason: &str) -> Bytes {
        match self.session() {
            Some(s) => match &s.stream {
                Some(stream) => stream.close(code, reason),
                None => s.transport.close(code, reason),
            },
            None => frame::close(code, reason),
        }
    }

    /// Input while the server waits for the close echo: only a close (or
    /// garbage) matters, data frames are skipped. Returns whether to close now.
    pub(crate) fn closing_input(&mut self, data: &[u8], max_message: usize) -> bool {
        let mut held = self.inbuf.take();
        held.extend_from_slice(data);
        let mut decoder = frame::Decoder::default();
        let mut pos = 0;
        loop {
            // Data frames are skipped, so any size is allowed here.
            match decoder.decode(&held[pos..], usize::MAX) {
                Ok(Some((frame::Decoded::Close(..), _))) | Err(_) => return true,
                Ok(Some((_, used))) => pos += used,
                Ok(None) => break,
            }
        }
        // A client still streaming a huge frame at us is not worth waiting for.
        let too_long = held.len() - pos > max_message + frame::MAX_HEADER;
        self.inbuf.set(&held[pos..]);
        too_long
    }

    /// When this connection next needs attention, if ever.
    pub(crate) fn deadline(&self, config: &Config) -> Option<Instant> {
        match &self.kind {
            Kind::Head { deadline } | Kind::Http { deadline } | Kind::Closing { deadline } => Some(*deadline),
            Kind::Session(s) => s.deadline(config),
            Kind::HttpIn(h) => Some(h.deadline()),
            Kind::SsePost(p) => Some(p.deadline),
            Kind::Closed => None,
        }
    }

    pub(crate) fn session(&self) -> Option<&Session> {
        match &self.kind {
            Kind::Session(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.kind {
            Kind::Session(s) => Some(s),
            _ => None,
        }
    }
}

/// Received bytes held between inputs. A boxed slice rather than a `Vec`:
/// every connection has one and almost always empty, so the capacity word
/// is worth saving; a partial frame is rare enough to pay a reallocation.
#[derive(Debug, Default)]
pub(crate) struct Inbuf(Box<[u8]>);

impl Inbuf {
    /// Takes the bytes out, leaving it empty.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0).into_vec()
    }

    /// Appends `data`.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        let mut bytes = self.take();
        bytes.extend_from_slice(data);
        self.0 = bytes.into_boxed_slice();
    }

    /// Holds exactly `data`.
    pub(crate) fn set(&mut self, data: &[u8]) {
        self.0 = data.into();
    }

    pub(crate) fn clear(&mut self) {
        self.0 = Box::default();
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every connection of the region.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    slots: SlotMap<ConnIdx, Conn>,
    ids: Map<ConnectionId, ConnIdx>,
    /// Session keys (object-scope sessions and region-endpoint contacts) to their connection.
    keys: Map<Key, ConnIdx>,
    /// Connections still reading their request head (the SPEC §5 handshake cap).
    heads: usize,
    /// HTTP-in connections whose answers were all taken while they waited
    /// for that (`Phase::Flushing`): the coordinator reads their next request.
    pub(crate) drained: Vec<ConnIdx>,
}

impl Conns {
    /// Registers a new connection reading its head. Fails if the id is still in use.
    pub(crate) fn accept(&mut self, id: ConnectionId, remote: core::net::IpAddr, deadline: Instant) -> Option<ConnIdx> {
        if let Some(&old) = self.ids.get(&id) {
            if !matches!(self.slots[old].kind, Kind::Closed) {
                return None;
            }
            // Closed with bytes unsent: the embedder gave up on them.
            self.remove(old);
        }
        let conn = Conn {
            id,
            remote,
            kind: Kind::Head { deadline },
            inbuf: Inbuf::default(),
            out: VecDeque::new(),
            out_len: 0,
            tx_notified: false,
            timer: None,
            detached: false,
            served: false,
        };
        let idx = self.slots.insert(conn);
        self.ids.insert(id, idx);
        self.heads += 1;
        Some(idx)
    }

    pub(crate) fn find(&self, id: ConnectionId) -> Option<ConnIdx> {
        self.ids.get(&id).copied()
    }

    pub(crate) fn get(&self, idx: ConnIdx) -> Option<&Conn> {
        self.slots.get(idx)
    }

    pub(crate) fn get_mut(&mut self, idx: ConnIdx) -> Option<&mut Conn> {
        self.slots.get_mut(idx)
    }

    pub(crate) fn session(&self, idx: ConnIdx) -> Option<&Session> {
        self.slots.get(idx)?.session()
    }

    pub(crate) fn session_mut(&mut self, idx: ConnIdx) -> Option<&mut Session> {
        self.slots.get_mut(idx)?.session_mut()
    }

    /// Moves a connection to another kind, keeping the count of heads being read.
    /// Returns the kind it had.
    pub(crate) fn set_kind(&mut self, idx: ConnIdx, kind: Kind) -> Option<Kind> {
        let conn = self.slots.get_mut(idx)?;
        let old = std::mem::replace(&mut conn.kind, kind);
        let (was, is) = (matches!(old, Kind::Head { .. }), matches!(conn.kind, Kind::Head { .. }));
        self.heads = self.heads + usize::from(is) - usize::from(was);
        Some(old)
    }

    pub(crate) fn heads(&self) -> usize {
        self.heads
    }

    /// The embedder's connection under an SSE session went away: the session
    /// stays (without an id, bytes or timer of the old connection) for a resume.
    pub(crate) fn detach(&mut self, idx: ConnIdx) {
        let Some(c) = self.slots.get_mut(idx) else { return };
        self.ids.remove(&c.id);
        c.detached = true;
        c.drop_pending();
    }

    /// A reconnect: the connection `new` (still reading its head) becomes the
    /// one under the session at `session`, which keeps its index. Returns the
    /// embedder id of the connection that carried the session until now, if any.
    pub(crate) fn reattach(&mut self, session: ConnIdx, new: ConnIdx) -> Option<ConnectionId> {
        if session == new || !self.slots.contains_key(session) {
            return None;
        }
        let fresh = self.remove(new)?;
        let c = self.slots.get_mut(session)?;
        let old = (!c.detached).then_some(c.id);
        if let Some(old) = old {
            self.ids.remove(&old);
        }
        c.id = fresh.id;
        c.remote = fresh.remote;
        c.detached = false;
        c.drop_pending();
        self.ids.insert(fresh.id, session);
        old
    }

    /// The next bytes to write, in order; `None` when nothing is pending, and
    /// then a closed connection is forgotten.
    #[inline]
    pub(crate) fn poll_transmit(&mut self, id: ConnectionId) -> Option<Bytes> {
        let idx = self.find(id)?;
        let c = self.slots.get_mut(idx)?;
        c.tx_notified = false;
        if let Some(bytes) = c.out.pop_front() {
            // Returned at once, so the bytes move straight to the caller.
            c.out_len = c.out_len.saturating_sub(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            return Some(bytes);
        }
        if matches!(c.kind, Kind::Closed) {
            self.remove(idx);
        } else if let Kind::HttpIn(h) = &c.kind
            && matches!(h.phase, crate::http::conn::Phase::Flushing { .. })
        {
            self.drained.push(idx);
        } else if c.out.capacity() > 8 {
            // Give back a queue that grew during a burst.
            c.out = VecDeque::new();
        }
        None
    }

    /// Whether everything queued was taken.
    pub(crate) fn flushed(&self, idx: ConnIdx) -> bool {
        self.slots.get(idx).is_some_and(|c| c.out.is_empty())
    }

    pub(crate) fn remove(&mut self, idx: ConnIdx) -> Option<Conn> {
        let conn = self.slots.remove(idx)?;
        self.ids.remove(&conn.id);
        self.heads -= usize::from(matches!(conn.kind, Kind::Head { .. }));
        Some(conn)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnIdx, &Conn)> {
        self.slots.iter()
    }

    // Session keys.

    pub(crate) fn by_key(&self, key: Key) -> Option<ConnIdx> {
        self.keys.get(&key).copied()
    }

    pub(crate) fn bind_key(&mut self, key: Key, idx: ConnIdx) {
        self.keys.insert(key, idx);
    }

    pub(crate) fn unbind_key(&mut self, key: Key) {
        self.keys.remove(&key);
    }

    pub(crate) fn sessions(&self) -> usize {
        self.keys.len()
    }
}
