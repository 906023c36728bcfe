//! In-memory echo, core vs tungstenite's bare engine, timed interleaved.
//!
//! ```text
//! micro [--rounds R] [--target-ms T]
//! micro --profile PATH SIZE N     # N echoes on one path only, for callgrind/perf
//! ```
//!
//! For each message size (64 B, 1024 B) and each path — the core
//! (`Region`, default config, an echo script that answers every `WS_TEXT`
//! with `llWebsocketSend`), tungstenite with its default config, tungstenite
//! with 4 KiB read/write buffers (these two send a copy of the text, as
//! `benches/echo.rs` does and as a script holding a string must), and
//! tungstenite 4 KiB sending the received buffer back as it is
//! (`-zerocopy`) — one round times a batch of echoes per
//! path; paths take turns in a rotating order, `R` rounds, and the median
//! per path is printed. Also the cost of one server handshake: the core's
//! (accept, head, 101, `WS_OPEN`, close) and tungstenite's `accept`.
//!
//! Output: a table, then one machine-readable line per case:
//! `result echo <size> <path> <median ns/msg> <min> <max>` and
//! `result handshake <path> <median ns> <min> <max>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use lsl_websocket::{Config, ConnectionId, Input, Region, SeededEntropy};
use lsl_websocket_bench::{
    CoreEcho, Pipe, TungsteniteEcho, head, masked_text, median, request_url, run_outputs, script,
};
use tungstenite::protocol::WebSocketConfig;

const SIZES: [usize; 2] = [64, 1024];
const PATHS: [&str; 4] = ["core", "tungstenite-default", "tungstenite-4k", "tungstenite-4k-zerocopy"];

struct Args {
    rounds: usize,
    target: Duration,
    profile: Option<(String, usize, u64)>,
}

fn args() -> Args {
    let mut a = Args { rounds: 11, target: Duration::from_millis(60), profile: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok()).expect("a number");
        match arg.as_str() {
            "--rounds" => a.rounds = value() as usize,
            "--target-ms" => a.target = Duration::from_millis(value()),
            "--profile" => {
                let path = it.next().expect("a path");
                let mut value = || it.next().and_then(|v| v.parse::<u64>().ok()).expect("a number");
                a.profile = Some((path, value() as usize, value()));
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Runs `f` `n` times; nanoseconds per call.
fn time(n: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Calls per batch so one batch takes about `target`.
fn calibrate(target: Duration, mut f: impl FnMut()) -> u64 {
    let mut n = 64u64;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        let took = start.elapsed();
        if took >= target / 4 {
            return ((n as f64) * target.as_secs_f64() / took.as_secs_f64()).max(1.0) as u64;
        }
        n *= 4;
    }
}

fn tungstenite_config(path: &str) -> WebSocketConfig {
    match path {
        "tungstenite-4k" | "tungstenite-4k-zerocopy" => {
            WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)
        }
        _ => WebSocketConfig::default(),
    }
}

/// One echo path for one size (both live for the whole run, side by side).
#[allow(clippy::large_enum_variant)]
enum Echo {
    Core(CoreEcho),
    Tungstenite(TungsteniteEcho),
}

impl Echo {
    fn new(path: &str) -> Echo {
        match path {
            "core" => Echo::Core(CoreEcho::new(Config::default())),
            _ => Echo::Tungstenite(TungsteniteEcho::new(tungstenite_config(path), path.ends_with("zerocopy"))),
        }
    }

    #[inline]
    fn echo(&mut self, frame: &[u8]) -> usize {
        match self {
            Echo::Core(c) => c.echo(frame),
            Echo::Tungstenite(t) => t.echo(frame),
        }
    }
}

/// The core's whole handshake on a fresh connection, then its close.
struct CoreHandshake {
    region: Region,
    head: String,
    me: lsl_websocket::Key,
    n: u64,
    t0: Instant,
}

impl CoreHandshake {
    fn new() -> CoreHandshake {
        let t0 = Instant::now();
        let config = Config { handshakes_per_second: u32::MAX, ..Config::default() };
        let mut region = Region::new(config, Box::new(SeededEntropy::new(1)), t0);
        let info = script(0);
        let path = request_url(&mut region, info);
        CoreHandshake { region, head: head(&path), me: info.script, n: 0, t0 }
    }

    fn once(&mut self) {
        self.n += 1;
        let conn = ConnectionId(self.n);
        let now = self.t0 + Duration::from_nanos(self.n);
        let r = &mut self.region;
        r.handle_input(now, Input::Accepted { conn, remote: [127, 0, 0, 1].into() }).unwrap();
        r.handle_input(now, Input::Received { conn, data: self.head.as_bytes() }).unwrap();
        black_box(run_outputs(r, self.me));
        r.handle_input(now, Input::PeerClosed { conn }).unwrap();
        black_box(run_outputs(r, self.me));
    }
}

fn tungstenite_handshake(head: &[u8]) {
    let pipe = Pipe { input: head.to_vec(), ..Pipe::default() };
    let ws = tungstenite::accept_with_config(pipe, Some(WebSocketConfig::default())).expect("handshake");
    black_box(ws);
}

fn main() {
    let args = args();
    if let Some((path, size, n)) = &args.profile {
        let frame = masked_text(*size);
        let mut echo = Echo::new(path);
        let start = Instant::now();
        for _ in 0..*n {
            black_box(echo.echo(black_box(&frame)));
        }
        println!("{path} {size} B: {:.1} ns/echo", start.elapsed().as_nanos() as f64 / *n as f64);
        return;
    }
    let mut results: Vec<(String, Vec<f64>)> = Vec::new();
    for size in SIZES {
        let frame = masked_text(size);
        let mut echoes: Vec<Echo> = PATHS.iter().map(|p| Echo::new(p)).collect();
        let batches: Vec<u64> = echoes
            .iter_mut()
            .map(|e| {
                // Warm up and check the echo is the right size.
                let out = e.echo(&frame);
                assert_eq!(out, size + if size < 126 { 2 } else { 4 });
                calibrate(args.target, || {
                    black_box(e.echo(black_box(&frame)));
                })
            })
            .collect();
        let mut samples = vec![Vec::new(); PATHS.len()];
        for round in 0..args.rounds {
            for k in 0..PATHS.len() {
                let i = (round + k) % PATHS.len();
                let e = &mut echoes[i];
                samples[i].push(time(batches[i], || {
                    black_box(e.echo(black_box(&frame)));
                }));
            }
        }
        for (i, s) in samples.into_iter().enumerate() {
            results.push((format!("echo {size} {}", PATHS[i]), s));
        }
        eprintln!("micro: {size} B done");
    }

    let mut core = CoreHandshake::new();
    let t_head = head("/lslws/00000000-0000-4000-8000-000000000000/");
    let hs_batches =
        [calibrate(args.target, || core.once()), calibrate(args.target, || tungstenite_handshake(t_head.as_bytes()))];
    let mut hs = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        for k in 0..2 {
            let i = (round + k) % 2;
            hs[i].push(match i {
                0 => time(hs_batches[0], || core.once()),
                _ => time(hs_batches[1], || tungstenite_handshake(t_head.as_bytes())),
            });
        }
    }
    let [hs_core, hs_t] = hs;
    results.push(("handshake core".into(), hs_core));
    results.push(("handshake tungstenite-default".into(), hs_t));

    println!("{:<36} {:>12} {:>14} {:>10} {:>10}", "case", "ns/op (med)", "ops/s (med)", "min ns", "max ns");
    let mut lines = Vec::new();
    for (name, mut s) in results {
        let min = s.iter().copied().fold(f64::INFINITY, f64::min);
        let max = s.iter().copied().fold(0.0, f64::max);
        let med = median(&mut s);
        println!("{:<36} {:>12.1} {:>14.0} {:>10.1} {:>10.1}", name, med, 1e9 / med, min, max);
        lines.push(format!("result {name} {med:.1} {min:.1} {max:.1}"));
    }
    for line in lines {
        println!("{line}");
    }
}
