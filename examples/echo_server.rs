//! A simulated region with two echo scripts, on the tokio adapter.
//!
//! ```text
//! cargo run --release --features tokio --example echo_server -- [--bind ADDR] [--max-message N]
//!     [--sessions-per-url N] [--handshakes-per-second N] [--worker-threads N] [--http-timeout SECS]
//! ```
//!
//! - Prints `object-url <url>`, `region-url <url>` and `http-url <url>` on
//!   stdout once listening (default `127.0.0.1:8787`; port 0 picks one), and
//!   a new line whenever one of them changes.
//! - Object "echo": its script holds an object-scope URL and sends every text
//!   back to the session it came from. It also holds an HTTP-in URL
//!   (`http://HOST:PORT/lslhttp/<cap>/`, same port) and answers each request
//!   by its `x-path-info`: `/hold` or anything under `/hold/` is never
//!   answered (the core answers 504 after `--http-timeout`, default 25 s);
//!   `/status/<n>` gets status n and an empty body; `/header/<name>` gets 200
//!   with `llGetHTTPHeader(id, name)`; `/method` gets 200 with the method;
//!   anything else gets 200 with the body as the script received it (cut to
//!   2048 bytes and transcoded to UTF-8).
//! - Object "region echo": its script listens on region domain `echo` and
//!   answers each `msg,echo,<p>` to that client as `msg,echo,<p>`.
//! - stdin, one command per line, applied to the echo object: `reset`,
//!   `rez`, `region-change`, `owner-change`, `remove`, `release`; `restart`
//!   restarts the region (both objects); `quit` closes every session and
//!   exits. Each revokes the echo script's WebSocket and HTTP-in URLs alike
//!   (`release`: the script releases both). After each, the scripts request
//!   new URLs as real scripts do.
//! - `GET /` serves a page that talks to all three URLs; `GET /urls` gives
//!   them as JSON; `GET /lslws.js` serves the page's client (WebSocket, with
//!   the server-sent events fallback of SPEC §14; the page has a switch that
//!   forces it). Line clients (SPEC §13) and event streams reach the same
//!   echo scripts as WebSocket clients do.
//! - `--sessions-per-url` and `--handshakes-per-second` raise the region's
//!   limits (defaults 256 and 400 here) for load tests such as
//!   `bench/loopback.sh`, which holds 10,000 idle sessions on one URL.
//! - The server runs on a current-thread tokio runtime (the region is one
//!   task); `--worker-threads N` runs it on a multi-thread runtime instead.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

use lsl_websocket::adapter::tokio::Server;
use lsl_websocket::adapter::{Handler, OsEntropy};
use lsl_websocket::{
    Config, ConnectionId, Entropy, Event, EventKind, HttpMethod, Key, Region, Scope, ScriptInfo, SendError,
    WebsocketRequest,
};

/// The commands stdin accepts.
const COMMANDS: [&str; 8] = ["reset", "rez", "region-change", "owner-change", "remove", "restart", "release", "quit"];

/// The demo page (served at `/`).
const PAGE: &str = include_str!("echo_page.html");

/// The WebSocket client with the server-sent events fallback (served at `/lslws.js`).
const CLIENT: &str = include_str!("lslws.js");

/// One simulated script and the URL it holds.
struct Script {
    info: ScriptInfo,
    /// `Some(domain)` for a region-scope listener.
    domain: Option<&'static str>,
    /// The line prefix its URL is printed with.
    label: &'static str,
    url: Option<String>,
    /// The HTTP-in URL (the object's script only).
    http_url: Option<String>,
    /// An echo that got `WS_ERR_BUSY`: retried before any further event is read,
    /// so a slow client slows its script down instead of losing echoes.
    pending: Option<(Key, String)>,
}

struct Echo {
    scripts: [Script; 2],
    entropy: OsEntropy,
}

/// Index of the echo object's script, which the stdin commands act on.
const OBJECT: usize = 0;
/// Index of the region-scope echo script.
const REGION: usize = 1;

impl Echo {
    fn new(mut entropy: OsEntropy) -> Echo {
        let mut info = || ScriptInfo { script: key(&mut entropy), object: key(&mut entropy), owner: key(&mut entropy) };
        let (object, region) = (info(), info());
        Echo {
            scripts: [
                Script { info: object, domain: None, label: "object-url", url: None, http_url: None, pending: None },
                Script {
                    info: region,
                    domain: Some("echo"),
                    label: "region-url",
                    url: None,
                    http_url: None,
                    pending: None,
                },
            ],
            entropy,
        }
    }

    /// What a script does in `state_entry`, `on_rez` or `changed`: ask for a URL.
    fn request(&mut self, region: &mut Region, which: usize) {
        let script = &mut self.scripts[which];
        script.url = None;
        script.pending = None;
        let scope = if script.domain.is_some() { Scope::Region } else { Scope::Object };
        let request =
            WebsocketRequest { scope, domain: script.domain.map(str::to_string), ..WebsocketRequest::default() };
        region.request_websocket(script.info, &request);
        if which == OBJECT {
            script.http_url = None;
            region.request_url(script.info);
        }
    }

    fn command(&mut self, region: &mut Region, now: Instant, command: &str) {
        let info = self.scripts[OBJECT].info;
        match command {
            "reset" => region.script_reset(now, info.script),
            "rez" => {
                region.object_rezzed(now, info.object);
                // A rezzed copy is a new object.
                self.scripts[OBJECT].info.object = key(&mut self.entropy);
            }
            "region-change" => region.object_changed_region(now, info.object),
            "owner-change" => {
                region.owner_changed(now, info.object);
                self.scripts[OBJECT].info.owner = key(&mut self.entropy);
            }
            "remove" => {
                region.object_removed(now, info.object);
                region.script_removed(now, info.script);
                // The object is gone; a fresh copy is rezzed in its place.
                let new = &mut self.scripts[OBJECT].info;
                new.object = key(&mut self.entropy);
                new.script = key(&mut self.entropy);
            }
            "release" => {
                if let Some(url) = self.scripts[OBJECT].url.take()
                    && let Err(e) = region.release_websocket(now, info.script, &url)
                {
                    eprintln!("release {url}: {e}");
                }
                if let Some(url) = self.scripts[OBJECT].http_url.take()
                    && let Err(e) = region.release_url(now, info.script, &url)
                {
                    eprintln!("release {url}: {e}");
                }
            }
            "restart" => {
                region.region_restart(now);
                self.request(region, REGION);
            }
            _ => return,
        }
        self.request(region, OBJECT);
    }

    /// Sends one echo; `false` if the client's buffer is full and it must wait.
    fn echo(&mut self, region: &mut Region, which: usize, session: Key, text: String) -> bool {
        let script = self.scripts[which].info.script;
        match region.websocket_send(script, session, &text) {
            Err(SendError::Busy) => {
                self.scripts[which].pending = Some((session, text));
                false
            }
            // The session closed meanwhile: nobody to answer.
            Ok(()) | Err(_) => true,
        }
    }

    /// Reads the script's events unless it is waiting for a busy client.
    fn run_script(&mut self, region: &mut Region, now: Instant, which: usize) {
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
                }
                EventKind::UrlGranted => {
                    let s = &mut self.scripts[which];
                    if s.url.as_deref() != Some(&*event.data) {
                        s.url = Some(event.data.to_string());
                        print_line(&format!("{} {}", s.label, event.data));
                    }
                }
                EventKind::UrlDenied => eprintln!("{} denied: {}", self.scripts[which].label, event.data),
                EventKind::Open | EventKind::Close => {}
                EventKind::Http(HttpMethod::UrlRequestGranted) => {
                    let s = &mut self.scripts[which];
                    if s.http_url.as_deref() != Some(&*event.data) {
                        s.http_url = Some(event.data.to_string());
                        print_line(&format!("http-url {}", event.data));
                    }
                }
                EventKind::Http(HttpMethod::UrlRequestDenied) => eprintln!("http-url denied: {}", event.data),
                EventKind::Http(method) => http_echo(region, now, script, &event, method),
            }
        }
    }

    fn urls_json(&self) -> String {
        let field = |url: &Option<String>| match url {
            Some(u) => format!("\"{}\"", u.replace('\\', "\\\\").replace('"', "\\\"")),
            None => "null".to_string(),
        };
        format!(
            "{{\"object\":{},\"region\":{},\"http\":{}}}",
            field(&self.scripts[OBJECT].url),
            field(&self.scripts[REGION].url),
            field(&self.scripts[OBJECT].http_url)
        )
    }
}

impl Handler for Echo {
    fn on_start(&mut self, region: &mut Region, _now: Instant) {
        self.request(region, OBJECT);
        self.request(region, REGION);
    }

    fn on_event(&mut self, _region: &mut Region, _now: Instant, _script: Key, _event: Event) {
        // Unused: `on_events` reads events itself, to stop while a client is busy.
    }

    fn on_events(&mut self, region: &mut Region, now: Instant, script: Key) {
        if let Some(which) = self.scripts.iter().position(|s| s.info.script == script) {
            self.run_script(region, now, which);
        } else {
            // A script that is gone (e.g. after `remove`): nothing listens.
            while region.poll_event(script).is_some() {}
        }
    }

    fn tick(&mut self, region: &mut Region, now: Instant) {
        for which in [OBJECT, REGION] {
            if self.scripts[which].pending.is_some() {
                self.run_script(region, now, which);
            }
        }
    }

    fn on_http_request(&mut self, region: &mut Region, _now: Instant, conn: ConnectionId, method: &str, target: &str) {
        let path = target.split('?').next().unwrap_or("");
        let answer = match (method, path) {
            ("GET", "/") => region.respond(conn, 200, "text/html; charset=utf-8", PAGE.as_bytes()),
            ("GET", "/lslws.js") => region.respond(conn, 200, "text/javascript; charset=utf-8", CLIENT.as_bytes()),
            ("GET", "/urls") => region.respond(conn, 200, "application/json", self.urls_json().as_bytes()),
            ("GET", _) => region.respond(conn, 404, "text/plain; charset=utf-8", b"not found\n"),
            _ => region.respond(conn, 405, "text/plain; charset=utf-8", b"method not allowed\n"),
        };
        // The client may have gone already; nothing to answer then.
        let _ = answer;
    }
}

/// The HTTP-in echo script's `http_request` handler: it answers by path info.
fn http_echo(region: &mut Region, now: Instant, script: Key, event: &Event, method: HttpMethod) {
    let id = event.id;
    let path = region.http_header(script, id, "x-path-info");
    let answer = if path == "/hold" || path.starts_with("/hold/") {
        return; // never answered: the core's timeout answers
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
    // The client may have gone meanwhile (a typed error); nobody to answer then.
    let _ = answer;
}

fn key(entropy: &mut OsEntropy) -> Key {
    let mut bytes = [0; 16];
    entropy.fill(&mut bytes);
    Key::from_random_bytes(bytes)
}

/// One line on stdout, flushed at once: other programs wait for it.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Args {
    bind: String,
    max_message: usize,
    sessions_per_url: usize,
    handshakes_per_second: u32,
    /// Seconds before an unanswered HTTP-in request is answered 504.
    http_timeout: u64,
    /// 0: a current-thread runtime; otherwise a multi-thread runtime with this many workers.
    worker_threads: usize,
}

const USAGE: &str = "usage: echo_server [--bind ADDR] [--max-message N] [--sessions-per-url N] [--handshakes-per-second N] \
     [--worker-threads N] [--http-timeout SECS]";

/// The value after a flag, as a positive number.
fn number<T: std::str::FromStr + PartialEq + Default>(flag: &str, value: Option<String>) -> Result<T, String> {
    let n = value.ok_or_else(|| format!("{flag} needs a number"))?;
    let parsed: T = n.parse().map_err(|_| format!("{flag}: not a number: {n}"))?;
    if parsed == T::default() {
        return Err(format!("{flag} must be at least 1"));
    }
    Ok(parsed)
}

fn parse_args() -> Result<Args, String> {
    let defaults = Config::default();
    let mut args = Args {
        bind: "127.0.0.1:8787".to_string(),
        max_message: defaults.max_message,
        sessions_per_url: defaults.sessions_per_url,
        // 200 clients connecting at once from one address must not be refused 429.
        handshakes_per_second: 400,
        worker_threads: 0,
        http_timeout: 25,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bind" => args.bind = it.next().ok_or("--bind needs an address")?,
            "--max-message" => args.max_message = number(&arg, it.next())?,
            "--sessions-per-url" => args.sessions_per_url = number(&arg, it.next())?,
            "--handshakes-per-second" => args.handshakes_per_second = number(&arg, it.next())?,
            "--worker-threads" => args.worker_threads = number(&arg, it.next())?,
            "--http-timeout" => args.http_timeout = number(&arg, it.next())?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other} ({USAGE})")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // The region is one task, so one thread serves it best: connection tasks
    // on other workers cost a cross-thread wake-up per message (bench/loopback.sh
    // measured about 30% more CPU per echo with two workers on two cores).
    let runtime = match args.worker_threads {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    };
    match runtime {
        Ok(runtime) => runtime.block_on(serve(args)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> ExitCode {
    let entropy = match OsEntropy::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        max_message: args.max_message,
        serve_other_paths: true,
        sessions_per_url: args.sessions_per_url,
        handshakes_per_second: args.handshakes_per_second,
        http_timeout: std::time::Duration::from_secs(args.http_timeout),
        ..Config::default()
    };
    let server = match Server::bind(&args.bind, config, Echo::new(entropy)).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = server.local_addr() {
        eprintln!("listening on http://{addr}/");
    }
    let handle = server.handle();
    // stdin is read on a plain thread; its end does not stop the server.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let command = line.trim().to_string();
            if command.is_empty() {
                continue;
            }
            let sent = match command.as_str() {
                "quit" => handle.shutdown(),
                c if COMMANDS.contains(&c) => handle.call(move |echo: &mut Echo, region, now| {
                    echo.command(region, now, &command);
                }),
                _ => {
                    eprintln!("unknown command {command:?}; commands: {}", COMMANDS.join(", "));
                    Ok(())
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    server.run().await;
    ExitCode::SUCCESS
}
