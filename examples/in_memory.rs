//! Drives one object-scope session entirely in memory and prints the exchange:
//! URL request, handshake, a text message each way, a revocation.
//!
//! `cargo run --example in_memory`

use std::time::{Duration, Instant};

use lsl_websocket::{
    Config, ConnectionId, EventKind, Input, Key, Output, Region, ScriptInfo, SeededEntropy, WebsocketRequest,
};

fn main() {
    let t0 = Instant::now();
    let mut region = Region::new(Config::default(), Box::new(SeededEntropy::new(1)), t0);
    let key = |n: u8| Key::from_random_bytes([n; 16]);
    let me = ScriptInfo { script: key(1), object: key(2), owner: key(3) };

    region.request_websocket(me, &WebsocketRequest::default());
    let url = region.poll_event(me.script).map(|e| e.data.to_string()).unwrap_or_default();
    println!("script  <- WS_URL_GRANTED {url}");

    let conn = ConnectionId(1);
    let path = url.split_once("8787").map_or("/", |(_, p)| p);
    let head = format!(
        "GET {path}chat?room=1 HTTP/1.1\r\nHost: sim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    println!("client  -> {}", head.lines().next().unwrap_or(""));
    feed(&mut region, t0, Input::Accepted { conn, remote: [192, 0, 2, 1].into() });
    feed(&mut region, t0, Input::Received { conn, data: head.as_bytes() });
    drain(&mut region, me.script);

    let mask = [7, 7, 7, 7];
    let frame: Vec<u8> = [0x81, 0x80 | 5].into_iter().chain(mask).chain(b"hello".iter().map(|b| b ^ 7)).collect();
    println!("client  -> text frame \"hello\" (masked, {} bytes)", frame.len());
    feed(&mut region, t0 + Duration::from_millis(1), Input::Received { conn, data: &frame });
    let session = drain(&mut region, me.script);

    if let Some(session) = session {
        let status = region.websocket_send(me.script, session, "hi from the script");
        println!("script  -> llWebsocketSend = {status:?}");
        drain(&mut region, me.script);
    }

    println!("sim     :  the script is reset");
    region.script_reset(t0 + Duration::from_millis(2), me.script);
    drain(&mut region, me.script);
}

fn feed(region: &mut Region, now: Instant, input: Input<'_>) {
    if let Err(e) = region.handle_input(now, input) {
        eprintln!("input refused: {e}");
    }
}

/// Prints every output; returns the last session key a script event named.
fn drain(region: &mut Region, script: Key) -> Option<Key> {
    let mut session = None;
    while let Some(output) = region.poll_output() {
        match output {
            Output::Transmit(conn) => {
                while let Some(bytes) = region.poll_transmit(conn) {
                    println!("client  <- {}", describe(&bytes));
                }
            }
            Output::Events(_) => {
                while let Some(event) = region.poll_event(script) {
                    if event.kind != EventKind::UrlGranted {
                        session = Some(event.id);
                    }
                    println!("script  <- {} id={} data={:?}", event.kind.lsl_name(), event.id, event.data.as_str());
                }
            }
            other => println!("embedder: {other:?}"),
        }
    }
    session
}

fn describe(bytes: &[u8]) -> String {
    if bytes.starts_with(b"HTTP/") {
        let status = String::from_utf8_lossy(bytes);
        return status.lines().next().unwrap_or("").to_string();
    }
    match bytes.first().map(|b| b & 0x0f) {
        Some(0x1) => format!("text frame {:?}", String::from_utf8_lossy(&bytes[2..])),
        Some(0x8) if bytes.len() >= 4 => format!(
            "close frame {} {:?}",
            u16::from_be_bytes([bytes[2], bytes[3]]),
            String::from_utf8_lossy(&bytes[4..])
        ),
        _ => format!("{} bytes", bytes.len()),
    }
}
