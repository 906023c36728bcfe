//! SPEC §5, first table: every handshake answer, asserted on the wire.

mod common;

use common::*;
use lsl_websocket::{Config, ConnectionId, EventKind, Output};

/// A sim with one script holding one URL; returns (sim, script key, url).
fn setup(config: Config) -> (Sim, lsl_websocket::Key, String) {
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    let url = sim.request_url(who);
    (sim, who.script, url)
}

/// The server answered `code`, wrote nothing after the head, and closed the connection.
fn assert_refused(sim: &Sim, conn: ConnectionId, code: u16) {
    assert_eq!(sim.status(conn), code, "{}", sim.response(conn));
    let (head, rest) = split_head(sim.bytes(conn));
    assert!(rest.is_empty(), "no frames after a refusal");
    assert_eq!(header_of(&head.unwrap(), "Content-Length").as_deref(), Some("0"));
    assert!(sim.closed.contains(&conn), "a refused connection is closed");
}

fn handshake_status(sim: &mut Sim, method: &str, target: &str, headers: &[(String, String)]) -> ConnectionId {
    sim.try_handshake(&head(method, target, headers))
}

#[test]
fn h404_unknown_capability() {
    let (mut sim, script, url) = setup(Config::default());
    for target in [
        "/lslws/5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a/".to_string(),
        "/lslws/5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a".to_string(),
        "/lslws/not-a-capability/".to_string(),
        "/lslws/".to_string(),
        "/".to_string(),
        // The live capability under another prefix does not resolve either.
        path_of(&url).replace("/lslws/", "/other/"),
    ] {
        let conn = handshake_status(&mut sim, "GET", &target, &upgrade_headers());
        assert_refused(&sim, conn, 404);
    }
    assert!(sim.events(script).is_empty(), "a refused handshake reaches no script");
}

#[test]
fn h404_revoked_capability() {
    let (mut sim, script, url) = setup(Config::default());
    let client = sim.connect(script, &url);
    assert_eq!(sim.status(client.conn), 101);
    sim.region.release_websocket(sim.now, script, &url).unwrap();
    sim.pump();
    let conn = sim.try_handshake(&upgrade_head(&path_of(&url)));
    assert_refused(&sim, conn, 404);
    // A new URL of the same script does not bring the old capability back.
    let who = lsl_websocket::ScriptInfo { script, object: sim.key(), owner: sim.key() };
    let fresh = sim.request_url(who);
    assert_ne!(fresh, url, "capabilities are never reused");
    let conn = sim.try_handshake(&upgrade_head(&path_of(&url)));
    assert_refused(&sim, conn, 404);
}

#[test]
fn h405_not_get() {
    let (mut sim, script, url) = setup(Config::default());
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"] {
        let conn = handshake_status(&mut sim, method, &path_of(&url), &upgrade_headers());
        assert_refused(&sim, conn, 405);
    }
    assert!(sim.events(script).is_empty());
}

#[test]
fn h400_missing_key() {
    let (mut sim, _, url) = setup(Config::default());
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &without("Sec-WebSocket-Key"));
    assert_refused(&sim, conn, 400);
}

#[test]
fn h400_invalid_key() {
    let (mut sim, script, url) = setup(Config::default());
    for key in [
        "",
        "abc",
        // base64 of 15 bytes
        "AAAAAAAAAAAAAAAAAAAA",
        // base64 of 17 bytes: same length as a good key
        "AAAAAAAAAAAAAAAAAAAAAA0=",
        // 16 bytes of base64 length but not base64
        "!!!!!!!!!!!!!!!!!!!!!!==",
        // base64 of 16 bytes without padding
        "dGhlIHNhbXBsZSBub25jZQ",
        // non-canonical last symbol (low bits set)
        "dGhlIHNhbXBsZSBub25jZR==",
    ] {
        let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("Sec-WebSocket-Key", key));
        assert_refused(&sim, conn, 400);
    }
    // Two keys are not one valid key.
    let mut headers = upgrade_headers();
    headers.push(("Sec-WebSocket-Key".into(), "AAAAAAAAAAAAAAAAAAAAAA==".into()));
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &headers);
    assert_refused(&sim, conn, 400);
    // Any other 16-byte key is fine.
    let conn =
        handshake_status(&mut sim, "GET", &path_of(&url), &with("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="));
    assert_eq!(sim.status(conn), 101);
    assert_eq!(sim.events(script).iter().filter(|e| e.kind == EventKind::Open).count(), 1);
}

#[test]
fn h400_missing_connection() {
    let (mut sim, _, url) = setup(Config::default());
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &without("Connection"));
    assert_refused(&sim, conn, 400);
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("Connection", "keep-alive"));
    assert_refused(&sim, conn, 400);
    // A token list containing `upgrade` (any case) is a valid Connection header.
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("Connection", "keep-alive, upgrade"));
    assert_eq!(sim.status(conn), 101);
}

#[test]
fn h400_missing_upgrade_header() {
    // Every other WebSocket header is there: a broken handshake, not a plain request.
    let (mut sim, _, url) = setup(Config::default());
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &without("Upgrade"));
    assert_refused(&sim, conn, 400);
}

#[test]
fn h400_bad_upgrade_token() {
    let (mut sim, _, url) = setup(Config::default());
    for token in ["h2c", "websockets", "", "TLS/1.0"] {
        let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("Upgrade", token));
        assert_refused(&sim, conn, 400);
    }
    // The token is case-insensitive.
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("Upgrade", "WebSocket"));
    assert_eq!(sim.status(conn), 101);
}

#[test]
fn h426_unsupported_version() {
    let (mut sim, script, url) = setup(Config::default());
    let cases =
        [with("Sec-WebSocket-Version", "8"), with("Sec-WebSocket-Version", "14"), without("Sec-WebSocket-Version")];
    for headers in cases {
        let conn = handshake_status(&mut sim, "GET", &path_of(&url), &headers);
        assert_refused(&sim, conn, 426);
        assert_eq!(header_of(&sim.response(conn), "Sec-WebSocket-Version").as_deref(), Some("13"));
    }
    assert!(sim.events(script).is_empty());
}

#[test]
fn h431_header_value_over_255_bytes() {
    let (mut sim, _, url) = setup(Config::default());
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("User-Agent", &"a".repeat(256)));
    assert_refused(&sim, conn, 431);
    // Any header counts, not only the ones scripts can read.
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("X-Custom", &"b".repeat(256)));
    assert_refused(&sim, conn, 431);
    // 255 bytes is allowed.
    let conn = handshake_status(&mut sim, "GET", &path_of(&url), &with("User-Agent", &"a".repeat(255)));
    assert_eq!(sim.status(conn), 101);
}

#[test]
fn h431_header_value_decided_before_the_head_completes() {
    let (mut sim, _, url) = setup(Config::default());
    let conn = sim.accept();
    let start = format!("GET {} HTTP/1.1\r\nHost: h\r\nUser-Agent: ", path_of(&url));
    sim.send(conn, start.as_bytes());
    // A client trickling one endless header value is stopped once it passes the limit.
    for _ in 0..4 {
        if sim.closed.contains(&conn) {
            break;
        }
        sim.send(conn, &[b'x'; 100]);
    }
    assert_refused(&sim, conn, 431);
}

fn padded_headers(count: usize, value_len: usize) -> Vec<(String, String)> {
    let mut headers = upgrade_headers();
    for i in 0..count {
        headers.push((format!("X-Pad-{i:02}"), "p".repeat(value_len)));
    }
    headers
}

#[test]
fn h431_head_over_8_kib() {
    let (mut sim, _, url) = setup(Config::default());
    let headers = padded_headers(40, 250);
    let request = head("GET", &path_of(&url), &headers);
    assert!(request.len() > 8 * 1024);
    let conn = sim.try_handshake(&request);
    assert_refused(&sim, conn, 431);

    // Under 8 KiB with the same kind of headers is accepted.
    let headers = padded_headers(28, 250);
    let request = head("GET", &path_of(&url), &headers);
    assert!(request.len() < 8 * 1024);
    let conn = sim.try_handshake(&request);
    assert_eq!(sim.status(conn), 101);
}

#[test]
fn h431_head_over_8_kib_refused_while_incomplete() {
    let (mut sim, _, url) = setup(Config::default());
    let request = head("GET", &path_of(&url), &padded_headers(40, 250));
    let conn = sim.accept();
    // Everything but the final blank line: the head never completes.
    sim.send(conn, &request[..request.len() - 2]);
    assert_refused(&sim, conn, 431);
}

#[test]
fn h503_url_at_its_session_maximum() {
    let config = Config { sessions_per_url: 2, ..Config::default() };
    let (mut sim, script, url) = setup(config);
    let first = sim.connect(script, &url);
    let _second = sim.connect(script, &url);
    let conn = sim.try_handshake(&upgrade_head(&path_of(&url)));
    assert_refused(&sim, conn, 503);
    // Another URL has its own count.
    let other = sim.script();
    let other_url = sim.request_url(other);
    sim.connect(other.script, &other_url);
    // Once a session ends, the URL takes a new one.
    sim.send(first.conn, &close(1000, "bye"));
    let conn = sim.try_handshake(&upgrade_head(&path_of(&url)));
    assert_eq!(sim.status(conn), 101);
}

#[test]
fn h429_rate_limit_per_remote_address() {
    let config = Config { handshakes_per_second: 3, ..Config::default() };
    let (mut sim, _, url) = setup(config);
    let (a, b) = (ip(198, 51, 100, 1), ip(198, 51, 100, 2));
    let target = path_of(&url);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let conn = sim.accept_from(a);
        sim.send(conn, &upgrade_head(&target));
        statuses.push(sim.status(conn));
    }
    assert_eq!(statuses, [101, 101, 101, 429]);
    let last = ConnectionId(sim.wire.keys().last().unwrap().0);
    assert_refused(&sim, last, 429);
    // Another address is not limited by the first one's handshakes.
    let conn = sim.accept_from(b);
    sim.send(conn, &upgrade_head(&target));
    assert_eq!(sim.status(conn), 101);
    // A second later the first address may shake hands again.
    sim.advance_secs(1.0);
    let conn = sim.accept_from(a);
    sim.send(conn, &upgrade_head(&target));
    assert_eq!(sim.status(conn), 101);
}

#[test]
fn h426_plain_request_to_a_websocket_url() {
    let (mut sim, script, url) = setup(Config::default());
    let conn = sim.try_handshake(format!("GET {} HTTP/1.1\r\nHost: h\r\n\r\n", path_of(&url)).as_bytes());
    assert_refused(&sim, conn, 426);
    let conn = sim.try_handshake(
        format!("GET {}?x=1 HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\nConnection: keep-alive\r\n\r\n", path_of(&url))
            .as_bytes(),
    );
    assert_refused(&sim, conn, 426);
    assert!(sim.events(script).is_empty());
}

#[test]
fn h101_with_rfc6455_accept() {
    let (mut sim, script, url) = setup(Config::default());
    let conn = sim.try_handshake(&upgrade_head(&path_of(&url)));
    let response = sim.response(conn);
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    assert_eq!(header_of(&response, "Sec-WebSocket-Accept").as_deref(), Some(RFC_ACCEPT));
    assert_eq!(header_of(&response, "Upgrade").map(|v| v.to_ascii_lowercase()).as_deref(), Some("websocket"));
    assert_eq!(header_of(&response, "Connection").map(|v| v.to_ascii_lowercase()).as_deref(), Some("upgrade"));
    assert!(!sim.closed.contains(&conn));
    let events = sim.events(script);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Open);
    assert_eq!(events[0].data, "", "no path info");
    assert_eq!(events[0].domain, "", "object scope has no domain");
}

#[test]
fn h101_head_delivered_byte_by_byte_with_path_info() {
    let (mut sim, script, url) = setup(Config::default());
    let request = upgrade_head(&format!("{}chat/room?x=1", path_of(&url)));
    let conn = sim.accept();
    for byte in &request {
        assert!(sim.bytes(conn).is_empty(), "no answer before the head is complete");
        sim.send(conn, std::slice::from_ref(byte));
    }
    assert_eq!(sim.status(conn), 101);
    let events = sim.events(script);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind, events[0].data.as_str()), (EventKind::Open, "/chat/room"));
}

#[test]
fn handshake_timeout_drops_an_incomplete_head() {
    let (mut sim, script, url) = setup(Config::default());
    let request = upgrade_head(&path_of(&url));
    let conn = sim.accept();
    let silent = sim.accept();
    sim.advance_secs(5.0);
    // Trickling bytes does not extend the deadline.
    sim.send(conn, &request[..20]);
    sim.advance_secs(4.9);
    assert!(!sim.closed.contains(&conn) && !sim.closed.contains(&silent));
    sim.advance_secs(0.1);
    assert!(sim.closed.contains(&conn), "incomplete head dropped after 10 s");
    assert!(sim.closed.contains(&silent), "silent connection dropped after 10 s");
    assert!(sim.log.contains(&Output::Close(conn)));
    assert!(sim.bytes(conn).is_empty() || sim.status(conn) != 101);
    assert!(sim.events(script).is_empty());
}

#[test]
fn handshake_timeout_does_not_touch_a_completed_handshake() {
    let (mut sim, script, url) = setup(Config::default());
    let client = sim.connect(script, &url);
    sim.advance_secs(10.5);
    assert!(!sim.closed.contains(&client.conn));
    assert_eq!(sim.region.websocket_send(script, client.session, "still here"), Ok(()));
}
