//! One HTTP-in connection: the request it is reading or waiting to answer.
//!
//! Requests on one connection are taken one at a time, so pipelined requests
//! are answered in order: bytes behind the current request wait (bounded,
//! then reading pauses) until it is answered.

use std::time::Instant;

use super::HttpMethod;
use super::body::Body;
use crate::index::ReqIdx;
use crate::script::Event;

/// Where the current request stands.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Reading the body; the deadline moves with every byte.
    Body { body: Body, method: HttpMethod, charset: Option<Box<str>>, deadline: Instant },
    /// The request is the script's until `deadline`; `held` is its event
    /// while the script's queue is full. Its headers are dropped at `headers_until`.
    Waiting { deadline: Instant, headers_until: Option<Instant>, held: Option<Box<Event>> },
    /// Answered, and the response waits to be taken before the next request is read.
    Flushing { deadline: Instant },
}

/// An HTTP-in connection.
#[derive(Debug)]
pub(crate) struct HttpIn {
    /// The current request; `None` once answered.
    pub(crate) req: Option<ReqIdx>,
    pub(crate) phase: Phase,
    /// An `Output::PauseReading` is out.
    pub(crate) paused: bool,
}

impl HttpIn {
    /// Whether it holds its request's event, waiting in its script's line for room.
    pub(crate) fn holds_event(&self) -> bool {
        matches!(self.phase, Phase::Waiting { held: Some(_), .. })
    }

    pub(crate) fn deadline(&self) -> Instant {
        match &self.phase {
            Phase::Waiting { deadline, headers_until: Some(h), .. } => (*deadline).min(*h),
            Phase::Body { deadline, .. } | Phase::Waiting { deadline, .. } | Phase::Flushing { deadline } => *deadline,
        }
    }
}

/// A `POST` to an SSE session's send URL whose body is being read (SPEC §14).
#[derive(Debug)]
pub(crate) struct SsePost {
    /// The session's connection.
    pub(crate) session: crate::index::ConnIdx,
    pub(crate) body: Body,
    /// Close after the answer (HTTP/1.0, `Connection: close`).
    pub(crate) close: bool,
    pub(crate) deadline: Instant,
}
