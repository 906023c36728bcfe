//! The region-scope envelope (SPEC §6): the text frames spoken on the shared
//! region endpoint.
//!
//! Each frame is a comma-separated head followed, for verbs that carry one,
//! by a payload. The payload is everything after the last head field, so it
//! may contain commas, newlines and any Unicode, and may be empty. This
//! module only parses and encodes; routing, queues and size caps live
//! elsewhere.
//!
//! | direction | frame | type |
//! |---|---|---|
//! | client → region | `sub,<domain>` | [`ClientFrame::Sub`] |
//! | client → region | `uns,<domain>` | [`ClientFrame::Uns`] |
//! | client → region | `msg,<domain>,<payload>` | [`ClientFrame::Msg`] |
//! | client → region | `to,<object-key>,<domain>,<payload>` | [`ClientFrame::To`] |
//! | region → client | `msg,<domain>,<payload>` | [`ServerFrame::Msg`] |
//! | region → client | `err,<domain>,<word>` | [`ServerFrame::Err`] |
//! | region → client | `uns,<domain>` | [`ServerFrame::Uns`] |
//!
//! Decisions where the SPEC is silent:
//! - Verbs and error words are lower case only; anything else is an unknown
//!   verb (or word). Nothing is trimmed.
//! - A frame with a payload needs the comma that ends its head even when the
//!   payload is empty: `msg,chat,` carries an empty payload, `msg,chat` is
//!   malformed. This keeps parsing and encoding exact inverses.
//! - `sub` and `uns` take no payload: in `sub,chat,` the domain is `chat,`,
//!   which is invalid.
//! - Domains also may not contain `\r`, so a CRLF-terminated line from a
//!   careless client is rejected rather than subscribed under a different name.
//! - The object key of `to` is accepted in either case (see [`Key`]).
//! - Only `err` may carry an empty domain (`err,,bad-frame`, the answer to a
//!   frame whose head is malformed, where there is no domain to name).
//!
//! ```
//! use lsl_websocket::envelope::{parse_client, ClientFrame, ErrorWord, ServerFrame};
//!
//! let frame = parse_client("msg,chat,hello, world").unwrap();
//! assert_eq!(frame, ClientFrame::Msg { domain: "chat", payload: "hello, world" });
//!
//! let mut out = Vec::new();
//! ServerFrame::Err { domain: "chat", word: ErrorWord::NoListener }.encode_into(&mut out);
//! assert_eq!(out, b"err,chat,no-listener");
//!
//! assert!(parse_client("hello").is_err());
//! ```

use std::fmt;

use crate::key::{Key, ParseKeyError};

/// The longest domain, in bytes of UTF-8.
pub const MAX_DOMAIN_LEN: usize = 64;

/// Why a string is not a valid domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The domain is the empty string.
    #[error("domain is empty")]
    Empty,
    /// The domain is longer than [`MAX_DOMAIN_LEN`] bytes.
    #[error("domain is {len} bytes long, more than {MAX_DOMAIN_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The domain contains a comma, a line feed or a carriage return.
    #[error("domain contains the forbidden character {0:?}")]
    ForbiddenChar(char),
}

/// Checks that `domain` is a valid region-scope domain: 1 to
/// [`MAX_DOMAIN_LEN`] bytes of UTF-8 without `,`, `\n` or `\r`.
///
/// ```
/// use lsl_websocket::envelope::{validate_domain, DomainError};
///
/// assert!(validate_domain("service:chat ✓").is_ok());
/// assert_eq!(validate_domain("a,b"), Err(DomainError::ForbiddenChar(',')));
/// ```
pub fn validate_domain(domain: &str) -> Result<(), DomainError> {
    if domain.is_empty() {
        return Err(DomainError::Empty);
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(DomainError::TooLong { len: domain.len() });
    }
    match domain.chars().find(|c| matches!(c, ',' | '\n' | '\r')) {
        Some(c) => Err(DomainError::ForbiddenChar(c)),
        None => Ok(()),
    }
}

/// Why a frame could not be parsed. The region answers any of these with
/// [`ServerFrame::BAD_FRAME`] and keeps the connection open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The text before the first comma is not a verb of this direction
    /// (also for the empty frame).
    #[error("unknown verb")]
    UnknownVerb,
    /// The frame ends before the named head field (or before the comma that
    /// starts the payload).
    #[error("missing {0}")]
    MissingField(&'static str),
    /// The domain field is not a valid domain.
    #[error("invalid domain: {0}")]
    BadDomain(#[from] DomainError),
    /// The object field of a `to` frame is not a key.
    #[error("invalid object key: {0}")]
    BadKey(#[from] ParseKeyError),
    /// The word of an `err` frame is not one of [`ErrorWord`]'s.
    #[error("unknown error word")]
    UnknownErrorWord,
}

/// A frame a client sends to the region endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientFrame<'a> {
    /// `sub,<domain>`: receive broadcasts on the domain.
    Sub {
        /// The domain to subscribe to.
        domain: &'a str,
    },
    /// `uns,<domain>`: stop receiving broadcasts on the domain.
    Uns {
        /// The domain to leave.
        domain: &'a str,
    },
    /// `msg,<domain>,<payload>`: to every script listening on the domain.
    Msg {
        /// The domain addressed.
        domain: &'a str,
        /// The message text, possibly empty.
        payload: &'a str,
    },
    /// `to,<object-key>,<domain>,<payload>`: only to the scripts in one
    /// object that listen on the domain.
    To {
        /// The object addressed.
        object: Key,
        /// The domain addressed.
        domain: &'a str,
        /// The message text, possibly empty.
        payload: &'a str,
    },
}

/// Splits `rest` at its first comma; `name` is the field that the comma
/// would start. Domains and keys never contain a comma, so the first comma
/// ends them and a payload keeps all the others.
fn field<'a>(rest: &'a str, name: &'static str) -> Result<(&'a str, &'a str), EnvelopeError> {
    rest.split_once(',').ok_or(EnvelopeError::MissingField(name))
}

/// Parses one text frame received from a client on the region endpoint.
///
/// ```
/// use lsl_websocket::envelope::{parse_client, ClientFrame, EnvelopeError};
///
/// assert_eq!(parse_client("sub,chat"), Ok(ClientFrame::Sub { domain: "chat" }));
/// assert_eq!(parse_client("msg,chat,"), Ok(ClientFrame::Msg { domain: "chat", payload: "" }));
/// assert_eq!(parse_client("msg,chat"), Err(EnvelopeError::MissingField("payload")));
/// ```
pub fn parse_client(text: &str) -> Result<ClientFrame<'_>, EnvelopeError> {
    let Some((verb, rest)) = text.split_once(',') else {
        return Err(match text {
            "sub" | "uns" | "msg" => EnvelopeError::MissingField("domain"),
            "to" => EnvelopeError::MissingField("object key"),
            _ => EnvelopeError::UnknownVerb,
        });
    };
    let frame = match verb {
        "sub" => ClientFrame::Sub { domain: rest },
        "uns" => ClientFrame::Uns { domain: rest },
        "msg" => {
            let (domain, payload) = field(rest, "payload")?;
            ClientFrame::Msg { domain, payload }
        }
        "to" => {
            let (object, rest) = field(rest, "domain")?;
            let object: Key = object.parse()?;
            let (domain, payload) = field(rest, "payload")?;
            ClientFrame::To { object, domain, payload }
        }
        _ => return Err(EnvelopeError::UnknownVerb),
    };
    validate_domain(frame.domain())?;
    Ok(frame)
}

impl<'a> ClientFrame<'a> {
    /// The domain the frame addresses.
    pub fn domain(&self) -> &'a str {
        match *self {
            ClientFrame::Sub { domain }
            | ClientFrame::Uns { domain }
            | ClientFrame::Msg { domain, .. }
            | ClientFrame::To { domain, .. } => domain,
        }
    }

    /// The length in bytes of [`encode_into`](Self::encode_into)'s output.
    pub fn encoded_len(&self) -> usize {
        const KEY_LEN: usize = 36;
        match *self {
            ClientFrame::Sub { domain } | ClientFrame::Uns { domain } => 4 + domain.len(),
            ClientFrame::Msg { domain, payload } => 5 + domain.len() + payload.len(),
            ClientFrame::To { domain, payload, .. } => 5 + KEY_LEN + domain.len() + payload.len(),
        }
    }

    /// Appends the frame's text to `out`, for clients, bridges and tests.
    ///
    /// Fields are not validated: a frame built with an invalid domain
    /// encodes to text that [`parse_client`] rejects.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.reserve(self.encoded_len());
        // Writing to a Vec cannot fail, and Display below cannot either.
        let _ = write!(out, "{self}");
    }
}

impl fmt::Display for ClientFrame<'_> {
    /// The frame's text, as [`encode_into`](Self::encode_into) writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClientFrame::Sub { domain } => write!(f, "sub,{domain}"),
            ClientFrame::Uns { domain } => write!(f, "uns,{domain}"),
            ClientFrame::Msg { domain, payload } => write!(f, "msg,{domain},{payload}"),
            ClientFrame::To { object, domain, payload } => write!(f, "to,{object},{domain},{payload}"),
        }
    }
}

/// The reason word of an `err` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorWord {
    /// `no-listener`: no script listens on the domain (or, for `to`, none in
    /// that object).
    NoListener,
    /// `busy`: a listening script's event queue is full; the message was not
    /// delivered.
    Busy,
    /// `too-large`: the message exceeds what the listening script accepts.
    TooLarge,
    /// `bad-frame`: the frame's head was malformed.
    BadFrame,
}

impl ErrorWord {
    /// The word as it appears on the wire, e.g. `"no-listener"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorWord::NoListener => "no-listener",
            ErrorWord::Busy => "busy",
            ErrorWord::TooLarge => "too-large",
            ErrorWord::BadFrame => "bad-frame",
        }
    }

    /// The word for its wire text; `None` for anything else (exact, lower
    /// case).
    ///
    /// ```
    /// use lsl_websocket::envelope::ErrorWord;
    ///
    /// assert_eq!(ErrorWord::from_wire("busy"), Some(ErrorWord::Busy));
    /// assert_eq!(ErrorWord::from_wire("BUSY"), None);
    /// ```
    pub fn from_wire(word: &str) -> Option<ErrorWord> {
        Some(match word {
            "no-listener" => ErrorWord::NoListener,
            "busy" => ErrorWord::Busy,
            "too-large" => ErrorWord::TooLarge,
            "bad-frame" => ErrorWord::BadFrame,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame the region sends to a client on the region endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerFrame<'a> {
    /// `msg,<domain>,<payload>`: a script's send or broadcast.
    Msg {
        /// The domain the script sent on.
        domain: &'a str,
        /// The message text, possibly empty.
        payload: &'a str,
    },
    /// `err,<domain>,<word>`: a client frame was not delivered.
    Err {
        /// The domain of the failed frame; empty when it had none
        /// (`err,,bad-frame`).
        domain: &'a str,
        /// Why.
        word: ErrorWord,
    },
    /// `uns,<domain>`: the last listener on a subscribed domain went away.
    Uns {
        /// The domain.
        domain: &'a str,
    },
}

impl ServerFrame<'static> {
    /// `err,,bad-frame`, the answer to any frame [`parse_client`] rejects.
    pub const BAD_FRAME: ServerFrame<'static> = ServerFrame::Err { domain: "", word: ErrorWord::BadFrame };
}

impl ServerFrame<'_> {
    /// The frame's text in pieces, so length, bytes and Display agree by
    /// construction.
    fn parts(&self) -> [&str; 4] {
        match *self {
            ServerFrame::Msg { domain, payload } => ["msg,", domain, ",", payload],
            ServerFrame::Err { domain, word } => ["err,", domain, ",", word.as_str()],
            ServerFrame::Uns { domain } => ["uns,", domain, "", ""],
        }
    }

    /// The length in bytes of [`encode_into`](Self::encode_into)'s output,
    /// for checking a frame against a size cap or buffer before encoding it.
    ///
    /// ```
    /// use lsl_websocket::envelope::ServerFrame;
    ///
    /// assert_eq!(ServerFrame::BAD_FRAME.encoded_len(), "err,,bad-frame".len());
    /// ```
    pub fn encoded_len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    /// Appends the frame's text to `out`.
    ///
    /// Fields are not validated (the region validates domains when scripts
    /// name them): a frame built with an invalid domain encodes to text that
    /// [`parse_server`] rejects.
    ///
    /// ```
    /// use lsl_websocket::envelope::ServerFrame;
    ///
    /// let mut out = Vec::new();
    /// ServerFrame::Msg { domain: "chat", payload: "a,b\nc" }.encode_into(&mut out);
    /// assert_eq!(out, b"msg,chat,a,b\nc");
    /// ```
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let parts = self.parts();
        out.reserve(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            out.extend_from_slice(part.as_bytes());
        }
    }
}

impl fmt::Display for ServerFrame<'_> {
    /// The frame's text, as [`encode_into`](Self::encode_into) writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts().iter().try_for_each(|p| f.write_str(p))
    }
}

/// Parses one text frame received from the region endpoint, for clients,
/// bridges and conformance tests.
///
/// ```
/// use lsl_websocket::envelope::{parse_server, ServerFrame};
///
/// assert_eq!(parse_server("err,,bad-frame"), Ok(ServerFrame::BAD_FRAME));
/// assert_eq!(parse_server("uns,chat"), Ok(ServerFrame::Uns { domain: "chat" }));
/// ```
pub fn parse_server(text: &str) -> Result<ServerFrame<'_>, EnvelopeError> {
    let Some((verb, rest)) = text.split_once(',') else {
        return Err(match text {
            "msg" | "err" | "uns" => EnvelopeError::MissingField("domain"),
            _ => EnvelopeError::UnknownVerb,
        });
    };
    match verb {
        "msg" => {
            let (domain, payload) = field(rest, "payload")?;
            validate_domain(domain)?;
            Ok(ServerFrame::Msg { domain, payload })
        }
        "err" => {
            let (domain, word) = field(rest, "error word")?;
            if !domain.is_empty() {
                validate_domain(domain)?;
            }
            let word = ErrorWord::from_wire(word).ok_or(EnvelopeError::UnknownErrorWord)?;
            Ok(ServerFrame::Err { domain, word })
        }
        "uns" => {
            validate_domain(rest)?;
            Ok(ServerFrame::Uns { domain: rest })
        }
        _ => Err(EnvelopeError::UnknownVerb),
    }
}
