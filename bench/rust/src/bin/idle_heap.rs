//! Heap bytes per idle session, counted by a global allocator.
//!
//! ```text
//! idle_heap [--core N] [--tungstenite M]
//! ```
//!
//! - core: a `Region` with `Config::default()`; N sessions (default 10,000)
//!   opened by handshakes on object-scope URLs (256 sessions per URL is the
//!   default cap, so 40 URLs of 3 scripts), every 101 and `WS_OPEN` drained.
//!   Live heap after minus before, divided by N. Then every session echoes
//!   one 64 B message and is idle again: measured once more.
//! - tungstenite: M `WebSocket`s (default 1,000) made by `tungstenite::accept`
//!   with the default config over an in-memory stream, each boxed (as a task
//!   would own it); the same for 4 KiB buffers, for reference. Live heap per
//!   socket, after the handshake and after one echo.
//!
//! Output: a table, then `result idle <path> <after-handshake> <after-echo>` lines.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use lsl_websocket::{Config, ConnectionId, Input, Region, SeededEntropy};
use lsl_websocket_bench::{Pipe, head, masked_text, request_url, run_outputs, script};
use tungstenite::protocol::WebSocketConfig;

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a plain atomic and allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Relaxed)
}

fn core(n: usize) -> (f64, f64) {
    let t0 = Instant::now();
    let config = Config::default();
    let per_url = config.sessions_per_url;
    let per_script = config.urls_per_script;
    let rate = config.handshakes_per_second as usize;
    let mut region = Region::new(config, Box::new(SeededEntropy::new(7)), t0);
    let urls = n.div_ceil(per_url);
    let scripts: Vec<_> = (0..urls.div_ceil(per_script)).map(|i| script(i as u8)).collect();
    let paths: Vec<(String, lsl_websocket::Key)> = (0..urls)
        .map(|u| (request_url(&mut region, scripts[u / per_script]), scripts[u / per_script].script))
        .collect();
    let heads: Vec<String> = paths.iter().map(|(p, _)| head(p)).collect();
    let before = live();
    let mut now = t0;
    for i in 0..n {
        // Default rate limit: 50 handshakes per address per second.
        now = t0 + Duration::from_secs((i / rate) as u64 + 1);
        let conn = ConnectionId(i as u64);
        let u = i / per_url;
        region.handle_input(now, Input::Accepted { conn, remote: [127, 0, 0, 1].into() }).unwrap();
        region.handle_input(now, Input::Received { conn, data: heads[u].as_bytes() }).unwrap();
        run_outputs(&mut region, paths[u].1);
    }
    let after_handshake = live();
    assert_eq!(region.free_websockets(scripts[0].owner), 1024 - urls);
    let frame = masked_text(64);
    for i in 0..n {
        let conn = ConnectionId(i as u64);
        region.handle_input(now, Input::Received { conn, data: &frame }).unwrap();
        let out = run_outputs(&mut region, paths[i / per_url].1);
        assert_eq!(out, 66, "session {i} echoed");
    }
    let after_echo = live();
    let per = |x: i64| (x - before) as f64 / n as f64;
    let result = (per(after_handshake), per(after_echo));
    drop(region);
    result
}

fn tungstenite(m: usize, config: WebSocketConfig) -> (f64, f64) {
    let request = head("/lslws/00000000-0000-4000-8000-000000000000/");
    let mut sockets = Vec::with_capacity(m);
    let before = live();
    for _ in 0..m {
        let pipe = Pipe { input: request.as_bytes().to_vec(), ..Pipe::default() };
        let mut ws = Box::new(tungstenite::accept_with_config(pipe, Some(config)).expect("handshake"));
        // The socket's own input is not the engine's memory.
        ws.get_mut().input = Vec::new();
        sockets.push(ws);
    }
    let after_handshake = live();
    let frame = masked_text(64);
    for ws in &mut sockets {
        let pipe = ws.get_mut();
        pipe.input = frame.clone();
        pipe.pos = 0;
        match ws.read() {
            Ok(tungstenite::Message::Text(text)) => ws.send(tungstenite::Message::Text(text)).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
        ws.get_mut().input = Vec::new();
    }
    let after_echo = live();
    let per = |x: i64| (x - before) as f64 / m as f64;
    (per(after_handshake), per(after_echo))
}

fn main() {
    let (mut n, mut m) = (10_000usize, 1_000usize);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--core" => n = value,
            "--tungstenite" => m = value,
            other => panic!("unknown argument {other}"),
        }
    }
    let rows = [
        (format!("core ({n} sessions)"), "core", core(n)),
        (format!("tungstenite-default ({m})"), "tungstenite-default", tungstenite(m, WebSocketConfig::default())),
        (
            format!("tungstenite-4k ({m})"),
            "tungstenite-4k",
            tungstenite(m, WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)),
        ),
    ];
    println!("{:<32} {:>22} {:>22}", "idle heap per session", "after handshake (B)", "after one echo (B)");
    for (label, _, (h, e)) in &rows {
        println!("{label:<32} {h:>22.0} {e:>22.0}");
    }
    for (_, name, (h, e)) in &rows {
        println!("result idle {name} {h:.0} {e:.0}");
    }
}
