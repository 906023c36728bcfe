//! LSL HTTP-in (SPEC §8): what a script sees of it, and the wire parts.
//!
//! HTTP-in URLs (`http://{authority}/lslhttp/{cap}/`) live on the same port,
//! budget and lifecycle as WebSocket URLs. A request on one becomes an
//! `http_request` event ([`EventKind::Http`](crate::EventKind::Http)) with a
//! request id; the script answers it with
//! [`Region::http_response`](crate::Region::http_response). The wire parts:
//! `head` (the request head, via `httparse`), `body` (`Content-Length` and
//! chunked bodies, of which at most the limit is ever held), `charset`
//! (transcoding to UTF-8) and `response`.

pub(crate) mod body;
pub(crate) mod charset;
pub(crate) mod conn;
pub(crate) mod head;
pub(crate) mod readable;
pub(crate) mod response;

/// The `method` of an `http_request` event: a request's method, or
/// `URL_REQUEST_GRANTED` / `URL_REQUEST_DENIED` for the answer to
/// `llRequestURL` / `llRequestSecureURL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// `URL_REQUEST_GRANTED`: `id` is the request key, `data` the URL (with its trailing `/`).
    UrlRequestGranted,
    /// `URL_REQUEST_DENIED`: `id` is the request key, `data` a [`DenyReason`](crate::DenyReason) word.
    UrlRequestDenied,
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

impl HttpMethod {
    /// The string LSL passes as `method`: `"GET"`, …, `"URL_REQUEST_GRANTED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::UrlRequestGranted => "URL_REQUEST_GRANTED",
            HttpMethod::UrlRequestDenied => "URL_REQUEST_DENIED",
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// A request method HTTP-in serves (SPEC §8: any other is answered 405).
    pub(crate) fn of_request(method: &str) -> Option<HttpMethod> {
        match method {
            "GET" => Some(HttpMethod::Get),
            "POST" => Some(HttpMethod::Post),
            "PUT" => Some(HttpMethod::Put),
            "DELETE" => Some(HttpMethod::Delete),
            _ => None,
        }
    }
}

/// `llSetContentType`: the `Content-Type` of a response.
///
/// Every type is served with `; charset=utf-8`. [`ContentType::Html`] is
/// served as `text/html` only when [`Config::allow_html`](crate::Config::allow_html)
/// says so (Second Life allows it only to the owner's own viewer, which a core
/// cannot see); otherwise as `text/plain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContentType {
    /// `CONTENT_TYPE_TEXT` (0): `text/plain`, the default.
    #[default]
    Text,
    /// `CONTENT_TYPE_HTML` (1): `text/html`, behind the embedder's policy.
    Html,
    /// `CONTENT_TYPE_XML` (2): `application/xml`.
    Xml,
    /// `CONTENT_TYPE_XHTML` (3): `application/xhtml+xml`.
    Xhtml,
    /// `CONTENT_TYPE_ATOM` (4): `application/atom+xml`.
    Atom,
    /// `CONTENT_TYPE_JSON` (5): `application/json`.
    Json,
    /// `CONTENT_TYPE_LLSD` (6): `application/llsd+xml`.
    Llsd,
    /// `CONTENT_TYPE_FORM` (7): `application/x-www-form-urlencoded`.
    Form,
    /// `CONTENT_TYPE_RSS` (8): `application/rss+xml`.
    Rss,
}

impl ContentType {
    /// Every type, in the order of their LSL values.
    pub const ALL: [ContentType; 9] = [
        ContentType::Text,
        ContentType::Html,
        ContentType::Xml,
        ContentType::Xhtml,
        ContentType::Atom,
        ContentType::Json,
        ContentType::Llsd,
        ContentType::Form,
        ContentType::Rss,
    ];

    /// The type of an LSL `CONTENT_TYPE_*` integer; `None` for any other value.
    pub fn from_lsl(value: i32) -> Option<ContentType> {
        usize::try_from(value).ok().and_then(|i| ContentType::ALL.get(i).copied())
    }

    /// The LSL integer value (`CONTENT_TYPE_TEXT` is 0, …, `CONTENT_TYPE_RSS` 8).
    pub fn lsl_value(self) -> i32 {
        ContentType::ALL.iter().position(|&t| t == self).map_or(0, |i| i as i32)
    }

    /// The LSL constant name, e.g. `"CONTENT_TYPE_JSON"`.
    pub fn lsl_name(self) -> &'static str {
        match self {
            ContentType::Text => "CONTENT_TYPE_TEXT",
            ContentType::Html => "CONTENT_TYPE_HTML",
            ContentType::Xml => "CONTENT_TYPE_XML",
            ContentType::Xhtml => "CONTENT_TYPE_XHTML",
            ContentType::Atom => "CONTENT_TYPE_ATOM",
            ContentType::Json => "CONTENT_TYPE_JSON",
            ContentType::Llsd => "CONTENT_TYPE_LLSD",
            ContentType::Form => "CONTENT_TYPE_FORM",
            ContentType::Rss => "CONTENT_TYPE_RSS",
        }
    }

    /// The `Content-Type` header value served, given whether HTML is allowed.
    pub fn header_value(self, allow_html: bool) -> &'static str {
        match self {
            ContentType::Html if allow_html => "text/html; charset=utf-8",
            ContentType::Text | ContentType::Html => "text/plain; charset=utf-8",
            ContentType::Xml => "application/xml; charset=utf-8",
            ContentType::Xhtml => "application/xhtml+xml; charset=utf-8",
            ContentType::Atom => "application/atom+xml; charset=utf-8",
            ContentType::Json => "application/json; charset=utf-8",
            ContentType::Llsd => "application/llsd+xml; charset=utf-8",
            ContentType::Form => "application/x-www-form-urlencoded; charset=utf-8",
            ContentType::Rss => "application/rss+xml; charset=utf-8",
        }
    }
}

/// Why `llHTTPResponse`, `llSetContentType` or `llReleaseURL` did nothing
/// for a request id or URL.
///
/// The core remembers the ids of the most recent ended requests (4,096), so
/// an answer that comes too late says why; an older or never-issued id is
/// [`UnknownRequest`](HttpError::UnknownRequest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum HttpError {
    /// No request has this id (never issued, or ended long ago).
    #[error("no such HTTP request")]
    UnknownRequest,
    /// The request belongs to another script.
    #[error("the HTTP request belongs to another script")]
    NotYours,
    /// The request was already answered.
    #[error("the HTTP request was already answered")]
    AlreadyAnswered,
    /// The request timed out and was answered with the timeout status.
    #[error("the HTTP request timed out")]
    Expired,
    /// The client disconnected before the answer.
    #[error("the client of the HTTP request is gone")]
    ClientGone,
    /// The request's URL was revoked; the request was answered 503.
    #[error("the URL of the HTTP request was revoked")]
    Revoked,
}
