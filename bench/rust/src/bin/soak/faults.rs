//! Broken clients, one after another for the whole run: each either gets the
//! answer SPEC defines for what it did (counted `refused`) or is counted
//! `unanswered`; the ones that only hold resources expect nothing but must
//! not disturb anyone else.

use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use socket2::Socket;
use tungstenite::Message;

use crate::clients::Ctx;
use crate::counters::{add, bump};
use crate::net;
use lsl_websocket_bench::masked_frame;

/// A WebSocket session on `url` as a raw stream, after its 101.
fn upgraded(ctx: &Ctx, source: IpAddr, url: &str) -> Option<Box<dyn net::Stream>> {
    let (_, _, path) = net::split(url);
    let mut s = net::connect(source, url, &ctx.tls).ok()?;
    s.write_all(net::upgrade_head(&path).as_bytes()).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    head.starts_with(b"HTTP/1.1 101").then_some(s)
}

/// The close code the server sends next on a raw session (skipping other frames), if any.
fn close_code(s: &mut dyn Read) -> Option<u16> {
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).ok()?;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0; usize::try_from(len).ok()?.min(1 << 20)];
        s.read_exact(&mut payload).ok()?;
        if h[0] & 0x0f == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

/// A TCP connection closed with a reset (`SO_LINGER` 0) instead of a FIN.
fn reset(s: TcpStream) {
    let socket = Socket::from(s);
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// Runs every fault in turn until the run ends; `source` is this thread's
/// address, `flood` the one the handshake flood comes from.
pub fn run(ctx: Ctx, source: IpAddr, flood: IpAddr) {
    let c = ctx.counters.clone();
    let mut turn = 0usize;
    while !ctx.stop.load(Relaxed) {
        let region = turn % 3;
        let get = |label: &str| ctx.urls.0.lock().unwrap().get(region, label);
        let (Some(object), Some(http)) = (get("object-url"), get("http-url")) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let (_, addr, path) = net::split(&object);
        let expect = |what: &str, got: bool| if got { c.refuse(what, 1) } else { bump(&c.unanswered) };
        bump(&c.faults);
        match turn % 10 {
            // Reset in the middle of a frame.
            0 => {
                if let Ok(mut s) = net::tcp(source, addr) {
                    let _ = s.write_all(net::upgrade_head(&path).as_bytes());
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf);
                    let f = masked_frame(0x81, &[b'y'; 100]);
                    let _ = s.write_all(&f[..40]);
                    reset(s);
                }
            }
            // Half-open: sends a burst and never reads, then goes after a while.
            1 => {
                if let Some(mut s) = upgraded(&ctx, source, &object) {
                    for _ in 0..200 {
                        if s.write_all(&masked_frame(0x81, &[b'z'; 1000])).is_err() {
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
            // Half-open the other way: upgraded, then silent for a while.
            2 => {
                let held = upgraded(&ctx, source, &object);
                std::thread::sleep(Duration::from_secs(2));
                drop(held);
            }
            // Slowloris: a head a byte at a time, never finished.
            3 => {
                if let Ok(mut s) = net::tcp(source, addr) {
                    for b in format!("GET {path} HTTP/1.1\r\nHost: so").bytes().take(12) {
                        if s.write_all(&[b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(150));
                    }
                }
            }
            // Oversized message: closed 1009.
            4 => expect(
                "fault 1009",
                upgraded(&ctx, source, &object).is_some_and(|mut s| {
                    s.write_all(&masked_frame(0x81, &[b'o'; 5000])).is_ok() && close_code(&mut *s) == Some(1009)
                }),
            ),
            // Malformed frame (RSV bits set): closed 1002.
            5 => expect(
                "fault 1002",
                upgraded(&ctx, source, &object).is_some_and(|mut s| {
                    s.write_all(&masked_frame(0xf1, b"bad")).is_ok() && close_code(&mut *s) == Some(1002)
                }),
            ),
            // Malformed request line: 400; an oversized head: 431.
            6 => {
                for (req, want) in [
                    ("GARBAGE\r\n\r\n".to_string(), 400),
                    (format!("GET {path} HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(9000)), 431),
                ] {
                    let got = net::tcp(source, addr).ok().and_then(|mut s| {
                        s.write_all(req.as_bytes()).ok()?;
                        net::read_response(&mut BufReader::new(s)).ok()
                    });
                    expect(if want == 400 { "fault 400" } else { "fault 431" }, got.is_some_and(|r| r.status == want));
                }
            }
            // Pipelined HTTP-in requests never read, then gone.
            7 => {
                let (_, haddr, hpath) = net::split(&http);
                if let Ok(mut s) = net::tcp(source, haddr) {
                    let one = format!("POST {hpath} HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n\r\nhello");
                    for _ in 0..100 {
                        if s.write_all(one.as_bytes()).is_err() {
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    reset(s);
                }
            }
            // A WebSocket client that never reads its echoes.
            8 => {
                if let Ok(stream) = net::connect(source, &object, &ctx.tls)
                    && let Ok((mut ws, _)) = tungstenite::client(object.as_str(), stream)
                {
                    for i in 0..50 {
                        if ws.send(Message::text(format!("unread {i}"))).is_err() {
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            // A handshake flood from one address: every attempt is 101 or 429.
            _ => {
                let start = Instant::now();
                let (mut answered, mut tooo_many, mut other) = (0u64, 0u64, 0u64);
                for _ in 0..600 {
                    if start.elapsed() > Duration::from_secs(5) {
                        break;
                    }
                    match net::upgrade_status(flood, &object, &ctx.tls) {
                        Ok(101) | Ok(404) => answered += 1,
                        Ok(429) => tooo_many += 1,
                        _ => other += 1,
                    }
                }
                add(&c.flood_429, tooo_many);
                c.refuse("flood 429", tooo_many);
                add(&c.unanswered, other);
                let _ = answered;
            }
        }
        turn += 1;
    }
}
