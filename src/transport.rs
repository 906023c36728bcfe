//! How a session's messages travel on its connection: RFC 6455 frames, or
//! lines (SPEC §13). The script cannot tell them apart except by
//! `llGetWebsocketHeader(session, "x-transport")`.

use bytes::Bytes;

use crate::frame::{self, Decoded, Decoder, Violation};
use crate::line;

/// A session's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Transport {
    WebSocket,
    Lines,
    /// Server-sent events down, `POST` up (SPEC §14).
    Sse,
}

impl Transport {
    /// The value of the `x-transport` header.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Lines => "lines",
            Transport::Sse => "sse",
        }
    }

    /// Decodes the next client message at the start of `input`.
    #[inline]
    pub(crate) fn decode(
        self,
        decoder: &mut Decoder,
        input: &[u8],
        max_message: usize,
    ) -> Result<Option<(Decoded, usize)>, Violation> {
        match self {
            Transport::WebSocket => decoder.decode(input, max_message),
            Transport::Lines => line::decode(input, max_message),
            // Nothing comes up the stream (messages are POSTed): its bytes are skipped.
            Transport::Sse => Ok(Some((Decoded::Nothing, input.len()))),
        }
    }

    /// One text message made of `parts` (not for SSE, whose events carry the
    /// session's ids: see `Conn::message`).
    #[inline]
    pub(crate) fn text(self, parts: &[&[u8]]) -> Bytes {
        match self {
            Transport::WebSocket => frame::text_parts(parts),
            Transport::Lines | Transport::Sse => line::text_parts(parts),
        }
    }

    /// A close (for SSE, see `Conn::close_message`, which knows the event id).
    pub(crate) fn close(self, code: u16, reason: &str) -> Bytes {
        match self {
            Transport::WebSocket => frame::close(code, reason),
            Transport::Lines | Transport::Sse => line::close(code, reason),
        }
    }

    /// The answer to a client's close that carried no code.
    pub(crate) fn close_empty(self) -> Bytes {
        match self {
            Transport::WebSocket => frame::close_empty(),
            Transport::Lines | Transport::Sse => line::close(1000, ""),
        }
    }

    /// The idle check: a ping (WebSocket, lines) or a heartbeat comment (SSE).
    pub(crate) fn ping(self) -> Bytes {
        match self {
            Transport::WebSocket => frame::ping(),
            Transport::Lines => line::ping(),
            Transport::Sse => crate::sse::heartbeat(),
        }
    }

    pub(crate) fn pong(self, payload: &[u8]) -> Bytes {
        match self {
            Transport::WebSocket => frame::pong(payload),
            Transport::Lines | Transport::Sse => line::pong(),
        }
    }

    /// Whether the server waits for the client's answer to its close (RFC
    /// 6455's closing handshake) before closing the connection.
    pub(crate) fn waits_for_close_echo(self) -> bool {
        self == Transport::WebSocket
    }
}
