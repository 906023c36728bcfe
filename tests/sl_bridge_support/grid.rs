//! A grid for one LSL script: this crate's HTTP-in on the tokio adapter
//! serves `llRequestURL`, `http_request`, `llHTTPResponse` and
//! `llGetHTTPHeader`; the script itself runs in lummao (`runner.py`), one
//! JSON line per call or event over the child's stdin and stdout. Its
//! `llHTTPRequest` goes to the bridge over real HTTP.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lsl_websocket::adapter::tokio::{Handle, Server};
use lsl_websocket::adapter::{Handler, OsEntropy};
use lsl_websocket::{Config, Event, EventKind, HttpMethod, Key, Region, ScriptInfo};
use serde_json::{Value, json};

use super::WAIT;

/// How the grid treats requests to the script's HTTP-in URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hands them to the script.
    Normal,
    /// Never answers them (nor tells the script).
    Hold,
    /// Answers the next n with 503 itself, then hands them on.
    Busy(usize),
    /// Keeps them, unanswered, and hands them on when the mode changes.
    Stall,
}

/// The script's side of the grid, on the region's task.
pub struct GridScript {
    info: ScriptInfo,
    to_py: Sender<String>,
    mode: Mode,
    /// Requests that reached the script's URL.
    pub requests: u64,
    /// Requests the grid answered 503 itself.
    pub refused: u64,
    /// The `x-bridge-session` of the last request with one.
    pub last_session: Option<String>,
    /// Requests kept by [`Mode::Stall`].
    stalled: Vec<String>,
}

fn fresh_key() -> Key {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bytes = [0x5a; 16];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    Key::from_random_bytes(bytes)
}

impl Handler for GridScript {
    fn on_event(&mut self, region: &mut Region, now: Instant, script: Key, event: Event) {
        let EventKind::Http(method) = event.kind else { return };
        let msg = json!({"event": "http_request", "id": event.id.to_string(), "method": method.as_str(), "body": &*event.data});
        let forward = |g: &mut GridScript| {
            let _ = g.to_py.send(msg.to_string());
        };
        if matches!(method, HttpMethod::UrlRequestGranted | HttpMethod::UrlRequestDenied) {
            return forward(self);
        }
        self.requests += 1;
        let session = region.http_header(script, event.id, "x-bridge-session");
        if !session.is_empty() {
            self.last_session = Some(session);
        }
        match self.mode {
            Mode::Hold => {}
            Mode::Busy(n) if n > 0 => {
                self.mode = Mode::Busy(n - 1);
                self.refused += 1;
                let _ = region.http_response(now, script, event.id, 503, "");
            }
            Mode::Stall => self.stalled.push(msg.to_string()),
            _ => forward(self),
        }
    }
}

/// A running grid with the script in it; everything stops on drop.
pub struct Grid {
    handle: Handle<GridScript>,
    thread: Option<JoinHandle<()>>,
    child: Child,
    /// Where its HTTP-in listens.
    pub addr: SocketAddr,
    /// The script's `llOwnerSay` lines.
    pub says: Receiver<String>,
    /// Every `llHTTPRequest` answer the script got: URL, status, body.
    pub http_out: Receiver<(String, u16, String)>,
    /// Exceptions in the script's event handlers.
    pub errors: Arc<Mutex<Vec<String>>>,
    to_py: Sender<String>,
}

/// The grid's region: HTTP-in with Second Life's limits and this crate's
/// defaults (so also its rate limit of 50 requests a second per address,
/// answered 429 with `Retry-After`, which the bridge meets under load), and
/// a timeout longer than any test so that a held request is never answered by it.
pub fn grid_config() -> Config {
    Config { http_timeout: Duration::from_secs(120), ..Config::default() }
}

impl Grid {
    /// Starts the grid, then `bridge/bridge.lsl` in lummao with BRIDGE = `bridge`.
    pub fn start(bridge: &str, secret: &str) -> Grid {
        Grid::start_with(bridge, secret, grid_config())
    }

    /// [`start`](Grid::start) with the grid's region built from `config`.
    pub fn start_with(bridge: &str, secret: &str, config: Config) -> Grid {
        Grid::start_script(bridge, secret, config, false)
    }

    /// [`start_with`](Grid::start_with); `secure`: the script's SECURE
    /// setting is TRUE, so it asks for an `https://` URL (the config needs a
    /// `secure_authority`).
    pub fn start_script(bridge: &str, secret: &str, config: Config, secure: bool) -> Grid {
        let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/setup.sh (it installs lummao)", python.display());
        let (to_py, py_rx) = mpsc::channel::<String>();
        let info = ScriptInfo { script: fresh_key(), object: fresh_key(), owner: fresh_key() };
        let script = GridScript {
            info,
            to_py: to_py.clone(),
            mode: Mode::Normal,
            requests: 0,
            refused: 0,
            last_session: None,
            stalled: Vec::new(),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                // Built by hand, not with `Server::bind`: the grid's TLS is a
                // front in another thread, so the region keeps the
                // `secure_authority` the test gave it.
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the grid");
                let local = listener.local_addr().expect("address").to_string();
                let entropy = OsEntropy::new().expect("entropy");
                let region = Region::new(Config { authority: local, ..config }, Box::new(entropy), Instant::now());
                let server = Server::from_listener(listener, region, script);
                let _ = ready_tx.send((server.handle(), server.local_addr().expect("address")));
                server.run().await;
            });
        });
        let (handle, addr) = ready_rx.recv_timeout(WAIT).expect("grid started");

        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(python)
            .arg(dir.join("tests/sl_bridge_support/runner.py"))
            .arg(dir.join("bridge/bridge.lsl"))
            .args([bridge, secret])
            .args(secure.then_some("secure"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the lummao runner");
        let mut stdin = child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            for line in py_rx {
                if writeln!(stdin, "{line}").and_then(|()| stdin.flush()).is_err() {
                    break;
                }
            }
        });
        let (says_tx, says) = mpsc::channel();
        let (out_tx, http_out) = mpsc::channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let (h, errs) = (handle.clone(), errors.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
                script_call(&h, msg, &says_tx, &out_tx, &errs);
            }
        });
        Grid { handle, thread: Some(thread), child, addr, says, http_out, errors, to_py }
    }

    /// Waits for the script to say its WebSocket URL.
    pub fn ws_url(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let said = self.says.recv_timeout(left).expect("the script said its WebSocket URL");
            if let Some(rest) = said.strip_prefix("WebSocket URL: ") {
                return rest.split(' ').next().unwrap_or_default().to_string();
            }
        }
    }

    /// Waits for the script's next `llHTTPRequest` answer from a URL containing `part`.
    pub fn answer_from(&self, part: &str) -> (u16, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (url, status, body) = self.http_out.recv_timeout(left).expect("an llHTTPRequest answer");
            if url.contains(part) {
                return (status, body);
            }
        }
    }

    /// How the grid treats the script's requests from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.call(move |g, _, _| {
            g.mode = mode;
            if mode != Mode::Stall {
                for line in g.stalled.drain(..) {
                    let _ = g.to_py.send(line);
                }
            }
        });
    }

    /// The object is taken and rezzed again: its URLs are revoked (the
    /// script is not told yet; see [`tell_on_rez`](Grid::tell_on_rez)).
    pub fn rez(&self) {
        self.call(|g, region, now| {
            region.object_rezzed(now, g.info.object);
            g.info.object = fresh_key();
        });
    }

    /// Runs the script's `on_rez`.
    pub fn tell_on_rez(&self) {
        let _ = self.to_py.send(json!({"event": "on_rez", "param": 0}).to_string());
    }

    /// (requests that reached the URL, requests the grid answered 503).
    pub fn counts(&self) -> (u64, u64) {
        self.handle.blocking_query(|g, _, _| (g.requests, g.refused)).expect("grid running")
    }

    /// Requests kept by [`Mode::Stall`] so far.
    pub fn stalled(&self) -> usize {
        self.handle.blocking_query(|g, _, _| g.stalled.len()).expect("grid running")
    }

    /// The `x-bridge-session` of the last single delivery.
    pub fn last_session(&self) -> Option<String> {
        self.handle.blocking_query(|g, _, _| g.last_session.clone()).expect("grid running")
    }

    /// Fails the test if a handler of the script raised.
    pub fn assert_no_script_errors(&self) {
        let errors = self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(errors.is_empty(), "the script raised: {errors:?}");
    }

    fn call(&self, f: impl FnOnce(&mut GridScript, &mut Region, Instant) + Send + 'static) {
        self.handle.blocking_query(f).expect("grid running");
    }
}

impl Drop for Grid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One line from the runner: a call the grid serves, or a report for the test.
fn script_call(
    handle: &Handle<GridScript>,
    msg: Value,
    says: &Sender<String>,
    http_out: &Sender<(String, u16, String)>,
    errors: &Arc<Mutex<Vec<String>>>,
) {
    let s = |name: &str| msg[name].as_str().unwrap_or_default().to_string();
    let seq = msg["seq"].clone();
    let reply = move |g: &GridScript, value: String| {
        let _ = g.to_py.send(json!({"reply": seq, "value": value}).to_string());
    };
    let _ = match msg["op"].as_str().unwrap_or_default() {
        "request_url" => {
            let secure = msg["secure"].as_bool().unwrap_or(false);
            handle.call(move |g, region, _| {
                let key = if secure { region.request_secure_url(g.info) } else { region.request_url(g.info) };
                reply(g, key.to_string());
            })
        }
        "header" => {
            let (id, name) = (s("id"), s("name"));
            handle.call(move |g, region, _| {
                let value = id.parse().map(|id| region.http_header(g.info.script, id, &name)).unwrap_or_default();
                reply(g, value);
            })
        }
        "respond" => {
            let (id, body, status) = (s("id"), s("body"), msg["status"].as_i64().unwrap_or(500) as i32);
            handle.call(move |g, region, now| {
                if let Ok(id) = id.parse() {
                    let _ = region.http_response(now, g.info.script, id, status, &body);
                }
            })
        }
        "release_url" => {
            let url = s("url");
            handle.call(move |g, region, now| {
                let _ = region.release_url(now, g.info.script, &url);
            })
        }
        "say" => {
            let _ = says.send(s("text"));
            Ok(())
        }
        "http_out" => {
            let _ = http_out.send((s("url"), msg["status"].as_u64().unwrap_or(0) as u16, s("body")));
            Ok(())
        }
        _ => {
            let text = s("text");
            eprintln!("runner: {text}");
            errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(text);
            Ok(())
        }
    };
}
