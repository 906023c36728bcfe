//! A probe that checks a live server's wire behaviour (SPEC §5, with
//! `--region-url` the §6 envelope, with `--http-url` §8 HTTP-in) from
//! outside, over TCP: tungstenite's client for well-formed sessions, raw TCP
//! for malformed requests and frames, plain HTTP/1.1 for HTTP-in. It needs
//! only the URLs, so it can test any implementation.
//!
//! ```text
//! cargo run --release --example probe -- --object-url URL [--region-url URL]
//!     [--http-url URL [--http-timeout SECS]] [--lines] [--sse] [--domain D] [--max-message N] [--timeout SECS]
//!     [--ca-file FILE]
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
//! - `--http-url URL`: an HTTP-in URL (`http://host:port/lslhttp/<cap>/`);
//!   enables the §8 checks. They assume its script answers by `x-path-info`
//!   as `echo_server`'s does: `/status/<n>` → status n, empty body;
//!   `/header/<name>` → 200 with `llGetHTTPHeader(id, name)`; `/method` →
//!   200 with the method; `/hold` → never answered; anything else → 200
//!   with the body as the script received it.
//! - `--http-timeout SECS`: the server's HTTP-in timeout; enables the check
//!   that an unanswered `/hold` gets 504 (it waits that long).
//! - `--lines`: enables the SPEC §13 checks: raw TCP line clients on the
//!   object URL's port (first line the URL's path, one message per line,
//!   `\n`, `\r`, `\\` escapes, the control lines `\error`, `\close`,
//!   `\ping`, `\pong` of conformance/FORMAT.md D37–D44), with the same
//!   echo assumption; with `--region-url` also the envelope over lines.
//! - `--sse`: enables the SPEC §14 checks: server-sent event streams on the
//!   object URL (`Accept: text/event-stream`, the session event naming the
//!   send URL, JSON-string events with ids `{token}-{n}`, POSTs 204 / 413 /
//!   400 / 404, DELETE and its close event, 204 to a reconnect of an ended
//!   session, resume with `Last-Event-ID`; conformance/FORMAT.md D45–D51),
//!   with the same echo assumption; with `--region-url` also the envelope
//!   over SSE.
//! - `--max-message N`: the server's message cap in bytes (default 2048, the
//!   SPEC default): exactly N bytes must echo, N + 1 must close 1009.
//! - `--ca-file FILE`: PEM CA certificates to trust for `wss://` and
//!   `https://` URLs (feature `tls`).
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
//! `wss://` and `https://` URLs (built with feature `tls`) are checked over
//! TLS (rustls with ring) trusting only the CA certificates of
//! `--ca-file FILE` (PEM); the probe carries no root store of its own.

mod checks;
mod frames;
mod handshake;
mod http;
mod http_checks;
mod lines;
mod net;
mod region;
mod session;
mod sse;

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use checks::{Check, LIVE, NOT_CHECKED, Needs, Outcome, checks};
use frames::Frame;
use net::{Stream, Target};

const USAGE: &str = "usage: probe --object-url ws://HOST:PORT/PATH [--region-url ws://HOST:PORT/PATH] \
[--http-url http://HOST:PORT/lslhttp/CAP/ [--http-timeout SECS]] [--lines] [--sse] [--domain D] [--max-message N] [--timeout SECS] \
[--ca-file FILE] (wss:// and https:// URLs need it)
       probe --list";

/// How often a 429 answer is retried.
const RATE_RETRIES: u32 = 3;
/// The largest response head or server frame the probe reads.
const MAX_HEAD: usize = 16 * 1024;

struct Args {
    object: Target,
    region: Option<Target>,
    http: Option<Target>,
    http_timeout: Option<Duration>,
    lines: bool,
    sse: bool,
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
    let (mut http, mut http_timeout) = (None, None);
    let (mut max_message, mut timeout) = (2048usize, Duration::from_secs(5));
    let (mut list, mut lines, mut sse) = (false, false, false);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--object-url" => object = Some(value("--object-url")?),
            "--ca-file" => net::set_tls(&value("--ca-file")?)?,
            "--region-url" => region = Some(value("--region-url")?),
            "--http-url" => http = Some(value("--http-url")?),
            "--http-timeout" => http_timeout = Some(seconds("--http-timeout", &value("--http-timeout")?)?),
            "--domain" => domain = value("--domain")?,
            "--max-message" => {
                let n = value("--max-message")?;
                max_message = n.parse().map_err(|_| format!("--max-message: not a number: {n}"))?;
                if max_message == 0 || max_message > 1 << 24 {
                    return Err("--max-message must be between 1 and 16777216".into());
                }
            }
            "--timeout" => {
                timeout = seconds("--timeout", &value("--timeout")?)?;
            }
            "--list" => list = true,
            "--lines" => lines = true,
            "--sse" => sse = true,
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
    let http = http.map(|h| Target::parse_scheme("--http-url", &h, "http")).transpose()?;
    if http_timeout.is_some() && http.is_none() {
        return Err("--http-timeout needs --http-url".into());
    }
    Ok(Parsed::Run(Box::new(Args { object, region, http, http_timeout, lines, sse, domain, max_message, timeout })))
}

/// A number of seconds between 0.01 and 600, decimals allowed.
fn seconds(flag: &str, s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{flag}: not a number of seconds: {s}"))?;
    if !(0.01..=600.0).contains(&secs) {
        return Err(format!("{flag} must be between 0.01 and 600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

// ---------------------------------------------------------------------------
// The probe

struct Probe {
    object: Target,
    region: Option<Target>,
    http: Option<Target>,
    /// The server's HTTP-in timeout, if the user gave it.
    http_timeout: Option<Duration>,
    /// Whether to run the line-client checks (SPEC §13).
    lines: bool,
    /// Whether to run the server-sent events checks (SPEC §14).
    sse: bool,
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

    fn http(&self) -> Result<&Target, String> {
        self.http.as_ref().ok_or_else(|| "no --http-url".to_string())
    }

    /// Whether the arguments given enable `check`.
    fn enables(&self, check: &Check) -> bool {
        match check.needs {
            Needs::Object => true,
            Needs::Region => self.region.is_some(),
            Needs::Http => self.http.is_some(),
            Needs::HttpTimeout => self.http.is_some() && self.http_timeout.is_some(),
            Needs::Lines => self.lines,
            Needs::LinesRegion => self.lines && self.region.is_some(),
            Needs::Sse => self.sse,
            Needs::SseRegion => self.sse && self.region.is_some(),
        }
    }
}

// ---------------------------------------------------------------------------
// Main

fn list() {
    println!("checks (name: what; assumes):");
    for check in checks() {
        let scope = check.needs.flags();
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
        http: args.http,
        http_timeout: args.http_timeout,
        lines: args.lines,
        sse: args.sse,
        domain: args.domain,
        max_message: args.max_message,
        timeout: args.timeout,
        closes: Mutex::new((0, Vec::new())),
        unreachable: Mutex::new(Vec::new()),
    };
    let (mut passed, mut failed) = (0, 0);
    let mut out = io::stdout().lock();
    for check in checks() {
        if !probe.enables(&check) {
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
    if probe.http.is_none() {
        let _ = writeln!(out, "SKIP http-*: not checked (no --http-url given)");
    } else if probe.http_timeout.is_none() {
        let _ = writeln!(out, "SKIP http-hold-504: not checked (no --http-timeout given)");
    }
    if !probe.lines {
        let _ = writeln!(out, "SKIP lines-*: not checked (no --lines given)");
    } else if probe.region.is_none() {
        let _ = writeln!(out, "SKIP lines-region: not checked (no --region-url given)");
    }
    if !probe.sse {
        let _ = writeln!(out, "SKIP sse-*: not checked (no --sse given)");
    } else if probe.region.is_none() {
        let _ = writeln!(out, "SKIP sse-region: not checked (no --region-url given)");
    }
    for (name, why) in NOT_CHECKED {
        let _ = writeln!(out, "SKIP {name}: not checked from outside ({why})");
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    let _ = out.flush();
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
