//! One connection's state: handshake, open session, closing, closed; its
//! buffers and its timer.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::config::Config;
use crate::frame::Decoder;
use crate::key::Key;
use crate::script::UrlId;

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

impl Headers {
    pub(crate) fn new(values: [&str; 5]) -> Headers {
        Headers(values.join("\0").into_boxed_str())
    }

    pub(crate) fn get(&self, index: usize) -> &str {
        self.0.split('\0').nth(index).unwrap_or("")
    }
}

/// A domain a region-endpoint client has addressed, and the session key
/// listeners of that domain know the client by.
#[derive(Debug)]
pub(crate) struct Contact {
    pub(crate) domain: std::sync::Arc<str>,
    pub(crate) key: Key,
    /// Sent `sub` (and got no `uns` since): receives broadcasts, listeners saw `WS_OPEN`.
    pub(crate) subscribed: bool,
}

/// Where a session's messages go.
#[derive(Debug)]
pub(crate) enum Route {
    /// An object-scope URL: every message goes to its one script.
    Object { key: Key, url: UrlId, script: Key },
    /// The region endpoint: messages carry envelope addresses.
    Region { contacts: Vec<Contact> },
}

/// An open WebSocket session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) route: Route,
    /// Largest message accepted from the client (for the region endpoint, including the envelope head).
    pub(crate) max_message: usize,
    pub(crate) decoder: Decoder,
    pub(crate) headers: Headers,
    pub(crate) last_rx: Instant,
    pub(crate) ping_sent: Option<Instant>,
    /// Reading is paused because the script's queue is full.
    pub(crate) paused: bool,
    /// Listed in its script's line of sessions waiting for room.
    pub(crate) waiting: bool,
}

#[derive(Debug)]
pub(crate) enum Phase {
    /// Waiting for a complete request head until the deadline.
    Handshake {
        deadline: Instant,
    },
    /// An `Output::HttpRequest` is out; waiting for `Region::respond` until the deadline.
    Http {
        deadline: Instant,
    },
    Open(Box<Session>),
    /// The server sent a close and waits for the echo until the deadline.
    Closing {
        deadline: Instant,
    },
    /// `Output::Close` was emitted; only unsent bytes remain.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) remote: core::net::IpAddr,
    pub(crate) phase: Phase,
    /// Received bytes not yet consumed: a partial head or frame, or input held while paused.
    pub(crate) inbuf: Vec<u8>,
    pub(crate) out: VecDeque<Bytes>,
    pub(crate) out_len: usize,
    /// An `Output::Transmit` is outstanding.
    pub(crate) tx_notified: bool,
    /// The earliest deadline this connection has in the timer heap.
    pub(crate) timer: Option<Instant>,
}

impl Conn {
    pub(crate) fn new(remote: core::net::IpAddr, deadline: Instant) -> Conn {
        Conn {
            remote,
            phase: Phase::Handshake { deadline },
            inbuf: Vec::new(),
            out: VecDeque::new(),
            out_len: 0,
            tx_notified: false,
            timer: None,
        }
    }

    /// Queues bytes to write; returns whether the embedder must be told
    /// (`Output::Transmit` is not already outstanding).
    pub(crate) fn push_out(&mut self, bytes: Bytes) -> bool {
        self.out_len += bytes.len();
        self.out.push_back(bytes);
        !std::mem::replace(&mut self.tx_notified, true)
    }

    /// When this connection next needs attention, if ever.
    pub(crate) fn deadline(&self, config: &Config) -> Option<Instant> {
        match &self.phase {
            Phase::Handshake { deadline } | Phase::Http { deadline } | Phase::Closing { deadline } => Some(*deadline),
            // A paused session is silent because we stopped reading it, not because the client is gone.
            Phase::Open(s) if s.paused => None,
            Phase::Open(s) => Some(s.ping_sent.unwrap_or(s.last_rx) + config.idle_interval),
            Phase::Closed => None,
        }
    }

    pub(crate) fn session(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Open(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn session_mut(&mut self) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::Open(s) => Some(s),
            _ => None,
        }
    }
}
