//! A simulated region (or many) with two echo scripts each, on the tokio adapter.
//!
//! ```text
//! cargo run --release --features tokio --example echo_server -- [--bind ADDR] [--max-message N]
//!     [--sessions-per-url N] [--handshakes-per-second N] [--worker-threads N] [--http-timeout SECS]
//!     [--authority HOST:PORT] [--proxy-bind ADDR] [--trusted-proxy CIDR]... [--regions N]
//!     [--secure-authority HOST:PORT] [--tls-cert FILE --tls-key FILE [--tls-bind ADDR] [--tls-proxy]]
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
//!
//! TLS and proxies (SPEC §15; TLS needs feature `tls`):
//! - `--tls-cert FILE --tls-key FILE` (PEM) add a TLS listener on
//!   `--tls-bind` (default `127.0.0.1:8788`); the scripts then also hold
//!   `wss://` and `https://` URLs, printed as `secure-object-url` and
//!   `secure-http-url` lines, and a page loaded over `https://` uses them
//!   (the region endpoint stays `ws://`: the core mints it plain only).
//! - `--authority` / `--secure-authority HOST:PORT`: the public names URLs
//!   are minted with (behind a proxy); default: the bound addresses.
//!   `--secure-authority` without `--tls-cert` names a proxy that ends TLS
//!   in front: the scripts hold `wss://` / `https://` URLs all the same.
//! - `--proxy-bind ADDR`: one more plain listener whose connections start
//!   with a PROXY protocol header (v1 or v2); `--tls-proxy`: the TLS
//!   listener's do (before TLS). `--trusted-proxy CIDR` (repeatable): the
//!   peers whose PROXY header, `Forwarded` or `X-Forwarded-For` names the
//!   client (`x-remote-ip` and the rate-limit key).
//!
//! Many regions on one port (SPEC §16): `--regions N` (N > 1) runs N regions,
//! each on its own thread with its own two echo scripts; every line gains a
//! trailing ` region=<index>` field (`object-url <url> region=2`); stdin
//! commands take the region's index after the command (`reset 2`; none: 0),
//! and `add-region` (prints the new region's lines with the next index),
//! `remove-region I` (closes its sessions with 1001) and `cross I J` (region
//! I's echo object crosses into J: its URLs in I are revoked, `region
//! change`, it requests new ones in J; I rezzes a new echo object when it
//! had no other) are added. `GET /` is served by the lowest-numbered region.

mod echo;

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Instant;

use echo::Echo;
use lsl_websocket::adapter::OsEntropy;
use lsl_websocket::adapter::tokio::{ListenerOptions, Server};
use lsl_websocket::{Config, Region};

mod args;
mod regions;

use args::Args;

/// The commands stdin accepts for one region.
const COMMANDS: [&str; 7] = ["reset", "rez", "region-change", "owner-change", "remove", "restart", "release"];

fn main() -> ExitCode {
    let args = match args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match start(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The region's settings from the flags (authorities are set by the caller).
fn config(args: &Args) -> Config {
    Config {
        max_message: args.max_message,
        serve_other_paths: true,
        sessions_per_url: args.sessions_per_url,
        handshakes_per_second: args.handshakes_per_second,
        http_timeout: std::time::Duration::from_secs(args.http_timeout),
        trusted_proxies: args.trusted.clone(),
        ..Config::default()
    }
}

/// Bound listeners and how each one's connections start.
type Listeners = Vec<(std::net::TcpListener, ListenerOptions)>;

/// Binds every listener; returns them with the public names URLs are minted with.
fn listen(args: &Args) -> Result<(Listeners, String, Option<String>), String> {
    let bind = |addr: &str| std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"));
    let plain = bind(&args.bind)?;
    let local = |l: &std::net::TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    eprintln!("listening on http://{}/", local(&plain));
    let authority = args.authority.clone().unwrap_or_else(|| local(&plain));
    let mut listeners = vec![(plain, ListenerOptions::plain())];
    // Without a TLS listener here, a given secure authority names a proxy's.
    let mut secure_authority = args.secure_authority.clone();
    if let Some(tls) = args::tls_options(args)? {
        let listener = bind(&args.tls_bind)?;
        secure_authority = Some(args.secure_authority.clone().unwrap_or_else(|| local(&listener)));
        listeners.push((listener, tls));
    }
    if let Some(addr) = &args.proxy_bind {
        listeners.push((bind(addr)?, ListenerOptions::plain().with_proxy_protocol()));
    }
    for (listener, options) in &listeners[1..] {
        let proxy = if options.proxy_protocol { " (expects PROXY)" } else { "" };
        eprintln!("also listening on {}{proxy}", local(listener));
    }
    if args.authority.is_some() || args.secure_authority.is_some() {
        eprintln!("URLs name {authority} and {}", secure_authority.as_deref().unwrap_or("no secure authority"));
    }
    Ok((listeners, authority, secure_authority))
}

fn start(args: Args) -> Result<ExitCode, String> {
    let (listeners, authority, secure_authority) = listen(&args)?;
    let base = Config { authority, secure_authority, ..config(&args) };
    if args.regions > 1 {
        return regions::run(&args, listeners, base);
    }
    // The region is one task, so one thread serves it best: connection tasks
    // on other workers cost a cross-thread wake-up per message (bench/loopback.sh
    // measured about 30% more CPU per echo with two workers on two cores).
    let runtime = match args.worker_threads {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    };
    let runtime = runtime.map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(listeners, base))
}

async fn serve(listeners: Listeners, config: Config) -> Result<ExitCode, String> {
    let entropy = OsEntropy::new().map_err(|e| e.to_string())?;
    let secure = config.secure_authority.is_some();
    let region = Region::new(config, Box::new(OsEntropy::new().map_err(|e| e.to_string())?), Instant::now());
    let mut registered = Vec::new();
    for (listener, options) in listeners {
        let register = listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener));
        registered.push((register.map_err(|e| format!("cannot register the listener: {e}"))?, options));
    }
    let mut registered = registered.into_iter();
    let (first, _) = registered.next().ok_or("no listener")?;
    let mut server = Server::from_listener(first, region, Echo::new(entropy, secure, String::new()));
    for (listener, options) in registered {
        server.add_listener(listener, options);
    }
    let handle = server.handle();
    // stdin is read on a plain thread; its end does not stop the server.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let command = line.trim().to_string();
            let sent = match command.as_str() {
                "" => Ok(()),
                "quit" => handle.shutdown(),
                c if COMMANDS.contains(&c) => handle.call(move |echo: &mut Echo, region, now| {
                    echo.command(region, now, &command);
                }),
                _ => {
                    eprintln!("unknown command {command:?}; commands: {}, quit", COMMANDS.join(", "));
                    Ok(())
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    server.run().await;
    Ok(ExitCode::SUCCESS)
}
