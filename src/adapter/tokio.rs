//! The tokio adapter: one task owns the [`Region`], one task per connection.
//!
//! ```no_run
//! use std::time::Instant;
//! use lsl_websocket::adapter::Handler;
//! use lsl_websocket::adapter::tokio::Server;
//! use lsl_websocket::{Config, Event, EventKind, Key, Region, ScriptInfo, WebsocketRequest};
//!
//! /// One script that asks for a URL and echoes every text back to its session.
//! struct Echo(ScriptInfo);
//!
//! impl Handler for Echo {
//!     fn on_start(&mut self, region: &mut Region, _now: Instant) {
//!         region.request_websocket(self.0, &WebsocketRequest::default());
//!     }
//!
//!     fn on_event(&mut self, region: &mut Region, _now: Instant, script: Key, event: Event) {
//!         match event.kind {
//!             EventKind::UrlGranted => println!("connect to {}", event.data),
//!             EventKind::Text => {
//!                 let _ = region.websocket_send(script, event.id, &event.data);
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//!
//! # async fn run(script: ScriptInfo) -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::bind("127.0.0.1:0", Config::default(), Echo(script)).await?;
//! let handle = server.handle();
//! // Lifecycle notices and script calls from elsewhere run on the region's task:
//! handle.call(move |_echo, region, now| region.script_reset(now, script.script))?;
//! let _echo = server.run().await; // until handle.shutdown()
//! # Ok(()) }
//! ```
//!
//! # How it moves bytes
//!
//! - **Reading.** Each connection task reads up to 16 KiB at a time into its
//!   thread's scratch buffer (an idle connection holds no buffer) and
//!   hands a copy of what came to the region task over one bounded channel, waiting
//!   when it is full. On [`Output::PauseReading`](crate::Output::PauseReading)
//!   the task stops reading; unread bytes stay in the kernel, the TCP window
//!   closes and the client is slowed, which is the back-pressure SPEC §5 asks
//!   for. At most one chunk read before the pause landed is held in the core.
//! - **Writing.** The region task takes a batch (up to 64 KiB) with
//!   [`Region::poll_transmit`] and writes it to the socket itself, without
//!   waiting; what the socket does not take at once goes to the connection
//!   task, which finishes it, and the next batch is taken only when that
//!   write completed. So an echo costs no hop to the connection task, and a
//!   connection holds at most one batch outside the core. Everything else
//!   stays in the core, where it counts against the outgoing buffer, so
//!   `WS_ERR_BUSY` means the client really is behind.
//! - **Time.** The region task sleeps until [`Region::poll_timeout`] and
//!   then feeds [`Input::Timeout`](crate::Input::Timeout).
//! - **Closing.** After [`Output::Close`](crate::Output::Close) the last bytes are
//!   written, the write side is shut down, and the task reads and discards
//!   for up to 2 s so the peer sees our close frame rather than a reset. A
//!   final write that does not finish within 10 s is abandoned.
//!
//! - **Listeners.** A server listens on one or more sockets, each plain or
//!   TLS (feature `tls`), each with or without a PROXY protocol header
//!   ([`ListenerOptions`]). A plain socket without PROXY goes to the region
//!   task as accepted; the others first pass their front stage (PROXY
//!   header, TLS handshake) in a task of their own, bounded by
//!   [`Config::handshake_timeout`](crate::Config::handshake_timeout), at most
//!   [`Config::max_handshakes`](crate::Config::max_handshakes) at once. A TLS
//!   connection's stream is owned by its connection task, so its batches
//!   always take that hop.
//!
//! Limits: a peer that half-closes (sends FIN) is treated as gone. Many
//! regions on one port: [`sim`](super::sim).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use super::front::ListenerOptions;
use super::front::{self, Arrival, Detached, Stream};
use super::link::{Report, Task};
use super::table::Table;
use super::{Command, Error, Handler, OsEntropy, Stopped};
use crate::config::Config;
use crate::region::Region;

/// Reports from connection tasks waiting for the region task; beyond this, readers wait.
const REPORT_QUEUE: usize = 1024;
/// Connections out of their front stage waiting for the region task; beyond this, acceptors wait.
const ARRIVAL_QUEUE: usize = 256;

pub(crate) enum Control<H> {
    Call(Command<H>),
    Shutdown,
}

/// A connection for the region task: accepted on its runtime, or handed over from another.
pub(crate) enum Incoming {
    Here(Arrival),
    /// From the acceptor thread of a [`Simulator`](super::sim::Simulator).
    Moved {
        stream: Detached,
        remote: IpAddr,
        first: Vec<u8>,
    },
}

/// A WebSocket server on tokio: listeners, a [`Region`] and the embedder's [`Handler`].
///
/// Build it with [`bind`](Server::bind), [`bind_all`](Server::bind_all) or
/// [`from_listener`](Server::from_listener), take [`handle`](Server::handle)s,
/// then await [`run`](Server::run). `run` spawns its tasks with
/// [`tokio::spawn`], so it must be awaited inside a tokio runtime; the region
/// itself lives in the future `run` returns.
pub struct Server<H> {
    listeners: Vec<(TcpListener, ListenerOptions)>,
    region: Region,
    handler: H,
    control_tx: mpsc::UnboundedSender<Control<H>>,
    control_rx: mpsc::UnboundedReceiver<Control<H>>,
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.listeners)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Binds `addr` (plain), and makes a region with `config` whose
    /// [`authority`](Config::authority) is replaced by the address actually
    /// bound (so port 0 works), and entropy from [`OsEntropy`].
    ///
    /// Behind a proxy or a public name, build the region yourself and use
    /// [`from_listener`](Server::from_listener).
    pub async fn bind(addr: impl ToSocketAddrs, config: Config, handler: H) -> Result<Server<H>, Error> {
        Server::bind_all([(addr, ListenerOptions::plain())], config, handler).await
    }

    /// Binds every listener, and makes a region with `config` whose
    /// [`authority`](Config::authority) is the first non-TLS listener's bound
    /// address and whose [`secure_authority`](Config::secure_authority) is the
    /// first TLS listener's (so `WS_SECURE` and `llRequestSecureURL` are
    /// granted exactly when there is one), and entropy from [`OsEntropy`].
    pub async fn bind_all<A: ToSocketAddrs>(
        listeners: impl IntoIterator<Item = (A, ListenerOptions)>,
        config: Config,
        handler: H,
    ) -> Result<Server<H>, Error> {
        let mut bound = Vec::new();
        let (mut authority, mut secure_authority) = (None, None);
        for (addr, options) in listeners {
            let listener = TcpListener::bind(addr).await?;
            let local = listener.local_addr()?.to_string();
            #[cfg(feature = "tls")]
            let secure = options.tls.is_some();
            #[cfg(not(feature = "tls"))]
            let secure = false;
            let slot = if secure { &mut secure_authority } else { &mut authority };
            slot.get_or_insert(local);
            bound.push((listener, options));
        }
        let config = Config {
            authority: authority.or_else(|| secure_authority.clone()).unwrap_or(config.authority),
            secure_authority,
            ..config
        };
        let region = Region::new(config, Box::new(OsEntropy::new()?), Instant::now());
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        Ok(Server { listeners: bound, region, handler, control_tx, control_rx })
    }

    /// A server on a plain listener and a region the embedder built.
    pub fn from_listener(listener: TcpListener, region: Region, handler: H) -> Server<H> {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        Server { listeners: vec![(listener, ListenerOptions::plain())], region, handler, control_tx, control_rx }
    }

    /// One more listener (e.g. a TLS one, or one behind a PROXY-speaking
    /// balancer). The region's authorities are the embedder's to set: a TLS
    /// listener wants [`Config::secure_authority`] to name it.
    pub fn add_listener(&mut self, listener: TcpListener, options: ListenerOptions) {
        self.listeners.push((listener, options));
    }

    /// The address the first listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self.listeners.first() {
            Some((listener, _)) => listener.local_addr(),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no listener")),
        }
    }

    /// The address every listener is bound to, in order.
    pub fn local_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        self.listeners.iter().map(|(l, _)| l.local_addr()).collect()
    }

    /// The region, before the server runs (e.g. to make script calls).
    pub fn region_mut(&mut self) -> &mut Region {
        &mut self.region
    }

    /// A handle for running code on the region's task and for shutting down.
    pub fn handle(&self) -> Handle<H> {
        Handle { tx: self.control_tx.clone() }
    }

    /// Runs the event loop until [`Handle::shutdown`], then returns the handler.
    ///
    /// Calls [`Handler::on_start`] first. Accept errors (e.g. out of file
    /// descriptors) do not end the loop; it retries after a short pause.
    pub async fn run(self) -> H {
        let Server { listeners, region, handler, control_tx, control_rx } = self;
        let (arrival_tx, arrivals) = mpsc::channel(ARRIVAL_QUEUE);
        let config = Arc::new(region.config().clone());
        let fronts = Arc::new(Semaphore::new(config.max_handshakes.max(1)));
        let acceptors = listeners
            .into_iter()
            .map(|(listener, options)| {
                tokio::spawn(accept_loop(listener, options, config.clone(), fronts.clone(), arrival_tx.clone()))
            })
            .collect();
        drop(arrival_tx);
        region_loop(region, handler, control_tx, control_rx, arrivals, acceptors).await
    }
}

/// Accepts on one listener until aborted; runs the front stage where the listener needs one.
async fn accept_loop(
    listener: TcpListener,
    options: ListenerOptions,
    config: Arc<Config>,
    fronts: Arc<Semaphore>,
    arrivals: mpsc::Sender<Incoming>,
) {
    let options = Arc::new(options);
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: retry shortly instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !options.needs_front() {
            let _ = sock.set_nodelay(true);
            let arrival = Arrival { stream: Stream::Plain(sock), remote: peer.ip(), first: Vec::new(), route: None };
            if arrivals.send(Incoming::Here(arrival)).await.is_err() {
                return;
            }
            continue;
        }
        // Over the cap on handshakes in flight the connection is dropped at once,
        // so a flood of silent TLS clients costs no task and no buffer.
        let Ok(permit) = fronts.clone().try_acquire_owned() else { continue };
        let (options, config, arrivals) = (options.clone(), config.clone(), arrivals.clone());
        tokio::spawn(async move {
            if let Ok(arrival) = front::front(sock, peer, &options, &config, false).await {
                drop(permit);
                let _ = arrivals.send(Incoming::Here(arrival)).await;
            }
        });
    }
}

/// The region's event loop: connections from `arrivals`, commands from
/// `control_rx`; on shutdown the `acceptors` are stopped. Returns the handler.
pub(crate) async fn region_loop<H: Handler>(
    mut region: Region,
    mut handler: H,
    control_tx: mpsc::UnboundedSender<Control<H>>,
    mut control_rx: mpsc::UnboundedReceiver<Control<H>>,
    mut arrivals: mpsc::Receiver<Incoming>,
    acceptors: Vec<JoinHandle<()>>,
) -> H {
    // Held so the control channel never reports closed while we run.
    let _keep = control_tx;
    let (report_tx, mut report_rx) = mpsc::channel(REPORT_QUEUE);
    let now = Instant::now();
    let mut conns: Table<Task> = Table::new(now);
    handler.on_start(&mut region, now);
    conns.drain(&mut region, &mut handler, now);
    loop {
        let wake = conns.wake(&region, None);
        let sleep = async move {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let accepting = !conns.shutting_down();
        tokio::select! {
            Some(report) = report_rx.recv() => {
                let now = Instant::now();
                apply(&mut conns, &mut region, now, report);
                // Take what else is waiting, so a burst costs one output phase.
                for _ in 0..REPORT_QUEUE {
                    let Ok(report) = report_rx.try_recv() else { break };
                    apply(&mut conns, &mut region, now, report);
                }
            }
            Some(control) = control_rx.recv() => match control {
                Control::Call(f) => f(&mut handler, &mut region, Instant::now()),
                Control::Shutdown => {
                    acceptors.iter().for_each(JoinHandle::abort);
                    conns.shutdown(&mut region, Instant::now());
                }
            },
            Some(incoming) = arrivals.recv(), if accepting => {
                let (stream, remote, first) = match incoming {
                    Incoming::Here(a) => (Ok(a.stream), a.remote, a.first),
                    Incoming::Moved { stream, remote, first } => (stream.attach(), remote, first),
                };
                // A socket this runtime cannot register is dropped (closing it).
                if let Ok(stream) = stream {
                    let conn = conns.next_id();
                    let task = Task::spawn(conn, stream, report_tx.clone());
                    conns.accepted(&mut region, conn, remote, task);
                    if !first.is_empty() {
                        conns.received(&mut region, Instant::now(), conn, &first);
                    }
                }
            },
            () = sleep => {}
        }
        if conns.turn(&mut region, &mut handler, Instant::now()) {
            break;
        }
    }
    acceptors.iter().for_each(JoinHandle::abort);
    conns.kill_all();
    handler
}

/// Applies one connection task's report.
fn apply(conns: &mut Table<Task>, region: &mut Region, now: Instant, report: Report) {
    match report {
        Report::Data(conn, data) => conns.received(region, now, conn, &data),
        Report::Gone(conn) => conns.gone(region, now, conn),
        Report::Written(conn) => conns.written(region, conn),
    }
}

/// Sends work to a running [`Server`]'s region task. Cheap to clone.
pub struct Handle<H> {
    pub(crate) tx: mpsc::UnboundedSender<Control<H>>,
}

super::handle_impls!(Handle);

impl<H: 'static> Handle<H> {
    /// Runs `f` on the region's task, between polls, with the handler, the
    /// region and the current time; its effects (sends, lifecycle notices)
    /// are drained right after. Fire and forget.
    pub fn call<F>(&self, f: F) -> Result<(), Stopped>
    where
        F: FnOnce(&mut H, &mut Region, Instant) + Send + 'static,
    {
        self.tx.send(Control::Call(Box::new(f))).map_err(|_| Stopped)
    }

    /// Like [`call`](Handle::call), and waits for `f`'s result.
    pub async fn query<R, F>(&self, f: F) -> Result<R, Stopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut H, &mut Region, Instant) -> R + Send + 'static,
    {
        self.ask(f)?.await.map_err(|_| Stopped)
    }

    /// [`query`](Handle::query) for threads outside the runtime.
    ///
    /// # Panics
    ///
    /// When called from inside an async context (tokio forbids blocking there).
    pub fn blocking_query<R, F>(&self, f: F) -> Result<R, Stopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut H, &mut Region, Instant) -> R + Send + 'static,
    {
        self.ask(f)?.blocking_recv().map_err(|_| Stopped)
    }

    fn ask<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, Stopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut H, &mut Region, Instant) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.call(move |h, region, now| {
            let _ = tx.send(f(h, region, now));
        })?;
        Ok(rx)
    }

    /// Shuts the server down: stops accepting, revokes every URL with cause
    /// `region restart` (SPEC §4: the region shuts down), so every session
    /// gets close 1001; waits up to 2 s for connections to finish, drops the
    /// rest, and [`Server::run`] returns.
    pub fn shutdown(&self) -> Result<(), Stopped> {
        self.tx.send(Control::<H>::Shutdown).map_err(|_| Stopped)
    }
}
