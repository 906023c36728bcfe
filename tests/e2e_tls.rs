//! TLS end to end (SPEC §15): the `echo_server` example with a TLS listener
//! beside its plain one, certificates from a test CA made with rcgen, and
//! real clients trusting only that CA: tungstenite over rustls (ring) for
//! `wss://`, `curl --cacert` for `https://` HTTP-in and the demo page, and
//! headless Chromium loading the page over `https://` and echoing over
//! `wss://`. Without a TLS listener `WS_SECURE` and `llRequestSecureURL`
//! are denied `no-secure`; with one they name it.

mod e2e_support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e_support::http::curl;
use e2e_support::process::EchoProcess;
use e2e_support::tls::{self, Certs};
use e2e_support::webdriver::{Browser, target_dir};
use e2e_support::{Target, WAIT, wire};
use lsl_websocket::adapter::Handler;
use lsl_websocket::adapter::tls::{TlsConfig, TlsError};
use lsl_websocket::adapter::tokio::{Handle, ListenerOptions, Server};
use lsl_websocket::{Config, Event, EventKind, HttpMethod, Key, Region, ScriptInfo, WebsocketRequest};

fn start(certs: &Certs, more: &[&str]) -> EchoProcess {
    let mut args = certs.args();
    args.extend(more.iter().map(|s| s.to_string()));
    EchoProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The `host:port` of a URL.
fn authority(url: &str) -> &str {
    url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap()
}

#[test]
fn wss_echo_with_tungstenite_over_rustls() {
    let certs = Certs::new();
    let mut server = start(&certs, &[]);
    let secure = server.secure_object_url.clone().expect("a secure object URL");
    assert!(secure.starts_with("wss://127.0.0.1:"), "{secure}");
    // Its own listener: not the plain one.
    assert_ne!(authority(&secure), authority(&server.object_url()));
    println!("plain {} secure {secure}", server.object_url());

    let config = certs.client_config();
    let mut ws = tls::wss_client(&secure, &config);
    tls::echo_once(&mut ws, "over TLS, ✓");
    let big = "x".repeat(2048);
    tls::echo_once(&mut ws, &big);
    for i in 0..50 {
        tls::echo_once(&mut ws, &format!("message {i}"));
    }
    // The plain URL keeps working beside it.
    let mut plain = wire::client(&server.object_url());
    wire::echo_once(&mut plain, "plain too");

    // A lifecycle event closes the TLS session like any other: 1001, and the
    // script's new secure URL works.
    server.command("reset");
    let (code, reason) = close_of(&mut ws);
    assert_eq!((code, reason.as_str()), (1001, "script reset"));
    let renewed = server.secure_object_url.clone().unwrap();
    assert_ne!(renewed, secure);
    tls::echo_once(&mut tls::wss_client(&renewed, &config), "after reset");

    // A client that does not trust the CA gets no session.
    let stranger =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
    let refused = tungstenite::client::client(renewed.as_str(), tls::connect(&renewed, &std::sync::Arc::new(stranger)));
    assert!(refused.is_err(), "an untrusted certificate must fail the client's handshake");
    server.quit();
}

fn close_of(ws: &mut tls::WssClient) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => return (u16::from(frame.code), frame.reason.to_string()),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    }
    panic!("no close within {WAIT:?}")
}

#[test]
fn https_http_in_and_demo_page_with_curl() {
    let certs = Certs::new();
    let mut server = start(&certs, &[]);
    let secure = server.secure_http_url.clone().expect("a secure HTTP-in URL");
    assert!(secure.starts_with("https://127.0.0.1:") && secure.contains("/lslhttps/"), "{secure}");
    let ca = certs.ca.display().to_string();

    let answer = curl(
        &["--cacert", &ca, "-H", "Content-Type: text/plain; charset=utf-8", "--data-binary", "über https"],
        &secure,
    );
    assert_eq!((answer.status, answer.text().as_str()), (200, "über https"));
    let header = curl(&["--cacert", &ca], &format!("{secure}header/x-path-info"));
    assert_eq!(header.text(), "/header/x-path-info");

    // The demo page and its URL list over https://: the secure URLs are there.
    let host = authority(&secure).to_string();
    let page = curl(&["--cacert", &ca], &format!("https://{host}/"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<title>"), "the demo page");
    let urls: serde_json::Value =
        serde_json::from_slice(&curl(&["--cacert", &ca], &format!("https://{host}/urls")).body).unwrap();
    assert_eq!(urls["secure_http"], secure.as_str());
    assert_eq!(urls["secure_object"], server.secure_object_url.clone().unwrap().as_str());

    // Without the CA curl refuses the certificate (exit 60): the trust is real.
    let untrusted = std::process::Command::new("curl").args(["-s", "--max-time", "10", &secure]).status().unwrap();
    assert_eq!(untrusted.code(), Some(60));

    // Revoked like any other URL: 404 over TLS.
    server.command("reset");
    assert_eq!(curl(&["--cacert", &ca, "-d", "x"], &secure).status, 404);
    let renewed = server.secure_http_url.clone().unwrap();
    assert_eq!(curl(&["--cacert", &ca, "-d", "again"], &renewed).text(), "again");
    server.quit();
}

#[test]
fn demo_page_over_https_echoes_over_wss_in_chromium() {
    let certs = Certs::new();
    let server = start(&certs, &[]);
    let secure = server.secure_object_url.clone().unwrap();
    // Chromium trusts exactly this leaf key, nothing else.
    let browser = Browser::start_with(&[format!("--ignore-certificate-errors-spki-list={}", certs.leaf_spki_sha256)]);
    browser.navigate(&format!("https://{}/", authority(&secure)));
    browser.wait_text("#object-url", "the secure object URL", |t| t == secure);
    browser.wait_text("#object-status", "an open connection", |t| t == "open");
    browser.type_into("#object-input", "hello over wss, ✓\n");
    browser.wait_text("#object-log li.reply", "the echo", |t| t == "← hello over wss, ✓");
    // HTTP-in over https:// from the page's fetch.
    let secure_http = server.secure_http_url.clone().unwrap();
    browser.wait_text("#http-url", "the secure HTTP-in URL", |t| t == secure_http);
    browser.type_into("#http-input", "über fetch\n");
    browser.wait_text("#http-log li.reply", "the HTTP-in answer", |t| t == "← 200 über fetch");
    browser.screenshot(&target_dir().join("browser-https.png"));
}

#[test]
fn proxy_header_before_tls_names_the_client_from_a_trusted_peer() {
    let certs = Certs::new();
    let server = start(&certs, &["--tls-proxy", "--trusted-proxy", "127.0.0.1/32"]);
    let secure = server.secure_http_url.clone().unwrap();
    let (addr, path) = tls::split(&secure);
    let config = certs.client_config();
    let ask = |proxy: &[u8]| {
        let mut sock = wire::tcp(addr);
        std::io::Write::write_all(&mut sock, proxy).unwrap();
        let stream = tls::tls_over(sock, &config);
        let head = format!("GET {path}header/x-remote-ip HTTP/1.1\r\nHost: {}", authority(&secure));
        tls::request(stream, &head, "")
    };
    let v1 = ask(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n");
    assert!(v1.starts_with("HTTP/1.1 200") && v1.ends_with("203.0.113.7"), "{v1}");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x9c, 0x40, 0x01, 0xbb]);
    let answer = ask(&v2);
    assert!(answer.ends_with("198.51.100.9"), "{answer}");
    // Not a PROXY header on a listener that expects one: closed, nothing answered.
    let mut sock = wire::tcp(addr);
    std::io::Write::write_all(&mut sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[test]
fn proxy_header_from_an_untrusted_peer_is_ignored() {
    let certs = Certs::new();
    // The peer, 127.0.0.1, is not trusted: the header is read and skipped.
    let server = start(&certs, &["--tls-proxy", "--trusted-proxy", "10.0.0.0/8"]);
    let secure = server.secure_http_url.clone().unwrap();
    let (addr, path) = tls::split(&secure);
    let mut sock = wire::tcp(addr);
    std::io::Write::write_all(&mut sock, b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n").unwrap();
    let head = format!("GET {path}header/x-remote-ip HTTP/1.1\r\nHost: {}", authority(&secure));
    let answer = tls::request(tls::tls_over(sock, &certs.client_config()), &head, "");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("127.0.0.1"), "{answer}");
}

/// A handler that asks for secure URLs at start and keeps every event.
#[derive(Default)]
struct Secure {
    events: Vec<Event>,
}

impl Handler for Secure {
    fn on_start(&mut self, region: &mut Region, _now: Instant) {
        let caller = ScriptInfo {
            script: Key::from_random_bytes([1; 16]),
            object: Key::from_random_bytes([2; 16]),
            owner: Key::from_random_bytes([3; 16]),
        };
        region.request_websocket(caller, &WebsocketRequest { secure: true, ..WebsocketRequest::default() });
        region.request_secure_url(caller);
    }

    fn on_event(&mut self, _region: &mut Region, _now: Instant, _script: Key, event: Event) {
        self.events.push(event);
    }
}

/// Runs a `Secure` server on `listeners` and returns its two answers.
fn secure_answers(listeners: Vec<ListenerOptions>, config: Config) -> (Vec<SocketAddr>, Vec<(EventKind, String)>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let all = listeners.into_iter().map(|o| ("127.0.0.1:0", o));
            let server = Server::bind_all(all, config, Secure::default()).await.unwrap();
            let handle: Handle<Secure> = server.handle();
            tx.send((server.local_addrs().unwrap(), handle)).unwrap();
            server.run().await;
        });
    });
    let (addrs, handle) = rx.recv_timeout(WAIT).unwrap();
    let mut answers = Vec::new();
    wire::wait_until("both answers", || {
        answers = handle
            .blocking_query(|h: &mut Secure, _, _| h.events.iter().map(|e| (e.kind, e.data.to_string())).collect())
            .unwrap();
        answers.len() == 2
    });
    handle.shutdown().unwrap();
    (addrs, answers)
}

#[test]
fn ws_secure_denied_no_secure_without_tls_and_granted_with_it() {
    let (_, plain) = secure_answers(vec![ListenerOptions::plain()], Config::default());
    assert_eq!(
        plain,
        vec![
            (EventKind::UrlDenied, "no-secure".to_string()),
            (EventKind::Http(HttpMethod::UrlRequestDenied), "no-secure".to_string())
        ]
    );
    let certs = Certs::new();
    let tls = TlsConfig::from_pem_files(&certs.cert, &certs.key).unwrap();
    let (addrs, both) = secure_answers(vec![ListenerOptions::plain(), ListenerOptions::tls(tls)], Config::default());
    let tls_addr = addrs[1];
    assert_eq!(both[0].0, EventKind::UrlGranted);
    assert!(both[0].1.starts_with(&format!("wss://{tls_addr}/lslws/")), "{both:?}");
    assert_eq!(both[1].0, EventKind::Http(HttpMethod::UrlRequestGranted));
    assert!(both[1].1.starts_with(&format!("https://{tls_addr}/lslhttps/")), "{both:?}");
}

#[test]
fn silent_tls_client_is_dropped_after_the_handshake_timeout() {
    let certs = Certs::new();
    let tls = TlsConfig::from_pem_files(&certs.cert, &certs.key).unwrap();
    let config = Config { handshake_timeout: Duration::from_millis(300), ..Config::default() };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let server = Server::bind_all([("127.0.0.1:0", ListenerOptions::tls(tls))], config, Secure::default())
                .await
                .unwrap();
            tx.send((server.local_addr().unwrap(), server.handle())).unwrap();
            server.run().await;
        });
    });
    let (addr, handle) = rx.recv_timeout(WAIT).unwrap();
    // Connects and sends nothing: the front stage gives up and closes (EOF, not our timeout).
    let mut sock = wire::tcp(addr);
    let mut buf = [0u8; 16];
    assert_eq!(sock.read(&mut buf).map_err(|e| e.kind()), Ok(0));
    // A client that speaks is served.
    let url = format!("https://{addr}/");
    let answer =
        tls::request(tls::connect(&url, &certs.client_config()), &format!("GET / HTTP/1.1\r\nHost: {addr}"), "");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    handle.shutdown().unwrap();
}

#[test]
fn bad_certificate_and_key_files_are_typed_errors() {
    let certs = Certs::new();
    let missing = certs.dir.join("missing.pem");
    let empty = certs.dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(TlsConfig::from_pem_files(&missing, &certs.key), Err(TlsError::Certificate { .. })));
    assert!(matches!(TlsConfig::from_pem_files(&empty, &certs.key), Err(TlsError::NoCertificate { .. })));
    // A key file without a key (the certificate given twice).
    assert!(matches!(TlsConfig::from_pem_files(&certs.cert, &certs.cert), Err(TlsError::Key { .. })));
    // A key that is not the certificate's.
    let other = Certs::new();
    let mismatch = TlsConfig::from_pem_files(&certs.cert, &other.key);
    assert!(matches!(mismatch, Err(TlsError::Rejected(_))), "{mismatch:?}");
    assert!(TlsConfig::from_pem_files(&certs.cert, &certs.key).is_ok());
    // The example reports it and exits 1 before listening.
    let out = std::process::Command::new(e2e_support::process::echo_server_bin())
        .args(["--bind", "127.0.0.1:0", "--tls-bind", "127.0.0.1:0", "--tls-cert"])
        .arg(&empty)
        .arg("--tls-key")
        .arg(&certs.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn many_regions_behind_one_tls_listener() {
    let certs = Certs::new();
    let mut args = certs.args();
    args.extend(["--regions".to_string(), "3".to_string()]);
    let mut server = EchoProcess::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Each region's lines come in its own order; regions may interleave.
    let mut seen = std::collections::HashMap::new();
    while seen.len() < 6 {
        let (label, region, url) = server.wait_for(|line| match line {
            e2e_support::process::Line::Out(l) => {
                let words: Vec<&str> = l.split(' ').collect();
                let region = words.get(2)?.strip_prefix("region=")?.parse::<usize>().ok()?;
                words[0].starts_with("secure-").then(|| (words[0].to_string(), region, words[1].to_string()))
            }
            _ => None,
        });
        seen.insert((label, region), url);
    }
    let config = certs.client_config();
    let ca = certs.ca.display().to_string();
    for region in 0..3 {
        let wss = &seen[&("secure-object-url".to_string(), region)];
        let https = &seen[&("secure-http-url".to_string(), region)];
        // The TLS session was handshaken on the acceptor's thread and goes on in the region's.
        let mut ws = tls::wss_client(wss, &config);
        for i in 0..20 {
            tls::echo_once(&mut ws, &format!("region {region} message {i}"));
        }
        let body = format!("region {region} over https");
        let answer = curl(&["--cacert", &ca, "-H", "Content-Type: text/plain; charset=utf-8", "-d", &body], https);
        assert_eq!((answer.status, answer.text()), (200, body));
    }
    // A region removed: its TLS sessions get 1001 like plain ones, the others go on.
    let mut zero = tls::wss_client(&seen[&("secure-object-url".to_string(), 0)], &config);
    let mut two = tls::wss_client(&seen[&("secure-object-url".to_string(), 2)], &config);
    server.send_line("remove-region 0");
    assert_eq!(close_of(&mut zero), (1001, "region restart".to_string()));
    tls::echo_once(&mut two, "region 2 still echoes over TLS");
    // Untagged requests (the page) now go to the lowest region left, over TLS too.
    let page = curl(&["--cacert", &ca], &format!("https://{}/", authority(&seen[&("secure-http-url".to_string(), 1)])));
    assert_eq!(page.status, 200);
}

#[test]
fn plain_proxy_listener_takes_the_client_address_from_a_trusted_peer() {
    let mut server = EchoProcess::start(&["--proxy-bind", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1"]);
    // Printed on stderr before the URLs; start() keeps the stderr lines it passed.
    let listener = |l: &str| l.strip_prefix("also listening on ")?.strip_suffix(" (expects PROXY)")?.parse().ok();
    let seen = server.stderr.iter().find_map(|l| listener(l));
    let proxied: SocketAddr = seen.unwrap_or_else(|| {
        server.wait_for(|line| match line {
            e2e_support::process::Line::Err(l) => listener(l),
            _ => None,
        })
    });
    let (_, path) = tls::split(&server.http_url());
    let ask = |addr: SocketAddr, proxy: &str| {
        let head = format!("{proxy}GET {path}header/x-remote-ip HTTP/1.1\r\nHost: {addr}");
        tls::request(wire::tcp(addr), &head, "")
    };
    let answer = ask(proxied, "PROXY TCP4 192.0.2.44 127.0.0.1 40000 8787\r\n");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("192.0.2.44"), "{answer}");
    // The plain listener expects no header: its client is the peer itself.
    let direct = ask(server.addr(), "");
    assert!(direct.ends_with("127.0.0.1"), "{direct}");
    // And a PROXY line there is no header but a bad request.
    let spoofed = ask(server.addr(), "PROXY TCP4 192.0.2.44 127.0.0.1 40000 8787\r\n");
    assert!(spoofed.starts_with("HTTP/1.1 4"), "{spoofed}");
}
