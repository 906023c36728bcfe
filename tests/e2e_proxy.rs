//! The `echo_server` example behind real reverse proxies (SPEC §15, §16),
//! each started by the test on loopback with the configs docs/deploy.md
//! documents and killed after: nginx's http module (WebSocket, HTTP-in,
//! SSE, the lifecycle commands, TLS ending at nginx, X-Forwarded-For from a
//! trusted proxy, the rate limit per client, many regions on one port),
//! nginx's stream module sending PROXY v1, HAProxy sending PROXY v2, and
//! one nginx routing two simulator hosts by name.
//!
//! Clients connect from 127.0.0.2 and 127.0.0.3, so the address the
//! simulator reports tells them apart from the proxy (127.0.0.1). nginx and
//! HAProxy come from scripts/setup.sh; without them these tests fail and say so.

#[path = "e2e_support/certs.rs"]
mod certs;
mod e2e_support;
#[path = "e2e_support/from.rs"]
mod from;
#[path = "e2e_support/fronts.rs"]
mod fronts;
#[path = "e2e_support/sim.rs"]
mod sim;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};

use certs::Certs;
use e2e_support::wire::recv_close;
use from::{Sse, curl_from, header_seen, ws, ws_echo};
use fronts::{Front, documented, free_port};
use sim::Sim;

const PROXY: &str = "127.0.0.1";
const CLIENT_A: &str = "127.0.0.2";
const CLIENT_B: &str = "127.0.0.3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One simulator behind nginx's http module (docs/nginx/lsl-websocket.conf).
struct Behind {
    sim: Sim,
    nginx: Front,
    /// nginx's plain and TLS listeners.
    front: SocketAddr,
    tls_front: SocketAddr,
    /// The test CA and the certificate nginx serves.
    certs: Certs,
}

impl Behind {
    /// `echo_server <args>` on 127.0.0.1, its URLs naming the nginx front.
    fn start(args: &[&str]) -> Behind {
        Behind::start_expecting(args, &["object-url", "http-url", "secure-object-url", "secure-http-url"])
    }

    /// [`Behind::start`] that waits for these URL labels.
    fn start_expecting(args: &[&str], labels: &[&str]) -> Behind {
        let (front, tls_front) = (free_port(PROXY), free_port(PROXY));
        let authority = front.to_string();
        let secure_authority = format!("sim.test:{}", tls_front.port());
        let mut all = vec!["--authority", &authority, "--secure-authority", &secure_authority];
        all.extend_from_slice(args);
        let sim = Sim::start_expecting(free_port(PROXY), &all, labels);
        let certs = Certs::new(&["sim.test"]);
        let simulator = sim.addr.to_string();
        let http = documented(
            "nginx/lsl-websocket.conf",
            &[
                ("LISTEN", &front.to_string()),
                ("TLS_LISTEN", &tls_front.to_string()),
                ("SERVER_NAME", "sim.test"),
                ("SIMULATOR", &simulator),
                ("CERT", &certs.cert_file),
                ("KEY", &certs.key_file),
            ],
        );
        let nginx = fronts::nginx(&http, "", &[front, tls_front]);
        let behind = Behind { sim, nginx, front, tls_front, certs };
        assert!(behind.url(labels[0]).contains(&format!("://{front}/")), "URLs name the front");
        behind
    }

    fn url(&self, label: &str) -> String {
        self.sim.url(label)
    }
}

#[test]
fn nginx_passes_websocket_http_in_and_sse() {
    let mut b = Behind::start(&[]);
    eprintln!(
        "{}; simulator on {}, URLs {} and {}",
        fronts::nginx_version(),
        b.sim.addr,
        b.url("object-url"),
        b.url("http-url")
    );
    let object = b.url("object-url");
    let mut session = ws_echo(ip(CLIENT_A), b.front, &object, "through nginx ✓");
    e2e_support::wire::echo_once(&mut session, &"x".repeat(2048));

    let http = b.url("http-url");
    let answer = curl_from(ip(CLIENT_A), b.front, &http, &["--data-binary", "hello http-in"]);
    assert_eq!((answer.status, answer.text().as_str()), (200, "hello http-in"), "{}", answer.head);
    let path = curl_from(ip(CLIENT_A), b.front, &format!("{http}a/b?x=1"), &[]);
    assert_eq!(path.status, 200);
    let header = header_seen(ip(CLIENT_A), b.front, &http, "x-path-info", &[]);
    assert_eq!(header, "/header/x-path-info");

    let (status, sse) = Sse::open(ip(CLIENT_A), b.front, &object);
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    let send = format!("http://{}{}", b.front, sse.send);
    for text in ["sse one", "two\r\nlines"] {
        let posted = curl_from(ip(CLIENT_A), b.front, &send, &["--data-binary", text]);
        assert_eq!(posted.status, 204, "{}", posted.head);
        assert_eq!(sse.message(), text);
    }
    b.nginx.assert_running();
}

/// A TLS WebSocket client.
type Wss = tungstenite::WebSocket<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>;

/// A `wss://` session from `source` through nginx's TLS listener (rustls,
/// trusting the test CA); the session or the refusal's status.
fn wss(b: &Behind, source: IpAddr, url: &str) -> Result<Wss, u16> {
    let tls = b.certs.client("sim.test", from::tcp(source, b.tls_front));
    match tungstenite::client::client(url, tls) {
        Ok((ws, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("wss handshake on {url}: {e}"),
    }
}

/// nginx ends TLS on its TLS listener and passes plain HTTP on: the
/// script's `wss://` and `https://` URLs (`--secure-authority`) work through
/// it, revocation included, and the client still shows as itself.
#[test]
fn nginx_terminates_tls() {
    let mut b = Behind::start(&["--trusted-proxy", "127.0.0.1/32"]);
    let secure = format!("sim.test:{}", b.tls_front.port());
    let (wss_url, https) = (b.url("secure-object-url"), b.url("secure-http-url"));
    assert!(wss_url.starts_with(&format!("wss://{secure}/lslws/")), "{wss_url}");
    assert!(https.starts_with(&format!("https://{secure}/lslhttps/")), "{https}");

    let mut session = wss(&b, ip(CLIENT_A), &wss_url).unwrap_or_else(|s| panic!("wss handshake: {s}"));
    for text in ["over wss ✓", &"y".repeat(2048)] {
        session.send(tungstenite::Message::text(text)).unwrap();
        match session.read().unwrap() {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), text),
            other => panic!("expected the echo, got {other:?}"),
        }
    }

    let tls = ["--cacert", b.certs.ca_file.as_str()];
    let mut args = tls.to_vec();
    args.extend(["--data-binary", "over TLS"]);
    let answer = curl_from(ip(CLIENT_A), b.tls_front, &https, &args);
    assert_eq!((answer.status, answer.text().as_str()), (200, "over TLS"), "{}", answer.head);
    assert_eq!(header_seen(ip(CLIENT_B), b.tls_front, &https, "x-remote-ip", &tls), CLIENT_B);
    // Without trusting the test CA curl refuses: TLS really is on.
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "--resolve", &format!("{secure}:127.0.0.1"), &https])
        .output()
        .expect("run curl");
    assert_eq!(out.status.code(), Some(60), "curl without --cacert: certificate not trusted");

    b.sim.command("region-change");
    let close = loop {
        match session.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => break (u16::from(frame.code), frame.reason.to_string()),
            Ok(tungstenite::Message::Close(None)) => panic!("a close frame without a code"),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame: {e}"),
        }
    };
    assert_eq!(close, (1001, "region change".to_string()));
    assert_eq!(wss(&b, ip(CLIENT_A), &wss_url).err(), Some(404), "old wss:// URL through nginx");
    assert_eq!(curl_from(ip(CLIENT_A), b.tls_front, &https, &tls).status, 404, "old https:// URL");
    let fresh = b.url("secure-object-url");
    eprintln!("tls: {wss_url} and {https} via nginx {}; after region-change 404, new {fresh}", b.tls_front);
    let mut again = wss(&b, ip(CLIENT_A), &fresh).unwrap_or_else(|s| panic!("new wss URL: {s}"));
    again.send(tungstenite::Message::text("new URL")).unwrap();
    assert!(matches!(again.read().unwrap(), tungstenite::Message::Text(t) if t.as_str() == "new URL"));
}

/// Every stdin command revokes the URLs as SPEC §4 says, seen through nginx.
#[test]
fn nginx_lifecycle_old_urls_404() {
    let mut b = Behind::start(&[]);
    for (command, reason) in [
        ("reset", "script reset"),
        ("rez", "object rezzed"),
        ("region-change", "region change"),
        ("owner-change", "owner change"),
        ("remove", "object removed"),
        ("release", "url released"),
        ("restart", "region restart"),
    ] {
        let (old, old_http) = (b.url("object-url"), b.url("http-url"));
        let mut session = ws_echo(ip(CLIENT_A), b.front, &old, "before");
        let (status, sse) = Sse::open(ip(CLIENT_A), b.front, &old);
        assert_eq!(status, 200);
        let mut sse = sse.unwrap();
        b.sim.command(command);
        assert_eq!(recv_close(&mut session), (1001, reason.to_string()), "{command}");
        let (name, data) = sse.event().expect("the SSE close event");
        assert_eq!(name, "close", "{command}");
        assert!(data.contains("1001") && data.contains(reason), "{command}: {data}");
        assert_eq!(ws(ip(CLIENT_A), b.front, &old).err(), Some(404), "old URL after {command}");
        assert_eq!(curl_from(ip(CLIENT_A), b.front, &old_http, &[]).status, 404, "old HTTP-in URL after {command}");
        ws_echo(ip(CLIENT_A), b.front, &b.url("object-url"), "after");
        let fresh = curl_from(ip(CLIENT_A), b.front, &b.url("http-url"), &["--data-binary", command]);
        assert_eq!((fresh.status, fresh.text()), (200, command.to_string()));
    }
}

/// nginx appends the client's address to X-Forwarded-For; from a trusted
/// proxy the simulator takes the rightmost hop it does not trust.
#[test]
fn nginx_forwarded_for_names_the_client() {
    let b = Behind::start(&["--trusted-proxy", "127.0.0.1/32"]);
    let http = b.url("http-url");
    assert_eq!(header_seen(ip(CLIENT_A), b.front, &http, "x-remote-ip", &[]), CLIENT_A);
    assert_eq!(header_seen(ip(CLIENT_B), b.front, &http, "x-remote-ip", &[]), CLIENT_B);
    // A client's own X-Forwarded-For is left of nginx's hop: not believed.
    let spoof = ["-H", "X-Forwarded-For: 203.0.113.9"];
    assert_eq!(header_seen(ip(CLIENT_B), b.front, &http, "x-remote-ip", &spoof), CLIENT_B);
    // The same for a client straight to the simulator: it is no trusted proxy.
    let direct = http.replace(&b.front.to_string(), &b.sim.addr.to_string());
    let direct = curl_from(ip(CLIENT_A), b.sim.addr, &format!("{direct}header/x-remote-ip"), &spoof);
    assert_eq!(direct.text(), CLIENT_A);
}

/// Without --trusted-proxy, forwarding headers are ignored: every client
/// behind nginx is nginx.
#[test]
fn untrusted_forwarded_headers_are_ignored() {
    let b = Behind::start(&[]);
    let http = b.url("http-url");
    let spoof = ["-H", "X-Forwarded-For: 203.0.113.9"];
    assert_eq!(header_seen(ip(CLIENT_A), b.front, &http, "x-remote-ip", &spoof), PROXY);
    assert_eq!(header_seen(ip(CLIENT_B), b.front, &http, "x-remote-ip", &[]), PROXY);
    let direct = http.replace(&b.front.to_string(), &b.sim.addr.to_string());
    let direct = curl_from(ip(CLIENT_A), b.sim.addr, &format!("{direct}header/x-remote-ip"), &spoof);
    assert_eq!(direct.text(), CLIENT_A);
}

/// Handshakes from `source` until one is refused; the refusal's status.
fn until_refused(source: IpAddr, front: SocketAddr, url: &str) -> u16 {
    for _ in 0..50 {
        if let Err(status) = ws(source, front, url) {
            return status;
        }
    }
    panic!("50 handshakes from {source} and none refused");
}

/// The rate limit counts per client behind a trusted proxy, not per proxy.
#[test]
fn nginx_rate_limit_buckets_per_client() {
    let b = Behind::start(&["--trusted-proxy", "127.0.0.1/32", "--handshakes-per-second", "3"]);
    let url = b.url("object-url");
    assert_eq!(until_refused(ip(CLIENT_A), b.front, &url), 429);
    // A has spent its second; B's own bucket is untouched.
    ws_echo(ip(CLIENT_B), b.front, &url, "B is not A");
    eprintln!("trusted nginx: {CLIENT_A} refused 429, {CLIENT_B} then 101 on {url}");
}

/// Without trust the proxy is one bucket: B is refused with A.
#[test]
fn untrusted_proxy_is_one_rate_bucket() {
    let b = Behind::start(&["--handshakes-per-second", "3"]);
    let url = b.url("object-url");
    // Alternate A and B within one second's window: B must meet a 429 too.
    let refused = (0..50).find_map(|_| {
        let _ = ws(ip(CLIENT_A), b.front, &url);
        ws(ip(CLIENT_B), b.front, &url).err()
    });
    assert_eq!(refused, Some(429), "B shares the proxy's bucket");
    eprintln!("untrusted nginx: {CLIENT_B} refused 429 with {CLIENT_A} on {url}");
}

/// Two simulator hosts, each with its own public name, behind one nginx
/// that routes by host name: the documented server block once per host.
fn two_hosts(front: SocketAddr, tls_front: SocketAddr, hosts: &[(&str, &Sim)], certs: &Certs) -> Front {
    let mut http = String::new();
    for (i, (name, sim)) in hosts.iter().enumerate() {
        let text = documented(
            "nginx/lsl-websocket.conf",
            &[
                ("LISTEN", &front.to_string()),
                ("TLS_LISTEN", &tls_front.to_string()),
                ("SERVER_NAME", name),
                ("SIMULATOR", &sim.addr.to_string()),
                ("CERT", &certs.cert_file),
                ("KEY", &certs.key_file),
            ],
        );
        // The map once, then one server block per host.
        let at = text.find("\nserver {").expect("a server block");
        http.push_str(if i == 0 { &text } else { &text[at..] });
    }
    fronts::nginx(&http, "", &[front, tls_front])
}

/// A URL of `sim` (serving `host`) as clients see it: naming the front.
fn public(sim: &Sim, label: &str, host: &str, front: SocketAddr) -> String {
    let url = sim.url(label);
    let public = format!("{host}:{}", front.port());
    assert!(url.contains(&format!("://{public}/")), "{url} names {public}");
    url
}

/// The same URL asked of the other host (same path, other name).
fn on_host(url: &str, from: &str, to: &str) -> String {
    url.replacen(&format!("://{from}:"), &format!("://{to}:"), 1)
}

#[test]
fn two_hosts_by_name_and_a_crossing_revokes() {
    let (front, tls_front) = (free_port(PROXY), free_port(PROXY));
    let start = |bind: &str, host: &str| {
        let authority = format!("{host}:{}", front.port());
        Sim::start(free_port(bind), &["--authority", &authority, "--trusted-proxy", "127.0.0.1/32"])
    };
    let (mut sim1, mut sim2) = (start(CLIENT_A, "sim1.test"), start(CLIENT_B, "sim2.test"));
    assert_eq!((sim1.addr.ip(), sim2.addr.ip()), (ip(CLIENT_A), ip(CLIENT_B)));
    let certs = Certs::new(&["sim1.test", "sim2.test"]);
    let _nginx = two_hosts(front, tls_front, &[("sim1.test", &sim1), ("sim2.test", &sim2)], &certs);

    let (old, old_http) =
        (public(&sim1, "object-url", "sim1.test", front), public(&sim1, "http-url", "sim1.test", front));
    let mut session = ws_echo(ip(CLIENT_A), front, &old, "on sim1");
    assert_eq!(header_seen(ip(CLIENT_A), front, &old_http, "x-remote-ip", &[]), CLIENT_A);
    // nginx sends each name to its own host: sim2 never minted this capability.
    assert_eq!(ws(ip(CLIENT_A), front, &on_host(&old, "sim1.test", "sim2.test")).err(), Some(404));

    // The object leaves sim1 for sim2.
    sim1.command("region-change");
    assert_eq!(recv_close(&mut session), (1001, "region change".to_string()));
    assert_eq!(ws(ip(CLIENT_A), front, &old).err(), Some(404), "old URL through nginx");
    assert_eq!(curl_from(ip(CLIENT_A), front, &old_http, &[]).status, 404, "old HTTP-in URL through nginx");

    // It arrives on sim2 and its script asks for URLs there.
    sim2.command("rez");
    let (new, new_http) =
        (public(&sim2, "object-url", "sim2.test", front), public(&sim2, "http-url", "sim2.test", front));
    ws_echo(ip(CLIENT_B), front, &new, "on sim2");
    let answer = curl_from(ip(CLIENT_B), front, &new_http, &["--data-binary", "crossed"]);
    assert_eq!((answer.status, answer.text().as_str()), (200, "crossed"));
    assert_eq!(header_seen(ip(CLIENT_B), front, &new_http, "x-remote-ip", &[]), CLIENT_B);
    assert_eq!(ws(ip(CLIENT_B), front, &on_host(&new, "sim2.test", "sim1.test")).err(), Some(404));
    eprintln!("sim1 {old} (revoked) → sim2 {new}");
}

/// `echo_server` with a listener that expects a PROXY header (and trusts
/// 127.0.0.1 to send it), plus its plain one.
fn proxy_sim(front: SocketAddr) -> (Sim, SocketAddr) {
    let proxied = free_port(PROXY);
    let (authority, proxied_s) = (front.to_string(), proxied.to_string());
    let args = ["--authority", &authority, "--trusted-proxy", "127.0.0.1/32", "--proxy-bind", &proxied_s];
    (Sim::start(free_port(PROXY), &args), proxied)
}

/// WebSocket, HTTP-in and SSE through a TCP proxy that sends PROXY
/// headers; the simulator reports the client's address, and a connection
/// straight to the PROXY listener without a header is closed unanswered.
fn through_tcp_proxy(proxied: SocketAddr, front: SocketAddr, public: impl Fn(&str) -> String) {
    let (object, http) = (public("object-url"), public("http-url"));
    ws_echo(ip(CLIENT_A), front, &object, "behind a PROXY header");
    assert_eq!(header_seen(ip(CLIENT_A), front, &http, "x-remote-ip", &[]), CLIENT_A);
    assert_eq!(header_seen(ip(CLIENT_B), front, &http, "x-remote-ip", &[]), CLIENT_B);
    let answer = curl_from(ip(CLIENT_B), front, &http, &["--data-binary", "proxied body"]);
    assert_eq!((answer.status, answer.text().as_str()), (200, "proxied body"));
    let (status, sse) = Sse::open(ip(CLIENT_B), front, &object);
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    let send = format!("http://{front}{}", sse.send);
    assert_eq!(curl_from(ip(CLIENT_B), front, &send, &["--data-binary", "sse via PROXY"]).status, 204);
    assert_eq!(sse.message(), "sse via PROXY");
    // The PROXY listener takes no request without its header.
    let path = from::parts(&http).1.to_string();
    let mut raw = from::tcp(ip(CLIENT_A), proxied);
    std::io::Write::write_all(&mut raw, format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
    let mut got = Vec::new();
    let end = std::io::Read::read_to_end(&mut raw, &mut got);
    assert!(got.is_empty(), "answered without a PROXY header: {:?}", String::from_utf8_lossy(&got));
    // Closed (end of stream or reset), not left open until our read timeout.
    let timed_out = end.as_ref().is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
    assert!(!timed_out, "the PROXY listener kept a connection without a header open: {end:?}");
    // A PROXY header from a peer that is no trusted proxy is read and ignored.
    let mut raw = from::tcp(ip(CLIENT_A), proxied);
    let forged = format!(
        "PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\nGET {path}header/x-remote-ip HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    std::io::Write::write_all(&mut raw, forged.as_bytes()).unwrap();
    let mut got = String::new();
    let _ = std::io::Read::read_to_string(&mut raw, &mut got);
    assert!(got.starts_with("HTTP/1.1 200") && got.ends_with(CLIENT_A), "untrusted PROXY header: {got:?}");
}

/// nginx's stream module sends PROXY v1 (`proxy_protocol on;`).
#[test]
fn nginx_stream_proxy_protocol_v1() {
    let front = free_port(PROXY);
    let (sim, proxied) = proxy_sim(front);
    let stream = documented(
        "nginx/lsl-websocket-stream.conf",
        &[("LISTEN", &front.to_string()), ("SIMULATOR", &proxied.to_string())],
    );
    let mut nginx = fronts::nginx("", &stream, &[front]);
    through_tcp_proxy(proxied, front, |label| at_front(&sim, label, front));
    nginx.assert_running();
}

/// HAProxy in TCP mode sends PROXY v2 (`send-proxy-v2`).
#[test]
fn haproxy_proxy_protocol_v2() {
    eprintln!("{}", fronts::haproxy_version());
    let front = free_port(PROXY);
    let (sim, proxied) = proxy_sim(front);
    let config =
        documented("haproxy/lsl-websocket.cfg", &[("BIND", &front.to_string()), ("SIMULATOR", &proxied.to_string())]);
    let mut haproxy = fronts::haproxy(&config, &[front]);
    through_tcp_proxy(proxied, front, |label| at_front(&sim, label, front));
    haproxy.assert_running();
}

/// A URL of `sim` naming `front` (its --authority).
fn at_front(sim: &Sim, label: &str, front: SocketAddr) -> String {
    let url = sim.url(label);
    assert!(url.contains(&format!("://{front}/")), "{url} names {front}");
    url
}

/// docs/deploy.md shows the configs these tests run: each block marked
/// `<!-- file: NAME -->` is docs/NAME byte for byte.
#[test]
fn docs_show_the_tested_configs() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let guide = std::fs::read_to_string(docs.join("deploy.md")).expect("read docs/deploy.md");
    let mut shown = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("<!-- file: ").and_then(|l| l.strip_suffix(" -->")) else { continue };
        assert!(lines.next().is_some_and(|l| l.starts_with("```")), "a code block after the {name} marker");
        let block: String = lines.by_ref().take_while(|l| *l != "```").map(|l| format!("{l}\n")).collect();
        let file = std::fs::read_to_string(docs.join(name)).unwrap_or_else(|e| panic!("read docs/{name}: {e}"));
        assert_eq!(block, file, "docs/deploy.md's copy of docs/{name} differs from the file");
        shown.push(name.to_string());
    }
    shown.sort();
    assert_eq!(shown, ["haproxy/lsl-websocket.cfg", "nginx/lsl-websocket-stream.conf", "nginx/lsl-websocket.conf"]);
}

/// Many regions on one port behind nginx: `echo_server --regions 2`, each
/// region on its own thread, routed by capability inside the process.
#[test]
fn nginx_fronts_many_regions_on_one_port() {
    let labels = ["object-url region=0", "http-url region=0", "object-url region=1", "http-url region=1"];
    let mut b = Behind::start_expecting(&["--regions", "2", "--trusted-proxy", "127.0.0.1/32"], &labels);
    let (old0, old_http0) = (b.url(labels[0]), b.url(labels[1]));
    let mut in0 = ws_echo(ip(CLIENT_A), b.front, &old0, "region 0");
    let mut in1 = ws_echo(ip(CLIENT_A), b.front, &b.url(labels[2]), "region 1");
    assert_eq!(header_seen(ip(CLIENT_B), b.front, &b.url(labels[3]), "x-remote-ip", &[]), CLIENT_B);

    // Region 0's echo object crosses into region 1.
    b.sim.command_expecting("cross 0 1", &labels);
    assert_eq!(recv_close(&mut in0), (1001, "region change".to_string()));
    assert_eq!(ws(ip(CLIENT_A), b.front, &old0).err(), Some(404), "old URL through nginx");
    assert_eq!(curl_from(ip(CLIENT_A), b.front, &old_http0, &[]).status, 404, "old HTTP-in URL");
    ws_echo(ip(CLIENT_A), b.front, &b.url(labels[2]), "arrived in region 1");
    let answer = curl_from(ip(CLIENT_A), b.front, &b.url(labels[3]), &["--data-binary", "region 1 http"]);
    assert_eq!((answer.status, answer.text().as_str()), (200, "region 1 http"));
    e2e_support::wire::echo_once(&mut in1, "still open");

    // Removing region 1 closes its sessions only.
    let mut again0 = ws_echo(ip(CLIENT_A), b.front, &b.url(labels[0]), "region 0's new object");
    b.sim.send("remove-region 1");
    let closed = recv_close(&mut in1);
    assert_eq!(closed.0, 1001, "{closed:?}");
    eprintln!("regions: {old0} crossed (1001 region change, then 404); remove-region 1 closed {closed:?}");
    e2e_support::wire::echo_once(&mut again0, "region 0 lives");
    b.nginx.assert_running();
}
