//! lsl-websocket (crate doc written with the core)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clep;
pub mod entropy;
pub mod envelope;
pub mod key;

pub use entropy::{Entropy, SeededEntropy};
pub use key::{Key, NULL_KEY};
