//! Deliberately broken line servers (SPEC §13) for `tests/probe.rs`: each
//! follows `echo_server`'s contract (the object URL echoes every message,
//! the region URL answers `msg,echo,<p>` with `msg,echo,<p>`) but gets the
//! line wire wrong in known ways, so each `--lines` check is seen failing:
//!
//! - [`LineMode::Sloppy`] frames lines by `\n` correctly, but takes any first
//!   line (no `\error 404` or `400`), keeps the `\r` of CRLF, unescapes what
//!   it reads yet escapes nothing it writes, knows no control line (`\ping`,
//!   `\close` are echoed as text and the connection stays open), has no cap
//!   and no UTF-8 check (invalid bytes echo as U+FFFD), and on the region URL
//!   ignores `sub`/`uns` and echoes every other line;
//! - [`LineMode::PerRead`] gets all of that right, but after the first line
//!   takes each TCP read for one whole line: two lines in one write are one
//!   message, a line split across writes is several.
//!
//! A connection whose first byte is not `/` is closed at once. Every wait
//! is bounded by the read timeout `fake_server` sets.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::CAP;

/// The region endpoint's capability on the broken line servers.
pub const REGION_CAP: &str = "0c0d6b8e-43a1-4c55-8e1b-2b7d0c4e9f10";
/// The cap the broken servers apply, if any (the SPEC default).
const MAX_MESSAGE: usize = 2048;

/// How the line server is broken (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMode {
    Sloppy,
    PerRead,
}

fn unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter().copied();
    while let Some(b) = bytes.next() {
        match (b, b == b'\\') {
            (_, false) => out.push(b),
            _ => match bytes.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b'\\') => out.push(b'\\'),
                Some(other) => out.extend_from_slice(&[b'\\', other]),
                None => out.push(b'\\'),
            },
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r")
}

/// What the server writes for one message line, and whether it closes after.
fn answer(line: &[u8], mode: LineMode, region: bool) -> (Option<String>, bool) {
    let sloppy = mode == LineMode::Sloppy;
    let line = if sloppy { line } else { line.strip_suffix(b"\r").unwrap_or(line) };
    if !sloppy {
        match line {
            b"\\ping" => return (Some("\\pong".into()), false),
            b"\\pong" => return (None, false),
            _ => {}
        }
        if let Some(rest) = line.strip_prefix(b"\\close") {
            let rest = String::from_utf8_lossy(rest.strip_prefix(b" ").unwrap_or(rest)).into_owned();
            let (code, reason) = rest.split_once(' ').unwrap_or((&rest, ""));
            let code = code.parse::<u16>().ok().filter(|c| *c == 1000 || (3000..=4999).contains(c)).unwrap_or(1000);
            return (Some(format!("\\close {code} {reason}")), true);
        }
    }
    let text = unescape(line);
    let text = match (String::from_utf8(text), sloppy) {
        (Ok(t), _) => t,
        (Err(e), true) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        (Err(_), false) => return (Some("\\close 1007 invalid utf-8".into()), true),
    };
    if !sloppy && text.len() > MAX_MESSAGE {
        return (Some("\\close 1009 message too big".into()), true);
    }
    let out = |t: &str| if sloppy { t.to_string() } else { escape(t) };
    if !region {
        return (Some(out(&text)), false);
    }
    if sloppy {
        let quiet = text.starts_with("sub,") || text.starts_with("uns,");
        return (if quiet { None } else { Some(text) }, false);
    }
    let reply = match text.split_once(',') {
        Some(("sub" | "uns", _)) => None,
        Some(("msg", rest)) => match rest.split_once(',') {
            Some(("echo", payload)) => Some(format!("msg,echo,{}", escape(payload))),
            Some((domain, _)) if !domain.is_empty() => Some(format!("err,{domain},no-listener")),
            _ => Some("err,,bad-frame".into()),
        },
        _ => Some("err,,bad-frame".into()),
    };
    (reply, false)
}

/// Serves one line client brokenly (see the module doc).
pub fn broken_lines(mut stream: TcpStream, mode: LineMode) {
    let mut buf = Vec::new();
    let mut chunk = [0; 16 * 1024];
    let end = loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            break end;
        }
        if mode == LineMode::PerRead && buf.len() >= 8192 {
            let _ = stream.write_all(b"\\error 400 bad request\n");
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    if buf[0] != b'/' {
        // Not a line client: the broken servers speak nothing else.
        return;
    }
    let first = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]).to_vec();
    buf.drain(..=end);
    let region = first.windows(REGION_CAP.len()).any(|w| w == REGION_CAP.as_bytes());
    if mode == LineMode::PerRead {
        let refusal = match std::str::from_utf8(&first) {
            Err(_) => Some(400),
            Ok(path) if !region && !path.starts_with(&format!("/lslws/{CAP}/")) => Some(404),
            Ok(_) => None,
        };
        if let Some(status) = refusal {
            let reason = if status == 400 { "bad request" } else { "not found" };
            let _ = stream.write_all(format!("\\error {status} {reason}\n").as_bytes());
            return;
        }
    }
    loop {
        // One message: the next line, or (PerRead) whatever one read brings.
        let line: Vec<u8> = match mode {
            LineMode::Sloppy => match buf.iter().position(|&b| b == b'\n') {
                Some(end) => buf.drain(..=end).take(end).collect(),
                None => match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        continue;
                    }
                },
            },
            LineMode::PerRead if !buf.is_empty() => std::mem::take(&mut buf),
            LineMode::PerRead => match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => chunk[..n].to_vec(),
            },
        };
        let line = match mode {
            LineMode::PerRead => line.strip_suffix(b"\n").map(<[u8]>::to_vec).unwrap_or(line),
            LineMode::Sloppy => line,
        };
        let (reply, close) = answer(&line, mode, region);
        if let Some(reply) = reply
            && stream.write_all(format!("{reply}\n").as_bytes()).is_err()
        {
            return;
        }
        if close {
            return;
        }
    }
}
