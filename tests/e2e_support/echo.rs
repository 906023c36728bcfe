//! The example's two echo scripts as a test handler, and targets that run it
//! on the tokio or the std adapter inside the test process.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lsl_websocket::adapter::Handler;
use lsl_websocket::{
    Config, Entropy, Event, EventKind, HttpMethod, Key, Region, Scope, ScriptInfo, SeededEntropy, SendError,
    WebsocketRequest,
};

use super::{Target, WAIT};

pub const OBJECT: usize = 0;
pub const REGION: usize = 1;

/// The config the `echo_server` example runs with (see examples/echo_server.rs).
pub fn example_config() -> Config {
    Config { serve_other_paths: true, handshakes_per_second: 400, ..Config::default() }
}

pub struct Script {
    pub info: ScriptInfo,
    pub domain: Option<&'static str>,
    pub url: Option<String>,
    /// The HTTP-in URL (the object script only).
    pub http_url: Option<String>,
    pub denied: Option<String>,
    pending: Option<(Key, String)>,
}

/// The example's echo scripts, plus what tests look at: every non-text event,
/// and a switch that stops the object script from reading its events.
pub struct TestEcho {
    pub scripts: [Script; 2],
    /// Events other than `WS_TEXT`, as `(script index, event)`.
    pub events: Vec<(usize, Event)>,
    /// While set, the object script leaves its events queued (a busy script).
    pub asleep: bool,
    keys: SeededEntropy,
}

impl Default for TestEcho {
    fn default() -> TestEcho {
        TestEcho::new()
    }
}

impl TestEcho {
    pub fn new() -> TestEcho {
        // Seeded keys are fine here: they name test scripts, not capabilities.
        let mut keys = SeededEntropy::new(7);
        let mut info = || ScriptInfo { script: key(&mut keys), object: key(&mut keys), owner: key(&mut keys) };
        let (object, region) = (info(), info());
        let script = |info, domain| Script { info, domain, url: None, http_url: None, denied: None, pending: None };
        TestEcho {
            scripts: [script(object, None), script(region, Some("echo"))],
            events: Vec::new(),
            asleep: false,
            keys,
        }
    }

    pub fn request(&mut self, region: &mut Region, which: usize) {
        let s = &mut self.scripts[which];
        s.url = None;
        s.denied = None;
        s.pending = None;
        let scope = if s.domain.is_some() { Scope::Region } else { Scope::Object };
        let request = WebsocketRequest { scope, domain: s.domain.map(str::to_string), ..WebsocketRequest::default() };
        region.request_websocket(s.info, &request);
        if which == OBJECT {
            s.http_url = None;
            region.request_url(s.info);
        }
    }

    /// The example's stdin commands.
    pub fn command(&mut self, region: &mut Region, now: Instant, command: &str) {
        let info = self.scripts[OBJECT].info;
        match command {
            "reset" => region.script_reset(now, info.script),
            "rez" => {
                region.object_rezzed(now, info.object);
                self.scripts[OBJECT].info.object = key(&mut self.keys);
            }
            "region-change" => region.object_changed_region(now, info.object),
            "owner-change" => {
                region.owner_changed(now, info.object);
                self.scripts[OBJECT].info.owner = key(&mut self.keys);
            }
            "remove" => {
                region.object_removed(now, info.object);
                region.script_removed(now, info.script);
                let new = &mut self.scripts[OBJECT].info;
                new.object = key(&mut self.keys);
                new.script = key(&mut self.keys);
            }
            "release" => {
                if let Some(url) = self.scripts[OBJECT].url.take() {
                    region.release_websocket(now, info.script, &url).expect("release a live URL");
                }
                if let Some(url) = self.scripts[OBJECT].http_url.take() {
                    region.release_url(now, info.script, &url).expect("release a live HTTP-in URL");
                }
            }
            "restart" => {
                region.region_restart(now);
                self.request(region, REGION);
            }
            other => panic!("unknown command {other}"),
        }
        self.request(region, OBJECT);
    }

    fn echo(&mut self, region: &mut Region, which: usize, session: Key, text: String) -> bool {
        match region.websocket_send(self.scripts[which].info.script, session, &text) {
            Err(SendError::Busy) => {
                self.scripts[which].pending = Some((session, text));
                false
            }
            Ok(()) | Err(_) => true,
        }
    }

    pub fn run_script(&mut self, region: &mut Region, which: usize) {
        if which == OBJECT && self.asleep {
            return;
        }
        if let Some((session, text)) = self.scripts[which].pending.take()
            && !self.echo(region, which, session, text)
        {
            return;
        }
        let script = self.scripts[which].info.script;
        while let Some(event) = region.poll_event(script) {
            match event.kind {
                EventKind::Text => {
                    if !self.echo(region, which, event.id, event.data.to_string()) {
                        return;
                    }
                    continue;
                }
                EventKind::UrlGranted => self.scripts[which].url = Some(event.data.to_string()),
                EventKind::UrlDenied => self.scripts[which].denied = Some(event.data.to_string()),
                EventKind::Open | EventKind::Close => {}
                EventKind::Http(HttpMethod::UrlRequestGranted) => {
                    self.scripts[which].http_url = Some(event.data.to_string())
                }
                EventKind::Http(HttpMethod::UrlRequestDenied) => {}
                EventKind::Http(method) => http_echo(region, self.scripts[which].info.script, &event, method),
            }
            self.events.push((which, event));
        }
    }

    /// Closes seen by the object script, as `"<code> <reason>"`.
    pub fn object_closes(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|(w, e)| *w == OBJECT && e.kind == EventKind::Close)
            .map(|(_, e)| e.data.to_string())
            .collect()
    }
}

impl Handler for TestEcho {
    fn on_start(&mut self, region: &mut Region, _now: Instant) {
        self.request(region, OBJECT);
        self.request(region, REGION);
    }

    fn on_event(&mut self, _: &mut Region, _: Instant, _: Key, _: Event) {}

    fn on_events(&mut self, region: &mut Region, _now: Instant, script: Key) {
        match self.scripts.iter().position(|s| s.info.script == script) {
            Some(which) => self.run_script(region, which),
            None => while region.poll_event(script).is_some() {},
        }
    }

    fn tick(&mut self, region: &mut Region, _now: Instant) {
        for which in [OBJECT, REGION] {
            if self.scripts[which].pending.is_some() {
                self.run_script(region, which);
            }
        }
    }
}

/// The example's HTTP-in echo script (see examples/echo_server.rs): it answers by path info.
fn http_echo(region: &mut Region, script: Key, event: &Event, method: HttpMethod) {
    let (id, now) = (event.id, Instant::now());
    let path = region.http_header(script, id, "x-path-info");
    let _ = if path == "/hold" || path.starts_with("/hold/") {
        return;
    } else if let Some(n) = path.strip_prefix("/status/") {
        region.http_response(now, script, id, n.parse().unwrap_or(500), "")
    } else if let Some(name) = path.strip_prefix("/header/") {
        let value = region.http_header(script, id, name);
        region.http_response(now, script, id, 200, &value)
    } else if path == "/method" {
        region.http_response(now, script, id, 200, method.as_str())
    } else {
        region.http_response(now, script, id, 200, &event.data)
    };
}

fn key(entropy: &mut SeededEntropy) -> Key {
    let mut bytes = [0; 16];
    entropy.fill(&mut bytes);
    Key::from_random_bytes(bytes)
}

type Call = Box<dyn FnOnce(&mut TestEcho, &mut Region, Instant) + Send>;

/// A [`TestEcho`] running on an adapter in this process.
pub struct AdapterTarget {
    addr: SocketAddr,
    call: Box<dyn Fn(Call) -> bool + Send>,
    shutdown: Box<dyn Fn() + Send>,
    done: mpsc::Receiver<TestEcho>,
    stopped: Option<TestEcho>,
}

impl AdapterTarget {
    /// Runs `f` on the region's thread or task and returns its result.
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut TestEcho, &mut Region, Instant) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        let sent = (self.call)(Box::new(move |h, region, now| {
            let _ = tx.send(f(h, region, now));
        }));
        assert!(sent, "the adapter's loop has stopped");
        rx.recv_timeout(WAIT).expect("the adapter's loop did not answer")
    }

    /// The handler after the server stopped (after [`Target::quit`]).
    pub fn stopped(&self) -> &TestEcho {
        self.stopped.as_ref().expect("quit first")
    }

    fn wait_for_urls(&self) {
        super::wire::wait_until("the echo scripts' URL answers", || {
            self.with(|h, _, _| {
                h.scripts.iter().all(|s| s.url.is_some() || s.denied.is_some()) && h.scripts[OBJECT].http_url.is_some()
            })
        });
    }
}

/// Starts the echo scripts on the tokio adapter with `config` on 127.0.0.1:0.
#[cfg(feature = "tokio")]
pub fn start_tokio(config: Config) -> AdapterTarget {
    use lsl_websocket::adapter::tokio::Server;
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let server = Server::bind("127.0.0.1:0", config, TestEcho::new()).await.expect("bind");
            ready_tx.send((server.local_addr().unwrap(), server.handle())).unwrap();
            let _ = done_tx.send(server.run().await);
        });
    });
    let (addr, handle) = ready_rx.recv_timeout(WAIT).expect("tokio server start");
    let shutdown_handle = handle.clone();
    let target = AdapterTarget {
        addr,
        call: Box::new(move |f| handle.call(f).is_ok()),
        shutdown: Box::new(move || {
            let _ = shutdown_handle.shutdown();
        }),
        done,
        stopped: None,
    };
    target.wait_for_urls();
    target
}

/// Starts the echo scripts on the std adapter with `config` on 127.0.0.1:0.
#[cfg(feature = "std")]
pub fn start_std(config: Config) -> AdapterTarget {
    use lsl_websocket::adapter::std::Server;
    let server = Server::bind("127.0.0.1:0", config, TestEcho::new()).expect("bind");
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(server.run().expect("std server run"));
    });
    let shutdown_handle = handle.clone();
    let target = AdapterTarget {
        addr,
        call: Box::new(move |f| handle.call(f).is_ok()),
        shutdown: Box::new(move || {
            let _ = shutdown_handle.shutdown();
        }),
        done,
        stopped: None,
    };
    target.wait_for_urls();
    target
}

/// The mio adapter on its own thread, as a simulator runs one region per thread.
#[cfg(feature = "mio")]
pub fn start_mio(config: Config) -> AdapterTarget {
    use lsl_websocket::adapter::mio::Server;
    let server = Server::bind("127.0.0.1:0", config, TestEcho::new()).expect("bind");
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(server.run());
    });
    let shutdown_handle = handle.clone();
    let target = AdapterTarget {
        addr,
        call: Box::new(move |f| handle.call(f).is_ok()),
        shutdown: Box::new(move || {
            let _ = shutdown_handle.shutdown();
        }),
        done,
        stopped: None,
    };
    target.wait_for_urls();
    target
}

impl Target for AdapterTarget {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn object_url(&self) -> String {
        self.with(|h, _, _| h.scripts[OBJECT].url.clone()).expect("the echo object holds a URL")
    }

    fn region_url(&self) -> Option<String> {
        self.with(|h, _, _| h.scripts[REGION].url.clone())
    }

    fn http_url(&self) -> String {
        self.with(|h, _, _| h.scripts[OBJECT].http_url.clone().unwrap_or_default())
    }

    fn command(&mut self, command: &str) {
        let command = command.to_string();
        self.with(move |h, region, now| h.command(region, now, &command));
        self.wait_for_urls();
    }

    fn quit(&mut self) -> Duration {
        let start = Instant::now();
        (self.shutdown)();
        let handler = self.done.recv_timeout(WAIT).expect("the server did not stop");
        self.stopped = Some(handler);
        start.elapsed()
    }
}

impl Drop for AdapterTarget {
    fn drop(&mut self) {
        if self.stopped.is_none() {
            (self.shutdown)();
        }
    }
}
