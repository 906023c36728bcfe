//! Server-sent events (SPEC §14): the stream's wire format and the state
//! that lets a dropped stream resume.
//!
//! A stream is one session. Its first event (`event: session`) carries the
//! send URL `/lslsse/{token}/` (relative to the stream's URL; the token is
//! 128 random bits, like a capability); each script send is one unnamed event
//! whose `data` is the text as a JSON string, so CR, LF and every other
//! character survive `EventSource`; a close is a final `event: close` with
//! `{"code":…,"reason":"…"}`, and then the response ends. Every event has an
//! `id` of the form `{token}-{n}`, which is how a reconnect (with
//! `Last-Event-ID`) finds its session. Heartbeat comments go out every 15 s.
//! A `DELETE` of the send URL is the client's close (code 1000).
//!
//! Resume memory: the events sent are kept, newest last, up to the
//! outgoing-buffer size (64 KiB by default) per session; older ones are
//! dropped as new ones come. A reconnect whose `Last-Event-ID` is older than
//! the oldest kept event cannot be resumed without a gap, so the session is
//! closed with `1001 cannot resume: events dropped`, never silently skipped.
//! While no stream is attached, a send that would overflow the memory is
//! refused (`WS_ERR_BUSY`) instead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::hash::Map;
use crate::index::ConnIdx;
use crate::key::Key;

/// The path prefix of send URLs.
pub(crate) const SEND_PREFIX: &str = "/lslsse/";

/// Heartbeat interval: nginx and most load balancers drop a response idle for 60 s.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);

/// The reconnect delay hinted to `EventSource`, in milliseconds.
const RETRY_MS: u32 = 2000;

/// One SSE session's stream state.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) token: Key,
    /// The id number of the next event.
    next: u64,
    /// Events sent, with their id numbers, newest last.
    replay: VecDeque<(u64, Bytes)>,
    replay_bytes: usize,
    /// No connection carries the stream; the session waits for a resume until then.
    pub(crate) detached_until: Option<Instant>,
    /// When the next heartbeat is due (while attached; see [`beat`](Stream::beat)).
    pub(crate) heartbeat_at: Option<Instant>,
}

/// Every SSE session of the region by its token, and the tokens of the
/// sessions that ended (the most recent 4,096), which a reconnect is told
/// with 204.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    live: Map<Key, ConnIdx>,
    ended: Map<Key, ()>,
    order: VecDeque<Key>,
}

const ENDED_MEMORY: usize = 4096;

impl Streams {
    pub(crate) fn insert(&mut self, token: Key, idx: ConnIdx) {
        self.live.insert(token, idx);
    }

    pub(crate) fn get(&self, token: Key) -> Option<ConnIdx> {
        self.live.get(&token).copied()
    }

    pub(crate) fn has_ended(&self, token: Key) -> bool {
        self.ended.contains_key(&token)
    }

    /// The session is over: its token is remembered as ended.
    pub(crate) fn end(&mut self, token: Key) {
        if self.live.remove(&token).is_none() {
            return;
        }
        if self.order.len() == ENDED_MEMORY
            && let Some(old) = self.order.pop_front()
        {
            self.ended.remove(&old);
        }
        self.ended.insert(token, ());
        self.order.push_back(token);
    }
}

/// Why a resume could not pick up where the client left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap;

impl Stream {
    pub(crate) fn new(token: Key) -> Stream {
        Stream { token, next: 1, replay: VecDeque::new(), replay_bytes: 0, detached_until: None, heartbeat_at: None }
    }

    /// The stream opened, resumed or sent a heartbeat at `now`: the next one is due an interval later.
    pub(crate) fn beat(&mut self, now: Instant) {
        self.heartbeat_at = Some(now + HEARTBEAT);
    }

    /// The response head and the first event, telling the client its send URL.
    pub(crate) fn opening(&self) -> Bytes {
        let token = self.token;
        Bytes::from(format!(
            "{HEAD}retry: {RETRY_MS}\nid: {token}-0\nevent: session\ndata: {{\"send\":\"{SEND_PREFIX}{token}/\"}}\n\n"
        ))
    }

    /// One message event: `parts` concatenated, as a JSON string. Kept for
    /// resuming, within `limit` bytes of memory.
    pub(crate) fn message(&mut self, parts: &[&[u8]], limit: usize) -> Bytes {
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 2);
        for part in parts {
            data.extend_from_slice(part);
        }
        let text = String::from_utf8_lossy(&data);
        let event = Bytes::from(format!("id: {}-{}\ndata: {}\n\n", self.token, self.next, json_string(&text)));
        self.replay.push_back((self.next, event.clone()));
        self.replay_bytes += event.len();
        self.next += 1;
        while self.replay_bytes > limit && self.replay.len() > 1 {
            if let Some((_, old)) = self.replay.pop_front() {
                self.replay_bytes -= old.len();
            }
        }
        event
    }

    /// The exact length of the next message event of `parts` (valid UTF-8).
    pub(crate) fn event_len(&self, parts: &[&[u8]]) -> usize {
        let json: usize = parts.iter().map(|p| json_len(&String::from_utf8_lossy(p)) - 2).sum::<usize>() + 2;
        let digits = self.next.checked_ilog10().unwrap_or(0) as usize + 1;
        "id: ".len() + 36 + 1 + digits + "\ndata: ".len() + json + "\n\n".len()
    }

    /// Whether a message event of `len` bytes can be kept while no stream is attached.
    pub(crate) fn has_room(&self, len: usize, limit: usize) -> bool {
        self.replay_bytes + len <= limit
    }

    /// The final `close` event.
    pub(crate) fn close(&self, code: u16, reason: &str) -> Bytes {
        let data = format!("{{\"code\":{code},\"reason\":{}}}", json_string(reason));
        Bytes::from(format!("id: {}-{}\nevent: close\ndata: {data}\n\n", self.token, self.next))
    }

    /// The events after id number `seen`, for a resumed stream; `Gap` if some were dropped.
    pub(crate) fn since(&self, seen: u64) -> Result<Vec<Bytes>, Gap> {
        let oldest = self.replay.front().map_or(self.next, |(n, _)| *n);
        if seen + 1 < oldest {
            return Err(Gap);
        }
        Ok(self.replay.iter().filter(|(n, _)| *n > seen).map(|(_, e)| e.clone()).collect())
    }
}

/// The response head of a stream.
const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n\
                    X-Accel-Buffering: no\r\n\r\n";

/// The response head alone, for a resumed stream.
pub(crate) fn head() -> Bytes {
    Bytes::from_static(HEAD.as_bytes())
}

/// A heartbeat comment.
pub(crate) fn heartbeat() -> Bytes {
    Bytes::from_static(b": heartbeat\n\n")
}

/// `Last-Event-ID: {token}-{n}` → (token, n).
pub(crate) fn parse_event_id(id: &str) -> Option<(Key, u64)> {
    let (token, n) = id.trim().rsplit_once('-')?;
    Some((token.parse().ok()?, n.parse().ok()?))
}

/// The length of [`json_string`] of `text`, without building it.
fn json_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' => 2,
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
        + 2
}

/// `text` as a JSON string literal.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Key {
        "00000000-0000-4000-8000-00000000abcd".parse().unwrap()
    }

    #[test]
    fn events_and_ids() {
        let mut s = Stream::new(token());
        let opening = String::from_utf8(s.opening().to_vec()).unwrap();
        assert!(opening.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"));
        assert!(opening.ends_with(&format!(
            "id: {}-0\nevent: session\ndata: {{\"send\":\"/lslsse/{}/\"}}\n\n",
            token(),
            token()
        )));
        let parts: [&[u8]; 2] = [b"a\r\nb\"\\\x01", "✓\u{2028}".as_bytes()];
        let expected = s.event_len(&parts);
        assert_eq!(s.message(&parts, 1 << 16).len(), expected, "event_len is exact");
        let e = s.message(&[b"a\r\nb\"\\", "✓".as_bytes()], 1 << 16);
        assert_eq!(&e[..], format!("id: {}-2\ndata: \"a\\r\\nb\\\"\\\\✓\"\n\n", token()).as_bytes());
        assert_eq!(parse_event_id(&format!("{}-1", token())), Some((token(), 1)));
        assert_eq!(parse_event_id("nope"), None);
        assert_eq!(json_string("\u{1}\u{2028}"), "\"\\u0001\\u2028\"");
        let close = String::from_utf8(s.close(1001, "script reset").to_vec()).unwrap();
        assert!(close.ends_with("event: close\ndata: {\"code\":1001,\"reason\":\"script reset\"}\n\n"));
    }

    #[test]
    fn resume_memory_is_bounded_and_gaps_are_seen() {
        let mut s = Stream::new(token());
        for i in 0..10 {
            s.message(&[format!("m{i}").as_bytes()], 200);
        }
        // Only the newest events fit in 200 bytes.
        assert!(s.replay_bytes <= 200);
        assert_eq!(s.since(10).unwrap().len(), 0);
        assert_eq!(s.since(9).unwrap().len(), 1);
        assert_eq!(s.since(0), Err(Gap));
    }
}
