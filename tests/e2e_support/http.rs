//! HTTP-in end to end (SPEC §8) with two real clients, `curl` and `ureq`,
//! plus raw TCP where the wire itself is the point (pipelining, HTTP/1.0,
//! requests held in flight). Each check runs against any [`Target`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::wire::{self, tcp};
use super::{Target, WAIT};

/// What a client saw: status, head text, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// `http://host:port/path` → (address, path).
pub fn split(url: &str) -> (SocketAddr, String) {
    wire::split_url(&url.replacen("http://", "ws://", 1))
}

/// Runs `curl -s -i` with `args` and the URL; the last response it printed.
pub fn curl(args: &[&str], url: &str) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl (scripts/setup.sh installs it)");
    assert!(out.status.success(), "curl {args:?} {url}: {}", String::from_utf8_lossy(&out.stderr));
    let mut bytes = out.stdout.as_slice();
    // Interim `100 Continue` heads come first.
    loop {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("curl printed a head") + 4;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        bytes = &bytes[end..];
        if status >= 200 {
            return Answer { status, head, body: bytes.to_vec() };
        }
    }
}

/// A ureq agent with timeouts that reads non-2xx answers as answers.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(WAIT)).http_status_as_error(false).build().into()
}

/// One request with ureq.
pub fn ureq(agent: &ureq::Agent, method: &str, url: &str, body: &[u8]) -> Answer {
    let response = match method {
        "GET" => agent.get(url).call(),
        "DELETE" => agent.delete(url).call(),
        "PUT" => agent.put(url).header("Content-Type", "text/plain; charset=utf-8").send(body),
        _ => agent.post(url).header("Content-Type", "text/plain; charset=utf-8").send(body),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let head = response.headers().iter().map(|(n, v)| format!("{n}: {}\r\n", v.to_str().unwrap_or(""))).collect();
    let body = response.body_mut().read_to_vec().expect("read the body");
    Answer { status, head, body }
}

/// A raw connection that sends `request` and keeps the socket.
pub fn send_raw(url: &str, request: &[u8]) -> TcpStream {
    let (addr, _) = split(url);
    let mut stream = tcp(addr);
    stream.write_all(request).unwrap();
    stream
}

/// Reads `n` complete responses from a raw connection.
pub fn read_answers(stream: &mut TcpStream, n: usize) -> Vec<Answer> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while out.len() < n {
        if let Some((answer, used)) = parse_one(&buf) {
            buf.drain(..used);
            if answer.status >= 200 {
                out.push(answer);
            }
            continue;
        }
        match stream.read(&mut chunk) {
            Ok(0) => panic!("closed after {} of {n} answers: {:?}", out.len(), String::from_utf8_lossy(&buf)),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) => panic!("reading answer {} of {n}: {e}", out.len() + 1),
        }
    }
    assert!(buf.is_empty(), "more than {n} answers");
    out
}

/// Whether the server closes the connection (EOF) within the wait.
pub fn closes(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0))
}

fn parse_one(buf: &[u8]) -> Option<(Answer, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let answer = Answer { status, head, body: Vec::new() };
    let len: usize = answer.header("content-length").map_or(0, |v| v.parse().unwrap_or(0));
    if buf.len() < end + len {
        return None;
    }
    Some((Answer { body: buf[end..end + len].to_vec(), ..answer }, end + len))
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{extra}\r\n{body}", body.len())
}

/// A request the script holds (never answers), shown to be in flight:
/// answers to later requests came back, and the region serves in order.
pub fn hold(url: &str) -> TcpStream {
    let (_, path) = split(url);
    let held = send_raw(url, format!("GET {path}hold HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    for _ in 0..2 {
        assert_eq!(curl(&[], &format!("{url}method")).status, 200);
    }
    held
}

// ---------------------------------------------------------------- checks

pub fn http_echo_curl_and_ureq(t: &mut dyn Target) {
    let url = t.http_url();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/lslhttp/") && url.ends_with('/'), "{url}");
    let a = curl(&["-H", "Content-Type: text/plain; charset=utf-8", "--data-binary", "hello, wörld ✓"], &url);
    assert_eq!((a.status, a.text().as_str()), (200, "hello, wörld ✓"));
    assert_eq!(a.header("content-type").as_deref(), Some("text/plain; charset=utf-8"));
    let agent = agent();
    for method in ["POST", "PUT"] {
        let a = ureq(&agent, method, &format!("{url}x"), "ünïcode".as_bytes());
        assert_eq!((a.status, a.text().as_str()), (200, "ünïcode"), "{method}");
    }
    for method in ["GET", "DELETE", "PUT"] {
        assert_eq!(ureq(&agent, method, &format!("{url}method"), b"").text(), method);
    }
    // No charset: ISO-8859-1, as Second Life reads it.
    let a = curl(&["-H", "Content-Type: text/plain", "--data-binary", "é"], &url);
    assert_eq!(a.text(), "Ã©");
}

pub fn http_refusals_404_405_431(t: &mut dyn Target) {
    let url = t.http_url();
    let (addr, _) = split(&url);
    let unknown = format!("http://{addr}/lslhttp/5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a/");
    assert_eq!(curl(&[], &unknown).status, 404);
    let ws_cap = t.object_url().replacen("ws://", "http://", 1).replacen("/lslws/", "/lslhttp/", 1);
    assert_eq!(curl(&[], &ws_cap).status, 404, "a WebSocket capability is no HTTP-in URL");
    for method in ["PATCH", "OPTIONS"] {
        let a = curl(&["-X", method], &url);
        assert_eq!(a.status, 405, "{method}");
        assert_eq!(a.header("allow").as_deref(), Some("GET, POST, PUT, DELETE"));
    }
    let a = curl(&["-I"], &url);
    assert_eq!(a.status, 405, "HEAD");
    let pad = format!("X-Pad: {}", "a".repeat(9000));
    assert_eq!(curl(&["-H", &pad], &url).status, 431);
}

pub fn http_body_limits_chunked_and_continue(t: &mut dyn Target) {
    let url = t.http_url();
    let long = "x".repeat(5000);
    let a = curl(&["--data-binary", &long], &url);
    assert_eq!(a.body.len(), 2048, "cut to 2048 bytes");
    let a = curl(&["-H", "Transfer-Encoding: chunked", "--data-binary", "chunked body"], &url);
    assert_eq!(a.text(), "chunked body");
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "-H", "Expect: 100-continue", "--data-binary", "after 100"])
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 100 Continue\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nafter 100"), "{text}");
}

pub fn http_status_and_headers(t: &mut dyn Target) {
    let url = t.http_url();
    assert_eq!(curl(&[], &format!("{url}status/418")).status, 418);
    assert_eq!(curl(&[], &format!("{url}status/700")).status, 500, "outside 100..=599");
    let a = curl(&["-H", "X-Thing: hello"], &format!("{url}header/x-thing"));
    assert_eq!(a.text(), "hello");
    let a = curl(&[], &format!("{url}header/x-script-url"));
    assert_eq!(a.text(), url.trim_end_matches('/'));
    assert_eq!(curl(&[], &format!("{url}header/x-path-info")).text(), "/header/x-path-info");
    assert_eq!(curl(&[], &format!("{url}header/x-query-string?a=1&b=2")).text(), "a=1&b=2");
    assert_eq!(curl(&["-H", "X-Remote-IP: 6.6.6.6"], &format!("{url}header/x-remote-ip")).text(), "127.0.0.1");
    let long = format!("X-Long: {}", "v".repeat(400));
    assert_eq!(curl(&["-H", &long], &format!("{url}header/x-long")).body.len(), 255);
}

pub fn http_keep_alive_pipelining_and_close(t: &mut dyn Target) {
    let url = t.http_url();
    let (_, path) = split(&url);
    let mut both = post(&path, "one", "");
    both.push_str(&post(&path, "two", ""));
    both.push_str(&post(&path, "three", "Connection: close\r\n"));
    let mut s = send_raw(&url, both.as_bytes());
    let bodies: Vec<String> = read_answers(&mut s, 3).iter().map(Answer::text).collect();
    assert_eq!(bodies, ["one", "two", "three"], "in order on one connection");
    assert!(closes(&mut s), "Connection: close ends it");
    let mut s = send_raw(&url, format!("GET {path}method HTTP/1.0\r\n\r\n").as_bytes());
    assert_eq!(read_answers(&mut s, 1)[0].text(), "GET");
    assert!(closes(&mut s), "HTTP/1.0 closes after the response");
    // A kept-alive connection serves a later request too.
    let mut s = send_raw(&url, post(&path, "first", "").as_bytes());
    assert_eq!(read_answers(&mut s, 1)[0].text(), "first");
    s.write_all(post(&path, "second", "").as_bytes()).unwrap();
    assert_eq!(read_answers(&mut s, 1)[0].text(), "second");
}

pub fn http_in_flight_cap_503(t: &mut dyn Target) {
    let url = t.http_url();
    let (_, path) = split(&url);
    let held: Vec<TcpStream> =
        (0..64).map(|_| send_raw(&url, format!("GET {path}hold HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())).collect();
    // The 65th is refused once all 64 are in flight; wait for that, bounded.
    let mut last = None;
    wire::wait_until("the 65th request to get 503", || {
        let a = curl(&[], &format!("{url}method"));
        let refused = a.status == 503;
        last = Some(a);
        refused
    });
    assert_eq!(last.unwrap().header("retry-after").as_deref(), Some("1"));
    drop(held);
    wire::wait_until("room again once the held clients left", || curl(&[], &format!("{url}method")).status == 200);
}

/// One lifecycle command: a held request is answered 503 at once, the old URL is 404, the new one echoes.
pub fn http_lifecycle(t: &mut dyn Target, command: &str) {
    let old = t.http_url();
    let mut held = hold(&old);
    t.command(command);
    held.set_read_timeout(Some(WAIT)).unwrap();
    let answer = read_answers(&mut held, 1).remove(0);
    assert_eq!(answer.status, 503, "{command}: in flight → 503 at once");
    assert_eq!(curl(&[], &old).status, 404, "{command}: the old URL is gone");
    let new = t.http_url();
    assert_ne!(new, old);
    assert_eq!(curl(&["--data-binary", "again"], &new).text(), "again", "{command}: the new URL works");
}

/// 200 concurrent keep-alive clients × 50 requests each, every answer checked.
///
/// 200 clients of one script can have more than its 64 requests in flight
/// (SPEC §8): those are answered 503 with `Retry-After`, an answer and not a
/// loss, and the client sends the request again, as a well-behaved one would
/// (sooner than the header's second, to keep the test short).
pub fn http_clients_200_x_50(t: &mut dyn Target) {
    let url = t.http_url();
    let threads: Vec<_> = (0..200)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut refused = 0;
                for i in 0..50 {
                    let tag = format!("client {c} request {i}");
                    let a = loop {
                        let a = ureq(&agent, "POST", &url, tag.as_bytes());
                        if a.status != 503 || refused > 5000 {
                            break a;
                        }
                        assert_eq!(a.header("retry-after").as_deref(), Some("1"), "503 says when to retry");
                        refused += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    };
                    assert_eq!((a.status, a.text()), (200, tag), "lost, reordered or misrouted");
                }
                refused
            })
        })
        .collect();
    let refused: usize = threads.into_iter().map(|t| t.join().expect("a client thread")).sum();
    eprintln!("200 x 50 requests: all 10000 echoed in order; {refused} answered 503 (over 64 in flight) and retried");
}

/// The unanswered-request timeout, on a target started with a 1 s timeout.
pub fn http_timeout_504(t: &mut dyn Target) {
    let url = t.http_url();
    let start = std::time::Instant::now();
    let a = curl(&[], &format!("{url}hold"));
    assert_eq!(a.status, 504);
    assert!(start.elapsed() >= Duration::from_millis(900), "not before the timeout");
}

/// The rate limit, on a target started with 3 requests per second.
pub fn http_rate_429(t: &mut dyn Target) {
    let url = t.http_url();
    let statuses: Vec<u16> = (0..10).map(|_| curl(&[], &format!("{url}method")).status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let a = curl(&[], &format!("{url}method"));
    if a.status == 429 {
        assert_eq!(a.header("retry-after").as_deref(), Some("1"));
    }
}
