//! SPEC §13, raw TCP lines on the same port: a connection whose first byte
//! is `/` is a line client with the session semantics of §3–§6. The wire
//! decisions (control lines `\error`, `\close`, `\ping`, `\pong`) are those
//! documented in the crate's `line` module and conformance/FORMAT.md.

mod common;

use common::*;
use lsl_websocket::{Config, ConnectionId, EventKind, Key, Scope, ScriptInfo, WebsocketRequest};

fn setup(config: Config) -> (Sim, ScriptInfo, String) {
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    let url = sim.request_url(who);
    (sim, who, url)
}

/// A line client that sent `first` as its first line (and anything after it).
fn line_client(sim: &mut Sim, first: &str) -> ConnectionId {
    let conn = sim.accept();
    sim.raw.insert(conn);
    sim.send(conn, first.as_bytes());
    conn
}

/// Opens a line session on `url` and sends `rest` with the first line;
/// returns the connection, the session key and path info from `WS_OPEN`, and
/// the texts of the lines in `rest`.
fn open_with(sim: &mut Sim, script: Key, url: &str, rest: &str) -> (ConnectionId, Key, String, Vec<String>) {
    let conn = line_client(sim, &format!("{}\n{rest}", path_of(url)));
    let events = sim.events(script);
    let open = events.iter().find(|e| e.kind == EventKind::Open).expect("WS_OPEN");
    let texts = events.iter().filter(|e| e.kind == EventKind::Text).map(|e| e.data.to_string()).collect();
    (conn, open.id, open.data.to_string(), texts)
}

fn open(sim: &mut Sim, script: Key, url: &str, rest: &str) -> (ConnectionId, Key, String) {
    let (conn, key, path_info, _) = open_with(sim, script, url, rest);
    (conn, key, path_info)
}

fn wire(sim: &Sim, conn: ConnectionId) -> String {
    String::from_utf8_lossy(sim.bytes(conn)).into_owned()
}

#[test]
fn a_first_line_naming_a_url_opens_a_session() {
    let (mut sim, who, url) = setup(Config::default());
    let (conn, key, path_info) = open(&mut sim, who.script, &format!("{url}room/7?x=1"), "");
    assert_eq!(path_info, "/room/7");
    assert_eq!(sim.region.websocket_header(who.script, key, "x-transport"), "lines");
    assert_eq!(sim.region.websocket_header(who.script, key, "x-query-string"), "x=1");
    assert_eq!(sim.region.websocket_header(who.script, key, "user-agent"), "");
    assert!(wire(&sim, conn).is_empty(), "no greeting: the first message is the script's");
    // One WS_TEXT per line, LF or CRLF, however split.
    sim.send(conn, b"hel");
    sim.send(conn, b"lo\r\nwor");
    sim.send(conn, b"ld\n\n");
    assert_eq!(sim.texts(who.script), ["hello", "world", ""]);
    sim.region.websocket_send(who.script, key, "back").unwrap();
    sim.pump();
    assert_eq!(wire(&sim, conn), "back\n");
}

#[test]
fn messages_are_escaped_both_ways() {
    let (mut sim, who, url) = setup(Config::default());
    let (conn, key, _, texts) = open_with(&mut sim, who.script, &url, "two\\nlines \\\\ and \\r\n");
    assert_eq!(texts, ["two\nlines \\ and \r"]);
    sim.region.websocket_send(who.script, key, "a\nb\\c\rd").unwrap();
    sim.pump();
    assert_eq!(wire(&sim, conn), "a\\nb\\\\c\\rd\n");
}

#[test]
fn a_websocket_session_says_websocket() {
    let (mut sim, who, url) = setup(Config::default());
    let client = sim.connect(who.script, &url);
    assert_eq!(sim.region.websocket_header(who.script, client.session, "x-transport"), "websocket");
}

#[test]
fn unknown_urls_and_bad_first_lines_are_refused_with_an_error_line() {
    let (mut sim, who, url) = setup(Config::default());
    for (first, answer) in [
        (&b"/lslws/5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a/\n"[..], "\\error 404 not found\n"),
        (b"/nowhere\n", "\\error 404 not found\n"),
        // A path that an HTTP sniff would mistake: the first byte decides (SPEC §13).
        (b"/ /lslhttp/\n", "\\error 404 not found\n"),
        (b"/\xff\n", "\\error 400 bad request\n"),
    ] {
        let conn = sim.accept();
        sim.raw.insert(conn);
        sim.send(conn, first);
        assert_eq!(wire(&sim, conn), answer, "{first:?}");
        assert!(sim.closed.contains(&conn));
    }
    // A first line that never ends is refused at the head limit, not held.
    let conn = sim.accept();
    sim.raw.insert(conn);
    sim.send(conn, format!("{}{}", path_of(&url), "a".repeat(9000)).as_bytes());
    assert_eq!(wire(&sim, conn), "\\error 400 bad request\n");
    // Revoked URLs too.
    sim.region.release_websocket(sim.now, who.script, &url).unwrap();
    let conn = line_client(&mut sim, &format!("{}\n", path_of(&url)));
    assert_eq!(wire(&sim, conn), "\\error 404 not found\n");
    assert!(sim.events(who.script).iter().all(|e| e.kind != EventKind::Open));
}

#[test]
fn a_silent_connection_is_dropped_at_the_handshake_timeout() {
    let (mut sim, _, url) = setup(Config::default());
    let conn = line_client(&mut sim, &path_of(&url)[..8]);
    sim.advance_secs(10.1);
    assert!(sim.closed.contains(&conn) && wire(&sim, conn).is_empty());
}

#[test]
fn over_cap_and_invalid_utf8_close_like_websocket() {
    let (mut sim, who, url) = setup(Config::default());
    let (conn, _, _) = open(&mut sim, who.script, &url, "");
    sim.send(conn, format!("{}\n", "a".repeat(2049)).as_bytes());
    assert_eq!(wire(&sim, conn), "\\close 1009 message too big\n");
    assert!(sim.closed.contains(&conn));
    let closes: Vec<String> =
        sim.events(who.script).into_iter().filter(|e| e.kind == EventKind::Close).map(|e| e.data.to_string()).collect();
    assert_eq!(closes, ["1009 message too big"]);
    // An over-cap line is refused before its end arrives: never held whole.
    let (conn, _, _) = open(&mut sim, who.script, &url, "");
    sim.send(conn, "b".repeat(5000).as_bytes());
    assert_eq!(wire(&sim, conn), "\\close 1009 message too big\n");
    let (conn, _, _, texts) = open_with(&mut sim, who.script, &url, "ok\n\u{e9}\n");
    assert_eq!(texts, ["ok", "é"]);
    sim.send(conn, b"\xc3(\n");
    assert_eq!(wire(&sim, conn), "\\close 1007 invalid utf-8\n");
}

#[test]
fn closes_from_the_script_the_client_and_revocation() {
    let (mut sim, who, url) = setup(Config::default());
    let (conn, key, _) = open(&mut sim, who.script, &url, "");
    sim.region.websocket_close(sim.now, who.script, key, 4000, "bye now").unwrap();
    sim.pump();
    assert_eq!(wire(&sim, conn), "\\close 4000 bye now\n");
    assert!(sim.closed.contains(&conn), "no close echo to wait for");
    assert!(sim.events(who.script).iter().any(|e| e.kind == EventKind::Close && e.data == "4000 bye now"));

    let conn = line_client(&mut sim, &format!("{}\n\\close 3001 done\n", path_of(&url)));
    assert_eq!(wire(&sim, conn), "\\close 3001 done\n");
    assert!(sim.closed.contains(&conn));
    assert!(sim.events(who.script).iter().any(|e| e.kind == EventKind::Close && e.data == "3001 done"));

    let (conn, key, _) = open(&mut sim, who.script, &url, "");
    sim.region.script_reset(sim.now, who.script);
    sim.pump();
    assert_eq!(wire(&sim, conn), "\\close 1001 script reset\n");
    assert!(sim.closed.contains(&conn));
    assert!(sim.events(who.script).is_empty(), "revocation tells the script nothing more");
    assert!(sim.region.websocket_send(who.script, key, "late").is_err());
}

#[test]
fn idle_line_clients_are_pinged_and_dropped_when_silent() {
    let (mut sim, who, url) = setup(Config::default());
    let (conn, _, _) = open(&mut sim, who.script, &url, "");
    sim.advance_secs(30.1);
    assert_eq!(wire(&sim, conn), "\\ping\n");
    sim.send(conn, b"\\pong\n");
    sim.advance_secs(29.0);
    assert!(!sim.closed.contains(&conn), "the answer keeps it");
    sim.send(conn, b"\\ping\n");
    assert_eq!(wire(&sim, conn), "\\ping\n\\pong\n", "the client may ask too");
    sim.advance_secs(60.5);
    assert!(sim.closed.contains(&conn), "silence after a ping drops it");
    let closes: Vec<String> =
        sim.events(who.script).into_iter().filter(|e| e.kind == EventKind::Close).map(|e| e.data.to_string()).collect();
    assert_eq!(closes, ["1006 ping timeout"]);
}

#[test]
fn a_full_queue_pauses_a_line_client_and_loses_nothing() {
    let (mut sim, who, url) = setup(Config { event_queue: 4, ..Config::default() });
    let lines: String = (0..20).map(|i| format!("m{i}\n")).collect();
    let conn = line_client(&mut sim, &format!("{}\n{lines}", path_of(&url)));
    assert!(sim.paused.contains(&conn));
    let texts = sim.texts(who.script);
    assert_eq!(texts, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(!sim.paused.contains(&conn));
}

#[test]
fn the_region_endpoint_speaks_the_envelope_in_lines() {
    let mut sim = Sim::new();
    let who = sim.script();
    let request = WebsocketRequest { scope: Scope::Region, domain: Some("echo".into()), ..WebsocketRequest::default() };
    let (_, granted) = sim.request(who, &request);
    let conn = line_client(&mut sim, &format!("{}\nsub,echo\nmsg,echo,hi\\nthere\n", path_of(&granted.data)));
    let events = sim.events(who.script);
    assert_eq!(events[0].kind, EventKind::Open);
    assert_eq!((events[1].kind, events[1].data.as_str()), (EventKind::Text, "hi\nthere"));
    sim.region.websocket_broadcast(who.script, "echo", "to all\\").unwrap();
    sim.region.websocket_send(who.script, events[0].id, "to one").unwrap();
    sim.pump();
    assert_eq!(wire(&sim, conn), "msg,echo,to all\\\\\nmsg,echo,to one\n");
    sim.send(conn, b"msg,nobody,x\n");
    assert!(wire(&sim, conn).ends_with("err,nobody,no-listener\n"));
    sim.region.region_restart(sim.now);
    sim.pump();
    assert!(wire(&sim, conn).ends_with("\\close 1001 region restart\n"));
    assert!(sim.closed.contains(&conn));
}

#[test]
fn http_clients_are_not_line_clients() {
    let (mut sim, _, url) = setup(Config::default());
    // A plain request for the URL is still answered as HTTP.
    let conn = sim.try_handshake(format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path_of(&url)).as_bytes());
    assert_eq!(sim.status(conn), 426);
}

#[test]
fn only_a_connections_first_byte_makes_a_line_client() {
    // After a kept-alive HTTP-in answer, bytes starting with `/` are a bad request, not a line client.
    let (mut sim, who, url) = setup(Config::default());
    let key = sim.region.request_url(who);
    let http = sim.events(who.script).into_iter().find(|e| e.id == key).unwrap().data.to_string();
    let conn = sim.accept();
    sim.raw.insert(conn);
    sim.send(conn, format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path_of(&http)).as_bytes());
    let request = sim.events(who.script).into_iter().find(|e| matches!(e.kind, EventKind::Http(_))).unwrap();
    sim.region.http_response(sim.now, who.script, request.id, 200, "ok").unwrap();
    sim.pump();
    sim.send(conn, format!("{}\nhello\n", path_of(&url)).as_bytes());
    let wire = wire(&sim, conn);
    assert!(wire.ends_with("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), "{wire}");
    assert!(sim.events(who.script).iter().all(|e| e.kind != EventKind::Open));
}
