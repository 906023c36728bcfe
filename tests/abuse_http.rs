//! Abuse tests for HTTP-in (SPEC §8): what a hostile or broken HTTP client can
//! try against an `llRequestURL` URL, and the bounds the core keeps. Sans-IO
//! with a fake clock, like `abuse.rs`: nothing sleeps, nothing opens a socket.
//!
//! Memory is measured with a counting global allocator that keeps its counts
//! per thread, so tests running in parallel do not disturb each other: the net
//! bytes the current thread holds, and the largest single allocation it made.

mod common;
mod counting_alloc;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use counting_alloc::{heap, largest_allocation_in};
use lsl_websocket::{Config, ConnectionId, Event, EventKind, HttpError, HttpMethod, InputError, Output, ScriptInfo};

// ------------------------------------------------------------------ helpers

const KIB: usize = 1024;

/// A sim whose script holds one HTTP-in URL; returns (sim, script, request path `/lslhttp/{cap}/`).
fn http_url(config: Config) -> (Sim, ScriptInfo, String) {
    let mut sim = Sim::with_config(config);
    let me = sim.script();
    let id = sim.region.request_url(me);
    sim.pump();
    let granted = sim.events(me.script).into_iter().find(|e| e.id == id).expect("the URL request is answered at once");
    assert_eq!(granted.kind, EventKind::Http(HttpMethod::UrlRequestGranted), "{granted:?}");
    let path = path_of(&granted.data);
    assert!(path.starts_with("/lslhttp/") && path.ends_with('/'), "{path}");
    (sim, me, path)
}

/// A distinct client address per index, so the per-address rate limit never speaks.
fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8))
}

fn get(path: &str, tag: &str) -> Vec<u8> {
    format!("GET {path}{tag} HTTP/1.1\r\nHost: 127.0.0.1:8787\r\n\r\n").into_bytes()
}

/// The request events (not URL grants) of the script, in order.
fn requests(sim: &mut Sim, script: lsl_websocket::Key) -> Vec<Event> {
    sim.events(script)
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Http(m) if !matches!(m, HttpMethod::UrlRequestGranted | HttpMethod::UrlRequestDenied)))
        .collect()
}

/// `llHTTPResponse`, then the embedder drains what it caused.
fn answer(
    sim: &mut Sim,
    script: lsl_websocket::Key,
    id: lsl_websocket::Key,
    status: i32,
    body: &str,
) -> Result<(), HttpError> {
    let result = sim.region.http_response(sim.now, script, id, status, body);
    sim.pump();
    result
}

/// One response the server wrote.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parses everything written on a connection as HTTP/1.1 responses (with
/// httparse); panics on anything else or on a partial response.
fn responses(mut bytes: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        let len = match r.parse(bytes) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!("not a complete response ({other:?}): {:?}", String::from_utf8_lossy(bytes)),
        };
        let status = r.code.expect("a status");
        let headers: Vec<(String, String)> =
            r.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect();
        let body_len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse::<usize>().expect("a numeric Content-Length"));
        assert!(len + body_len <= bytes.len(), "a truncated response body");
        out.push(Resp { status, headers, body: bytes[len..len + body_len].to_vec() });
        bytes = &bytes[len + body_len..];
    }
    out
}

// ------------------------------------------------------------------ large bodies

#[test]
fn a_5_mb_content_length_body_in_64_kib_reads_is_held_in_bounded_memory_and_cut_to_2048_bytes() {
    let (mut sim, me, path) = http_url(Config::default());
    let total = 5 * KIB * KIB;
    let conn = sim.accept();
    sim.send(conn, format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n").as_bytes());
    // Every read is different, so a cut in the wrong place would show.
    let reads: Vec<Vec<u8>> = (0..total / (64 * KIB))
        .map(|r| (0..64 * KIB).map(|i| b'a' + ((r * 7 + i / 100) % 26) as u8).collect())
        .collect();
    let expected: String = String::from_utf8(reads[0][..2048].to_vec()).unwrap();

    let before = heap();
    let mut peak = 0;
    let ((), largest) = largest_allocation_in(|| {
        for (i, read) in reads.iter().enumerate() {
            sim.send(conn, read);
            peak = peak.max(heap() - before);
            if i + 1 < reads.len() {
                assert!(sim.region.poll_event(me.script).is_none(), "an event before the body is complete");
            }
        }
    });
    // The region keeps at most 2 x 2048 + 4 raw bytes (the widest charset needs
    // two bytes per byte of UTF-8): far from one 64 KiB read, let alone 5 MB.
    eprintln!("5 MB body: largest allocation {largest} B, heap growth peak {peak} B");
    assert!(largest <= 16 * KIB, "largest single allocation while reading 5 MB: {largest} bytes");
    assert!(peak <= 16 * KIB as isize, "heap grew by {peak} bytes while reading 5 MB");

    let events = requests(&mut sim, me.script);
    assert_eq!(events.len(), 1, "one request, one event");
    assert_eq!(events[0].kind, EventKind::Http(HttpMethod::Post));
    assert_eq!(events[0].data.len(), 2048, "the script gets exactly 2048 bytes");
    assert_eq!(&*events[0].data, expected, "… and they are the first 2048 bytes of the body");
    assert_eq!(answer(&mut sim, me.script, events[0].id, 200, "ok"), Ok(()));
    let answers = responses(sim.bytes(conn));
    assert_eq!((answers.len(), answers[0].status, answers[0].body.as_slice()), (1, 200, &b"ok"[..]));
}

#[test]
fn with_refuse_large_bodies_a_5_mb_content_length_is_answered_413_before_the_body_is_sent() {
    let (mut sim, me, path) = http_url(Config { refuse_large_bodies: true, ..Config::default() });
    let conn = sim.accept();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n", 5 * KIB * KIB);
    sim.send(conn, head.as_bytes());
    let answers = responses(sim.bytes(conn));
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [413], "413 at once, and no 100 Continue that would invite the body");
    assert!(sim.closed.contains(&conn));
    assert!(requests(&mut sim, me.script).is_empty());
}

#[test]
fn a_never_ending_chunked_body_keeps_the_heap_flat_and_is_dropped_once_it_stalls() {
    let (mut sim, me, path) = http_url(Config::default());
    let conn = sim.accept();
    sim.send(conn, format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes());
    // One 64 KiB-ish read: eight chunks of 8 KiB.
    let mut read = Vec::new();
    for _ in 0..8 {
        read.extend_from_slice(b"2000;ext=1\r\n");
        read.extend(std::iter::repeat_n(b'q', 8 * KIB));
        read.extend_from_slice(b"\r\n");
    }
    // The first reads fill what the region keeps of a body (its first 4100 bytes).
    sim.send(conn, &read);
    sim.send(conn, &read);
    let base = heap();
    let mut peak = 0;
    let mut sent = 2 * read.len();
    let mut last_byte = sim.now;
    let ((), largest) = largest_allocation_in(|| {
        // 128 more reads, half a second apart: 8 MB over 64 s, far past the 10 s
        // handshake timeout, which a body that keeps coming never reaches.
        for _ in 0..128 {
            sim.send(conn, &read);
            sent += read.len();
            last_byte = sim.now;
            sim.advance_secs(0.5);
            peak = peak.max(heap() - base);
        }
    });
    eprintln!("endless chunked: {sent} B sent, heap growth peak {peak} B, largest allocation {largest} B");
    assert!(sent > 8 * KIB * KIB, "{sent} bytes of chunks");
    assert!(!sim.closed.contains(&conn), "a body that keeps coming keeps its connection");
    assert!(peak <= 256, "the heap grew by {peak} bytes over 8 MB of chunks");
    assert!(largest <= 16 * KIB, "largest single allocation: {largest} bytes");
    assert!(requests(&mut sim, me.script).is_empty(), "no event for a body that never ends");

    // It stops: dropped after the handshake timeout of silence, nothing written.
    let stalled = last_byte;
    while !sim.closed.contains(&conn) {
        sim.advance_secs(0.5);
        assert!(sim.now - stalled <= Duration::from_secs(11), "the stalled body is never dropped");
    }
    assert!(sim.now - stalled >= Duration::from_secs(10), "dropped after {:?}", sim.now - stalled);
    assert!(sim.bytes(conn).is_empty(), "nothing written to a stalled body: {:?}", sim.bytes(conn));
    assert!(requests(&mut sim, me.script).is_empty());
    assert_eq!(sim.region.http_requests_in_flight(), 0, "the dropped request is not in flight");
}

// ------------------------------------------------------------------ the 64 cap

#[test]
fn sixty_four_requests_in_flight_then_the_65th_gets_503_with_retry_after_until_one_is_answered() {
    let (mut sim, me, path) = http_url(Config::default());
    let mut conns = Vec::new();
    for i in 0..64 {
        let conn = sim.accept_from(addr(i));
        sim.send(conn, &get(&path, &format!("r{i}")));
        conns.push(conn);
    }
    let events = requests(&mut sim, me.script);
    assert_eq!(events.len(), 64, "64 requests become 64 events");
    assert_eq!(sim.region.http_requests_in_flight(), 64);
    assert!(conns.iter().all(|c| sim.bytes(*c).is_empty()), "none answered yet");

    let over = sim.accept_from(addr(64));
    sim.send(over, &get(&path, "r64"));
    let answers = responses(sim.bytes(over));
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 503, "the 65th request: {answers:?}");
    assert!(answers[0].header("retry-after").is_some(), "503 with Retry-After: {answers:?}");
    assert!(sim.closed.contains(&over));
    assert!(requests(&mut sim, me.script).is_empty(), "the refused request is no event");
    assert_eq!(sim.region.http_requests_in_flight(), 64, "the refused request does not count");

    // One answer makes room: the next request is taken.
    assert_eq!(answer(&mut sim, me.script, events[0].id, 200, "first"), Ok(()));
    assert_eq!(responses(sim.bytes(conns[0]))[0].body, b"first");
    assert_eq!(sim.region.http_requests_in_flight(), 63);
    let again = sim.accept_from(addr(65));
    sim.send(again, &get(&path, "r65"));
    assert!(sim.bytes(again).is_empty(), "accepted, waiting for the script");
    let late = requests(&mut sim, me.script);
    assert_eq!(late.len(), 1, "a new request is accepted again");
    assert_eq!(sim.region.http_header(me.script, late[0].id, "x-path-info"), "/r65");
    assert_eq!(sim.region.http_requests_in_flight(), 64);
}

#[test]
fn a_request_whose_client_disconnects_stops_counting_and_a_late_answer_is_client_gone() {
    let (mut sim, me, path) = http_url(Config::default());
    let mut conns = Vec::new();
    for i in 0..64 {
        let conn = sim.accept_from(addr(i));
        sim.send(conn, &get(&path, &format!("r{i}")));
        conns.push(conn);
    }
    let events = requests(&mut sim, me.script);
    assert_eq!(events.len(), 64);

    sim.peer_closed(conns[7]).unwrap();
    assert_eq!(sim.region.http_requests_in_flight(), 63, "the gone client's request left the count");
    let next = sim.accept_from(addr(100));
    sim.send(next, &get(&path, "next"));
    assert!(sim.bytes(next).is_empty(), "not refused: {:?}", String::from_utf8_lossy(sim.bytes(next)));
    assert_eq!(requests(&mut sim, me.script).len(), 1, "the freed slot takes a new request");

    let gone = events[7].id;
    assert_eq!(answer(&mut sim, me.script, gone, 200, "late"), Err(HttpError::ClientGone));
    assert_eq!(answer(&mut sim, me.script, gone, 200, "again"), Err(HttpError::ClientGone));
    assert_eq!(sim.region.http_header(me.script, gone, "x-path-info"), "", "no headers of a gone request");
    // The others are untouched.
    assert_eq!(answer(&mut sim, me.script, events[8].id, 200, "fine"), Ok(()));
    assert_eq!(responses(sim.bytes(conns[8]))[0].body, b"fine");
    assert_eq!(sim.feed(conns[7], b"x"), Err(InputError::UnknownConnection(conns[7])));
}

// ------------------------------------------------------------------ slow heads

#[test]
fn a_slow_head_at_one_byte_per_second_is_dropped_at_the_handshake_timeout_with_nothing_written() {
    let (mut sim, me, path) = http_url(Config::default());
    let head = format!("POST {path}slow HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nContent-Length: 0\r\n\r\n");
    let conn = sim.accept();
    let start = sim.now;
    let mut sent = 0;
    while !sim.closed.contains(&conn) {
        assert!(sent < head.len(), "the whole head went out before the timeout");
        sim.send(conn, &head.as_bytes()[sent..=sent]);
        sent += 1;
        sim.advance_secs(1.0);
    }
    assert_eq!(sim.now - start, Duration::from_secs(10), "dropped at the 10 s handshake timeout");
    assert_eq!(sent, 10, "one byte per second until then");
    assert!(sim.bytes(conn).is_empty(), "nothing written: {:?}", String::from_utf8_lossy(sim.bytes(conn)));
    assert!(requests(&mut sim, me.script).is_empty());
    assert_eq!(sim.feed(conn, b"x"), Err(InputError::UnknownConnection(conn)), "the connection is forgotten");
}

#[test]
fn a_slow_second_head_on_a_kept_alive_connection_is_dropped_too() {
    let (mut sim, me, path) = http_url(Config::default());
    let conn = sim.accept();
    sim.send(conn, &get(&path, "first"));
    let first = requests(&mut sim, me.script);
    assert_eq!(answer(&mut sim, me.script, first[0].id, 200, "one"), Ok(()));
    sim.pump();
    let answered = sim.bytes(conn).len();
    let head = get(&path, "second");
    let start = sim.now;
    let mut sent = 0;
    while !sim.closed.contains(&conn) {
        sim.send(conn, &head[sent..=sent]);
        sent += 1;
        sim.advance_secs(1.0);
    }
    assert_eq!(sim.now - start, Duration::from_secs(10), "the head timer runs from the answer");
    assert_eq!(sim.bytes(conn).len(), answered, "nothing written after the first answer");
    assert!(requests(&mut sim, me.script).is_empty());
}

// ------------------------------------------------------------------ a client that never reads

#[test]
fn a_pipelining_client_that_never_reads_is_paused_at_the_outgoing_buffer_and_answered_in_order_later() {
    let (mut sim, me, path) = http_url(Config::default());
    let limit = sim.region.config().outgoing_buffer;
    let conn = sim.accept();
    sim.hold.insert(conn);
    let body = "z".repeat(4000);
    let one = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n", 4007)
        .len()
        + 4007;
    let total = 40;
    let mut unsent: std::collections::VecDeque<Vec<u8>> = (0..total).map(|i| get(&path, &format!("{i:03}"))).collect();

    let before = heap();
    let mut answered = 0;
    let mut peak = 0;
    // The client writes one request per read while the region reads; the script answers everything.
    while !sim.paused.contains(&conn) {
        if let Some(req) = unsent.pop_front() {
            sim.send(conn, &req);
        }
        for e in requests(&mut sim, me.script) {
            let tag = &sim.region.http_header(me.script, e.id, "x-path-info")[1..];
            let text = format!("{tag}:{answered:02}:{body}");
            assert_eq!(answer(&mut sim, me.script, e.id, 200, &text), Ok(()));
            answered += 1;
            sim.pump();
        }
        peak = peak.max(heap() - before);
        assert!(answered < total, "never paused");
    }
    // Paused by the answer that took the unread bytes past the outgoing buffer.
    assert_eq!(answered, limit / one + 1, "paused after {answered} answers of {one} bytes (buffer {limit})");
    assert!(
        sim.log.iter().filter(|o| **o == Output::PauseReading(conn)).count() == 1,
        "one PauseReading: {:?}",
        sim.log
    );
    // While paused, nothing more is read or answered, and the heap holds about
    // the buffer, not more: time passes (less than the idle interval), the client stays put.
    sim.advance_secs(20.0);
    assert!(requests(&mut sim, me.script).is_empty(), "no request is read while paused");
    let held = heap() - before;
    peak = peak.max(held);
    eprintln!("never reads: paused after {answered} answers of {one} B; heap held {held} B, peak {peak} B");
    assert!(peak <= (limit + one + 16 * KIB) as isize, "heap {peak} bytes for a {limit}-byte outgoing buffer");
    assert!(held >= (limit - one) as isize, "the answers are held ({held} bytes), not dropped");

    // The client reads again: everything is answered, in order.
    sim.hold.remove(&conn);
    let mut rounds = 0;
    loop {
        sim.take(conn);
        sim.pump();
        while !sim.paused.contains(&conn)
            && let Some(req) = unsent.pop_front()
        {
            sim.send(conn, &req);
        }
        let events = requests(&mut sim, me.script);
        if events.is_empty() && unsent.is_empty() {
            break;
        }
        for e in events {
            let tag = &sim.region.http_header(me.script, e.id, "x-path-info")[1..];
            let text = format!("{tag}:{answered:02}:{body}");
            assert_eq!(answer(&mut sim, me.script, e.id, 200, &text), Ok(()));
            answered += 1;
            sim.pump();
        }
        rounds += 1;
        assert!(rounds < 1000, "stuck with {} requests unsent", unsent.len());
    }
    assert!(!sim.paused.contains(&conn), "reading again");
    assert!(sim.log.contains(&Output::ResumeReading(conn)));
    let answers = responses(sim.bytes(conn));
    assert_eq!(answers.len(), total, "every request answered once");
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.starts_with(&format!("{i:03}:{i:02}:")), "answer {i} out of order: {}", &text[..10]);
    }
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed_after_the_idle_interval() {
    let (mut sim, me, path) = http_url(Config { outgoing_buffer: 1024, ..Config::default() });
    let conn = sim.accept();
    sim.hold.insert(conn);
    sim.send(conn, &get(&path, "a"));
    let e = requests(&mut sim, me.script);
    assert_eq!(answer(&mut sim, me.script, e[0].id, 200, &"y".repeat(2000)), Ok(()));
    sim.pump();
    assert!(sim.paused.contains(&conn), "answers over the buffer pause reading");
    sim.advance_secs(29.0);
    assert!(!sim.closed.contains(&conn));
    sim.advance_secs(2.0);
    assert!(sim.closed.contains(&conn), "a client that takes nothing for the idle interval is closed");
    // What it was answered is still delivered when the socket takes it.
    sim.hold.remove(&conn);
    sim.take(conn);
    assert_eq!(responses(sim.bytes(conn))[0].body.len(), 2000);
    let _: ConnectionId = conn;
}

// ------------------------------------------------------------------ answers with a 1xx status

/// A 1xx from the script is answered 500 (FORMAT.md D29): HTTP reads 1xx as interim.
#[test]
fn a_script_answer_with_a_1xx_status_is_still_a_final_response() {
    let (mut sim, me, path) = http_url(Config::default());
    let conn = sim.accept();
    let mut two = get(&path, "a");
    two.extend(get(&path, "b"));
    sim.send(conn, &two);
    let first = requests(&mut sim, me.script);
    assert_eq!(answer(&mut sim, me.script, first[0].id, 101, "one"), Ok(()));
    let second = requests(&mut sim, me.script);
    assert_eq!(answer(&mut sim, me.script, second[0].id, 200, "two"), Ok(()));
    // A client reads interim (1xx) responses as "not yet": it needs one final
    // response per request. 101 without `Upgrade` is not even a valid interim one.
    let finals: Vec<u16> = responses(sim.bytes(conn)).iter().map(|r| r.status).filter(|s| *s >= 200).collect();
    assert_eq!(finals.len(), 2, "two requests, two final responses: {:?}", String::from_utf8_lossy(sim.bytes(conn)));
}
