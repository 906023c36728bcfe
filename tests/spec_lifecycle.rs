//! SPEC §4: every revocation cause, and the URL budget, deny reasons and
//! `llGetWebsocketHeader` of SPEC §3.

mod common;

use common::*;
use lsl_websocket::{
    Cause, Config, DenyReason, EventKind, Key, Output, ReleaseError, ScriptInfo, SendError, WebsocketRequest,
};

/// Every header name `llGetWebsocketHeader` answers.
const HEADER_NAMES: [&str; 7] =
    ["x-script-url", "x-path-info", "x-query-string", "x-remote-ip", "user-agent", "origin", "sec-websocket-protocol"];

/// One script with a URL, an open session, and three client messages queued
/// for it but not yet drained; and a bystander in another object with the same.
struct World {
    sim: Sim,
    a: ScriptInfo,
    a_url: String,
    a_client: Client,
    b: ScriptInfo,
    b_url: String,
    b_client: Client,
}

fn world() -> World {
    let mut sim = Sim::with_config(Config { owner_url_budget: Some(3), ..Config::default() });
    let a = sim.script();
    let b = sim.script();
    let a_url = sim.request_url(a);
    let b_url = sim.request_url(b);
    let a_client = sim.connect(a.script, &a_url);
    let b_client = sim.connect(b.script, &b_url);
    for i in 0..3 {
        sim.send(a_client.conn, &text(&format!("a{i}")));
        sim.send(b_client.conn, &text(&format!("b{i}")));
    }
    assert_eq!(sim.region.pending_events(a.script), 3);
    assert_eq!(sim.region.pending_events(b.script), 3);
    World { sim, a, a_url, a_client, b, b_url, b_client }
}

/// Asserts everything SPEC §4 says about a revoked URL with one session.
fn assert_revoked(sim: &mut Sim, who: ScriptInfo, url: &str, client: Client, cause: Cause, mark: usize) {
    // The embedder is told, once.
    let notices: Vec<_> =
        sim.log_since(mark).iter().filter(|o| matches!(o, Output::Revoked { url: u, .. } if u == url)).collect();
    assert_eq!(notices, [&Output::Revoked { url: url.to_string(), cause }]);
    // The session got 1001 with the reason naming the cause.
    let closes = sim.close_frames(client.conn);
    assert_eq!(closes, [(Some(1001), cause.reason().to_string())]);
    // Nothing of the URL reaches the script: not the queued texts, no WS_CLOSE.
    assert_eq!(sim.region.pending_events(who.script), 0);
    assert!(sim.events(who.script).is_empty());
    // The stale session key is dead for every call.
    assert_eq!(sim.region.websocket_send(who.script, client.session, "x"), Err(SendError::NoSession));
    for name in HEADER_NAMES {
        assert_eq!(sim.region.websocket_header(who.script, client.session, name), "");
    }
    // The URL does not come back: a new handshake gets 404, releasing it again fails.
    let conn = sim.try_handshake(&upgrade_head(&path_of(url)));
    assert_eq!(sim.status(conn), 404);
    assert_eq!(sim.region.release_websocket(sim.now, who.script, url), Err(ReleaseError::UnknownUrl));
    // A frame the client sent before seeing the close is not delivered; its echo ends the transport.
    assert!(!sim.closed.contains(&client.conn));
    sim.send(client.conn, &text("too late"));
    sim.send(client.conn, &close(1001, ""));
    assert!(sim.closed.contains(&client.conn));
    assert!(sim.events(who.script).is_empty(), "no event of the URL, ever");
}

/// The bystander's URL, session and queued messages are untouched.
fn assert_untouched(w: &mut World) {
    let events = w.sim.events(w.b.script);
    let texts: Vec<_> = events.iter().map(|e| (e.kind, e.data.as_str())).collect();
    assert_eq!(texts, [(EventKind::Text, "b0"), (EventKind::Text, "b1"), (EventKind::Text, "b2")]);
    assert!(w.sim.close_frames(w.b_client.conn).is_empty());
    assert_eq!(w.sim.region.websocket_send(w.b.script, w.b_client.session, "still here"), Ok(()));
    let conn = w.sim.try_handshake(&upgrade_head(&path_of(&w.b_url)));
    assert_eq!(w.sim.status(conn), 101);
    assert!(w.sim.revoked().iter().all(|(url, _)| *url != w.b_url));
}

/// Runs one §4 row: `trigger` revokes A's URL for `cause`.
fn revocation_row(cause: Cause, trigger: impl FnOnce(&mut Sim, ScriptInfo, &str)) -> World {
    let mut w = world();
    let free_before = w.sim.region.free_websockets(w.a.owner);
    assert_eq!(free_before, 2);
    let mark = w.sim.mark();
    trigger(&mut w.sim, w.a, &w.a_url);
    w.sim.pump();
    // The budget is given back.
    assert_eq!(w.sim.region.free_websockets(w.a.owner), free_before + 1);
    let (a, url, client) = (w.a, w.a_url.clone(), w.a_client);
    assert_revoked(&mut w.sim, a, &url, client, cause, mark);
    w
}

#[test]
fn row_script_reset() {
    let mut w = revocation_row(Cause::ScriptReset, |sim, a, _| sim.region.script_reset(sim.now, a.script));
    assert_untouched(&mut w);
    // The script can ask again and gets a new URL.
    let fresh = w.sim.request_url(w.a);
    assert_ne!(fresh, w.a_url);
}

#[test]
fn row_script_deleted() {
    let mut w = revocation_row(Cause::ScriptReset, |sim, a, _| sim.region.script_removed(sim.now, a.script));
    assert_untouched(&mut w);
}

#[test]
fn row_object_rezzed() {
    let mut w = revocation_row(Cause::ObjectRezzed, |sim, a, _| sim.region.object_rezzed(sim.now, a.object));
    assert_untouched(&mut w);
}

#[test]
fn row_region_change() {
    let mut w = revocation_row(Cause::RegionChange, |sim, a, _| sim.region.object_changed_region(sim.now, a.object));
    assert_untouched(&mut w);
}

#[test]
fn row_owner_change() {
    let mut w = revocation_row(Cause::OwnerChange, |sim, a, _| sim.region.owner_changed(sim.now, a.object));
    assert_untouched(&mut w);
}

#[test]
fn row_object_removed() {
    let mut w = revocation_row(Cause::ObjectRemoved, |sim, a, _| sim.region.object_removed(sim.now, a.object));
    assert_untouched(&mut w);
}

#[test]
fn row_released() {
    let mut w = revocation_row(Cause::Released, |sim, a, url| {
        sim.region.release_websocket(sim.now, a.script, url).unwrap();
    });
    assert_untouched(&mut w);
}

#[test]
fn row_region_restart() {
    let mut w = world();
    let free_b = w.sim.region.free_websockets(w.b.owner);
    let mark = w.sim.mark();
    let (a, b, a_url, b_url, a_client, b_client) = (w.a, w.b, w.a_url.clone(), w.b_url.clone(), w.a_client, w.b_client);
    w.sim.region.region_restart(w.sim.now);
    w.sim.pump();
    // Every URL goes, with the budget given back.
    assert_eq!(w.sim.region.free_websockets(a.owner), 3);
    assert_eq!(w.sim.region.free_websockets(b.owner), free_b + 1);
    assert_revoked(&mut w.sim, a, &a_url, a_client, Cause::RegionRestart, mark);
    assert_revoked(&mut w.sim, b, &b_url, b_client, Cause::RegionRestart, mark);
    // Every notice is for the restart (the region endpoint, if any, is revoked too).
    assert!(w.sim.revoked().iter().all(|(_, cause)| *cause == Cause::RegionRestart));
    // After the restart, URLs are granted again, with new capabilities.
    let fresh = w.sim.request_url(a);
    assert!(fresh != a_url && fresh != b_url);
}

// ------------------------------------------------------------------ scope of a revocation

#[test]
fn object_causes_revoke_every_script_of_the_object_and_nothing_else() {
    type Trigger = fn(&mut Sim, Key);
    let triggers: [(Cause, Trigger); 4] = [
        (Cause::ObjectRezzed, |sim, o| sim.region.object_rezzed(sim.now, o)),
        (Cause::RegionChange, |sim, o| sim.region.object_changed_region(sim.now, o)),
        (Cause::OwnerChange, |sim, o| sim.region.owner_changed(sim.now, o)),
        (Cause::ObjectRemoved, |sim, o| sim.region.object_removed(sim.now, o)),
    ];
    for (cause, trigger) in triggers {
        let mut sim = Sim::new();
        let first = sim.script();
        let sibling = sim.script_in(first.object, first.owner);
        // Same owner, other object: not affected.
        let neighbour_object = sim.key();
        let neighbour = sim.script_in(neighbour_object, first.owner);
        let urls = [sim.request_url(first), sim.request_url(first), sim.request_url(sibling)];
        let neighbour_url = sim.request_url(neighbour);
        let free = sim.region.free_websockets(first.owner);
        trigger(&mut sim, first.object);
        sim.pump();
        let mut revoked = sim.revoked();
        revoked.sort_by(|x, y| x.0.cmp(&y.0));
        let mut expected: Vec<_> = urls.iter().map(|u| (u.clone(), cause)).collect();
        expected.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(revoked, expected, "{cause:?}");
        assert_eq!(sim.region.free_websockets(first.owner), free + 3);
        let conn = sim.try_handshake(&upgrade_head(&path_of(&neighbour_url)));
        assert_eq!(sim.status(conn), 101, "{cause:?}");
    }
}

#[test]
fn script_reset_leaves_sibling_scripts_alone() {
    let mut sim = Sim::new();
    let first = sim.script();
    let sibling = sim.script_in(first.object, first.owner);
    let first_url = sim.request_url(first);
    let sibling_url = sim.request_url(sibling);
    let client = sim.connect(sibling.script, &sibling_url);
    sim.send(client.conn, &text("kept"));
    sim.region.script_reset(sim.now, first.script);
    sim.pump();
    assert_eq!(sim.revoked(), [(first_url, Cause::ScriptReset)]);
    assert_eq!(sim.texts(sibling.script), ["kept"]);
    assert!(sim.close_frames(client.conn).is_empty());
}

#[test]
fn release_purges_only_that_urls_events() {
    let mut sim = Sim::new();
    let who = sim.script();
    let kept_url = sim.request_url(who);
    let gone_url = sim.request_url(who);
    let kept = sim.connect(who.script, &kept_url);
    let gone = sim.connect(who.script, &gone_url);
    // Interleaved in the queue.
    for i in 0..3 {
        sim.send(kept.conn, &text(&format!("kept{i}")));
        sim.send(gone.conn, &text(&format!("gone{i}")));
    }
    sim.region.release_websocket(sim.now, who.script, &gone_url).unwrap();
    sim.pump();
    let events = sim.events(who.script);
    assert!(events.iter().all(|e| e.id == kept.session), "{events:?}");
    let texts: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(texts, ["kept0", "kept1", "kept2"]);
}

#[test]
fn queued_close_of_an_ended_session_is_purged_too() {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = sim.request_url(who);
    let client = sim.connect(who.script, &url);
    sim.send(client.conn, &text("hi"));
    sim.send(client.conn, &close(1000, "bye"));
    assert_eq!(sim.region.pending_events(who.script), 2, "WS_TEXT and WS_CLOSE queued");
    sim.region.release_websocket(sim.now, who.script, &url).unwrap();
    sim.pump();
    assert!(sim.events(who.script).is_empty());
    // The session had already ended: no second close on its wire.
    assert_eq!(sim.close_frames(client.conn), [(Some(1000), "bye".to_string())]);
}

#[test]
fn queued_grant_is_purged_when_the_url_is_released_at_once() {
    let mut sim = Sim::new();
    let who = sim.script();
    let request = sim.region.request_websocket(who, &WebsocketRequest::default());
    sim.pump();
    // The script has not seen its grant yet; the embedder has (it is the only way to know the URL here).
    let url = {
        let grant = sim.region.poll_event(who.script).unwrap();
        assert_eq!((grant.id, grant.kind), (request, EventKind::UrlGranted));
        grant.data.to_string()
    };
    let client = sim.connect(who.script, &url);
    sim.send(client.conn, &text("x"));
    sim.region.object_removed(sim.now, who.object);
    sim.pump();
    assert_eq!(sim.region.poll_event(who.script), None);
}

#[test]
fn revoking_a_paused_session_resumes_reading_for_the_close_echo() {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = sim.request_url(who);
    let client = sim.connect(who.script, &url);
    let mut burst = Vec::new();
    for i in 0..80 {
        burst.extend(text(&format!("{i}")));
    }
    sim.send(client.conn, &burst);
    assert!(sim.paused.contains(&client.conn));
    sim.region.script_reset(sim.now, who.script);
    sim.pump();
    assert!(!sim.paused.contains(&client.conn), "the close echo must be readable");
    assert_eq!(sim.close_frames(client.conn), [(Some(1001), "script reset".to_string())]);
    assert!(sim.events(who.script).is_empty(), "held messages are not delivered after the reset");
    sim.send(client.conn, &close(1001, ""));
    assert!(sim.closed.contains(&client.conn));
}

#[test]
fn revocation_closes_every_session_of_the_url() {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = sim.request_url(who);
    let clients: Vec<_> = (0..3).map(|_| sim.connect(who.script, &url)).collect();
    sim.region.owner_changed(sim.now, who.object);
    sim.pump();
    for c in clients {
        assert_eq!(sim.close_frames(c.conn), [(Some(1001), "owner change".to_string())]);
        assert_eq!(sim.region.websocket_send(who.script, c.session, "x"), Err(SendError::NoSession));
    }
    assert!(sim.events(who.script).is_empty());
}

#[test]
fn release_of_a_url_not_ones_own_fails_and_changes_nothing() {
    let mut sim = Sim::new();
    let owner = sim.script();
    let other = sim.script();
    let url = sim.request_url(owner);
    assert_eq!(sim.region.release_websocket(sim.now, other.script, &url), Err(ReleaseError::UnknownUrl));
    assert_eq!(sim.region.release_websocket(sim.now, owner.script, "ws://nowhere/"), Err(ReleaseError::UnknownUrl));
    // A URL with path info is not the URL itself.
    let longer = format!("{url}extra");
    assert_eq!(sim.region.release_websocket(sim.now, owner.script, &longer), Err(ReleaseError::UnknownUrl));
    sim.pump();
    assert!(sim.revoked().is_empty());
    let conn = sim.try_handshake(&upgrade_head(&path_of(&url)));
    assert_eq!(sim.status(conn), 101);
}

#[test]
fn an_embedder_release_closes_1001_with_its_own_reason() {
    let mut w = world();
    let mark = w.sim.mark();
    let reason = "script gone: not registered again within 60 s";
    let too_long = "x".repeat(124);
    let (a, url, client) = (w.a, w.a_url.clone(), w.a_client);
    assert_eq!(
        w.sim.region.release_websocket_with_reason(w.sim.now, a.script, &url, &too_long),
        Err(ReleaseError::ReasonTooLong(124))
    );
    w.sim.region.release_websocket_with_reason(w.sim.now, a.script, &url, reason).unwrap();
    w.sim.pump();
    let notices: Vec<_> = w
        .sim
        .log_since(mark)
        .iter()
        .filter(|o| matches!(o, Output::Revoked { url: u, .. } if *u == url))
        .cloned()
        .collect();
    assert_eq!(notices, [Output::Revoked { url: url.clone(), cause: Cause::Released }]);
    assert_eq!(w.sim.close_frames(client.conn), [(Some(1001), reason.to_string())]);
    assert!(w.sim.events(a.script).is_empty(), "nothing of the URL reaches the script");
    let conn = w.sim.try_handshake(&upgrade_head(&path_of(&url)));
    assert_eq!(w.sim.status(conn), 404);
    assert_untouched(&mut w);
}

// ------------------------------------------------------------------ grants, budget, deny reasons

fn denied(sim: &mut Sim, who: ScriptInfo, request: &WebsocketRequest, reason: DenyReason) {
    let free = sim.region.free_websockets(who.owner);
    let (key, event) = sim.request(who, request);
    assert_eq!(event.id, key);
    assert_eq!(event.kind, EventKind::UrlDenied);
    assert_eq!(event.data, reason.as_str());
    assert_eq!(event.domain, request.domain.as_deref().unwrap_or(""));
    assert_eq!(sim.region.free_websockets(who.owner), free, "a denial takes no budget");
    assert!(sim.events(who.script).is_empty(), "denied, not queued: nothing more comes");
}

#[test]
fn granted_url_has_the_spec_shape() {
    let mut sim = Sim::new();
    let who = sim.script();
    let (key, event) = sim.request(who, &WebsocketRequest::default());
    assert_eq!((event.id, event.kind, event.domain.as_str()), (key, EventKind::UrlGranted, ""));
    let url = event.data.to_string();
    let cap = url.strip_prefix("ws://127.0.0.1:8787/lslws/").and_then(|r| r.strip_suffix('/')).expect(&url);
    let parsed: Key = cap.parse().unwrap();
    assert_eq!(parsed.to_string(), cap, "lower-case hyphenated UUID");
    assert!(!parsed.is_null());
    let other = sim.request_url(who);
    assert_ne!(other, url);
}

#[test]
fn denied_budget_region_wide() {
    let mut sim = Sim::with_config(Config { region_url_budget: 2, ..Config::default() });
    let (a, b, c) = (sim.script(), sim.script(), sim.script());
    let a_url = sim.request_url(a);
    sim.request_url(b);
    assert_eq!(sim.region.free_websockets(c.owner), 0);
    denied(&mut sim, c, &WebsocketRequest::default(), DenyReason::Budget);
    // Freed budget is available to a new request.
    sim.region.release_websocket(sim.now, a.script, &a_url).unwrap();
    assert_eq!(sim.region.free_websockets(c.owner), 1);
    sim.request_url(c);
}

#[test]
fn denied_budget_per_owner() {
    let mut sim = Sim::with_config(Config { owner_url_budget: Some(2), ..Config::default() });
    let first = sim.script();
    let second_object = sim.key();
    let second = sim.script_in(second_object, first.owner);
    let third_object = sim.key();
    let third = sim.script_in(third_object, first.owner);
    let stranger = sim.script();
    assert_eq!(sim.region.free_websockets(first.owner), 2);
    sim.request_url(first);
    sim.request_url(second);
    assert_eq!(sim.region.free_websockets(first.owner), 0);
    denied(&mut sim, third, &WebsocketRequest::default(), DenyReason::Budget);
    assert_eq!(sim.region.free_websockets(stranger.owner), 2);
    sim.request_url(stranger);
}

#[test]
fn denied_too_many() {
    let mut sim = Sim::with_config(Config { urls_per_script: 2, ..Config::default() });
    let who = sim.script();
    sim.request_url(who);
    sim.request_url(who);
    assert!(sim.region.free_websockets(who.owner) > 0, "budget is not the reason");
    denied(&mut sim, who, &WebsocketRequest::default(), DenyReason::TooMany);
    // Another script of the same object still may.
    let sibling = sim.script_in(who.object, who.owner);
    sim.request_url(sibling);
}

#[test]
fn denied_no_secure_and_granted_when_secure() {
    let mut sim = Sim::new();
    let who = sim.script();
    let secure = WebsocketRequest { secure: true, ..WebsocketRequest::default() };
    denied(&mut sim, who, &secure, DenyReason::NoSecure);

    let config = Config { secure_authority: Some("sim.example.org:443".into()), ..Config::default() };
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    let (_, event) = sim.request(who, &secure);
    assert_eq!(event.kind, EventKind::UrlGranted);
    assert!(event.data.starts_with("wss://sim.example.org:443/lslws/"), "{:?}", event.data);
    let client = sim.connect(who.script, &event.data);
    assert_eq!(sim.region.websocket_header(who.script, client.session, "x-script-url"), event.data.as_str());
}

#[test]
fn denied_bad_option() {
    let mut sim = Sim::new();
    let who = sim.script();
    let over_cap = WebsocketRequest { max_message: Some(2049), ..WebsocketRequest::default() };
    denied(&mut sim, who, &over_cap, DenyReason::BadOption);
    let zero = WebsocketRequest { max_message: Some(0), ..WebsocketRequest::default() };
    denied(&mut sim, who, &zero, DenyReason::BadOption);
    let domain_in_object_scope = WebsocketRequest { domain: Some("chat".into()), ..WebsocketRequest::default() };
    denied(&mut sim, who, &domain_in_object_scope, DenyReason::BadOption);
    // At the cap is fine.
    let at_cap = WebsocketRequest { max_message: Some(2048), ..WebsocketRequest::default() };
    assert_eq!(sim.request(who, &at_cap).1.kind, EventKind::UrlGranted);
}

#[test]
fn deny_reason_precedence_budget_is_checked_after_the_options() {
    // A request that is both invalid and over budget is reported as invalid:
    // fixing the budget would not make it succeed.
    let mut sim = Sim::with_config(Config { region_url_budget: 0, ..Config::default() });
    let who = sim.script();
    let bad = WebsocketRequest { max_message: Some(1 << 20), ..WebsocketRequest::default() };
    denied(&mut sim, who, &bad, DenyReason::BadOption);
    denied(&mut sim, who, &WebsocketRequest::default(), DenyReason::Budget);
}

// ------------------------------------------------------------------ llGetWebsocketHeader

#[test]
fn websocket_header_for_every_listed_name() {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = sim.request_url(who);
    let mut headers = upgrade_headers();
    headers.push(("User-Agent".into(), "TestClient/1.0".into()));
    headers.push(("Origin".into(), "https://example.org".into()));
    headers.push(("Sec-WebSocket-Protocol".into(), "chat, superchat".into()));
    let target = format!("{}room/7?x=1&y=two", path_of(&url));
    let remote = ip(203, 0, 113, 9);
    let (client, open) = sim.connect_with(who.script, &target, &headers, remote);
    assert_eq!(open.data, "/room/7");
    let get = |sim: &Sim, name: &str| sim.region.websocket_header(who.script, client.session, name);
    let expected = [
        ("x-script-url", url.as_str()),
        ("x-path-info", "/room/7"),
        ("x-query-string", "x=1&y=two"),
        ("x-remote-ip", "203.0.113.9"),
        ("user-agent", "TestClient/1.0"),
        ("origin", "https://example.org"),
        ("sec-websocket-protocol", "chat, superchat"),
    ];
    assert_eq!(expected.map(|(n, _)| n), HEADER_NAMES);
    for (name, value) in expected {
        assert_eq!(get(&sim, name), value, "{name}");
    }
    // Names not in the list, even real request headers, answer "".
    for name in ["host", "sec-websocket-key", "x-unknown", ""] {
        assert_eq!(get(&sim, name), "", "{name}");
    }
    // Another script cannot read this script's session.
    let other = sim.script();
    assert_eq!(sim.region.websocket_header(other.script, client.session, "user-agent"), "");
    // Once the session is gone, every name answers "".
    sim.send(client.conn, &close(1000, ""));
    for name in HEADER_NAMES {
        assert_eq!(get(&sim, name), "", "{name} after close");
    }
}

#[test]
fn websocket_header_absent_headers_are_empty() {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = sim.request_url(who);
    let client = sim.connect(who.script, &url);
    let get = |sim: &Sim, name: &str| sim.region.websocket_header(who.script, client.session, name);
    for name in ["x-path-info", "x-query-string", "user-agent", "origin", "sec-websocket-protocol"] {
        assert_eq!(get(&sim, name), "", "{name}");
    }
    assert_eq!(get(&sim, "x-script-url"), url);
    assert_eq!(get(&sim, "x-remote-ip"), CLIENT_IP.to_string());
}

#[test]
fn a_queue_emptied_by_reset_announces_its_next_event() {
    use lsl_websocket::{Config, Key, Output, Region, ScriptInfo, SeededEntropy, WebsocketRequest};
    let t0 = std::time::Instant::now();
    let mut region = Region::new(Config::default(), Box::new(SeededEntropy::new(9)), t0);
    let me = ScriptInfo {
        script: Key::from_random_bytes([1; 16]),
        object: Key::from_random_bytes([2; 16]),
        owner: Key::from_random_bytes([3; 16]),
    };
    let announced = |region: &mut Region| {
        let mut n = 0;
        while let Some(out) = region.poll_output() {
            n += usize::from(out == Output::Events(me.script));
        }
        n
    };
    region.request_websocket(me, &WebsocketRequest::default());
    assert_eq!(announced(&mut region), 1);
    // The embedder never polled the script before it was reset.
    region.script_reset(t0, me.script);
    assert_eq!(region.pending_events(me.script), 0);
    announced(&mut region);
    region.request_websocket(me, &WebsocketRequest::default());
    assert_eq!(announced(&mut region), 1, "the new grant is announced");
}
