//! Many regions on one port (SPEC §16): a simulator process, as
//! OpenSimulator runs them.
//!
//! ```no_run
//! # use lsl_websocket::adapter::Handler;
//! # use lsl_websocket::{Config, Event, Key, Region};
//! # struct Echo;
//! # impl Handler for Echo { fn on_event(&mut self, _: &mut Region, _: std::time::Instant, _: Key, _: Event) {} }
//! use lsl_websocket::adapter::sim::Simulator;
//! use lsl_websocket::adapter::tokio::ListenerOptions;
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let base = Config { authority: listener.local_addr()?.to_string(), ..Config::default() };
//! let mut sim = Simulator::new(vec![(listener, ListenerOptions::plain())], base)?;
//! let a = sim.add_region(Config::default(), Echo)?; // its own thread
//! let b = sim.add_region(Config::default(), Echo)?;
//! sim.remove_region(a); // closes a's sessions (1001) only
//! let _handlers = sim.shutdown();
//! # let _ = b;
//! # Ok::<(), lsl_websocket::adapter::Error>(())
//! ```
//!
//! # How it works
//!
//! - One **acceptor thread** (a current-thread tokio runtime) accepts on
//!   every listener and runs each connection's front stage (PROXY header,
//!   TLS handshake), then reads until the routing prefix names a region: a
//!   capability path names its region's tag ([`Config::route_tag`], which
//!   the simulator assigns, so every capability a region mints starts with
//!   it). The socket leaves the acceptor's runtime, and the region gets it
//!   with the bytes already read, which it takes as its first input.
//! - Each **region** runs on its own OS thread with its own current-thread
//!   runtime, exactly as [`Server`](super::tokio::Server) runs one: so
//!   regions scale across cores, and after the hand-over nothing is shared
//!   (no lock or shared counter on the message path).
//! - A request that names no capability (`GET /`, the demo page) goes to the
//!   **default region** (the first added, or [`set_default_region`](Simulator::set_default_region));
//!   a tag no region holds goes there too, whose tables do not know the
//!   capability: 404. With no default region the acceptor answers 404 itself.
//! - A region crossing inside the process is [`Region::object_changed_region`]
//!   in the source (its URLs are revoked, SPEC §4) and the script
//!   requesting new URLs in the target.
//!
//! Limits: TLS handshakes all run on the acceptor thread.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::front::{self, Arrival, ListenerOptions, Stream};
use super::tokio::{Control, Handle, Incoming, region_loop};
use super::{Error, Handler, OsEntropy};
use crate::config::Config;
use crate::region::Region;
use crate::route::Route;

/// Connections handed to one region and not yet taken; beyond this the acceptor waits.
const HANDOFF_QUEUE: usize = 256;

/// Which region thread takes which tag.
#[derive(Default)]
struct Routes {
    regions: HashMap<u16, mpsc::Sender<Incoming>>,
    default: Option<u16>,
}

impl Routes {
    fn pick(&self, route: Option<Route>) -> Option<&mpsc::Sender<Incoming>> {
        let tag = match route {
            Some(Route::Tag(tag)) => Some(tag),
            _ => None,
        };
        tag.and_then(|t| self.regions.get(&t)).or_else(|| self.regions.get(&self.default?))
    }
}

struct RegionThread<H> {
    handle: Handle<H>,
    thread: JoinHandle<H>,
}

/// Many regions behind one set of listeners, each region on its own thread.
///
/// Its methods are synchronous and must not be called from inside an async
/// context (removing a region waits for its thread).
pub struct Simulator<H> {
    routes: Arc<Mutex<Routes>>,
    regions: HashMap<u16, RegionThread<H>>,
    base: Config,
    addrs: Vec<SocketAddr>,
    next_tag: u16,
    stop: Option<oneshot::Sender<()>>,
    acceptor: Option<JoinHandle<()>>,
}

impl<H> std::fmt::Debug for Simulator<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addrs", &self.addrs)
            .field("regions", &self.regions.len())
            .finish_non_exhaustive()
    }
}

impl<H: Handler + Send + 'static> Simulator<H> {
    /// Starts accepting on `listeners` (bound `std` sockets) with no region yet.
    ///
    /// `base` gives what all regions share: [`authority`](Config::authority)
    /// and [`secure_authority`](Config::secure_authority) (the public names of
    /// the plain and TLS listeners), and the front stage's limits
    /// ([`handshake_timeout`](Config::handshake_timeout),
    /// [`max_handshakes`](Config::max_handshakes),
    /// [`trusted_proxies`](Config::trusted_proxies)).
    pub fn new(listeners: Vec<(std::net::TcpListener, ListenerOptions)>, base: Config) -> Result<Simulator<H>, Error> {
        OsEntropy::new()?;
        let mut addrs = Vec::new();
        for (listener, _) in &listeners {
            listener.set_nonblocking(true)?;
            addrs.push(listener.local_addr()?);
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let routes = Arc::new(Mutex::new(Routes::default()));
        let (stop, stopped) = oneshot::channel();
        let (config, table) = (Arc::new(base.clone()), routes.clone());
        let acceptor = std::thread::Builder::new().name("sim-acceptor".into()).spawn(move || {
            runtime.block_on(async move {
                let fronts = Arc::new(Semaphore::new(config.max_handshakes.max(1)));
                let mut tasks = Vec::new();
                for (listener, options) in listeners {
                    // Registers with this runtime; only fails without a reactor.
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { continue };
                    let accept = accept(listener, Arc::new(options), config.clone(), fronts.clone(), table.clone());
                    tasks.push(tokio::spawn(accept));
                }
                let _ = stopped.await;
                tasks.iter().for_each(tokio::task::JoinHandle::abort);
            });
        })?;
        Ok(Simulator {
            routes,
            regions: HashMap::new(),
            base,
            addrs,
            next_tag: first_tag(),
            stop: Some(stop),
            acceptor: Some(acceptor),
        })
    }

    /// Where the listeners are bound, in order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Starts a region on its own thread and returns its tag.
    ///
    /// `config`'s [`authority`](Config::authority),
    /// [`secure_authority`](Config::secure_authority) and
    /// [`route_tag`](Config::route_tag) are replaced by the simulator's. The
    /// first region added becomes the default one. [`Handler::on_start`]
    /// runs on the region's thread.
    pub fn add_region(&mut self, config: Config, handler: H) -> Result<u16, Error> {
        let tag = self.fresh_tag();
        let config = Config {
            authority: self.base.authority.clone(),
            secure_authority: self.base.secure_authority.clone(),
            route_tag: Some(tag),
            ..config
        };
        let entropy = OsEntropy::new()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (handoff, arrivals) = mpsc::channel(HANDOFF_QUEUE);
        let handle = Handle { tx: control_tx.clone() };
        let thread = std::thread::Builder::new().name(format!("region-{tag:04x}")).spawn(move || {
            let region = Region::new(config, Box::new(entropy), Instant::now());
            runtime.block_on(region_loop(region, handler, control_tx, control_rx, arrivals, Vec::new()))
        })?;
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.regions.insert(tag, handoff);
        routes.default.get_or_insert(tag);
        drop(routes);
        self.regions.insert(tag, RegionThread { handle, thread });
        Ok(tag)
    }

    /// A handle to run code on region `tag`'s thread ([`Handle::call`],
    /// [`Handle::blocking_query`]).
    pub fn handle(&self, tag: u16) -> Option<Handle<H>> {
        self.regions.get(&tag).map(|r| r.handle.clone())
    }

    /// The tags of the running regions, in no particular order.
    pub fn tags(&self) -> Vec<u16> {
        self.regions.keys().copied().collect()
    }

    /// Which region serves requests that name no capability (`None`: the
    /// acceptor answers them 404).
    pub fn set_default_region(&mut self, tag: Option<u16>) {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner).default =
            tag.filter(|t| self.regions.contains_key(t));
    }

    /// Stops region `tag`: no new connection reaches it, its URLs are revoked
    /// as at a region restart (its sessions get close 1001), and its thread
    /// ends within the shutdown grace. The other regions are untouched.
    /// Returns its handler; `None` for an unknown tag.
    pub fn remove_region(&mut self, tag: u16) -> Option<H> {
        let region = self.regions.remove(&tag)?;
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.regions.remove(&tag);
        if routes.default == Some(tag) {
            routes.default = None;
        }
        drop(routes);
        let _ = region.handle.shutdown();
        region.thread.join().ok()
    }

    /// Stops accepting, then removes every region; returns their handlers.
    pub fn shutdown(mut self) -> Vec<(u16, H)> {
        self.stop_acceptor();
        let tags = self.tags();
        tags.into_iter().filter_map(|tag| Some((tag, self.remove_region(tag)?))).collect()
    }

    /// A tag no running region holds (tags of removed regions are reused
    /// last: a stale capability then lands in a region that never knew it).
    fn fresh_tag(&mut self) -> u16 {
        while self.regions.contains_key(&self.next_tag) {
            self.next_tag = self.next_tag.wrapping_add(1);
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        tag
    }
}

impl<H> Simulator<H> {
    fn stop_acceptor(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl<H> Drop for Simulator<H> {
    /// Stops accepting and tells every region to shut down, without waiting for them.
    fn drop(&mut self) {
        self.stop_acceptor();
        for region in self.regions.values() {
            let _ = region.handle.tx.send(Control::Shutdown);
        }
    }
}

/// A random first tag, so tags differ between runs of a simulator.
fn first_tag() -> u16 {
    let mut bytes = [0u8; 2];
    // A fixed start is harmless: tags route, capabilities protect.
    let _ = getrandom::fill(&mut bytes);
    u16::from_be_bytes(bytes)
}

/// Accepts on one listener; every connection runs its front stage and goes to its region.
async fn accept(
    listener: tokio::net::TcpListener,
    options: Arc<ListenerOptions>,
    config: Arc<Config>,
    fronts: Arc<Semaphore>,
    routes: Arc<Mutex<Routes>>,
) {
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            // Out of descriptors and the like: retry shortly instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = fronts.clone().try_acquire_owned() else { continue };
        let (options, config, routes) = (options.clone(), config.clone(), routes.clone());
        tokio::spawn(async move {
            let Ok(arrival) = front::front(sock, peer, &options, &config, true).await else { return };
            drop(permit);
            hand_over(arrival, &routes).await;
        });
    }
}

/// Gives a routed connection to its region's thread, or answers 404 when no region takes it.
async fn hand_over(arrival: Arrival, routes: &Mutex<Routes>) {
    let Arrival { stream, remote, first, route } = arrival;
    let target = routes.lock().unwrap_or_else(PoisonError::into_inner).pick(route).cloned();
    let Some(target) = target else { return not_found(stream).await };
    // The socket leaves this runtime here and joins the region's there.
    let Ok(stream) = stream.detach() else { return };
    let _ = target.send(Incoming::Moved { stream, remote, first }).await;
}

async fn not_found(stream: Stream) {
    const ANSWER: &[u8] =
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n";
    let limit = super::LINGER;
    let _ = tokio::time::timeout(limit, async {
        match stream {
            Stream::Plain(mut sock) => {
                let _ = sock.write_all(ANSWER).await;
                let _ = sock.shutdown().await;
            }
            #[cfg(feature = "tls")]
            Stream::Tls(mut tls) => {
                let _ = tls.write_all(ANSWER).await;
                let _ = tls.shutdown().await;
            }
        }
    })
    .await;
}
