//! SPEC §15 (trusted proxies: whose word names the client) and §16 (route
//! tags: a capability names its region), asserted through the Region: on
//! `x-remote-ip` as the script reads it and on the rate limit's buckets.

mod common;

use common::*;
use lsl_websocket::route::{Route, route};
use lsl_websocket::{Config, EventKind, ForwardedHeader, HttpMethod, IpNet, Scope, WebsocketRequest};

const PROXY: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

fn trusting(config: Config) -> Config {
    Config { trusted_proxies: vec!["10.0.0.0/24".parse::<IpNet>().unwrap()], ..config }
}

fn ws_remote_ip(sim: &mut Sim, from: std::net::IpAddr, extra: &[(&str, &str)]) -> String {
    let who = sim.script();
    let url = sim.request_url(who);
    let mut headers = upgrade_headers();
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let (client, _) = sim.connect_with(who.script, &path_of(&url), &headers, from);
    sim.region.websocket_header(who.script, client.session, "x-remote-ip")
}

#[test]
fn a_trusted_proxy_names_the_client_by_its_rightmost_untrusted_hop() {
    let mut sim = Sim::with_config(trusting(Config::default()));
    // What the client wrote itself ("6.6.6.6") is left of what the proxy appended.
    let got = ws_remote_ip(&mut sim, PROXY, &[("X-Forwarded-For", "6.6.6.6, 192.0.2.50")]);
    assert_eq!(got, "192.0.2.50");
    // A chain of trusted proxies is walked through.
    let got = ws_remote_ip(&mut sim, PROXY, &[("X-Forwarded-For", "192.0.2.51, 10.0.0.9")]);
    assert_eq!(got, "192.0.2.51");
    // No header from the proxy: the proxy is all that is known.
    assert_eq!(ws_remote_ip(&mut sim, PROXY, &[]), "10.0.0.1");
}

#[test]
fn from_any_other_peer_the_headers_are_ignored() {
    let mut sim = Sim::with_config(trusting(Config::default()));
    let got = ws_remote_ip(&mut sim, CLIENT_IP, &[("X-Forwarded-For", "10.0.0.1"), ("Forwarded", "for=1.2.3.4")]);
    assert_eq!(got, CLIENT_IP.to_string());
    // And with no trusted proxies at all (the default), not even a proxy's header counts.
    let mut sim = Sim::new();
    assert_eq!(ws_remote_ip(&mut sim, PROXY, &[("X-Forwarded-For", "192.0.2.50")]), "10.0.0.1");
}

#[test]
fn only_the_configured_header_is_read() {
    // A proxy that writes `Forwarded` leaves a client's `X-Forwarded-For` alone: it must not count.
    let config = Config { forwarded_header: ForwardedHeader::Forwarded, ..trusting(Config::default()) };
    let mut sim = Sim::with_config(config);
    let got = ws_remote_ip(
        &mut sim,
        PROXY,
        &[("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.7, for=\"[2001:db8::7]:4711\"")],
    );
    assert_eq!(got, "2001:db8::7");
    let mut sim = Sim::with_config(trusting(Config::default()));
    assert_eq!(ws_remote_ip(&mut sim, PROXY, &[("Forwarded", "for=6.6.6.7")]), "10.0.0.1");
}

#[test]
fn the_rate_limit_buckets_per_client_behind_the_proxy() {
    let config = trusting(Config { handshakes_per_second: 2, ..Config::default() });
    let mut sim = Sim::with_config(config);
    let who = sim.script();
    let url = sim.request_url(who);
    let attempt = |sim: &mut Sim, client: &str| {
        let conn = sim.accept_from(PROXY);
        sim.send(conn, &head("GET", &path_of(&url), &with("X-Forwarded-For", client)));
        sim.status(conn)
    };
    assert_eq!([attempt(&mut sim, "192.0.2.1"), attempt(&mut sim, "192.0.2.1")], [101, 101]);
    assert_eq!(attempt(&mut sim, "192.0.2.1"), 429, "the third from one client in a second");
    // Another client through the same proxy has its own bucket.
    assert_eq!(attempt(&mut sim, "192.0.2.2"), 101);
    sim.advance_secs(1.1);
    assert_eq!(attempt(&mut sim, "192.0.2.1"), 101, "a new second, a new window");
}

#[test]
fn http_in_names_each_request_of_a_kept_alive_proxy_connection() {
    let mut sim = Sim::with_config(trusting(Config { handshakes_per_second: 1000, ..Config::default() }));
    let who = sim.script();
    let key = sim.region.request_url(who);
    let granted = sim.events(who.script).into_iter().find(|e| e.id == key).unwrap();
    assert_eq!(granted.kind, EventKind::Http(HttpMethod::UrlRequestGranted));
    let path = path_of(&granted.data);
    // One upstream connection of the proxy carries two clients' requests.
    let conn = sim.accept_from(PROXY);
    let mut seen = Vec::new();
    for client in ["192.0.2.61", "192.0.2.62"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\r\n");
        sim.send(conn, request.as_bytes());
        let event =
            sim.events(who.script).into_iter().find(|e| matches!(e.kind, EventKind::Http(HttpMethod::Get))).unwrap();
        seen.push(sim.region.http_header(who.script, event.id, "x-remote-ip"));
        sim.region.http_response(sim.now, who.script, event.id, 200, "ok").unwrap();
        sim.pump();
    }
    assert_eq!(seen, ["192.0.2.61", "192.0.2.62"]);
    // The same header from a stranger is ignored.
    let conn = sim.accept();
    sim.send(conn, format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n").as_bytes());
    let event =
        sim.events(who.script).into_iter().find(|e| matches!(e.kind, EventKind::Http(HttpMethod::Get))).unwrap();
    assert_eq!(sim.region.http_header(who.script, event.id, "x-remote-ip"), CLIENT_IP.to_string());
}

#[test]
fn an_sse_stream_through_the_proxy_names_the_client() {
    let mut sim = Sim::with_config(trusting(Config::default()));
    let who = sim.script();
    let url = sim.request_url(who);
    let conn = sim.accept_from(PROXY);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nX-Forwarded-For: 192.0.2.70\r\n\r\n",
        path_of(&url)
    );
    sim.send(conn, request.as_bytes());
    assert_eq!(sim.status(conn), 200, "{}", sim.response(conn));
    let open = sim.events(who.script).into_iter().find(|e| e.kind == EventKind::Open).unwrap();
    assert_eq!(sim.region.websocket_header(who.script, open.id, "x-remote-ip"), "192.0.2.70");
}

#[test]
fn every_capability_a_tagged_region_mints_routes_to_it() {
    let mut sim = Sim::with_config(Config { route_tag: Some(0x0b0e), ..Config::default() });
    let who = sim.script();
    let ws = sim.request_url(who);
    let key = sim.region.request_url(who);
    let http = sim.events(who.script).into_iter().find(|e| e.id == key).unwrap().data.to_string();
    let scope = WebsocketRequest { scope: Scope::Region, domain: Some("d".into()), ..WebsocketRequest::default() };
    let endpoint = sim.request(who, &scope).1.data.to_string();
    for url in [&ws, &http, &endpoint] {
        let path = path_of(url);
        assert!(path.contains("/0b0e"), "{path}");
        assert_eq!(route(format!("GET {path} HTTP/1.1\r\n").as_bytes()), Route::Tag(0x0b0e), "{path}");
        assert_eq!(route(format!("{path}\n").as_bytes()), Route::Tag(0x0b0e), "as a line client's first line");
    }
    // The SSE send URL told in a stream's first event too.
    let conn = sim.accept();
    sim.send(conn, format!("GET {} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", path_of(&ws)).as_bytes());
    let body = String::from_utf8_lossy(split_head(sim.bytes(conn)).1).into_owned();
    let send = body.split("\"send\":\"").nth(1).and_then(|s| s.split('"').next()).expect("a send URL");
    assert_eq!(route(format!("POST {send} HTTP/1.1\r\n").as_bytes()), Route::Tag(0x0b0e), "{send}");
}

#[test]
fn a_capability_of_one_region_never_resolves_in_another() {
    let mut a = Sim::with_seed(Config { route_tag: Some(1), ..Config::default() }, 11);
    let mut b = Sim::with_seed(Config { route_tag: Some(2), ..Config::default() }, 12);
    let who_a = a.script();
    let url_a = a.request_url(who_a);
    let who_b = b.script();
    let _url_b = b.request_url(who_b);
    // Presented to region B it is unknown.
    let conn = b.try_handshake(&upgrade_head(&path_of(&url_a)));
    assert_eq!(b.status(conn), 404);
    // Forged with B's tag it is still unknown: the random part is A's.
    let forged = path_of(&url_a).replacen("/0001", "/0002", 1);
    let conn = b.try_handshake(&upgrade_head(&forged));
    assert_eq!(b.status(conn), 404);
}
