//! The `Region` coordinator: routes inputs to the parts that own the state
//! (URLs, connections, script queues, routing, rate limit, timers) and
//! gathers their outputs.
//!
//! Its impl is split by API area: transport input and polling here,
//! connection input in `input`, script calls in `calls`, lifecycle and
//! revocation in `lifecycle`, the region-scope envelope in `scope`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::config::Config;
use crate::conns::{Conns, Kind};
use crate::entropy::Entropy;
use crate::handshake;
use crate::index::ConnIdx;
use crate::inflight::InFlight;
use crate::key::Key;
use crate::lifecycle::Cause;
use crate::queues::Queues;
use crate::rate::RateLimit;
use crate::routing::Router;
pub use crate::script::ScriptInfo;
use crate::session::ConnectionId;
use crate::timers::Timers;
use crate::transport::Transport;
use crate::url;
use crate::urls::Urls;

mod calls;
mod http;
mod input;
mod lifecycle;
mod lines;
mod scope;
mod sse;

/// A transport event or the passing of time, fed to [`Region::handle_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A connection was accepted from `remote`; `conn` is the embedder's id for it.
    Accepted {
        /// The embedder's id for the connection.
        conn: ConnectionId,
        /// The peer's address (`x-remote-ip`, and the key of the handshake rate limit).
        remote: core::net::IpAddr,
    },
    /// Bytes arrived on a connection.
    Received {
        /// The connection.
        conn: ConnectionId,
        /// The bytes, in order; any split is fine.
        data: &'a [u8],
    },
    /// The peer closed the connection, or it failed. The core forgets it.
    PeerClosed {
        /// The connection.
        conn: ConnectionId,
    },
    /// The deadline from [`Region::poll_timeout`] passed.
    Timeout,
}

/// Something the embedder must act on, drained with [`Region::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The connection has bytes to write: call [`Region::poll_transmit`] when the
    /// socket can take them. Bytes stay in the core (and count against the
    /// outgoing buffer) until taken, which is what makes `WS_ERR_BUSY` honest.
    Transmit(ConnectionId),
    /// Write what [`Region::poll_transmit`] still yields for the connection,
    /// then close it. Once `poll_transmit` returns `None` the id is free again.
    Close(ConnectionId),
    /// Stop reading from the connection: a script queue it has input for is full.
    PauseReading(ConnectionId),
    /// Read from the connection again.
    ResumeReading(ConnectionId),
    /// The script has events: drain them with [`Region::poll_event`].
    Events(Key),
    /// With [`Config::serve_other_paths`], a request for a path outside
    /// `/lslws/` and `/lslhttp/`: answer it with [`Region::respond`].
    HttpRequest {
        /// The connection to answer on.
        conn: ConnectionId,
        /// The request method, e.g. `GET`.
        method: String,
        /// The request target, e.g. `/index.html?x=1`.
        target: String,
    },
    /// A URL was revoked (for the embedder's log; the script learns from LSL's own events):
    /// an object-scope URL, or the region endpoint at a restart.
    Revoked {
        /// The URL that stopped resolving.
        url: String,
        /// Why.
        cause: Cause,
    },
    /// A script stopped listening on a region-scope domain (released, or
    /// revoked with its script or object). The endpoint's URL lives on, so
    /// this is not a [`Revoked`](Output::Revoked); it is reported so that a
    /// log sees every end of delivery.
    ListenerStopped {
        /// The script that listened.
        script: Key,
        /// The domain it listened on.
        domain: String,
        /// Why.
        cause: Cause,
    },
}

/// An input the core cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `Received` or `PeerClosed` for a connection the core does not know
    /// (never accepted, or already forgotten). Harmless to ignore.
    #[error("unknown connection {0:?}")]
    UnknownConnection(ConnectionId),
    /// `Accepted` for an id that is still in use.
    #[error("connection {0:?} is still in use")]
    ConnectionInUse(ConnectionId),
}

/// All state of one region: URLs, WebSocket sessions, HTTP-in requests, script queues, timers.
///
/// A `Region` does no I/O. Feed it transport events with
/// [`handle_input`](Region::handle_input), make script calls and lifecycle
/// notifications with its methods, and drain [`poll_output`](Region::poll_output),
/// [`poll_transmit`](Region::poll_transmit), [`poll_event`](Region::poll_event)
/// and [`poll_timeout`](Region::poll_timeout). See the [crate docs](crate) for a whole session.
pub struct Region {
    config: Config,
    entropy: Box<dyn Entropy>,
    /// The latest time any input carried; used where a call has no `now` of its own.
    now: Instant,
    urls: Urls,
    conns: Conns,
    queues: Queues,
    router: Router,
    rate: RateLimit,
    timers: Timers,
    /// HTTP-in requests in flight.
    inflight: InFlight,
    /// SSE sessions by token, and the tokens of ended ones.
    streams: crate::sse::Streams,
    /// Open sessions on the region endpoint.
    region_sessions: usize,
    outputs: VecDeque<Output>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("urls", &self.urls.len())
            .field("connections", &self.conns.len())
            .field("sessions", &self.conns.sessions())
            .field("http_in_flight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

impl Region {
    /// A region with no URLs. `entropy` mints every capability and key; `now` is the start time.
    pub fn new(config: Config, mut entropy: Box<dyn Entropy>, now: Instant) -> Region {
        let urls = Urls::new(entropy.as_mut(), config.route_tag);
        let rate = RateLimit::new(config.handshakes_per_second, entropy.as_mut());
        Region {
            queues: Queues::new(config.event_queue),
            config,
            entropy,
            now,
            urls,
            conns: Conns::default(),
            router: Router::default(),
            rate,
            timers: Timers::default(),
            inflight: InFlight::default(),
            streams: Default::default(),
            region_sessions: 0,
            outputs: VecDeque::new(),
        }
    }

    /// The region endpoint's `ws://` URL for this region life (it changes at a restart).
    pub fn region_url(&self) -> String {
        url::format_url(false, &self.config.authority, self.urls.endpoint())
    }

    /// Replaces the CLEP channel hash the routing table is keyed by, so a test
    /// can force domains onto one channel. Not for production use.
    #[doc(hidden)]
    pub fn set_channel_hash_for_tests(&mut self, hash: fn(&str) -> i32) {
        self.router = Router::with_hash(hash);
    }

    /// The configuration the region runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Applies a transport event or a timeout at time `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), InputError> {
        self.now = self.now.max(now);
        match input {
            Input::Accepted { conn, remote } => {
                let idx = self
                    .conns
                    .accept(conn, remote, now + self.config.handshake_timeout)
                    .ok_or(InputError::ConnectionInUse(conn))?;
                if self.conns.heads() > self.config.max_handshakes {
                    // A handshake flood: answer before reading a byte, hold nothing.
                    self.refuse(idx, handshake::Status::Unavailable);
                } else {
                    self.arm(idx);
                }
                Ok(())
            }
            Input::Received { conn, data } => {
                let idx = self.conns.find(conn).ok_or(InputError::UnknownConnection(conn))?;
                self.received(now, idx, data);
                Ok(())
            }
            Input::PeerClosed { conn } => {
                let idx = self.conns.find(conn).ok_or(InputError::UnknownConnection(conn))?;
                if self.sse_detach(now, idx) {
                    // The session outlives its stream for a while: a reconnect resumes it.
                    return Ok(());
                }
                self.peer_closed(idx);
                self.conns.remove(idx);
                Ok(())
            }
            Input::Timeout => {
                while let Some((at, idx)) = self.timers.pop_due(now) {
                    self.timer_fired(now, at, idx);
                }
                self.rate.sweep(now);
                Ok(())
            }
        }
    }

    /// The next output, if any. Call until `None` after every input and script call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next bytes to write to `conn`, in order. `None` when nothing is pending.
    #[inline]
    pub fn poll_transmit(&mut self, conn: ConnectionId) -> Option<Bytes> {
        let bytes = self.conns.poll_transmit(conn);
        if bytes.is_some() {
            return bytes;
        }
        if !self.conns.drained.is_empty() {
            self.read_drained();
        }
        None
    }

    /// HTTP-in answers were all taken: their connections read on.
    #[cold]
    fn read_drained(&mut self) {
        for idx in std::mem::take(&mut self.conns.drained) {
            self.read_next(idx);
        }
    }

    /// When the embedder must next call [`handle_input`](Region::handle_input)
    /// with [`Input::Timeout`]. It may be early, never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Answers an [`Output::HttpRequest`] with a complete response, then closes the connection.
    /// Fails with [`InputError::UnknownConnection`] if the connection is gone.
    pub fn respond(
        &mut self,
        conn: ConnectionId,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), InputError> {
        let idx = self
            .conns
            .find(conn)
            .filter(|&idx| matches!(self.conns.get(idx).map(|c| &c.kind), Some(Kind::Http { .. })))
            .ok_or(InputError::UnknownConnection(conn))?;
        self.queue(idx, Bytes::from(handshake::response(status, content_type, body)));
        self.close_now(idx);
        Ok(())
    }

    // ---------------------------------------------------------------- shared internals

    fn mint_key(&mut self) -> Key {
        let mut bytes = [0; 16];
        self.entropy.fill(&mut bytes);
        Key::from_random_bytes(bytes)
    }

    /// A key that is routed like a capability (an SSE send token): it carries the region's tag.
    fn mint_token(&mut self) -> Key {
        let mut bytes = [0; 16];
        self.entropy.fill(&mut bytes);
        crate::route::stamp(&mut bytes, self.config.route_tag);
        Key::from_random_bytes(bytes)
    }

    fn queue(&mut self, idx: ConnIdx, bytes: Bytes) {
        if let Some(c) = self.conns.get_mut(idx)
            && !c.detached
            && c.push_out(bytes)
        {
            self.outputs.push_back(Output::Transmit(c.id));
        }
    }

    /// Puts the connection's next deadline in the timer heap, unless an earlier one is there.
    fn arm(&mut self, idx: ConnIdx) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        if let Some(at) = c.deadline(&self.config) {
            self.timers.arm(&mut c.timer, at, idx);
        }
    }

    fn timer_fired(&mut self, now: Instant, at: Instant, idx: ConnIdx) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        if c.timer != Some(at) {
            return; // superseded by an earlier entry
        }
        c.timer = None;
        match c.deadline(&self.config) {
            Some(due) if due <= now => self.expired(now, idx),
            _ => self.arm(idx),
        }
    }

    /// The connection's deadline passed: what that means depends on its kind.
    fn expired(&mut self, now: Instant, idx: ConnIdx) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        match &mut c.kind {
            Kind::Session(s) if s.stream.is_some() => self.sse_expired(now, idx),
            Kind::Session(s) if s.paused => self.grace_over(idx),
            Kind::Session(s) if !s.pinged => {
                // The answer is due one idle interval from now.
                (s.pinged, s.last_rx) = (true, now);
                // An idle session holds no buffers.
                s.arena = bytes::BytesMut::new();
                let ping = s.transport.ping();
                self.queue(idx, ping);
                self.arm(idx);
            }
            Kind::Session(_) => {
                // 1006 is reported to the script and never sent on the wire.
                self.end_session(idx, Some((1006, "ping timeout")));
                self.close_now(idx);
            }
            Kind::HttpIn(_) => self.http_expired(now, idx),
            Kind::SsePost(_) => self.close_now(idx),
            Kind::Head { .. } | Kind::Http { .. } | Kind::Closing { .. } => self.close_now(idx),
            Kind::Closed => {}
        }
    }

    /// Answers a request head with a refusal and closes.
    fn refuse(&mut self, idx: ConnIdx, status: handshake::Status) {
        if let Some(c) = self.conns.get_mut(idx) {
            c.inbuf.clear();
        }
        self.queue(idx, Bytes::from_static(status.refusal()));
        self.close_now(idx);
    }

    /// The wire format of the connection's session (WebSocket when it has none).
    fn transport(&self, idx: ConnIdx) -> Transport {
        self.conns.session(idx).map_or(Transport::WebSocket, |s| s.transport)
    }

    /// The session's close in its wire format.
    fn close_message(&self, idx: ConnIdx, code: u16, reason: &str) -> Bytes {
        self.conns.get(idx).map_or_else(|| crate::frame::close(code, reason), |c| c.close_message(code, reason))
    }

    /// After the server's close: a WebSocket client's echo is awaited until
    /// the close timeout; a line client is closed at once.
    fn start_closing(&mut self, idx: ConnIdx, transport: Transport) {
        if !transport.waits_for_close_echo() {
            return self.close_now(idx);
        }
        let deadline = self.now + self.config.close_timeout;
        self.conns.set_kind(idx, Kind::Closing { deadline });
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.arm(idx);
    }

    /// Tells the embedder to close after flushing; forgets the connection once flushed.
    fn close_now(&mut self, idx: ConnIdx) {
        self.http_gone(idx, crate::http::HttpError::ClientGone);
        let Some(c) = self.conns.get_mut(idx) else { return };
        if c.detached {
            // No connection to close: the session waited for a resume that did not come.
            self.conns.remove(idx);
            return;
        }
        if matches!(c.kind, Kind::Closed) {
            return;
        }
        c.inbuf.clear();
        c.timer = None;
        let id = c.id;
        self.conns.set_kind(idx, Kind::Closed);
        if self.conns.flushed(idx) {
            self.conns.remove(idx);
        }
        self.outputs.push_back(Output::Close(id));
    }
}
