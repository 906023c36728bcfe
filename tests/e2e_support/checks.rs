//! SPEC §4 and §5 as seen from a socket, one function per row group. Each
//! takes a fresh target running the example's echo scripts with the
//! example's config (see `echo::example_config`).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use tungstenite::Message;

use super::Target;
use super::wire::{
    self, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Raw, client, close_payload, echo_once, frame, http,
    masked, recv_close, recv_text, split_url, upgrade_request,
};

/// A capability no server minted.
const UNKNOWN_CAP: &str = "/lslws/6f1d3b0e-93a1-4c55-8e1b-2b7d0c4e9f10/";

fn path_of(url: &str) -> String {
    split_url(url).1
}

fn status(t: &dyn Target, request: &str) -> u16 {
    http(t.addr(), request).status
}

pub fn handshake_101(t: &mut dyn Target) {
    let url = t.object_url();
    let mut raw = Raw::open(&url);
    raw.text("hello");
    assert_eq!(raw.expect_text(), "hello");
    // Path info and query after the capability reach the same URL.
    let mut raw = Raw::open(&format!("{url}some/path?x=1,2"));
    raw.text("with path");
    assert_eq!(raw.expect_text(), "with path");
}

pub fn unknown_or_malformed_cap_404(t: &mut dyn Target) {
    for path in [UNKNOWN_CAP, "/lslws/not-a-capability/", "/lslws/"] {
        assert_eq!(status(t, &upgrade_request(path, "")), 404, "{path}");
    }
}

pub fn not_get_405(t: &mut dyn Target) {
    let path = path_of(&t.object_url());
    let post = format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status(t, &post), 405);
    let upgrade_post = upgrade_request(&path, "").replacen("GET", "POST", 1);
    assert_eq!(status(t, &upgrade_post), 405);
}

pub fn bad_upgrade_400(t: &mut dyn Target) {
    let path = path_of(&t.object_url());
    let without = |line: &str| upgrade_request(&path, "").replace(line, "");
    let key_line = format!("Sec-WebSocket-Key: {}\r\n", wire::KEY);
    let cases = [
        ("no key", without(&key_line)),
        ("short key", upgrade_request(&path, "").replace(wire::KEY, "abc")),
        ("15-byte key", upgrade_request(&path, "").replace(wire::KEY, "AAAAAAAAAAAAAAAAAAAA")),
        ("no Connection", without("Connection: Upgrade\r\n")),
        (
            "Connection without upgrade",
            upgrade_request(&path, "").replace("Connection: Upgrade", "Connection: keep-alive"),
        ),
        ("Upgrade not websocket", upgrade_request(&path, "").replace("Upgrade: websocket", "Upgrade: h2c")),
    ];
    for (what, request) in cases {
        assert_eq!(status(t, &request), 400, "{what}");
    }
}

pub fn version_426(t: &mut dyn Target) {
    let path = path_of(&t.object_url());
    let request = upgrade_request(&path, "").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let head = http(t.addr(), &request);
    assert_eq!(head.status, 426);
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
}

pub fn plain_get_426(t: &mut dyn Target) {
    let path = path_of(&t.object_url());
    assert_eq!(status(t, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")), 426);
}

pub fn header_431(t: &mut dyn Target) {
    let path = path_of(&t.object_url());
    let at_limit = upgrade_request(&path, &format!("User-Agent: {}\r\n", "u".repeat(255)));
    assert_eq!(status(t, &at_limit), 101, "a 255-byte value is allowed");
    let over = upgrade_request(&path, &format!("User-Agent: {}\r\n", "u".repeat(256)));
    assert_eq!(status(t, &over), 431, "a 256-byte value");
    let many: String = (0..40).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(200))).collect();
    assert_eq!(status(t, &upgrade_request(&path, &many)), 431, "a head over 8 KiB");
}

pub fn sessions_503(t: &mut dyn Target) {
    let _heavy = super::heavy();
    let url = t.object_url();
    let (addr, path) = split_url(&url);
    let mut open = Vec::new();
    let refused = loop {
        assert!(open.len() < 1100, "no 503 after {} sessions", open.len());
        let mut stream = wire::tcp(addr);
        std::io::Write::write_all(&mut stream, upgrade_request(&path, "").as_bytes()).unwrap();
        let (head, _) = wire::read_head(&mut stream);
        match head.status {
            101 => open.push(stream),
            503 => break head,
            other => panic!("unexpected {other} after {} sessions", open.len()),
        }
    };
    assert_eq!(refused.header("retry-after"), Some("1"));
    // A session that goes away makes room.
    drop(open.pop());
    wire::wait_until("room after a session closed", || status(t, &upgrade_request(&path, "")) == 101);
}

pub fn rate_429(t: &mut dyn Target) {
    let _heavy = super::heavy();
    // The example allows 400 handshakes per second per address. Sixteen
    // clients in parallel send more than that; one must see 429.
    let addr = t.addr();
    let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                for _ in 0..150 {
                    if seen.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let head = http(addr, &upgrade_request(UNKNOWN_CAP, ""));
                    match head.status {
                        404 => {}
                        429 => {
                            assert_eq!(head.header("retry-after"), Some("1"));
                            seen.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        other => panic!("unexpected status {other}"),
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a rate-limit client failed");
    }
    assert!(seen.load(std::sync::atomic::Ordering::Relaxed), "no 429 after 2400 handshakes");
}

pub fn text_echo(t: &mut dyn Target) {
    let mut ws = client(&t.object_url());
    for text in ["hello", "héllo ✓ 🦀", "", "a,b,c", &"x".repeat(2048)] {
        echo_once(&mut ws, text);
    }
}

pub fn fragmented_echo(t: &mut dyn Target) {
    let mut raw = Raw::open(&t.object_url());
    raw.send(&masked(false, OP_TEXT, b"hel"));
    raw.send(&masked(true, OP_PING, b"between"));
    raw.send(&masked(false, OP_CONT, b"lo w\xc3")); // "ö" split across fragments
    raw.send(&masked(true, OP_CONT, b"\xb6rld"));
    let pong = raw.frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (OP_PONG, &b"between"[..]));
    assert_eq!(raw.expect_text(), "hello wörld");
}

pub fn oversize_1009(t: &mut dyn Target) {
    let url = t.object_url();
    let mut raw = Raw::open(&url);
    raw.text(&"a".repeat(2048));
    assert_eq!(raw.expect_text().len(), 2048, "exactly the cap is fine");
    raw.text(&"a".repeat(2049));
    raw.expect_close(1009);
    raw.expect_eof();

    // Refused from the frame header alone: the 1 MiB payload is never sent.
    let mut raw = Raw::open(&url);
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send(&header);
    raw.expect_close(1009);
    raw.expect_eof();

    // Fragments that add up to more than the cap.
    let mut raw = Raw::open(&url);
    raw.send(&masked(false, OP_TEXT, &[b'a'; 1500]));
    raw.send(&masked(true, OP_CONT, &[b'a'; 600]));
    raw.expect_close(1009);
    raw.expect_eof();
}

pub fn binary_1003(t: &mut dyn Target) {
    let mut raw = Raw::open(&t.object_url());
    raw.send(&masked(true, OP_BINARY, b"\x00\x01"));
    raw.expect_close(1003);
    raw.expect_eof();
}

pub fn invalid_utf8_1007(t: &mut dyn Target) {
    let url = t.object_url();
    let cases: [&[&[u8]]; 3] = [&[b"\xff"], &[b"ab\xe2"], &[b"ok \xe2\x82", b"A"]];
    for parts in cases {
        let mut raw = Raw::open(&url);
        for (i, part) in parts.iter().enumerate() {
            let opcode = if i == 0 { OP_TEXT } else { OP_CONT };
            raw.send(&masked(i + 1 == parts.len(), opcode, part));
        }
        raw.expect_close(1007);
        raw.expect_eof();
    }
}

pub fn protocol_errors_1002(t: &mut dyn Target) {
    let url = t.object_url();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("unmasked frame".into(), frame(true, 0, OP_TEXT, b"hi", None)),
        ("RSV1 set".into(), frame(true, 4, OP_TEXT, b"hi", Some([1, 2, 3, 4]))),
        ("RSV3 set".into(), frame(true, 1, OP_TEXT, b"hi", Some([1, 2, 3, 4]))),
        ("reserved data opcode 3".into(), masked(true, 0x3, b"")),
        ("reserved control opcode 0xB".into(), masked(true, 0xB, b"")),
        ("control frame over 125 bytes".into(), masked(true, OP_PING, &[b'p'; 126])),
        ("fragmented control frame".into(), masked(false, OP_PING, b"p")),
        ("continuation without start".into(), masked(true, OP_CONT, b"x")),
        (
            "new message inside a fragmented one".into(),
            [masked(false, OP_TEXT, b"a"), masked(true, OP_TEXT, b"b")].concat(),
        ),
        ("close payload of 1 byte".into(), masked(true, OP_CLOSE, &[3])),
    ];
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        cases.push((format!("close code {code}"), masked(true, OP_CLOSE, &close_payload(code, ""))));
    }
    for (what, bytes) in cases {
        let mut raw = Raw::open(&url);
        raw.send(&bytes);
        let f = raw.frame();
        assert_eq!(f.close().map(|c| c.0), Some(1002), "{what}: got {f:?}");
        raw.expect_eof();
    }
}

pub fn ping_pong(t: &mut dyn Target) {
    let mut raw = Raw::open(&t.object_url());
    for payload in [&b"abc"[..], b"", &[b'z'; 125]] {
        raw.send(&masked(true, OP_PING, payload));
        let pong = raw.frame();
        assert_eq!((pong.opcode, pong.fin), (OP_PONG, true));
        assert_eq!(pong.payload, payload);
    }
    raw.text("still open");
    assert_eq!(raw.expect_text(), "still open");
}

pub fn close_echo(t: &mut dyn Target) {
    let url = t.object_url();
    for (code, reason) in [(1000, "bye"), (4000, "custom"), (1001, "")] {
        let mut raw = Raw::open(&url);
        raw.send(&masked(true, OP_CLOSE, &close_payload(code, reason)));
        assert_eq!(raw.expect_close(code), reason);
        raw.expect_eof();
    }
    // A close without a status is echoed without one: 1005 never goes on the wire.
    let mut raw = Raw::open(&url);
    raw.send(&masked(true, OP_CLOSE, b""));
    let f = raw.frame();
    assert_eq!((f.opcode, f.payload.len()), (OP_CLOSE, 0), "{f:?}");
    raw.expect_eof();
}

/// SPEC §4: the session closes 1001 with `reason`, the old URL is 404, the new one works.
fn lifecycle(t: &mut dyn Target, command: &str, reason: &str) {
    let old = t.object_url();
    let mut ws = client(&old);
    echo_once(&mut ws, "before");
    t.command(command);
    assert_eq!(recv_close(&mut ws), (1001, reason.to_string()), "after {command}");
    assert_eq!(status(t, &upgrade_request(&path_of(&old), "")), 404, "old URL after {command}");
    let new = t.object_url();
    assert_ne!(new, old);
    let mut ws = client(&new);
    echo_once(&mut ws, "after");
}

pub fn lifecycle_reset(t: &mut dyn Target) {
    lifecycle(t, "reset", "script reset");
}

pub fn lifecycle_rez(t: &mut dyn Target) {
    lifecycle(t, "rez", "object rezzed");
}

pub fn lifecycle_region_change(t: &mut dyn Target) {
    lifecycle(t, "region-change", "region change");
}

pub fn lifecycle_owner_change(t: &mut dyn Target) {
    lifecycle(t, "owner-change", "owner change");
}

pub fn lifecycle_remove(t: &mut dyn Target) {
    lifecycle(t, "remove", "object removed");
}

pub fn lifecycle_restart(t: &mut dyn Target) {
    lifecycle(t, "restart", "region restart");
}

pub fn lifecycle_release(t: &mut dyn Target) {
    lifecycle(t, "release", "url released");
}

pub fn quit_closes_sessions(t: &mut dyn Target) {
    let url = t.object_url();
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let mut ws = client(&url);
            echo_once(&mut ws, &format!("client {i}"));
            std::thread::spawn(move || recv_close(&mut ws))
        })
        .collect();
    let took = t.quit();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), (1001, "region restart".to_string()));
    }
    assert!(took < Duration::from_secs(5), "quit took {took:?}");
}

/// Many clients, each sending a numbered burst: every echo arrives, in order.
pub fn many_clients(url: &str, clients: usize, messages: usize, wrap: fn(&str) -> String) {
    let _heavy = super::heavy();
    let barrier = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (url, barrier) = (url.to_string(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let ws = std::panic::catch_unwind(|| client(&url));
                // Everyone connects first, so the load is concurrent.
                barrier.wait();
                let mut ws = ws.unwrap_or_else(|_| panic!("client {c} could not connect"));
                for m in 0..messages {
                    ws.send(Message::text(wrap(&format!("{c}:{m}")))).unwrap();
                }
                for m in 0..messages {
                    assert_eq!(recv_text(&mut ws), wrap(&format!("{c}:{m}")), "client {c}");
                }
                let _ = ws.close(None);
            })
        })
        .collect();
    for (c, t) in threads.into_iter().enumerate() {
        t.join().unwrap_or_else(|_| panic!("client {c} failed"));
    }
}

pub fn clients_200_x_100(t: &mut dyn Target) {
    many_clients(&t.object_url(), 200, 100, str::to_string);
}
