//! Region-scope fan-out (`SPEC.md` §6):
//!
//! - `msg_fanout/N`: one `msg,<domain>,<payload>` frame from a client routed to
//!   N listeners, each its own script (N = 1, 10, 100, 1000). Only the routing
//!   (`handle_input` of the frame) is timed; the scripts' queues are drained
//!   between iterations, outside the timing, so they never fill.
//! - `broadcast/1000`: one `llWebsocketBroadcast` to 1000 subscribed clients.
//!   Only the call is timed; transmits are drained between iterations.
//!
//! Throughput is one message per iteration, so criterion reports per-message cost.
//!
//! Before the timings, a counting global allocator reports allocations and
//! bytes allocated per message for every case, routing alone and draining
//! alone: the payload is copied once per message (into the shared buffer every
//! event points at), never once per listener or per client.
//!
//! Recorded on the shared development box (`cargo bench --bench fanout --
//! --warm-up-time 1 --measurement-time 3`; a `--quick` run in brackets),
//! payload 1024 bytes:
//!
//! | case | time per message | allocs / msg | bytes / msg |
//! |---|---|---|---|
//! | msg_fanout/1 | 0.71 µs (1.05) | 4 | 2114 |
//! | msg_fanout/10 | 1.40 µs (2.12) | 6 | 2306 |
//! | msg_fanout/100 | 10.9 µs (23.6) | 9 | 4098 |
//! | msg_fanout/1000 | 125 µs (112) | 12 | 18434 |
//! | broadcast/1000 | 47.5 µs (76.7) | 5 | 9078 |
//!
//! Draining (poll_event / poll_transmit) allocates nothing. Of the msg bytes,
//! about 2 KiB are the payload (the decoded frame and the shared `Arc<str>`)
//! whatever the fan-out; the rest is the list of matching listener ids (8
//! bytes per listener, grown by doubling: the log2(N) extra allocations).
//! Broadcast: one frame, plus a copy of the subscriber list (8 bytes per client).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use lsl_websocket::{
    Config, ConnectionId, Input, Key, Output, Region, Scope, ScriptInfo, SeededEntropy, WebsocketRequest,
};

// ------------------------------------------------------------ counting allocator

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counters() -> (u64, u64) {
    (ALLOCS.load(Relaxed), BYTES.load(Relaxed))
}

// ------------------------------------------------------------ fixtures

const DOMAIN: &str = "bench";
/// Large enough that a per-listener copy would dominate the bytes figure.
const PAYLOAD_LEN: usize = 1024;

fn key(tag: u8, n: u32) -> Key {
    let mut bytes = [0u8; 16];
    bytes[0] = tag;
    bytes[12..].copy_from_slice(&n.to_be_bytes());
    Key::from_random_bytes(bytes)
}

fn script(n: u32) -> ScriptInfo {
    ScriptInfo { script: key(1, n), object: key(2, n), owner: key(3, 0) }
}

fn masked_text(text: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x81];
    match text.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

struct Fixture {
    region: Region,
    now: Instant,
    conns: Vec<ConnectionId>,
    scripts: Vec<Key>,
}

impl Fixture {
    /// A region with `listeners` scripts on [`DOMAIN`] and `clients` connections
    /// on the endpoint, the first `subscribed` of them subscribed.
    fn new(listeners: u32, clients: u64, subscribed: u64) -> Fixture {
        let now = Instant::now();
        let config = Config {
            region_endpoint_sessions: 8192,
            handshakes_per_second: u32::MAX,
            domains_per_script: 1,
            ..Config::default()
        };
        let mut region = Region::new(config, Box::new(SeededEntropy::new(1)), now);
        let request =
            WebsocketRequest { scope: Scope::Region, domain: Some(DOMAIN.into()), ..WebsocketRequest::default() };
        let scripts: Vec<Key> = (0..listeners)
            .map(|n| {
                region.request_websocket(script(n), &request);
                script(n).script
            })
            .collect();
        let path = region.region_url().split_once("8787").unwrap().1.to_string();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let sub = masked_text(&format!("sub,{DOMAIN}"));
        let conns: Vec<ConnectionId> = (0..clients).map(ConnectionId).collect();
        for &conn in &conns {
            let remote = IpAddr::V4(Ipv4Addr::new(10, 0, (conn.0 >> 8) as u8, conn.0 as u8));
            region.handle_input(now, Input::Accepted { conn, remote }).unwrap();
            region.handle_input(now, Input::Received { conn, data: head.as_bytes() }).unwrap();
            if conn.0 < subscribed {
                region.handle_input(now, Input::Received { conn, data: &sub }).unwrap();
            }
        }
        let mut fixture = Fixture { region, now, conns, scripts };
        fixture.drain();
        fixture
    }

    /// Drains every output, event and transmit; returns how many events and frames there were.
    fn drain(&mut self) -> (usize, usize) {
        let (mut events, mut frames) = (0, 0);
        while let Some(output) = self.region.poll_output() {
            match output {
                Output::Events(script) => {
                    while let Some(event) = self.region.poll_event(script) {
                        black_box(event);
                        events += 1;
                    }
                }
                Output::Transmit(conn) | Output::Close(conn) => {
                    while let Some(bytes) = self.region.poll_transmit(conn) {
                        black_box(bytes);
                        frames += 1;
                    }
                }
                _ => {}
            }
        }
        (events, frames)
    }
}

/// One case: what one message costs.
struct Case {
    name: String,
    fixture: Fixture,
    /// A script broadcast (else a client `msg`).
    broadcast: bool,
    /// Events (msg) or frames (broadcast) each message must produce.
    fanout: usize,
}

impl Case {
    /// Sends one message: the part that is timed.
    fn send(&mut self, frame: &[u8], text: &str) {
        let f = &mut self.fixture;
        if self.broadcast {
            let n = f.region.websocket_broadcast(f.scripts[0], DOMAIN, text).unwrap();
            black_box(n);
        } else {
            let conn = f.conns[0];
            f.region.handle_input(f.now, Input::Received { conn, data: frame }).unwrap();
        }
    }

    /// What one drain after one message must find: (events, frames).
    fn expected(&self) -> (usize, usize) {
        if self.broadcast { (0, self.fanout) } else { (self.fanout, 0) }
    }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = [1u32, 10, 100, 1000]
        .into_iter()
        .map(|n| Case {
            name: format!("msg_fanout/{n}"),
            fixture: Fixture::new(n, 1, 0),
            broadcast: false,
            fanout: n as usize,
        })
        .collect();
    cases.push(Case {
        name: "broadcast/1000".into(),
        fixture: Fixture::new(1, 1000, 1000),
        broadcast: true,
        fanout: 1000,
    });
    cases
}

fn payload() -> (String, Vec<u8>) {
    let text = "p".repeat(PAYLOAD_LEN);
    let frame = masked_text(&format!("msg,{DOMAIN},{text}"));
    (text, frame)
}

/// Allocations and bytes per message, for sending and for draining separately.
fn report_allocations() {
    const MESSAGES: u64 = 200;
    let (text, frame) = payload();
    println!("allocations per message (payload {PAYLOAD_LEN} bytes, mean of {MESSAGES} messages after warm-up):");
    println!("{:<16} {:>12} {:>14} {:>12} {:>14}", "case", "send allocs", "send bytes", "drain allocs", "drain bytes");
    for mut case in cases() {
        for _ in 0..20 {
            case.send(&frame, &text);
            assert_eq!(case.fixture.drain(), case.expected(), "{}", case.name);
        }
        let (mut send, mut drain) = ((0, 0), (0, 0));
        for _ in 0..MESSAGES {
            let before = counters();
            case.send(&frame, &text);
            let mid = counters();
            case.fixture.drain();
            let after = counters();
            send = (send.0 + mid.0 - before.0, send.1 + mid.1 - before.1);
            drain = (drain.0 + after.0 - mid.0, drain.1 + after.1 - mid.1);
        }
        let per = |x: u64| x as f64 / MESSAGES as f64;
        println!(
            "{:<16} {:>12.1} {:>14.1} {:>12.1} {:>14.1}",
            case.name,
            per(send.0),
            per(send.1),
            per(drain.0),
            per(drain.1)
        );
    }
    println!();
}

fn bench(c: &mut Criterion) {
    let (text, frame) = payload();
    let mut group = c.benchmark_group("region");
    group.throughput(Throughput::Elements(1));
    for mut case in cases() {
        group.bench_function(BenchmarkId::from_parameter(&case.name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    case.send(black_box(&frame), black_box(&text));
                    total += start.elapsed();
                    case.fixture.drain();
                }
                total
            });
        });
    }
    group.finish();
}

fn main() {
    report_allocations();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
