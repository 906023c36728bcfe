//! SPEC §8, HTTP-in on the same lifecycle: every row of its table and every
//! rule of its prose, asserted on the wire and on the script's events.

mod common;

use common::*;
use lsl_websocket::{
    Cause, Config, ConnectionId, ContentType, EventKind, HttpError, HttpMethod, Key, Output, ScriptInfo,
};

/// One parsed response: status, headers (lower-case names), body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Every complete response on the connection's wire, in order (interim 100s included).
fn responses(sim: &Sim, conn: ConnectionId) -> Vec<Response> {
    let mut bytes = sim.bytes(conn);
    let mut out = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = r.parse(bytes) else { break };
        let status = r.code.unwrap();
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let body_len: usize =
            headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        assert!(bytes.len() >= len + body_len, "a response is cut short");
        out.push(Response { status, headers, body: bytes[len..len + body_len].to_vec() });
        bytes = &bytes[len + body_len..];
    }
    assert!(bytes.is_empty(), "bytes after the last response: {:?}", String::from_utf8_lossy(bytes));
    out
}

/// The final responses (no `100 Continue`).
fn finals(sim: &Sim, conn: ConnectionId) -> Vec<Response> {
    responses(sim, conn).into_iter().filter(|r| r.status >= 200).collect()
}

/// The SPEC defaults, with a rate limit that tests sending many requests do not hit.
fn cfg() -> Config {
    Config { handshakes_per_second: 100_000, ..Config::default() }
}

/// A script holding an HTTP-in URL; returns its info and the URL.
fn setup(config: Config) -> (Sim, ScriptInfo, String) {
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    let url = http_url(&mut sim, who);
    (sim, who, url)
}

fn http_url(sim: &mut Sim, who: ScriptInfo) -> String {
    let key = sim.region.request_url(who);
    let event = sim.events(who.script).into_iter().find(|e| e.id == key).expect("answered at once");
    assert_eq!(event.kind, EventKind::Http(HttpMethod::UrlRequestGranted), "{event:?}");
    event.data.to_string()
}

fn req(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n").into_bytes();
    for h in headers {
        out.extend_from_slice(format!("{h}\r\n").as_bytes());
    }
    if !body.is_empty() && !headers.iter().any(|h| h.starts_with("Transfer-Encoding")) {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn post(target: &str, body: &[u8]) -> Vec<u8> {
    req("POST", target, &[], body)
}

/// A new connection that sends `bytes`.
fn open(sim: &mut Sim, bytes: &[u8]) -> ConnectionId {
    let conn = sim.accept();
    sim.send(conn, bytes);
    conn
}

/// The script's `http_request` events for requests (not grants).
fn requests(sim: &mut Sim, script: Key) -> Vec<lsl_websocket::Event> {
    sim.events(script)
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Http(m) if !matches!(m, HttpMethod::UrlRequestGranted | HttpMethod::UrlRequestDenied)))
        .collect()
}

/// The one request event the script has.
fn one_request(sim: &mut Sim, script: Key) -> lsl_websocket::Event {
    let mut events = requests(sim, script);
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

fn refused(sim: &Sim, conn: ConnectionId, status: u16) -> Response {
    let r = finals(sim, conn);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, status, "{r:?}");
    assert_eq!(r[0].header("connection"), Some("close"));
    assert!(sim.closed.contains(&conn), "refusals close");
    r[0].clone()
}

#[test]
fn r404_unknown_revoked_or_other_kind_of_capability() {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = http_url(&mut sim, who);
    let ws = sim.request_url(who);
    let http_path = path_of(&url);
    for target in [
        "/lslhttp/5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a/".to_string(),
        "/lslhttp/not-a-cap/".to_string(),
        // A WebSocket capability is not an HTTP-in URL.
        path_of(&ws).replace("/lslws/", "/lslhttp/"),
        // Nor is a plain URL a secure one.
        http_path.replace("/lslhttp/", "/lslhttps/"),
    ] {
        let conn = open(&mut sim, &req("GET", &target, &[], b""));
        refused(&sim, conn, 404);
    }
    // And an HTTP-in capability does not open a WebSocket.
    let conn = sim.try_handshake(&upgrade_head(&http_path.replace("/lslhttp/", "/lslws/")));
    assert_eq!(sim.status(conn), 404);
    sim.region.release_url(sim.now, who.script, &url).unwrap();
    sim.pump();
    let conn = open(&mut sim, &req("GET", &http_path, &[], b""));
    refused(&sim, conn, 404);
    assert!(requests(&mut sim, who.script).is_empty());
}

#[test]
fn r405_methods_other_than_get_post_put_delete() {
    let (mut sim, who, url) = setup(cfg());
    for method in ["PATCH", "HEAD", "OPTIONS", "TRACE"] {
        let conn = open(&mut sim, &req(method, &path_of(&url), &[], b""));
        let r = refused(&sim, conn, 405);
        assert_eq!(r.header("allow"), Some("GET, POST, PUT, DELETE"));
    }
    for (method, kind) in
        [("GET", HttpMethod::Get), ("POST", HttpMethod::Post), ("PUT", HttpMethod::Put), ("DELETE", HttpMethod::Delete)]
    {
        open(&mut sim, &req(method, &path_of(&url), &[], b""));
        assert_eq!(one_request(&mut sim, who.script).kind, EventKind::Http(kind));
    }
}

#[test]
fn r431_head_over_8_kib_but_long_values_are_cut_not_refused() {
    let (mut sim, who, url) = setup(cfg());
    let pad = format!("X-Pad: {}", "a".repeat(8 * 1024));
    let conn = open(&mut sim, &req("GET", &path_of(&url), &[&pad], b""));
    refused(&sim, conn, 431);
    // Incomplete, too: 8 KiB of head without its end is refused at once.
    let conn = open(&mut sim, format!("GET {} HTTP/1.1\r\n{pad}", path_of(&url)).as_bytes());
    refused(&sim, conn, 431);
    // A 300-byte value is fine for HTTP-in (the WebSocket handshake answers 431).
    let long = format!("X-Long: {}é{}", "b".repeat(254), "c".repeat(46));
    open(&mut sim, &req("GET", &path_of(&url), &[&long], b""));
    let event = one_request(&mut sim, who.script);
    let value = sim.region.http_header(who.script, event.id, "x-long");
    assert_eq!(value, "b".repeat(254), "cut to 255 bytes on a character boundary (é would end at 256)");
}

#[test]
fn body_over_2048_bytes_is_cut_and_the_rest_discarded() {
    let (mut sim, who, url) = setup(cfg());
    let body = vec![b'x'; 5000];
    let conn = open(&mut sim, &req("POST", &path_of(&url), &["Content-Type: text/plain; charset=utf-8"], &body));
    let event = one_request(&mut sim, who.script);
    assert_eq!(event.data.len(), 2048);
    sim.region.http_response(sim.now, who.script, event.id, 200, "ok").unwrap();
    sim.pump();
    assert_eq!(finals(&sim, conn)[0].body, b"ok");
    assert!(!sim.closed.contains(&conn), "the connection lives on (keep-alive)");
}

#[test]
fn body_over_the_limit_is_413_with_the_switch() {
    let config = Config { refuse_large_bodies: true, ..cfg() };
    let (mut sim, who, url) = setup(config);
    // Known from Content-Length: refused before the body, and before `100 Continue`.
    let conn = open(&mut sim, &req("POST", &path_of(&url), &["Content-Length: 10000", "Expect: 100-continue"], b""));
    refused(&sim, conn, 413);
    assert!(responses(&sim, conn).iter().all(|r| r.status != 100));
    // Known only after decoding: 3000 bytes of Latin-1 é are 6000 bytes of UTF-8.
    let conn = open(&mut sim, &post(&path_of(&url), &[0xe9; 2000]));
    refused(&sim, conn, 413);
    // Chunked past the limit.
    let chunk = format!("{:x}\r\n{}\r\n", 5000, "y".repeat(5000));
    let conn = open(&mut sim, &req("POST", &path_of(&url), &["Transfer-Encoding: chunked"], chunk.as_bytes()));
    refused(&sim, conn, 413);
    // Exactly the limit passes.
    open(&mut sim, &post(&path_of(&url), &[b'z'; 2048]));
    assert_eq!(one_request(&mut sim, who.script).data.len(), 2048);
}

#[test]
fn chunked_bodies_are_reassembled_under_the_same_limit_however_split() {
    let (mut sim, who, url) = setup(cfg());
    let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
    let whole = req("POST", &path_of(&url), &["Transfer-Encoding: chunked"], body);
    for cut in (1..whole.len()).step_by(3) {
        let conn = sim.accept();
        sim.send(conn, &whole[..cut]);
        sim.send(conn, &whole[cut..]);
        let event = one_request(&mut sim, who.script);
        assert_eq!(event.data, "hello, world", "cut at {cut}");
        sim.region.http_response(sim.now, who.script, event.id, 200, "").unwrap();
    }
    let big = format!("{:x}\r\n{}\r\n0\r\n\r\n", 3000, "q".repeat(3000));
    open(&mut sim, &req("POST", &path_of(&url), &["Transfer-Encoding: chunked"], big.as_bytes()));
    assert_eq!(one_request(&mut sim, who.script).data.len(), 2048);
    // A malformed chunk is a bad request.
    let conn = open(&mut sim, &req("POST", &path_of(&url), &["Transfer-Encoding: chunked"], b"zz\r\n"));
    refused(&sim, conn, 400);
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let (mut sim, who, url) = setup(cfg());
    let conn = open(&mut sim, &req("POST", &path_of(&url), &["Content-Length: 5", "Expect: 100-continue"], b""));
    let interim = responses(&sim, conn);
    assert_eq!(interim.len(), 1);
    assert_eq!(interim[0].status, 100);
    assert!(requests(&mut sim, who.script).is_empty(), "no event before the body");
    sim.send(conn, b"hello");
    let event = one_request(&mut sim, who.script);
    assert_eq!(event.data, "hello");
    // Without a body there is nothing to continue.
    let conn = open(&mut sim, &req("GET", &path_of(&url), &["Expect: 100-continue"], b""));
    assert!(responses(&sim, conn).is_empty());
}

#[test]
fn sixty_four_in_flight_then_503_with_retry_after() {
    let (mut sim, who, url) = setup(cfg());
    let conns: Vec<_> = (0..64).map(|_| open(&mut sim, &req("GET", &path_of(&url), &[], b""))).collect();
    let events = requests(&mut sim, who.script);
    assert_eq!(events.len(), 64);
    let conn = open(&mut sim, &req("GET", &path_of(&url), &[], b""));
    let r = refused(&sim, conn, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    sim.region.http_response(sim.now, who.script, events[0].id, 200, "").unwrap();
    sim.pump();
    assert_eq!(finals(&sim, conns[0]).len(), 1);
    open(&mut sim, &req("GET", &path_of(&url), &[], b""));
    assert_eq!(requests(&mut sim, who.script).len(), 1, "room again after one answer");
}

#[test]
fn requests_over_the_rate_limit_get_429() {
    let config = Config { handshakes_per_second: 5, ..Config::default() };
    let (mut sim, who, url) = setup(config);
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            let conn = open(&mut sim, &req("GET", &path_of(&url), &["Connection: close"], b""));
            if let Some(e) = requests(&mut sim, who.script).pop() {
                sim.region.http_response(sim.now, who.script, e.id, 200, "").unwrap();
                sim.pump();
            }
            finals(&sim, conn)[0].status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // Another address is not affected.
    let conn = sim.accept_from(ip(198, 51, 100, 7));
    sim.send(conn, &req("GET", &path_of(&url), &[], b""));
    assert_eq!(requests(&mut sim, who.script).len(), 1);
}

#[test]
fn unanswered_requests_time_out_with_504_or_the_configured_answer() {
    let (mut sim, who, url) = setup(cfg());
    let conn = open(&mut sim, &post(&path_of(&url), b"x"));
    let event = one_request(&mut sim, who.script);
    sim.advance_secs(24.9);
    assert!(finals(&sim, conn).is_empty());
    sim.advance_secs(0.2);
    let r = finals(&sim, conn);
    assert_eq!(r[0].status, 504);
    assert_eq!(sim.region.http_response(sim.now, who.script, event.id, 200, "late"), Err(HttpError::Expired));

    let config = Config { http_timeout_status: 500, http_timeout_body: "Script timeout".into(), ..cfg() };
    let (mut sim, _, url) = setup(config);
    let conn = open(&mut sim, &post(&path_of(&url), b"x"));
    sim.advance_secs(26.0);
    let r = finals(&sim, conn);
    assert_eq!((r[0].status, r[0].body.as_slice()), (500, &b"Script timeout"[..]));
}

#[test]
fn revocation_answers_every_request_in_flight_503_at_once() {
    type Revoke = fn(&mut Sim, ScriptInfo);
    let causes: [(Cause, Revoke); 7] = [
        (Cause::ScriptReset, |s, w| s.region.script_reset(s.now, w.script)),
        (Cause::ObjectRezzed, |s, w| s.region.object_rezzed(s.now, w.object)),
        (Cause::RegionChange, |s, w| s.region.object_changed_region(s.now, w.object)),
        (Cause::OwnerChange, |s, w| s.region.owner_changed(s.now, w.object)),
        (Cause::ObjectRemoved, |s, w| s.region.object_removed(s.now, w.object)),
        (Cause::RegionRestart, |s, _| s.region.region_restart(s.now)),
        (Cause::Released, |_, _| {}),
    ];
    for (cause, revoke) in causes {
        let (mut sim, who, url) = setup(cfg());
        // One request the script saw, one it has not read yet, one still sending its body.
        let seen = open(&mut sim, &post(&path_of(&url), b"a"));
        let event = one_request(&mut sim, who.script);
        let queued = open(&mut sim, &post(&path_of(&url), b"b"));
        let partial = format!("POST {} HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", path_of(&url));
        let sending = open(&mut sim, partial.as_bytes());
        match cause {
            Cause::Released => sim.region.release_url(sim.now, who.script, &url).unwrap(),
            _ => revoke(&mut sim, who),
        }
        sim.pump();
        for conn in [seen, queued, sending] {
            refused(&sim, conn, 503);
        }
        assert!(requests(&mut sim, who.script).is_empty(), "{cause:?}: queued requests are dropped");
        assert!(sim.revoked().contains(&(url.clone(), cause)), "{cause:?}: the embedder is told");
        assert_eq!(sim.region.http_response(sim.now, who.script, event.id, 200, ""), Err(HttpError::Revoked));
        let conn = open(&mut sim, &req("GET", &path_of(&url), &[], b""));
        refused(&sim, conn, 404);
        assert_eq!(sim.region.http_requests_in_flight(), 0);
    }
}

#[test]
fn http_response_status_body_and_content_types() {
    let (mut sim, who, url) = setup(cfg());
    let answer = |sim: &mut Sim, status: i32, body: &str, ct: Option<ContentType>| {
        let conn = open(sim, &req("GET", &path_of(&url), &[], b""));
        let event = one_request(sim, who.script);
        if let Some(ct) = ct {
            sim.region.set_content_type(who.script, event.id, ct).unwrap();
        }
        sim.region.http_response(sim.now, who.script, event.id, status, body).unwrap();
        sim.pump();
        finals(sim, conn).remove(0)
    };
    let r = answer(&mut sim, 201, "made ✓", None);
    assert_eq!((r.status, r.body.as_slice()), (201, "made ✓".as_bytes()));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let expected = [
        "text/plain",
        "text/plain", // HTML behind the embedder's policy
        "application/xml",
        "application/xhtml+xml",
        "application/atom+xml",
        "application/json",
        "application/llsd+xml",
        "application/x-www-form-urlencoded",
        "application/rss+xml",
    ];
    for (i, mime) in expected.iter().enumerate() {
        let ct = ContentType::from_lsl(i as i32).unwrap();
        let r = answer(&mut sim, 200, "{}", Some(ct));
        assert_eq!(r.header("content-type"), Some(format!("{mime}; charset=utf-8").as_str()), "{ct:?}");
    }
    assert_eq!(ContentType::from_lsl(9), None);
    for status in [99, 600, -1, 70000] {
        assert_eq!(answer(&mut sim, status, "x", None).status, 500, "{status}");
    }
    let (mut sim, who, url) = setup(Config { allow_html: true, ..cfg() });
    let conn = open(&mut sim, &req("GET", &path_of(&url), &[], b""));
    let event = one_request(&mut sim, who.script);
    sim.region.set_content_type(who.script, event.id, ContentType::Html).unwrap();
    sim.region.http_response(sim.now, who.script, event.id, 200, "<p>").unwrap();
    sim.pump();
    assert_eq!(finals(&sim, conn)[0].header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn bodies_are_transcoded_to_utf8_and_cut_in_utf8() {
    let (mut sim, who, url) = setup(cfg());
    let mut body_of = |ct: Option<&str>, body: &[u8]| {
        let header = ct.map(|c| format!("Content-Type: {c}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        open(&mut sim, &req("POST", &path_of(&url), &headers, body));
        one_request(&mut sim, who.script).data.to_string()
    };
    assert_eq!(body_of(None, b"caf\xe9"), "café", "ISO-8859-1 when no charset is given");
    assert_eq!(body_of(Some("text/plain"), b"caf\xe9"), "café");
    assert_eq!(body_of(Some("text/plain; charset=utf-8"), "café".as_bytes()), "café");
    assert_eq!(body_of(Some("text/plain; charset=UTF-8"), b"a\xffb"), "a\u{FFFD}b");
    assert_eq!(body_of(Some("text/plain; charset=windows-1252"), b"\x80"), "€");
    // 2000 Latin-1 bytes of é are 4000 bytes of UTF-8: cut to 1024 é (2048 bytes).
    let cut = body_of(None, &[0xe9; 2000]);
    assert_eq!((cut.len(), cut.chars().count()), (2048, 1024));
    // An odd limit falls on a character boundary below it.
    let mut odd = String::from("a");
    odd.push_str(&"é".repeat(1500));
    let cut = body_of(Some("text/plain; charset=utf-8"), odd.as_bytes());
    assert_eq!(cut.len(), 2047);
}

#[test]
fn a_request_whose_client_left_is_no_longer_in_flight() {
    let config = Config { http_in_flight: 1, ..cfg() };
    let (mut sim, who, url) = setup(config);
    let conn = open(&mut sim, &post(&path_of(&url), b"a"));
    let event = one_request(&mut sim, who.script);
    sim.peer_closed(conn).unwrap();
    assert_eq!(sim.region.http_requests_in_flight(), 0);
    assert_eq!(sim.region.http_response(sim.now, who.script, event.id, 200, ""), Err(HttpError::ClientGone));
    // The freed place takes the next request.
    open(&mut sim, &post(&path_of(&url), b"b"));
    assert_eq!(one_request(&mut sim, who.script).data, "b");
}

#[test]
fn headers_the_script_reads() {
    let (mut sim, who, url) = setup(cfg());
    let target = format!("{}foo/bar?x=1&y=2", path_of(&url));
    let spoof = ["X-Remote-IP: 6.6.6.6", "X-Path-Info: /evil", "User-Agent: curl/8", "X-Thing: a"];
    open(&mut sim, &req("GET", &target, &spoof, b""));
    let event = one_request(&mut sim, who.script);
    let h = |sim: &Sim, name: &str| sim.region.http_header(who.script, event.id, name);
    assert_eq!(h(&sim, "x-script-url"), url.trim_end_matches('/'));
    assert_eq!(h(&sim, "x-path-info"), "/foo/bar");
    assert_eq!(h(&sim, "x-query-string"), "x=1&y=2");
    assert_eq!(h(&sim, "x-remote-ip"), CLIENT_IP.to_string(), "the client cannot choose it");
    assert_eq!(h(&sim, "user-agent"), "curl/8");
    assert_eq!(h(&sim, "x-thing"), "a");
    assert_eq!(h(&sim, "X-Thing"), "", "names are lower case");
    assert_eq!(h(&sim, "absent"), "");
    let other = sim.script();
    assert_eq!(sim.region.http_header(other.script, event.id, "x-thing"), "", "not another script's");
    // "" 30 s after the event, even while unanswered…
    let config = Config { http_timeout: secs(60.0), ..cfg() };
    let (mut sim2, who2, url2) = setup(config);
    open(&mut sim2, &req("GET", &path_of(&url2), &["X-Thing: a"], b""));
    let e2 = one_request(&mut sim2, who2.script);
    sim2.advance_secs(29.9);
    assert_eq!(sim2.region.http_header(who2.script, e2.id, "x-thing"), "a");
    sim2.advance_secs(0.2);
    assert_eq!(sim2.region.http_header(who2.script, e2.id, "x-thing"), "");
    // …and after the response.
    sim.region.http_response(sim.now, who.script, event.id, 200, "").unwrap();
    assert_eq!(sim.region.http_header(who.script, event.id, "x-thing"), "");
}

#[test]
fn path_info_of_the_url_itself_is_empty() {
    let (mut sim, who, url) = setup(cfg());
    let base = path_of(&url);
    for (target, info, query) in [
        (base.clone(), "", ""),
        (base.trim_end_matches('/').to_string(), "", ""),
        (format!("{base}?q"), "", "q"),
        (format!("{base}a/b/"), "/a/b/", ""),
    ] {
        open(&mut sim, &req("GET", &target, &[], b""));
        let e = one_request(&mut sim, who.script);
        assert_eq!(sim.region.http_header(who.script, e.id, "x-path-info"), info, "{target}");
        assert_eq!(sim.region.http_header(who.script, e.id, "x-query-string"), query, "{target}");
    }
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let (mut sim, who, url) = setup(cfg());
    let mut both = post(&path_of(&url), b"one");
    both.extend(post(&path_of(&url), b"two"));
    both.extend(req("GET", &path_of(&url), &["Connection: close"], b""));
    let conn = open(&mut sim, &both);
    // One at a time: the second is the script's only once the first is answered.
    for (body, answer) in [("one", "1"), ("two", "2"), ("", "3")] {
        let e = one_request(&mut sim, who.script);
        assert_eq!(e.data, body);
        sim.region.http_response(sim.now, who.script, e.id, 200, answer).unwrap();
        sim.pump();
    }
    let bodies: Vec<Vec<u8>> = finals(&sim, conn).into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    assert!(sim.closed.contains(&conn), "Connection: close ends it after its answer");
}

#[test]
fn http_1_0_closes_after_the_response_unless_keep_alive() {
    let (mut sim, who, url) = setup(cfg());
    for (head, closes) in [("", true), ("Connection: keep-alive\r\n", false)] {
        let conn = open(&mut sim, format!("GET {} HTTP/1.0\r\n{head}\r\n", path_of(&url)).as_bytes());
        let e = one_request(&mut sim, who.script);
        sim.region.http_response(sim.now, who.script, e.id, 200, "x").unwrap();
        sim.pump();
        assert_eq!(finals(&sim, conn).len(), 1);
        assert_eq!(sim.closed.contains(&conn), closes, "{head:?}");
    }
}

#[test]
fn typed_errors_for_every_wrong_id() {
    let (mut sim, who, url) = setup(cfg());
    let nobody = sim.key();
    assert_eq!(sim.region.http_response(sim.now, who.script, nobody, 200, ""), Err(HttpError::UnknownRequest));
    assert_eq!(sim.region.set_content_type(who.script, nobody, ContentType::Json), Err(HttpError::UnknownRequest));
    open(&mut sim, &req("GET", &path_of(&url), &[], b""));
    let e = one_request(&mut sim, who.script);
    let other = sim.script();
    assert_eq!(sim.region.http_response(sim.now, other.script, e.id, 200, ""), Err(HttpError::NotYours));
    sim.region.http_response(sim.now, who.script, e.id, 200, "").unwrap();
    assert_eq!(sim.region.http_response(sim.now, who.script, e.id, 200, ""), Err(HttpError::AlreadyAnswered));
    assert_eq!(sim.region.http_response(sim.now, other.script, e.id, 200, ""), Err(HttpError::NotYours));
    assert!(sim.region.release_url(sim.now, other.script, &url).is_err(), "not another script's URL");
    assert!(sim.region.release_url(sim.now, who.script, "http://x/lslhttp/nope/").is_err());
}

#[test]
fn one_budget_for_http_in_and_websocket_urls() {
    let config = Config { region_url_budget: 3, ..Config::default() };
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    assert_eq!(sim.region.free_urls(who.owner), 3);
    http_url(&mut sim, who);
    sim.request_url(who);
    assert_eq!((sim.region.free_urls(who.owner), sim.region.free_websockets(who.owner)), (1, 1));
    let url = http_url(&mut sim, who);
    let key = sim.region.request_url(who);
    let denied = sim.events(who.script).into_iter().find(|e| e.id == key).unwrap();
    assert_eq!((denied.kind, denied.data.as_str()), (EventKind::Http(HttpMethod::UrlRequestDenied), "budget"));
    // Releasing one gives it back.
    sim.region.release_url(sim.now, who.script, url.trim_end_matches('/')).unwrap();
    assert_eq!(sim.region.free_urls(who.owner), 1);
}

#[test]
fn secure_urls_need_a_tls_endpoint() {
    let mut sim = Sim::new();
    let who = sim.script();
    let key = sim.region.request_secure_url(who);
    let e = sim.events(who.script).into_iter().find(|e| e.id == key).unwrap();
    assert_eq!((e.kind, e.data.as_str()), (EventKind::Http(HttpMethod::UrlRequestDenied), "no-secure"));
    let config = Config { secure_authority: Some("sim.example:12043".into()), ..Config::default() };
    let mut sim = Sim::with_config(config);
    let key = sim.region.request_secure_url(who);
    let e = sim.events(who.script).into_iter().find(|e| e.id == key).unwrap();
    assert_eq!(e.kind, EventKind::Http(HttpMethod::UrlRequestGranted));
    assert!(e.data.starts_with("https://sim.example:12043/lslhttps/") && e.data.ends_with('/'), "{}", e.data);
    open(&mut sim, &req("GET", &path_of(&e.data), &[], b""));
    assert_eq!(one_request(&mut sim, who.script).kind, EventKind::Http(HttpMethod::Get));
}

#[test]
fn a_full_script_queue_holds_the_request_and_pauses_reading() {
    let config = Config { event_queue: 2, ..cfg() };
    let (mut sim, who, url) = setup(config);
    let conns: Vec<_> = (0..3).map(|_| open(&mut sim, &post(&path_of(&url), b"q"))).collect();
    assert!(sim.paused.contains(&conns[2]), "the third waits for room");
    assert_eq!(sim.region.pending_events(who.script), 2);
    let events = requests(&mut sim, who.script);
    assert_eq!(events.len(), 3, "nothing lost: the held one arrives once there is room");
    for e in events {
        sim.region.http_response(sim.now, who.script, e.id, 200, "").unwrap();
    }
    sim.pump();
    for conn in conns {
        assert_eq!(finals(&sim, conn).len(), 1);
        assert!(!sim.paused.contains(&conn));
    }
}

#[test]
fn a_client_that_does_not_read_its_answers_stops_being_read() {
    let config = Config { outgoing_buffer: 1024, ..cfg() };
    let (mut sim, who, url) = setup(config);
    let conn = sim.accept();
    sim.hold.insert(conn);
    let mut pipelined = Vec::new();
    for _ in 0..4 {
        pipelined.extend(post(&path_of(&url), b"q"));
    }
    sim.send(conn, &pipelined);
    let answer = "a".repeat(800);
    for _ in 0..2 {
        let e = one_request(&mut sim, who.script);
        sim.region.http_response(sim.now, who.script, e.id, 200, &answer).unwrap();
        sim.pump();
    }
    assert!(sim.paused.contains(&conn), "over the outgoing buffer: no further request is read");
    assert!(requests(&mut sim, who.script).is_empty());
    // Once the client reads, the next requests are served in order.
    sim.hold.remove(&conn);
    sim.take(conn);
    sim.pump();
    assert!(!sim.paused.contains(&conn));
    for _ in 0..2 {
        let e = one_request(&mut sim, who.script);
        sim.region.http_response(sim.now, who.script, e.id, 200, "b").unwrap();
        sim.pump();
    }
    assert_eq!(finals(&sim, conn).len(), 4);
}

#[test]
fn slow_heads_and_stalled_bodies_are_dropped() {
    let (mut sim, who, url) = setup(cfg());
    let conn = open(&mut sim, format!("GET {} HTTP/1.1\r\nHo", path_of(&url)).as_bytes());
    sim.advance_secs(10.1);
    assert!(sim.closed.contains(&conn) && sim.bytes(conn).is_empty());
    let partial = format!("POST {} HTTP/1.1\r\nContent-Length: 10\r\n\r\n123", path_of(&url));
    let conn = open(&mut sim, partial.as_bytes());
    sim.advance_secs(5.0);
    sim.send(conn, b"45");
    sim.advance_secs(9.0);
    assert!(!sim.closed.contains(&conn), "a body that progresses keeps its connection");
    sim.advance_secs(1.1);
    assert!(sim.closed.contains(&conn));
    assert_eq!(sim.region.http_requests_in_flight(), 0);
    assert!(requests(&mut sim, who.script).is_empty());
}

#[test]
fn websocket_and_http_in_share_the_port_and_the_lifecycle() {
    let (mut sim, who, url) = setup(cfg());
    let ws = sim.request_url(who);
    let client = sim.connect(who.script, &ws);
    let conn = open(&mut sim, &post(&path_of(&url), b"hi"));
    assert_eq!(one_request(&mut sim, who.script).data, "hi");
    let mark = sim.mark();
    sim.region.script_reset(sim.now, who.script);
    sim.pump();
    refused(&sim, conn, 503);
    assert!(
        sim.closed.contains(&client.conn) || sim.log_since(mark).contains(&Output::Close(client.conn)) || {
            let frames = parse_frames(split_head(sim.bytes(client.conn)).1);
            frames.last().is_some_and(|f| f.close_code() == Some(1001))
        }
    );
    let revoked: Vec<String> = sim.revoked().into_iter().map(|(u, _)| u).collect();
    assert!(revoked.contains(&url) && revoked.contains(&ws), "{revoked:?}");
}
