//! Handshake checks (SPEC §5, first table).

use tungstenite::handshake::client::generate_key;

use crate::Probe;
use crate::checks::Outcome;
use crate::frames::{Raw, check_101};
use crate::net::{exchange, expect_status, upgrade_request};

pub fn handshake_101(p: &Probe) -> Outcome {
    Raw::open(p, &p.object).map(drop)
}

/// The path with its capability changed in its last character.
pub fn mutate_cap(path: &str) -> String {
    let (path_only, query) = match path.find('?') {
        Some(q) => path.split_at(q),
        None => (path, ""),
    };
    let segments: Vec<&str> = path_only.split('/').collect();
    // The segment after `lslws` (or `lslhttp`, `lslhttps`), else the longest one.
    let index = segments
        .iter()
        .position(|s| matches!(*s, "lslws" | "lslhttp" | "lslhttps"))
        .map(|i| i + 1)
        .filter(|i| segments.get(*i).is_some_and(|s| !s.is_empty()))
        .or_else(|| (0..segments.len()).max_by_key(|i| segments[*i].len()));
    let mut out = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        if Some(i) != index || s.is_empty() {
            out.push(s.to_string());
            continue;
        }
        let mut chars: Vec<char> = s.chars().collect();
        if let Some(last) = chars.last_mut() {
            *last = match last.to_digit(16) {
                Some(v) => {
                    let next = std::char::from_digit((v + 1) % 16, 16).unwrap_or('0');
                    if last.is_ascii_uppercase() { next.to_ascii_uppercase() } else { next }
                }
                None if *last == 'x' => 'y',
                None => 'x',
            };
        }
        out.push(chars.into_iter().collect());
    }
    format!("{}{query}", out.join("/"))
}

pub fn unknown_cap_404(p: &Probe) -> Outcome {
    let t = p.object.with_path(mutate_cap(&p.object.path));
    expect_status(p, &t, &format!("GET {}", t.path), &upgrade_request(&t, &generate_key(), ""), 404).map(drop)
}

pub fn post_405(p: &Probe) -> Outcome {
    let t = &p.object;
    let upgrade = upgrade_request(t, &generate_key(), "").replacen("GET", "POST", 1);
    expect_status(p, t, "POST with upgrade headers", &upgrade, 405)?;
    let plain = format!("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n", t.path, t.authority);
    expect_status(p, t, "plain POST", &plain, 405).map(drop)
}

pub fn bad_key_400(p: &Probe) -> Outcome {
    let t = &p.object;
    let key = generate_key();
    let request = upgrade_request(t, &key, "");
    let cases = [
        ("no Sec-WebSocket-Key", request.replace(&format!("Sec-WebSocket-Key: {key}\r\n"), "")),
        ("a 2-byte key", request.replace(&key, "abc=")),
        ("a 15-byte key", request.replace(&key, "AAAAAAAAAAAAAAAAAAAA")),
        ("a key that is not base64", request.replace(&key, "!!!!!!!!!!!!!!!!!!!!!!==")),
    ];
    for (what, request) in cases {
        expect_status(p, t, what, &request, 400)?;
    }
    Ok(())
}

pub fn missing_connection_400(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = upgrade_request(t, &generate_key(), "");
    expect_status(p, t, "no Connection header", &request.replace("Connection: Upgrade\r\n", ""), 400)?;
    let keep_alive = request.replace("Connection: Upgrade", "Connection: keep-alive");
    expect_status(p, t, "Connection: keep-alive", &keep_alive, 400).map(drop)
}

pub fn missing_upgrade_400(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = upgrade_request(t, &generate_key(), "");
    expect_status(p, t, "no Upgrade header", &request.replace("Upgrade: websocket\r\n", ""), 400)?;
    expect_status(p, t, "Upgrade: h2c", &request.replace("Upgrade: websocket", "Upgrade: h2c"), 400).map(drop)
}

pub fn version_426(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = upgrade_request(t, &generate_key(), "").replace("Version: 13", "Version: 8");
    let head = expect_status(p, t, "version 8", &request, 426)?;
    if !head.has_token("sec-websocket-version", "13") {
        return Err(format!(
            "the 426 names no Sec-WebSocket-Version: 13 (got {:?})",
            head.header("sec-websocket-version")
        ));
    }
    Ok(())
}

pub fn plain_get_426(p: &Probe) -> Outcome {
    let t = &p.object;
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", t.path, t.authority);
    expect_status(p, t, "plain GET", &request, 426).map(drop)
}

pub fn header_value_431(p: &Probe) -> Outcome {
    let t = &p.object;
    let key = generate_key();
    let at_limit = upgrade_request(t, &key, &format!("User-Agent: {}\r\n", "u".repeat(255)));
    let (head, _, _) = exchange(p, t, &at_limit).map_err(|e| format!("a 255-byte value: {e}"))?;
    check_101(&head, &key).map_err(|e| format!("a 255-byte value must be allowed: {e}"))?;
    let over = upgrade_request(t, &generate_key(), &format!("User-Agent: {}\r\n", "u".repeat(256)));
    expect_status(p, t, "a 256-byte value", &over, 431).map(drop)
}

pub fn head_431(p: &Probe) -> Outcome {
    let t = &p.object;
    // 36 headers of 240-byte values: every value allowed, the head over 8 KiB.
    let pad: String = (0..36).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(240))).collect();
    let request = upgrade_request(t, &generate_key(), &pad);
    expect_status(p, t, &format!("a {}-byte head", request.len()), &request, 431).map(drop)
}

pub fn region_handshake_101(p: &Probe) -> Outcome {
    Raw::open(p, p.region()?).map(drop)
}
