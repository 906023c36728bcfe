//! Arbitrary bytes as the request head of one connection, in arbitrary
//! chunks (not a line client's or an event stream's: see `lines`, `sse`). The answer is a 101 or one of SPEC §5's refusals followed by
//! `Output::Close`; a head that never completes is dropped at the handshake
//! timeout with nothing written. Nothing panics.
//!
//! Input: `[k][k chunk sizes][head…]`. In the head, `$o` stands for the live
//! object URL's capability and `$r` for the region endpoint's, so the fuzzer
//! reaches live URLs.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use lsl_websocket::{
    Config, ConnectionId, EventKind, Input, InputError, Key, Output, Region, Scope, ScriptInfo, SeededEntropy,
    WebsocketRequest,
};
use lsl_websocket_fuzz::{Answer, WireChecker, chunks};

fn cap_of(url: &str) -> String {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string()
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else { return };
    let k = usize::from(k % 8).min(rest.len());
    let (sizes, raw) = rest.split_at(k);

    let t0 = Instant::now();
    let mut region = Region::new(Config::default(), Box::new(SeededEntropy::new(1)), t0);
    let me = ScriptInfo {
        script: Key::from_bytes([1; 16]),
        object: Key::from_bytes([2; 16]),
        owner: Key::from_bytes([3; 16]),
    };
    region.request_websocket(me, &WebsocketRequest::default());
    let region_listen =
        WebsocketRequest { scope: Scope::Region, domain: Some("chat".into()), ..WebsocketRequest::default() };
    region.request_websocket(me, &region_listen);
    let granted = region.poll_event(me.script).expect("object URL answered");
    assert_eq!(granted.kind, EventKind::UrlGranted);
    let object_cap = cap_of(&granted.data);
    let region_cap = cap_of(&region.region_url());
    while region.poll_event(me.script).is_some() {}
    while region.poll_output().is_some() {}

    // `$o` / `$r` → the live capabilities.
    let mut head = Vec::with_capacity(raw.len() + 64);
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1)) {
            (b'$', Some(b'o')) => head.extend_from_slice(object_cap.as_bytes()),
            (b'$', Some(b'r')) => head.extend_from_slice(region_cap.as_bytes()),
            (b, _) => {
                head.push(b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }

    // Line clients (first byte `/`) and event streams answer in their own
    // formats and have their own targets (`lines`, `sse`).
    if head.first() == Some(&b'/') || head.windows(12).any(|w| w == b"event-stream") {
        return;
    }

    let conn = ConnectionId(9);
    region.handle_input(t0, Input::Accepted { conn, remote: [192, 0, 2, 1].into() }).unwrap();
    let mut wire = WireChecker::new(false);
    let mut closed = false;
    let mut paused = false;
    let drain = |region: &mut Region, wire: &mut WireChecker, closed: &mut bool, paused: &mut bool| {
        while let Some(out) = region.poll_output() {
            match out {
                Output::Transmit(c) | Output::Close(c) => {
                    assert_eq!(c, conn);
                    assert!(!*closed, "output for a connection after its Close");
                    while let Some(bytes) = region.poll_transmit(conn) {
                        wire.feed(&bytes);
                    }
                    if matches!(out, Output::Close(_)) {
                        *closed = true;
                    }
                }
                Output::PauseReading(c) => {
                    assert_eq!(c, conn);
                    assert_eq!(wire.answer, Answer::Open, "paused before the handshake completed");
                    *paused = true;
                }
                Output::ResumeReading(_) => *paused = false,
                Output::Events(_) => {}
                other => panic!("unexpected output during a handshake: {other:?}"),
            }
        }
    };
    let mut now = t0;
    for chunk in chunks(&head, sizes) {
        if closed || paused {
            break;
        }
        now += Duration::from_millis(1);
        region.handle_input(now, Input::Received { conn, data: chunk }).unwrap();
        drain(&mut region, &mut wire, &mut closed, &mut paused);
    }

    match wire.answer {
        Answer::Refused(_) => {
            assert!(closed, "a refusal is followed by Output::Close");
            assert_eq!(
                region.handle_input(now, Input::Received { conn, data: b"x" }),
                Err(InputError::UnknownConnection(conn)),
                "a refused connection is forgotten once flushed"
            );
        }
        Answer::Open => {
            // httparse also ends a head at a bare-LF blank line.
            let lf = head.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
            let crlf = head.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3);
            let end = lf.into_iter().chain(crlf).min().expect("a 101 needs a complete head");
            assert!(end <= 8 * 1024, "a 101 for a head over 8 KiB");
            assert!(head.starts_with(b"GET ") || head.windows(5).any(|w| w == b"\nGET "), "101 without GET");
        }
        Answer::Nothing => {
            assert!(!closed, "closed without an answer before any timeout");
            // Silence: the handshake timeout drops it with nothing written.
            let at = region.poll_timeout().expect("the handshake timer runs");
            assert!(at <= t0 + Duration::from_secs(10), "handshake deadline later than 10 s");
            region.handle_input(at, Input::Timeout).unwrap();
            drain(&mut region, &mut wire, &mut closed, &mut paused);
            assert!(closed, "an incomplete handshake is dropped at the timeout");
            assert_eq!(wire.answer, Answer::Nothing, "the dropped handshake gets no response");
        }
    }
});
