//! The interpreter: drives one `Region` through a scenario's steps with a
//! fake clock and seeded entropy, using the public API only.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use lsl_websocket::{
    Config, ConnectionId, ContentType, HttpError, Input, Key, Output, Region, Scope, ScriptInfo, SeededEntropy,
    WebsocketRequest, clep,
};

use super::lex::{Expr, Op};
use super::parse::{Step, is_name, parse};
use super::wire::{DEFAULT_MASK, FrameSpec, Item, Mode, Reader, classify_line, parse_hex, show_bytes};

// Line clients (SPEC §13): the `lines` and `line` steps, and sending on a line client.
mod lines;
// SSE clients (SPEC §14): the `sse` step, `expect sse` and `expect heartbeat`.
mod sse;

/// The seed of the region's entropy. Scenarios never depend on it.
const SEED: u64 = 0x15_1e_50_c6;
/// The remote address of a client that names none.
const DEFAULT_REMOTE: &str = "192.0.2.1";
/// The `Sec-WebSocket-Key` a client sends unless told otherwise (RFC 6455 §1.3's example).
const DEFAULT_WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Names the runner defines itself.
const RESERVED: [&str; 3] = ["region", "authority", "secure_authority"];

/// One failed step.
#[derive(Debug, Clone)]
pub struct Failure {
    pub line: usize,
    pub step: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {}\n      expected: {}\n      actual:   {}",
            self.line, self.step, self.expected, self.actual
        )
    }
}

/// A step's failure before it is tagged with its line.
struct Miss {
    expected: String,
    actual: String,
}

fn miss(expected: impl Into<String>, actual: impl Into<String>) -> Miss {
    Miss { expected: expected.into(), actual: actual.into() }
}

/// A mistake in the scenario itself rather than in the engine.
fn bad(msg: impl Into<String>) -> Miss {
    miss("a valid step", msg)
}

type Res<T = ()> = Result<T, Miss>;

/// Parses and runs a scenario; `Err` on the first failing step.
pub fn run_scenario(text: &str) -> Result<(), Failure> {
    let steps = parse(text).map_err(|(line, step, msg)| Failure {
        line,
        step,
        expected: "a step in the format of conformance/FORMAT.md".into(),
        actual: msg,
    })?;
    let mut runner = Runner::new();
    let tag = |step: &Step, m: Miss| Failure {
        line: step.line,
        step: step.text.clone(),
        expected: m.expected,
        actual: m.actual,
    };
    for step in &steps {
        runner.step(step).map_err(|m| tag(step, m))?;
    }
    let end = Step {
        line: text.lines().count() + 1,
        text: "(end of scenario: implicit `expect nothing`)".into(),
        verb: "expect nothing".into(),
        pos: Vec::new(),
        keyed: Vec::new(),
    };
    runner.step(&end).map_err(|m| tag(&end, m))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    Paused,
    Resumed,
}

#[derive(Debug)]
struct Client {
    conn: ConnectionId,
    reader: Reader,
    /// `Output::Close` was seen: the server closes the connection once its bytes are read.
    server_closed: bool,
    /// `expect closed` consumed the close.
    close_seen: bool,
    /// The client closed the TCP connection.
    disconnected: bool,
    paused: bool,
    /// Bytes sent while the server paused reading, in order.
    held: VecDeque<Vec<u8>>,
    notices: VecDeque<Notice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Script,
    Object,
    Owner,
    Value,
}

enum Return {
    None,
    Void(String),
    Value(String, String),
}

struct Runner {
    config: Config,
    region: Option<Region>,
    t0: Instant,
    now: Instant,
    bindings: HashMap<String, String>,
    kinds: HashMap<String, Kind>,
    scripts: BTreeMap<String, ScriptInfo>,
    clients: BTreeMap<String, Client>,
    next_conn: u64,
    next_key: u64,
    revoked: Vec<(String, String)>,
    last_return: Return,
    /// Outputs the runner cannot attribute (an engine bug, reported at the next check).
    strays: Vec<String>,
}

fn open_client(clients: &mut BTreeMap<String, Client>, conn: ConnectionId) -> Option<&mut Client> {
    clients.values_mut().find(|c| c.conn == conn && !c.disconnected)
}

impl Runner {
    fn new() -> Runner {
        let t0 = Instant::now();
        Runner {
            config: Config::default(),
            region: None,
            t0,
            now: t0,
            bindings: HashMap::new(),
            kinds: HashMap::new(),
            scripts: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_conn: 1,
            next_key: 1,
            revoked: Vec::new(),
            last_return: Return::None,
            strays: Vec::new(),
        }
    }

    fn region(&mut self) -> &mut Region {
        let (config, t0) = (self.config.clone(), self.t0);
        self.region.get_or_insert_with(|| Region::new(config, Box::new(SeededEntropy::new(SEED)), t0))
    }

    // ------------------------------------------------------------ values

    fn lookup(&self, name: &str) -> Option<String> {
        match name {
            "region" => self.region.as_ref().map(Region::region_url),
            "authority" => Some(self.config.authority.clone()),
            "secure_authority" => self.config.secure_authority.clone(),
            _ => self.bindings.get(name).cloned(),
        }
    }

    fn eval(&mut self, expr: &Expr) -> Res<String> {
        self.region();
        expr.eval(&|n| self.lookup(n)).map_err(bad)
    }

    fn arg(&mut self, step: &Step, i: usize) -> Res<String> {
        let (_, e) = step.pos.get(i).ok_or_else(|| bad(format!("missing argument {}", i + 1)))?;
        self.eval(&e.clone())
    }

    fn opt(&mut self, step: &Step, key: &str) -> Res<Option<String>> {
        match step.keyed.iter().find(|(k, ..)| k == key) {
            Some((_, _, e)) => self.eval(&e.clone()).map(Some),
            None => Ok(None),
        }
    }

    fn all(&mut self, step: &Step, key: &str) -> Res<Vec<String>> {
        let exprs: Vec<Expr> = step.keyed.iter().filter(|(k, ..)| k == key).map(|(_, _, e)| e.clone()).collect();
        exprs.iter().map(|e| self.eval(e)).collect()
    }

    fn name(step: &Step, i: usize) -> String {
        step.pos[i].1.literal().unwrap_or_default()
    }

    fn key(&mut self, step: &Step, i: usize) -> Res<Key> {
        let text = self.arg(step, i)?;
        text.parse().map_err(|_| bad(format!("argument {} is not a key: {text:?}", i + 1)))
    }

    fn mint(&mut self) -> Key {
        let n = self.next_key;
        self.next_key += 1;
        let mut bytes = [0x5c; 16];
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        Key::from_random_bytes(bytes)
    }

    /// Binds `name` to a fresh key unless it already names a thing of `kind`.
    fn declare(&mut self, name: &str, kind: Kind) -> Res<Key> {
        if RESERVED.contains(&name) || self.clients.contains_key(name) {
            return Err(bad(format!("`{name}` is reserved or names a client")));
        }
        match self.kinds.get(name) {
            Some(k) if *k == kind => Ok(self.bindings[name].parse().expect("declared keys parse")),
            Some(k) => Err(bad(format!("`{name}` already names a {k:?}"))),
            None => {
                let key = self.mint();
                self.bindings.insert(name.to_string(), key.to_string());
                self.kinds.insert(name.to_string(), kind);
                Ok(key)
            }
        }
    }

    fn named(&self, name: &str, kind: Kind) -> Res<Key> {
        match self.kinds.get(name) {
            Some(k) if *k == kind => Ok(self.bindings[name].parse().expect("declared keys parse")),
            _ => Err(bad(format!("`{name}` is not a declared {}", format!("{kind:?}").to_lowercase()))),
        }
    }

    fn script(&self, step: &Step) -> Res<ScriptInfo> {
        let name = Self::name(step, 0);
        self.scripts.get(&name).copied().ok_or_else(|| bad(format!("`{name}` is not a declared script")))
    }

    fn client_name(&self, step: &Step) -> Res<String> {
        let name = Self::name(step, 0);
        if self.clients.contains_key(&name) {
            Ok(name)
        } else {
            Err(bad(format!("`{name}` is not a connected client")))
        }
    }

    fn duration(text: &str) -> Res<Duration> {
        let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
        let n: u64 = digits.parse().map_err(|_| bad(format!("bad duration {text:?}")))?;
        match unit {
            "ms" => Ok(Duration::from_millis(n)),
            "s" => Ok(Duration::from_secs(n)),
            "m" => Ok(Duration::from_secs(60 * n)),
            _ => Err(bad(format!("bad duration {text:?} (units: ms, s, m)"))),
        }
    }

    fn int<T: std::str::FromStr>(text: &str) -> Res<T> {
        text.parse().map_err(|_| bad(format!("not a number: {text:?}")))
    }

    fn boolean(text: &str) -> Res<bool> {
        match text {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(bad(format!("not a boolean: {text:?} (true, false, 1, 0)"))),
        }
    }

    // ------------------------------------------------------------ matching

    /// Checks `actual` against a matcher; binds are returned, to apply once every check passed.
    fn check(
        &mut self,
        field: &str,
        op: Op,
        value: &Expr,
        actual: &str,
        fails: &mut Vec<String>,
        binds: &mut Vec<(String, String)>,
    ) -> Res {
        if op == Op::Bind {
            let name = value.single_var().unwrap_or_default().to_string();
            if RESERVED.contains(&name.as_str())
                || self.lookup(&name).is_some()
                || binds.iter().any(|(n, _)| *n == name)
            {
                return Err(bad(format!("${name} is already bound")));
            }
            if field == "id"
                && let Some((other, _)) = self.bindings.iter().find(|(_, v)| *v == actual)
            {
                fails.push(format!("=>${name}: a key never seen before (keys are never reused; ${other} holds it)"));
                return Ok(());
            }
            binds.push((name, actual.to_string()));
            return Ok(());
        }
        let expected = self.eval(value)?;
        let ok = match op {
            Op::Eq => actual == expected,
            Op::Ne => actual != expected,
            Op::Prefix => actual.starts_with(&expected),
            Op::Bind => unreachable!(),
        };
        if !ok {
            let label = if field.is_empty() { String::new() } else { field.to_string() };
            fails.push(format!("{label}{op}{expected:?}"));
        }
        Ok(())
    }

    fn finish(&mut self, fails: Vec<String>, binds: Vec<(String, String)>, actual: impl FnOnce() -> String) -> Res {
        if !fails.is_empty() {
            return Err(miss(fails.join(" "), actual()));
        }
        for (name, value) in binds {
            self.bindings.insert(name.clone(), value);
            self.kinds.insert(name, Kind::Value);
        }
        Ok(())
    }

    // ------------------------------------------------------------ transport

    /// Drains `poll_output`, attributes each output, and hands held bytes to
    /// sessions whose reading resumed.
    fn drain(&mut self) {
        if self.region.is_none() {
            return;
        }
        loop {
            while let Some(output) = self.region().poll_output() {
                match output {
                    Output::Transmit(_) | Output::Events(_) => {}
                    Output::Close(conn) => match open_client(&mut self.clients, conn) {
                        Some(c) => c.server_closed = true,
                        None => self.strays.push(format!("Close({conn:?}) for no open client")),
                    },
                    Output::PauseReading(conn) => match open_client(&mut self.clients, conn) {
                        Some(c) => {
                            c.paused = true;
                            c.notices.push_back(Notice::Paused);
                        }
                        None => self.strays.push(format!("PauseReading({conn:?}) for no open client")),
                    },
                    Output::ResumeReading(conn) => match open_client(&mut self.clients, conn) {
                        Some(c) => {
                            c.paused = false;
                            c.notices.push_back(Notice::Resumed);
                        }
                        None => self.strays.push(format!("ResumeReading({conn:?}) for no open client")),
                    },
                    Output::HttpRequest { conn, method, target } => {
                        self.strays.push(format!("HttpRequest({conn:?}, {method} {target})"));
                    }
                    Output::Revoked { url, cause } => self.revoked.push((url, cause.reason().to_string())),
                    Output::ListenerStopped { .. } => {}
                }
            }
            let next = self.clients.values_mut().find(|c| !c.paused && !c.server_closed && !c.held.is_empty());
            let Some(c) = next else { break };
            let (conn, bytes) = (c.conn, c.held.pop_front().unwrap_or_default());
            let now = self.now;
            if let Err(e) = self.region().handle_input(now, Input::Received { conn, data: &bytes }) {
                self.strays.push(format!("held bytes refused: {e}"));
            }
        }
    }

    /// The client sends bytes, in `chunk`-sized reads, honouring pause and close.
    fn send(&mut self, name: &str, bytes: &[u8], chunk: Option<usize>) -> Res {
        let c = &self.clients[name];
        if c.disconnected {
            return Err(bad(format!("client `{name}` has disconnected")));
        }
        let size = chunk.unwrap_or(bytes.len()).max(1);
        for piece in bytes.chunks(size) {
            let c = self.clients.get_mut(name).expect("checked");
            if c.server_closed {
                // The server closed the connection: what the client still writes is lost.
                return Ok(());
            }
            if c.paused || !c.held.is_empty() {
                c.held.push_back(piece.to_vec());
                continue;
            }
            let (conn, now) = (c.conn, self.now);
            self.region()
                .handle_input(now, Input::Received { conn, data: piece })
                .map_err(|e| miss("the input to be accepted", e.to_string()))?;
            self.drain();
        }
        Ok(())
    }

    /// The next thing the client reads, if a whole one has arrived.
    fn read(&mut self, name: &str) -> Option<Item> {
        self.pull(name);
        self.clients.get_mut(name).expect("checked").reader.next()
    }

    /// Moves what the server wrote to the client into the client's read buffer.
    fn pull(&mut self, name: &str) {
        let conn = self.clients[name].conn;
        let mut pulled = Vec::new();
        if !self.clients[name].disconnected {
            while let Some(bytes) = self.region().poll_transmit(conn) {
                pulled.extend_from_slice(&bytes);
            }
        }
        self.drain();
        self.clients.get_mut(name).expect("checked").reader.buf.extend_from_slice(&pulled);
    }

    fn read_or_miss(&mut self, name: &str, expected: &str) -> Res<Item> {
        match self.read(name) {
            Some(item) => Ok(item),
            None => {
                let c = &self.clients[name];
                let actual = if !c.reader.buf.is_empty() {
                    let what = match c.reader.mode {
                        Mode::Http => "response",
                        Mode::Lines => "line",
                        Mode::Events => "event",
                        _ => "frame",
                    };
                    format!("an incomplete {what} of {} bytes", c.reader.buf.len())
                } else if c.server_closed {
                    "the connection closed by the server".to_string()
                } else {
                    "nothing received".to_string()
                };
                Err(miss(expected, actual))
            }
        }
    }

    /// As `read_or_miss`; on a line client the line is read as what it carries.
    fn read_message(&mut self, name: &str, expected: &str) -> Res<Item> {
        let item = self.read_or_miss(name, expected)?;
        Ok(if self.clients[name].reader.mode == Mode::Lines { classify_line(item) } else { item })
    }

    fn advance_to(&mut self, target: Instant) -> Res {
        for _ in 0..100_000 {
            match self.region().poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    self.region()
                        .handle_input(now, Input::Timeout)
                        .map_err(|e| miss("the timeout to be accepted", e.to_string()))?;
                    self.drain();
                }
                _ => {
                    self.now = target;
                    return Ok(());
                }
            }
        }
        Err(miss("timers to settle", "more than 100000 timer firings"))
    }

    // ------------------------------------------------------------ steps

    fn step(&mut self, step: &Step) -> Res {
        if step.verb != "config" {
            self.region();
        }
        if !self.strays.is_empty() && step.verb.starts_with("expect") {
            return Err(miss(
                "every output to belong to a client or the log",
                std::mem::take(&mut self.strays).join("; "),
            ));
        }
        let result = self.dispatch(step);
        self.drain();
        result
    }

    fn set_return(&mut self, step: &Step, value: Option<String>) {
        let verb = step.verb.clone();
        self.last_return = match value {
            Some(v) => Return::Value(verb, v),
            None => Return::Void(verb),
        };
    }

    fn dispatch(&mut self, step: &Step) -> Res {
        let verb = step.verb.as_str();
        match verb {
            "config" => self.config_step(step),
            "script" => {
                let name = Self::name(step, 0);
                if self.scripts.contains_key(&name) {
                    return Err(bad(format!("script `{name}` is already declared")));
                }
                let object_name = self.opt(step, "object")?;
                let owner_name = self.opt(step, "owner")?;
                let script = self.declare(&name, Kind::Script)?;
                let object = match object_name {
                    Some(n) if is_name(&n) => self.declare(&n, Kind::Object)?,
                    Some(n) => return Err(bad(format!("object name {n:?} is not a name"))),
                    None => self.mint(),
                };
                let owner = match owner_name {
                    Some(n) if is_name(&n) => self.declare(&n, Kind::Owner)?,
                    Some(n) => return Err(bad(format!("owner name {n:?} is not a name"))),
                    None => self.mint(),
                };
                self.scripts.insert(name, ScriptInfo { script, object, owner });
                Ok(())
            }
            "llRequestWebsocket" => {
                let info = self.script(step)?;
                let mut request = WebsocketRequest::default();
                if let Some(scope) = self.opt(step, "scope")? {
                    request.scope = match scope.as_str() {
                        "object" => Scope::Object,
                        "region" => Scope::Region,
                        _ => return Err(bad(format!("scope must be object or region, not {scope:?}"))),
                    };
                }
                if let Some(secure) = self.opt(step, "secure")? {
                    request.secure = Self::boolean(&secure)?;
                }
                request.domain = self.opt(step, "domain")?;
                if let Some(max) = self.opt(step, "max_message")? {
                    request.max_message = Some(Self::int(&max)?);
                }
                let key = self.region().request_websocket(info, &request);
                self.set_return(step, Some(key.to_string()));
                Ok(())
            }
            "llReleaseWebsocket" => {
                let info = self.script(step)?;
                let url = self.arg(step, 1)?;
                let now = self.now;
                // The LSL function returns nothing; a refused release has no effect to report.
                let _ = match self.opt(step, "domain")? {
                    Some(domain) => self.region().release_domain(now, info.script, &domain),
                    None => self.region().release_websocket(now, info.script, &url),
                };
                self.set_return(step, None);
                Ok(())
            }
            "llWebsocketSend" => {
                let info = self.script(step)?;
                let session = self.key(step, 1)?;
                let text = self.arg(step, 2)?;
                let status = self.region().websocket_send(info.script, session, &text);
                self.set_return(step, Some(status.map_or_else(|e| e.lsl_name().to_string(), |()| "WS_OK".into())));
                Ok(())
            }
            "llWebsocketBroadcast" => {
                let info = self.script(step)?;
                let domain = self.arg(step, 1)?;
                let text = self.arg(step, 2)?;
                let status = self.region().websocket_broadcast(info.script, &domain, &text);
                self.set_return(step, Some(status.map_or_else(|e| e.lsl_name().to_string(), |_| "WS_OK".into())));
                Ok(())
            }
            "llWebsocketClose" => {
                let info = self.script(step)?;
                let session = self.key(step, 1)?;
                let code: i64 = Self::int(&self.arg(step, 2)?)?;
                let reason = self.arg(step, 3)?;
                let now = self.now;
                // Void in LSL; a code outside u16 is as invalid as any other bad code.
                if let Ok(code) = u16::try_from(code) {
                    let _ = self.region().websocket_close(now, info.script, session, code, &reason);
                }
                self.set_return(step, None);
                Ok(())
            }
            "llGetWebsocketHeader" => {
                let info = self.script(step)?;
                let session = self.key(step, 1)?;
                let name = self.arg(step, 2)?;
                let value = self.region().websocket_header(info.script, session, &name);
                self.set_return(step, Some(value));
                Ok(())
            }
            "llGetFreeWebsockets" => {
                let info = self.script(step)?;
                let free = self.region().free_websockets(info.owner);
                self.set_return(step, Some(free.to_string()));
                Ok(())
            }
            "llRequestURL" | "llRequestSecureURL" => {
                let info = self.script(step)?;
                let key = if verb == "llRequestURL" {
                    self.region().request_url(info)
                } else {
                    self.region().request_secure_url(info)
                };
                self.set_return(step, Some(key.to_string()));
                Ok(())
            }
            "llReleaseURL" => {
                let info = self.script(step)?;
                let url = self.arg(step, 1)?;
                let now = self.now;
                // Void in LSL, like llReleaseWebsocket (D5): a refused release has no effect.
                let _ = self.region().release_url(now, info.script, &url);
                self.set_return(step, None);
                Ok(())
            }
            "llHTTPResponse" => {
                let info = self.script(step)?;
                let id = self.key(step, 1)?;
                let status: i32 = Self::int(&self.arg(step, 2)?)?;
                let body = self.arg(step, 3)?;
                let now = self.now;
                let outcome = self.region().http_response(now, info.script, id, status, &body);
                self.set_return(step, Some(http_outcome(outcome)));
                Ok(())
            }
            "llSetContentType" => {
                let info = self.script(step)?;
                let id = self.key(step, 1)?;
                let name = self.arg(step, 2)?;
                let content_type = ContentType::ALL
                    .into_iter()
                    .find(|t| t.lsl_name() == name)
                    .or_else(|| name.parse().ok().and_then(ContentType::from_lsl))
                    .ok_or_else(|| bad(format!("{name:?} is not a CONTENT_TYPE_* name or value 0..8")))?;
                let outcome = self.region().set_content_type(info.script, id, content_type);
                self.set_return(step, Some(http_outcome(outcome)));
                Ok(())
            }
            "llGetHTTPHeader" => {
                let info = self.script(step)?;
                let id = self.key(step, 1)?;
                let name = self.arg(step, 2)?;
                let value = self.region().http_header(info.script, id, &name);
                self.set_return(step, Some(value));
                Ok(())
            }
            "llGetFreeURLs" => {
                let info = self.script(step)?;
                let free = self.region().free_urls(info.owner);
                self.set_return(step, Some(free.to_string()));
                Ok(())
            }
            "script-reset" | "script-removed" => {
                let info = self.script(step)?;
                let now = self.now;
                if verb == "script-reset" {
                    self.region().script_reset(now, info.script);
                } else {
                    self.region().script_removed(now, info.script);
                }
                Ok(())
            }
            "object-rezzed" | "changed-region" | "owner-changed" | "object-removed" => {
                let object = self.named(&Self::name(step, 0), Kind::Object)?;
                let now = self.now;
                let region = self.region();
                match verb {
                    "object-rezzed" => region.object_rezzed(now, object),
                    "changed-region" => region.object_changed_region(now, object),
                    "owner-changed" => region.owner_changed(now, object),
                    _ => region.object_removed(now, object),
                }
                if let Some(owner) = self.opt(step, "owner")? {
                    if !is_name(&owner) {
                        return Err(bad(format!("owner name {owner:?} is not a name")));
                    }
                    let owner = self.declare(&owner, Kind::Owner)?;
                    self.scripts.values_mut().filter(|i| i.object == object).for_each(|i| i.owner = owner);
                }
                Ok(())
            }
            "region-restart" => {
                let now = self.now;
                self.region().region_restart(now);
                Ok(())
            }
            "connect" => self.connect(step),
            "lines" => self.lines(step),
            "sse" => self.sse(step),
            "text" | "binary" | "ping" | "pong" | "close" | "frame" if self.is_sse_client(step) => {
                Err(bad("an SSE client sends by `request` to its send URL (POST, DELETE), not frames"))
            }
            "line" => self.line(step),
            "text" | "binary" | "ping" | "pong" | "close" | "frame" if self.is_line_client(step) => {
                self.line_send(step)
            }
            "request" => self.request(step),
            "text" | "binary" | "ping" | "pong" | "close" => {
                let name = self.client_name(step)?;
                let (opcode, payload) = match verb {
                    "text" => (1, self.arg(step, 1)?.into_bytes()),
                    "binary" => (2, self.arg(step, 1)?.into_bytes()),
                    "ping" | "pong" => {
                        let payload = if step.pos.len() > 1 { self.arg(step, 1)?.into_bytes() } else { Vec::new() };
                        (if verb == "ping" { 9 } else { 10 }, payload)
                    }
                    _ => {
                        let mut payload = Vec::new();
                        if step.pos.len() > 1 {
                            let code: u16 = Self::int(&self.arg(step, 1)?)?;
                            payload.extend_from_slice(&code.to_be_bytes());
                        }
                        if step.pos.len() > 2 {
                            payload.extend_from_slice(self.arg(step, 2)?.as_bytes());
                        }
                        (8, payload)
                    }
                };
                let mut frame = FrameSpec::new(opcode, payload);
                frame.mask = self.mask(step)?;
                let chunk = self.chunk(step)?;
                self.send(&name, &frame.encode(), chunk)
            }
            "frame" => {
                let name = self.client_name(step)?;
                let opcode = match self.opt(step, "op")?.as_deref() {
                    None | Some("text") => 1,
                    Some("cont") => 0,
                    Some("binary") => 2,
                    Some("close") => 8,
                    Some("ping") => 9,
                    Some("pong") => 10,
                    Some(n) => {
                        Self::int::<u8>(n).ok().filter(|n| *n < 16).ok_or_else(|| bad(format!("bad op {n:?}")))?
                    }
                };
                let payload = match (self.opt(step, "payload")?, self.opt(step, "payload-hex")?) {
                    (Some(_), Some(_)) => return Err(bad("give payload= or payload-hex=, not both")),
                    (Some(p), None) => p.into_bytes(),
                    (None, Some(h)) => parse_hex(&h).map_err(bad)?,
                    (None, None) => Vec::new(),
                };
                let mut frame = FrameSpec::new(opcode, payload);
                if let Some(fin) = self.opt(step, "fin")? {
                    frame.fin = Self::boolean(&fin)?;
                }
                if let Some(rsv) = self.opt(step, "rsv")? {
                    frame.rsv = Self::int::<u8>(&rsv).ok().filter(|r| *r < 8).ok_or_else(|| bad("rsv is 0..7"))?;
                }
                if let Some(len) = self.opt(step, "len")? {
                    frame.declared_len = Self::int(&len)?;
                }
                frame.mask = self.mask(step)?;
                let chunk = self.chunk(step)?;
                self.send(&name, &frame.encode(), chunk)
            }
            "bytes" => {
                let name = self.client_name(step)?;
                let bytes = match (step.pos.len() > 1, self.opt(step, "hex")?) {
                    (true, None) => self.arg(step, 1)?.into_bytes(),
                    (false, Some(h)) => parse_hex(&h).map_err(bad)?,
                    _ => return Err(bad("`bytes` takes either a string or hex=")),
                };
                let chunk = self.chunk(step)?;
                self.send(&name, &bytes, chunk)
            }
            "disconnect" => {
                let name = self.client_name(step)?;
                let c = self.clients.get_mut(&name).expect("checked");
                if c.disconnected {
                    return Err(bad(format!("client `{name}` already disconnected")));
                }
                c.disconnected = true;
                c.held.clear();
                let (conn, gone, now) = (c.conn, c.server_closed, self.now);
                let result = self.region().handle_input(now, Input::PeerClosed { conn });
                // A connection the server already closed may be forgotten; that is fine.
                match result {
                    Err(e) if !gone => Err(miss("the disconnect to be accepted", e.to_string())),
                    _ => Ok(()),
                }
            }
            "advance" => {
                let d = Self::duration(&self.arg(step, 0)?)?;
                let target = self.now + d;
                self.advance_to(target)
            }
            _ => self.expect(step),
        }
    }

    fn mask(&mut self, step: &Step) -> Res<Option<[u8; 4]>> {
        match self.opt(step, "mask")?.as_deref() {
            None => Ok(Some(DEFAULT_MASK)),
            Some("none") => Ok(None),
            Some(h) => {
                let bytes = parse_hex(h).map_err(bad)?;
                bytes.try_into().map(Some).map_err(|_| bad("mask= takes 4 bytes of hex or none"))
            }
        }
    }

    fn chunk(&mut self, step: &Step) -> Res<Option<usize>> {
        self.opt(step, "chunk")?
            .map(|c| Self::int::<usize>(&c).ok().filter(|n| *n > 0).ok_or_else(|| bad("chunk= is a positive number")))
            .transpose()
    }

    fn config_step(&mut self, step: &Step) -> Res {
        if self.region.is_some() {
            return Err(bad("`config` after the region started"));
        }
        let name = Self::name(step, 0);
        let value = self.pos_literal(step, 1)?;
        let c = &mut self.config;
        let n = || Self::int::<usize>(&value);
        let d = || Self::duration(&value);
        match name.as_str() {
            "authority" => c.authority = value.clone(),
            "secure_authority" => c.secure_authority = (value != "none").then(|| value.clone()),
            "max_message" => c.max_message = n()?,
            "event_queue" => c.event_queue = n()?,
            "outgoing_buffer" => c.outgoing_buffer = n()?,
            "sessions_per_url" => c.sessions_per_url = n()?,
            "urls_per_script" => c.urls_per_script = n()?,
            "domains_per_script" => c.domains_per_script = n()?,
            "subscriptions_per_session" => c.subscriptions_per_session = n()?,
            "region_endpoint_sessions" => c.region_endpoint_sessions = n()?,
            "region_url_budget" => c.region_url_budget = n()?,
            "owner_url_budget" => c.owner_url_budget = if value == "none" { None } else { Some(n()?) },
            "handshake_timeout" => c.handshake_timeout = d()?,
            "idle_interval" => c.idle_interval = d()?,
            "close_timeout" => c.close_timeout = d()?,
            "max_header_value" => c.max_header_value = n()?,
            "max_request_head" => c.max_request_head = n()?,
            "handshakes_per_second" => c.handshakes_per_second = Self::int(&value)?,
            "max_handshakes" => c.max_handshakes = n()?,
            "busy_grace" => c.busy_grace = d()?,
            "max_body" => c.max_body = n()?,
            "refuse_large_bodies" => c.refuse_large_bodies = Self::boolean(&value)?,
            "http_in_flight" => c.http_in_flight = n()?,
            "http_timeout" => c.http_timeout = d()?,
            "http_timeout_status" => c.http_timeout_status = Self::int(&value)?,
            "http_timeout_body" => c.http_timeout_body = value.clone(),
            "header_lifetime" => c.header_lifetime = d()?,
            "allow_html" => c.allow_html = Self::boolean(&value)?,
            _ => return Err(bad(format!("unknown config name `{name}`"))),
        }
        Ok(())
    }

    /// A positional argument that may not use `$` references (config values).
    fn pos_literal(&self, step: &Step, i: usize) -> Res<String> {
        step.pos[i].1.literal().ok_or_else(|| bad("config values are literals"))
    }

    /// Accepts a new connection for client `name` from `from=` (default 192.0.2.1).
    fn open(&mut self, step: &Step, name: &str) -> Res {
        if self.clients.contains_key(name) || self.kinds.contains_key(name) || RESERVED.contains(&name) {
            return Err(bad(format!("`{name}` is already used; client names are never reused")));
        }
        let remote: IpAddr = self
            .opt(step, "from")?
            .unwrap_or_else(|| DEFAULT_REMOTE.into())
            .parse()
            .map_err(|_| bad("from= takes an IP address"))?;
        let conn = ConnectionId(self.next_conn);
        self.next_conn += 1;
        let now = self.now;
        self.region()
            .handle_input(now, Input::Accepted { conn, remote })
            .map_err(|e| miss("the connection to be accepted", e.to_string()))?;
        self.clients.insert(
            name.to_string(),
            Client {
                conn,
                reader: Reader::default(),
                server_closed: false,
                close_seen: false,
                disconnected: false,
                paused: false,
                held: VecDeque::new(),
                notices: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// A request head for `url`: the request line, `Host`, then `defaults`,
    /// with `omit=`, `set=` and `header=` applied in that order.
    fn request_head(&mut self, step: &Step, url: &str, defaults: &[(&str, String)]) -> Res<String> {
        let (authority, path) = match url.split_once("://") {
            Some((_, rest)) => match rest.find('/') {
                Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
                None => (rest.to_string(), "/".to_string()),
            },
            None => (self.config.authority.clone(), url.to_string()),
        };
        let mut target = path + &self.opt(step, "path")?.unwrap_or_default();
        if let Some(query) = self.opt(step, "query")? {
            target = format!("{target}?{query}");
        }
        let method = self.opt(step, "method")?.unwrap_or_else(|| "GET".into());
        let version = self.opt(step, "version")?.unwrap_or_else(|| "HTTP/1.1".into());
        let mut headers: Vec<(String, String)> = vec![("Host".into(), authority)];
        headers.extend(defaults.iter().map(|(n, v)| (n.to_string(), v.clone())));
        for omit in self.all(step, "omit")? {
            let before = headers.len();
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&omit));
            if headers.len() == before {
                return Err(bad(format!("omit={omit}: not a default header")));
            }
        }
        let split = |h: &str| -> Res<(String, String)> {
            let (n, v) = h.split_once(':').ok_or_else(|| bad(format!("{h:?} is not `Name: value`")))?;
            Ok((n.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()))
        };
        for set in self.all(step, "set")? {
            let (n, v) = split(&set)?;
            match headers.iter_mut().find(|(h, _)| h.eq_ignore_ascii_case(&n)) {
                Some(slot) => *slot = (n, v),
                None => headers.push((n, v)),
            }
        }
        for extra in self.all(step, "header")? {
            headers.push(split(&extra)?);
        }
        let mut head = format!("{method} {target} {version}\r\n");
        for (n, v) in &headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        Ok(head)
    }

    fn connect(&mut self, step: &Step) -> Res {
        let name = Self::name(step, 0);
        self.open(step, &name)?;
        if step.pos.len() < 2 {
            for key in ["path", "query", "method", "version", "set", "header", "omit"] {
                if step.keyed.iter().any(|(k, ..)| k == key) {
                    return Err(bad(format!("{key}= needs a URL to connect to")));
                }
            }
            return Ok(());
        }
        let url = self.arg(step, 1)?;
        let defaults = [
            ("Upgrade", "websocket".to_string()),
            ("Connection", "Upgrade".to_string()),
            ("Sec-WebSocket-Key", DEFAULT_WS_KEY.to_string()),
            ("Sec-WebSocket-Version", "13".to_string()),
        ];
        let head = self.request_head(step, &url, &defaults)?;
        let chunk = self.chunk(step)?;
        self.send(&name, head.as_bytes(), chunk)
    }

    /// One HTTP request (SPEC §8), on a new connection or, keep-alive, on the client's open one.
    fn request(&mut self, step: &Step) -> Res {
        let name = Self::name(step, 0);
        match self.clients.get(&name) {
            None => self.open(step, &name)?,
            Some(c) if c.disconnected => return Err(bad(format!("client `{name}` has disconnected"))),
            Some(_) if step.keyed.iter().any(|(k, ..)| k == "from") => {
                return Err(bad(format!("from= only where `{name}` connects; it is already connected")));
            }
            Some(_) => {}
        }
        let url = self.arg(step, 1)?;
        let body = match (self.opt(step, "body")?, self.opt(step, "body-hex")?) {
            (Some(_), Some(_)) => return Err(bad("give body= or body-hex=, not both")),
            (Some(b), None) => Some(b.into_bytes()),
            (None, Some(h)) => Some(parse_hex(&h).map_err(bad)?),
            (None, None) => None,
        };
        let chunked = match self.opt(step, "chunked")? {
            Some(n) => Some(
                Self::int::<usize>(&n).ok().filter(|n| *n > 0).ok_or_else(|| bad("chunked= is a positive number"))?,
            ),
            None => None,
        };
        let mut defaults = Vec::new();
        match (chunked, &body) {
            (Some(_), _) => defaults.push(("Transfer-Encoding", "chunked".to_string())),
            (None, Some(b)) => defaults.push(("Content-Length", b.len().to_string())),
            (None, None) => {}
        }
        let mut bytes = self.request_head(step, &url, &defaults)?.into_bytes();
        let body = body.unwrap_or_default();
        match chunked {
            Some(size) => {
                for piece in body.chunks(size) {
                    bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    bytes.extend_from_slice(piece);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
            None => bytes.extend_from_slice(&body),
        }
        let chunk = self.chunk(step)?;
        self.send(&name, &bytes, chunk)
    }

    // ------------------------------------------------------------ expectations

    fn expect(&mut self, step: &Step) -> Res {
        match step.verb.as_str() {
            "expect event" => {
                let info = self.script(step)?;
                let kind = self.arg(step, 1)?;
                const KINDS: [&str; 11] = [
                    "WS_URL_GRANTED",
                    "WS_URL_DENIED",
                    "WS_OPEN",
                    "WS_TEXT",
                    "WS_CLOSE",
                    "URL_REQUEST_GRANTED",
                    "URL_REQUEST_DENIED",
                    "GET",
                    "POST",
                    "PUT",
                    "DELETE",
                ];
                if !KINDS.contains(&kind.as_str()) {
                    return Err(bad(format!("unknown event kind {kind}; one of {KINDS:?}")));
                }
                let Some(event) = self.region().poll_event(info.script) else {
                    return Err(miss(format!("event {kind}"), "no event"));
                };
                self.drain();
                let shown = format!(
                    "event {} id={} domain={:?} data={:?}",
                    event.kind.lsl_name(),
                    self.show_value(&event.id.to_string()),
                    event.domain.as_str(),
                    event.data.as_str()
                );
                let (mut fails, mut binds) = (Vec::new(), Vec::new());
                if event.kind.lsl_name() != kind {
                    fails.push(kind.clone());
                }
                for (key, op, value) in step.keyed.clone() {
                    let actual = match key.as_str() {
                        "id" => event.id.to_string(),
                        "domain" => event.domain.to_string(),
                        _ => event.data.to_string(),
                    };
                    self.check(&key, op, &value, &actual, &mut fails, &mut binds)?;
                }
                self.finish(fails, binds, || shown)
            }
            "expect http" => {
                let name = self.client_name(step)?;
                let status: u16 = Self::int(&self.arg(step, 1)?)?;
                let item = self.read_or_miss(&name, &format!("http {status}"))?;
                let Item::Http { status: got, headers, body } = &item else {
                    return Err(miss(format!("http {status}"), item.to_string()));
                };
                let (mut fails, mut binds) = (Vec::new(), Vec::new());
                if *got != status {
                    fails.push(format!("status {status}"));
                }
                for (key, op, value) in step.keyed.clone() {
                    match key.as_str() {
                        "body" => {
                            let text = String::from_utf8_lossy(body).into_owned();
                            self.check("body", op, &value, &text, &mut fails, &mut binds)?;
                        }
                        "absent" => {
                            if op != Op::Eq {
                                return Err(bad("absent= names a header: absent=NAME"));
                            }
                            let name = self.eval(&value)?;
                            if let Some((n, v)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                                fails.push(format!("no {} header (it is {v:?})", n.to_ascii_lowercase()));
                            }
                        }
                        _ => match headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(&key)) {
                            Some((_, v)) => self.check(&key, op, &value, v, &mut fails, &mut binds)?,
                            None => fails.push(format!("header {key}{op}… (absent)")),
                        },
                    }
                }
                self.finish(fails, binds, || item.to_string())
            }
            "expect text" | "expect ping" | "expect pong" => {
                let name = self.client_name(step)?;
                let what = &step.verb["expect ".len()..];
                let item = self.read_message(&name, what)?;
                let payload = match (&item, what) {
                    (Item::Text(t), "text") => t.clone(),
                    (Item::Ping(p), "ping") | (Item::Pong(p), "pong") => match std::str::from_utf8(p) {
                        Ok(s) => s.to_string(),
                        Err(_) => return Err(miss(format!("{what} with a UTF-8 payload"), item.to_string())),
                    },
                    _ => return Err(miss(what.to_string(), item.to_string())),
                };
                let (op, value) = step.pos.get(1).cloned().unwrap_or((None, Expr::default()));
                let (mut fails, mut binds) = (Vec::new(), Vec::new());
                self.check("", op.unwrap_or(Op::Eq), &value, &payload, &mut fails, &mut binds)?;
                let fails = fails.into_iter().map(|f| format!("{what} {f}")).collect();
                self.finish(fails, binds, || item.to_string())
            }
            "expect close" => {
                let name = self.client_name(step)?;
                let item = self.read_message(&name, "a close frame")?;
                let Item::Close(got) = &item else {
                    return Err(miss("a close frame", item.to_string()));
                };
                let (mut fails, mut binds) = (Vec::new(), Vec::new());
                match (step.pos.len(), got) {
                    (1, None) => {}
                    (1, Some(_)) => fails.push("close (empty payload)".into()),
                    (_, None) => fails.push("close with a status code".into()),
                    (_, Some((code, reason))) => {
                        let want: u16 = Self::int(&self.arg(step, 1)?)?;
                        if *code != want {
                            fails.push(format!("code {want}"));
                        }
                        if let Some((op, value)) = step.pos.get(2).cloned() {
                            self.check("reason", op.unwrap_or(Op::Eq), &value, reason, &mut fails, &mut binds)?;
                        }
                    }
                }
                self.finish(fails, binds, || item.to_string())
            }
            "expect line" => self.expect_line(step),
            "expect sse" => self.expect_sse(step),
            "expect heartbeat" => self.expect_heartbeat(step),
            "expect closed" => {
                let name = self.client_name(step)?;
                if let Some(item) = self.read(&name) {
                    return Err(miss("the connection closed by the server, nothing more to read", item.to_string()));
                }
                let c = &self.clients[&name];
                if !c.reader.buf.is_empty() {
                    return Err(miss(
                        "the connection closed by the server",
                        format!("{} unread bytes", c.reader.buf.len()),
                    ));
                }
                if c.close_seen {
                    return Err(bad("the close was already expected"));
                }
                if !c.server_closed {
                    return Err(miss("the connection closed by the server", "the connection is open"));
                }
                self.clients.get_mut(&name).expect("checked").close_seen = true;
                Ok(())
            }
            "expect paused" | "expect resumed" => {
                let name = self.client_name(step)?;
                let want = if step.verb == "expect paused" { Notice::Paused } else { Notice::Resumed };
                self.pull(&name);
                let c = self.clients.get_mut(&name).expect("checked");
                match c.notices.pop_front() {
                    Some(n) if n == want => Ok(()),
                    Some(n) => Err(miss(format!("{want:?}"), format!("{n:?}"))),
                    None => Err(miss(format!("{want:?}"), "reading neither paused nor resumed")),
                }
            }
            "expect return" => {
                let last = std::mem::replace(&mut self.last_return, Return::None);
                let (verb, value) = match last {
                    Return::Value(verb, value) => (verb, value),
                    Return::Void(verb) => return Err(bad(format!("{verb} returns nothing"))),
                    Return::None => return Err(bad("no call whose value is unchecked precedes this")),
                };
                let (op, expr) = step.pos[0].clone();
                let (mut fails, mut binds) = (Vec::new(), Vec::new());
                // A request key is a key: binding it checks that it is new, as for event ids.
                let field = if ["llRequestWebsocket", "llRequestURL", "llRequestSecureURL"].contains(&verb.as_str()) {
                    "id"
                } else {
                    ""
                };
                self.check(field, op.unwrap_or(Op::Eq), &expr, &value, &mut fails, &mut binds)?;
                let fails = fails.into_iter().map(|f| format!("return {f}")).collect();
                self.finish(fails, binds, || format!("{verb} returned {value:?}"))
            }
            "expect revoked" => {
                let url = self.arg(step, 0)?;
                let cause = self.arg(step, 1)?;
                match self.revoked.iter().position(|(u, c)| *u == url && *c == cause) {
                    Some(i) => {
                        self.revoked.remove(i);
                        Ok(())
                    }
                    None => Err(miss(
                        format!("revoked {url} {cause:?}"),
                        if self.revoked.is_empty() {
                            "no revocation notice".to_string()
                        } else {
                            format!("notices: {:?}", self.revoked)
                        },
                    )),
                }
            }
            "expect clep" => {
                let domain = self.arg(step, 0)?;
                let want: i32 = Self::int(&self.arg(step, 1)?)?;
                let got = clep::channel(&domain);
                if got == want { Ok(()) } else { Err(miss(format!("channel {want}"), format!("channel {got}"))) }
            }
            "expect nothing" => {
                let names: Vec<String> = if step.pos.is_empty() {
                    let mut all: Vec<String> = self.scripts.keys().cloned().collect();
                    all.extend(self.clients.keys().cloned());
                    all.push("revoked".into());
                    all
                } else {
                    step.pos.iter().map(|(_, e)| e.literal().unwrap_or_default()).collect()
                };
                for name in names {
                    self.nothing(&name)?;
                }
                if !self.strays.is_empty() {
                    return Err(miss("nothing further", std::mem::take(&mut self.strays).join("; ")));
                }
                Ok(())
            }
            other => Err(bad(format!("unknown verb {other}"))),
        }
    }

    fn nothing(&mut self, name: &str) -> Res {
        if name == "revoked" {
            return match self.revoked.first() {
                None => Ok(()),
                Some((url, cause)) => Err(miss("no further revocation notice", format!("revoked {url} {cause:?}"))),
            };
        }
        if let Some(info) = self.scripts.get(name).copied() {
            return match self.region().poll_event(info.script) {
                None => Ok(()),
                Some(e) => Err(miss(
                    format!("no further event for {name}"),
                    format!(
                        "event {} id={} domain={:?} data={:?}",
                        e.kind.lsl_name(),
                        self.show_value(&e.id.to_string()),
                        e.domain.as_str(),
                        e.data.as_str()
                    ),
                )),
            };
        }
        if !self.clients.contains_key(name) {
            return Err(bad(format!("`{name}` is neither a script, a client nor `revoked`")));
        }
        let expected = format!("nothing further for client {name}");
        if let Some(item) = self.read(name) {
            return Err(miss(expected, item.to_string()));
        }
        let c = &self.clients[name];
        if !c.reader.buf.is_empty() {
            return Err(miss(
                expected,
                format!("{} bytes of an incomplete item: {}", c.reader.buf.len(), show_bytes(&c.reader.buf)),
            ));
        }
        if let Some(n) = c.notices.front() {
            return Err(miss(expected, format!("reading {n:?}")));
        }
        if c.server_closed && !c.close_seen && !c.disconnected {
            return Err(miss(expected, "the connection closed by the server"));
        }
        Ok(())
    }

    /// A key shown with the name bound to it, if any, for failure messages.
    fn show_value(&self, value: &str) -> String {
        match self.bindings.iter().find(|(_, v)| *v == value) {
            Some((name, _)) => format!("{value} (${name})"),
            None => value.to_string(),
        }
    }
}

/// The outcome of `llHTTPResponse` / `llSetContentType` as a word (FORMAT.md D26).
fn http_outcome(result: Result<(), HttpError>) -> String {
    match result {
        Ok(()) => "ok",
        Err(HttpError::UnknownRequest) => "unknown-request",
        Err(HttpError::NotYours) => "not-yours",
        Err(HttpError::AlreadyAnswered) => "already-answered",
        Err(HttpError::Expired) => "expired",
        Err(HttpError::ClientGone) => "client-gone",
        Err(HttpError::Revoked) => "revoked",
    }
    .to_string()
}
