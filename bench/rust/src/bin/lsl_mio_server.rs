//! This crate's `mio` adapter (one thread owns the region and every socket)
//! with the `echo_server` example's echo scripts, for `bench/*.sh`.
//!
//! ```text
//! lsl_mio_server [--bind 127.0.0.1:0] [--regions 1] [--sessions-per-url N] [--handshakes-per-second N]
//!                [--event-queue N] [--size 64]
//! ```
//!
//! Per region (each its own `Server` on its own thread and port, nothing
//! shared between them but the process):
//!
//! - an object script holding an object-scope WebSocket URL that sends every
//!   text back to its session (`llWebsocketSend`), printed as `object-url <url>`;
//! - the same script's HTTP-in URL (`http-url <url>`), answering every request
//!   `200` with the body it received (`llHTTPResponse`), as the example's
//!   `http_echo` does for any path other than its test paths;
//! - a region-scope script listening on domain `bench` (`region-url <url>`):
//!   it counts the clients subscribed (`WS_OPEN` / `WS_CLOSE`) and answers each
//!   text `go` with one `llWebsocketBroadcast` to all of them, whose text is
//!   `<t0> <subscribers> ` padded with `x` to `--size` bytes, `t0` being
//!   `CLOCK_MONOTONIC` in nanoseconds just before the call (the load generator
//!   reads the same clock on receipt: `loadgen broadcast`).
//!
//! Limits are raised as the example's flags raise them (`--sessions-per-url`
//! also raises the region endpoint's cap); `--event-queue` changes the
//! scripts' event queue (LSL's 64 by default). Runs until killed.

use std::io::Write;
use std::time::Instant;

use lsl_websocket::adapter::mio::Server;
use lsl_websocket::adapter::{Handler, OsEntropy};
use lsl_websocket::{
    Config, Entropy, Event, EventKind, HttpMethod, Key, Region, Scope, ScriptInfo, SendError, WebsocketRequest,
};
use lsl_websocket_bench::monotonic_ns;

const DOMAIN: &str = "bench";

struct Bench {
    object: ScriptInfo,
    listener: ScriptInfo,
    subscribers: usize,
    size: usize,
    busy: u64,
}

impl Handler for Bench {
    fn on_start(&mut self, region: &mut Region, _now: Instant) {
        region.request_websocket(self.object, &WebsocketRequest::default());
        region.request_url(self.object);
        let request =
            WebsocketRequest { scope: Scope::Region, domain: Some(DOMAIN.to_string()), ..WebsocketRequest::default() };
        region.request_websocket(self.listener, &request);
    }

    fn on_event(&mut self, region: &mut Region, now: Instant, script: Key, event: Event) {
        let object = script == self.object.script;
        match event.kind {
            EventKind::Text if object => {
                if let Err(SendError::Busy) = region.websocket_send(script, event.id, &event.data) {
                    self.busy += 1;
                }
            }
            EventKind::Text if &*event.data == "go" => {
                let mut text = format!("{} {} ", monotonic_ns(), self.subscribers);
                while text.len() < self.size {
                    text.push('x');
                }
                let _ = region.websocket_broadcast(script, DOMAIN, &text);
            }
            EventKind::Open if !object => self.subscribers += 1,
            EventKind::Close if !object => self.subscribers = self.subscribers.saturating_sub(1),
            EventKind::UrlGranted => {
                print_line(&format!("{} {}", if object { "object-url" } else { "region-url" }, event.data))
            }
            EventKind::UrlDenied => eprintln!("url denied: {}", event.data),
            EventKind::Http(HttpMethod::UrlRequestGranted) => print_line(&format!("http-url {}", event.data)),
            EventKind::Http(HttpMethod::UrlRequestDenied) => eprintln!("http-url denied: {}", event.data),
            // The client may have gone meanwhile: nobody to answer then.
            EventKind::Http(_) => drop(region.http_response(now, script, event.id, 200, &event.data)),
            _ => {}
        }
    }
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn key(entropy: &mut OsEntropy) -> Key {
    let mut bytes = [0; 16];
    entropy.fill(&mut bytes);
    Key::from_random_bytes(bytes)
}

fn main() {
    let mut bind = "127.0.0.1:0".to_string();
    let (mut regions, mut sessions, mut handshakes, mut queue, mut size) = (1usize, 256usize, 1_000_000u32, 64, 64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => bind = value(),
            "--regions" => regions = value().parse().expect("--regions N"),
            "--sessions-per-url" => sessions = value().parse().expect("--sessions-per-url N"),
            "--handshakes-per-second" => handshakes = value().parse().expect("--handshakes-per-second N"),
            "--event-queue" => queue = value().parse().expect("--event-queue N"),
            "--size" => size = value().parse().expect("--size B"),
            other => panic!("unknown argument {other}"),
        }
    }
    let mut entropy = OsEntropy::new().expect("an OS random source");
    let mut threads = Vec::new();
    for _ in 0..regions {
        let mut info = || ScriptInfo { script: key(&mut entropy), object: key(&mut entropy), owner: key(&mut entropy) };
        let handler = Bench { object: info(), listener: info(), subscribers: 0, size, busy: 0 };
        let config = Config {
            sessions_per_url: sessions,
            region_endpoint_sessions: sessions.max(4096),
            max_handshakes: sessions.max(1024),
            handshakes_per_second: handshakes,
            event_queue: queue,
            http_in_flight: sessions.max(1024),
            ..Config::default()
        };
        let server = Server::bind(bind.as_str(), config, handler).expect("bind");
        eprintln!("listening on {}", server.local_addr().expect("an address"));
        threads.push(std::thread::spawn(move || {
            let bench = server.run();
            if bench.busy > 0 {
                eprintln!("{} echoes answered WS_ERR_BUSY", bench.busy);
            }
        }));
    }
    for thread in threads {
        let _ = thread.join();
    }
}
