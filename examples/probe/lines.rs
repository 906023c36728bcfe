//! Line-client checks (SPEC §13, with `--lines`): a TCP connection whose
//! first line is a WebSocket URL's path, then one message per line, LF, CR
//! and backslash escaped as `\n`, `\r`, `\\`; the control lines `\error`,
//! `\close`, `\ping`, `\pong` are this crate's (conformance/FORMAT.md D37–D44).

use std::io::{Read, Write};
use std::time::Duration;

use crate::checks::Outcome;
use crate::handshake::mutate_cap;
use crate::net::{Stream, Target, shown};
use crate::region::unknown_domain;
use crate::{Probe, RATE_RETRIES};

/// A line client's connection: lines in, lines out, every wait bounded.
pub struct LineConn {
    stream: Stream,
    buf: Vec<u8>,
    /// The longest line the probe reads.
    limit: usize,
}

impl LineConn {
    /// Connects and sends `first` (a request path) as the first line, then
    /// `rest` in the same write. A `\error 429` answer is retried after a
    /// second, like a 429 response.
    pub fn open(p: &Probe, t: &Target, first: &[u8], rest: &[u8]) -> Result<LineConn, String> {
        let mut tries = 0;
        loop {
            let mut conn = LineConn::raw(p, t)?;
            let mut bytes = first.to_vec();
            bytes.push(b'\n');
            bytes.extend_from_slice(rest);
            conn.send(&bytes)?;
            if rest.is_empty() || tries >= RATE_RETRIES {
                return Ok(conn);
            }
            // The first answer tells whether the first line was taken.
            match conn.line("an answer") {
                Ok(line) if line.starts_with(b"\\error 429") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_secs(1));
                }
                Ok(mut line) => {
                    line.push(b'\n');
                    line.extend_from_slice(&conn.buf);
                    conn.buf = line;
                    return Ok(conn);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A connection that has sent nothing yet.
    pub fn raw(p: &Probe, t: &Target) -> Result<LineConn, String> {
        Ok(LineConn { stream: p.connect(t)?, buf: Vec::new(), limit: p.frame_limit() })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Outcome {
        self.stream.arm();
        self.stream.write_all(bytes).map_err(|e| format!("sending {}: {e}", shown(bytes)))
    }

    /// The next line, without its `\n`; `what` names what was awaited.
    pub fn line(&mut self, what: &str) -> Result<Vec<u8>, String> {
        self.stream.arm();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
                return Ok(line);
            }
            if self.buf.len() > self.limit {
                return Err(format!("awaiting {what}: no end of line within {} bytes", self.limit));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) if self.buf.is_empty() => {
                    return Err(format!("awaiting {what}: the server closed the connection"));
                }
                Ok(0) => return Err(format!("awaiting {what}: the connection closed inside {}", shown(&self.buf))),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("awaiting {what}: {e}{}", partial(&self.buf))),
            }
        }
    }

    /// Expects the next line to be exactly `want` (as written on the wire).
    pub fn expect(&mut self, want: &str, after: &str) -> Outcome {
        let got = self.line(&format!("{} after {after}", shown(want.as_bytes())))?;
        if got != want.as_bytes() {
            return Err(format!("after {after}: got the line {}, want {}", shown(&got), shown(want.as_bytes())));
        }
        Ok(())
    }

    /// Expects a control line starting with `start` (`\close 1009 `, `\error 404 `), then the end of the connection.
    pub fn expect_end(&mut self, start: &str, after: &str) -> Outcome {
        let got = self.line(&format!("{start}… after {after}"))?;
        if !got.starts_with(start.as_bytes()) {
            return Err(format!("after {after}: got the line {}, want {start}…", shown(&got)));
        }
        self.expect_eof(&format!("{} after {after}", shown(&got)))
    }

    /// Expects the server to close the connection, nothing more sent.
    pub fn expect_eof(&mut self, after: &str) -> Outcome {
        self.stream.arm();
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!("after {after}: more bytes instead of the close: {}", shown(&chunk[..n]))),
            // A reset is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(format!("after {after}: the connection stayed open ({e})")),
        }
    }
}

fn partial(buf: &[u8]) -> String {
    if buf.is_empty() { String::new() } else { format!("; got {} without an end of line", shown(buf)) }
}

/// A message escaped as a line's text (no `\n`).
pub fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r")
}

fn object_session(p: &Probe, rest: &[u8]) -> Result<LineConn, String> {
    LineConn::open(p, &p.object, p.object.path.as_bytes(), rest)
}

/// Sends `text` as one line and expects it echoed as `want` (the wire form).
fn echo(conn: &mut LineConn, line: &str, want: &str) -> Outcome {
    conn.send(format!("{line}\n").as_bytes())?;
    conn.expect(want, &format!("the line {}", shown(line.as_bytes())))
}

pub fn lines_echo(p: &Probe) -> Outcome {
    let mut conn = object_session(p, b"hello\n")?;
    conn.expect("hello", "the first line and \"hello\"")?;
    for text in ["héllo ✓ 🦀", "a,b,c", "msg,echo,x"] {
        echo(&mut conn, text, text)?;
    }
    // Two lines in one write are two messages.
    conn.send(b"one\ntwo\n")?;
    conn.expect("one", "\"one\\ntwo\\n\" in one write")?;
    conn.expect("two", "\"one\\ntwo\\n\" in one write")?;
    // A URL with path info and a query reaches the same script.
    let (path, query) = p.object.path.split_once('?').unwrap_or((&p.object.path, ""));
    let sep = if path.ends_with('/') { "" } else { "/" };
    let query = if query.is_empty() { "?probe=1".to_string() } else { format!("?{query}&probe=1") };
    let first = format!("{path}{sep}probe/path{query}");
    let mut conn = LineConn::open(p, &p.object, first.as_bytes(), b"with path info\n")?;
    conn.expect("with path info", &format!("the first line {first}"))
}

pub fn lines_escapes(p: &Probe) -> Outcome {
    let mut conn = object_session(p, b"\\\\ping\n")?;
    // A message that reads like a control line travels with its backslash doubled.
    conn.expect("\\\\ping", "the message \\ping (sent escaped)")?;
    for text in ["a\nb\\c\rd", "\r\n", "\\", "\\n is not a newline", "trailing\\"] {
        let line = escape(text);
        echo(&mut conn, &line, &line)?;
    }
    echo(&mut conn, "", "").map_err(|e| format!("the empty line: {e}"))
}

pub fn lines_crlf(p: &Probe) -> Outcome {
    let mut first = p.object.path.clone().into_bytes();
    first.push(b'\r');
    let mut conn = LineConn::open(p, &p.object, &first, b"crlf\r\n")?;
    conn.expect("crlf", "a CRLF first line and \"crlf\\r\\n\"")?;
    echo(&mut conn, "a\rb\r", "a\\rb").map_err(|e| format!("only the CR before LF is dropped: {e}"))
}

pub fn lines_split(p: &Probe) -> Outcome {
    let mut conn = object_session(p, b"first\n")?;
    conn.expect("first", "\"first\"")?;
    let line = "split, byte by byte\n";
    for b in line.bytes() {
        conn.send(&[b])?;
        std::thread::sleep(Duration::from_millis(2));
    }
    conn.expect("split, byte by byte", "a line sent one byte per write")?;
    conn.send("caf\u{e9}".as_bytes().split_at(4).0)?;
    std::thread::sleep(Duration::from_millis(20));
    conn.send(b"\xa9 \xe2\x9c")?;
    std::thread::sleep(Duration::from_millis(20));
    conn.send(b"\x93\n")?;
    conn.expect("café ✓", "a line split inside its characters")
}

pub fn lines_oversize_1009(p: &Probe) -> Outcome {
    let n = p.max_message;
    let exact = "a".repeat(n);
    let mut conn = object_session(p, format!("{exact}\n").as_bytes())?;
    conn.expect(&exact, &format!("a line of {n} bytes (the cap)"))?;
    conn.send(format!("{}\n", "b".repeat(n + 1)).as_bytes())?;
    conn.expect_end("\\close 1009 ", &format!("a line of {} bytes", n + 1))?;
    // Decided before the line ends (D41): a partial line over 2 × cap + 2 bytes.
    let mut conn = object_session(p, b"x\n")?;
    conn.expect("x", "\"x\"")?;
    let long = "c".repeat(2 * n + 3);
    conn.send(long.as_bytes())?;
    conn.expect_end("\\close 1009 ", &format!("{} bytes without a newline", long.len()))
}

pub fn lines_invalid_utf8_1007(p: &Probe) -> Outcome {
    let mut conn = object_session(p, b"fine\n")?;
    conn.expect("fine", "\"fine\"")?;
    conn.send(b"\xc3(\n")?;
    conn.expect_end("\\close 1007 ", "the line \\xc3(")
}

/// Sends `bytes` on a new connection and expects a `start…` line, then the
/// end of the connection; `\error 429` is retried after a second.
fn refused(p: &Probe, bytes: &[u8], start: &str, after: &str) -> Outcome {
    let mut tries = 0;
    loop {
        let mut conn = LineConn::raw(p, &p.object)?;
        conn.send(bytes)?;
        let got = conn.line(&format!("{start}… after {after}"))?;
        if got.starts_with(b"\\error 429") && tries < RATE_RETRIES {
            tries += 1;
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        if !got.starts_with(start.as_bytes()) {
            return Err(format!("after {after}: got the line {}, want {start}…", shown(&got)));
        }
        return conn.expect_eof(&format!("{} after {after}", shown(&got)));
    }
}

pub fn lines_unknown_404(p: &Probe) -> Outcome {
    let path = mutate_cap(&p.object.path);
    refused(p, format!("{path}\nhello\n").as_bytes(), "\\error 404 ", &format!("the first line {path}"))?;
    refused(p, b"/nowhere\n", "\\error 404 ", "the first line /nowhere")
}

pub fn lines_bad_first_line_400(p: &Probe) -> Outcome {
    refused(p, b"/\xff\n", "\\error 400 ", "the first line /\\xff (not UTF-8)")?;
    let mut long = p.object.path.clone().into_bytes();
    long.resize(9000, b'a');
    refused(p, &long, "\\error 400 ", "9000 bytes of a first line without a newline")
}

pub fn lines_ping_pong(p: &Probe) -> Outcome {
    let mut conn = object_session(p, b"\\ping\n")?;
    conn.expect("\\pong", "\\ping")?;
    // A \pong from the client is no message: the next line is the echo.
    conn.send(b"\\pong\n")?;
    echo(&mut conn, "after pong", "after pong")?;
    echo(&mut conn, "\\ping\r", "\\pong")
}

pub fn lines_close_echo(p: &Probe) -> Outcome {
    for (sent, want) in [("\\close 3000 bye now", "\\close 3000 bye now"), ("\\close 4999", "\\close 4999")] {
        let mut conn = object_session(p, b"before\n")?;
        conn.expect("before", "\"before\"")?;
        conn.send(format!("{sent}\n").as_bytes())?;
        conn.expect_end(want, sent)?;
    }
    let mut conn = object_session(p, b"\\close\n")?;
    conn.expect_end("\\close 1000", "\\close alone")
}

pub fn lines_region(p: &Probe) -> Outcome {
    let region = p.region()?;
    let d = &p.domain;
    let mut conn = LineConn::open(p, region, region.path.as_bytes(), format!("sub,{d}\nmsg,{d},hi\n").as_bytes())?;
    conn.expect(&format!("msg,{d},hi"), &format!("sub,{d} and msg,{d},hi"))?;
    for payload in ["a,b,c", "two\nlines\r\n", "back\\slash", ""] {
        let line = format!("msg,{d},{}", escape(payload));
        echo(&mut conn, &line, &line)?;
    }
    let nobody = unknown_domain(p);
    echo(&mut conn, &format!("msg,{nobody},x"), &format!("err,{nobody},no-listener"))?;
    echo(&mut conn, "not an envelope", "err,,bad-frame")?;
    conn.send(format!("uns,{d}\n").as_bytes())?;
    let after = format!("msg,{d},after uns");
    echo(&mut conn, &after, &after)
}
