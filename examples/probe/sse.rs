//! Server-sent events checks (SPEC §14, with `--sse`): a `GET` with
//! `Accept: text/event-stream` on the object URL (with `--region-url` also
//! the region endpoint) opens a stream; messages go up by `POST` to the send
//! URL its first event names; the wire is this crate's
//! (conformance/FORMAT.md D45–D51): `id: {token}-{n}`, data a JSON string,
//! a final `event: close`, 204 to a reconnect of an ended session, resume
//! with `Last-Event-ID`.

use std::io::{Read, Write};

use crate::checks::{Check, ECHO, LIVE, Needs, Outcome, REGION_ECHO};
use crate::http::{Response, exchange};
use crate::net::{Head, Stream, Target, read_head, shown};
use crate::region::unknown_domain;
use crate::{Probe, RATE_RETRIES};

/// The checks of `--sse` (and `--sse --region-url`).
pub fn sse_checks() -> Vec<Check> {
    fn s(name: &'static str, what: &'static str, assumes: &'static str, run: fn(&Probe) -> Outcome) -> Check {
        Check { name, what, assumes, needs: Needs::Sse, run }
    }
    vec![
        s(
            "sse-open",
            "GET with Accept: text/event-stream → 200, text/event-stream, Cache-Control: no-cache, \
             X-Accel-Buffering: no, a first event \"session\" with id {token}-0 and the send URL",
            LIVE,
            sse_open,
        ),
        s(
            "sse-echo",
            "a POST is one message (204); the echo is one event, its data a JSON string (CR, LF, quotes)",
            ECHO,
            sse_echo,
        ),
        s("sse-ids", "event ids are {token}-{n}, n increasing from 0", ECHO, sse_ids),
        s(
            "sse-post-413",
            "a POST of --max-message bytes echoes, one more → 413",
            "the cap is --max-message; the script echoes",
            sse_post_413,
        ),
        s("sse-post-400", "a POST body that is not UTF-8 → 400, the session unharmed", ECHO, sse_post_400),
        s(
            "sse-unknown-404",
            "a POST to a send URL with a mutated token → 404",
            "the mutated token was never minted",
            sse_unknown_404,
        ),
        s(
            "sse-delete-close",
            "a DELETE of the send URL → 204, a final close event {\"code\":1000}, the response ends",
            LIVE,
            sse_delete_close,
        ),
        s(
            "sse-ended-204",
            "a reconnect with the Last-Event-ID of an ended session → 204; its send URL → 404",
            LIVE,
            sse_ended_204,
        ),
        s(
            "sse-resume",
            "drop the stream, POST while away, reconnect with Last-Event-ID → 200 and the echo replayed",
            "the script echoes; the reconnect comes within the idle interval (SPEC default 30 s)",
            sse_resume,
        ),
        Check {
            name: "sse-region",
            what: "the region endpoint over SSE: POST sub and msg (CR/LF payloads), events msg and err no-listener",
            assumes: REGION_ECHO,
            needs: Needs::SseRegion,
            run: sse_region,
        },
    ]
}

/// One block of an event stream (comments skipped).
#[derive(Debug, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    fn shown(&self) -> String {
        format!(
            "event {:?} id {:?} data {}",
            self.name(),
            self.id.as_deref().unwrap_or(""),
            shown(self.data.as_bytes())
        )
    }

    fn name(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    /// The data of a message event, read as a JSON string.
    fn text(&self) -> Result<String, String> {
        if self.name() != "message" {
            return Err(format!("got {}, want a message event", self.shown()));
        }
        serde_json::from_str(&self.data).map_err(|_| format!("got {}: its data is not a JSON string", self.shown()))
    }

    /// The id's number after its token.
    fn number(&self, token: &str) -> Result<u64, String> {
        let id = self.id.as_deref().unwrap_or("");
        id.strip_prefix(token)
            .and_then(|n| n.strip_prefix('-'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("got {}: its id is not {token}-<n>", self.shown()))
    }
}

/// An open stream: its response head, and for a new session its send path and token.
pub struct SseConn {
    pub head: Head,
    stream: Stream,
    buf: Vec<u8>,
    pub send: String,
    pub token: String,
    pub last_id: String,
    limit: usize,
}

impl SseConn {
    /// A stream request on `t` (with `Last-Event-ID`), retried while answered 429.
    pub fn request(p: &Probe, t: &Target, last_id: Option<&str>) -> Result<SseConn, String> {
        let id = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{id}\r\n",
            t.path, t.authority
        );
        let mut tries = 0;
        loop {
            let mut stream = p.connect(t)?;
            stream.arm();
            stream.write_all(request.as_bytes()).map_err(|e| format!("sending the stream request: {e}"))?;
            let (head, rest) = read_head(&mut stream).map_err(|e| format!("the stream request: {e}"))?;
            if head.status == 429 && tries < RATE_RETRIES {
                tries += 1;
                crate::net::rate_wait(&head);
                continue;
            }
            let last_id = last_id.unwrap_or("").to_string();
            let limit = p.frame_limit();
            return Ok(SseConn { head, stream, buf: rest, send: String::new(), token: String::new(), last_id, limit });
        }
    }

    /// A new session on `t`: 200, an event stream, its `session` event.
    pub fn open(p: &Probe, t: &Target) -> Result<SseConn, String> {
        let mut conn = SseConn::request(p, t, None)?;
        let (status, ctype) = (conn.head.status, conn.head.header("content-type").unwrap_or(""));
        if status != 200 || !ctype.starts_with("text/event-stream") {
            return Err(format!(
                "a stream request: got {:?} with Content-Type {ctype:?}, want 200 text/event-stream",
                conn.head.first_line()
            ));
        }
        let first = conn.event("the session event")?;
        let send = serde_json::from_str::<serde_json::Value>(&first.data)
            .ok()
            .and_then(|v| v.get("send").and_then(|s| s.as_str()).map(str::to_string));
        let (Some(send), "session") = (send, first.name()) else {
            return Err(format!("the first event: got {}, want event session with data {{\"send\":…}}", first.shown()));
        };
        let id = first.id.clone().unwrap_or_default();
        let Some(token) = id.strip_suffix("-0") else {
            return Err(format!("the session event's id: got {id:?}, want {{token}}-0"));
        };
        conn.token = token.to_string();
        conn.send = send;
        Ok(conn)
    }

    /// The next event, heartbeats and other comments skipped; `what` names what was awaited.
    pub fn event(&mut self, what: &str) -> Result<Event, String> {
        self.stream.arm();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                let text =
                    String::from_utf8(block).map_err(|_| format!("awaiting {what}: an event that is not UTF-8"))?;
                let mut event = Event::default();
                let mut any = false;
                for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
                    if line.starts_with(':') {
                        continue;
                    }
                    any = true;
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_string();
                    match field {
                        "id" => event.id = Some(value),
                        "event" => event.event = Some(value),
                        "data" if event.data.is_empty() => event.data = value,
                        "data" => event.data = format!("{}\n{value}", event.data),
                        _ => {}
                    }
                }
                if any {
                    if let Some(id) = &event.id {
                        self.last_id = id.clone();
                    }
                    return Ok(event);
                }
            }
            if self.buf.len() > self.limit {
                return Err(format!("awaiting {what}: no end of an event within {} bytes", self.limit));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(format!("awaiting {what}: the stream ended{}", partial(&self.buf))),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("awaiting {what}: {e}{}", partial(&self.buf))),
            }
        }
    }

    /// The next event must be a message whose text is `want`.
    fn expect_text(&mut self, want: &str, after: &str) -> Result<Event, String> {
        let event = self.event(&format!("the echo of {}", shown(want.as_bytes())))?;
        let text = event.text().map_err(|e| format!("after {after}: {e}"))?;
        if text != want {
            return Err(format!(
                "after {after}: got the text {}, want {}",
                shown(text.as_bytes()),
                shown(want.as_bytes())
            ));
        }
        Ok(event)
    }

    /// Expects the end of the response (comments may come first).
    fn expect_end(&mut self, after: &str) -> Outcome {
        match self.event("the end of the stream") {
            Err(e) if e.contains("the stream ended") || e.contains("reset") => Ok(()),
            Err(e) => Err(format!("after {after}: {e}")),
            Ok(event) => Err(format!("after {after}: got {} instead of the end of the stream", event.shown())),
        }
    }
}

fn partial(buf: &[u8]) -> String {
    if buf.is_empty() { String::new() } else { format!("; got {} without an end of event", shown(buf)) }
}

/// `method` of `body` on the send path `send` of a stream of `t`: the response.
fn send_request(p: &Probe, t: &Target, method: &str, send: &str, body: &[u8]) -> Result<Response, String> {
    let mut bytes =
        format!("{method} {send} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n", t.authority, body.len())
            .into_bytes();
    bytes.extend_from_slice(body);
    exchange(p, t, &bytes).map(|(r, _)| r).map_err(|e| format!("{method} {send}: {e}"))
}

/// A POST of `body` must be answered `want`.
fn post(p: &Probe, t: &Target, send: &str, body: &[u8], want: u16) -> Outcome {
    let r = send_request(p, t, "POST", send, body)?;
    if r.head.status != want {
        return Err(format!("POST {send} of {}: got {:?}, want {want}", shown(body), r.head.first_line()));
    }
    Ok(())
}

/// POSTs `text` and expects it echoed.
fn echo(p: &Probe, conn: &mut SseConn, text: &str) -> Result<Event, String> {
    post(p, &p.object, &conn.send.clone(), text.as_bytes(), 204)?;
    conn.expect_text(text, &format!("POST {}", shown(text.as_bytes())))
}

pub fn sse_open(p: &Probe) -> Outcome {
    let conn = SseConn::open(p, &p.object)?;
    let h = &conn.head;
    for (name, want) in [("cache-control", "no-cache"), ("x-accel-buffering", "no")] {
        if !h.header(name).is_some_and(|v| v.eq_ignore_ascii_case(want)) {
            return Err(format!("the stream's head: {name} is {:?}, want {want:?}", h.header(name)));
        }
    }
    if !conn.send.starts_with('/') || conn.send.len() < 20 {
        return Err(format!("the send URL {:?} is not an unguessable path", conn.send));
    }
    Ok(())
}

pub fn sse_echo(p: &Probe) -> Outcome {
    let mut conn = SseConn::open(p, &p.object)?;
    for text in ["hello", "two\r\nlines \"quoted\" \\ ✓", "a\rb\nc", "", "data: x\n\nevent: close"] {
        echo(p, &mut conn, text)?;
    }
    Ok(())
}

pub fn sse_ids(p: &Probe) -> Outcome {
    let mut conn = SseConn::open(p, &p.object)?;
    let token = conn.token.clone();
    let mut last = 0;
    for text in ["one", "two", "three"] {
        let n = echo(p, &mut conn, text)?.number(&token)?;
        if n <= last {
            return Err(format!("the echo of {text:?} has id {token}-{n}, after {token}-{last}: ids must increase"));
        }
        last = n;
    }
    Ok(())
}

pub fn sse_post_413(p: &Probe) -> Outcome {
    let mut conn = SseConn::open(p, &p.object)?;
    let n = p.max_message;
    let exact = "a".repeat(n);
    echo(p, &mut conn, &exact).map_err(|e| format!("a POST of {n} bytes (the cap): {e}"))?;
    let send = conn.send.clone();
    post(p, &p.object, &send, "b".repeat(n + 1).as_bytes(), 413)?;
    echo(p, &mut conn, "after 413").map(|_| ())
}

pub fn sse_post_400(p: &Probe) -> Outcome {
    let mut conn = SseConn::open(p, &p.object)?;
    let send = conn.send.clone();
    post(p, &p.object, &send, b"ab\xffcd", 400)?;
    post(p, &p.object, &send, b"caf\xc3", 400)?;
    echo(p, &mut conn, "after 400").map(|_| ())
}

pub fn sse_unknown_404(p: &Probe) -> Outcome {
    let conn = SseConn::open(p, &p.object)?;
    let token = &conn.token;
    // One hex digit of the token changed.
    let Some(i) = token.rfind(|c: char| c.is_ascii_hexdigit()) else {
        return Err(format!("the token {token:?} has no hex digit to change"));
    };
    let mut other = token.clone();
    let c = if token.as_bytes()[i] == b'0' { "1" } else { "0" };
    other.replace_range(i..=i, c);
    let send = conn.send.replace(token.as_str(), &other);
    if send == conn.send {
        return Err(format!("the send URL {:?} does not hold the token {token:?} of the event ids", conn.send));
    }
    post(p, &p.object, &send, b"nobody", 404)
}

/// Opens a session and DELETEs it: the closed stream (its last id seen).
fn deleted(p: &Probe) -> Result<SseConn, String> {
    let mut conn = SseConn::open(p, &p.object)?;
    let send = conn.send.clone();
    let r = send_request(p, &p.object, "DELETE", &send, b"")?;
    if r.head.status != 204 {
        return Err(format!("DELETE {send}: got {:?}, want 204", r.head.first_line()));
    }
    let close = conn.event("the close event after DELETE")?;
    let data: Option<serde_json::Value> = serde_json::from_str(&close.data).ok();
    let code = data.as_ref().and_then(|d| d.get("code")).and_then(|c| c.as_u64());
    if close.name() != "close" || code != Some(1000) {
        return Err(format!("after DELETE: got {}, want event close with code 1000", close.shown()));
    }
    conn.expect_end("the close event")?;
    Ok(conn)
}

pub fn sse_delete_close(p: &Probe) -> Outcome {
    deleted(p).map(|_| ())
}

pub fn sse_ended_204(p: &Probe) -> Outcome {
    let conn = deleted(p)?;
    let again = SseConn::request(p, &p.object, Some(&conn.last_id))?;
    if again.head.status != 204 {
        return Err(format!(
            "a reconnect with Last-Event-ID {}: got {:?}, want 204",
            conn.last_id,
            again.head.first_line()
        ));
    }
    post(p, &p.object, &conn.send, b"late", 404)
}

pub fn sse_resume(p: &Probe) -> Outcome {
    let mut conn = SseConn::open(p, &p.object)?;
    echo(p, &mut conn, "before")?;
    let (last, send, token) = (conn.last_id.clone(), conn.send.clone(), conn.token.clone());
    drop(conn);
    // Give the server a moment to see the connection go.
    std::thread::sleep(std::time::Duration::from_millis(100));
    post(p, &p.object, &send, b"while away", 204)?;
    let mut again = SseConn::request(p, &p.object, Some(&last))?;
    if again.head.status != 200 {
        return Err(format!("a reconnect with Last-Event-ID {last}: got {:?}, want 200", again.head.first_line()));
    }
    let replayed = again.expect_text("while away", "the reconnect")?;
    replayed.number(&token).map_err(|e| format!("the replayed event is not of the same session: {e}"))?;
    // The same session goes on.
    post(p, &p.object, &send, b"after", 204)?;
    again.expect_text("after", "POST \"after\" on the resumed stream").map(|_| ())
}

pub fn sse_region(p: &Probe) -> Outcome {
    let region = p.region()?;
    let d = &p.domain;
    let mut conn = SseConn::open(p, region)?;
    let send = conn.send.clone();
    post(p, region, &send, format!("sub,{d}").as_bytes(), 204)?;
    for payload in ["hi", "a,b,c", "two\r\nlines \"q\""] {
        post(p, region, &send, format!("msg,{d},{payload}").as_bytes(), 204)?;
        conn.expect_text(&format!("msg,{d},{payload}"), &format!("POST msg,{d},{}", shown(payload.as_bytes())))?;
    }
    let nobody = unknown_domain(p);
    post(p, region, &send, format!("msg,{nobody},x").as_bytes(), 204)?;
    conn.expect_text(&format!("err,{nobody},no-listener"), &format!("POST msg,{nobody},x"))?;
    post(p, region, &send, b"not an envelope", 204)?;
    conn.expect_text("err,,bad-frame", "POST \"not an envelope\"").map(|_| ())
}
