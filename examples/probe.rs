//! A probe that checks a live server's wire behaviour (SPEC §5, and with
//! `--region-url` the §6 envelope) from outside, over TCP: tungstenite's
//! client for well-formed sessions, raw TCP for malformed requests and
//! frames. It needs only the URLs, so it can test any implementation.
//!
//! ```text
//! cargo run --release --example probe -- --object-url URL [--region-url URL]
//!     [--domain D] [--max-message N] [--timeout SECS]
//! cargo run --release --example probe -- --list
//! ```
//!
//! - `--object-url URL`: an object-scope URL (`ws://host:port/lslws/<cap>/`)
//!   whose script **sends every text back to the session it came from**,
//!   unchanged, as the `echo_server` example's "echo" object does. The
//!   checks that rely on this say so when they fail.
//! - `--region-url URL`: the region endpoint; enables the §6 checks. They
//!   assume a script listens on domain `--domain` (default `echo`) and
//!   answers each `msg,<domain>,<p>` to its sender as `msg,<domain>,<p>`, as
//!   `echo_server`'s "region echo" script does.
//! - `--max-message N`: the server's message cap in bytes (default 2048, the
//!   SPEC default): exactly N bytes must echo, N + 1 must close 1009.
//! - `--timeout SECS`: the limit for every socket operation (connect, each
//!   write, each awaited answer), default 5; decimals allowed. A broken
//!   server cannot hang the probe.
//! - `--list`: prints every check with what it assumes, and what is not
//!   checked from outside, then exits.
//!
//! Output: one `PASS <name>` or `FAIL <name>: <why>` line per check, a
//! `SKIP <name>: not checked from outside (<why>)` line for each SPEC row a
//! client cannot check without knowing the server's settings or scripts, and
//! a final `N passed, M failed` line. Exit status 0 when every check
//! passed, 1 when one failed, 2 for bad arguments.
//!
//! A `429` answer (the server's handshake rate limit) is not a failure: the
//! probe waits for `Retry-After` (1 to 5 s) and tries again, up to 3 times.
//! Only `ws://` URLs: the probe has no TLS.

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tungstenite::handshake::HandshakeError;
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

const USAGE: &str = "usage: probe --object-url ws://HOST:PORT/PATH [--region-url ws://HOST:PORT/PATH] \
[--domain D] [--max-message N] [--timeout SECS]
       probe --list";

/// What most frame-level checks assume: nothing beyond a URL that accepts sessions.
const LIVE: &str = "the object URL accepts sessions";
/// What the echo checks assume.
const ECHO: &str = "the object URL's script sends every text back unchanged (as echo_server's does)";
/// What the region checks assume.
const REGION_ECHO: &str = "a script listens on --domain and answers each msg,<domain>,<p> to its sender \
as msg,<domain>,<p> (as echo_server's region script does)";

/// How often a 429 answer is retried.
const RATE_RETRIES: u32 = 3;
/// The largest response head or server frame the probe reads.
const MAX_HEAD: usize = 16 * 1024;

// Opcodes (RFC 6455 §5.2).
const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A check's verdict: `Err` holds why it failed.
type Outcome = Result<(), String>;

/// One check.
struct Check {
    name: &'static str,
    /// The SPEC row it checks.
    what: &'static str,
    /// What it takes for granted about the server's scripts or settings.
    assumes: &'static str,
    region: bool,
    run: fn(&Probe) -> Outcome,
}

/// SPEC rows a client cannot check without knowing the server's settings or scripts.
const NOT_CHECKED: &[(&str, &str)] = &[
    ("sessions-503", "needs the URL's session limit; reaching it would load a live server"),
    ("rate-429", "needs the server's handshake rate; reaching it would lock this address out"),
    ("handshake-timeout", "needs the server's handshake timeout (SPEC default 10 s)"),
    ("idle-ping-1006", "needs the idle interval (SPEC default 30 s) and the script's WS_CLOSE"),
    ("back-pressure", "paused reading, err,<domain>,busy and WS_ERR_BUSY need a script that stops reading"),
    ("script-events", "WS_OPEN, WS_TEXT, WS_CLOSE and send status codes happen inside the simulator"),
    ("revocation", "SPEC §4 (1001 on reset, rez, ..., 404 afterwards) needs lifecycle events in the simulator"),
    ("region-too-large", "err,<domain>,too-large needs a listener whose WS_MAX_MESSAGE is below the cap"),
    ("region-uns-notice", "uns,<domain> to subscribers needs the last listener to stop listening"),
];

fn checks() -> Vec<Check> {
    fn c(name: &'static str, what: &'static str, assumes: &'static str, run: fn(&Probe) -> Outcome) -> Check {
        Check { name, what, assumes, region: false, run }
    }
    fn r(name: &'static str, what: &'static str, assumes: &'static str, run: fn(&Probe) -> Outcome) -> Check {
        Check { name, what, assumes, region: true, run }
    }
    vec![
        c("handshake-101", "101 with the correct Sec-WebSocket-Accept", LIVE, handshake_101),
        c(
            "unknown-cap-404",
            "a capability differing in one digit → 404",
            "the mutated capability was never minted",
            unknown_cap_404,
        ),
        c("post-405", "POST (with and without upgrade headers) → 405", LIVE, post_405),
        c("bad-key-400", "missing, short, 15-byte or non-base64 Sec-WebSocket-Key → 400", LIVE, bad_key_400),
        c("missing-connection-400", "no Connection: upgrade → 400", LIVE, missing_connection_400),
        c("missing-upgrade-400", "no Upgrade: websocket → 400", LIVE, missing_upgrade_400),
        c("version-426", "Sec-WebSocket-Version: 8 → 426 with Sec-WebSocket-Version: 13", LIVE, version_426),
        c("plain-get-426", "a GET without upgrade headers → 426", LIVE, plain_get_426),
        c("header-value-431", "a 255-byte header value → 101, 256 bytes → 431", LIVE, header_value_431),
        c("head-8k-431", "a request head over 8 KiB → 431", LIVE, head_431),
        c("text-echo", "text messages reach the script (seen through its echo)", ECHO, text_echo),
        c("path-info-echo", "a URL with path info and a query reaches the same script", ECHO, path_info_echo),
        c(
            "fragmented-text",
            "a fragmented text with a ping between fragments and a split character",
            ECHO,
            fragmented_text,
        ),
        c(
            "oversize-1009",
            "exactly --max-message bytes echo, one more → 1009",
            "the cap is --max-message; the script echoes",
            oversize_1009,
        ),
        c(
            "oversize-header-1009",
            "a frame header announcing more than the cap → 1009 before the payload",
            "the cap is --max-message",
            oversize_header_1009,
        ),
        c(
            "oversize-fragments-1009",
            "fragments that add up to more than the cap → 1009",
            "the cap is --max-message",
            oversize_fragments_1009,
        ),
        c("binary-1003", "a binary message → 1003", LIVE, binary_1003),
        c("invalid-utf8-1007", "invalid UTF-8 in a text message → 1007", LIVE, invalid_utf8_1007),
        c("invalid-utf8-split-1007", "invalid UTF-8 split across fragments → 1007", LIVE, invalid_utf8_split_1007),
        c("unmasked-1002", "an unmasked frame → 1002", LIVE, unmasked_1002),
        c("rsv-bit-1002", "RSV1, RSV2 or RSV3 set (no extension negotiated) → 1002", LIVE, rsv_bit_1002),
        c("reserved-opcode-1002", "reserved opcodes 0x3 and 0xB → 1002", LIVE, reserved_opcode_1002),
        c("control-over-125-1002", "a ping with 126 bytes → 1002", LIVE, control_over_125_1002),
        c("fragmented-control-1002", "a ping without FIN → 1002", LIVE, fragmented_control_1002),
        c(
            "continuation-without-start-1002",
            "a continuation frame with no message started → 1002",
            LIVE,
            continuation_1002,
        ),
        c(
            "message-inside-fragmented-1002",
            "a new text frame inside a fragmented message → 1002",
            LIVE,
            message_inside_fragmented_1002,
        ),
        c(
            "invalid-close-code-1002",
            "close codes 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000 → 1002",
            LIVE,
            invalid_close_code_1002,
        ),
        c("close-1-byte-1002", "a close payload of 1 byte → 1002", LIVE, close_1_byte_1002),
        c("ping-pong", "ping → pong with the same payload (0, 3 and 125 bytes)", LIVE, ping_pong),
        c(
            "close-echo",
            "close 1000, 3000 and 4999 with reasons → the same close echoed, then the transport closes",
            LIVE,
            close_echo,
        ),
        c("close-empty-echo", "a close without a code → a close without a code (never 1005)", LIVE, close_empty_echo),
        r(
            "region-handshake-101",
            "the region URL answers 101 with the correct Sec-WebSocket-Accept",
            "the region URL is live",
            region_handshake_101,
        ),
        r(
            "region-echo",
            "msg,<domain>,<p> reaches the listener (payloads with commas, newlines, Unicode, empty)",
            REGION_ECHO,
            region_echo,
        ),
        r("region-sub", "sub,<domain> is accepted without an error", REGION_ECHO, region_sub),
        r("region-uns", "uns,<domain> after sub is accepted without an error", REGION_ECHO, region_uns),
        r(
            "region-no-listener",
            "msg,<unknown domain>,x → err,<domain>,no-listener",
            "no script listens on the made-up domain",
            region_no_listener,
        ),
        r(
            "region-to-no-listener",
            "to,<unknown object>,<domain>,x → err,<domain>,no-listener",
            "no object has the made-up key",
            region_to_no_listener,
        ),
        r(
            "region-bad-frame",
            "malformed heads → err,,bad-frame, and the connection stays open",
            REGION_ECHO,
            region_bad_frame,
        ),
        c(
            "no-reserved-close-codes",
            "no close frame the server sent carried 1005, 1006 or 1015",
            "run last; judges every close frame seen",
            no_reserved_close_codes,
        ),
    ]
}

// ---------------------------------------------------------------------------
// Arguments and targets

/// A parsed `ws://` URL.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// Path and query, the request target.
    path: String,
    addrs: Vec<SocketAddr>,
}

impl Target {
    fn parse(flag: &str, url: &str) -> Result<Target, String> {
        if url.starts_with("wss://") {
            return Err(format!("{flag}: wss:// is not supported (the probe has no TLS): {url}"));
        }
        let rest = url.strip_prefix("ws://").ok_or_else(|| format!("{flag}: not a ws:// URL: {url}"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let mut path = rest[end..].split('#').next().unwrap_or("").to_string();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{flag}: no host (or user info) in {url}"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                let port = p.parse::<u16>().map_err(|_| format!("{flag}: bad port in {url}"))?;
                (h, port)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> =
            (host, port).to_socket_addrs().map_err(|e| format!("{flag}: cannot resolve {host}: {e}"))?.collect();
        if addrs.is_empty() {
            return Err(format!("{flag}: {host} resolves to no address"));
        }
        Ok(Target { url: url.to_string(), authority: authority.to_string(), path, addrs })
    }

    /// The same target with another request path.
    fn with_path(&self, path: String) -> Target {
        Target { path, ..self.clone() }
    }
}

struct Args {
    object: Target,
    region: Option<Target>,
    domain: String,
    max_message: usize,
    timeout: Duration,
}

enum Parsed {
    Run(Box<Args>),
    List,
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let (mut object, mut region, mut domain) = (None, None, "echo".to_string());
    let (mut max_message, mut timeout) = (2048usize, Duration::from_secs(5));
    let mut list = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--object-url" => object = Some(value("--object-url")?),
            "--region-url" => region = Some(value("--region-url")?),
            "--domain" => domain = value("--domain")?,
            "--max-message" => {
                let n = value("--max-message")?;
                max_message = n.parse().map_err(|_| format!("--max-message: not a number: {n}"))?;
                if max_message == 0 || max_message > 1 << 24 {
                    return Err("--max-message must be between 1 and 16777216".into());
                }
            }
            "--timeout" => {
                let s = value("--timeout")?;
                let secs: f64 = s.parse().map_err(|_| format!("--timeout: not a number of seconds: {s}"))?;
                if !(0.01..=600.0).contains(&secs) {
                    return Err("--timeout must be between 0.01 and 600 seconds".into());
                }
                timeout = Duration::from_secs_f64(secs);
            }
            "--list" => list = true,
            "-h" | "--help" => return Ok(Parsed::Help),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if domain.is_empty() || domain.len() > 64 || domain.contains([',', '\n', '\r']) {
        return Err(format!("--domain: {domain:?} is not a domain (1 to 64 bytes, no comma or newline)"));
    }
    if list {
        return Ok(Parsed::List);
    }
    let object = object.ok_or("--object-url is required")?;
    let object = Target::parse("--object-url", &object)?;
    let region = region.map(|r| Target::parse("--region-url", &r)).transpose()?;
    Ok(Parsed::Run(Box::new(Args { object, region, domain, max_message, timeout })))
}

// ---------------------------------------------------------------------------
// Sockets with deadlines

/// A TCP stream whose every read and write ends by a deadline, renewed by
/// [`Stream::arm`] before each awaited answer. Timeouts surface as
/// `ErrorKind::TimedOut` (never `WouldBlock`, which tungstenite would
/// take for a non-blocking socket).
struct Stream {
    tcp: TcpStream,
    timeout: Duration,
    deadline: Instant,
}

impl Stream {
    fn connect(t: &Target, timeout: Duration) -> Result<Stream, (ErrorKind, String)> {
        let mut last = (ErrorKind::NotFound, String::from("no address"));
        for addr in &t.addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(Stream { tcp, timeout, deadline: Instant::now() + timeout });
                }
                Err(e) => last = (e.kind(), format!("connect {addr}: {e}")),
            }
        }
        Err(last)
    }

    /// Starts a new wait of at most the timeout.
    fn arm(&mut self) {
        self.deadline = Instant::now() + self.timeout;
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(self.timed_out());
        }
        Ok(left)
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(ErrorKind::TimedOut, format!("no answer within {:?}", self.timeout))
    }

    fn map(&self, e: io::Error) -> io::Error {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => self.timed_out(),
            _ => e,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.read(buf).map_err(|e| self.map(e))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_write_timeout(Some(left))?;
        self.tcp.write(buf).map_err(|e| self.map(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// A response head.
struct Head {
    status: u16,
    text: String,
}

impl Head {
    /// A header's value, case-insensitively.
    fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Whether a comma-separated header holds `token`, case-insensitively.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

/// Reads one response head; returns it and the bytes after it.
fn read_head(stream: &mut Stream) -> Result<(Head, Vec<u8>), String> {
    stream.arm();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut parts = text.split_whitespace();
            let version = parts.next().unwrap_or("");
            let status = parts.next().and_then(|s| s.parse::<u16>().ok());
            return match status {
                Some(status) if version.starts_with("HTTP/1.") => Ok((Head { status, text }, buf[end + 4..].to_vec())),
                _ => Err(format!("not an HTTP/1.x response: {}", shown(&buf[..end]))),
            };
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("no end of the response head within {MAX_HEAD} bytes"));
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err("the server closed the connection without answering".into()),
            Ok(0) => return Err(format!("the connection closed inside the response head: {}", shown(&buf))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("no response: {e}")),
            Err(e) => return Err(format!("reading the response head: {e}; got {}", shown(&buf))),
        }
    }
}

/// Up to 120 characters of server bytes, escaped.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(120).collect::<String>().escape_debug().to_string();
    if text.chars().count() > 120 {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// Sends `request` on a new connection and reads the response head,
/// retrying after `Retry-After` while the server answers 429.
fn exchange(p: &Probe, t: &Target, request: &str) -> Result<(Head, Stream, Vec<u8>), String> {
    let mut tries = 0;
    loop {
        let mut stream = p.connect(t)?;
        stream.arm();
        // The server may answer (e.g. 431) and close before it has read it all:
        // a failed write is judged by the answer, if there is one.
        let written = stream.write_all(request.as_bytes());
        let (head, rest) = match read_head(&mut stream) {
            Ok(answer) => answer,
            Err(e) => {
                return Err(match written {
                    Err(w) => format!("sending the request: {w}; {e}"),
                    Ok(()) => e,
                });
            }
        };
        if head.status == 429 && tries < RATE_RETRIES {
            tries += 1;
            rate_wait(&head);
            continue;
        }
        return Ok((head, stream, rest));
    }
}

/// Waits as long as a 429's `Retry-After` asks (1 to 5 s).
fn rate_wait(head: &Head) {
    let secs = head.header("retry-after").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1).clamp(1, 5);
    std::thread::sleep(Duration::from_secs(secs));
}

/// A WebSocket upgrade request for `t` with `key` and extra header lines.
fn upgrade_request(t: &Target, key: &str, extra: &str) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
        t.path, t.authority
    )
}

/// Expects `request` to be answered `want`.
fn expect_status(p: &Probe, t: &Target, what: &str, request: &str, want: u16) -> Result<Head, String> {
    let (head, _, _) = exchange(p, t, request).map_err(|e| format!("{what}: {e}"))?;
    if head.status != want {
        return Err(format!("{what}: got {:?}, want {want}", head.first_line()));
    }
    Ok(head)
}

// ---------------------------------------------------------------------------
// Frames

/// One frame as the server sent it.
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    /// A close frame's code (`None` for an empty close) and reason.
    fn close(&self) -> Option<(Option<u16>, String)> {
        if self.opcode != OP_CLOSE {
            return None;
        }
        match self.payload.as_slice() {
            [] => Some((None, String::new())),
            [a, b, reason @ ..] => Some((Some(u16::from_be_bytes([*a, *b])), String::from_utf8_lossy(reason).into())),
            [_] => Some((None, "<1-byte close payload>".into())),
        }
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fin = if self.fin { "" } else { " (no FIN)" };
        match (self.opcode, self.close()) {
            (_, Some((Some(code), reason))) => write!(f, "close {code} {reason:?}"),
            (_, Some((None, _))) => write!(f, "close without a code"),
            (OP_TEXT, _) => write!(f, "text{fin} {}", shown(&self.payload)),
            (OP_CONT, _) => write!(f, "continuation{fin} {}", shown(&self.payload)),
            (OP_BINARY, _) => write!(f, "binary{fin} of {} bytes", self.payload.len()),
            (OP_PING, _) => write!(f, "ping {}", shown(&self.payload)),
            (OP_PONG, _) => write!(f, "pong {}", shown(&self.payload)),
            (op, _) => write!(f, "opcode {op:#x} of {} bytes", self.payload.len()),
        }
    }
}

/// A client frame: masked when `mask` is given.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let bit = if mask.is_some() { 0x80 } else { 0 };
    frame_length(&mut out, bit, payload.len() as u64);
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

fn frame_length(out: &mut Vec<u8>, mask_bit: u8, len: u64) {
    match len {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// A masked frame, as a conforming client sends them.
fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// Parses one server frame; `Err` for what RFC 6455 forbids a server to send.
fn parse_frame(buf: &[u8], limit: usize) -> Result<Option<(Frame, usize)>, String> {
    let &[b0, b1, ..] = buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(format!("the server set RSV bits ({b0:#04x}) with no extension negotiated"));
    }
    if b1 & 0x80 != 0 {
        return Err("the server masked a frame (RFC 6455 §5.1 forbids it)".into());
    }
    let opcode = b0 & 0x0f;
    if !matches!(opcode, OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
        return Err(format!("the server sent reserved opcode {opcode:#x}"));
    }
    let (len, start) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let fin = b0 & 0x80 != 0;
    if opcode >= OP_CLOSE && (len > 125 || !fin) {
        return Err(format!("the server sent a control frame of {len} bytes{}", if fin { "" } else { " without FIN" }));
    }
    if len > limit as u64 {
        return Err(format!("the server announced a frame of {len} bytes"));
    }
    let end = start + len as usize;
    let Some(payload) = buf.get(start..end) else { return Ok(None) };
    Ok(Some((Frame { fin, opcode, payload: payload.to_vec() }, end)))
}

/// An open session spoken to frame by frame.
struct Raw<'p> {
    probe: &'p Probe,
    stream: Stream,
    buf: Vec<u8>,
}

impl<'p> Raw<'p> {
    /// Opens a session on `t`, checking the 101 and its accept value.
    fn open(p: &'p Probe, t: &Target) -> Result<Raw<'p>, String> {
        let key = generate_key();
        let (head, stream, rest) =
            exchange(p, t, &upgrade_request(t, &key, "")).map_err(|e| format!("opening a session: {e}"))?;
        check_101(&head, &key).map_err(|e| format!("opening a session: {e}"))?;
        Ok(Raw { probe: p, stream, buf: rest })
    }

    fn send(&mut self, bytes: &[u8]) -> Outcome {
        self.stream.arm();
        self.stream.write_all(bytes).map_err(|e| format!("sending to the server: {e}"))
    }

    /// The next frame; `None` when the connection ended (EOF or reset).
    fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        self.stream.arm();
        let limit = self.probe.frame_limit();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf, limit)? {
                self.buf.drain(..used);
                if let Some((code, _)) = frame.close() {
                    self.probe.saw_close(code, &frame);
                }
                return Ok(Some(frame));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::TimedOut => return Err(format!("waiting for a frame: {e}")),
                Err(_) => return Ok(None),
            }
        }
    }

    fn frame(&mut self, waiting_for: &str) -> Result<Frame, String> {
        self.next_frame()?.ok_or_else(|| format!("the connection closed; {waiting_for} was expected"))
    }

    /// The next text message (reassembled if fragmented; pings and pongs skipped).
    fn text(&mut self) -> Result<String, String> {
        let mut message: Option<Vec<u8>> = None;
        loop {
            let f = self.frame("a text message")?;
            match (f.opcode, &mut message) {
                (OP_TEXT, None) => message = Some(f.payload),
                (OP_CONT, Some(m)) => m.extend_from_slice(&f.payload),
                (OP_PING | OP_PONG, _) => continue,
                _ => return Err(format!("expected a text message, got {f}")),
            }
            if f.fin {
                let bytes = message.unwrap_or_default();
                return String::from_utf8(bytes).map_err(|_| "the server sent text that is not UTF-8".to_string());
            }
            if message.as_ref().is_some_and(|m| m.len() > self.probe.frame_limit()) {
                return Err("the server's text message grows without end".into());
            }
        }
    }

    /// Expects a close with `code` (`None`: without a code); answers it when
    /// `reply` (the server started the close), then expects the transport
    /// to close with nothing more sent.
    fn expect_close(&mut self, code: Option<u16>, reply: bool) -> Result<String, String> {
        let want = code.map_or("a close without a code".to_string(), |c| format!("close {c}"));
        let f = self.frame(&want)?;
        let Some((got, reason)) = f.close() else { return Err(format!("expected {want}, got {f}")) };
        if got != code || f.payload.len() == 1 {
            return Err(format!("expected {want}, got {f}"));
        }
        if reply {
            // The closing handshake as a client completes it; the server may
            // have closed already, so a failed write is fine.
            let _ = self.send(&masked(true, OP_CLOSE, &f.payload));
        }
        self.expect_end(&format!("after {f}")).map(|()| reason)
    }

    /// Expects the end of the connection with no further frame.
    fn expect_end(&mut self, when: &str) -> Outcome {
        match self.next_frame() {
            Ok(None) => Ok(()),
            Ok(Some(f)) => Err(format!("{when}: the server sent {f} instead of closing the connection")),
            Err(e) => Err(format!("{when}: the connection stayed open ({e})")),
        }
    }
}

/// A 101 with the accept value for `key` and the upgrade headers.
fn check_101(head: &Head, key: &str) -> Outcome {
    if head.status != 101 {
        return Err(format!("got {:?}, want 101", head.first_line()));
    }
    let want = derive_accept_key(key.as_bytes());
    match head.header("sec-websocket-accept") {
        Some(got) if got == want => {}
        Some(got) => return Err(format!("Sec-WebSocket-Accept is {got:?}, want {want:?}")),
        None => return Err("the 101 has no Sec-WebSocket-Accept".into()),
    }
    if !head.has_token("upgrade", "websocket") {
        return Err("the 101 has no Upgrade: websocket".into());
    }
    if !head.has_token("connection", "upgrade") {
        return Err("the 101 has no Connection: Upgrade".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// tungstenite sessions

type Ws = WebSocket<Stream>;

fn ws_open(p: &Probe, t: &Target) -> Result<Ws, String> {
    let limit = p.frame_limit();
    let config = WebSocketConfig::default().max_message_size(Some(limit)).max_frame_size(Some(limit));
    let mut tries = 0;
    loop {
        let mut stream = p.connect(t).map_err(|e| format!("opening a session: {e}"))?;
        stream.arm();
        match tungstenite::client::client_with_config(t.url.as_str(), stream, Some(config)) {
            Ok((ws, _)) => return Ok(ws),
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                if status == 429 && tries < RATE_RETRIES {
                    tries += 1;
                    let secs = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1)
                        .clamp(1, 5);
                    std::thread::sleep(Duration::from_secs(secs));
                    continue;
                }
                return Err(format!("opening a session: the server answered {status}"));
            }
            Err(HandshakeError::Failure(e)) => return Err(format!("opening a session: {e}")),
            Err(HandshakeError::Interrupted(_)) => return Err("opening a session: the handshake timed out".into()),
        }
    }
}

fn ws_send(ws: &mut Ws, text: &str) -> Outcome {
    ws.get_mut().arm();
    ws.send(Message::text(text)).map_err(|e| format!("sending {}: {e}", shown(text.as_bytes())))
}

/// The next text message; pings (answered by tungstenite) and pongs are skipped.
fn ws_recv(p: &Probe, ws: &mut Ws) -> Result<String, String> {
    loop {
        ws.get_mut().arm();
        match ws.read() {
            Ok(Message::Text(t)) => return Ok(t.to_string()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(Message::Binary(b)) => return Err(format!("expected text, got a binary message of {} bytes", b.len())),
            Ok(Message::Close(frame)) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                p.note_close(code, &format!("{frame:?}"));
                let (code, reason) = frame.map_or((String::from("without a code"), String::new()), |f| {
                    (u16::from(f.code).to_string(), f.reason.to_string())
                });
                return Err(format!("the server closed the session ({code} {reason:?}) instead of answering"));
            }
            Err(e) => return Err(format!("waiting for a text message: {e}")),
        }
    }
}

/// Sends `text` and expects `want` back as the next text message.
fn ws_roundtrip(p: &Probe, ws: &mut Ws, text: &str, want: &str) -> Outcome {
    ws_send(ws, text)?;
    let got = ws_recv(p, ws)?;
    if got != want {
        return Err(format!(
            "sent {}, got {}, want {}",
            shown(text.as_bytes()),
            shown(got.as_bytes()),
            shown(want.as_bytes())
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The probe

struct Probe {
    object: Target,
    region: Option<Target>,
    domain: String,
    max_message: usize,
    timeout: Duration,
    /// Every close frame the server sent: how many, and those with a reserved code.
    closes: Mutex<(usize, Vec<String>)>,
    /// Authorities a connection attempt timed out on: later checks fail at
    /// once instead of waiting again for each connection.
    unreachable: Mutex<Vec<String>>,
}

impl Probe {
    /// A new connection to `t`.
    fn connect(&self, t: &Target) -> Result<Stream, String> {
        let mut unreachable = self.unreachable.lock().unwrap_or_else(PoisonError::into_inner);
        if unreachable.contains(&t.authority) {
            return Err(format!("{} did not accept a connection earlier", t.authority));
        }
        Stream::connect(t, self.timeout).map_err(|(kind, e)| {
            if kind == ErrorKind::TimedOut {
                unreachable.push(t.authority.clone());
            }
            e
        })
    }

    /// The largest frame or message the probe accepts from the server.
    fn frame_limit(&self) -> usize {
        self.max_message.saturating_mul(4).max(1 << 20)
    }

    fn saw_close(&self, code: Option<u16>, frame: &Frame) {
        self.note_close(code, &frame.to_string());
    }

    fn note_close(&self, code: Option<u16>, shown: &str) {
        let mut closes = self.closes.lock().unwrap_or_else(PoisonError::into_inner);
        closes.0 += 1;
        if matches!(code, Some(1005 | 1006 | 1015)) {
            closes.1.push(shown.to_string());
        }
    }

    fn region(&self) -> Result<&Target, String> {
        self.region.as_ref().ok_or_else(|| "no --region-url".to_string())
    }
}

// ---------------------------------------------------------------------------
// Handshake checks (SPEC §5, first table)

fn handshake_101(p: &Probe) -> Outcome {
    Raw::open(p, &p.object).map(drop)
}

/// The path with its capability changed in its last character.
fn mutate_cap(path: &str) -> String {
    let (path_only, query) = match path.find('?') {
        Some(q) => path.split_at(q),
        None => (path, ""),
    };
    let segments: Vec<&str> = path_only.split('/').collect();
    // The segment after `lslws`, else the longest one.
    let index = segments
        .iter()
        .position(|s| *s == "lslws")
        .map(|i| i + 1)
        .filter(|i| segments.get(*i).is_some_and(|s| !s.is_empty()))
        .or_else(|| (0..segments.len()).max_by_key(|i| segments[*i].len()));
    let mut out = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        if Some(i) != index || s.is_empty() {
            out.push(s.to_string());
            continue;
        }
        let mut chars: Vec<char> = s.chars().collect();
        if let Some(last) = chars.last_mut() {
            *last = match last.to_digit(16) {
                Some(v) => {
                    let next = std::char::from_digit((v + 1) % 16, 16).unwrap_or('0');
                    if last.is_ascii_uppercase() { next.to_ascii_uppercase() } else { next }
                }
                None if *last == 'x' => 'y',
                None => 'x',
            };
        }
        out.push(chars.into_iter().collect());
    }
    format!("{}{query}", out.join("/"))
}

fn unknown_cap_404(p: &Probe) -> Outcome {
    let t = p.object.with_path(mutate_cap(&p.object.path));
    expect_status(p, &t, &format!("GET {}", t.path), &upgrade_request(&t, &generate_key(), ""), 404).map(drop)
}

fn post_405(p: &Probe) -> Outcome {
    let t = &p.object;
    let upgrade = upgrade_request(t, &generate_key(), "").replacen("GET", "POST", 1);
    expect_status(p, t, "POST with upgrade headers", &upgrade, 405)?;
    let plain = format!("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n", t.path, t.authority);
    expect_status(p, t, "plain POST", &plain, 405).map(drop)
}

fn bad_key_400(p: &Probe) -> Outcome {
    let t = &p.object;
    let key = generate_key();
    let request = upgrade_request(t, &key, "");
    let cases = [
        ("no Sec-WebSocket-Key", request.replace(&format!("Sec-WebSocket-Key: {key}\r\n"), "")),
        ("a 2-byte key", request.replace(&key, "abc=")),
        ("a 15-byte key", request.replace(&key, "AAAAAAAAAAAAAAAAAAAA")),
        ("a key that is not base64", request.replace(&key, "!!!!!!!!!!!!!!!!!!!!!!==")),
    ];
    for (what, request) in cases {
        expect_status(p, t, what, &request, 400)?;
    }
    Ok(())
}

fn missing_connection_400(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = upgrade_request(t, &generate_key(), "");
    expect_status(p, t, "no Connection header", &request.replace("Connection: Upgrade\r\n", ""), 400)?;
    let keep_alive = request.replace("Connection: Upgrade", "Connection: keep-alive");
    expect_status(p, t, "Connection: keep-alive", &keep_alive, 400).map(drop)
}

fn missing_upgrade_400(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = upgrade_request(t, &generate_key(), "");
    expect_status(p, t, "no Upgrade header", &request.replace("Upgrade: websocket\r\n", ""), 400)?;
    expect_status(p, t, "Upgrade: h2c", &request.replace("Upgrade: websocket", "Upgrade: h2c"), 400).map(drop)
}

fn version_426(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = upgrade_request(t, &generate_key(), "").replace("Version: 13", "Version: 8");
    let head = expect_status(p, t, "version 8", &request, 426)?;
    if !head.has_token("sec-websocket-version", "13") {
        return Err(format!(
            "the 426 names no Sec-WebSocket-Version: 13 (got {:?})",
            head.header("sec-websocket-version")
        ));
    }
    Ok(())
}

fn plain_get_426(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", t.path, t.authority);
    expect_status(p, t, "plain GET", &request, 426).map(drop)
}

fn header_value_431(p: &Probe) -> Outcome {
    let t = &p.object;
    let key = generate_key();
    let at_limit = upgrade_request(t, &key, &format!("User-Agent: {}\r\n", "u".repeat(255)));
    let (head, _, _) = exchange(p, t, &at_limit).map_err(|e| format!("a 255-byte value: {e}"))?;
    check_101(&head, &key).map_err(|e| format!("a 255-byte value must be allowed: {e}"))?;
    let over = upgrade_request(t, &generate_key(), &format!("User-Agent: {}\r\n", "u".repeat(256)));
    expect_status(p, t, "a 256-byte value", &over, 431).map(drop)
}

fn head_431(p: &Probe) -> Outcome {
    let t = &p.object;
    // 36 headers of 240-byte values: every value allowed, the head over 8 KiB.
    let pad: String = (0..36).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(240))).collect();
    let request = upgrade_request(t, &generate_key(), &pad);
    expect_status(p, t, &format!("a {}-byte head", request.len()), &request, 431).map(drop)
}

fn region_handshake_101(p: &Probe) -> Outcome {
    Raw::open(p, p.region()?).map(drop)
}

// ---------------------------------------------------------------------------
// Frame checks (SPEC §5, second table)

fn text_echo(p: &Probe) -> Outcome {
    let mut ws = ws_open(p, &p.object)?;
    for text in ["hello", "héllo ✓ 🦀", "", "a,b,c", "two\nlines\r\n", "msg,echo,x"] {
        ws_roundtrip(p, &mut ws, text, text)?;
    }
    let _ = ws.close(None);
    Ok(())
}

fn path_info_echo(p: &Probe) -> Outcome {
    let base = p.object.path.as_str();
    let (path, query) = match base.find('?') {
        Some(q) => base.split_at(q),
        None => (base, ""),
    };
    let sep = if path.ends_with('/') { "" } else { "/" };
    let query = if query.is_empty() { "?probe=1,2".to_string() } else { format!("{query}&probe=1") };
    let t = p.object.with_path(format!("{path}{sep}probe/path{query}"));
    let mut raw = Raw::open(p, &t).map_err(|e| format!("{}: {e}", t.path))?;
    raw.send(&masked(true, OP_TEXT, b"with path info"))?;
    let got = raw.text()?;
    if got != "with path info" {
        return Err(format!("sent \"with path info\", got {}", shown(got.as_bytes())));
    }
    Ok(())
}

fn fragmented_text(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(false, OP_TEXT, b"hel"))?;
    raw.send(&masked(true, OP_PING, b"between"))?;
    raw.send(&masked(false, OP_CONT, b"lo w\xc3"))?; // "ö" split across fragments
    raw.send(&masked(true, OP_CONT, b"\xb6rld"))?;
    let (mut pong, mut text) = (false, None::<String>);
    let mut message: Option<Vec<u8>> = None;
    while !pong || text.is_none() {
        let f = raw.frame("the pong and the echo")?;
        match (f.opcode, &mut message) {
            (OP_PONG, _) if f.payload == b"between" && !pong => pong = true,
            (OP_TEXT, None) if text.is_none() => message = Some(f.payload.clone()),
            (OP_CONT, Some(m)) => m.extend_from_slice(&f.payload),
            _ => return Err(format!("expected a pong \"between\" and the text \"hello wörld\", got {f}")),
        }
        if f.fin && matches!(f.opcode, OP_TEXT | OP_CONT) {
            let bytes = message.take().unwrap_or_default();
            text = Some(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    match text.as_deref() {
        Some("hello wörld") => Ok(()),
        other => Err(format!("the echo is {other:?}, want \"hello wörld\"")),
    }
}

fn oversize_1009(p: &Probe) -> Outcome {
    let n = p.max_message;
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(true, OP_TEXT, &vec![b'a'; n]))?;
    let echo = raw.text().map_err(|e| format!("a message of exactly {n} bytes (the cap) must echo: {e}"))?;
    if echo.len() != n {
        return Err(format!("a message of {n} bytes echoed as {} bytes", echo.len()));
    }
    raw.send(&masked(true, OP_TEXT, &vec![b'a'; n + 1]))?;
    raw.expect_close(Some(1009), true).map(drop).map_err(|e| format!("{} bytes: {e}", n + 1))
}

fn oversize_header_1009(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    let announced = (p.max_message as u64 + 1).max(1 << 20);
    let mut header = vec![0x81];
    frame_length(&mut header, 0x80, announced);
    header.extend_from_slice(&[1, 2, 3, 4]);
    // Only the header: the server must refuse without waiting for the payload.
    raw.send(&header)?;
    raw.expect_close(Some(1009), true).map(drop).map_err(|e| format!("{announced} bytes announced: {e}"))
}

fn oversize_fragments_1009(p: &Probe) -> Outcome {
    let n = p.max_message;
    let (a, b) = (n - n / 2, n / 2 + 1);
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(false, OP_TEXT, &vec![b'a'; a]))?;
    raw.send(&masked(true, OP_CONT, &vec![b'a'; b]))?;
    raw.expect_close(Some(1009), true).map(drop).map_err(|e| format!("fragments of {a} + {b} bytes: {e}"))
}

/// Sends `bytes` on a new session and expects a close with `code`.
fn expect_violation(p: &Probe, what: &str, bytes: &[u8], code: u16) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(bytes).map_err(|e| format!("{what}: {e}"))?;
    raw.expect_close(Some(code), true).map(drop).map_err(|e| format!("{what}: {e}"))
}

fn binary_1003(p: &Probe) -> Outcome {
    expect_violation(p, "binary message", &masked(true, OP_BINARY, b"\x00\x01"), 1003)
}

fn invalid_utf8_1007(p: &Probe) -> Outcome {
    expect_violation(p, "text \\xff", &masked(true, OP_TEXT, b"\xff"), 1007)?;
    expect_violation(p, "text ending inside a character", &masked(true, OP_TEXT, b"ab\xe2"), 1007)
}

fn invalid_utf8_split_1007(p: &Probe) -> Outcome {
    let bytes = [masked(false, OP_TEXT, b"ok \xe2\x82"), masked(true, OP_CONT, b"A")].concat();
    expect_violation(p, "a character broken across fragments", &bytes, 1007)
}

fn unmasked_1002(p: &Probe) -> Outcome {
    expect_violation(p, "unmasked text", &frame(true, 0, OP_TEXT, b"hi", None), 1002)
}

fn rsv_bit_1002(p: &Probe) -> Outcome {
    for (rsv, name) in [(4, "RSV1"), (2, "RSV2"), (1, "RSV3")] {
        expect_violation(p, name, &frame(true, rsv, OP_TEXT, b"hi", Some([1, 2, 3, 4])), 1002)?;
    }
    Ok(())
}

fn reserved_opcode_1002(p: &Probe) -> Outcome {
    expect_violation(p, "opcode 0x3", &masked(true, 0x3, b""), 1002)?;
    expect_violation(p, "opcode 0xB", &masked(true, 0xB, b""), 1002)
}

fn control_over_125_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a 126-byte ping", &masked(true, OP_PING, &[b'p'; 126]), 1002)
}

fn fragmented_control_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a ping without FIN", &masked(false, OP_PING, b"p"), 1002)
}

fn continuation_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a lone continuation", &masked(true, OP_CONT, b"x"), 1002)
}

fn message_inside_fragmented_1002(p: &Probe) -> Outcome {
    let bytes = [masked(false, OP_TEXT, b"a"), masked(true, OP_TEXT, b"b")].concat();
    expect_violation(p, "text inside a fragmented text", &bytes, 1002)
}

fn invalid_close_code_1002(p: &Probe) -> Outcome {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let bytes = masked(true, OP_CLOSE, &close_payload(code, ""));
        expect_violation(p, &format!("close code {code}"), &bytes, 1002)?;
    }
    Ok(())
}

fn close_1_byte_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a 1-byte close payload", &masked(true, OP_CLOSE, &[3]), 1002)
}

fn ping_pong(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    let long = [b'z'; 125];
    for payload in [&b"abc"[..], b"", &long] {
        raw.send(&masked(true, OP_PING, payload))?;
        let f = raw.frame("a pong")?;
        if f.opcode != OP_PONG || f.payload != payload {
            return Err(format!("ping {} answered with {f}", shown(payload)));
        }
    }
    Ok(())
}

fn close_echo(p: &Probe) -> Outcome {
    for (code, reason) in [(1000, "bye"), (3000, ""), (4999, "custom ✓")] {
        let mut raw = Raw::open(p, &p.object)?;
        raw.send(&masked(true, OP_CLOSE, &close_payload(code, reason)))?;
        let got = raw.expect_close(Some(code), false).map_err(|e| format!("close {code} {reason:?}: {e}"))?;
        if got != reason {
            return Err(format!("close {code} {reason:?} echoed with reason {got:?}"));
        }
    }
    Ok(())
}

fn close_empty_echo(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(true, OP_CLOSE, b""))?;
    raw.expect_close(None, false).map(drop)
}

fn no_reserved_close_codes(p: &Probe) -> Outcome {
    let closes = p.closes.lock().unwrap_or_else(PoisonError::into_inner);
    match (closes.0, closes.1.as_slice()) {
        (0, _) => Err("the server sent no close frame to judge".into()),
        (_, []) => Ok(()),
        (n, bad) => Err(format!("{} of {n} close frames carried a reserved code: {}", bad.len(), bad.join("; "))),
    }
}

// ---------------------------------------------------------------------------
// Region checks (SPEC §6)

fn region_ws(p: &Probe) -> Result<Ws, String> {
    ws_open(p, p.region()?)
}

fn region_echo(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    for payload in ["hello", "a,b,c", "", "two\nlines\r\nthree", "héllo ✓ 🦀", "msg,other,nested", ",,"] {
        let frame = format!("msg,{d},{payload}");
        ws_roundtrip(p, &mut ws, &frame, &frame)?;
    }
    let _ = ws.close(None);
    Ok(())
}

fn region_sub(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    ws_send(&mut ws, &format!("sub,{d}"))?;
    // Nothing answers a good `sub`: the next text is the echo.
    let after = format!("msg,{d},after sub");
    ws_roundtrip(p, &mut ws, &after, &after).map_err(|e| format!("after sub,{d}: {e}"))?;
    let _ = ws.close(None);
    Ok(())
}

fn region_uns(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    ws_send(&mut ws, &format!("sub,{d}"))?;
    ws_send(&mut ws, &format!("uns,{d}"))?;
    let after = format!("msg,{d},after uns");
    ws_roundtrip(p, &mut ws, &after, &after).map_err(|e| format!("after sub,{d} and uns,{d}: {e}"))?;
    let _ = ws.close(None);
    Ok(())
}

/// A domain nobody is likely to listen on.
fn unknown_domain(p: &Probe) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let d = format!("probe-nobody-{}-{nanos}", std::process::id());
    if d == p.domain { format!("{d}x") } else { d }
}

fn region_no_listener(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = unknown_domain(p);
    ws_roundtrip(p, &mut ws, &format!("msg,{d},x"), &format!("err,{d},no-listener"))?;
    let _ = ws.close(None);
    Ok(())
}

fn region_to_no_listener(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    let object = "0b5e1f3c-7d2a-4e6b-9c8d-1a2b3c4d5e6f";
    ws_roundtrip(p, &mut ws, &format!("to,{object},{d},x"), &format!("err,{d},no-listener"))?;
    let _ = ws.close(None);
    Ok(())
}

fn region_bad_frame(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    let long = "d".repeat(65);
    let frames = [
        "not an envelope".to_string(),
        "hello,world".to_string(),
        "sub,".to_string(),
        "msg,,x".to_string(),
        format!("to,not-a-key,{d},x"),
        format!("msg,{long},x"),
    ];
    for frame in &frames {
        ws_roundtrip(p, &mut ws, frame, "err,,bad-frame")?;
    }
    let after = format!("msg,{d},still open");
    ws_roundtrip(p, &mut ws, &after, &after).map_err(|e| format!("after the bad frames: {e}"))?;
    let _ = ws.close(None);
    Ok(())
}

// ---------------------------------------------------------------------------
// Main

fn list() {
    println!("checks (name: what; assumes):");
    for check in checks() {
        let scope = if check.region { " [--region-url]" } else { "" };
        println!("  {}{scope}: {}; assumes {}", check.name, check.what, check.assumes);
    }
    println!("not checked from outside:");
    for (name, why) in NOT_CHECKED {
        println!("  {name}: {why}");
    }
}

/// Runs one check; a panic in the probe itself is reported as a failure.
fn run_check(p: &Probe, check: &Check) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| (check.run)(p))).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("the probe itself failed (a bug in the probe): {why}"))
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::List) => {
            list();
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("probe: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let probe = Probe {
        object: args.object,
        region: args.region,
        domain: args.domain,
        max_message: args.max_message,
        timeout: args.timeout,
        closes: Mutex::new((0, Vec::new())),
        unreachable: Mutex::new(Vec::new()),
    };
    let (mut passed, mut failed) = (0, 0);
    let mut out = io::stdout().lock();
    for check in checks() {
        if check.region && probe.region.is_none() {
            continue;
        }
        let line = match run_check(&probe, &check) {
            Ok(()) => {
                passed += 1;
                format!("PASS {}", check.name)
            }
            Err(why) => {
                failed += 1;
                let mut line = format!("FAIL {}: {why}", check.name);
                if check.assumes != LIVE {
                    let _ = write!(line, " [assumes: {}]", check.assumes);
                }
                line.replace(['\n', '\r'], " ")
            }
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    if probe.region.is_none() {
        let _ = writeln!(out, "SKIP region-*: not checked (no --region-url given)");
    }
    for (name, why) in NOT_CHECKED {
        let _ = writeln!(out, "SKIP {name}: not checked from outside ({why})");
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    let _ = out.flush();
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
