//! SPEC §14, server-sent events + POST: a stream on a WebSocket URL is a
//! session; messages come up by POST to the session's send URL; a dropped
//! stream resumes with `Last-Event-ID`; an ended one is answered 204.

mod common;

use common::*;
use lsl_websocket::{Config, ConnectionId, EventKind, Key, Output, Scope, ScriptInfo, SendError, WebsocketRequest};

fn setup(config: Config) -> (Sim, ScriptInfo, String) {
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    let url = sim.request_url(who);
    (sim, who, url)
}

fn stream_request(path: &str, last_event_id: Option<&str>) -> Vec<u8> {
    let id = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{id}\r\n")
        .into_bytes()
}

/// One parsed event: (id, event name, data).
type Sse = (String, String, String);

/// The events a stream connection received (after its response head).
fn events_of(sim: &Sim, conn: ConnectionId) -> Vec<Sse> {
    let text = String::from_utf8_lossy(sim.bytes(conn)).into_owned();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    body.split("\n\n")
        .filter(|block| !block.is_empty() && !block.starts_with(':'))
        .map(|block| {
            let field = |name: &str| {
                block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_string())).unwrap_or_default()
            };
            let event = field("event:");
            (field("id:"), if event.is_empty() { "message".into() } else { event }, field("data:"))
        })
        .collect()
}

/// The texts of the message events, decoded from their JSON strings.
fn messages(sim: &Sim, conn: ConnectionId) -> Vec<String> {
    events_of(sim, conn)
        .into_iter()
        .filter(|(_, e, _)| e == "message")
        .map(|(_, _, d)| serde_json::from_str::<String>(&d).expect("data is a JSON string"))
        .collect()
}

struct Stream {
    conn: ConnectionId,
    send: String,
    session: Key,
}

/// Opens a stream on `url`; returns it with its send path and session key.
fn open(sim: &mut Sim, script: Key, url: &str) -> Stream {
    let conn = sim.accept();
    sim.raw.insert(conn);
    sim.send(conn, &stream_request(&path_of(url), None));
    let first = events_of(sim, conn).remove(0);
    assert_eq!(first.1, "session");
    let data: serde_json::Value = serde_json::from_str(&first.2).unwrap();
    let send = data["send"].as_str().unwrap().to_string();
    let session = sim.events(script).into_iter().find(|e| e.kind == EventKind::Open).map(|e| e.id).unwrap_or_default();
    Stream { conn, send, session }
}

/// POSTs `body` to a send path; returns the status.
fn post(sim: &mut Sim, send: &str, body: &[u8]) -> (ConnectionId, u16) {
    let conn = sim.accept();
    let mut request = format!("POST {send} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    request.extend_from_slice(body);
    sim.send(conn, &request);
    (conn, sim.status(conn))
}

#[test]
fn a_stream_is_a_session() {
    let (mut sim, who, url) = setup(Config::default());
    let conn = sim.accept();
    sim.raw.insert(conn);
    sim.send(conn, &stream_request(&format!("{}room?x=1", path_of(&url)), None));
    let (head, _) = split_head(sim.bytes(conn));
    let head = head.unwrap();
    assert_eq!(status_of(&head), 200);
    assert_eq!(header_of(&head, "Content-Type").as_deref(), Some("text/event-stream; charset=utf-8"));
    assert_eq!(header_of(&head, "Cache-Control").as_deref(), Some("no-cache"));
    assert_eq!(header_of(&head, "X-Accel-Buffering").as_deref(), Some("no"));
    let text = String::from_utf8_lossy(sim.bytes(conn)).into_owned();
    assert!(text.contains("\r\n\r\nretry: "), "a retry hint");
    let events = events_of(&sim, conn);
    assert_eq!(events.len(), 1);
    let (id, name, data) = &events[0];
    assert_eq!(name, "session");
    let send = serde_json::from_str::<serde_json::Value>(data).unwrap()["send"].as_str().unwrap().to_string();
    assert!(send.starts_with("/lslsse/") && id.ends_with("-0"), "{send} {id}");
    assert!(id.starts_with(send.trim_start_matches("/lslsse/").trim_end_matches('/')), "ids carry the session's token");
    let open = sim.events(who.script).into_iter().find(|e| e.kind == EventKind::Open).expect("WS_OPEN");
    assert_eq!(open.data, "/room");
    assert_eq!(sim.region.websocket_header(who.script, open.id, "x-transport"), "sse");
    assert_eq!(sim.region.websocket_header(who.script, open.id, "x-query-string"), "x=1");
}

#[test]
fn sends_are_json_events_with_ids_and_posts_are_messages() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    let tricky = "line one\r\nline two\rthree\n\"quoted\" \\ ✓ \u{1}";
    sim.region.websocket_send(who.script, s.session, tricky).unwrap();
    sim.region.websocket_send(who.script, s.session, "second").unwrap();
    sim.pump();
    assert_eq!(messages(&sim, s.conn), [tricky, "second"], "every character survives");
    let ids: Vec<String> = events_of(&sim, s.conn).into_iter().map(|(id, _, _)| id).collect();
    assert!(ids[1].ends_with("-1") && ids[2].ends_with("-2"), "{ids:?}");
    let (conn, status) = post(&mut sim, &s.send, "hello ✓".as_bytes());
    assert_eq!(status, 204);
    assert!(!sim.closed.contains(&conn), "kept alive");
    assert_eq!(sim.texts(who.script), ["hello ✓"]);
    // Over the cap, not UTF-8, an unknown token, another method.
    assert_eq!(post(&mut sim, &s.send, &[b'a'; 2049]).1, 413);
    assert_eq!(post(&mut sim, &s.send, b"\xff").1, 400);
    assert_eq!(post(&mut sim, "/lslsse/5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a/", b"x").1, 404);
    let conn = sim.try_handshake(format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", s.send).as_bytes());
    assert_eq!(sim.status(conn), 405);
    assert!(sim.texts(who.script).is_empty());
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let (mut sim, who, url) = setup(Config { event_queue: 2, ..Config::default() });
    let s = open(&mut sim, who.script, &url);
    assert_eq!(post(&mut sim, &s.send, b"1").1, 204);
    assert_eq!(post(&mut sim, &s.send, b"2").1, 204);
    let (conn, status) = post(&mut sim, &s.send, b"3");
    assert_eq!(status, 503);
    assert_eq!(header_of(&sim.response(conn), "Retry-After").as_deref(), Some("1"));
    assert_eq!(sim.texts(who.script), ["1", "2"]);
    assert_eq!(post(&mut sim, &s.send, b"3").1, 204, "room again once the script read");
}

#[test]
fn a_close_is_a_final_event_and_reconnects_get_204() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    sim.region.websocket_close(sim.now, who.script, s.session, 4000, "bye \"now\"").unwrap();
    sim.pump();
    let (id, name, data) = events_of(&sim, s.conn).pop().unwrap();
    assert_eq!(name, "close");
    let close: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!((close["code"].as_u64(), close["reason"].as_str()), (Some(4000), Some("bye \"now\"")));
    assert!(sim.closed.contains(&s.conn), "the response ends");
    // EventSource reconnects with the last id: 204 stops it.
    let again = sim.accept();
    sim.send(again, &stream_request(&path_of(&url), Some(&id)));
    assert_eq!(sim.status(again), 204);
    assert!(sim.closed.contains(&again));
    assert_eq!(post(&mut sim, &s.send, b"late").1, 404, "the send URL died with the session");
}

#[test]
fn revocation_ends_the_stream_with_1001() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    sim.region.owner_changed(sim.now, who.object);
    sim.pump();
    let (_, name, data) = events_of(&sim, s.conn).pop().unwrap();
    assert_eq!((name.as_str(), data.as_str()), ("close", "{\"code\":1001,\"reason\":\"owner change\"}"));
    assert!(sim.closed.contains(&s.conn));
    assert!(sim.events(who.script).iter().all(|e| e.kind != EventKind::Close), "revocation tells the script nothing");
}

#[test]
fn heartbeats_at_least_every_15_s() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    let before = sim.bytes(s.conn).len();
    sim.advance_secs(15.1);
    let text = String::from_utf8_lossy(&sim.bytes(s.conn)[before..]).into_owned();
    assert_eq!(text, ": heartbeat\n\n");
    sim.advance_secs(60.0);
    assert!(!sim.closed.contains(&s.conn), "a silent client is not dropped: it cannot speak up the stream");
    let count = String::from_utf8_lossy(sim.bytes(s.conn)).matches(": heartbeat").count();
    assert_eq!(count, 5);
}

#[test]
fn a_dropped_stream_resumes_with_nothing_lost() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    sim.region.websocket_send(who.script, s.session, "one").unwrap();
    sim.pump();
    let last_seen = events_of(&sim, s.conn).pop().unwrap().0;
    // The client got "one"; "two" is written but lost with the connection.
    sim.region.websocket_send(who.script, s.session, "two").unwrap();
    sim.pump();
    sim.peer_closed(s.conn).unwrap();
    // While no stream is attached, sends are kept.
    sim.region.websocket_send(who.script, s.session, "three").unwrap();
    sim.advance_secs(20.0);
    let again = sim.accept();
    sim.raw.insert(again);
    sim.send(again, &stream_request(&path_of(&url), Some(&last_seen)));
    assert_eq!(sim.status(again), 200);
    assert_eq!(messages(&sim, again), ["two", "three"]);
    assert!(sim.events(who.script).is_empty(), "no WS_CLOSE or WS_OPEN for the blip");
    // The same session: same key, same send URL.
    sim.region.websocket_send(who.script, s.session, "four").unwrap();
    sim.pump();
    assert_eq!(messages(&sim, again), ["two", "three", "four"]);
    assert_eq!(post(&mut sim, &s.send, b"up").1, 204);
    assert_eq!(sim.texts(who.script), ["up"]);
}

#[test]
fn a_resume_replaces_a_stream_still_open() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    let id = events_of(&sim, s.conn)[0].0.clone();
    let again = sim.accept();
    sim.raw.insert(again);
    let mark = sim.mark();
    sim.send(again, &stream_request(&path_of(&url), Some(&id)));
    assert!(sim.log_since(mark).contains(&Output::Close(s.conn)), "the old one is closed");
    sim.region.websocket_send(who.script, s.session, "to the new one").unwrap();
    sim.pump();
    assert_eq!(messages(&sim, again), ["to the new one"]);
}

#[test]
fn after_the_idle_interval_a_reconnect_is_a_new_session() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    let id = events_of(&sim, s.conn)[0].0.clone();
    sim.peer_closed(s.conn).unwrap();
    sim.advance_secs(30.5);
    let closes: Vec<String> =
        sim.events(who.script).into_iter().filter(|e| e.kind == EventKind::Close).map(|e| e.data.to_string()).collect();
    assert_eq!(closes, ["1006 connection lost"]);
    assert_eq!(sim.region.websocket_send(who.script, s.session, "x"), Err(SendError::NoSession));
    // Ended: a reconnect with its id gets 204; one with an unknown id a new session.
    let again = sim.accept();
    sim.send(again, &stream_request(&path_of(&url), Some(&id)));
    assert_eq!(sim.status(again), 204);
    let fresh = sim.accept();
    sim.raw.insert(fresh);
    sim.send(fresh, &stream_request(&path_of(&url), Some("0123-7")));
    assert_eq!(sim.status(fresh), 200);
    assert!(sim.events(who.script).iter().any(|e| e.kind == EventKind::Open));
}

#[test]
fn resume_memory_is_bounded_and_a_gap_closes_with_a_reason() {
    let (mut sim, who, url) = setup(Config { outgoing_buffer: 1024, ..Config::default() });
    let s = open(&mut sim, who.script, &url);
    let first = events_of(&sim, s.conn)[0].0.clone();
    for i in 0..40 {
        sim.region.websocket_send(who.script, s.session, &format!("message {i:02} {}", "x".repeat(20))).unwrap();
        sim.pump();
    }
    sim.peer_closed(s.conn).unwrap();
    // Detached: a send that would overflow the memory is refused, not dropped.
    let mut refused = false;
    for _ in 0..100 {
        if sim.region.websocket_send(who.script, s.session, &"y".repeat(100)) == Err(SendError::Busy) {
            refused = true;
            break;
        }
    }
    assert!(refused, "WS_ERR_BUSY once the resume memory is full");
    // The client saw only the session event: the early messages are gone.
    let again = sim.accept();
    sim.raw.insert(again);
    sim.send(again, &stream_request(&path_of(&url), Some(&first)));
    let (_, name, data) = events_of(&sim, again).pop().unwrap();
    assert_eq!(
        (name.as_str(), data.as_str()),
        ("close", "{\"code\":1001,\"reason\":\"cannot resume: events dropped\"}")
    );
    assert!(sim.closed.contains(&again));
    let closes: Vec<String> =
        sim.events(who.script).into_iter().filter(|e| e.kind == EventKind::Close).map(|e| e.data.to_string()).collect();
    assert_eq!(closes, ["1001 cannot resume: events dropped"]);
}

#[test]
fn the_region_endpoint_over_sse() {
    let mut sim = Sim::new();
    let who = sim.script();
    let request = WebsocketRequest { scope: Scope::Region, domain: Some("echo".into()), ..WebsocketRequest::default() };
    let (_, granted) = sim.request(who, &request);
    let s = open(&mut sim, who.script, &granted.data);
    assert_eq!(post(&mut sim, &s.send, b"sub,echo").1, 204);
    assert_eq!(post(&mut sim, &s.send, b"msg,echo,hi").1, 204);
    let events = sim.events(who.script);
    assert_eq!(events[0].kind, EventKind::Open);
    assert_eq!((events[1].kind, events[1].data.as_str()), (EventKind::Text, "hi"));
    sim.region.websocket_broadcast(who.script, "echo", "to all").unwrap();
    sim.region.websocket_send(who.script, events[0].id, "to one").unwrap();
    sim.pump();
    assert_post(&mut sim, &s.send, b"msg,nobody,x");
    assert_eq!(messages(&sim, s.conn), ["msg,echo,to all", "msg,echo,to one", "err,nobody,no-listener"]);
}

fn assert_post(sim: &mut Sim, send: &str, body: &[u8]) {
    assert_eq!(post(sim, send, body).1, 204);
}

#[test]
fn chunked_and_continued_posts() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    let conn = sim.accept();
    let head =
        format!("POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n", s.send);
    sim.send(conn, head.as_bytes());
    assert!(sim.response(conn).starts_with("HTTP/1.1 100 Continue"));
    sim.send(conn, b"3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(sim.texts(who.script), ["abc"]);
    assert!(String::from_utf8_lossy(sim.bytes(conn)).ends_with("HTTP/1.1 204 No Content\r\n\r\n"));
}

#[test]
fn a_delete_of_the_send_url_is_the_clients_close() {
    let (mut sim, who, url) = setup(Config::default());
    let s = open(&mut sim, who.script, &url);
    let conn = sim.accept();
    sim.send(conn, format!("DELETE {} HTTP/1.1\r\nHost: x\r\n\r\n", s.send).as_bytes());
    assert_eq!(sim.status(conn), 204);
    let (_, name, data) = events_of(&sim, s.conn).pop().unwrap();
    assert_eq!((name.as_str(), data.as_str()), ("close", "{\"code\":1000,\"reason\":\"\"}"));
    assert!(sim.closed.contains(&s.conn));
    let closes: Vec<String> =
        sim.events(who.script).into_iter().filter(|e| e.kind == EventKind::Close).map(|e| e.data.to_string()).collect();
    assert_eq!(closes, ["1000 "]);
}

#[test]
fn a_session_that_ends_before_its_ws_open_found_room_still_opens_first() {
    let (mut sim, who, url) = setup(Config { event_queue: 1, ..Config::default() });
    let _a = open(&mut sim, who.script, &url);
    // B's WS_OPEN waits: the queue holds A's (open() above drained it, so fill it again).
    let conn = sim.accept();
    sim.raw.insert(conn);
    sim.send(conn, &stream_request(&path_of(&url), None));
    let filler = sim.accept();
    sim.raw.insert(filler);
    sim.send(filler, &stream_request(&path_of(&url), None));
    let send = serde_json::from_str::<serde_json::Value>(&events_of(&sim, filler)[0].2).unwrap()["send"]
        .as_str()
        .unwrap()
        .to_string();
    let del = sim.accept();
    sim.send(del, format!("DELETE {send} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(sim.status(del), 204);
    let events = sim.events(who.script);
    for e in events.iter().filter(|e| e.kind == EventKind::Close) {
        let opened = events.iter().position(|o| o.kind == EventKind::Open && o.id == e.id);
        let closed = events.iter().position(|c| std::ptr::eq(c, e));
        assert!(opened.is_some() && opened < closed, "WS_CLOSE of a session never opened: {events:?}");
    }
    assert!(events.iter().any(|e| e.kind == EventKind::Close), "{events:?}");
}
