//! The `mio` adapter: one thread owns the [`Region`] and every socket.
//!
//! No task per connection and no hop between tasks: each turn of the loop
//! waits on epoll (kqueue on BSD) once, reads every ready socket into the
//! region, drains the region's outputs, and writes what each connection has
//! straight to its socket. A closed-loop echo costs one `epoll_wait` per
//! turn for all connections, then one `read` and one `write` per message.
//! This is the fast path for a simulator that gives each region a thread;
//! the [`tokio`](super::tokio) adapter is for embedders already on tokio.
//!
//! ```no_run
//! use std::time::Instant;
//! use lsl_websocket::adapter::Handler;
//! use lsl_websocket::adapter::mio::Server;
//! use lsl_websocket::{Config, Event, EventKind, Key, Region, ScriptInfo, WebsocketRequest};
//!
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
//! # fn run(script: ScriptInfo) -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::bind("127.0.0.1:0", Config::default(), Echo(script))?;
//! let handle = server.handle();
//! std::thread::spawn(move || {
//!     // … later, from any thread:
//!     let _ = handle.shutdown();
//! });
//! let _echo = server.run(); // blocks this thread until the shutdown
//! # Ok(()) }
//! ```
//!
//! # How it moves bytes
//!
//! - **Reading.** Sockets are registered edge-triggered. A ready socket is
//!   read into the loop's one 16 KiB scratch buffer and each read handed to
//!   the region at once; a read that does not fill the buffer shows the
//!   socket drained. At most four reads per socket per turn, so one busy
//!   client cannot starve the others; the rest waits for the next turn.
//!   [`Output::PauseReading`](crate::Output::PauseReading) stops reading
//!   (the kernel's buffer fills and TCP slows the client);
//!   a resume reads what waited.
//! - **Writing.** Outputs are drained after the reads of a turn, so every
//!   echo a connection owes goes out in one `write`. What the socket does not
//!   take waits for its writable edge, and the core's next bytes are taken
//!   only then: everything else stays in the core, where it counts against
//!   the outgoing buffer (`WS_ERR_BUSY`).
//! - **Closing.** As in the other adapters: last bytes written, write side
//!   shut down, reads drained for up to 2 s so the peer sees our close
//!   rather than a reset; a final write that takes over 10 s is abandoned.
//!
//! Limits: Unix only for now (it is tested on Linux); a peer that
//! half-closes (sends FIN) is treated as gone; no TLS (use the tokio
//! adapter's, or a proxy in front).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ::mio::net::{TcpListener, TcpStream};
use ::mio::{Events, Interest, Poll, Registry, Token, Waker};
use bytes::Bytes;

use super::table::{self, Table};
use super::{Command, Error, Handler, LINGER, OsEntropy, Stopped};
use crate::config::Config;
use crate::region::Region;
use crate::session::ConnectionId;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection `n` is token `n + FIRST_CONN` (ids are never reused, nor are tokens).
const FIRST_CONN: usize = 2;
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Reads of one socket per turn before the others get theirs.
const READS_PER_TURN: usize = 4;

enum Control<H> {
    Call(Command<H>),
    Shutdown,
}

/// A WebSocket server on one thread: a listener, a [`Region`], the
/// embedder's [`Handler`] and a `mio` poll that owns every socket.
///
/// Build it with [`bind`](Server::bind) or [`from_listener`](Server::from_listener),
/// take [`handle`](Server::handle)s, then call [`run`](Server::run), which
/// blocks the calling thread until [`Handle::shutdown`].
pub struct Server<H> {
    poll: Poll,
    listener: TcpListener,
    region: Region,
    handler: H,
    tx: mpsc::Sender<Control<H>>,
    rx: mpsc::Receiver<Control<H>>,
    waker: Arc<Waker>,
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("listener", &self.listener).field("region", &self.region).finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Binds `addr`, and makes a region with `config` whose
    /// [`authority`](Config::authority) is the address actually bound (so
    /// port 0 works), and entropy from [`OsEntropy`].
    pub fn bind(addr: impl std::net::ToSocketAddrs, config: Config, handler: H) -> Result<Server<H>, Error> {
        let listener = std::net::TcpListener::bind(addr)?;
        let config = Config { authority: listener.local_addr()?.to_string(), ..config };
        let region = Region::new(config, Box::new(OsEntropy::new()?), Instant::now());
        Ok(Server::from_listener(listener, region, handler)?)
    }

    /// A server on a bound listener and a region the embedder built (behind
    /// a proxy or a public name, with its own [`Config::authority`]).
    pub fn from_listener(listener: std::net::TcpListener, region: Region, handler: H) -> std::io::Result<Server<H>> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        Ok(Server { poll, listener, region, handler, tx, rx, waker })
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
        Handle { tx: Remote { chan: self.tx.clone(), waker: self.waker.clone() } }
    }

    /// Runs the event loop on this thread until [`Handle::shutdown`], then
    /// returns the handler. Calls [`Handler::on_start`] first.
    ///
    /// Accept errors (e.g. out of descriptors) do not end the loop; it
    /// stops accepting for 50 ms. A failing `poll` (never seen in practice)
    /// ends it as a shutdown would.
    pub fn run(self) -> H {
        let Server { mut poll, listener, mut region, mut handler, tx, rx, waker: _waker } = self;
        let _keep = tx; // the channel never reports closed while we run
        let registry = match poll.registry().try_clone() {
            Ok(registry) => registry,
            Err(_) => return handler,
        };
        let lingering = Rc::new(RefCell::new(Lingering::default()));
        let mut l = Loop {
            conns: Table::new(Instant::now()),
            listener,
            registry: Rc::new(registry),
            lingering,
            ready: VecDeque::new(),
            scratch: vec![0; READ_CHUNK],
            accept_pause: None,
        };
        let mut events = Events::with_capacity(1024);
        let now = Instant::now();
        handler.on_start(&mut region, now);
        l.conns.drain(&mut region, &mut handler, now);
        loop {
            let now = Instant::now();
            let wake = l.conns.wake(&region, [l.accept_pause, l.lingering.borrow().next()].into_iter().flatten().min());
            let timeout = if l.ready.is_empty() {
                wake.map(|at| at.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                l.conns.shutdown(&mut region, now);
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => l.accept(&mut region),
                    WAKER => {
                        while let Ok(control) = rx.try_recv() {
                            match control {
                                Control::Call(f) => f(&mut handler, &mut region, now),
                                Control::Shutdown => {
                                    l.conns.shutdown(&mut region, now);
                                }
                            }
                        }
                    }
                    Token(t) => {
                        let conn = ConnectionId((t - FIRST_CONN) as u64);
                        if event.is_writable() || event.is_error() {
                            l.flush(&mut region, now, conn);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            if l.conns.link_mut(conn).is_some() {
                                l.read(&mut region, now, conn);
                            } else {
                                l.lingering.borrow_mut().drain(Token(t));
                            }
                        }
                    }
                }
            }
            // Sockets left with unread bytes last turn (or just resumed) get their turn.
            for _ in 0..l.ready.len() {
                let Some(conn) = l.ready.pop_front() else { break };
                l.read(&mut region, now, conn);
            }
            if l.accept_pause.is_some_and(|at| at <= now) {
                l.accept_pause = None;
                l.accept(&mut region);
            }
            l.lingering.borrow_mut().expire(&l.registry, now);
            if l.conns.turn(&mut region, &mut handler, now) {
                break;
            }
            let (resumed, failed) = {
                let mut shared = l.lingering.borrow_mut();
                (std::mem::take(&mut shared.resumed), std::mem::take(&mut shared.failed))
            };
            for conn in failed {
                l.conns.gone(&mut region, now, conn);
            }
            // A resume during the turn: what waited in the kernel is read next turn.
            l.ready.extend(resumed);
        }
        l.conns.kill_all();
        handler
    }
}

/// The loop's state besides the region and the handler.
struct Loop {
    conns: Table<Sock>,
    listener: TcpListener,
    registry: Rc<Registry>,
    lingering: Rc<RefCell<Lingering>>,
    /// Connections with bytes possibly unread (cut short, or resumed).
    ready: VecDeque<ConnectionId>,
    scratch: Vec<u8>,
    accept_pause: Option<Instant>,
}

impl Loop {
    fn accept(&mut self, region: &mut Region) {
        while self.accept_pause.is_none() && !self.conns.shutting_down() {
            match self.listener.accept() {
                Ok((mut stream, remote)) => {
                    let conn = self.conns.next_id();
                    let _ = stream.set_nodelay(true);
                    let token = Token(conn.0 as usize + FIRST_CONN);
                    if self.registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                        continue;
                    }
                    let sock = Sock {
                        stream,
                        token,
                        pending: None,
                        paused: std::cell::Cell::new(false),
                        unread: std::cell::Cell::new(false),
                        conn,
                        registry: self.registry.clone(),
                        lingering: self.lingering.clone(),
                    };
                    self.conns.accepted(region, conn, remote.ip(), sock);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of descriptors and the like: pause instead of spinning.
                Err(_) => self.accept_pause = Some(Instant::now() + Duration::from_millis(50)),
            }
        }
    }

    /// Reads what the socket holds, up to [`READS_PER_TURN`] chunks.
    fn read(&mut self, region: &mut Region, now: Instant, conn: ConnectionId) {
        for _ in 0..READS_PER_TURN {
            let Some(sock) = self.conns.link_mut(conn) else { return };
            if sock.paused.get() {
                sock.unread.set(true);
                return;
            }
            match sock.stream.read(&mut self.scratch) {
                Ok(0) => return self.conns.gone(region, now, conn),
                Ok(n) => {
                    let drained = n < self.scratch.len();
                    sock.unread.set(!drained);
                    self.conns.received(region, now, conn, &self.scratch[..n]);
                    if drained {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    sock.unread.set(false);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.conns.gone(region, now, conn),
            }
        }
        self.ready.push_back(conn);
    }

    /// Writes the rest of a batch the socket did not take at once.
    fn flush(&mut self, region: &mut Region, now: Instant, conn: ConnectionId) {
        let Some(sock) = self.conns.link_mut(conn) else { return };
        let Some(pending) = sock.pending.take() else { return };
        match write_some(&mut sock.stream, pending) {
            Ok(None) => self.conns.written(region, conn),
            Ok(Some(rest)) => sock.pending = Some(rest),
            Err(_) => self.conns.gone(region, now, conn),
        }
    }
}

/// Writes what the socket takes now; the rest when it did not take it all.
fn write_some(stream: &mut TcpStream, mut bytes: Bytes) -> std::io::Result<Option<Bytes>> {
    while !bytes.is_empty() {
        match stream.write(&bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.slice(n..),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// One connection's socket, as the table drives it.
struct Sock {
    stream: TcpStream,
    token: Token,
    conn: ConnectionId,
    /// The part of a batch the socket has not taken yet.
    pending: Option<Bytes>,
    paused: std::cell::Cell<bool>,
    /// Bytes may wait in the kernel (an edge was seen but not read to the end).
    unread: std::cell::Cell<bool>,
    registry: Rc<Registry>,
    lingering: Rc<RefCell<Lingering>>,
}

impl table::Link for Sock {
    fn write(&mut self, batch: Bytes) -> bool {
        match write_some(&mut self.stream, batch) {
            Ok(None) => false,
            Ok(Some(rest)) => {
                self.pending = Some(rest);
                true
            }
            // Failed: reported gone at the end of the turn (an edge-triggered
            // poll may never show the error again). Until then nothing more is written.
            Err(_) => {
                self.lingering.borrow_mut().failed.push(self.conn);
                true
            }
        }
    }

    fn finish(self) {
        // Shut down our side, then drain the peer's until it closes: closing a
        // socket with unread input sends a reset, which can destroy our close frame.
        if self.stream.shutdown(std::net::Shutdown::Write).is_ok() {
            let mut lingering = self.lingering.borrow_mut();
            lingering.socks.push_back((Instant::now() + LINGER, self.token, self.stream));
        } else {
            let mut stream = self.stream;
            let _ = self.registry.deregister(&mut stream);
        }
    }

    fn set_paused(&self, paused: bool) {
        let was = self.paused.replace(paused);
        if was && !paused && self.unread.get() {
            self.lingering.borrow_mut().resumed.push(self.conn);
        }
    }

    fn kill(self) {
        let mut stream = self.stream;
        let _ = self.registry.deregister(&mut stream);
    }
}

/// What sockets report to the loop from inside the table's calls: closed
/// connections draining the peer's last bytes, connections resumed or
/// failed during a turn.
#[derive(Default)]
struct Lingering {
    /// In deadline order: every one lingers the same [`LINGER`].
    socks: VecDeque<(Instant, Token, TcpStream)>,
    resumed: Vec<ConnectionId>,
    /// Connections whose write failed.
    failed: Vec<ConnectionId>,
}

impl Lingering {
    fn next(&self) -> Option<Instant> {
        self.socks.front().map(|s| s.0)
    }

    /// Reads and discards; a socket whose peer closed (or failed) is dropped.
    fn drain(&mut self, token: Token) {
        let Some(at) = self.socks.iter().position(|s| s.1 == token) else { return };
        let mut buf = [0u8; 4096];
        loop {
            match self.socks[at].2.read(&mut buf) {
                Ok(1..) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                _ => {
                    self.socks.remove(at);
                    return;
                }
            }
        }
    }

    fn expire(&mut self, registry: &Registry, now: Instant) {
        while self.socks.front().is_some_and(|s| s.0 <= now) {
            if let Some((_, _, mut stream)) = self.socks.pop_front() {
                let _ = registry.deregister(&mut stream);
            }
        }
    }
}

/// The sending side of a server's control channel, and the waker of its poll.
struct Remote<H> {
    chan: mpsc::Sender<Control<H>>,
    waker: Arc<Waker>,
}

impl<H> Clone for Remote<H> {
    fn clone(&self) -> Remote<H> {
        Remote { chan: self.chan.clone(), waker: self.waker.clone() }
    }
}

impl<H> Remote<H> {
    fn send(&self, control: Control<H>) -> Result<(), Stopped> {
        self.chan.send(control).map_err(|_| Stopped)?;
        self.waker.wake().map_err(|_| Stopped)
    }
}

/// Sends work to a running [`Server`]'s region thread. Cheap to clone.
pub struct Handle<H> {
    tx: Remote<H>,
}

super::handle_impls!(Handle);

impl<H: 'static> Handle<H> {
    /// Runs `f` on the region's thread, between turns, with the handler, the
    /// region and the current time; its effects are drained right after.
    pub fn call<F>(&self, f: F) -> Result<(), Stopped>
    where
        F: FnOnce(&mut H, &mut Region, Instant) + Send + 'static,
    {
        self.tx.send(Control::Call(Box::new(f)))
    }

    /// Like [`call`](Handle::call), and blocks until `f`'s result is back.
    /// Never call it from the region's own thread (it would wait for itself).
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
    /// `region restart` (every session gets close 1001), waits up to 2 s for
    /// connections to finish, drops the rest, and [`Server::run`] returns.
    pub fn shutdown(&self) -> Result<(), Stopped> {
        self.tx.send(Control::Shutdown)
    }
}
