//! A Sans-IO implementation of the proposed LSL WebSocket API: scripts in a
//! Second Life-style region request WebSocket URLs, browsers and servers
//! connect to them, and text flows both ways.
//!
//! A [`Region`] holds every URL, session and script queue of one region. It
//! never opens a socket, reads a clock or draws randomness: the embedder
//! feeds it bytes ([`Region::handle_input`]), time (every call takes an
//! `Instant`) and entropy ([`Entropy`]), and drains what it produces with
//! [`Region::poll_output`], [`Region::poll_transmit`], [`Region::poll_event`]
//! and [`Region::poll_timeout`]. Thin [adapters](crate::adapter) behind cargo
//! features drive it over real sockets.
//!
//! # A whole exchange, without I/O
//!
//! ```
//! use std::time::Instant;
//! use lsl_websocket::*;
//!
//! let now = Instant::now();
//! // Seeded entropy makes a run reproducible; adapters use the OS CSPRNG.
//! let mut region = Region::new(Config::default(), Box::new(SeededEntropy::new(1)), now);
//! let me = ScriptInfo { script: Key::from_bytes([1; 16]), object: Key::from_bytes([2; 16]), owner: Key::from_bytes([3; 16]) };
//!
//! // llRequestWebsocket([]) → websocket(request, WS_URL_GRANTED, "", url)
//! region.request_websocket(me, &WebsocketRequest::default());
//! let granted = region.poll_event(me.script).unwrap();
//! assert_eq!(granted.kind, EventKind::UrlGranted);
//! let path = granted.data.split_once("8787").unwrap().1.to_string();
//!
//! // A client connects and upgrades.
//! let conn = ConnectionId(1);
//! region.handle_input(now, Input::Accepted { conn, remote: [127, 0, 0, 1].into() }).unwrap();
//! let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
//! region.handle_input(now, Input::Received { conn, data: head.as_bytes() }).unwrap();
//! assert!(region.poll_transmit(conn).unwrap().starts_with(b"HTTP/1.1 101"));
//! let open = region.poll_event(me.script).unwrap();
//! assert_eq!(open.kind, EventKind::Open);
//!
//! // It sends "hi" (a masked text frame); the script answers.
//! let frame = [0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
//! region.handle_input(now, Input::Received { conn, data: &frame }).unwrap();
//! let text = region.poll_event(me.script).unwrap();
//! assert_eq!((text.kind, &*text.data), (EventKind::Text, "hi"));
//! region.websocket_send(me.script, text.id, "hello").unwrap();
//! assert_eq!(&region.poll_transmit(conn).unwrap()[..], b"\x81\x05hello");
//! ```
//!
//! # LSL to Rust
//!
//! | LSL (proposed) | Rust |
//! |---|---|
//! | `llRequestWebsocket(options)` | [`Region::request_websocket`] with a [`WebsocketRequest`] (`WS_SCOPE` → [`Scope`], `WS_SECURE`, `WS_DOMAIN`, `WS_MAX_MESSAGE`); answered by an [`Event`] of kind [`EventKind::UrlGranted`] or [`EventKind::UrlDenied`] ([`DenyReason`]) |
//! | `llReleaseWebsocket(url)` | [`Region::release_websocket`] → [`ReleaseError`] |
//! | `llWebsocketSend(session, text)` | [`Region::websocket_send`]: `Ok(())` is `WS_OK`, [`SendError::code`] the `WS_ERR_*` status |
//! | `llWebsocketBroadcast(domain, text)` | region scope (being added) |
//! | `llWebsocketClose(session, code, reason)` | [`Region::websocket_close`] → [`CloseError`] |
//! | `llGetWebsocketHeader(session, name)` | [`Region::websocket_header`] |
//! | `llGetFreeWebsockets()` | [`Region::free_websockets`] |
//! | `websocket(id, kind, domain, data)` event | [`Output::Events`], then [`Region::poll_event`] → [`Event`] (`kind`: [`EventKind`], [`EventKind::lsl_name`]) |
//! | script reset / recompile, deleted | [`Region::script_reset`], [`Region::script_removed`] |
//! | `on_rez`, `CHANGED_REGION`, `CHANGED_OWNER`, derez | [`Region::object_rezzed`], [`Region::object_changed_region`], [`Region::owner_changed`], [`Region::object_removed`] |
//! | region restart or shutdown | [`Region::region_restart`] |
//! | (embedder's log of revocations) | [`Output::Revoked`] with its [`Cause`] |
//!
//! # Adapters and cargo features
//!
//! | feature | module | what it is |
//! |---|---|---|
//! | `tokio` | [`adapter::tokio`](crate::adapter) | async; one task owns the region; thousands of connections |
//! | `std` | [`adapter::std`](crate::adapter) | blocking `std::net`; two threads per connection; tools, bridges, small regions |
//!
//! Both run the embedder's script logic through the `adapter::Handler`
//! trait and mint capabilities from the OS CSPRNG (`adapter::OsEntropy`).
//! Without features the crate is the core alone, with no I/O dependency.
//!
//! Examples: `echo_server` (a simulated region with two echo scripts, stdin
//! lifecycle commands and a demo page; feature `tokio`) and `stdio_bridge`
//! (one script's traffic as lines on stdin/stdout; feature `std`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "std", feature = "tokio"))]
pub mod adapter;
pub mod clep;
pub mod config;
pub mod entropy;
pub mod envelope;
mod frame;
pub mod handshake;
pub mod key;
pub mod lifecycle;
pub mod region;
pub mod script;
pub mod session;
pub mod url;

pub use config::Config;
pub use entropy::{Entropy, SeededEntropy};
pub use handshake::Status;
pub use key::{Key, NULL_KEY};
pub use lifecycle::Cause;
pub use region::{Input, InputError, Output, Region, ScriptInfo};
pub use script::{
    CloseError, DenyReason, Event, EventKind, ReleaseError, Scope, SendError, Text, WS_OK, WebsocketRequest,
};
pub use session::ConnectionId;
