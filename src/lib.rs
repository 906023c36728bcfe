//! lsl-websocket (crate doc written with the core)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clep;
pub mod config;
pub mod entropy;
pub mod envelope;
mod frame;
pub mod handshake;
pub mod key;
pub mod lifecycle;
pub mod region;
mod routing;
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
