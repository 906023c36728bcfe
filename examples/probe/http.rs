//! HTTP-in requests and responses over plain std::net HTTP/1.1 (SPEC §8):
//! requests under the `--http-url`, whole responses read by their framing
//! (`Content-Length`, chunked, or the end of the connection), interim `1xx`
//! answers, and the end of a connection the server must close.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use crate::net::{Head, Stream, Target, rate_wait, shown};
use crate::{MAX_HEAD, Probe, RATE_RETRIES};

/// The largest response body the probe reads.
const MAX_BODY: usize = 1 << 20;

/// One whole response.
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    /// `200 "body"` style, for failure messages.
    pub fn shown(&self) -> String {
        format!("{:?} with body {}", self.head.first_line(), shown(&self.body))
    }

    /// Expects `status` and exactly `body`.
    pub fn expect(&self, what: &str, status: u16, body: &[u8]) -> Result<(), String> {
        if self.head.status != status || self.body != body {
            return Err(format!("{what}: got {}, want {status} with body {}", self.shown(), shown(body)));
        }
        Ok(())
    }
}

/// The request target for `sub` (path info and query, `""` for the URL
/// itself) under the HTTP-in URL `t`, its trailing `/` kept only for `""`.
pub fn target(t: &Target, sub: &str) -> String {
    if sub.is_empty() {
        return t.path.clone();
    }
    let base = t.path.split('?').next().unwrap_or("").trim_end_matches('/');
    format!("{base}{sub}")
}

/// A request on `t`: `sub` as [`target`] takes it, `headers` as extra
/// lines (each ending in `\r\n`), and `body` with its `Content-Length`
/// (also for an empty body of a `POST` or `PUT`).
pub fn request(t: &Target, method: &str, sub: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let length = if body.is_empty() && !matches!(method, "POST" | "PUT") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let mut out =
        format!("{method} {} HTTP/1.1\r\nHost: {}\r\n{headers}{length}\r\n", target(t, sub), t.authority).into_bytes();
    out.extend_from_slice(body);
    out
}

/// One connection to an HTTP-in URL, read response by response.
pub struct Conn {
    pub stream: Stream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(p: &Probe, t: &Target) -> Result<Conn, String> {
        Ok(Conn { stream: p.connect(t)?, buf: Vec::new() })
    }

    /// A connection whose waits last `timeout` instead of `--timeout`.
    pub fn open_with(p: &Probe, t: &Target, timeout: Duration) -> Result<Conn, String> {
        let mut conn = Conn::open(p, t)?;
        conn.stream.set_timeout(timeout);
        Ok(conn)
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.arm();
        self.stream.write_all(bytes).map_err(|e| format!("sending the request: {e}"))
    }

    /// Reads more bytes; `Ok(false)` at the end of the connection.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => Err(e.to_string()),
            // A reset ends the connection like a close does.
            Err(_) => Ok(false),
        }
    }

    /// The next response head, interim (`1xx`) ones included.
    pub fn head(&mut self) -> Result<Head, String> {
        self.stream.arm();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut parts = text.split_whitespace();
                let version = parts.next().unwrap_or("");
                return match parts.next().and_then(|s| s.parse::<u16>().ok()) {
                    Some(status) if version.starts_with("HTTP/1.") => Ok(Head { status, text }),
                    _ => Err(format!("not an HTTP/1.x response: {}", shown(text.as_bytes()))),
                };
            }
            if self.buf.len() > MAX_HEAD {
                return Err(format!("no end of the response head within {MAX_HEAD} bytes"));
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) if self.buf.is_empty() => {
                    return Err("the server closed the connection without answering".into());
                }
                Ok(false) => return Err(format!("the connection closed inside a response head: {}", shown(&self.buf))),
                Err(e) if self.buf.is_empty() => return Err(format!("no response: {e}")),
                Err(e) => return Err(format!("reading a response head: {e}; got {}", shown(&self.buf))),
            }
        }
    }

    /// The next response, which must be final (an interim `1xx` is an
    /// error here); `head_request`: the request was a `HEAD`, no body follows.
    pub fn response(&mut self, head_request: bool) -> Result<Response, String> {
        let head = self.head()?;
        if head.status < 200 {
            return Err(format!("an unexpected interim response {:?}", head.first_line()));
        }
        let body = if head_request || head.status == 204 || head.status == 304 {
            Vec::new()
        } else if head.has_token("transfer-encoding", "chunked") {
            self.chunked()?
        } else if let Some(len) = head.header("content-length") {
            let len: usize = len.parse().map_err(|_| format!("a bad Content-Length {len:?}"))?;
            if len > MAX_BODY {
                return Err(format!("a response body of {len} bytes"));
            }
            self.exactly(len)?
        } else {
            // Delimited by the end of the connection.
            while self.fill()? {
                if self.buf.len() > MAX_BODY {
                    return Err("a response body without end".into());
                }
            }
            std::mem::take(&mut self.buf)
        };
        Ok(Response { head, body })
    }

    fn exactly(&mut self, len: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < len {
            if !self.fill().map_err(|e| format!("reading a body of {len} bytes: {e}"))? {
                return Err(format!("the connection closed inside a body of {len} bytes: {}", shown(&self.buf)));
            }
        }
        Ok(self.buf.drain(..len).collect())
    }

    fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD || !self.fill()? {
                return Err(format!("a bad chunked response: {}", shown(&self.buf)));
            }
        }
    }

    fn chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| format!("a bad chunk size {line:?}"))?;
            if body.len() + size > MAX_BODY {
                return Err("a chunked response body without end".into());
            }
            if size == 0 {
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exactly(size)?);
            if !self.line()?.is_empty() {
                return Err("a chunk not followed by CRLF".into());
            }
        }
    }

    /// Expects the server to close the connection with nothing more sent.
    pub fn expect_end(&mut self, when: &str) -> Result<(), String> {
        self.stream.arm();
        loop {
            if !self.buf.is_empty() {
                return Err(format!("{when}: the server sent more: {}", shown(&self.buf)));
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(format!("{when}: the connection stayed open ({e})")),
            }
        }
    }
}

/// Sends `bytes` on a new connection and reads one response, retrying
/// after `Retry-After` while the server answers 429.
pub fn exchange(p: &Probe, t: &Target, bytes: &[u8]) -> Result<(Response, Conn), String> {
    let head_request = bytes.starts_with(b"HEAD ");
    let mut tries = 0;
    loop {
        let mut conn = Conn::open(p, t)?;
        // The server may answer (e.g. 431) and close before it has read it all:
        // a failed write is judged by the answer, if there is one.
        let written = conn.send(bytes);
        let response = match conn.response(head_request) {
            Ok(r) => r,
            Err(e) => return Err(written.err().map_or(e.clone(), |w| format!("{w}; {e}"))),
        };
        if response.head.status == 429 && tries < RATE_RETRIES {
            tries += 1;
            rate_wait(&response.head);
            continue;
        }
        return Ok((response, conn));
    }
}

/// One request on a new connection: its response.
pub fn call(p: &Probe, method: &str, sub: &str, headers: &str, body: &[u8]) -> Result<Response, String> {
    let t = p.http()?;
    let what = format!("{method} {}", target(t, sub));
    exchange(p, t, &request(t, method, sub, headers, body)).map(|(r, _)| r).map_err(|e| format!("{what}: {e}"))
}

/// `GET sub` must be answered 200 with `want`.
pub fn get_expect(p: &Probe, sub: &str, headers: &str, want: &str) -> Result<(), String> {
    let r = call(p, "GET", sub, headers, b"")?;
    r.expect(&format!("GET {sub}"), 200, want.as_bytes())
}
