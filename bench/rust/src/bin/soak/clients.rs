//! The well-behaved clients: each sends tagged messages and checks every
//! answer, over one transport, following the server's URLs through churn.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tungstenite::Message;

use crate::counters::{Counters, add, bump};
use crate::net::{self, Http, Stream};
use crate::server::{Shared, next_url};

/// What every client thread shares.
#[derive(Clone)]
pub struct Ctx {
    pub counters: Arc<Counters>,
    pub urls: Shared,
    pub tls: Arc<rustls::ClientConfig>,
    pub stop: Arc<AtomicBool>,
}

/// Messages per session before a client closes it and opens another.
const PER_SESSION: u64 = 300;
/// Messages in flight per session.
const WINDOW: u64 = 4;
/// How long a client waits for a URL to appear or change.
const URL_WAIT: Duration = Duration::from_secs(20);

/// One client's identity: its number and its source address.
#[derive(Clone, Copy)]
pub struct Who {
    pub id: usize,
    pub source: IpAddr,
    pub region: usize,
}

/// A message's text: who sent it, on which session, its number, padding to ~64 B.
fn tag(who: Who, session: u64, seq: u64) -> String {
    let t = format!("t{}.{session}.{seq}:", who.id);
    format!("{t}{}", "x".repeat(64usize.saturating_sub(t.len())))
}

/// Checks the answer `text` against what the session expects next; true if delivered.
fn check(c: &Counters, who: Who, session: u64, expected: &mut u64, text: &str) -> bool {
    let parsed = text.strip_prefix('t').and_then(|t| {
        let (head, _) = t.split_once(':')?;
        let mut it = head.split('.');
        Some((it.next()?.parse::<usize>().ok()?, it.next()?.parse::<u64>().ok()?, it.next()?.parse::<u64>().ok()?))
    });
    match parsed {
        Some((id, s, seq)) if id == who.id && s == session && seq == *expected && text == tag(who, s, seq) => {
            *expected += 1;
            bump(&c.delivered);
            true
        }
        Some((id, s, seq)) if id == who.id && s == session && seq < *expected => {
            bump(&c.reordered);
            false
        }
        _ => {
            bump(&c.misrouted);
            false
        }
    }
}

/// The next URL for `label`, skipping ones known revoked.
fn url(ctx: &Ctx, who: Who, label: &str, old: Option<&str>) -> Option<String> {
    next_url(&ctx.urls, who.region, label, old, URL_WAIT)
}

fn known_revoked(ctx: &Ctx, url: &str) -> bool {
    ctx.urls.0.lock().unwrap().is_revoked(url)
}

/// An object- or region-scope WebSocket client (`label`: `object-url`,
/// `secure-object-url` or `region-url`; region frames are `msg,echo,…`).
pub fn websocket(ctx: Ctx, who: Who, label: &'static str) {
    let c = &ctx.counters;
    let region = label == "region-url";
    let mut current: Option<String> = None;
    let mut session = 0;
    while !ctx.stop.load(Relaxed) {
        let Some(u) = url(&ctx, who, label, None) else { continue };
        if current.as_deref() == Some(u.as_str()) && session > 0 && known_revoked(&ctx, &u) {
            continue;
        }
        let revoked_before = known_revoked(&ctx, &u);
        let Ok(stream) = net::connect(who.source, &u, &ctx.tls) else {
            bump(&c.unanswered);
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let mut ws = match tungstenite::client(u.as_str(), stream) {
            Ok((ws, _)) if revoked_before => {
                eprintln!("soak: after revocation: {label} {u} answered 101");
                bump(&c.after_revoke);
                drop(ws);
                continue;
            }
            Ok((ws, _)) => ws,
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
                // 404 for a URL revoked meanwhile, 429/503 for limits: defined answers.
                c.refuse(&format!("ws-handshake {}", r.status().as_u16()), 1);
                if r.status() == 404 {
                    let _ = url(&ctx, who, label, Some(&u));
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            Err(_) => {
                bump(&c.unanswered);
                continue;
            }
        };
        current = Some(u.clone());
        session += 1;
        let (mut next, mut expected) = (0u64, 0u64);
        let frame = |t: String| if region { format!("msg,echo,{t}") } else { t };
        let outcome = loop {
            while next < PER_SESSION && next - expected < WINDOW && !ctx.stop.load(Relaxed) {
                if ws.send(Message::text(frame(tag(who, session, next)))).is_err() {
                    break;
                }
                next += 1;
                bump(&c.sent);
            }
            if expected == next {
                break "done";
            }
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let t = t.as_str();
                    if region {
                        if let Some(p) = t.strip_prefix("msg,echo,") {
                            check(c, who, session, &mut expected, p);
                        } else if t.starts_with("err,echo,") {
                            // `no-listener` between a restart and the script listening again, or `busy`.
                            expected += 1;
                            c.refuse(t.split(',').take(3).collect::<Vec<_>>().join(",").as_str(), 1);
                        } else if t.starts_with("uns,echo") {
                        } else {
                            bump(&c.misrouted);
                        }
                    } else {
                        check(c, who, session, &mut expected, t);
                    }
                }
                Ok(Message::Close(frame)) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    // 1001: the URL was revoked; every message in flight got that answer.
                    if code == 1001 || code == 1000 {
                        c.refuse(&format!("ws-close {code}"), next - expected);
                    } else {
                        add(&c.lost, next - expected);
                    }
                    break "closed";
                }
                Ok(_) => {}
                Err(_) => {
                    add(&c.lost, next - expected);
                    break "broken";
                }
            }
        };
        if outcome == "done" {
            let _ = ws.close(None);
            while let Ok(m) = ws.read() {
                if let Message::Text(t) = m {
                    check(c, who, session, &mut expected, t.as_str());
                }
            }
        } else {
            let _ = url(&ctx, who, label, current.as_deref());
        }
    }
}

/// An HTTP-in client: keep-alive POSTs, each answered with its own body.
pub fn http_in(ctx: Ctx, who: Who, label: &'static str) {
    let c = &ctx.counters;
    let mut seq = 0;
    while !ctx.stop.load(Relaxed) {
        let Some(u) = url(&ctx, who, label, None) else { continue };
        let Ok(mut http) = Http::open(who.source, &u, &ctx.tls) else {
            bump(&c.unanswered);
            continue;
        };
        let (_, _, path) = net::split(&u);
        for _ in 0..PER_SESSION {
            if ctx.stop.load(Relaxed) {
                break;
            }
            let revoked_before = known_revoked(&ctx, &u);
            seq += 1;
            let body = tag(who, 0, seq);
            bump(&c.sent);
            match http.request("POST", &format!("{path}echo"), &body) {
                Ok(r) if r.status == 200 && revoked_before => {
                    eprintln!("soak: after revocation: {label} {u} answered 200");
                    bump(&c.after_revoke);
                    break;
                }
                Ok(r) if r.status == 200 => {
                    if r.body == body.as_bytes() {
                        bump(&c.delivered);
                    } else {
                        bump(&c.misrouted);
                    }
                    if r.close {
                        break;
                    }
                }
                Ok(r) => {
                    // 404 (revoked), 503 (revoked in flight, or the in-flight cap), 429: defined.
                    c.refuse(&format!("http {}", r.status), 1);
                    if r.status == 404 {
                        let _ = url(&ctx, who, label, Some(&u));
                    } else if r.status == 429 {
                        // Every HTTP-in request counts against the per-address rate; `Retry-After: 1`.
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    break;
                }
                Err(_) => {
                    bump(&c.lost);
                    break;
                }
            }
        }
    }
}

/// A line client (SPEC §13): the URL's path as the first line, then lines.
pub fn lines(ctx: Ctx, who: Who) {
    let c = &ctx.counters;
    let mut session = 0;
    while !ctx.stop.load(Relaxed) {
        let Some(u) = url(&ctx, who, "object-url", None) else { continue };
        let revoked_before = known_revoked(&ctx, &u);
        let (_, _, path) = net::split(&u);
        let Ok(stream) = net::connect(who.source, &u, &ctx.tls) else {
            bump(&c.unanswered);
            continue;
        };
        let mut r = BufReader::new(stream);
        if writeln!(r.get_mut(), "{path}").is_err() {
            bump(&c.unanswered);
            continue;
        }
        session += 1;
        let (mut next, mut expected) = (0u64, 0u64);
        let mut first = true;
        loop {
            while next < PER_SESSION && next - expected < WINDOW && !ctx.stop.load(Relaxed) {
                if writeln!(r.get_mut(), "{}", tag(who, session, next)).is_err() {
                    break;
                }
                next += 1;
                bump(&c.sent);
            }
            if expected == next {
                break;
            }
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    let line = line.trim_end_matches('\n');
                    if let Some(rest) = line.strip_prefix('\\') {
                        if rest.starts_with("error") || rest.starts_with("close") {
                            // `\error 404` (revoked before it opened) or `\close 1001 …`.
                            let word = rest.split(' ').take(2).collect::<Vec<_>>().join(" ");
                            c.refuse(&format!("line \\{word}"), next - expected);
                            if rest.starts_with("error 404") || rest.starts_with("close 1001") {
                                let _ = url(&ctx, who, "object-url", Some(&u));
                            }
                            break;
                        } else if rest == "ping" {
                            let _ = writeln!(r.get_mut(), "\\pong");
                        }
                        continue;
                    }
                    if first && revoked_before {
                        eprintln!("soak: after revocation: line client on {u} got {line:?}");
                        bump(&c.after_revoke);
                    }
                    first = false;
                    check(c, who, session, &mut expected, line);
                }
                _ => {
                    add(&c.lost, next - expected);
                    break;
                }
            }
        }
    }
}

/// An event-stream client (SPEC §14): a stream, POSTs to its send URL, and
/// now and then a dropped stream resumed with `Last-Event-ID`.
pub fn sse(ctx: Ctx, who: Who) {
    let c = &ctx.counters;
    let mut session = 0;
    'sessions: while !ctx.stop.load(Relaxed) {
        let Some(u) = url(&ctx, who, "object-url", None) else { continue };
        let Some((first, send)) = open_stream(&ctx, who, &u, None) else {
            let _ = url(&ctx, who, "object-url", Some(&u));
            continue;
        };
        let Ok(mut post) = Http::open(who.source, &u, &ctx.tls) else {
            bump(&c.unanswered);
            continue;
        };
        session += 1;
        let mut expected = 0;
        let mut stream = Some(first);
        for seq in 0..PER_SESSION {
            if ctx.stop.load(Relaxed) {
                break;
            }
            // Every 50th message is posted while the stream is away, then resumed.
            let away = seq % 50 == 49;
            let last_id = stream.as_ref().map(|s| s.last_id.clone()).unwrap_or_default();
            if away {
                stream = None;
            }
            bump(&c.sent);
            match post.request("POST", &send, &tag(who, session, seq)) {
                Ok(r) if r.status == 204 => {}
                Ok(r) => {
                    // 404: the session ended (revoked); 503: the script's queue is full.
                    c.refuse(&format!("sse-post {}", r.status), 1);
                    if r.status == 429 {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    let _ = url(&ctx, who, "object-url", Some(&u));
                    continue 'sessions;
                }
                Err(_) => {
                    bump(&c.lost);
                    continue 'sessions;
                }
            }
            if away {
                match open_stream(&ctx, who, &u, Some(&last_id)) {
                    Some((s, _)) => {
                        stream = Some(s);
                        bump(&c.resumes);
                    }
                    None => {
                        // 204 (ended meanwhile) or 404 (revoked): a defined answer.
                        c.refuse("sse-resume refused", 1);
                        continue 'sessions;
                    }
                }
            }
            match stream.as_mut().and_then(EventStream::event) {
                Some((name, data)) if name == "message" => {
                    let text = data.trim_matches('"');
                    check(c, who, session, &mut expected, text);
                }
                Some((name, data)) if name == "close" => {
                    let code = data.split("\"code\":").nth(1).and_then(|r| r.split(',').next()).unwrap_or("?");
                    c.refuse(&format!("sse-close {code}"), 1);
                    let _ = url(&ctx, who, "object-url", Some(&u));
                    continue 'sessions;
                }
                _ => {
                    bump(&c.lost);
                    continue 'sessions;
                }
            }
        }
    }
}

/// An open event stream.
struct EventStream {
    reader: BufReader<Box<dyn Stream>>,
    last_id: String,
}

impl EventStream {
    /// The next event (comments skipped): (name, data); `None` at the end.
    fn event(&mut self) -> Option<(String, String)> {
        let (mut name, mut data, mut any) = ("message".to_string(), String::new(), false);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if any {
                    return Some((name, data));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            any = true;
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = v.to_string();
            } else if let Some(v) = line.strip_prefix("id: ") {
                self.last_id = v.to_string();
            }
        }
    }
}

/// Opens a stream on `url`; a new one yields its send path, a resume none.
/// `None` for a refusal (404, 204), counted as after-revocation when the URL was known revoked.
fn open_stream(ctx: &Ctx, who: Who, url: &str, last_id: Option<&str>) -> Option<(EventStream, String)> {
    let c = &ctx.counters;
    let revoked_before = known_revoked(ctx, url);
    let (_, _, path) = net::split(url);
    let mut s = net::connect(who.source, url, &ctx.tls).ok()?;
    let id = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\n{id}\r\n").ok()?;
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    let code: u16 = status.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if code != 200 {
        if code == 0 {
            bump(&c.unanswered);
        } else if last_id.is_none() {
            c.refuse(&format!("sse-open {code}"), 1);
        }
        return None;
    }
    if revoked_before && last_id.is_none() {
        eprintln!("soak: after revocation: event stream on {url} answered 200");
        bump(&c.after_revoke);
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut stream = EventStream { reader, last_id: last_id.unwrap_or_default().to_string() };
    if last_id.is_some() {
        return Some((stream, String::new()));
    }
    let (name, data) = stream.event()?;
    if name != "session" {
        bump(&c.misrouted);
        return None;
    }
    let send = data.split("\"send\":\"").nth(1)?.split('"').next()?.to_string();
    Some((stream, send))
}
