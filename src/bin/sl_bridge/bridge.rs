//! The bridge's region: one local script per registered remote script, plus
//! the control script whose HTTP-in URL takes the pushes.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use lsl_websocket::adapter::tokio::Handle;
use lsl_websocket::adapter::{Handler, OsEntropy};
use lsl_websocket::{
    ConnectionId, Entropy, Event, EventKind, HttpMethod, Key, Region, ScriptInfo, SendError, WebsocketRequest,
};

use crate::policy::{Done, Limits, Queue};
use crate::wire::{self, Kind, Push, Record};
use crate::{grid, stats::Stats};

/// What the operator chose.
pub struct Settings {
    /// The shared secret scripts sign registrations and pushes with.
    pub secret: String,
    /// Per-script delivery policy.
    pub limits: Limits,
    /// Whole-request timeout of one delivery.
    pub request_timeout: Duration,
    /// Also mint a `wss://` URL per script (the region has a TLS endpoint).
    pub secure: bool,
}

/// One registered remote script.
struct Remote {
    token: String,
    ws: Option<String>,
    wss: Option<String>,
    /// URL requests still unanswered.
    grants_pending: u8,
    sessions: BTreeSet<Key>,
    queue: Queue,
    /// Registrations waiting for the URLs to be granted.
    waiting: Vec<ConnectionId>,
}

/// The bridge's [`Handler`].
pub struct Bridge {
    settings: Settings,
    entropy: OsEntropy,
    control: ScriptInfo,
    push_url: Option<String>,
    remotes: HashMap<Key, Remote>,
    tokens: HashMap<String, Key>,
    client: reqwest::Client,
    handle: Option<Handle<Bridge>>,
    /// The earliest policy deadline a timer task is sleeping for.
    armed: Option<Instant>,
    stats: Stats,
}

const TEXT: &str = "text/plain; charset=utf-8";
/// Close code for a session whose delivery failed for good (application range; 1011 is not the script API's).
pub const DELIVERY_FAILED: u16 = 4502;
/// Close code for a client that did not take a broadcast (the core's region scope uses 1008).
pub const TOO_SLOW: u16 = 4008;

fn new_key(entropy: &mut OsEntropy) -> Key {
    let mut bytes = [0; 16];
    entropy.fill(&mut bytes);
    Key::from_random_bytes(bytes)
}

fn new_script(entropy: &mut OsEntropy) -> ScriptInfo {
    ScriptInfo { script: new_key(entropy), object: new_key(entropy), owner: new_key(entropy) }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Bridge {
    /// A bridge with no scripts yet.
    pub fn new(settings: Settings, mut entropy: OsEntropy, client: reqwest::Client) -> Bridge {
        let control = new_script(&mut entropy);
        Bridge {
            settings,
            entropy,
            control,
            push_url: None,
            remotes: HashMap::new(),
            tokens: HashMap::new(),
            client,
            handle: None,
            armed: None,
            stats: Stats::default(),
        }
    }

    /// Gives the bridge its own handle, for delivery tasks and timers to report back.
    pub fn set_handle(&mut self, handle: Handle<Bridge>) {
        self.handle = Some(handle);
    }

    // -------------------------------------------------------------- registration

    fn register(&mut self, region: &mut Region, now: Instant, conn: ConnectionId, target: &str) {
        let answer = |region: &mut Region, status: u16, body: &str| {
            let _ = region.respond(conn, status, TEXT, body.as_bytes());
        };
        let Some(reg) = wire::parse_registration(target) else {
            return answer(region, 400, "usage: /register?url=<HTTP-in URL>&token=<token or empty>&sig=<sha256>\n");
        };
        if !wire::signature_ok(&self.settings.secret, &reg) {
            self.stats.refused += 1;
            return answer(region, 403, "bad signature\n");
        }
        if !wire::plausible_http_url(&reg.url) {
            return answer(region, 400, "url must be an http:// or https:// URL\n");
        }
        if self.push_url.is_none() {
            return answer(region, 503, "starting\n");
        }
        self.stats.registrations += 1;
        if let Some(script) = self.tokens.get(&reg.token).copied()
            && let Some(remote) = self.remotes.get_mut(&script)
        {
            // A known script with a new HTTP-in URL: its sessions survive.
            remote.queue.register(reg.url);
            remote.waiting.push(conn);
            self.answer_registrations(region, script);
            self.pump(now, script);
            return;
        }
        let info = new_script(&mut self.entropy);
        let token = new_key(&mut self.entropy).to_string();
        region.request_websocket(info, &WebsocketRequest::default());
        if self.settings.secure {
            region.request_websocket(info, &WebsocketRequest { secure: true, ..WebsocketRequest::default() });
        }
        let remote = Remote {
            token: token.clone(),
            ws: None,
            wss: None,
            grants_pending: 1 + u8::from(self.settings.secure),
            sessions: BTreeSet::new(),
            queue: Queue::new(self.settings.limits.clone(), reg.url),
            waiting: vec![conn],
        };
        self.tokens.insert(token, info.script);
        self.remotes.insert(info.script, remote);
    }

    /// Answers the registrations waiting for `script`'s URLs, once granted:
    /// `token`, `push URL`, `ws:// URL` and, with TLS, `wss:// URL`, one per line.
    fn answer_registrations(&mut self, region: &mut Region, script: Key) {
        let push = self.push_url.clone().unwrap_or_default();
        let Some(remote) = self.remotes.get_mut(&script) else { return };
        if remote.grants_pending > 0 {
            return;
        }
        let (status, body) = match &remote.ws {
            Some(ws) => {
                let mut body = format!("{}\n{push}push\n{ws}\n", remote.token);
                if let Some(wss) = &remote.wss {
                    body.push_str(wss);
                    body.push('\n');
                }
                (200, body)
            }
            None => (503, "no WebSocket URL could be had\n".to_string()),
        };
        for conn in remote.waiting.drain(..) {
            let _ = region.respond(conn, status, TEXT, body.as_bytes());
        }
        if remote.ws.is_none() {
            // Denied (the region's URL budget is spent): nothing to keep; the script retries.
            let token = remote.token.clone();
            self.tokens.remove(&token);
            self.remotes.remove(&script);
        }
    }

    fn granted(&mut self, region: &mut Region, script: Key, event: &Event) {
        let Some(remote) = self.remotes.get_mut(&script) else { return };
        remote.grants_pending = remote.grants_pending.saturating_sub(1);
        if event.kind == EventKind::UrlGranted {
            if event.data.starts_with("wss://") {
                remote.wss = Some(event.data.to_string());
            } else {
                remote.ws = Some(event.data.to_string());
            }
        } else {
            eprintln!("sl_bridge: WebSocket URL denied: {}", event.data);
        }
        self.answer_registrations(region, script);
    }

    // ------------------------------------------------------------------ pushes

    fn control_event(&mut self, region: &mut Region, now: Instant, event: Event) {
        match event.kind {
            EventKind::Http(HttpMethod::UrlRequestGranted) => {
                let url = event.data.to_string();
                print_line(&format!("push-url {url}push"));
                self.push_url = Some(url);
            }
            EventKind::Http(HttpMethod::UrlRequestDenied) => eprintln!("sl_bridge: no push URL: {}", event.data),
            EventKind::Http(_) => {
                let (status, body) = self.push(region, now, &event);
                let _ = region.http_response(now, self.control.script, event.id, status, &body);
            }
            _ => {}
        }
    }

    /// One push request: checks the secret and the token, applies each line.
    fn push(&mut self, region: &mut Region, now: Instant, event: &Event) -> (i32, String) {
        let header = |name| region.http_header(self.control.script, event.id, name);
        if header("x-path-info") != "/push" {
            return (404, "not found\n".into());
        }
        if !wire::same_secret(&header("x-bridge-secret"), &self.settings.secret) {
            self.stats.refused += 1;
            return (403, "bad secret\n".into());
        }
        let Some(script) = self.tokens.get(&header("x-bridge-token")).copied() else {
            // Unknown or expired: the script registers again.
            return (404, "unknown token: register again\n".into());
        };
        self.stats.pushes += 1;
        let lines = wire::parse_push(&event.data);
        let statuses: Vec<String> = lines.into_iter().map(|p| self.apply(region, now, script, p).to_string()).collect();
        (200, statuses.join("\n"))
    }

    /// One push line (from a push, or from the answer to a batch delivery); its `WS_*` status.
    fn apply(&mut self, region: &mut Region, now: Instant, script: Key, push: Push) -> i32 {
        self.stats.push_lines += 1;
        let Some(remote) = self.remotes.get(&script) else { return SendError::NoSession.code() };
        let status = |r: Result<(), SendError>| r.err().map_or(lsl_websocket::script::WS_OK, SendError::code);
        match push {
            Push::Send(session, text) if remote.sessions.contains(&session) => {
                status(region.websocket_send(script, session, &text))
            }
            Push::Broadcast(text) => {
                if text.len() > region.config().max_message {
                    return SendError::TooLarge.code();
                }
                let sessions: Vec<Key> = remote.sessions.iter().copied().collect();
                for session in sessions {
                    // As the core's region broadcast does: a client that cannot take it is closed, not skipped.
                    if region.websocket_send(script, session, &text) == Err(SendError::Busy) {
                        let _ = region.websocket_close(now, script, session, TOO_SLOW, "too slow");
                    }
                }
                lsl_websocket::script::WS_OK
            }
            Push::Close(session, reason) if remote.sessions.contains(&session) => {
                match region.websocket_close(now, script, session, 1000, cut(&reason, 123)) {
                    Ok(()) => lsl_websocket::script::WS_OK,
                    Err(_) => SendError::NoSession.code(),
                }
            }
            _ => SendError::NoSession.code(),
        }
    }

    // -------------------------------------------------------------- deliveries

    /// Takes the script's client events into its queue while there is room;
    /// the rest stay in the core, whose full queue pauses the clients' reading.
    fn pull(&mut self, region: &mut Region, script: Key) {
        loop {
            let Some(remote) = self.remotes.get_mut(&script) else { return };
            if !remote.queue.has_room() {
                return;
            }
            let Some(event) = region.poll_event(script) else { return };
            let kind = match event.kind {
                EventKind::Open => {
                    remote.sessions.insert(event.id);
                    Kind::Open
                }
                EventKind::Text => Kind::Text,
                EventKind::Close => {
                    remote.sessions.remove(&event.id);
                    Kind::Close
                }
                EventKind::UrlGranted | EventKind::UrlDenied => {
                    self.granted(region, script, &event);
                    continue;
                }
                EventKind::Http(_) => continue,
            };
            self.stats.client_events += 1;
            remote.queue.push(Record { session: event.id, kind, text: event.data.to_string() });
        }
    }

    /// Sends every delivery the policy lets go now.
    fn pump(&mut self, now: Instant, script: Key) {
        let (Some(remote), Some(handle)) = (self.remotes.get_mut(&script), self.handle.as_ref()) else { return };
        while let Some(delivery) = remote.queue.poll_delivery(now) {
            self.stats.deliveries += 1;
            if delivery.event == "batch" {
                self.stats.batches += 1;
            }
            let (client, handle, timeout) = (self.client.clone(), handle.clone(), self.settings.request_timeout);
            tokio::spawn(async move {
                let outcome = grid::deliver(&client, &delivery, timeout).await;
                let _ = handle.call(move |bridge: &mut Bridge, region, now| {
                    bridge.finished(region, now, script, delivery.id, outcome);
                });
            });
        }
        self.arm();
    }

    fn finished(
        &mut self,
        region: &mut Region,
        now: Instant,
        script: Key,
        id: crate::policy::DeliveryId,
        outcome: crate::policy::Outcome,
    ) {
        let Some(remote) = self.remotes.get_mut(&script) else { return };
        match &outcome {
            crate::policy::Outcome::Busy(_) | crate::policy::Outcome::Unreachable(_) => self.stats.retries += 1,
            crate::policy::Outcome::Gone => self.stats.gone += 1,
            _ => {}
        }
        match remote.queue.finished(now, id, outcome) {
            Done::Answered { records, batch: false, body } => {
                if !body.is_empty() && records[0].kind != Kind::Close {
                    self.reply(region, now, script, Push::Send(records[0].session, body));
                }
            }
            Done::Answered { batch: true, body, .. } => {
                for push in wire::parse_push(&body) {
                    self.reply(region, now, script, push);
                }
            }
            Done::Failed { sessions, reason } => {
                self.stats.failures += 1;
                eprintln!("sl_bridge: delivery failed: {reason}");
                let reason = format!("delivery failed: {reason}");
                for session in sessions {
                    let _ = region.websocket_close(now, script, session, DELIVERY_FAILED, cut(&reason, 123));
                }
            }
            Done::Waiting | Done::Unknown => {}
        }
        self.pull(region, script);
        self.pump(now, script);
    }

    /// A reply from the script's answer: nobody waits for its status, so a
    /// client too far behind to take it is closed rather than skipped, and a
    /// reply over 2048 bytes is logged.
    fn reply(&mut self, region: &mut Region, now: Instant, script: Key, push: Push) {
        let session = match &push {
            Push::Send(session, _) => Some(*session),
            _ => None,
        };
        let status = self.apply(region, now, script, push);
        if status == SendError::Busy.code()
            && let Some(session) = session
        {
            let _ = region.websocket_close(now, script, session, TOO_SLOW, "too slow");
        } else if status == SendError::TooLarge.code() {
            eprintln!("sl_bridge: a script's reply over {} bytes was not sent", region.config().max_message);
        }
    }

    // -------------------------------------------------------------- timers

    /// Makes sure a timer task wakes the bridge at the earliest policy deadline.
    fn arm(&mut self) {
        let Some(at) = self.remotes.values().filter_map(|r| r.queue.poll_timeout()).min() else { return };
        if self.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        let Some(handle) = self.handle.clone() else { return };
        self.armed = Some(at);
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let _ = handle.call(|bridge: &mut Bridge, region, now| bridge.on_timer(region, now));
        });
    }

    fn on_timer(&mut self, region: &mut Region, now: Instant) {
        if self.armed.is_some_and(|at| at <= now) {
            self.armed = None;
        }
        let expired: Vec<Key> =
            self.remotes.iter().filter(|(_, r)| r.queue.grace_expired(now)).map(|(k, _)| *k).collect();
        for script in expired {
            self.expire(region, now, script);
        }
        let scripts: Vec<Key> = self.remotes.keys().copied().collect();
        for script in scripts {
            self.pump(now, script);
        }
        self.arm();
    }

    /// The script's HTTP-in URL was revoked and no re-registration came
    /// within the grace: its URLs die and its sessions close with 1001.
    fn expire(&mut self, region: &mut Region, now: Instant, script: Key) {
        let Some(remote) = self.remotes.remove(&script) else { return };
        self.tokens.remove(&remote.token);
        self.stats.expired += 1;
        eprintln!(
            "sl_bridge: script {} gone: its HTTP-in URL was revoked and it did not register again within {} s",
            remote.token,
            self.settings.limits.grace.as_secs()
        );
        let reason = format!("script gone: not registered again within {} s", self.settings.limits.grace.as_secs());
        for url in [remote.ws, remote.wss].into_iter().flatten() {
            let _ = region.release_websocket_with_reason(now, script, &url, &reason);
        }
    }

    fn stats_json(&self) -> String {
        let sessions = self.remotes.values().map(|r| r.sessions.len()).sum();
        let queued = self.remotes.values().map(|r| r.queue.queued()).sum();
        let in_flight = self.remotes.values().map(|r| r.queue.in_flight()).sum();
        let gone = self.remotes.values().filter(|r| r.queue.is_gone()).count();
        self.stats.json(self.remotes.len(), sessions, queued, in_flight, gone)
    }
}

impl Handler for Bridge {
    fn on_start(&mut self, region: &mut Region, _now: Instant) {
        // Behind TLS the push URL is https://, since every push carries the secret.
        if self.settings.secure {
            region.request_secure_url(self.control);
        } else {
            region.request_url(self.control);
        }
    }

    fn on_event(&mut self, _region: &mut Region, _now: Instant, _script: Key, _event: Event) {
        // Unused: `on_events` takes events itself, only while a queue has room.
    }

    fn on_events(&mut self, region: &mut Region, now: Instant, script: Key) {
        if script == self.control.script {
            while let Some(event) = region.poll_event(script) {
                self.control_event(region, now, event);
            }
        } else if self.remotes.contains_key(&script) {
            self.pull(region, script);
            self.pump(now, script);
        } else {
            while region.poll_event(script).is_some() {}
        }
    }

    fn on_http_request(&mut self, region: &mut Region, now: Instant, conn: ConnectionId, method: &str, target: &str) {
        let path = target.split('?').next().unwrap_or("");
        match (method, path) {
            ("GET" | "POST", "/register") => self.register(region, now, conn, target),
            ("GET", "/stats") => {
                let _ = region.respond(conn, 200, "application/json", self.stats_json().as_bytes());
            }
            _ => {
                let _ = region.respond(conn, 404, TEXT, b"not found\n");
            }
        }
    }
}

/// One line on stdout, flushed at once: other programs wait for it.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
