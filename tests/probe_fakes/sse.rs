//! A deliberately broken server-sent events server (SPEC §14) for
//! `tests/probe_sse.rs`. It follows `echo_server`'s contract (the object
//! URL's script echoes every message to its session; the region script
//! listens on `echo` and answers `msg,echo,<p>` with `msg,echo,<p>`) and the
//! crate's SSE wire (conformance/FORMAT.md D45–D51), except for the
//! [`Flaws`] it is started with, so each `--sse` check is seen failing for
//! its own reason. Anything but a stream request or a request for a send
//! URL is closed at once, so the probe's other checks fail fast.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::CAP;
use super::lines::REGION_CAP;

/// What the server gets wrong, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flaws(pub u32);

impl Flaws {
    /// No `Cache-Control: no-cache`, no `X-Accel-Buffering: no`.
    pub const HEADERS: Flaws = Flaws(1);
    /// Event data is the text in quotes, unescaped (CR, LF and `"` break it).
    pub const RAW_DATA: Flaws = Flaws(1 << 1);
    /// Every message event has the id `{token}-1`.
    pub const SAME_IDS: Flaws = Flaws(1 << 2);
    /// No cap: a POST of any size is delivered.
    pub const NO_CAP: Flaws = Flaws(1 << 3);
    /// No UTF-8 check: invalid bytes are delivered as U+FFFD.
    pub const NO_UTF8: Flaws = Flaws(1 << 4);
    /// A POST to an unknown token is answered 204 (and dropped).
    pub const ANY_TOKEN: Flaws = Flaws(1 << 5);
    /// A DELETE is answered 204, but the stream gets no close event and stays open.
    pub const SILENT_DELETE: Flaws = Flaws(1 << 6);
    /// A reconnect to an ended session opens a new one (200).
    pub const ENDED_NEW: Flaws = Flaws(1 << 7);
    /// A reconnect with the `Last-Event-ID` of a live session is a new session (no resume).
    pub const NO_RESUME: Flaws = Flaws(1 << 8);
    /// The region endpoint echoes each POST body as is (no envelope).
    pub const REGION_RAW: Flaws = Flaws(1 << 9);
    /// Each flaw alone.
    pub const EACH: [Flaws; 10] = [
        Flaws::HEADERS,
        Flaws::RAW_DATA,
        Flaws::SAME_IDS,
        Flaws::NO_CAP,
        Flaws::NO_UTF8,
        Flaws::ANY_TOKEN,
        Flaws::SILENT_DELETE,
        Flaws::ENDED_NEW,
        Flaws::NO_RESUME,
        Flaws::REGION_RAW,
    ];

    fn has(self, f: Flaws) -> bool {
        self.0 & f.0 != 0
    }
}

/// One session: the events sent (for resuming), the stream's connection.
struct Session {
    token: String,
    region: bool,
    events: Vec<(u64, String)>,
    next: u64,
    writer: Option<TcpStream>,
    ended: bool,
}

/// Every session of every fake server, by (server port, token).
fn sessions() -> std::sync::MutexGuard<'static, HashMap<(u16, String), Session>> {
    static SESSIONS: OnceLock<Mutex<HashMap<(u16, String), Session>>> = OnceLock::new();
    SESSIONS.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_token() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    // Scattered, so that a token with one digit changed is no other session's.
    let bits = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ nanos) & 0xffff_ffff_ffff;
    format!("7a1e0c2d-4b3f-4e8a-9c6d-{bits:012x}")
}

/// One request head and body.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let mut chunk = [0; 16 * 1024];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf.drain(..length).collect();
    Some(Request { method, target, headers, body })
}

/// Sends one message event of `text` to the session (kept for resuming).
fn push(s: &mut Session, text: &str, flaws: Flaws) {
    let n = if flaws.has(Flaws::SAME_IDS) { 1 } else { s.next };
    s.next += 1;
    let data = if flaws.has(Flaws::RAW_DATA) {
        format!("\"{text}\"")
    } else {
        serde_json::to_string(text).unwrap_or_default()
    };
    s.events.push((n, data.clone()));
    if let Some(w) = s.writer.as_mut() {
        let _ = w.write_all(format!("id: {}-{n}\ndata: {data}\n\n", s.token).as_bytes());
    }
}

/// The flaws of each fake server, by its port.
fn flaws_of() -> std::sync::MutexGuard<'static, HashMap<u16, Flaws>> {
    static FLAWS: OnceLock<Mutex<HashMap<u16, Flaws>>> = OnceLock::new();
    FLAWS.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes the fake server listening on `port` have `flaws` (before any client connects).
pub fn set_flaws(port: u16, flaws: Flaws) {
    flaws_of().insert(port, flaws);
}

/// Serves one connection with the flaws [`set_flaws`] gave its port (see the module doc).
pub fn broken_sse(mut stream: TcpStream) {
    let port = stream.local_addr().map_or(0, |a| a.port());
    let flaws = flaws_of().get(&port).copied().unwrap_or(Flaws(0));
    let mut buf = Vec::new();
    while let Some(r) = read_request(&mut stream, &mut buf) {
        if let Some(rest) = r.target.strip_prefix("/lslsse/") {
            let token = rest.split(['/', '?']).next().unwrap_or("").to_string();
            let status = send_url(port, &token, &r, flaws);
            let close = if r.method == "DELETE" || status != 204 { "Connection: close\r\n" } else { "" };
            let _ =
                stream.write_all(format!("HTTP/1.1 {status} Broken\r\nContent-Length: 0\r\n{close}\r\n").as_bytes());
            if !close.is_empty() {
                return;
            }
            continue;
        }
        let region = r.target.contains(REGION_CAP);
        let known = region || r.target.starts_with(&format!("/lslws/{CAP}/"));
        let wants = r.header("accept").is_some_and(|a| a.contains("text/event-stream"));
        if r.method != "GET" || !known || !wants {
            return;
        }
        return open_stream(stream, port, region, &r, flaws);
    }
}

/// A stream request: resume, 204, or a new session; then hold the stream open.
fn open_stream(mut stream: TcpStream, port: u16, region: bool, r: &Request, flaws: Flaws) {
    let headers = if flaws.has(Flaws::HEADERS) { "" } else { "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n" };
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n{headers}\r\n");
    let last =
        r.header("last-event-id").and_then(|id| id.rsplit_once('-')).map(|(t, n)| (t.to_string(), n.to_string()));
    let mut all = sessions();
    let resumed = match last {
        Some((token, n)) => match all.get_mut(&(port, token.clone())) {
            Some(s) if s.ended && !flaws.has(Flaws::ENDED_NEW) => {
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                return;
            }
            Some(s) if !s.ended && !flaws.has(Flaws::NO_RESUME) => {
                let seen: u64 = n.parse().unwrap_or(0);
                let mut out = head.clone();
                for (id, data) in s.events.iter().filter(|(id, _)| *id > seen) {
                    out.push_str(&format!("id: {token}-{id}\ndata: {data}\n\n"));
                }
                let _ = stream.write_all(out.as_bytes());
                s.writer = stream.try_clone().ok();
                Some(token)
            }
            _ => None,
        },
        None => None,
    };
    let token = resumed.unwrap_or_else(|| {
        let token = new_token();
        let first = format!("retry: 2000\nid: {token}-0\nevent: session\ndata: {{\"send\":\"/lslsse/{token}/\"}}\n\n");
        let _ = stream.write_all(format!("{head}{first}").as_bytes());
        let s = Session {
            token: token.clone(),
            region,
            events: Vec::new(),
            next: 1,
            writer: stream.try_clone().ok(),
            ended: false,
        };
        all.insert((port, token.clone()), s);
        token
    });
    drop(all);
    // Held until the client goes (the read timeout of `fake_server` bounds it).
    let mut sink = [0; 1024];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    if let Some(s) = sessions().get_mut(&(port, token)) {
        s.writer = None;
    }
}

/// A `POST` or `DELETE` of a send URL: the status.
fn send_url(port: u16, token: &str, r: &Request, flaws: Flaws) -> u16 {
    let mut all = sessions();
    let Some(s) = all.get_mut(&(port, token.to_string())).filter(|s| !s.ended) else {
        return if flaws.has(Flaws::ANY_TOKEN) && r.method == "POST" { 204 } else { 404 };
    };
    match r.method.as_str() {
        "DELETE" => {
            if !flaws.has(Flaws::SILENT_DELETE) {
                s.ended = true;
                let n = s.next;
                if let Some(mut w) = s.writer.take() {
                    let close = format!("id: {token}-{n}\nevent: close\ndata: {{\"code\":1000,\"reason\":\"\"}}\n\n");
                    let _ = w.write_all(close.as_bytes());
                    let _ = w.shutdown(std::net::Shutdown::Both);
                }
            }
            204
        }
        "POST" => {
            if r.body.len() > 2048 && !flaws.has(Flaws::NO_CAP) {
                return 413;
            }
            let text = match String::from_utf8(r.body.clone()) {
                Ok(t) => t,
                Err(_) if !flaws.has(Flaws::NO_UTF8) => return 400,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            if !s.region || flaws.has(Flaws::REGION_RAW) {
                push(s, &text, flaws);
                return 204;
            }
            let reply = match text.split_once(',') {
                Some(("sub" | "uns", _)) => None,
                Some(("msg", rest)) => match rest.split_once(',') {
                    Some(("echo", payload)) => Some(format!("msg,echo,{payload}")),
                    Some((domain, _)) if !domain.is_empty() => Some(format!("err,{domain},no-listener")),
                    _ => Some("err,,bad-frame".into()),
                },
                _ => Some("err,,bad-frame".into()),
            };
            if let Some(reply) = reply {
                push(s, &reply, flaws);
            }
            204
        }
        _ => 405,
    }
}
