//! SPEC §5, second table (after the handshake) and back-pressure, driven
//! with hand-made client frames.

mod common;

use common::*;
use lsl_websocket::{CloseError, Config, Event, EventKind, Key, Output, SendError, WebsocketRequest};

struct Open {
    sim: Sim,
    script: Key,
    client: Client,
}

fn open_with(config: Config, request: WebsocketRequest) -> Open {
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    let (_, granted) = sim.request(who, &request);
    assert_eq!(granted.kind, EventKind::UrlGranted);
    let client = sim.connect(who.script, &granted.data);
    assert!(sim.events(who.script).is_empty());
    Open { sim, script: who.script, client }
}

fn open() -> Open {
    open_with(Config::default(), WebsocketRequest::default())
}

impl Open {
    fn send(&mut self, bytes: &[u8]) {
        self.sim.send(self.client.conn, bytes);
    }

    fn events(&mut self) -> Vec<Event> {
        self.sim.events(self.script)
    }

    fn frames(&self) -> Vec<WireFrame> {
        self.sim.frames(self.client.conn)
    }

    /// The session was failed with `code`: a close frame with that code is the
    /// last thing on the wire, the transport is closed, the script gets exactly
    /// one `WS_CLOSE` for it and no `WS_TEXT`, and the session key is dead.
    fn assert_failed(&mut self, code: u16) {
        let frames = self.frames();
        let last = frames.last().expect("a close frame");
        assert_eq!(last.opcode, OP_CLOSE, "{frames:?}");
        assert_eq!(last.close_code(), Some(code), "close reason: {:?}", last.close_reason());
        assert_eq!(frames.iter().filter(|f| f.opcode == OP_CLOSE).count(), 1);
        assert!(self.sim.closed.contains(&self.client.conn), "transport closed");
        let events = self.events();
        assert!(events.iter().all(|e| e.kind != EventKind::Text), "{events:?}");
        let closes: Vec<_> = events.iter().filter(|e| e.kind == EventKind::Close).collect();
        assert_eq!(closes.len(), 1, "{events:?}");
        assert_eq!(closes[0].id, self.client.session);
        assert!(closes[0].data.starts_with(&format!("{code} ")), "{:?}", closes[0].data);
        assert_eq!(self.sim.region.websocket_send(self.script, self.client.session, "x"), Err(SendError::NoSession));
    }

    fn assert_still_open(&mut self) {
        assert!(!self.sim.closed.contains(&self.client.conn));
        assert!(self.frames().iter().all(|f| f.opcode != OP_CLOSE));
    }
}

fn texts(events: &[Event]) -> Vec<&str> {
    events.iter().filter(|e| e.kind == EventKind::Text).map(|e| e.data.as_str()).collect()
}

// ------------------------------------------------------------------ text within the cap

#[test]
fn text_single_frame_is_one_ws_text() {
    let mut o = open();
    o.send(&text("hello"));
    o.send(&text("héllo € 😀"));
    o.send(&text(""));
    let events = o.events();
    assert_eq!(texts(&events), ["hello", "héllo € 😀", ""]);
    for e in &events {
        assert_eq!((e.id, e.kind, e.domain.as_str()), (o.client.session, EventKind::Text, ""));
    }
    o.assert_still_open();
}

#[test]
fn text_fragmented_is_one_ws_text() {
    let mut o = open();
    o.send(&fragmented(&[b"hel", b"lo ", b"", b"world"]));
    assert_eq!(texts(&o.events()), ["hello world"]);
    // A ping between fragments is answered and does not disturb the message.
    o.send(&frame(OP_TEXT, "ab").fin(false).build());
    o.send(&ping(b"mid"));
    o.send(&frame(OP_CONT, "cd").build());
    assert_eq!(texts(&o.events()), ["abcd"]);
    let pongs: Vec<_> = o.frames().into_iter().filter(|f| f.opcode == OP_PONG).collect();
    assert_eq!(pongs.len(), 1);
    assert_eq!(pongs[0].payload, b"mid");
    o.assert_still_open();
}

#[test]
fn text_of_exactly_the_cap_is_accepted() {
    let mut o = open();
    let full = "x".repeat(2048);
    o.send(&text(&full));
    o.send(&fragmented(&[&full.as_bytes()[..1024], &full.as_bytes()[1024..]]));
    let multibyte = "é".repeat(1024);
    o.send(&text(&multibyte));
    assert_eq!(texts(&o.events()), [full.as_str(), full.as_str(), multibyte.as_str()]);
    o.assert_still_open();
}

// ------------------------------------------------------------------ over the cap: 1009

#[test]
fn over_cap_single_frame_closes_1009() {
    let mut o = open();
    o.send(&text(&"x".repeat(2049)));
    o.assert_failed(1009);
}

#[test]
fn over_cap_in_bytes_not_characters_closes_1009() {
    let mut o = open();
    // 1025 characters, 2050 bytes of UTF-8.
    o.send(&text(&"é".repeat(1025)));
    o.assert_failed(1009);
}

#[test]
fn over_cap_fragmented_total_closes_1009() {
    let mut o = open();
    o.send(&frame(OP_TEXT, [b'a'; 1500]).fin(false).build());
    o.send(&frame(OP_CONT, [b'b'; 500]).fin(false).build());
    o.assert_still_open();
    o.send(&frame(OP_CONT, [b'c'; 49]).build());
    o.assert_failed(1009);
}

#[test]
fn over_cap_decided_from_the_header_alone() {
    let mut o = open();
    // Only the 14-byte header of a 1 MiB frame arrives; none of its payload.
    let header = frame(OP_TEXT, []).declared_len(1 << 20).build();
    assert_eq!(header.len(), 14);
    o.send(&header);
    o.assert_failed(1009);

    // Likewise a continuation header that would take the message over the cap.
    let mut o = open();
    o.send(&frame(OP_TEXT, [b'a'; 2000]).fin(false).build());
    o.send(&frame(OP_CONT, []).declared_len(49).build());
    o.assert_failed(1009);

    // A 64-bit length with the top bit set is refused too, not trusted.
    let mut o = open();
    o.send(&frame(OP_TEXT, []).declared_len(u64::MAX).build());
    let last = o.frames().pop().unwrap();
    assert_eq!(last.opcode, OP_CLOSE);
    assert!(matches!(last.close_code(), Some(1002 | 1009)), "{last:?}");
    assert!(o.sim.closed.contains(&o.client.conn));
}

#[test]
fn ws_max_message_lowers_the_cap_both_ways() {
    let request = WebsocketRequest { max_message: Some(100), ..WebsocketRequest::default() };
    let mut o = open_with(Config::default(), request.clone());
    o.send(&text(&"y".repeat(100)));
    assert_eq!(texts(&o.events()), ["y".repeat(100)]);
    assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, &"z".repeat(101)), Err(SendError::TooLarge));
    assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, &"z".repeat(100)), Ok(()));
    o.send(&text(&"y".repeat(101)));
    o.assert_failed(1009);
}

// ------------------------------------------------------------------ binary: 1003

#[test]
fn binary_message_closes_1003() {
    let mut o = open();
    o.send(&frame(OP_BINARY, [1, 2, 3]).build());
    o.assert_failed(1003);
}

#[test]
fn binary_first_fragment_closes_1003_at_once() {
    let mut o = open();
    o.send(&frame(OP_BINARY, b"text?").fin(false).build());
    o.assert_failed(1003);
}

// ------------------------------------------------------------------ invalid UTF-8: 1007

#[test]
fn invalid_utf8_whole_message_closes_1007() {
    let mut o = open();
    o.send(&frame(OP_TEXT, b"ok \xff").build());
    o.assert_failed(1007);
}

#[test]
fn invalid_utf8_across_fragments_closes_1007() {
    // A sequence started in one fragment and broken in the next.
    let mut o = open();
    o.send(&fragmented(&[b"a\xe2\x82", b"x"]));
    o.assert_failed(1007);
}

#[test]
fn invalid_utf8_in_a_first_fragment_closes_1007_before_the_end() {
    let mut o = open();
    o.send(&frame(OP_TEXT, b"\xc0\xaf").fin(false).build());
    o.assert_failed(1007);
}

#[test]
fn truncated_utf8_at_the_end_of_a_message_closes_1007() {
    let mut o = open();
    o.send(&fragmented(&[b"abc", b"\xe2\x82"]));
    o.assert_failed(1007);
    let mut o = open();
    o.send(&frame(OP_TEXT, b"\xf0\x9f\x98").build());
    o.assert_failed(1007);
}

#[test]
fn invalid_utf8_in_a_close_reason_closes_1007() {
    let mut o = open();
    o.send(&frame(OP_CLOSE, b"\x03\xe8\xff").build());
    o.assert_failed(1007);
}

#[test]
fn code_point_split_across_fragments_is_accepted() {
    let mut o = open();
    let euro = "€".as_bytes();
    o.send(&fragmented(&[&euro[..1], &euro[1..]]));
    let smile = "😀".as_bytes();
    o.send(&fragmented(&[&smile[..1], &smile[1..2], &smile[2..3], &smile[3..]]));
    o.send(&fragmented(&[b"x\xe2\x82", b"\xacy"]));
    assert_eq!(texts(&o.events()), ["€", "😀", "x€y"]);
    o.assert_still_open();
}

// ------------------------------------------------------------------ protocol errors: 1002

#[test]
fn unmasked_frame_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_TEXT, "hi").unmasked().build());
    o.assert_failed(1002);
}

#[test]
fn unmasked_control_frame_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_PING, "hi").unmasked().build());
    o.assert_failed(1002);
}

#[test]
fn rsv1_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_TEXT, "hi").rsv(0b100).build());
    o.assert_failed(1002);
}

#[test]
fn rsv2_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_TEXT, "hi").rsv(0b010).build());
    o.assert_failed(1002);
}

#[test]
fn rsv3_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_PING, "hi").rsv(0b001).build());
    o.assert_failed(1002);
}

#[test]
fn reserved_data_opcodes_close_1002() {
    for opcode in 0x3..=0x7 {
        let mut o = open();
        o.send(&frame(opcode, "hi").build());
        o.assert_failed(1002);
    }
}

#[test]
fn reserved_control_opcodes_close_1002() {
    for opcode in 0xB..=0xF {
        let mut o = open();
        o.send(&frame(opcode, "").build());
        o.assert_failed(1002);
    }
}

#[test]
fn control_frame_over_125_bytes_closes_1002() {
    for opcode in [OP_PING, OP_PONG, OP_CLOSE] {
        let mut o = open();
        let mut payload = vec![0x03, 0xe8];
        payload.resize(126, b'r');
        o.send(&frame(opcode, payload).build());
        o.assert_failed(1002);
    }
    // Decided from the header: the payload never arrives.
    let mut o = open();
    o.send(&frame(OP_PING, []).declared_len(126).build());
    o.assert_failed(1002);
}

#[test]
fn control_frame_of_125_bytes_is_fine() {
    let mut o = open();
    o.send(&ping(&[7; 125]));
    let frames = o.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].opcode, frames[0].payload.as_slice()), (OP_PONG, &[7u8; 125][..]));
    o.assert_still_open();
}

#[test]
fn fragmented_control_frame_closes_1002() {
    for opcode in [OP_PING, OP_PONG, OP_CLOSE] {
        let mut o = open();
        o.send(&frame(opcode, []).fin(false).build());
        o.assert_failed(1002);
    }
}

#[test]
fn continuation_without_a_start_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_CONT, "orphan").build());
    o.assert_failed(1002);
    // Also right after a complete message.
    let mut o = open();
    o.send(&text("done"));
    o.send(&frame(OP_CONT, "more").fin(false).build());
    let frames = o.frames();
    assert_eq!(frames.last().unwrap().close_code(), Some(1002));
}

#[test]
fn new_message_inside_a_fragmented_one_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_TEXT, "first").fin(false).build());
    o.send(&text("second"));
    o.assert_failed(1002);
    // A binary start inside a text message is a protocol error before it is a binary one.
    let mut o = open();
    o.send(&frame(OP_TEXT, "first").fin(false).build());
    o.send(&frame(OP_BINARY, [0]).build());
    o.assert_failed(1002);
}

#[test]
fn invalid_close_codes_close_1002() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let mut o = open();
        o.send(&close(code, "bad"));
        o.assert_failed(1002);
    }
}

#[test]
fn close_payload_of_one_byte_closes_1002() {
    let mut o = open();
    o.send(&frame(OP_CLOSE, [0x03]).build());
    o.assert_failed(1002);
}

// ------------------------------------------------------------------ ping, close

#[test]
fn ping_is_answered_with_a_pong_of_the_same_payload() {
    let mut o = open();
    let payloads: [&[u8]; 4] = [b"", b"hello", b"\x00\xff\xfe binary is fine", &[0xAB; 125]];
    for p in payloads {
        o.send(&ping(p));
    }
    let frames = o.frames();
    assert_eq!(frames.len(), payloads.len());
    for (f, p) in frames.iter().zip(payloads) {
        assert_eq!((f.opcode, f.fin, f.payload.as_slice()), (OP_PONG, true, p));
    }
    assert!(o.events().is_empty(), "pings are not script events");
    o.assert_still_open();
}

#[test]
fn unsolicited_pong_is_ignored() {
    let mut o = open();
    o.send(&pong(b"heartbeat"));
    assert!(o.frames().is_empty());
    assert!(o.events().is_empty());
    o.assert_still_open();
}

#[test]
fn client_close_is_echoed_then_closed_with_ws_close() {
    for (code, reason) in [(1000, "bye"), (1001, "going away"), (4001, "fin ✓"), (3000, "")] {
        let mut o = open();
        o.send(&text("last words"));
        let mark = o.sim.mark();
        o.send(&close(code, reason));
        let frames = o.frames();
        let echo = frames.last().unwrap();
        assert_eq!((echo.opcode, echo.close_code(), echo.close_reason()), (OP_CLOSE, Some(code), reason.to_string()));
        assert_eq!(o.sim.count(mark, &Output::Close(o.client.conn)), 1);
        let events = o.events();
        assert_eq!(texts(&events), ["last words"]);
        let last = events.last().unwrap();
        assert_eq!((last.id, last.kind), (o.client.session, EventKind::Close));
        assert_eq!(last.data.as_str(), format!("{code} {reason}"));
        assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, "late"), Err(SendError::NoSession));
    }
}

#[test]
fn client_close_without_status_is_echoed_without_status() {
    let mut o = open();
    o.send(&frame(OP_CLOSE, []).build());
    let echo = o.frames().pop().unwrap();
    assert_eq!((echo.opcode, echo.payload.len()), (OP_CLOSE, 0), "1005 is never put on the wire");
    assert!(o.sim.closed.contains(&o.client.conn));
    let events = o.events();
    assert_eq!(events.len(), 1);
    // The script is told 1005 (no status received), as "<code> <reason>" with an empty reason.
    assert_eq!((events[0].kind, events[0].data.as_str()), (EventKind::Close, "1005 "));
}

#[test]
fn frames_after_the_client_close_are_ignored() {
    let mut o = open();
    let mut bytes = close(1000, "");
    bytes.extend(text("after close"));
    o.send(&bytes);
    let events = o.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Close);
    assert_eq!(o.frames().iter().filter(|f| f.opcode == OP_CLOSE).count(), 1);
}

#[test]
fn peer_gone_without_close_gives_ws_close_1006_and_no_bytes() {
    let mut o = open();
    o.sim.peer_closed(o.client.conn).unwrap();
    let events = o.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Close);
    assert!(events[0].data.starts_with("1006 "), "{:?}", events[0].data);
    assert!(o.frames().is_empty());
    assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, "x"), Err(SendError::NoSession));
}

// ------------------------------------------------------------------ idle

#[test]
fn idle_session_is_pinged_then_dropped_with_1006() {
    let mut o = open();
    o.sim.advance_secs(29.9);
    assert!(o.frames().is_empty(), "no ping before 30 s of silence");
    o.sim.advance_secs(0.1);
    let frames = o.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].opcode, OP_PING);
    o.sim.advance_secs(29.9);
    assert!(!o.sim.closed.contains(&o.client.conn), "the client has a whole interval to answer");
    let mark = o.sim.mark();
    o.sim.advance_secs(0.1);
    assert_eq!(o.sim.count(mark, &Output::Close(o.client.conn)), 1);
    let events = o.events();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].id, events[0].kind), (o.client.session, EventKind::Close));
    assert!(events[0].data.starts_with("1006"), "{:?}", events[0].data);
    assert!(o.frames().iter().all(|f| f.opcode != OP_CLOSE || f.close_code() != Some(1006)));
    assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, "x"), Err(SendError::NoSession));
}

#[test]
fn pong_in_time_keeps_the_session_open() {
    let mut o = open();
    o.sim.advance_secs(30.0);
    assert_eq!(o.frames().len(), 1, "the idle ping");
    o.sim.advance_secs(10.0);
    o.send(&pong(&[]));
    // 30 s after the ping, 20 s after the pong: nothing happens.
    o.sim.advance_secs(29.0);
    assert_eq!(o.frames().len(), 1);
    o.assert_still_open();
    // 30 s after the pong: the next ping.
    o.sim.advance_secs(1.0);
    let frames = o.frames();
    assert_eq!(frames.iter().filter(|f| f.opcode == OP_PING).count(), 2);
    o.assert_still_open();
    assert!(o.events().is_empty());
}

#[test]
fn any_client_frame_counts_as_activity() {
    let mut o = open();
    for _ in 0..5 {
        o.sim.advance_secs(20.0);
        o.send(&text("tick"));
    }
    assert!(o.frames().is_empty(), "never idle for 30 s, never pinged");
    assert_eq!(texts(&o.events()).len(), 5);
    o.assert_still_open();
}

// ------------------------------------------------------------------ back-pressure

#[test]
fn full_script_queue_pauses_reading_and_loses_nothing() {
    let mut o = open();
    let conn = o.client.conn;
    let mut burst = Vec::new();
    for i in 0..100 {
        burst.extend(text(&format!("m{i}")));
    }
    o.send(&burst);
    assert!(o.sim.paused.contains(&conn), "queue of 64 is full: {:?}", o.sim.log);
    assert!(o.sim.log.contains(&Output::PauseReading(conn)));
    assert_eq!(o.sim.region.pending_events(o.script), 64);
    // Bytes the transport had already read when it paused are kept too.
    let mut late = Vec::new();
    for i in 100..110 {
        late.extend(text(&format!("m{i}")));
    }
    o.send(&late);
    // Paused silence is not the client's: no ping, no drop.
    o.sim.advance_secs(90.0);
    o.assert_still_open();
    assert!(o.frames().is_empty());

    let mark = o.sim.mark();
    let mut got = Vec::new();
    while let Some(event) = o.sim.region.poll_event(o.script) {
        assert_eq!(event.kind, EventKind::Text);
        got.push(event.data.to_string());
        o.sim.pump();
    }
    let expected: Vec<String> = (0..110).map(|i| format!("m{i}")).collect();
    assert_eq!(got, expected, "every message, once, in order");
    // Draining one event at a time refills the queue from held bytes many
    // times over; the embedder hears of it only when reading may start again.
    let commands: Vec<&Output> = o
        .sim
        .log_since(mark)
        .iter()
        .filter(|out| matches!(out, Output::PauseReading(_) | Output::ResumeReading(_)))
        .collect();
    assert_eq!(commands, [&Output::ResumeReading(conn)], "one resume, no pause in between");
    assert!(!o.sim.paused.contains(&conn), "reading resumed once the queue drained");
    o.assert_still_open();
    // And the session works normally afterwards.
    o.send(&text("after"));
    assert_eq!(texts(&o.events()), ["after"]);
}

#[test]
fn send_that_does_not_fit_the_outgoing_buffer_is_busy() {
    let mut o = open();
    let conn = o.client.conn;
    o.sim.hold.insert(conn);
    let message = "q".repeat(2048);
    // Each frame is 2052 bytes: 31 fit in 64 KiB, the 32nd does not.
    let mut sent = 0;
    let busy = loop {
        match o.sim.region.websocket_send(o.script, o.client.session, &message) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent <= 64, "the outgoing buffer never filled");
    };
    o.sim.pump();
    assert_eq!(busy, SendError::Busy);
    assert_eq!(sent, 31);
    assert_eq!(busy.code(), -3);
    o.assert_still_open();
    // Busy again while nothing drained; a smaller message that fits still goes.
    assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, &message), Err(SendError::Busy));
    assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, "small"), Ok(()));
    // The socket takes the bytes: sends succeed again.
    o.sim.hold.remove(&conn);
    let taken = o.sim.take(conn);
    assert!(taken >= 31 * 2052);
    assert_eq!(o.sim.region.websocket_send(o.script, o.client.session, &message), Ok(()));
    o.sim.pump();
    let frames = o.frames();
    assert_eq!(frames.len(), 33);
    assert!(frames.iter().all(|f| f.opcode == OP_TEXT && f.fin));
    assert_eq!(frames[30].text(), message);
    assert_eq!(frames[31].text(), "small");
    assert_eq!(frames[32].text(), message);
}

#[test]
fn send_over_the_cap_is_too_large() {
    let mut o = open();
    let (script, session) = (o.script, o.client.session);
    assert_eq!(o.sim.region.websocket_send(script, session, &"x".repeat(2049)), Err(SendError::TooLarge));
    assert_eq!(o.sim.region.websocket_send(script, session, &"é".repeat(1025)), Err(SendError::TooLarge));
    assert_eq!(SendError::TooLarge.code(), -2);
    assert!(o.frames().is_empty(), "nothing was sent");
    assert_eq!(o.sim.region.websocket_send(script, session, &"é".repeat(1024)), Ok(()));
    o.sim.pump();
    assert_eq!(o.frames()[0].text(), "é".repeat(1024));
    o.assert_still_open();
}

#[test]
fn send_to_an_unknown_or_foreign_session_is_no_session() {
    let mut o = open();
    let other = o.sim.script();
    let bogus = o.sim.key();
    assert_eq!(o.sim.region.websocket_send(o.script, bogus, "x"), Err(SendError::NoSession));
    assert_eq!(o.sim.region.websocket_send(other.script, o.client.session, "x"), Err(SendError::NoSession));
    assert_eq!(SendError::NoSession.code(), -1);
    assert!(o.frames().is_empty());
}

// ------------------------------------------------------------------ llWebsocketClose

#[test]
fn websocket_close_validates_code_and_reason() {
    let mut o = open();
    let (script, session, now) = (o.script, o.client.session, o.sim.now);
    for code in [0, 999, 1001, 1002, 1005, 1006, 1011, 1015, 2999, 5000, 65535] {
        assert_eq!(o.sim.region.websocket_close(now, script, session, code, ""), Err(CloseError::BadCode(code)));
    }
    let long = "r".repeat(124);
    assert_eq!(o.sim.region.websocket_close(now, script, session, 1000, &long), Err(CloseError::ReasonTooLong(124)));
    // Bytes, not characters.
    let long = "é".repeat(62);
    assert_eq!(o.sim.region.websocket_close(now, script, session, 1000, &long), Err(CloseError::ReasonTooLong(124)));
    let other = o.sim.script();
    assert_eq!(o.sim.region.websocket_close(now, other.script, session, 1000, ""), Err(CloseError::NoSession));
    let bogus = o.sim.key();
    assert_eq!(o.sim.region.websocket_close(now, script, bogus, 1000, ""), Err(CloseError::NoSession));
    o.sim.pump();
    o.assert_still_open();
    assert!(o.events().is_empty());
}

#[test]
fn websocket_close_sends_the_code_and_reason() {
    for (code, reason) in [(1000, String::new()), (3000, "x".repeat(123)), (4999, "bye ✓".to_string())] {
        let mut o = open();
        let (script, session) = (o.script, o.client.session);
        assert_eq!(o.sim.region.websocket_close(o.sim.now, script, session, code, &reason), Ok(()));
        o.sim.pump();
        let frames = o.frames();
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].close_code(), frames[0].close_reason()), (Some(code), reason.clone()));
        let events = o.events();
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].id, events[0].kind), (session, EventKind::Close));
        assert_eq!(events[0].data.as_str(), format!("{code} {reason}"));
        assert_eq!(o.sim.region.websocket_send(script, session, "x"), Err(SendError::NoSession));
        assert_eq!(o.sim.region.websocket_close(o.sim.now, script, session, 1000, ""), Err(CloseError::NoSession));
        // The transport closes once the client echoes.
        assert!(!o.sim.closed.contains(&o.client.conn));
        o.send(&close(code, ""));
        assert!(o.sim.closed.contains(&o.client.conn));
        assert!(o.events().is_empty(), "the echo is not a second WS_CLOSE");
    }
}

#[test]
fn websocket_close_without_echo_closes_after_the_close_timeout() {
    let mut o = open();
    o.sim.region.websocket_close(o.sim.now, o.script, o.client.session, 1000, "done").unwrap();
    o.sim.pump();
    // Data the client sent before seeing our close is not delivered.
    o.send(&text("crossing"));
    o.sim.advance_secs(4.9);
    assert!(!o.sim.closed.contains(&o.client.conn));
    o.sim.advance_secs(0.1);
    assert!(o.sim.closed.contains(&o.client.conn));
    let events = o.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, "1000 done");
}

// ------------------------------------------------------------------ codes that never go on the wire

#[test]
fn close_codes_1005_1006_1015_never_appear_on_the_wire() {
    let mut wire_codes = Vec::new();
    let mut script_codes = Vec::new();
    let mut record = |o: &mut Open| {
        wire_codes.extend(o.sim.close_frames(o.client.conn).into_iter().map(|(code, _)| code));
        script_codes
            .extend(o.events().into_iter().filter(|e| e.kind == EventKind::Close).map(|e| e.data[..4].to_string()));
    };
    // Client close without status: the script hears 1005, the wire carries no code.
    let mut o = open();
    o.send(&frame(OP_CLOSE, []).build());
    record(&mut o);
    // Idle timeout and a vanished peer: the script hears 1006, the wire carries nothing.
    let mut o = open();
    o.sim.advance_secs(60.0);
    record(&mut o);
    let mut o = open();
    o.sim.peer_closed(o.client.conn).unwrap();
    record(&mut o);
    // A client sending a reserved code is not echoed with it: the answer is 1002.
    for code in [1005, 1006, 1015] {
        let mut o = open();
        o.send(&close(code, ""));
        record(&mut o);
    }
    assert_eq!(script_codes, ["1005", "1006", "1006", "1002", "1002", "1002"]);
    assert_eq!(wire_codes, [None, Some(1002), Some(1002), Some(1002)]);
}

#[test]
fn many_paused_sessions_take_turns_one_freed_slot_at_a_time() {
    use lsl_websocket::{ConnectionId, Input, Region, ScriptInfo, SeededEntropy};
    let t0 = std::time::Instant::now();
    let config = Config { handshakes_per_second: u32::MAX, ..Config::default() };
    let mut region = Region::new(config, Box::new(SeededEntropy::new(3)), t0);
    let me = ScriptInfo {
        script: Key::from_random_bytes([1; 16]),
        object: Key::from_random_bytes([2; 16]),
        owner: Key::from_random_bytes([3; 16]),
    };
    region.request_websocket(me, &WebsocketRequest::default());
    let url = region.poll_event(me.script).expect("granted").data.to_string();
    let head = upgrade_head(&path_of(&url));
    let outputs = |region: &mut Region| -> Vec<Output> { std::iter::from_fn(|| region.poll_output()).collect() };
    // 64 sessions fill the queue with their WS_OPEN events; then each of
    // 100 sessions sends two messages and all of them pause.
    let n = 100u64;
    for i in 0..n {
        let conn = ConnectionId(i);
        region.handle_input(t0, Input::Accepted { conn, remote: ip(10, 0, 0, 1) }).unwrap();
        region.handle_input(t0, Input::Received { conn, data: &head }).unwrap();
    }
    for i in 0..n {
        let mut two = text(&format!("{i}a"));
        two.extend(text(&format!("{i}b")));
        region.handle_input(t0, Input::Received { conn: ConnectionId(i), data: &two }).unwrap();
    }
    let paused: Vec<Output> =
        outputs(&mut region).into_iter().filter(|o| matches!(o, Output::PauseReading(_))).collect();
    assert_eq!(paused.len(), n as usize, "every session paused once");
    // Drain the WS_OPEN events that filled the queue; from then on every
    // freed slot resumes at most one session, and the first paused goes first.
    let mut texts = Vec::new();
    while let Some(event) = region.poll_event(me.script) {
        let out = outputs(&mut region);
        assert!(!out.iter().any(|o| matches!(o, Output::PauseReading(_))), "no pause churn: {out:?}");
        assert!(out.iter().filter(|o| matches!(o, Output::ResumeReading(_))).count() <= 1, "{out:?}");
        if event.kind == EventKind::Text {
            texts.push(event.data.to_string());
        }
    }
    // A resumed session delivers into the one freed slot and queues up again
    // behind the others: round robin, each session's messages in order.
    let expected: Vec<String> = ["a", "b"].iter().flat_map(|m| (0..n).map(move |i| format!("{i}{m}"))).collect();
    assert_eq!(texts, expected, "every held message once, sessions taking turns in the order they paused");
}
