//! The whole echo path for one session — masked client text frame in →
//! script event → send → server frame out — in the core, against the same
//! bytes through tungstenite's bare protocol engine over in-memory buffers,
//! with its default config and with 4 KiB read/write buffers. Also the cost
//! of one complete handshake in the core.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lsl_websocket::{Config, ConnectionId, Input, Key, Output, Region, ScriptInfo, SeededEntropy, WebsocketRequest};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

const SIZES: [usize; 2] = [64, 1024];
const HEAD_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn masked_text(len: usize) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81];
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend((0..len).map(|i| (b'a' + (i % 26) as u8) ^ mask[i % 4]));
    frame
}

fn script() -> ScriptInfo {
    ScriptInfo {
        script: Key::from_random_bytes([1; 16]),
        object: Key::from_random_bytes([2; 16]),
        owner: Key::from_random_bytes([3; 16]),
    }
}

fn head(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {HEAD_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A region with one URL; returns it and the URL's path.
fn region_with_url(t0: Instant) -> (Region, String) {
    let config = Config { handshakes_per_second: u32::MAX, ..Config::default() };
    let mut region = Region::new(config, Box::new(SeededEntropy::new(1)), t0);
    let me = script();
    region.request_websocket(me, &WebsocketRequest::default());
    let url = region.poll_event(me.script).expect("granted").data.to_string();
    let path = url.split_once("8787").expect("authority").1.to_string();
    while region.poll_output().is_some() {}
    (region, path)
}

/// An embedder loop with an echo script: every output handled, every event answered.
fn run_outputs(region: &mut Region, me: Key, sink: &mut usize) {
    while let Some(output) = region.poll_output() {
        match output {
            Output::Events(script) => {
                while let Some(event) = region.poll_event(script) {
                    if event.kind == lsl_websocket::EventKind::Text {
                        let _ = region.websocket_send(me, event.id, &event.data);
                    }
                }
            }
            Output::Transmit(conn) => {
                while let Some(bytes) = region.poll_transmit(conn) {
                    *sink += bytes.len();
                }
            }
            _ => {}
        }
    }
}

/// In-memory stream for tungstenite: reads hand out one pending frame, writes are counted.
#[derive(Default)]
struct Pipe {
    input: Vec<u8>,
    pos: usize,
    written: usize,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let frame = masked_text(size);

        let t0 = Instant::now();
        let (mut region, path) = region_with_url(t0);
        let conn = ConnectionId(1);
        let me = script().script;
        let mut sink = 0;
        region.handle_input(t0, Input::Accepted { conn, remote: [127, 0, 0, 1].into() }).unwrap();
        region.handle_input(t0, Input::Received { conn, data: head(&path).as_bytes() }).unwrap();
        run_outputs(&mut region, me, &mut sink);
        group.bench_with_input(BenchmarkId::new("core", size), &frame, |b, frame| {
            b.iter(|| {
                region.handle_input(t0, Input::Received { conn, data: black_box(frame) }).unwrap();
                run_outputs(&mut region, me, &mut sink);
            })
        });

        for (name, config) in [
            ("tungstenite-default", WebSocketConfig::default()),
            ("tungstenite-4k", WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)),
        ] {
            let mut ws = WebSocket::from_raw_socket(Pipe::default(), Role::Server, Some(config));
            group.bench_with_input(BenchmarkId::new(name, size), &frame, |b, frame| {
                b.iter(|| {
                    let pipe = ws.get_mut();
                    pipe.input.clear();
                    pipe.input.extend_from_slice(black_box(frame));
                    pipe.pos = 0;
                    match ws.read() {
                        Ok(Message::Text(text)) => ws.send(Message::Text(Utf8Bytes::from(text.as_str()))).unwrap(),
                        other => panic!("unexpected {other:?}"),
                    }
                })
            });
        }
    }
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let t0 = Instant::now();
    let (mut region, path) = region_with_url(t0);
    let head = head(&path);
    let me = script().script;
    let mut sink = 0;
    let mut n = 0u64;
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("core", |b| {
        b.iter(|| {
            n += 1;
            let conn = ConnectionId(n);
            let now = t0 + Duration::from_nanos(n);
            region.handle_input(now, Input::Accepted { conn, remote: [127, 0, 0, 1].into() }).unwrap();
            region.handle_input(now, Input::Received { conn, data: head.as_bytes() }).unwrap();
            run_outputs(&mut region, me, &mut sink);
            region.handle_input(now, Input::PeerClosed { conn }).unwrap();
            run_outputs(&mut region, me, &mut sink);
        })
    });
    group.finish();
}

criterion_group!(benches, echo, handshake);
criterion_main!(benches);
