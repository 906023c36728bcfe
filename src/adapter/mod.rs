//! Adapters: drive a [`Region`] over real TCP sockets.
//!
//! The core does no I/O; an adapter is the loop around it. It accepts
//! connections, feeds received bytes and the passing of time to
//! [`Region::handle_input`], writes what [`Region::poll_transmit`] yields when
//! a socket can take it, pauses and resumes reading when told to, and hands
//! script events to the embedder's [`Handler`]. It holds no protocol logic.
//!
//! | module | feature | shape |
//! |---|---|---|
//! | [`std`] | `std` | blocking `std::net`: the caller's thread owns the region, two threads per connection |
//! | [`tokio`] | `tokio` | one task owns the region, one task per connection; thousands of connections; plain, TLS and PROXY listeners |
//! | [`sim`] | `tokio` | many regions on one port, each on its own thread and runtime, routed by capability (SPEC §16) |
//! | `tls` | `tls` | [`TlsConfig`](tls::TlsConfig) for the tokio adapter's TLS listeners: rustls with ring, PEM through rustls-pki-types |
//! | [`mio`] | `mio` | one thread owns the region and every socket (epoll): no task or hop per message; the fast path for a thread per region |
//!
//! Both share the [`Handler`] trait (where script logic runs), the
//! [`OsEntropy`] source, and the same command model: a `Handle` sends closures
//! that run on the region's own thread or task, between polls, with
//! `&mut Handler`, `&mut Region` and the current time.
//!
//! Both drive one connection table (`table`, runtime-neutral and fed by
//! events): it hands a connection's bytes to its runtime one batch at a
//! time, flushes and closes, abandons a final write that takes over 10 s,
//! runs the shutdown, and reports every accepted connection to the core with
//! a fresh [`ConnectionId`] (never reused), so a late byte from a closed
//! socket can never reach a newer connection. Each adapter file holds only
//! its runtime's side of one connection (threads and channels, or a task and
//! a shared socket) and its event loop.

use ::std::time::Instant;

use crate::entropy::Entropy;
use crate::key::Key;
use crate::lifecycle::Cause;
use crate::region::Region;
use crate::script::Event;
use crate::session::ConnectionId;

#[cfg(feature = "tokio")]
mod front;
#[cfg(feature = "tokio")]
mod link;
#[cfg(feature = "mio")]
pub mod mio;
#[cfg(feature = "tokio")]
pub mod sim;
#[cfg(feature = "std")]
pub mod std;
mod table;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;

/// Entropy from the operating system's CSPRNG (`getrandom`), for regions
/// whose URLs face a network.
///
/// Capabilities are the only thing keeping a URL private, so they must be
/// unguessable: never give an adapter a seeded source outside tests.
#[derive(Debug, Clone, Copy)]
pub struct OsEntropy {
    _private: (),
}

/// The operating system's random source could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the OS random source is unavailable: {0}")]
pub struct EntropyUnavailable(getrandom::Error);

impl OsEntropy {
    /// Checks that the OS source works by drawing from it once.
    pub fn new() -> Result<OsEntropy, EntropyUnavailable> {
        let mut probe = [0u8; 16];
        getrandom::fill(&mut probe).map_err(EntropyUnavailable)?;
        Ok(OsEntropy { _private: () })
    }
}

impl Entropy for OsEntropy {
    /// # Panics
    ///
    /// If the OS source fails after [`OsEntropy::new`] succeeded. There is no
    /// safe way on: a predictable fallback would mint guessable capabilities.
    fn fill(&mut self, dest: &mut [u8]) {
        if let Err(e) = getrandom::fill(dest) {
            panic!("OS random source failed after start: {e}");
        }
    }
}

/// Why an adapter could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or querying the listening socket failed.
    #[error("socket: {0}")]
    Io(#[from] ::std::io::Error),
    /// No OS random source for capabilities.
    #[error(transparent)]
    Entropy(#[from] EntropyUnavailable),
}

/// The adapter's event loop stopped, so a command could not be delivered or answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the adapter's event loop has stopped")]
pub struct Stopped;

/// The embedder's script logic, called by an adapter on the thread or task
/// that owns the [`Region`].
///
/// Every method gets `&mut Region`, so it can make script calls
/// ([`Region::websocket_send`], [`Region::request_websocket`], …) and
/// lifecycle notices; the adapter drains whatever they produce afterwards.
/// Methods must not block: the whole region waits for them.
pub trait Handler {
    /// Called once, before the first connection is accepted: scripts that
    /// start with the region request their URLs here.
    fn on_start(&mut self, region: &mut Region, now: Instant) {
        let _ = (region, now);
    }

    /// One event for one script.
    fn on_event(&mut self, region: &mut Region, now: Instant, script: Key, event: Event);

    /// `script` has events waiting ([`Output::Events`](crate::Output::Events)). The default drains
    /// them all into [`on_event`](Handler::on_event).
    ///
    /// Override it to model a busy script: events left queued stay in the
    /// core, and once the script's queue is full the core pauses reading its
    /// sessions, which the adapter turns into TCP back-pressure. Drain them
    /// later with [`Region::poll_event`] from [`tick`](Handler::tick) or a command;
    /// no new `on_events` comes for `script` until one `poll_event` call was made.
    fn on_events(&mut self, region: &mut Region, now: Instant, script: Key) {
        while let Some(event) = region.poll_event(script) {
            self.on_event(region, now, script, event);
        }
    }

    /// A plain HTTP request for a path outside `/lslws/` (only with
    /// [`Config::serve_other_paths`](crate::Config::serve_other_paths)).
    /// Answer it with [`Region::respond`]; the default answers 404.
    fn on_http_request(&mut self, region: &mut Region, now: Instant, conn: ConnectionId, method: &str, target: &str) {
        let _ = (now, method, target);
        // The connection may already be gone; nothing to do then.
        let _ = region.respond(conn, 404, "text/plain; charset=utf-8", b"not found\n");
    }

    /// A URL was revoked, for the embedder's log. The default does nothing.
    fn on_revoked(&mut self, region: &mut Region, now: Instant, url: &str, cause: Cause) {
        let _ = (region, now, url, cause);
    }

    /// A script stopped listening on a region-scope domain, for the
    /// embedder's log. The default does nothing.
    fn on_listener_stopped(&mut self, region: &mut Region, now: Instant, script: Key, domain: &str, cause: Cause) {
        let _ = (region, now, script, domain, cause);
    }

    /// Called once per turn of the event loop, after its inputs (bytes,
    /// written notices, timeouts, commands) were applied and before outputs
    /// are drained. Retry sends that returned `WS_ERR_BUSY` here: a turn
    /// follows every completed socket write, which is when room appears.
    fn tick(&mut self, region: &mut Region, now: Instant) {
        let _ = (region, now);
    }
}

/// `Clone` and `Debug` for an adapter's `Handle<H>` (a channel sender in a
/// field `tx`); derives would demand `H: Clone + Debug` of the handler.
macro_rules! handle_impls {
    ($handle:ident) => {
        impl<H> Clone for $handle<H> {
            fn clone(&self) -> $handle<H> {
                $handle { tx: self.tx.clone() }
            }
        }

        impl<H> ::std::fmt::Debug for $handle<H> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("Handle").finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use handle_impls;

/// A closure run on the region's thread or task with the handler, the region and the time.
pub(crate) type Command<H> = Box<dyn FnOnce(&mut H, &mut Region, Instant) + Send>;

/// How long a closing connection may keep draining reads (so the peer sees
/// our last bytes instead of a reset) or finishing its last write.
pub(crate) const LINGER: ::std::time::Duration = ::std::time::Duration::from_secs(2);

/// How long a shutdown waits for sessions to answer their close frames.
pub(crate) const SHUTDOWN_GRACE: ::std::time::Duration = ::std::time::Duration::from_secs(2);
