//! A valid handshake, then arbitrary bytes as the client's stream in
//! arbitrary chunks. Nothing panics, and every byte the server writes after
//! its 101 parses as valid server frames (unmasked, RSV clear, text or
//! control opcodes, control frames of at most 125 bytes, close codes never
//! 1005/1006/1015, nothing after the server's close frame); the script sees
//! `WS_OPEN`, texts within the cap, and at most one `WS_CLOSE`, last.
//!
//! Input: `[mode][k][k chunk sizes][stream…]`. Mode bits: 0 region endpoint
//! (else an object URL), 1 the script drains its events after each chunk,
//! 2 twenty fake seconds pass between chunks (idle ping and timeout),
//! 3 the script sends after each chunk, 4 a 16-byte message cap, 5 the
//! client does not read until the end, 6 the script is reset after the first
//! chunk (revocation mid-stream), 7 the client subscribes before the stream.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use lsl_websocket::{
    Config, ConnectionId, Event, EventKind, Input, Key, Output, Region, Scope, ScriptInfo, SeededEntropy, SendError,
    WebsocketRequest,
};
use lsl_websocket_fuzz::{Answer, WireChecker, chunks, client_frame, path_of, upgrade_head};

const CONN: ConnectionId = ConnectionId(5);

struct Run {
    region: Region,
    now: Instant,
    wire: WireChecker,
    hold: bool,
    closed: bool,
    paused: bool,
    script: Key,
    events: Vec<Event>,
}

impl Run {
    fn pump(&mut self) {
        while let Some(out) = self.region.poll_output() {
            match out {
                Output::Transmit(c) => {
                    assert_eq!(c, CONN);
                    assert!(!self.closed, "Transmit after Close");
                    if !self.hold {
                        self.take();
                    }
                }
                Output::Close(c) => {
                    assert_eq!(c, CONN);
                    assert!(!self.closed, "two Close outputs");
                    self.closed = true;
                    if !self.hold {
                        self.take();
                    }
                }
                Output::PauseReading(_) => self.paused = true,
                Output::ResumeReading(_) => self.paused = false,
                Output::Events(s) => assert_eq!(s, self.script),
                Output::Revoked { .. } => {}
                // The script's region listener ends with it (mode bit: reset after the first chunk).
                Output::ListenerStopped { script, .. } => assert_eq!(script, self.script),
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    fn take(&mut self) {
        while let Some(bytes) = self.region.poll_transmit(CONN) {
            self.wire.feed(&bytes);
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.region.poll_event(self.script) {
            self.events.push(e);
        }
        self.pump();
    }

    /// Fires every timer due by `to`.
    fn advance(&mut self, to: Instant) {
        for _ in 0..64 {
            match self.region.poll_timeout() {
                Some(at) if at <= to => {
                    self.now = self.now.max(at);
                    self.region.handle_input(self.now, Input::Timeout).unwrap();
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = self.now.max(to);
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, k, rest @ ..] = data else { return };
    let k = usize::from(*k % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    let bit = |i: u8| mode & (1 << i) != 0;
    let region_scope = bit(0);

    let t0 = Instant::now();
    let me = ScriptInfo {
        script: Key::from_bytes([1; 16]),
        object: Key::from_bytes([2; 16]),
        owner: Key::from_bytes([3; 16]),
    };
    let mut run = Run {
        region: Region::new(Config::default(), Box::new(SeededEntropy::new(2)), t0),
        now: t0,
        wire: WireChecker::new(region_scope),
        hold: bit(5),
        closed: false,
        paused: false,
        script: me.script,
        events: Vec::new(),
    };
    let cap = if bit(4) { 16 } else { 2048 };
    let url = if region_scope {
        for domain in ["chat", "b"] {
            let request = WebsocketRequest {
                scope: Scope::Region,
                domain: Some(domain.into()),
                max_message: Some(cap),
                ..WebsocketRequest::default()
            };
            run.region.request_websocket(me, &request);
        }
        run.region.region_url()
    } else {
        run.region.request_websocket(me, &WebsocketRequest { max_message: Some(cap), ..WebsocketRequest::default() });
        run.region.poll_event(me.script).expect("granted").data.to_string()
    };
    while run.region.poll_event(me.script).is_some() {}
    run.pump();

    run.region.handle_input(t0, Input::Accepted { conn: CONN, remote: [192, 0, 2, 1].into() }).unwrap();
    run.region.handle_input(t0, Input::Received { conn: CONN, data: &upgrade_head(path_of(&url)) }).unwrap();
    run.take();
    run.pump();
    assert_eq!(run.wire.answer, Answer::Open, "the handshake succeeds");
    if bit(7) && region_scope {
        let sub = client_frame(true, 1, [0; 4], b"sub,chat");
        run.region.handle_input(t0, Input::Received { conn: CONN, data: &sub }).unwrap();
        run.pump();
    }
    let open_key = if region_scope {
        None
    } else {
        let open = run.region.poll_event(me.script).expect("WS_OPEN");
        assert_eq!(open.kind, EventKind::Open);
        Some(open.id)
    };

    for (i, chunk) in chunks(stream, sizes).into_iter().enumerate() {
        if run.paused || (run.closed && !run.hold) {
            break;
        }
        if bit(2) {
            let to = run.now + Duration::from_secs(20);
            run.advance(to);
        } else {
            run.now += Duration::from_millis(3);
        }
        // The connection may be gone (closed and flushed); the core says so and nothing else.
        let _ = run.region.handle_input(run.now, Input::Received { conn: CONN, data: chunk });
        run.pump();
        if bit(1) {
            run.drain();
        }
        if bit(3) {
            let result = match open_key {
                Some(key) => run.region.websocket_send(me.script, key, "hi"),
                None => run.region.websocket_broadcast(me.script, "chat", "hi").map(|_| ()),
            };
            assert!(
                matches!(result, Ok(()) | Err(SendError::NoSession | SendError::Busy | SendError::BadDomain)),
                "{result:?}"
            );
            run.pump();
        }
        if bit(6) && i == 0 {
            run.region.script_reset(run.now, me.script);
            run.pump();
        }
    }
    let _ = run.region.handle_input(run.now, Input::PeerClosed { conn: CONN });
    run.pump();
    run.hold = false;
    run.take();
    run.drain();
    let to = run.now + Duration::from_secs(100);
    run.advance(to);

    // The session is over and its key dead.
    if let Some(key) = open_key {
        assert_eq!(run.region.websocket_send(me.script, key, "late"), Err(SendError::NoSession));
    }
    // Object scope: texts within the cap, one WS_CLOSE at most and last.
    let mut closes = 0;
    for e in &run.events {
        assert_eq!(closes, 0, "event after WS_CLOSE: {e:?}");
        match e.kind {
            EventKind::Text => assert!(e.data.len() <= cap, "text over the cap"),
            EventKind::Close => {
                if region_scope {
                    continue;
                }
                let (code, _) = e.data.split_once(' ').expect("\"<code> <reason>\"");
                code.parse::<u16>().expect("numeric close code");
                closes += 1;
            }
            EventKind::Open => assert!(region_scope, "second WS_OPEN on an object URL"),
            other => panic!("unexpected {other:?}"),
        }
        if let Some(key) = open_key {
            assert_eq!(e.id, key, "an event of another session");
        }
    }
});
