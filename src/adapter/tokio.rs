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
//! Limits: a peer that half-closes (sends FIN) is treated as gone; TLS is
//! not terminated here (put a TLS proxy in front and set
//! [`Config::secure_authority`](crate::Config::secure_authority)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::table::{self, Table};
use super::{Command, Error, Handler, LINGER, OsEntropy, Stopped};
use crate::config::Config;
use crate::region::Region;
use crate::session::ConnectionId;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
thread_local! {
    /// Where connection tasks on this thread read into (one read at a time per thread).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(READ_CHUNK));
}

/// Reports from connection tasks waiting for the region task; beyond this, readers wait.
const REPORT_QUEUE: usize = 1024;

enum Control<H> {
    Call(Command<H>),
    Shutdown,
}

/// What a connection task tells the region task.
enum Report {
    Data(ConnectionId, Vec<u8>),
    /// The peer closed, or reading or writing failed.
    Gone(ConnectionId),
    Written(ConnectionId),
}

/// What the region task and one connection task share: the socket, and the
/// region task's commands in a slot rather than a channel (a tokio channel
/// costs over a kilobyte per idle connection; the slot needs a few bytes).
struct Shared {
    stream: TcpStream,
    cmds: std::sync::Mutex<Cmds>,
    /// Wakes the connection task after `cmds` changed.
    wake: Notify,
}

/// The region task's commands to a connection task.
#[derive(Default)]
struct Cmds {
    /// A batch the socket did not take at once; at most one at a time.
    write: Option<Bytes>,
    paused: bool,
    /// Everything is written: shut down and linger.
    close: bool,
}

impl Shared {
    fn new(stream: TcpStream) -> Shared {
        Shared { stream, cmds: std::sync::Mutex::default(), wake: Notify::new() }
    }

    /// Changes the commands and wakes the connection task (a wake-up before it
    /// waits is kept, so none is lost).
    fn command(&self, f: impl FnOnce(&mut Cmds)) {
        // The lock guards plain data, so a poisoned one is still usable.
        f(&mut self.cmds.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.wake.notify_one();
    }
}

/// A WebSocket server on tokio: a listener, a [`Region`] and the embedder's [`Handler`].
///
/// Build it with [`bind`](Server::bind) or [`from_listener`](Server::from_listener),
/// take [`handle`](Server::handle)s, then await [`run`](Server::run). `run`
/// spawns one task per connection with [`tokio::spawn`], so it must be
/// awaited inside a tokio runtime; the region itself lives in the future
/// `run` returns.
pub struct Server<H> {
    listener: TcpListener,
    region: Region,
    handler: H,
    control_tx: mpsc::UnboundedSender<Control<H>>,
    control_rx: mpsc::UnboundedReceiver<Control<H>>,
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("listener", &self.listener).field("region", &self.region).finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Binds `addr`, and makes a region with `config` whose
    /// [`authority`](Config::authority) is replaced by the address actually
    /// bound (so port 0 works), and entropy from [`OsEntropy`].
    ///
    /// Behind a proxy or a public name, build the region yourself and use
    /// [`from_listener`](Server::from_listener).
    pub async fn bind(addr: impl ToSocketAddrs, config: Config, handler: H) -> Result<Server<H>, Error> {
        let listener = TcpListener::bind(addr).await?;
        let config = Config { authority: listener.local_addr()?.to_string(), ..config };
        let region = Region::new(config, Box::new(OsEntropy::new()?), Instant::now());
        Ok(Server::from_listener(listener, region, handler))
    }

    /// A server on a listener and a region the embedder built.
    pub fn from_listener(listener: TcpListener, region: Region, handler: H) -> Server<H> {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        Server { listener, region, handler, control_tx, control_rx }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
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
        let Server { listener, mut region, mut handler, control_tx, mut control_rx } = self;
        // Held so the control channel never reports closed while we run.
        let _keep = control_tx;
        let (report_tx, mut report_rx) = mpsc::channel(REPORT_QUEUE);
        let now = Instant::now();
        let mut conns: Table<Task> = Table::new(now);
        let mut accept_pause: Option<Instant> = None;
        handler.on_start(&mut region, now);
        conns.drain(&mut region, &mut handler, now);
        loop {
            let wake = conns.wake(&region, accept_pause);
            let sleep = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let accepting = !conns.shutting_down() && accept_pause.is_none();
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
                        conns.shutdown(&mut region, Instant::now());
                    }
                },
                accepted = listener.accept(), if accepting => match accepted {
                    Ok((stream, remote)) => {
                        let conn = conns.next_id();
                        let _ = stream.set_nodelay(true);
                        let shared = Arc::new(Shared::new(stream));
                        let task = tokio::spawn(connection(conn, shared.clone(), report_tx.clone()));
                        conns.accepted(&mut region, conn, remote.ip(), Task { shared, task });
                    }
                    // Out of descriptors and the like: retry shortly instead of spinning.
                    Err(_) => accept_pause = Some(Instant::now() + Duration::from_millis(50)),
                },
                () = sleep => {}
            }
            let now = Instant::now();
            if accept_pause.is_some_and(|at| at <= now) {
                accept_pause = None;
            }
            if conns.turn(&mut region, &mut handler, now) {
                break;
            }
        }
        conns.kill_all();
        handler
    }
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
    tx: mpsc::UnboundedSender<Control<H>>,
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

/// One connection's task, as the table drives it.
struct Task {
    /// Shared with the connection task: the region task writes what the socket takes at once.
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl table::Link for Task {
    fn write(&mut self, batch: Bytes) -> bool {
        // Whatever the socket takes now needs no hop to the connection task.
        let rest = match self.shared.stream.try_write(&batch) {
            Ok(n) if n == batch.len() => return false,
            Ok(n) => batch.slice(n..),
            // Would block, or failed: the connection task finishes or reports it.
            Err(_) => batch,
        };
        self.shared.command(|c| c.write = Some(rest));
        true
    }

    /// The region task lets go of its share, so the task can own the socket to linger.
    fn finish(self) {
        self.shared.command(|c| c.close = true);
    }

    fn set_paused(&self, paused: bool) {
        self.shared.command(|c| c.paused = paused);
    }

    fn kill(self) {
        self.task.abort();
    }
}

/// One connection: reads unless paused, writes what the region task sends.
async fn connection(conn: ConnectionId, link: Arc<Shared>, reports: mpsc::Sender<Report>) {
    let stream = &link.stream;
    loop {
        let (write, paused, close) = {
            let mut cmds = link.cmds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (cmds.write.take(), cmds.paused, cmds.close)
        };
        // A batch is written before a close that came after it.
        if let Some(bytes) = write {
            let report = match write_all(stream, &bytes).await {
                Ok(()) => Report::Written(conn),
                Err(_) => Report::Gone(conn),
            };
            let gone = matches!(report, Report::Gone(_));
            if reports.send(report).await.is_err() || gone {
                return;
            }
            continue;
        }
        if close {
            break;
        }
        tokio::select! {
            () = link.wake.notified() => {}
            ready = stream.readable(), if !paused => {
                // Read into the thread's scratch buffer and hand over a copy of
                // exactly what came: an idle connection holds no buffer, and a
                // small message costs a small allocation, not a 16 KiB one.
                let read = ready.and_then(|()| {
                    SCRATCH.with_borrow_mut(|scratch| {
                        scratch.clear();
                        read_chunk(stream, scratch).map(|n| scratch[..n].to_vec())
                    })
                });
                let report = match read {
                    Ok(data) if data.is_empty() => Report::Gone(conn),
                    Ok(data) => Report::Data(conn, data),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => Report::Gone(conn),
                };
                let gone = matches!(report, Report::Gone(_));
                if reports.send(report).await.is_err() || gone {
                    return;
                }
            },
        }
    }
    // The region task let go of its share when it sent `Close`.
    let Ok(Shared { mut stream, .. }) = Arc::try_unwrap(link) else { return };
    // Shut down our side, then drain the peer's until it closes: closing a
    // socket with unread input sends a reset, which can destroy our close frame.
    if stream.shutdown().await.is_ok() {
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async { while let Ok(1..) = stream.read(&mut buf).await {} }).await;
    }
}

/// Reads what the socket holds into `buf`'s spare room, without waiting.
///
/// As tokio's own `AsyncRead` does on epoll and kqueue: a read that leaves
/// room in the buffer shows the socket drained, so its readiness is cleared
/// now rather than by one more read that would only find nothing (which
/// cost a `recvfrom` per message). Readiness that arrived meanwhile, and a
/// peer's close, are kept by tokio, so no wake-up is lost.
fn read_chunk(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = None;
    let outcome = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && buf.len() < buf.capacity() { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(()) }
    });
    match read {
        Some(n) => Ok(n),
        None => outcome.map(|()| 0),
    }
}

/// Writes all of `bytes` to a socket shared with the region task.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
