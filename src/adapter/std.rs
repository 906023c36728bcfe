//! The blocking `std::net` adapter: the caller's thread owns the [`Region`],
//! and each connection has a reader thread and a writer thread.
//!
//! ```no_run
//! use std::time::Instant;
//! use lsl_websocket::adapter::Handler;
//! use lsl_websocket::adapter::std::Server;
//! use lsl_websocket::{Config, Event, EventKind, Key, Region};
//!
//! /// Echoes every text back to its session.
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_event(&mut self, region: &mut Region, _now: Instant, script: Key, event: Event) {
//!         if event.kind == EventKind::Text {
//!             let _ = region.websocket_send(script, event.id, &event.data);
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), lsl_websocket::adapter::Error> {
//! let server = Server::bind("127.0.0.1:0", Config::default(), Echo)?;
//! let handle = server.handle();
//! std::thread::spawn(move || {
//!     // … later, from any thread:
//!     let _ = handle.shutdown();
//! });
//! let _echo = server.run();
//! # Ok(()) }
//! ```
//!
//! # How it moves bytes, and its limits
//!
//! - An accept thread and every connection's reader thread send to the
//!   region thread over one bounded channel; when it is full they wait.
//! - A reader thread blocks in `read`, 16 KiB at a time. On
//!   [`Output::PauseReading`](crate::Output::PauseReading) it stops calling
//!   `read` (at most the one chunk already read reaches the core), so TCP
//!   flow control pushes back on the client.
//! - A writer thread holds at most one batch (up to 64 KiB) taken with
//!   [`Region::poll_transmit`]; the next is taken when that write completed,
//!   so unsent bytes stay in the core and count against `WS_ERR_BUSY`.
//! - The region thread waits on the channel with a timeout set from
//!   [`Region::poll_timeout`].
//!
//! Two threads per connection make this adapter fit tools, bridges, tests
//! and regions with up to a few hundred clients; use the
//! [`tokio`](crate::adapter::tokio) adapter for thousands. A peer that
//! half-closes is treated as gone. No TLS.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::table::{self, Table};
use super::{Command, Error, Handler, LINGER, OsEntropy, Stopped};
use crate::config::Config;
use crate::region::Region;
use crate::session::ConnectionId;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Messages waiting for the region thread; beyond this, senders wait.
const QUEUE: usize = 1024;
/// Stack of each connection thread: they only move buffers that live on the heap.
const THREAD_STACK: usize = 256 * 1024;

/// Everything the region thread hears about.
enum Msg<H> {
    Call(Command<H>),
    Shutdown,
    Accepted(TcpStream, SocketAddr),
    Data(ConnectionId, Vec<u8>),
    /// The peer closed, or reading or writing failed.
    Gone(ConnectionId),
    Written(ConnectionId),
}

/// A blocking WebSocket server: a listener, a [`Region`] and the embedder's [`Handler`].
pub struct Server<H> {
    listener: TcpListener,
    region: Region,
    handler: H,
    tx: SyncSender<Msg<H>>,
    rx: Receiver<Msg<H>>,
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("listener", &self.listener).field("region", &self.region).finish_non_exhaustive()
    }
}

impl<H: Handler + 'static> Server<H> {
    /// Binds `addr`, and makes a region with `config` whose
    /// [`authority`](Config::authority) is replaced by the address actually
    /// bound (so port 0 works), and entropy from [`OsEntropy`].
    ///
    /// Behind a proxy or a public name, build the region yourself and use
    /// [`from_listener`](Server::from_listener).
    pub fn bind(addr: impl ToSocketAddrs, config: Config, handler: H) -> Result<Server<H>, Error> {
        let listener = TcpListener::bind(addr)?;
        let config = Config { authority: listener.local_addr()?.to_string(), ..config };
        let region = Region::new(config, Box::new(OsEntropy::new()?), Instant::now());
        Ok(Server::from_listener(listener, region, handler))
    }

    /// A server on a listener and a region the embedder built.
    pub fn from_listener(listener: TcpListener, region: Region, handler: H) -> Server<H> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        Server { listener, region, handler, tx, rx }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The region, before the server runs (e.g. to make script calls).
    pub fn region_mut(&mut self) -> &mut Region {
        &mut self.region
    }

    /// A handle for running code on the region's thread and for shutting down.
    pub fn handle(&self) -> Handle<H> {
        Handle { tx: self.tx.clone() }
    }

    /// Runs the event loop on this thread until [`Handle::shutdown`], then
    /// returns the handler. Calls [`Handler::on_start`] first.
    ///
    /// Fails only if the accept thread cannot be started.
    pub fn run(self) -> Result<H, Error> {
        let Server { listener, mut region, mut handler, tx, rx } = self;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accept_tx = tx.clone();
        let accept_stop = Arc::clone(&stop);
        let acceptor = thread::Builder::new().name("lslws-accept".into()).spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::Acquire) {
                    break;
                }
                match stream.and_then(|s| Ok((s.peer_addr()?, s))) {
                    Ok((remote, stream)) => {
                        if accept_tx.send(Msg::Accepted(stream, remote)).is_err() {
                            break;
                        }
                    }
                    // Out of descriptors and the like: retry shortly instead of spinning.
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
        let now = Instant::now();
        let mut conns: Table<Thread> = Table::new(now);
        handler.on_start(&mut region, now);
        conns.drain(&mut region, &mut handler, now);
        loop {
            let first = match conns.wake(&region, None) {
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut next = first.ok();
            let mut taken = 0;
            // Apply what is waiting (bounded), so a burst costs one output phase.
            while let Some(msg) = next.take() {
                let now = Instant::now();
                match msg {
                    Msg::Call(f) => f(&mut handler, &mut region, now),
                    Msg::Shutdown => {
                        if conns.shutdown(&mut region, now) {
                            stop.store(true, Ordering::Release);
                            wake_acceptor(local);
                        }
                    }
                    // During the shutdown it is dropped, which closes it.
                    Msg::Accepted(stream, remote) if !conns.shutting_down() => {
                        let conn = conns.next_id();
                        if let Ok(thread) = Thread::start(conn, stream, &tx) {
                            conns.accepted(&mut region, conn, remote.ip(), thread);
                        }
                    }
                    Msg::Accepted(..) => {}
                    Msg::Data(conn, data) => conns.received(&mut region, now, conn, &data),
                    Msg::Gone(conn) => conns.gone(&mut region, now, conn),
                    Msg::Written(conn) => conns.written(&mut region, conn),
                }
                taken += 1;
                if taken < QUEUE {
                    next = rx.try_recv().ok();
                }
            }
            if conns.turn(&mut region, &mut handler, Instant::now()) {
                break;
            }
        }
        conns.kill_all();
        stop.store(true, Ordering::Release);
        wake_acceptor(local);
        // Threads blocked on a full queue see it gone and end.
        drop(rx);
        let _ = acceptor.join();
        Ok(handler)
    }
}

/// Unblocks the accept thread's `accept` by connecting to it once.
fn wake_acceptor(local: SocketAddr) {
    let mut target = local;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
}

/// Sends work to a running [`Server`]'s region thread. Cheap to clone.
pub struct Handle<H> {
    tx: SyncSender<Msg<H>>,
}

super::handle_impls!(Handle);

impl<H: 'static> Handle<H> {
    /// Runs `f` on the region's thread, between polls, with the handler, the
    /// region and the current time; its effects are drained right after.
    /// Waits only while the region's queue is full, so do not call it from a
    /// [`Handler`] method (which runs on the region's thread).
    pub fn call<F>(&self, f: F) -> Result<(), Stopped>
    where
        F: FnOnce(&mut H, &mut Region, Instant) + Send + 'static,
    {
        self.tx.send(Msg::Call(Box::new(f))).map_err(|_| Stopped)
    }

    /// Like [`call`](Handle::call), and waits for `f`'s result. Never call it
    /// from a [`Handler`] method: the region thread would wait for itself.
    pub fn query<R, F>(&self, f: F) -> Result<R, Stopped>
    where
        R: Send + 'static,
        F: FnOnce(&mut H, &mut Region, Instant) -> R + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.call(move |h, region, now| {
            let _ = tx.send(f(h, region, now));
        })?;
        rx.recv().map_err(|_| Stopped)
    }

    /// Shuts the server down: stops accepting, revokes every URL with cause
    /// `region restart` (SPEC §4: the region shuts down), so every session
    /// gets close 1001; waits up to 2 s for connections to finish, drops the
    /// rest, and [`Server::run`] returns.
    pub fn shutdown(&self) -> Result<(), Stopped> {
        self.tx.send(Msg::<H>::Shutdown).map_err(|_| Stopped)
    }
}

/// A connection's reading state, shared by the region thread and both of its threads.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// The core said to stop reading.
    paused: bool,
    /// The connection is closing: read only to drain, forward nothing.
    closing: bool,
    /// The reader thread has returned.
    reader_done: bool,
}

impl Gate {
    fn update(&self, f: impl FnOnce(&mut GateState)) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_all();
    }

    /// Waits until reading is allowed; returns whether the connection is closing.
    fn wait_open(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.paused && !state.closing {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.closing
    }

    /// Waits up to `limit` for the reader thread to return.
    fn wait_reader(&self, limit: Duration) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self.changed.wait_timeout_while(state, limit, |s| !s.reader_done);
    }
}

enum WriterCmd {
    Write(Bytes),
    /// Everything is written: shut down and linger.
    Close,
}

/// One connection's reader and writer threads, as the table drives them.
struct Thread {
    /// For shutting the socket down from the region thread.
    stream: TcpStream,
    gate: Arc<Gate>,
    writer: mpsc::Sender<WriterCmd>,
}

impl Thread {
    /// Starts the reader and writer threads of a new connection.
    fn start<H: 'static>(
        conn: ConnectionId,
        stream: TcpStream,
        reports: &SyncSender<Msg<H>>,
    ) -> std::io::Result<Thread> {
        let _ = stream.set_nodelay(true);
        let gate = Arc::new(Gate::default());
        let (writer_tx, writer_rx) = mpsc::channel();
        let (read_half, write_half) = (stream.try_clone()?, stream.try_clone()?);
        let (read_reports, reader_gate) = (reports.clone(), Arc::clone(&gate));
        thread::Builder::new()
            .name(format!("lslws-read-{}", conn.0))
            .stack_size(THREAD_STACK)
            .spawn(move || reader(conn, read_half, &reader_gate, &read_reports))?;
        let (write_reports, writer_gate) = (reports.clone(), Arc::clone(&gate));
        let spawned = thread::Builder::new()
            .name(format!("lslws-write-{}", conn.0))
            .stack_size(THREAD_STACK)
            .spawn(move || writer(conn, write_half, &writer_rx, &writer_gate, &write_reports));
        if let Err(e) = spawned {
            let _ = stream.shutdown(Shutdown::Both); // ends the reader
            return Err(e);
        }
        Ok(Thread { stream, gate, writer: writer_tx })
    }
}

impl table::Link for Thread {
    fn write(&mut self, batch: Bytes) -> bool {
        // The writer thread reports `Written` (or `Gone`) when it is done.
        let _ = self.writer.send(WriterCmd::Write(batch));
        true
    }

    fn closing(&mut self) {
        // From now on the reader only drains (also if paused), so the close echo is read.
        self.gate.update(|s| s.closing = true);
    }

    fn finish(self) {
        let _ = self.writer.send(WriterCmd::Close);
    }

    fn set_paused(&self, paused: bool) {
        self.gate.update(|s| s.paused = paused);
    }

    /// Ends both threads at once: blocked reads and writes fail.
    fn kill(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.gate.update(|s| s.closing = true);
    }
}

fn reader<H>(conn: ConnectionId, mut stream: TcpStream, gate: &Gate, reports: &SyncSender<Msg<H>>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let closing = gate.wait_open();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                if !closing {
                    let _ = reports.send(Msg::<H>::Gone(conn));
                }
                break;
            }
            Ok(_) if closing => {} // drained and dropped
            Ok(n) => {
                if reports.send(Msg::Data(conn, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    gate.update(|s| s.reader_done = true);
}

fn writer<H>(
    conn: ConnectionId,
    mut stream: TcpStream,
    cmds: &Receiver<WriterCmd>,
    gate: &Gate,
    reports: &SyncSender<Msg<H>>,
) {
    while let Ok(cmd) = cmds.recv() {
        match cmd {
            WriterCmd::Write(bytes) => {
                let ok = stream.write_all(&bytes).is_ok();
                let report: Msg<H> = if ok { Msg::Written(conn) } else { Msg::Gone(conn) };
                if reports.send(report).is_err() || !ok {
                    return;
                }
            }
            WriterCmd::Close => break,
        }
    }
    // Shut down our side and let the reader drain the peer's until it closes:
    // closing a socket with unread input sends a reset, which can destroy our
    // close frame. After the linger the socket is shut down for good, which
    // also ends a reader still blocked in `read`.
    if stream.shutdown(Shutdown::Write).is_ok() {
        gate.wait_reader(LINGER);
    }
    let _ = stream.shutdown(Shutdown::Both);
}
