//! SPEC §9: with a seeded entropy source, the same inputs give the same URLs,
//! keys and output bytes.

mod common;

use std::collections::BTreeMap;

use common::*;
use lsl_websocket::{ConnectionId, Event, Output, WebsocketRequest};

#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    urls: Vec<String>,
    request_keys: Vec<String>,
    events: Vec<Event>,
    wire: BTreeMap<ConnectionId, Vec<u8>>,
    log: Vec<Output>,
}

/// A busy life of a region: grants and a denial, sessions with texts,
/// fragments, pings and closes, idle pings, sends, revocations, a restart.
fn run(seed: u64) -> Transcript {
    let mut sim = Sim::with_seed(lsl_websocket::Config::default(), seed);
    let (a, b) = (sim.script(), sim.script());
    let mut urls = Vec::new();
    let mut request_keys = Vec::new();
    let mut events = Vec::new();
    for who in [a, a, b] {
        let (key, event) = sim.request(who, &WebsocketRequest::default());
        request_keys.push(key.to_string());
        urls.push(event.data.to_string());
    }
    let secure = WebsocketRequest { secure: true, ..WebsocketRequest::default() };
    let (key, denied) = sim.request(b, &secure);
    request_keys.push(key.to_string());
    events.push(denied);

    let c1 = sim.connect(a.script, &urls[0]);
    let c2 = sim.connect(a.script, &urls[1]);
    let c3 = sim.connect(b.script, &urls[2]);
    sim.send(c1.conn, &text("one"));
    sim.send(c2.conn, &fragmented(&[b"t", "wö".as_bytes()]));
    sim.send(c3.conn, &ping(b"p"));
    sim.region.websocket_send(a.script, c1.session, "to one").unwrap();
    sim.region.websocket_send(b.script, c3.session, "to three").unwrap();
    sim.pump();
    sim.advance_secs(31.0);
    sim.send(c2.conn, &pong(&[]));
    sim.send(c1.conn, &close(1000, "bye"));
    sim.region.release_websocket(sim.now, b.script, &urls[2]).unwrap();
    sim.pump();
    // c2 answered the first idle ping but not the second: dropped (1006).
    sim.advance_secs(70.0);
    events.extend(sim.events(a.script));
    events.extend(sim.events(b.script));
    sim.region.region_restart(sim.now);
    sim.pump();
    urls.push(sim.request_url(b));
    let c4 = sim.connect(b.script, &urls[3]);
    sim.send(c4.conn, &text("after restart"));
    events.extend(sim.events(b.script));
    Transcript { urls, request_keys, events, wire: sim.wire.clone(), log: sim.log.clone() }
}

#[test]
fn same_seed_same_urls_keys_and_bytes() {
    let first = run(42);
    let second = run(42);
    assert_eq!(first, second);
    // The run did something worth comparing.
    assert_eq!(first.urls.len(), 4);
    assert_eq!(first.events.len(), 6, "{:?}", first.events);
    assert!(first.wire.values().all(|bytes| !bytes.is_empty()));
}

#[test]
fn another_seed_other_capabilities_and_keys() {
    let first = run(42);
    let other = run(43);
    for url in &first.urls {
        assert!(!other.urls.contains(url), "capability {url} does not depend on the seed");
    }
    for key in &first.request_keys {
        assert!(!other.request_keys.contains(key));
    }
    let session_keys = |t: &Transcript| t.events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_ne!(session_keys(&first), session_keys(&other));
}
