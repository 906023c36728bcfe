//! The echo scripts of one simulated region, as the example's [`Handler`].

use std::io::Write;
use std::time::Instant;

use lsl_websocket::adapter::{Handler, OsEntropy};
use lsl_websocket::{
    ConnectionId, Entropy, Event, EventKind, HttpMethod, Key, Region, Scope, ScriptInfo, SendError, WebsocketRequest,
};

/// The demo page (served at `/`).
const PAGE: &str = include_str!("../echo_page.html");

/// The WebSocket client with the server-sent events fallback (served at `/lslws.js`).
const CLIENT: &str = include_str!("../lslws.js");

/// One simulated script and the URLs it holds.
struct Script {
    info: ScriptInfo,
    /// `Some(domain)` for a region-scope listener.
    domain: Option<&'static str>,
    /// `object` or `region`: its lines are `<label>-url` and `secure-object-url`.
    label: &'static str,
    url: Option<String>,
    secure_url: Option<String>,
    /// The HTTP-in URLs (object scripts only).
    http_url: Option<String>,
    secure_http_url: Option<String>,
    /// An echo that got `WS_ERR_BUSY`: retried before any further event is read,
    /// so a slow client slows its script down instead of losing echoes.
    pending: Option<(Key, String)>,
}

impl Script {
    fn new(info: ScriptInfo, domain: Option<&'static str>) -> Script {
        let label = if domain.is_some() { "region" } else { "object" };
        Script {
            info,
            domain,
            label,
            url: None,
            secure_url: None,
            http_url: None,
            secure_http_url: None,
            pending: None,
        }
    }
}

/// One region's scripts: the region-scope echo, and the echo objects (the
/// last one is "the echo object" stdin commands act on; more than one only
/// after an object crossed in from another region).
pub struct Echo {
    scripts: Vec<Script>,
    entropy: OsEntropy,
    /// Also request `wss://` and `https://` URLs (there is a TLS listener).
    secure: bool,
    /// Appended to every printed line (` region=<index>` with many regions).
    suffix: String,
}

/// Index of the region-scope echo script.
const REGION: usize = 0;

impl Echo {
    pub fn new(mut entropy: OsEntropy, secure: bool, suffix: String) -> Echo {
        let region = Script::new(info(&mut entropy), Some("echo"));
        let object = Script::new(info(&mut entropy), None);
        Echo { scripts: vec![region, object], entropy, secure, suffix }
    }

    /// The echo object stdin commands act on.
    fn object(&self) -> usize {
        self.scripts.len() - 1
    }

    /// What a script does in `state_entry`, `on_rez` or `changed`: ask for its URLs.
    fn request(&mut self, region: &mut Region, which: usize) {
        let secure = self.secure;
        let script = &mut self.scripts[which];
        (script.url, script.secure_url, script.pending) = (None, None, None);
        let scope = if script.domain.is_some() { Scope::Region } else { Scope::Object };
        let domain = script.domain.map(str::to_string);
        let request = WebsocketRequest { scope, domain, ..WebsocketRequest::default() };
        region.request_websocket(script.info, &request);
        // The region endpoint is one URL per region, plain only in the core
        // (a secure region-scope request is denied `bad-option`).
        if secure && script.domain.is_none() {
            region.request_websocket(script.info, &WebsocketRequest { secure: true, ..request });
        }
        if script.domain.is_none() {
            (script.http_url, script.secure_http_url) = (None, None);
            region.request_url(script.info);
            if secure {
                region.request_secure_url(script.info);
            }
        }
    }

    /// A stdin command for the echo object (or, `restart`, the region).
    pub fn command(&mut self, region: &mut Region, now: Instant, command: &str) {
        let object = self.object();
        let info = self.scripts[object].info;
        match command {
            "reset" => region.script_reset(now, info.script),
            "rez" => {
                region.object_rezzed(now, info.object);
                // A rezzed copy is a new object.
                self.scripts[object].info.object = key(&mut self.entropy);
            }
            "region-change" => region.object_changed_region(now, info.object),
            "owner-change" => {
                region.owner_changed(now, info.object);
                self.scripts[object].info.owner = key(&mut self.entropy);
            }
            "remove" => {
                region.object_removed(now, info.object);
                region.script_removed(now, info.script);
                // The object is gone; a fresh copy is rezzed in its place.
                self.scripts[object].info = self::info(&mut self.entropy);
            }
            "release" => {
                let s = &mut self.scripts[object];
                for url in [s.url.take(), s.secure_url.take()].into_iter().flatten() {
                    if let Err(e) = region.release_websocket(now, info.script, &url) {
                        eprintln!("release {url}: {e}");
                    }
                }
                for url in [s.http_url.take(), s.secure_http_url.take()].into_iter().flatten() {
                    if let Err(e) = region.release_url(now, info.script, &url) {
                        eprintln!("release {url}: {e}");
                    }
                }
            }
            "restart" => {
                region.region_restart(now);
                // Every script in the region starts again; the echo object asks last.
                for which in 0..object {
                    self.request(region, which);
                }
            }
            _ => return,
        }
        self.request(region, object);
    }

    /// The echo object leaves this region (SPEC §4 `region change`: its URLs
    /// are revoked here). A fresh echo object is rezzed if it was the last.
    pub fn leave(&mut self, region: &mut Region, now: Instant) -> ScriptInfo {
        let object = self.object();
        let gone = self.scripts.remove(object).info;
        region.object_changed_region(now, gone.object);
        if self.object() == REGION {
            self.scripts.push(Script::new(info(&mut self.entropy), None));
            self.request(region, self.object());
        }
        gone
    }

    /// An object arrives from another region: it becomes this region's echo
    /// object and asks for URLs here, as its `changed(CHANGED_REGION)` does.
    pub fn arrive(&mut self, region: &mut Region, info: ScriptInfo) {
        self.scripts.push(Script::new(info, None));
        self.request(region, self.object());
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

    /// Prints `name url` when the URL changed.
    fn granted(&mut self, which: usize, http: bool, url: &str) {
        let s = &mut self.scripts[which];
        let secure = url.starts_with("wss://") || url.starts_with("https://");
        let (slot, name) = match (http, secure) {
            (false, false) => (&mut s.url, format!("{}-url", s.label)),
            (false, true) => (&mut s.secure_url, format!("secure-{}-url", s.label)),
            (true, false) => (&mut s.http_url, "http-url".to_string()),
            (true, true) => (&mut s.secure_http_url, "secure-http-url".to_string()),
        };
        if slot.as_deref() != Some(url) {
            *slot = Some(url.to_string());
            print_line(&format!("{name} {url}{}", self.suffix));
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
                EventKind::UrlGranted => self.granted(which, false, &event.data),
                EventKind::UrlDenied => {
                    eprintln!("{}-url denied: {}{}", self.scripts[which].label, event.data, self.suffix)
                }
                EventKind::Open | EventKind::Close => {}
                EventKind::Http(HttpMethod::UrlRequestGranted) => self.granted(which, true, &event.data),
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
        let (object, region) = (&self.scripts[self.object()], &self.scripts[REGION]);
        format!(
            "{{\"object\":{},\"region\":{},\"http\":{},\"secure_object\":{},\"secure_region\":{},\"secure_http\":{}}}",
            field(&object.url),
            field(&region.url),
            field(&object.http_url),
            field(&object.secure_url),
            field(&region.secure_url),
            field(&object.secure_http_url)
        )
    }
}

impl Handler for Echo {
    fn on_start(&mut self, region: &mut Region, _now: Instant) {
        self.request(region, self.object());
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
        for which in 0..self.scripts.len() {
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

fn info(entropy: &mut OsEntropy) -> ScriptInfo {
    ScriptInfo { script: key(entropy), object: key(entropy), owner: key(entropy) }
}

fn key(entropy: &mut OsEntropy) -> Key {
    let mut bytes = [0; 16];
    entropy.fill(&mut bytes);
    Key::from_random_bytes(bytes)
}

/// One line on stdout, flushed at once: other programs wait for it.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
