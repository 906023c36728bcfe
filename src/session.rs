//! One open WebSocket session: where its messages go, its decoder, the
//! headers a script may read, and its idle and back-pressure state.

use std::time::Instant;

use crate::config::Config;
use crate::frame::Decoder;
use crate::handshake::Request;
use crate::index::{ScriptIdx, UrlIdx};
use crate::key::Key;
use crate::routing::Contacts;
use crate::sse::Stream;
use crate::transport::Transport;
use crate::url::Target;

/// The embedder's name for one transport connection (a socket, a slab index).
///
/// The embedder picks it when it reports [`Input::Accepted`](crate::Input::Accepted);
/// it may reuse it once the core is done with the connection (see [`Output::Close`](crate::Output::Close)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// The headers a script may read, packed in one allocation: path info, query,
/// user agent, origin, subprotocols, separated by NUL (which HTTP forbids in them).
#[derive(Debug)]
pub(crate) struct Headers(Box<str>);

/// Header names `llGetWebsocketHeader` answers from [`Headers`], in their order.
pub(crate) const STORED_HEADERS: [&str; 5] =
    ["x-path-info", "x-query-string", "user-agent", "origin", "sec-websocket-protocol"];

impl Headers {
    pub(crate) fn new(values: [&str; 5]) -> Headers {
        Headers(values.join("\0").into_boxed_str())
    }

    /// The headers of a WebSocket request for `target`.
    pub(crate) fn of(target: &Target<'_>, request: &Request<'_>) -> Headers {
        Headers::new([
            target.path_info,
            target.query,
            request.user_agent.unwrap_or(""),
            request.origin.unwrap_or(""),
            request.protocol.unwrap_or(""),
        ])
    }

    pub(crate) fn get(&self, index: usize) -> &str {
        self.0.split('\0').nth(index).unwrap_or("")
    }

    pub(crate) fn path_info(&self) -> &str {
        self.get(0)
    }

    /// A stored header by its lower-case name.
    pub(crate) fn named(&self, name: &str) -> Option<&str> {
        STORED_HEADERS.iter().position(|h| *h == name).map(|i| self.get(i))
    }
}

/// Where a session's messages go.
#[derive(Debug)]
pub(crate) enum Route {
    /// An object-scope URL: every message goes to its one script.
    Object { key: Key, url: UrlIdx, queue: ScriptIdx },
    /// The region endpoint: messages carry envelope addresses.
    Region { contacts: Contacts },
}

/// Input a session decoded but could not hand on yet: the script queue it is
/// for was full. It goes first once there is room.
#[derive(Debug)]
pub(crate) enum Held {
    /// The session's `WS_OPEN` (object scope: the handshake found the queue full).
    Open,
    /// A region-scope envelope frame, waiting until `until` (the busy grace) at most.
    Envelope { text: Box<str>, until: Instant },
}

/// An open WebSocket session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) route: Route,
    /// Largest message accepted from the client (for the region endpoint, including the envelope head).
    pub(crate) max_message: usize,
    /// WebSocket frames or lines.
    pub(crate) transport: Transport,
    pub(crate) decoder: Decoder,
    pub(crate) headers: Headers,
    /// When the client was last heard from, or when the server pinged it.
    pub(crate) last_rx: Instant,
    /// A ping is out and unanswered: the next deadline ends the session.
    pub(crate) pinged: bool,
    /// Reading is paused: a script queue this session has input for is full.
    pub(crate) paused: bool,
    /// The script queue whose waiting line lists this session, if any.
    pub(crate) waiting_on: Option<ScriptIdx>,
    /// Boxed: rare, and an idle session should stay small.
    pub(crate) held: Option<Box<Held>>,
    /// An SSE session's stream state (SPEC §14).
    pub(crate) stream: Option<Box<Stream>>,
    /// Where outgoing text frames are written (see `frame::text_in`);
    /// empty until the first send, given back when the session idles.
    pub(crate) arena: bytes::BytesMut,
}

impl Session {
    pub(crate) fn new(
        route: Route,
        max_message: usize,
        transport: Transport,
        headers: Headers,
        now: Instant,
    ) -> Session {
        Session {
            route,
            max_message,
            transport,
            decoder: Decoder::default(),
            headers,
            last_rx: now,
            pinged: false,
            paused: false,
            waiting_on: None,
            held: None,
            arena: bytes::BytesMut::new(),
            stream: None,
        }
    }

    /// The idle ping (or its timeout), or the busy grace while paused.
    pub(crate) fn deadline(&self, config: &Config) -> Option<Instant> {
        if let Some(stream) = &self.stream {
            // Nothing comes up a stream to time: heartbeats while attached, the resume window while not.
            return stream.detached_until.or(stream.heartbeat_at);
        }
        if self.paused {
            // Silence while paused is ours, not the client's; only a region message's grace runs.
            return match self.held.as_deref() {
                Some(Held::Envelope { until, .. }) => Some(*until),
                _ => None,
            };
        }
        Some(self.last_rx + config.idle_interval)
    }

    /// The client was heard from.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_rx = now;
        self.pinged = false;
    }

    /// Every session key the session is known by (one per contacted domain on the region endpoint).
    pub(crate) fn keys(&self) -> Vec<Key> {
        match &self.route {
            Route::Object { key, .. } => vec![*key],
            Route::Region { contacts } => contacts.iter().map(|c| c.key).collect(),
        }
    }

    /// The object-scope route, if this is one.
    pub(crate) fn object(&self) -> Option<(Key, UrlIdx, ScriptIdx)> {
        match self.route {
            Route::Object { key, url, queue } => Some((key, url, queue)),
            Route::Region { .. } => None,
        }
    }

    pub(crate) fn contacts(&self) -> Option<&Contacts> {
        match &self.route {
            Route::Region { contacts } => Some(contacts),
            Route::Object { .. } => None,
        }
    }

    pub(crate) fn contacts_mut(&mut self) -> Option<&mut Contacts> {
        match &mut self.route {
            Route::Region { contacts } => Some(contacts),
            Route::Object { .. } => None,
        }
    }
}
