//! # lsl-websocket
//!
//! The proposed LSL WebSocket API as a **Sans-IO core**: a script in a Second
//! Life-style grid simulator requests a WebSocket URL, browsers and servers
//! connect to it, and text messages flow both ways. The crate never opens a
//! socket, reads a clock or draws randomness itself; the embedder feeds it
//! bytes, time and entropy and drains bytes, connection commands and script
//! events. The semantics are those of the project's SPEC (sections cited below).
//!
//! ## Architecture
//!
//! One [`Region`] value holds all state of one simulator region: URLs,
//! sessions, HTTP-in requests, script event queues and timers. One port
//! serves both kinds of URL (SPEC §8): an upgrade on a `/lslws/` capability
//! becomes a WebSocket session, any request on a `/lslhttp/` capability an
//! `http_request` event, with one budget and one lifecycle. It has three kinds of input.
//! Transport events and the passing of time go through
//! [`Region::handle_input`] with an [`Input`] and the current `Instant`.
//! Script calls are plain methods that return their LSL result at once
//! ([`Region::websocket_send`] returns the `WS_*` status). Lifecycle
//! notifications ([`Region::script_reset`], [`Region::region_restart`], …) are
//! plain methods too. Outputs are pulled: [`Region::poll_output`] says *who*
//! needs attention ([`Output::Transmit`], [`Output::Close`],
//! [`Output::PauseReading`], [`Output::Events`], [`Output::Revoked`], …);
//! [`Region::poll_transmit`] hands out a connection's bytes when its socket can
//! take them; [`Region::poll_event`] hands out a script's events when the
//! script runs; [`Region::poll_timeout`] says when to come back with
//! [`Input::Timeout`]. The shape follows str0m and quinn-proto: one input
//! enum, one output enum, timers as a deadline.
//!
//! Back-pressure is explicit at both ends. Outgoing bytes stay in the core
//! until the embedder takes them, so a client that does not read fills its
//! buffer and `llWebsocketSend` returns [`SendError::Busy`]. Every event a
//! client causes (`WS_OPEN`, `WS_TEXT`, `WS_CLOSE`) counts against its
//! script's queue: when it is full, the connection is paused
//! ([`Output::PauseReading`]) and its input held until the script drains.
//! A region-scope message waits so for at most [`Config::busy_grace`] before
//! it is answered `err,<domain>,busy`. Nothing is dropped silently.
//!
//! ### Inside the core
//!
//! [`Region`] is a thin coordinator in the manner of str0m's `Rtc`: each
//! part owns its state and answers small questions, and the coordinator
//! routes an input to the part it concerns, lends parts to each other as
//! arguments, and turns what they decide into [`Output`]s. The parts, each a
//! module named for its SPEC concept:
//!
//! | part | owns |
//! |---|---|
//! | `urls` | capability URLs: grants and their checks, the budget, the region endpoint's capability (§2–§4) |
//! | `conns` | connections by kind (request head, WebSocket session, plain HTTP, closing), the embedder's ids and session keys mapped to dense indices, the bytes held each way, the handshake cap (§5) |
//! | [`session`] | one WebSocket session: its route, frame decoder, readable headers, idle and pause state |
//! | `queues` | script event queues, the lines of connections waiting for room, the busy-grace stall mark (§5) |
//! | `routing` | region scope: domains to listeners and subscribers, each client's contacts (§6) |
//! | `inflight` | HTTP-in requests in flight: by id, per script (the 64 cap), their readable headers, and the ids that ended (§8) |
//! | `rate` | the handshake rate limit, keyed from the region's entropy (§5) |
//! | `trust` | trusted proxies ([`IpNet`]) and the rightmost untrusted hop of the forwarded header: whose address is the client's (§15) |
//! | `timers` | one heap of per-connection deadlines, folded into [`Region::poll_timeout`] |
//! | `index` | the generational index types the parts name each other's entries by |
//!
//! The coordinator's own impl is split by API area under `region/`: transport
//! input and polling, connection input (heads, frames, pause and resume),
//! script calls, lifecycle and revocation, the region-scope envelope, and
//! HTTP-in (its calls, request bodies, answers and timeouts). A
//! connection's kind is decided once its first bytes are read: a session
//! (a WebSocket handshake; a line client, whose first byte is `/`, SPEC §13;
//! or a `GET` asking for `text/event-stream`, SPEC §14), an HTTP-in request
//! (its own kind, [`http`]), a `POST` to an event stream's send URL, or a
//! plain request for the embedder. A session carries its transport (RFC
//! 6455 frames, lines, or server-sent events: `transport`, `line`, `sse`)
//! and otherwise behaves the same to the script, which can tell only through
//! `llGetWebsocketHeader(session, "x-transport")` (`websocket`, `lines`,
//! `sse`). An event-stream session outlives a dropped connection for one
//! idle interval, so a reconnect with `Last-Event-ID` resumes it: its
//! connection entry stays, detached, with no embedder id, and a reconnect
//! takes it over. An HTTP-in connection takes one
//! request at a time, so pipelined requests are answered in order; the bytes
//! behind the current one wait (bounded, then reading pauses), and of a body
//! at most the limit and one split character is ever held (twice the limit
//! for charsets such as UTF-16 that need two bytes per character). Inside the core, connections, scripts and URL grants
//! are addressed by generational indices (`slotmap`): one hash lookup per
//! input (the embedder's [`ConnectionId`], a script's [`Key`]), then indices,
//! and a stale index can never reach a newer occupant of its slot.
//!
//! The wire-level modules: [`handshake`] (WebSocket request heads, via `httparse`),
//! [`http`] (HTTP-in heads via `httparse`, `Content-Length` and chunked
//! bodies, charset transcoding via `encoding_rs`, responses),
//! `frame` (client frames via tungstenite's `FrameHeader`, caps checked from
//! the header before any payload is held, UTF-8 validated across fragments),
//! [`envelope`] (§6 frames), [`clep`] (the CLEP channel hash), [`url`],
//! [`proxy`] (the PROXY protocol v1/v2 header an adapter reads before
//! anything else on a listener that expects it, §15) and [`route`] (the
//! region tag a router reads from a request line when many regions share a
//! port, §16: a region with [`Config::route_tag`] mints every capability
//! with it, so routing needs no shared table); and
//! [`script`] (what a script sees: events, send and close results),
//! [`lifecycle`] (revocation causes), [`key`], [`entropy`] and [`config`]. An
//! idle session holds no buffers: partial frames and queued bytes are
//! allocated only while pending.
//!
//! Randomness comes from the [`Entropy`] passed to [`Region::new`]: a
//! [`SeededEntropy`] makes a run reproducible (same inputs, same URLs, keys
//! and bytes); embedders on the internet pass an OS CSPRNG. Maps use
//! foldhash with a fixed seed where the core or the embedder chose the keys,
//! and a seed drawn from the [`Entropy`] where the network does (remote
//! addresses), so no hidden randomness enters and no chosen flood collides.

//! ## LSL to Rust
//!
//! | LSL (proposed) | Rust |
//! |---|---|
//! | `llRequestWebsocket(list options)` | [`Region::request_websocket`] with [`ScriptInfo`] and [`WebsocketRequest`]; answer as [`Event`] of kind [`EventKind::UrlGranted`] / [`EventKind::UrlDenied`] ([`DenyReason`]) |
//! | `WS_SCOPE`, `WS_SECURE`, `WS_DOMAIN`, `WS_MAX_MESSAGE` | [`WebsocketRequest::scope`] ([`Scope`]), [`secure`](WebsocketRequest::secure), [`domain`](WebsocketRequest::domain), [`max_message`](WebsocketRequest::max_message) |
//! | `llReleaseWebsocket(string url)` | [`Region::release_websocket`]; one region domain: [`Region::release_domain`]; by the embedder, naming its own cause: [`Region::release_websocket_with_reason`] |
//! | `llWebsocketSend(key session, string text)` | [`Region::websocket_send`] → `Result<(), SendError>` |
//! | `llWebsocketBroadcast(string domain, string text)` | [`Region::websocket_broadcast`] |
//! | `llWebsocketClose(key session, integer code, string reason)` | [`Region::websocket_close`] → `Result<(), CloseError>` |
//! | `llGetWebsocketHeader(key session, string name)` | [`Region::websocket_header`] |
//! | `llGetFreeWebsockets()` | [`Region::free_websockets`] |
//! | `websocket(key id, integer kind, string domain, string data)` | [`Event`] from [`Region::poll_event`] |
//! | `WS_URL_GRANTED`, `WS_URL_DENIED`, `WS_OPEN`, `WS_TEXT`, `WS_CLOSE` | [`EventKind`] |
//! | `WS_OK`, `WS_ERR_NO_SESSION`, `WS_ERR_TOO_LARGE`, `WS_ERR_BUSY`, `WS_ERR_BAD_DOMAIN` | [`WS_OK`], [`SendError`] ([`SendError::code`]) |
//! | script reset / recompiled / deleted | [`Region::script_reset`], [`Region::script_removed`] |
//! | `on_rez` | [`Region::object_rezzed`] |
//! | `changed(CHANGED_REGION)` | [`Region::object_changed_region`] |
//! | `changed(CHANGED_OWNER)` | [`Region::owner_changed`] |
//! | derez, delete, return | [`Region::object_removed`] |
//! | region restart (`CHANGED_REGION_START`) | [`Region::region_restart`] |
//! | `llRequestURL()` | [`Region::request_url`] → request key; answer as [`Event`] of kind [`EventKind::Http`] with [`HttpMethod::UrlRequestGranted`] (data: the URL) / [`HttpMethod::UrlRequestDenied`] (data: a [`DenyReason`] word) |
//! | `llRequestSecureURL()` | [`Region::request_secure_url`] (denied `no-secure` without [`Config::secure_authority`]) |
//! | `llReleaseURL(string url)` | [`Region::release_url`] → `Result<(), ReleaseError>` |
//! | `http_request(key id, string method, string body)` | [`Event`] of kind [`EventKind::Http`]`(`[`HttpMethod`]`)`: `id` the request id, `data` the body (UTF-8, at most [`Config::max_body`]); [`HttpMethod::as_str`] is LSL's `method` |
//! | `URL_REQUEST_GRANTED`, `URL_REQUEST_DENIED` | [`HttpMethod::UrlRequestGranted`], [`HttpMethod::UrlRequestDenied`] |
//! | `llHTTPResponse(key id, integer status, string body)` | [`Region::http_response`] → `Result<(), HttpError>` |
//! | `llGetHTTPHeader(key id, string name)` | [`Region::http_header`] |
//! | `llSetContentType(key id, integer type)` | [`Region::set_content_type`] with [`ContentType`] ([`ContentType::from_lsl`]) |
//! | `CONTENT_TYPE_TEXT`, `_HTML`, `_XML`, `_XHTML`, `_ATOM`, `_JSON`, `_LLSD`, `_FORM`, `_RSS` | [`ContentType`] variants (HTML served as `text/html` only with [`Config::allow_html`]) |
//! | `llGetFreeURLs()` | [`Region::free_urls`] (one budget with WebSocket URLs) |
//! | `key`, `NULL_KEY` | [`Key`], [`NULL_KEY`] |
//! | CLEP `(integer)("0x" + llGetSubString(llSHA256String(d), -8, -1))` | [`clep::channel`] |
//!
//! ## Adapters and cargo features
//!
//! Without features the crate is the core alone, with no I/O dependency.
//! Thin [adapters](crate::adapter) drive a [`Region`] over real TCP:
//!
//! | feature | module | what it is |
//! |---|---|---|
//! | `tokio` | `adapter::tokio` | async; one task owns the region, one task per connection; thousands of connections; plain or PROXY-protocol listeners |
//! | `tokio` | `adapter::sim` | many regions on one port, each on its own thread, routed by capability (SPEC §16) |
//! | `tls` | `adapter::tls` | TLS listeners for both (`wss://`, `https://`): rustls with the ring provider |
//! | `std` | `adapter::std` | blocking `std::net`; two threads per connection; tools, bridges, small regions |
//!
//! Both run the embedder's script logic through the `adapter::Handler`
//! trait, take script calls from elsewhere through a `Handle`, and mint
//! capabilities from the OS CSPRNG (`adapter::OsEntropy`). Examples:
//! `echo_server` (a simulated region with an object-scope and a region-scope
//! echo script, stdin lifecycle commands and a demo page; feature `tokio`)
//! and `stdio_bridge` (one script's traffic as lines on stdin/stdout;
//! feature `std`).
//!
//! ## A whole session, no sockets
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lsl_websocket::*;
//!
//! let t0 = Instant::now();
//! let mut region = Region::new(Config::default(), Box::new(SeededEntropy::new(7)), t0);
//! let me = ScriptInfo {
//!     script: "00000000-0000-4000-8000-000000000001".parse().unwrap(),
//!     object: "00000000-0000-4000-8000-000000000002".parse().unwrap(),
//!     owner: "00000000-0000-4000-8000-000000000003".parse().unwrap(),
//! };
//!
//! // llRequestWebsocket([]) → WS_URL_GRANTED with the URL.
//! region.request_websocket(me, &WebsocketRequest::default());
//! let granted = region.poll_event(me.script).unwrap();
//! assert_eq!(granted.kind, EventKind::UrlGranted);
//! let path = granted.data.split_once("8787").unwrap().1.to_string();
//!
//! // A client connects and sends its handshake.
//! let conn = ConnectionId(1);
//! let remote = "192.0.2.1".parse().unwrap();
//! region.handle_input(t0, Input::Accepted { conn, remote }).unwrap();
//! let head = format!(
//!     "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
//! );
//! region.handle_input(t0, Input::Received { conn, data: head.as_bytes() }).unwrap();
//!
//! // 101 out, and the script sees WS_OPEN.
//! let response = region.poll_transmit(conn).unwrap();
//! assert!(response.starts_with(b"HTTP/1.1 101"));
//! let open = region.poll_event(me.script).unwrap();
//! assert_eq!(open.kind, EventKind::Open);
//! let session = open.id;
//!
//! // A masked text frame "hi" in → WS_TEXT.
//! let mask = [1, 2, 3, 4];
//! let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ mask[0], b'i' ^ mask[1]];
//! region.handle_input(t0 + Duration::from_millis(5), Input::Received { conn, data: &frame }).unwrap();
//! let text = region.poll_event(me.script).unwrap();
//! assert_eq!((text.kind, text.data.as_str()), (EventKind::Text, "hi"));
//!
//! // llWebsocketSend → an unmasked text frame out.
//! assert_eq!(region.websocket_send(me.script, session, "hello"), Ok(()));
//! assert_eq!(&region.poll_transmit(conn).unwrap()[..], b"\x81\x05hello");
//!
//! // The embedder is told what to do, in order.
//! while let Some(output) = region.poll_output() {
//!     match output {
//!         Output::Transmit(c) => assert_eq!(c, conn),
//!         Output::Events(script) => assert_eq!(script, me.script),
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! assert!(region.poll_timeout().is_some(), "the idle-ping timer runs");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "std", feature = "tokio"))]
pub mod adapter;
pub mod clep;
pub mod config;
mod conns;
pub mod entropy;
pub mod envelope;
mod frame;
pub mod handshake;
mod hash;
pub mod http;
mod index;
mod inflight;
pub mod key;
pub mod lifecycle;
mod line;
pub mod proxy;
mod queues;
mod rate;
pub mod region;
pub mod route;
mod routing;
pub mod script;
pub mod session;
mod sse;
mod timers;
mod transport;
mod trust;
pub mod url;
mod urls;

pub use config::Config;
pub use entropy::{Entropy, SeededEntropy};
pub use handshake::Status;
pub use http::{ContentType, HttpError, HttpMethod};
pub use key::{Key, NULL_KEY};
pub use lifecycle::Cause;
pub use region::{Input, InputError, Output, Region, ScriptInfo};
pub use script::{
    CloseError, DenyReason, Event, EventKind, ReleaseError, Scope, SendError, Text, WS_OK, WebsocketRequest,
};
pub use session::ConnectionId;
pub use trust::{ForwardedHeader, IpNet, ParseIpNetError};
