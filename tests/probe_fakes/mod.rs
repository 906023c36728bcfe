//! A deliberately sloppy HTTP-in server for `tests/probe.rs`: it follows
//! `echo_server`'s echo contract (`/status/<n>`, `/header/<name>`,
//! `/method`, `/hold`, else the body) on one capability, but gets SPEC §8
//! wrong in known ways, so each HTTP-in check of the probe is seen failing
//! for its own reason:
//!
//! - `HEAD` is served like `GET` (no 405), heads of any size are read (no 431);
//! - bodies are read by `Content-Length` only (no chunked, no `100 Continue`),
//!   taken as UTF-8 whatever the charset (no ISO-8859-1), never cut at 2048;
//! - the status passes through unchecked (700 stays 700);
//! - header values are not cut at 255 bytes, and `x-path-info` keeps the query;
//! - [`Mode::CloseAlways`]: every answer says `Connection: close` and the
//!   connection closes (no keep-alive); [`Mode::KeepOpen`]: the connection
//!   stays open even after `Connection: close` or HTTP/1.0;
//! - [`Mode::WrongAnswers`] (kept open too) gets the script's side wrong
//!   instead: any capability is served (no 404), `\r\n` in bodies becomes
//!   `\n`, only an exact `charset=utf-8` is taken as UTF-8 (anything else as
//!   ISO-8859-1), invalid UTF-8 becomes `?` (not U+FFFD), 4xx statuses
//!   become 400, header names are matched as the client wrote them (not
//!   lower-cased), and the method is given lower-case.

#![allow(dead_code)] // each test binary uses a different part

pub mod lines;
pub mod sse;

use std::io::{Read, Write};
use std::net::TcpStream;

/// The one capability the sloppy server knows.
pub const CAP: &str = "5e0b7c1d-2a3f-4b6c-8d9e-0f1a2b3c4d5e";

/// How the sloppy server is wrong (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    CloseAlways,
    KeepOpen,
    WrongAnswers,
}

/// One request as the sloppy server reads it.
struct Request {
    method: String,
    target: String,
    /// Names as the client wrote them.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Reads the next request; `None` at the end of the connection.
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

/// The sloppy answer to one request: `None` for a request never answered.
fn answer(r: &Request, mode: Mode, authority: &str, remote: &str) -> Option<(i32, String, &'static str)> {
    let wrong = mode == Mode::WrongAnswers;
    let mut base = format!("/lslhttp/{CAP}");
    if wrong && let Some(rest) = r.target.strip_prefix("/lslhttp/") {
        base = format!("/lslhttp/{}", rest.split(['/', '?']).next().unwrap_or(""));
    }
    let Some(info) = r.target.strip_prefix(&base) else { return Some((404, String::new(), "")) };
    if !(info.is_empty() || info.starts_with('/') || info.starts_with('?')) {
        return Some((404, String::new(), ""));
    }
    if !matches!(r.method.as_str(), "GET" | "POST" | "PUT" | "DELETE" | "HEAD") {
        return Some((405, String::new(), "Allow: GET, POST, PUT, DELETE\r\n"));
    }
    let (path, query) = info.split_once('?').unwrap_or((info, ""));
    let path = if path == "/" { "" } else { path };
    let header = |name: &str| match name {
        "x-path-info" => info.to_string(),
        "x-query-string" => query.to_string(),
        "x-script-url" => format!("http://{authority}{base}"),
        "x-remote-ip" => remote.to_string(),
        _ => {
            let found = r.headers.iter().find(|(n, _)| if wrong { n == name } else { n.eq_ignore_ascii_case(name) });
            found.map(|(_, v)| v.clone()).unwrap_or_default()
        }
    };
    Some(if path == "/hold" || path.starts_with("/hold/") {
        return None;
    } else if let Some(n) = path.strip_prefix("/status/") {
        let status = n.parse().unwrap_or(500);
        match status {
            400..=499 if wrong => (400, String::new(), ""),
            100..=599 => (status, String::new(), ""),
            _ if wrong => (500, String::new(), ""),
            _ => (status, String::new(), ""),
        }
    } else if let Some(name) = path.strip_prefix("/header/") {
        (200, header(name), "")
    } else if path == "/method" {
        (200, if wrong { r.method.to_ascii_lowercase() } else { r.method.clone() }, "")
    } else if wrong {
        (200, wrong_body(r), "")
    } else {
        (200, String::from_utf8_lossy(&r.body).into_owned(), "")
    })
}

/// The body as [`Mode::WrongAnswers`] gets it wrong.
fn wrong_body(r: &Request) -> String {
    let content_type = r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str());
    let text = if content_type.is_some_and(|v| v.contains("charset=utf-8")) {
        let mut text = String::new();
        for chunk in r.body.utf8_chunks() {
            text.push_str(chunk.valid());
            text.extend(chunk.invalid().iter().map(|_| '?'));
        }
        text
    } else {
        r.body.iter().map(|&b| char::from(b)).collect()
    };
    text.replace("\r\n", "\n")
}

/// Serves one connection sloppily (see the module doc).
pub fn sloppy_http(mut stream: TcpStream, mode: Mode) {
    let keep_open = mode != Mode::CloseAlways;
    let authority = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let remote = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buf) {
        let Some((status, body, extra)) = answer(&request, mode, &authority, &remote) else {
            // Never answered: hold the connection until the client goes.
            let mut sink = [0; 4096];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            return;
        };
        let close = if keep_open { "" } else { "Connection: close\r\n" };
        let response = format!(
            "HTTP/1.1 {status} Sloppy\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}{close}\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() || !keep_open {
            return;
        }
    }
}
