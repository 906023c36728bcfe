//! What a script sees: request options, events, send and close results.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::http::HttpMethod;
use crate::key::Key;

/// Who makes a script call: the script and the object and owner it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScriptInfo {
    /// The script's key.
    pub script: Key,
    /// The key of the object (prim) the script is in.
    pub object: Key,
    /// The key of the object's owner.
    pub owner: Key,
}

/// `WS_SCOPE`: who a URL's sessions belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// `WS_SCOPE_OBJECT`: the URL is the script's own; every session goes to it.
    #[default]
    Object,
    /// `WS_SCOPE_REGION`: the script listens on a domain of the shared region endpoint.
    Region,
}

/// The options list of `llRequestWebsocket`.
///
/// ```
/// use lsl_websocket::{Scope, WebsocketRequest};
/// let request = WebsocketRequest { max_message: Some(512), ..WebsocketRequest::default() };
/// assert_eq!(request.scope, Scope::Object);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebsocketRequest {
    /// `WS_SCOPE`.
    pub scope: Scope,
    /// `WS_SECURE`: a `wss://` URL.
    pub secure: bool,
    /// `WS_DOMAIN`: region scope only, the domain to listen on.
    pub domain: Option<String>,
    /// `WS_MAX_MESSAGE`: largest message in bytes, at most the region's cap.
    pub max_message: Option<usize>,
}

/// Why a URL request was denied; the `data` of a `WS_URL_DENIED` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The region or owner URL budget is spent.
    Budget,
    /// `WS_SECURE` was asked for and the region has no TLS endpoint.
    NoSecure,
    /// An option is invalid (bad domain, domain in object scope, message cap above the region's).
    BadOption,
    /// The script already holds its maximum of URLs.
    TooMany,
}

impl DenyReason {
    /// The reason word of SPEC §3: `budget`, `no-secure`, `bad-option`, `too-many`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Budget => "budget",
            DenyReason::NoSecure => "no-secure",
            DenyReason::BadOption => "bad-option",
            DenyReason::TooMany => "too-many",
        }
    }
}

/// The `kind` of a `websocket` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `WS_URL_GRANTED`: `id` is the request key, `data` the URL.
    UrlGranted,
    /// `WS_URL_DENIED`: `id` is the request key, `data` a [`DenyReason`] word.
    UrlDenied,
    /// `WS_OPEN`: `id` is the new session key, `data` the path info.
    Open,
    /// `WS_TEXT`: `id` is the session key, `data` the text.
    Text,
    /// `WS_CLOSE`: `id` is the session key, `data` is `"<code> <reason>"`.
    Close,
    /// LSL's `http_request(key id, string method, string body)` (SPEC §8):
    /// for a request, `id` is the request id and `data` the body (transcoded
    /// to UTF-8, cut to the limit); for `URL_REQUEST_GRANTED` /
    /// `URL_REQUEST_DENIED`, `id` is the request key and `data` the URL or
    /// the reason word. `domain` is `""`.
    Http(HttpMethod),
}

impl EventKind {
    /// The LSL constant name, e.g. `"WS_TEXT"`; for `http_request`, the
    /// method string (`"POST"`, `"URL_REQUEST_GRANTED"`, …).
    pub fn lsl_name(self) -> &'static str {
        match self {
            EventKind::UrlGranted => "WS_URL_GRANTED",
            EventKind::UrlDenied => "WS_URL_DENIED",
            EventKind::Open => "WS_OPEN",
            EventKind::Text => "WS_TEXT",
            EventKind::Close => "WS_CLOSE",
            EventKind::Http(method) => method.as_str(),
        }
    }
}

/// Immutable UTF-8 text that is either owned or shared between events.
///
/// A region-scope message to many listeners shares one buffer; an
/// object-scope message owns the buffer it was decoded into. Both deref to `&str`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Owned(String),
    Shared(Arc<str>),
}

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Owned(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Default for Text {
    fn default() -> Text {
        Text(Repr::Owned(String::new()))
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Repr::Owned(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Repr::Owned(s.to_string()))
    }
}

impl From<Arc<str>> for Text {
    fn from(s: Arc<str>) -> Text {
        Text(Repr::Shared(s))
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `websocket(key id, integer kind, string domain, string data)` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Request key (URL events) or session key (session events).
    pub id: Key,
    /// What happened.
    pub kind: EventKind,
    /// Region scope: the domain; object scope: `""`.
    pub domain: Text,
    /// The URL, deny reason, path info, text, or `"<code> <reason>"`.
    pub data: Text,
}

/// Why `llWebsocketSend` (or `llWebsocketBroadcast`) did not send.
///
/// [`SendError::code`] gives the LSL status integer; `WS_OK` is [`WS_OK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SendError {
    /// `WS_ERR_NO_SESSION`: unknown, closed, or not this script's session.
    #[error("no such session for this script")]
    NoSession,
    /// `WS_ERR_TOO_LARGE`: the text is over the URL's message cap.
    #[error("message larger than the URL's cap")]
    TooLarge,
    /// `WS_ERR_BUSY`: the client's outgoing buffer is full; try again later.
    #[error("the client's outgoing buffer is full")]
    Busy,
    /// `WS_ERR_BAD_DOMAIN`: the script does not listen on that domain.
    #[error("the script does not listen on that domain")]
    BadDomain,
}

/// LSL `WS_OK`.
pub const WS_OK: i32 = 0;

impl SendError {
    /// The LSL status integer: `WS_ERR_NO_SESSION` -1, `WS_ERR_TOO_LARGE` -2,
    /// `WS_ERR_BUSY` -3, `WS_ERR_BAD_DOMAIN` -4 (the SPEC names them; the
    /// numbers are this crate's choice).
    pub fn code(self) -> i32 {
        match self {
            SendError::NoSession => -1,
            SendError::TooLarge => -2,
            SendError::Busy => -3,
            SendError::BadDomain => -4,
        }
    }

    /// The LSL constant name, e.g. `"WS_ERR_BUSY"`.
    pub fn lsl_name(self) -> &'static str {
        match self {
            SendError::NoSession => "WS_ERR_NO_SESSION",
            SendError::TooLarge => "WS_ERR_TOO_LARGE",
            SendError::Busy => "WS_ERR_BUSY",
            SendError::BadDomain => "WS_ERR_BAD_DOMAIN",
        }
    }
}

/// Why `llWebsocketClose` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CloseError {
    /// Unknown, closed, or not this script's session.
    #[error("no such session for this script")]
    NoSession,
    /// The code is neither 1000 nor in 3000..=4999.
    #[error("close code {0} is not 1000 or 3000..=4999")]
    BadCode(u16),
    /// The reason is longer than 123 bytes.
    #[error("close reason of {0} bytes exceeds 123")]
    ReasonTooLong(usize),
}

impl CloseError {
    /// Checks a script's close code (1000 or 3000..=4999) and reason (at most 123 bytes).
    pub(crate) fn check(code: u16, reason: &str) -> Result<(), CloseError> {
        if code != 1000 && !(3000..=4999).contains(&code) {
            return Err(CloseError::BadCode(code));
        }
        if reason.len() > 123 {
            return Err(CloseError::ReasonTooLong(reason.len()));
        }
        Ok(())
    }
}

/// Why `llReleaseWebsocket` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReleaseError {
    /// The URL is not live, or not this script's.
    #[error("no such live URL for this script")]
    UnknownUrl,
    /// The close reason given is longer than 123 bytes.
    #[error("close reason is {0} bytes, more than 123")]
    ReasonTooLong(usize),
}
