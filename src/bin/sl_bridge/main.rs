//! `sl_bridge`: WebSocket URLs for Second Life scripts, over the HTTP-in the grid already has (SPEC §12).
//!
//! ```text
//! SL_BRIDGE_SECRET=… cargo run --release --features bridge --bin sl_bridge -- [--bind ADDR]
//!     [--public HOST:PORT] [--secure-authority HOST:PORT] [--grace SECS] [--request-timeout SECS]
//!     [--in-flight N] [--queue N] [--attempts N] [--backoff-ms N] [--handshakes-per-second N]
//!     [--grid-ca PEM]...
//! ```
//!
//! The bridge is an embedding of this crate: a region on the tokio adapter
//! whose "scripts" are remote LSL scripts reached over HTTP.
//!
//! - `GET /register?url=<HTTP-in URL>&token=<token>&sig=<hex sha256(secret\nurl\ntoken)>`
//!   registers a script (`token` empty the first time). The answer, one per
//!   line: the script's token, its push URL, its `ws://` URL and, with
//!   `--secure-authority`, its `wss://` URL (a TLS proxy in front terminates it).
//! - Every client event (open, text, close) is POSTed to the script's
//!   HTTP-in URL with `x-bridge-event` (`open`, `text`, `close`) and
//!   `x-bridge-session`; the text is the body; a non-empty answer goes back
//!   to that client. Events that queued up go several in one request with
//!   `x-bridge-event: batch` (record lines, see `wire`), answered with push lines.
//! - `POST <push URL>` with `x-bridge-secret` and `x-bridge-token`: push
//!   lines (`<session> <text>`, `* <text>` for every session, `!<session>
//!   <reason>` to close one), answered with one `WS_*` status per line.
//! - `GET /stats`: counters as JSON.
//!
//! Prints `listening <addr>`, `register-url <url>` and `push-url <url>` on stdout once listening
//! (`https://` with `--secure-authority`: the secret travels in every push).
//! The secret comes from `SL_BRIDGE_SECRET` (or `--secret`, visible to `ps`).
//! stdin `quit` closes every session (1001) and exits.

mod bridge;
mod grid;
mod policy;
mod stats;
mod wire;

use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lsl_websocket::adapter::OsEntropy;
use lsl_websocket::adapter::tokio::Server;
use lsl_websocket::{Config, Region};

use crate::bridge::{Bridge, Settings, print_line};
use crate::policy::Limits;

struct Args {
    bind: String,
    public: Option<String>,
    secure_authority: Option<String>,
    secret: Option<String>,
    limits: Limits,
    request_timeout: Duration,
    handshakes_per_second: u32,
    /// PEM files of extra CAs for `https://` HTTP-in URLs.
    grid_ca: Vec<String>,
}

const USAGE: &str = "usage: sl_bridge [--bind ADDR] [--public HOST:PORT] [--secure-authority HOST:PORT] \
     [--secret S (default: $SL_BRIDGE_SECRET)] [--grace SECS] [--request-timeout SECS] [--in-flight N] \
     [--queue N] [--attempts N] [--backoff-ms N] [--handshakes-per-second N] [--grid-ca PEM]...";

fn number<T: std::str::FromStr + PartialEq + Default>(flag: &str, value: Option<String>) -> Result<T, String> {
    let n = value.ok_or_else(|| format!("{flag} needs a number"))?;
    let parsed: T = n.parse().map_err(|_| format!("{flag}: not a number: {n}"))?;
    if parsed == T::default() {
        return Err(format!("{flag} must be at least 1"));
    }
    Ok(parsed)
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: "127.0.0.1:8790".into(),
        public: None,
        secure_authority: None,
        secret: std::env::var("SL_BRIDGE_SECRET").ok(),
        limits: Limits::default(),
        request_timeout: Duration::from_secs(30),
        handshakes_per_second: 400,
        grid_ca: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let l = &mut args.limits;
        match arg.as_str() {
            "--bind" => args.bind = it.next().ok_or("--bind needs an address")?,
            "--public" => args.public = Some(it.next().ok_or("--public needs HOST:PORT")?),
            "--secure-authority" => {
                args.secure_authority = Some(it.next().ok_or("--secure-authority needs HOST:PORT")?)
            }
            "--secret" => args.secret = Some(it.next().ok_or("--secret needs a value")?),
            "--grace" => l.grace = Duration::from_secs(number(&arg, it.next())?),
            "--request-timeout" => args.request_timeout = Duration::from_secs(number(&arg, it.next())?),
            "--in-flight" => l.in_flight = number(&arg, it.next())?,
            "--queue" => l.queue = number(&arg, it.next())?,
            "--attempts" => l.attempts = number(&arg, it.next())?,
            "--backoff-ms" => l.backoff = Duration::from_millis(number(&arg, it.next())?),
            "--handshakes-per-second" => args.handshakes_per_second = number(&arg, it.next())?,
            "--grid-ca" => args.grid_ca.push(it.next().ok_or("--grid-ca needs a PEM file")?),
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
    // TLS to the grid uses ring; installed before any client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One region task; deliveries are tasks on the same thread (as echo_server).
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(serve(args)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> ExitCode {
    let Some(secret) = args.secret.filter(|s| !s.is_empty()) else {
        eprintln!("sl_bridge needs a secret: set SL_BRIDGE_SECRET (or --secret)");
        return ExitCode::from(2);
    };
    let mut roots = Vec::new();
    for path in &args.grid_ca {
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        {
            Ok(certs) if !certs.is_empty() => roots.extend(certs),
            Ok(_) => {
                eprintln!("--grid-ca {path}: no certificate in it");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("--grid-ca {path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let (entropy, client) = match (OsEntropy::new(), grid::client(Duration::from_secs(10), roots)) {
        (Ok(e), Ok(c)) => (e, c),
        (Err(e), _) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        (_, Err(e)) => {
            eprintln!("cannot build the HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let authority = args.public.unwrap_or_else(|| local.clone());
    let register_url = match &args.secure_authority {
        Some(secure) => format!("https://{secure}/register"),
        None => format!("http://{authority}/register"),
    };
    let config = Config { authority, ..bridge_config(args.secure_authority, args.handshakes_per_second) };
    let settings = Settings {
        secret,
        limits: args.limits,
        request_timeout: args.request_timeout,
        secure: config.secure_authority.is_some(),
    };
    let region = Region::new(config, Box::new(entropy), Instant::now());
    let server = Server::from_listener(listener, region, Bridge::new(settings, entropy, client));
    let handle = server.handle();
    let own = handle.clone();
    let _ = handle.call(move |bridge: &mut Bridge, _, _| bridge.set_handle(own));
    print_line(&format!("listening {local}"));
    print_line(&format!("register-url {register_url}"));
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "quit" {
                let _ = handle.shutdown();
                break;
            }
        }
    });
    server.run().await;
    ExitCode::SUCCESS
}

/// The bridge region: Second Life's 2048-byte message cap both ways (a
/// longer client message is closed 1009, SPEC §5); pushes of several
/// messages fit one body of up to 16 KiB, over it 413.
fn bridge_config(secure_authority: Option<String>, handshakes_per_second: u32) -> Config {
    Config {
        secure_authority,
        max_message: 2048,
        serve_other_paths: true,
        max_body: 16 * 1024,
        refuse_large_bodies: true,
        // Pushes are answered at once; many scripts may push together.
        http_in_flight: 1024,
        handshakes_per_second,
        ..Config::default()
    }
}
