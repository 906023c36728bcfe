//! Shared end-to-end test support: a raw RFC 6455 client, a tungstenite
//! client, the targets under test (the `echo_server` example as a child
//! process, the tokio adapter, the std adapter), and the checks run against
//! each of them.
//!
//! Every socket has read and write timeouts, every wait is bounded, and
//! everything talks to 127.0.0.1 only.
#![allow(dead_code)] // each test binary uses a different part

pub mod adapter;
pub mod checks;
pub mod echo;
pub mod http;
pub mod process;
pub mod relay;
#[cfg(feature = "tls")]
pub mod tls;
pub mod webdriver;
pub mod wire;

use std::net::SocketAddr;
use std::time::Duration;

/// How long any single wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Serializes the load-heavy checks (hundreds of connections) within one test
/// binary, so that rate-sensitive ones are not starved by another's load.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running server with the echo scripts of the `echo_server` example.
pub trait Target: Send {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// The echo object's current URL.
    fn object_url(&self) -> String;
    /// The region endpoint URL the region echo script holds, if granted.
    fn region_url(&self) -> Option<String>;
    /// The echo object's current HTTP-in URL.
    fn http_url(&self) -> String;
    /// Applies a stdin command of the example (`reset`, `rez`, …, `restart`)
    /// and returns once the scripts hold their new URLs.
    fn command(&mut self, command: &str);
    /// Shuts down (the example's `quit`) and returns how long it took to stop.
    fn quit(&mut self) -> Duration;
}

/// Generates one `#[test]` per check in [`checks`] for a target made by `$start`.
#[macro_export]
macro_rules! conformance_tests {
    ($start:expr) => {
        $crate::conformance_tests!(@each $start;
            handshake_101, unknown_or_malformed_cap_404, not_get_405, bad_upgrade_400, version_426,
            plain_get_426, header_431, sessions_503, rate_429, text_echo, fragmented_echo,
            oversize_1009, binary_1003, invalid_utf8_1007, protocol_errors_1002, ping_pong,
            close_echo, lifecycle_reset, lifecycle_rez, lifecycle_region_change, lifecycle_owner_change,
            lifecycle_remove, lifecycle_restart, lifecycle_release, quit_closes_sessions,
            clients_200_x_100);
    };
    (@each $start:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let mut target = $start;
                $crate::e2e_support::checks::$check(&mut target);
            }
        )*
    };
}
