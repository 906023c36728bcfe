//! Region scope through the public API (`SPEC.md` §3, §4, §6, §7): the shared
//! region endpoint, listeners on domains, the envelope in both directions, the
//! lifecycle of listeners and endpoint sessions, limits, and CLEP-channel
//! collisions. No sockets, a fake clock, no sleeps.

mod region_harness;

use std::time::Duration;

use lsl_websocket::ConnectionId;
use lsl_websocket::{
    Cause, CloseError, Config, Event, EventKind, Input, Key, ReleaseError, Scope, ScriptInfo, SendError,
    WebsocketRequest, clep,
};
use region_harness::{Harness, Wire, close_frame, object, region_request, script, text_frame};

fn none() -> Vec<String> {
    Vec::new()
}

fn texts(events: &[Event]) -> Vec<(EventKind, String, String)> {
    events.iter().map(|e| (e.kind, e.domain.to_string(), e.data.to_string())).collect()
}

fn object_request() -> WebsocketRequest {
    WebsocketRequest::default()
}

// ------------------------------------------------------------ §6, client → region

/// §6 `sub,<domain>`: every listener gets `WS_OPEN` with one session key and the
/// path info; the client then receives broadcasts; a later listener opens too.
#[test]
fn sub_opens_to_every_listener() {
    let mut h = Harness::new(Config::default());
    let (a, b, other) = (script(1, 1), script(2, 2), script(3, 3));
    h.listen_ok(a, "chat");
    h.listen_ok(b, "chat");
    h.listen_ok(other, "news");
    let url = h.region.region_url();
    let (c, status) = h.connect_to(&url, "lobby/1?x=2");
    assert_eq!(status, 101);

    h.send(c, "sub,chat");
    assert_eq!(h.texts(c), none(), "a successful sub has no answer");
    let ea = h.event(a.script);
    let eb = h.event(b.script);
    for e in [&ea, &eb] {
        assert_eq!((e.kind, e.domain.as_str(), e.data.as_str()), (EventKind::Open, "chat", "/lobby/1"));
    }
    assert_eq!(ea.id, eb.id, "one session key per (connection, domain)");
    assert!(h.events(other.script).is_empty(), "listeners of other domains hear nothing");
    assert_eq!(h.region.websocket_header(a.script, ea.id, "x-path-info"), "/lobby/1");
    assert_eq!(h.region.websocket_header(a.script, ea.id, "x-query-string"), "x=2");
    assert_eq!(h.region.websocket_header(a.script, ea.id, "x-script-url"), url);

    // A second sub on the same domain changes nothing.
    h.send(c, "sub,chat");
    assert_eq!(h.texts(c), none());
    assert!(h.events(a.script).is_empty() && h.events(b.script).is_empty());

    // Subscribed: broadcasts arrive.
    assert_eq!(h.region.websocket_broadcast(a.script, "chat", "hi"), Ok(1));
    assert_eq!(h.texts(c), ["msg,chat,hi"]);

    // A listener arriving later opens to the existing subscriber with the same key.
    let late = script(4, 4);
    let request = h.region.request_websocket(late, &region_request("chat"));
    let events = h.events(late.script);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((events[0].id, events[0].kind), (request, EventKind::UrlGranted));
    assert_eq!((events[1].id, events[1].kind, events[1].data.as_str()), (ea.id, EventKind::Open, "/lobby/1"));
}

/// §6 `uns,<domain>`: listeners get `WS_CLOSE` "1000 unsubscribed", broadcasts
/// stop, the session key dies.
#[test]
fn uns_closes_to_every_listener() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(b, "chat");
    let c = h.connect();
    let key = h.subscribe(c, "chat", a.script);
    h.events(b.script);

    h.send(c, "uns,chat");
    assert_eq!(h.texts(c), none(), "uns has no answer");
    for s in [a, b] {
        let e = h.event(s.script);
        assert_eq!(
            (e.id, e.kind, e.domain.as_str(), e.data.as_str()),
            (key, EventKind::Close, "chat", "1000 unsubscribed")
        );
    }
    assert_eq!(h.region.websocket_broadcast(a.script, "chat", "x"), Ok(0));
    assert_eq!(h.texts(c), none());
    assert_eq!(h.region.websocket_send(a.script, key, "x"), Err(SendError::NoSession));

    // uns of a domain not subscribed is ignored.
    h.send(c, "uns,chat");
    h.send(c, "uns,elsewhere");
    assert_eq!(h.texts(c), none());
    assert!(h.events(a.script).is_empty());
    assert!(!h.is_closed(c));
}

/// §6 `msg,<domain>,<payload>`: every listener on the domain (and no other) gets
/// `WS_TEXT`; a subscribed client is known by the key its sub opened.
#[test]
fn msg_reaches_every_listener_of_the_domain() {
    let mut h = Harness::new(Config::default());
    let (a, b, other) = (script(1, 1), script(2, 2), script(3, 3));
    h.listen_ok(a, "chat");
    h.listen_ok(b, "chat");
    h.listen_ok(other, "news");

    let c = h.connect();
    h.send(c, "msg,chat,hello");
    assert_eq!(h.texts(c), none());
    let ea = h.event(a.script);
    let eb = h.event(b.script);
    assert_eq!(texts(std::slice::from_ref(&ea)), [(EventKind::Text, "chat".into(), "hello".into())]);
    assert_eq!(ea, eb, "same key, domain and text at both listeners");
    assert!(h.events(other.script).is_empty());

    // The same client keeps its key on the domain; the listener can answer it.
    h.send(c, "msg,chat,again");
    assert_eq!(h.event(a.script).id, ea.id);
    h.events(b.script);
    assert_eq!(h.region.websocket_send(a.script, ea.id, "pong"), Ok(()));
    assert_eq!(h.texts(c), ["msg,chat,pong"]);

    // A subscriber is known by its subscription's key.
    let s = h.connect();
    let key = h.subscribe(s, "chat", a.script);
    h.events(b.script);
    h.send(s, "msg,chat,from subscriber");
    assert_eq!(h.event(a.script).id, key);
    assert_ne!(key, ea.id, "one key per connection");
}

/// §6 `to,<object-key>,<domain>,<payload>`: only the listeners in that object.
#[test]
fn to_reaches_only_listeners_in_the_object() {
    let mut h = Harness::new(Config::default());
    let (a1, a2, b, a3) = (script(1, 1), script(2, 1), script(3, 2), script(4, 1));
    h.listen_ok(a1, "chat");
    h.listen_ok(a2, "chat");
    h.listen_ok(b, "chat");
    h.listen_ok(a3, "news");
    let c = h.connect();

    h.send(c, &format!("to,{},chat,for object 1", object(1)));
    assert_eq!(h.texts(c), none());
    let e1 = h.event(a1.script);
    let e2 = h.event(a2.script);
    assert_eq!((e1.kind, e1.domain.as_str(), e1.data.as_str()), (EventKind::Text, "chat", "for object 1"));
    assert_eq!(e1, e2);
    assert!(h.events(b.script).is_empty(), "a listener in another object hears nothing");
    assert!(h.events(a3.script).is_empty(), "a listener on another domain in the object hears nothing");

    h.send(c, &format!("to,{},chat,for object 2", object(2)));
    assert_eq!(h.event(b.script).data, "for object 2");
    assert!(h.events(a1.script).is_empty() && h.events(a2.script).is_empty());

    // The object key may be written in upper case.
    h.send(c, &format!("to,{},news,shout", object(1).to_string().to_uppercase()));
    assert_eq!(h.event(a3.script).data, "shout");

    // An object with no listener on the domain.
    h.send(c, &format!("to,{},chat,nobody", object(9)));
    assert_eq!(h.texts(c), ["err,chat,no-listener"]);
    h.send(c, &format!("to,{},news,nobody", object(2)));
    assert_eq!(h.texts(c), ["err,news,no-listener"]);
    assert!(h.events(b.script).is_empty());
}

// ------------------------------------------------------------ §6, region → client

/// §6 `msg` from `llWebsocketSend`: to that one client, on the key's domain.
#[test]
fn send_reaches_one_client() {
    let mut h = Harness::new(Config::default());
    let (a, other) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(other, "news");
    let c1 = h.connect();
    let c2 = h.connect();
    let k1 = h.subscribe(c1, "chat", a.script);
    let _k2 = h.subscribe(c2, "chat", a.script);

    assert_eq!(h.region.websocket_send(a.script, k1, "only you"), Ok(()));
    assert_eq!(h.texts(c1), ["msg,chat,only you"]);
    assert_eq!(h.texts(c2), none());

    // Only a listener of the key's domain may use it.
    assert_eq!(h.region.websocket_send(other.script, k1, "x"), Err(SendError::NoSession));
    let kn = h.subscribe(c1, "news", other.script);
    assert_eq!(h.region.websocket_send(a.script, kn, "x"), Err(SendError::NoSession));
    assert_eq!(h.region.websocket_send(other.script, kn, "news"), Ok(()));
    assert_eq!(h.texts(c1), ["msg,news,news"]);
    assert_eq!(h.region.websocket_send(a.script, Key::default(), "x"), Err(SendError::NoSession));
}

/// §6 `msg` from `llWebsocketBroadcast`: every subscriber, one shared frame;
/// clients that only sent on the domain, and subscribers of other domains, get nothing.
#[test]
fn broadcast_reaches_every_subscriber_with_one_frame() {
    let mut h = Harness::new(Config::default());
    let (a, other) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(other, "news");
    let (c1, c2, c3, c4) = (h.connect(), h.connect(), h.connect(), h.connect());
    h.subscribe(c1, "chat", a.script);
    h.subscribe(c2, "chat", a.script);
    h.send(c3, "msg,chat,just talking");
    h.events(a.script);
    h.subscribe(c4, "news", other.script);

    assert_eq!(h.region.websocket_broadcast(a.script, "chat", "to all"), Ok(2));
    // Take the frames before the harness does, to compare their buffers.
    let f1 = h.raw_chunk(c1).expect("frame for c1");
    let f2 = h.raw_chunk(c2).expect("frame for c2");
    assert_eq!(f1, f2);
    assert_eq!(f1.as_ptr(), f2.as_ptr(), "one frame shared by every subscriber");
    assert_eq!(&f1[2..], b"msg,chat,to all");
    assert!(h.raw_chunk(c3).is_none() && h.raw_chunk(c4).is_none());
    assert_eq!(h.texts(c3), none());
    assert_eq!(h.texts(c4), none());

    assert_eq!(h.region.websocket_broadcast(other.script, "chat", "x"), Err(SendError::BadDomain));
    assert_eq!(h.region.websocket_broadcast(a.script, "news", "x"), Err(SendError::BadDomain));
    assert_eq!(h.region.websocket_broadcast(a.script, "nowhere", "x"), Err(SendError::BadDomain));
}

/// §6 `err,<domain>,no-listener`: sub, msg and to on a domain nobody listens on.
#[test]
fn err_no_listener() {
    let mut h = Harness::new(Config::default());
    let a = script(1, 1);
    h.listen_ok(a, "chat");
    let c = h.connect();
    h.send(c, "sub,nobody");
    h.send(c, "msg,nobody,x");
    h.send(c, &format!("to,{},nobody,x", object(1)));
    assert_eq!(h.texts(c), ["err,nobody,no-listener"; 3]);

    // A domain whose last listener left has no listener either.
    h.region.release_domain(h.now, a.script, "chat").unwrap();
    h.send(c, "msg,chat,x");
    h.send(c, "sub,chat");
    assert_eq!(h.texts(c), ["err,chat,no-listener"; 2]);
    assert!(h.events(a.script).is_empty());
    assert!(!h.is_closed(c));
}

/// §6 `err,<domain>,busy` for a listener whose 64-event queue is full, once
/// the busy grace (SPEC §5, 1 s) ran out: no event for it, the others still
/// get the message. (The subscription-limit `busy` is in
/// [`limit_subscriptions_per_session`].)
#[test]
fn err_busy_when_a_listener_queue_is_full() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(b, "chat");
    let c = h.connect();
    for i in 0..64 {
        h.send(c, &format!("msg,chat,{i}"));
    }
    assert_eq!(h.texts(c), none());
    assert_eq!(h.region.pending_events(a.script), 64);
    h.events(b.script);

    h.send(c, "msg,chat,overflow");
    assert_eq!(h.texts(c), none(), "it waits for room first");
    h.advance_and_tick(Duration::from_secs(1));
    assert_eq!(h.texts(c), ["err,chat,busy"]);
    assert_eq!(h.event(b.script).data, "overflow", "a listener with room still gets it");
    let queued = h.events(a.script);
    assert_eq!(queued.len(), 64);
    assert!(queued.iter().all(|e| e.data != "overflow"), "no event for the full listener");

    // Drained: delivered again, no error.
    h.send(c, "msg,chat,after");
    assert_eq!(h.texts(c), none());
    assert_eq!(h.event(a.script).data, "after");
    assert_eq!(h.event(b.script).data, "after");
    assert!(!h.is_closed(c));
}

/// One connection's region messages, as `n` frames in one buffer.
fn burst(domain: &str, n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| text_frame(&format!("msg,{domain},{i}"))).collect()
}

/// Feeds `bytes` to `c` in `chunk`-sized reads, running an echo script on
/// `listener` after every read (it drains its queue and echoes each text).
fn feed_with_echo(h: &mut Harness, c: ConnectionId, listener: lsl_websocket::ScriptInfo, bytes: &[u8], chunk: usize) {
    for part in bytes.chunks(chunk) {
        h.send_raw(c, part);
        for event in h.events(listener.script) {
            if event.kind == EventKind::Text {
                h.region.websocket_send(listener.script, event.id, &event.data).unwrap();
            }
        }
    }
}

/// SPEC §5: a burst that a draining script absorbs never yields `busy`,
/// however it is split into reads: 200 and 2,000 pipelined messages, in one
/// write, byte by byte and in odd chunks, are all echoed, in order.
#[test]
fn a_pipelined_region_burst_to_a_draining_echo_is_answered_in_order() {
    for n in [200, 2_000] {
        for chunk in [usize::MAX, 1, 7, 1000] {
            let mut h = Harness::new(Config::default());
            let echo = script(1, 1);
            h.listen_ok(echo, "echo");
            let c = h.connect();
            let bytes = burst("echo", n);
            feed_with_echo(&mut h, c, echo, &bytes, chunk.min(bytes.len()));
            let expected: Vec<String> = (0..n).map(|i| format!("msg,echo,{i}")).collect();
            assert_eq!(h.texts(c), expected, "{n} messages in reads of {chunk}");
        }
    }
}

/// SPEC §5: a listener that never drains stalls the connection once, for the
/// busy grace; then `busy` comes at once for it, and another domain on the
/// same connection keeps flowing.
#[test]
fn a_stuck_listener_costs_one_grace_then_busy_at_once_and_other_domains_flow() {
    let mut h = Harness::new(Config::default());
    let (stuck, news) = (script(1, 1), script(2, 2));
    h.listen_ok(stuck, "stuck");
    h.listen_ok(news, "news");
    let c = h.connect();
    h.send_raw(c, &burst("stuck", 64));
    assert_eq!(h.region.pending_events(stuck.script), 64);

    // The 65th waits: the connection is paused, the rest of its input held.
    let sent_at = h.now;
    let mut rest = burst("stuck", 1);
    rest.extend(text_frame("msg,news,while stalled"));
    h.send_raw(c, &rest);
    assert_eq!(h.texts(c), none());
    assert!(h.events(news.script).is_empty(), "held behind the waiting message");
    assert_eq!(h.region.poll_timeout(), Some(sent_at + Duration::from_secs(1)), "one grace");
    h.advance_and_tick(Duration::from_millis(999));
    assert_eq!(h.texts(c), none());
    h.advance_and_tick(Duration::from_millis(1));
    assert_eq!(h.texts(c), ["err,stuck,busy"]);
    assert_eq!(h.event(news.script).data, "while stalled", "the held input flows after the stall");

    // Stalled: answered at once, and nothing waits.
    for i in 0..3 {
        h.send(c, &format!("msg,stuck,again {i}"));
        assert_eq!(h.texts(c), ["err,stuck,busy"]);
        h.send(c, &format!("msg,news,{i}"));
        assert_eq!(h.event(news.script).data, format!("{i}").as_str());
    }
    assert_eq!(h.region.pending_events(stuck.script), 64, "nothing past the full queue");
    assert!(!h.is_closed(c));
}

/// §6 `err,<domain>,too-large`: over one listener's `WS_MAX_MESSAGE`; the others
/// still get it. The region cap is the payload's, not the frame's.
#[test]
fn err_too_large_per_listener() {
    let mut h = Harness::new(Config::default());
    let (small, big) = (script(1, 1), script(2, 2));
    let granted = h.request(small, &WebsocketRequest { max_message: Some(8), ..region_request("chat") });
    assert_eq!(granted.kind, EventKind::UrlGranted);
    h.listen_ok(big, "chat");
    let c = h.connect();

    h.send(c, "msg,chat,12345678");
    assert_eq!(h.texts(c), none());
    assert_eq!(h.event(small.script).data, "12345678");
    assert_eq!(h.event(big.script).data, "12345678");

    h.send(c, "msg,chat,123456789");
    assert_eq!(h.texts(c), ["err,chat,too-large"]);
    assert!(h.events(small.script).is_empty());
    let e = h.event(big.script);
    assert_eq!(e.data, "123456789");

    h.send(c, &format!("to,{},chat,123456789", object(1)));
    assert_eq!(h.texts(c), ["err,chat,too-large"]);
    assert!(h.events(small.script).is_empty());
    assert_eq!(h.region.websocket_send(small.script, e.id, "123456789"), Err(SendError::TooLarge));
    assert_eq!(h.region.websocket_broadcast(small.script, "chat", "123456789"), Err(SendError::TooLarge));

    // At the region cap (2048 bytes of payload) a message passes, one byte more is too large,
    // and the envelope head does not count against the cap, even the longest `to` head.
    let long_domain = "d".repeat(64);
    let wide = script(3, 3);
    h.listen_ok(wide, &long_domain);
    let full = "ü".repeat(1024);
    h.send(c, &format!("to,{},{long_domain},{full}", object(3)));
    assert_eq!(h.texts(c), none());
    assert_eq!(h.event(wide.script).data, full.as_str());
    h.send(c, &format!("msg,{long_domain},{full}x"));
    assert_eq!(h.texts(c), [format!("err,{long_domain},too-large")]);
    assert!(!h.is_closed(c));
}

/// §6 `err,,bad-frame`: a malformed head is answered and the connection keeps working.
#[test]
fn err_bad_frame_keeps_the_connection() {
    let mut h = Harness::new(Config::default());
    let a = script(1, 1);
    h.listen_ok(a, "chat");
    let c = h.connect();
    let long = format!("sub,{}", "x".repeat(65));
    let no_payload = format!("to,{},chat", object(1));
    let bad = [
        "",
        "hello",
        "sub",
        "uns",
        "msg",
        "to",
        "msg,chat",
        "sub,",
        "msg,,x",
        "sub,a,b",
        "to,not-a-key,chat,x",
        no_payload.as_str(),
        "MSG,chat,x",
        "Sub,chat",
        "sub,chat\r",
        "msg,ch\nat,x",
        long.as_str(),
        "err,chat,busy",
        " sub,chat",
    ];
    for frame in bad {
        h.send(c, frame);
        assert_eq!(h.texts(c), ["err,,bad-frame"], "{frame:?}");
        assert!(!h.is_closed(c), "{frame:?}");
    }
    assert!(h.events(a.script).is_empty(), "no malformed frame reached a listener");
    h.send(c, "msg,chat,still here");
    assert_eq!(h.event(a.script).data, "still here");
    h.send(c, "sub,chat");
    assert_eq!(h.event(a.script).kind, EventKind::Open);
    assert_eq!(h.texts(c), none());
}

/// §6 `uns,<domain>` from the region: only when the last listener goes, only to
/// subscribers (not to clients that merely sent on the domain).
#[test]
fn uns_when_the_last_listener_goes() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(b, "chat");
    let (sub, talker) = (h.connect(), h.connect());
    let key = h.subscribe(sub, "chat", a.script);
    h.events(b.script);
    h.send(talker, "msg,chat,hi");
    h.events(a.script);
    h.events(b.script);

    h.region.release_domain(h.now, a.script, "chat").unwrap();
    assert_eq!(h.texts(sub), none(), "b still listens");
    assert_eq!(h.region.websocket_broadcast(b.script, "chat", "still"), Ok(1));
    assert_eq!(h.texts(sub), ["msg,chat,still"]);

    h.region.release_domain(h.now, b.script, "chat").unwrap();
    assert_eq!(h.texts(sub), ["uns,chat"]);
    assert_eq!(h.texts(talker), none(), "never subscribed");
    assert!(!h.is_closed(sub) && !h.is_closed(talker));

    // The subscription is over: a new listener does not open to it, its key is dead.
    let c = script(3, 3);
    h.listen_ok(c, "chat");
    assert!(h.events(c.script).is_empty());
    assert_eq!(h.region.websocket_send(c.script, key, "x"), Err(SendError::NoSession));
    assert_eq!(h.region.websocket_broadcast(c.script, "chat", "x"), Ok(0));
    h.send(sub, "msg,chat,back");
    let e = h.event(c.script);
    assert_ne!(e.id, key, "keys are never reused");
}

/// Payloads are everything after the head: commas, newlines, NUL, any Unicode
/// and the empty string arrive intact in both directions, also split across
/// reads and fragments.
#[test]
fn payloads_arrive_intact() {
    let mut h = Harness::new(Config::default());
    let domain = "service:chat ✓";
    let a = script(1, 1);
    h.listen_ok(a, domain);
    let c = h.connect();
    let key = h.subscribe(c, domain, a.script);
    let payloads = [
        "a,b,c".to_string(),
        ",,,".to_string(),
        "trailing,".to_string(),
        "line1\nline2\r\nline3".to_string(),
        String::new(),
        "\0nul\u{7f}".to_string(),
        "msg,chat,nested".to_string(),
        "emoji 😀 ü ∑ 中文 \u{10ffff}".to_string(),
        "ü".repeat(1024),
    ];
    for p in &payloads {
        h.send(c, &format!("msg,{domain},{p}"));
        let e = h.event(a.script);
        assert_eq!((e.id, e.kind, e.domain.as_str(), e.data.as_str()), (key, EventKind::Text, domain, p.as_str()));

        h.region.websocket_send(a.script, key, p).unwrap();
        assert_eq!(h.texts(c), [format!("msg,{domain},{p}")]);
        h.region.websocket_broadcast(a.script, domain, p).unwrap();
        assert_eq!(h.texts(c), [format!("msg,{domain},{p}")]);
    }

    // Byte by byte.
    let text = format!("msg,{domain},split, 😀\n");
    for byte in text_frame(&text) {
        h.send_raw(c, &[byte]);
    }
    assert_eq!(h.event(a.script).data, "split, 😀\n");

    // Fragmented, with a multi-byte character cut between fragments.
    let text = format!("msg,{domain},frag😀ment");
    let cut = text.len() - 6;
    let mut bytes = region_harness::client_frame(0x01, &text.as_bytes()[..cut], [1, 2, 3, 4]);
    bytes.extend(region_harness::client_frame(0x80, &text.as_bytes()[cut..], [5, 6, 7, 8]));
    h.send_raw(c, &bytes);
    assert_eq!(h.event(a.script).data, "frag😀ment");
}

// ------------------------------------------------------------ lifecycle (§4 on region scope)

#[derive(Debug, Clone, Copy)]
enum Revocation {
    ScriptReset,
    ObjectRezzed,
    ObjectChangedRegion,
    OwnerChanged,
    ObjectRemoved,
    ReleaseEndpoint,
    ReleaseDomain,
}

const REVOCATIONS: [Revocation; 7] = [
    Revocation::ScriptReset,
    Revocation::ObjectRezzed,
    Revocation::ObjectChangedRegion,
    Revocation::OwnerChanged,
    Revocation::ObjectRemoved,
    Revocation::ReleaseEndpoint,
    Revocation::ReleaseDomain,
];

fn revoke(h: &mut Harness, how: Revocation, victim: ScriptInfo, domain: &str) {
    let now = h.now;
    match how {
        Revocation::ScriptReset => h.region.script_reset(now, victim.script),
        Revocation::ObjectRezzed => h.region.object_rezzed(now, victim.object),
        Revocation::ObjectChangedRegion => h.region.object_changed_region(now, victim.object),
        Revocation::OwnerChanged => h.region.owner_changed(now, victim.object),
        Revocation::ObjectRemoved => h.region.object_removed(now, victim.object),
        Revocation::ReleaseEndpoint => {
            let url = h.region.region_url();
            h.region.release_websocket(now, victim.script, &url).unwrap();
            assert_eq!(h.region.release_websocket(now, victim.script, &url), Err(ReleaseError::UnknownUrl));
        }
        Revocation::ReleaseDomain => {
            h.region.release_domain(now, victim.script, domain).unwrap();
            assert_eq!(h.region.release_domain(now, victim.script, domain), Err(ReleaseError::UnknownUrl));
        }
    }
    h.drain();
}

/// §4 on region scope, for every revocation cause: delivery stops at once,
/// queued events of the listener are purged, its keys and broadcasts fail,
/// `uns` goes out for the domain that lost its last listener and not for the one
/// that kept another, and the client connection stays open.
#[test]
fn every_revocation_stops_delivery_and_purges_queued_events() {
    for how in REVOCATIONS {
        let mut h = Harness::new(Config::default());
        let (victim, survivor) = (script(1, 1), script(2, 2));
        h.listen_ok(victim, "chat");
        h.listen_ok(victim, "news");
        h.listen_ok(survivor, "chat");
        let c = h.connect();
        let kc = h.subscribe(c, "chat", victim.script);
        h.events(survivor.script);
        let kn = h.subscribe(c, "news", victim.script);

        // Queued, not yet read by the victim.
        h.send(c, "msg,chat,queued");
        h.send(c, "msg,news,queued");
        h.region.websocket_send(victim.script, kc, "before").unwrap();
        assert_eq!(h.texts(c), ["msg,chat,before"]);
        h.events(survivor.script);
        assert_eq!(h.region.pending_events(victim.script), 2, "{how:?}");

        revoke(&mut h, how, victim, "chat");

        let whole_script = !matches!(how, Revocation::ReleaseDomain);
        let left = h.events(victim.script);
        if whole_script {
            assert_eq!(left, [], "{how:?}: every queued event of the listeners purged");
            // news lost its only listener; chat keeps the survivor.
            assert_eq!(h.texts(c), ["uns,news"], "{how:?}");
            assert_eq!(h.region.websocket_send(victim.script, kn, "x"), Err(SendError::NoSession), "{how:?}");
        } else {
            assert_eq!(texts(&left), [(EventKind::Text, "news".into(), "queued".into())], "{how:?}: other domain kept");
            assert_eq!(h.texts(c), none(), "{how:?}: chat keeps the survivor, news the victim");
            assert_eq!(h.region.websocket_send(victim.script, kn, "x"), Ok(()));
            assert_eq!(h.texts(c), ["msg,news,x"]);
        }
        assert_eq!(h.region.websocket_send(victim.script, kc, "x"), Err(SendError::NoSession), "{how:?}");
        assert_eq!(h.region.websocket_broadcast(victim.script, "chat", "x"), Err(SendError::BadDomain), "{how:?}");

        // Delivery stops at once: the survivor alone hears the next message.
        h.send(c, "msg,chat,after");
        assert_eq!(h.texts(c), none(), "{how:?}");
        assert!(h.events(victim.script).is_empty(), "{how:?}");
        let e = h.event(survivor.script);
        assert_eq!((e.id, e.data.as_str()), (kc, "after"), "{how:?}: the client's chat session lives on");
        assert_eq!(h.region.websocket_broadcast(survivor.script, "chat", "b"), Ok(1));
        assert_eq!(h.texts(c), ["msg,chat,b"]);
        assert!(!h.is_closed(c), "{how:?}: region sessions stay open");
        assert!(h.revoked.iter().all(|(_, cause)| *cause != Cause::RegionRestart));
    }
}

/// `llReleaseWebsocket` with the endpoint URL releases every domain of the
/// script, not other scripts'; with an unknown URL it fails.
#[test]
fn release_endpoint_url_releases_all_domains_of_the_script() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 1));
    for d in ["x", "y", "z"] {
        h.listen_ok(a, d);
    }
    h.listen_ok(b, "x");
    let url = h.region.region_url();
    assert_eq!(
        h.region.release_websocket(h.now, b.script, "ws://127.0.0.1:8787/lslws/nope/"),
        Err(ReleaseError::UnknownUrl)
    );
    h.region.release_websocket(h.now, a.script, &url).unwrap();
    let c = h.connect();
    for d in ["y", "z"] {
        h.send(c, &format!("msg,{d},m"));
        assert_eq!(h.texts(c), [format!("err,{d},no-listener")]);
    }
    h.send(c, "msg,x,m");
    assert_eq!(h.texts(c), none());
    assert!(h.events(a.script).is_empty());
    assert_eq!(h.event(b.script).data, "m");
    assert_eq!(h.region.release_domain(h.now, a.script, "x"), Err(ReleaseError::UnknownUrl));
}

/// §4 region restart: every endpoint session is closed 1001 `region restart`,
/// every listener and URL revoked, queued events purged, a new endpoint minted
/// that works while the old one answers 404.
#[test]
fn region_restart_closes_endpoint_sessions_and_mints_a_new_endpoint() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(b, "news");
    let own = h.request(a, &object_request());
    assert_eq!(own.kind, EventKind::UrlGranted);
    let (own_client, status) = h.connect_to(own.data.as_str(), "");
    assert_eq!(status, 101);
    h.events(a.script);

    let (subscriber, talker, idle) = (h.connect(), h.connect(), h.connect());
    let key = h.subscribe(subscriber, "chat", a.script);
    h.send(talker, "msg,news,queued");
    h.send(subscriber, "msg,chat,queued");
    assert_eq!(h.region.pending_events(a.script), 1);
    assert_eq!(h.region.pending_events(b.script), 1);
    let old = h.region.region_url();

    h.region.region_restart(h.now);
    h.drain();
    for c in [subscriber, talker, idle, own_client] {
        assert_eq!(h.frames(c), [Wire::Close(Some(1001), "region restart".into())], "{c:?}");
    }
    assert!(h.events(a.script).is_empty() && h.events(b.script).is_empty(), "queued events purged, no WS_CLOSE");
    assert!(h.revoked.contains(&(old.clone(), Cause::RegionRestart)));
    assert!(h.revoked.contains(&(own.data.to_string(), Cause::RegionRestart)));
    assert_eq!(h.region.websocket_send(a.script, key, "x"), Err(SendError::NoSession));
    assert_eq!(h.region.websocket_broadcast(a.script, "chat", "x"), Err(SendError::BadDomain));

    // The clients echo the close (or time out) and are let go.
    h.send_raw(subscriber, &close_frame(1001, ""));
    assert!(h.is_closed(subscriber));
    h.advance(h.region.config().close_timeout + Duration::from_millis(1));
    h.region.handle_input(h.now, Input::Timeout).unwrap();
    h.drain();
    assert!(h.is_closed(talker) && h.is_closed(idle) && h.is_closed(own_client));

    let new = h.region.region_url();
    assert_ne!(new, old);
    assert_eq!(h.connect_to(&old, "").1, 404);
    let c = h.connect();
    h.send(c, "sub,chat");
    assert_eq!(h.texts(c), ["err,chat,no-listener"], "listeners did not survive");
    let answer = h.listen(a, "chat");
    assert_eq!((answer.kind, answer.data.as_str()), (EventKind::UrlGranted, new.as_str()));
    let fresh = h.subscribe(c, "chat", a.script);
    assert_ne!(fresh, key);
    h.send(c, "msg,chat,new life");
    assert_eq!(h.event(a.script).data, "new life");
    assert_eq!(h.region.websocket_broadcast(a.script, "chat", "hello"), Ok(1));
    assert_eq!(h.texts(c), ["msg,chat,hello"]);
}

/// Revoking an object (every object-level cause) closes its object-scope
/// sessions 1001 but leaves region-endpoint sessions open: the client only
/// learns `uns` for domains that lost their last listener.
#[test]
fn revoking_an_object_leaves_region_sessions_open() {
    let causes: [(Revocation, Cause); 4] = [
        (Revocation::ObjectRezzed, Cause::ObjectRezzed),
        (Revocation::ObjectChangedRegion, Cause::RegionChange),
        (Revocation::OwnerChanged, Cause::OwnerChange),
        (Revocation::ObjectRemoved, Cause::ObjectRemoved),
    ];
    for (how, cause) in causes {
        let mut h = Harness::new(Config::default());
        let (a, b) = (script(1, 1), script(2, 2));
        h.listen_ok(a, "chat");
        h.listen_ok(b, "news");
        let own = h.request(a, &object_request());
        let (own_client, _) = h.connect_to(own.data.as_str(), "");
        h.events(a.script);
        let c = h.connect();
        h.subscribe(c, "chat", a.script);
        let kn = h.subscribe(c, "news", b.script);

        revoke(&mut h, how, a, "chat");
        assert_eq!(h.frames(own_client), [Wire::Close(Some(1001), cause.reason().into())], "{how:?}");
        assert!(h.revoked.contains(&(own.data.to_string(), cause)), "{how:?}");
        assert!(!h.revoked.iter().any(|(url, _)| *url == h.region.region_url()), "{how:?}: the endpoint lives");
        assert_eq!(h.texts(c), ["uns,chat"], "{how:?}");
        assert!(!h.is_closed(c), "{how:?}");
        h.send(c, "msg,news,still open");
        let e = h.event(b.script);
        assert_eq!((e.id, e.data.as_str()), (kn, "still open"));
        assert!(h.events(a.script).is_empty());
    }
}

/// A region-endpoint connection that ends (peer gone, or a close frame) closes
/// its subscribed domains' sessions at their listeners; unsubscribed contacts
/// never opened, so they do not close.
#[test]
fn connection_close_reaches_listeners_of_subscribed_domains() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(a, "news");
    h.listen_ok(b, "news");
    let c = h.connect();
    let kc = h.subscribe(c, "chat", a.script);
    let kn = h.subscribe(c, "news", a.script);
    h.events(b.script);
    let talker = h.connect();
    h.send(talker, "msg,news,hi");
    h.events(a.script);
    h.events(b.script);

    h.peer_closed(c);
    let ea = h.events(a.script);
    assert_eq!(ea.len(), 2);
    assert_eq!(
        (ea[0].id, ea[0].kind, ea[0].domain.as_str(), ea[0].data.as_str()),
        (kc, EventKind::Close, "chat", "1006 connection lost")
    );
    assert_eq!((ea[1].id, ea[1].kind, ea[1].domain.as_str()), (kn, EventKind::Close, "news"));
    let eb = h.event(b.script);
    assert_eq!((eb.id, eb.kind), (kn, EventKind::Close));
    assert_eq!(h.region.websocket_send(a.script, kc, "x"), Err(SendError::NoSession));

    h.peer_closed(talker);
    assert!(h.events(a.script).is_empty() && h.events(b.script).is_empty(), "never subscribed, never opened");

    let c2 = h.connect();
    let k2 = h.subscribe(c2, "chat", a.script);
    h.send_raw(c2, &close_frame(1000, "bye"));
    assert_eq!(h.frames(c2), [Wire::Close(Some(1000), "bye".into())]);
    assert!(h.is_closed(c2));
    let e = h.event(a.script);
    assert_eq!((e.id, e.kind, e.data.as_str()), (k2, EventKind::Close, "1000 bye"));
}

/// `llWebsocketClose` on a region key ends that domain's session only: the
/// client gets `uns,<domain>`, every listener `WS_CLOSE`, the connection and its
/// other domains live on.
#[test]
fn websocket_close_on_a_region_key_ends_one_domain() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(a, "news");
    h.listen_ok(b, "chat");
    let c = h.connect();
    let kc = h.subscribe(c, "chat", a.script);
    h.events(b.script);
    let kn = h.subscribe(c, "news", a.script);

    assert_eq!(h.region.websocket_close(h.now, a.script, kc, 999, ""), Err(CloseError::BadCode(999)));
    assert_eq!(
        h.region.websocket_close(h.now, a.script, kc, 4000, &"r".repeat(124)),
        Err(CloseError::ReasonTooLong(124))
    );
    h.region.websocket_close(h.now, a.script, kc, 4000, "kick").unwrap();
    assert_eq!(h.texts(c), ["uns,chat"]);
    assert!(!h.is_closed(c));
    for s in [a, b] {
        let e = h.event(s.script);
        assert_eq!((e.id, e.kind, e.domain.as_str(), e.data.as_str()), (kc, EventKind::Close, "chat", "4000 kick"));
    }
    assert_eq!(h.region.websocket_close(h.now, a.script, kc, 1000, ""), Err(CloseError::NoSession));
    assert_eq!(h.region.websocket_send(b.script, kc, "x"), Err(SendError::NoSession));
    assert_eq!(h.region.websocket_broadcast(b.script, "chat", "x"), Ok(0));
    assert_eq!(h.region.websocket_send(a.script, kn, "x"), Ok(()));
    assert_eq!(h.texts(c), ["msg,news,x"]);
}

/// A subscriber that cannot take a broadcast is closed 1008 `too slow`, never
/// skipped; a send that does not fit returns `WS_ERR_BUSY`.
#[test]
fn slow_subscriber_is_closed_and_send_is_busy() {
    let mut h = Harness::new(Config { outgoing_buffer: 256, ..Config::default() });
    let a = script(1, 1);
    h.listen_ok(a, "chat");
    let (slow, fast) = (h.connect(), h.connect());
    let ks = h.subscribe(slow, "chat", a.script);
    let kf = h.subscribe(fast, "chat", a.script);
    let text = "x".repeat(100);
    let mut fast_got = 0;
    for _ in 0..2 {
        assert_eq!(h.region.websocket_broadcast(a.script, "chat", &text), Ok(2));
        while h.region.poll_transmit(fast).is_some() {
            fast_got += 1;
        }
    }
    assert_eq!(h.region.websocket_send(a.script, ks, &text), Err(SendError::Busy));
    assert_eq!(h.region.websocket_broadcast(a.script, "chat", &text), Ok(1));
    while h.region.poll_transmit(fast).is_some() {
        fast_got += 1;
    }
    assert_eq!(fast_got, 3);
    let frames = h.frames(slow);
    let msg = Wire::Text(format!("msg,chat,{text}"));
    assert_eq!(frames, [msg.clone(), msg, Wire::Close(Some(1008), "too slow".into())]);
    assert!(h.is_closed(slow));
    let e = h.event(a.script);
    assert_eq!((e.id, e.kind, e.data.as_str()), (ks, EventKind::Close, "1008 too slow"));
    assert_eq!(h.region.websocket_send(a.script, kf, "ok"), Ok(()));
}

// ------------------------------------------------------------ limits

/// `Config::subscriptions_per_session`: the next `sub` is answered `busy`;
/// `msg` is not a subscription; after an `uns` there is room again.
#[test]
fn limit_subscriptions_per_session() {
    let mut h = Harness::new(Config { subscriptions_per_session: 2, ..Config::default() });
    let a = script(1, 1);
    for d in ["d1", "d2", "d3"] {
        h.listen_ok(a, d);
    }
    let c = h.connect();
    h.subscribe(c, "d1", a.script);
    h.subscribe(c, "d2", a.script);
    h.send(c, "sub,d3");
    assert_eq!(h.texts(c), ["err,d3,busy"]);
    assert!(h.events(a.script).is_empty());
    h.send(c, "msg,d3,talking is fine");
    assert_eq!(h.texts(c), none());
    assert_eq!(h.event(a.script).data, "talking is fine");
    assert_eq!(h.region.websocket_broadcast(a.script, "d3", "x"), Ok(0), "not subscribed");
    h.send(c, "uns,d1");
    h.events(a.script);
    h.subscribe(c, "d3", a.script);
    assert_eq!(h.region.websocket_broadcast(a.script, "d3", "x"), Ok(1));
    assert_eq!(h.texts(c), ["msg,d3,x"]);
    // Another connection has its own allowance.
    let other = h.connect();
    h.subscribe(other, "d1", a.script);
}

/// `Config::domains_per_script` and the domain option's validity.
#[test]
fn limit_domains_per_script_and_bad_options() {
    let mut h = Harness::new(Config { domains_per_script: 2, ..Config::default() });
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "d1");
    h.listen_ok(a, "d2");
    let denied = h.listen(a, "d3");
    assert_eq!((denied.kind, denied.domain.as_str(), denied.data.as_str()), (EventKind::UrlDenied, "d3", "too-many"));
    h.region.release_domain(h.now, a.script, "d1").unwrap();
    h.listen_ok(a, "d3");

    h.listen_ok(b, "d1");
    let long = "x".repeat(65);
    for bad in ["d1", "", "a,b", "a\nb", "a\rb", long.as_str()] {
        let e = h.listen(b, bad);
        assert_eq!((e.kind, e.data.as_str()), (EventKind::UrlDenied, "bad-option"), "{bad:?}");
    }
    h.listen_ok(b, &"ü".repeat(32));
    let no_domain = WebsocketRequest { scope: Scope::Region, ..WebsocketRequest::default() };
    assert_eq!(h.request(b, &no_domain).data, "bad-option");
    let object_with_domain = WebsocketRequest { domain: Some("d1".into()), ..WebsocketRequest::default() };
    assert_eq!(h.request(b, &object_with_domain).data, "bad-option");
    let c = h.connect();
    h.send(c, "msg,d1,x");
    assert_eq!(h.events(b.script).len(), 1, "still listening once");
}

// ------------------------------------------------------------ §6/§7 colliding channels

/// With every domain forced onto one CLEP channel, routing still compares the
/// domain: no message, broadcast, send, sub or uns crosses.
#[test]
fn colliding_channels_never_cross() {
    let mut h = Harness::colliding(Config::default());
    assert_ne!(clep::channel("alpha"), clep::channel("beta"), "they collide only by force");
    let (la, lb) = (script(1, 1), script(2, 2));
    h.listen_ok(la, "alpha");
    h.listen_ok(lb, "beta");
    let (ca, cb) = (h.connect(), h.connect());
    let ka = h.subscribe(ca, "alpha", la.script);
    assert!(h.events(lb.script).is_empty(), "sub,alpha opened nothing at beta");
    let kb = h.subscribe(cb, "beta", lb.script);
    assert!(h.events(la.script).is_empty());

    h.send(ca, "msg,alpha,for a");
    h.send(cb, "msg,beta,for b");
    assert_eq!(texts(&h.events(la.script)), [(EventKind::Text, "alpha".into(), "for a".into())]);
    assert_eq!(texts(&h.events(lb.script)), [(EventKind::Text, "beta".into(), "for b".into())]);
    h.send(cb, &format!("to,{},beta,x", object(1)));
    assert_eq!(h.texts(cb), ["err,beta,no-listener"]);
    h.send(ca, "sub,gamma");
    h.send(ca, "msg,gamma,x");
    assert_eq!(h.texts(ca), ["err,gamma,no-listener"; 2]);

    assert_eq!(h.region.websocket_broadcast(la.script, "alpha", "ba"), Ok(1));
    assert_eq!(h.region.websocket_broadcast(lb.script, "beta", "bb"), Ok(1));
    assert_eq!(h.texts(ca), ["msg,alpha,ba"]);
    assert_eq!(h.texts(cb), ["msg,beta,bb"]);
    assert_eq!(h.region.websocket_broadcast(la.script, "beta", "x"), Err(SendError::BadDomain));
    assert_eq!(h.region.websocket_send(la.script, kb, "x"), Err(SendError::NoSession));
    assert_eq!(h.region.websocket_send(lb.script, ka, "x"), Err(SendError::NoSession));

    h.send(ca, "uns,beta");
    assert!(h.events(lb.script).is_empty(), "uns,beta from a non-subscriber closes nothing");
    h.region.release_domain(h.now, la.script, "alpha").unwrap();
    assert_eq!(h.texts(ca), ["uns,alpha"]);
    assert_eq!(h.texts(cb), none());
    assert_eq!(h.region.websocket_broadcast(lb.script, "beta", "still"), Ok(1));
    assert_eq!(h.texts(cb), ["msg,beta,still"]);
    h.send(cb, "uns,beta");
    let e = h.event(lb.script);
    assert_eq!((e.id, e.kind, e.domain.as_str()), (kb, EventKind::Close, "beta"));
    assert!(h.events(la.script).is_empty());
}

// ------------------------------------------------------------ zero copy

/// One `msg` to many listeners: every `WS_TEXT` shares one payload buffer (and
/// one domain buffer); `to` to an object's scripts likewise.
#[test]
fn one_message_to_many_listeners_shares_one_buffer() {
    let mut h = Harness::new(Config::default());
    let listeners: Vec<ScriptInfo> = (1..=5).map(|n| script(n, 1 + n % 2)).collect();
    for l in &listeners {
        h.listen_ok(*l, "chat");
    }
    let c = h.connect();
    let payload = "p".repeat(1500);
    h.send(c, &format!("msg,chat,{payload}"));
    let events: Vec<Event> = listeners.iter().map(|l| h.event(l.script)).collect();
    for e in &events {
        assert_eq!(e.data, payload.as_str());
        assert_eq!(e.data.as_str().as_ptr(), events[0].data.as_str().as_ptr(), "payload shared");
        assert_eq!(e.domain.as_str().as_ptr(), events[0].domain.as_str().as_ptr(), "domain shared");
    }

    h.send(c, &format!("to,{},chat,{payload}", object(1)));
    let in_object: Vec<Event> = listeners.iter().filter(|l| l.object == object(1)).map(|l| h.event(l.script)).collect();
    assert_eq!(in_object.len(), 2);
    assert_eq!(in_object[0].data.as_str().as_ptr(), in_object[1].data.as_str().as_ptr());
}

/// Every end of a region listener is reported to the embedder (it revokes
/// no URL, so it is not an `Output::Revoked`): release, reset, object
/// events and restart, each with its cause.
#[test]
fn a_listener_that_stops_is_reported_with_its_cause() {
    let mut h = Harness::new(Config::default());
    let (a, b) = (script(1, 1), script(2, 2));
    h.listen_ok(a, "chat");
    h.listen_ok(a, "news");
    h.listen_ok(b, "chat");
    h.region.release_domain(h.now, a.script, "news").unwrap();
    h.drain();
    assert_eq!(h.stopped, [(a.script, "news".to_string(), Cause::Released)]);
    h.region.script_reset(h.now, a.script);
    h.region.object_removed(h.now, object(2));
    h.drain();
    assert_eq!(
        h.stopped[1..],
        [(a.script, "chat".to_string(), Cause::ScriptReset), (b.script, "chat".to_string(), Cause::ObjectRemoved)]
    );
    assert!(h.revoked.is_empty(), "the endpoint lives on");
    h.listen_ok(b, "chat");
    h.region.region_restart(h.now);
    h.drain();
    assert_eq!(h.stopped.last(), Some(&(b.script, "chat".to_string(), Cause::RegionRestart)));
    assert_eq!(h.revoked.len(), 1, "the old endpoint URL");
}
