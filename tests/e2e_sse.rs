//! Server-sent events + POST end to end (SPEC §14) over real TCP on
//! 127.0.0.1, against the `echo_server` example and the tokio adapter: a raw
//! TCP stream reader, `curl` for the POSTs, every lifecycle command, a
//! dropped stream resumed with `Last-Event-ID`, and the region endpoint.

mod e2e_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use e2e_support::Target;
use e2e_support::echo::{example_config, start_tokio};
use e2e_support::http::curl;
use e2e_support::process::EchoProcess;
use e2e_support::wire::{split_url, tcp};

/// One stream: the reader, the send URL, the last event id seen.
struct Stream {
    reader: BufReader<TcpStream>,
    send: String,
    last_id: String,
}

/// An event: (name, data).
type Sse = (String, String);

impl Stream {
    /// Opens a stream on a `ws://` URL (with an optional `Last-Event-ID`); returns it and the status.
    fn open(url: &str, last_id: Option<&str>) -> (Stream, u16) {
        let (addr, path) = split_url(url);
        let mut s = tcp(addr);
        let id = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{id}\r\n").unwrap();
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        let mut stream = Stream { reader, send: String::new(), last_id: last_id.unwrap_or("").to_string() };
        if status == 200 && last_id.is_none() {
            let (name, data) = stream.event().expect("the session event");
            assert_eq!(name, "session");
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            stream.send = format!("http://{addr}{}", v["send"].as_str().unwrap());
        }
        (stream, status)
    }

    /// The next event (comments skipped); `None` at the end of the response.
    fn event(&mut self) -> Option<Sse> {
        let (mut name, mut data) = ("message".to_string(), String::new());
        let mut any = false;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).expect("read the stream") == 0 {
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

    /// The next message event's text.
    fn message(&mut self) -> String {
        let (name, data) = self.event().expect("a message");
        assert_eq!(name, "message", "{data}");
        serde_json::from_str(&data).expect("a JSON string")
    }

    fn post(&self, text: &str) -> u16 {
        curl(&["-H", "Content-Type: text/plain; charset=utf-8", "--data-binary", text], &self.send).status
    }
}

fn echo(t: &mut dyn Target) {
    let (mut s, status) = Stream::open(&t.object_url(), None);
    assert_eq!(status, 200);
    for text in ["hello", "two\r\nlines \"quoted\" ✓"] {
        assert_eq!(s.post(text), 204);
        assert_eq!(s.message(), text);
    }
}

fn lifecycle(t: &mut dyn Target, command: &str, reason: &str) {
    let (mut s, _) = Stream::open(&t.object_url(), None);
    t.command(command);
    let (name, data) = s.event().expect("the close event");
    assert_eq!(name, "close", "{command}");
    let close: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!((close["code"].as_u64(), close["reason"].as_str()), (Some(1001), Some(reason)), "{command}");
    assert!(s.event().is_none(), "{command}: the response ends");
    let (_, status) = Stream::open(&t.object_url(), Some(&s.last_id));
    assert_eq!(status, 204, "{command}: a reconnect is told the session ended");
    assert_eq!(s.post("late"), 404, "{command}");
    // The new URL streams again.
    let (mut fresh, _) = Stream::open(&t.object_url(), None);
    assert_eq!(fresh.post("again"), 204);
    assert_eq!(fresh.message(), "again");
}

fn resume(t: &mut dyn Target) {
    let url = t.object_url();
    let (mut s, _) = Stream::open(&url, None);
    assert_eq!(s.post("before"), 204);
    assert_eq!(s.message(), "before");
    let (send, seen) = (s.send.clone(), s.last_id.clone());
    drop(s);
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The echo of this goes to a session with no stream: it waits.
    let status = curl(&["--data-binary", "while away"], &send).status;
    assert_eq!(status, 204);
    let (mut back, status) = Stream::open(&url, Some(&seen));
    assert_eq!(status, 200);
    assert_eq!(back.message(), "while away", "nothing lost");
    back.send = send;
    assert_eq!(back.post("after"), 204);
    assert_eq!(back.message(), "after");
}

fn region(t: &mut dyn Target) {
    let url = t.region_url().expect("the region echo script");
    let (mut s, _) = Stream::open(&url, None);
    assert_eq!(s.post("sub,echo"), 204);
    assert_eq!(s.post("msg,echo,over sse"), 204);
    assert_eq!(s.message(), "msg,echo,over sse");
}

macro_rules! sse_tests {
    ($module:ident, $start:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn echo_over_sse_and_post() {
                echo(&mut $start);
            }
            #[test]
            fn lifecycle_commands_end_the_stream() {
                let mut t = $start;
                for (command, reason) in [
                    ("reset", "script reset"),
                    ("rez", "object rezzed"),
                    ("region-change", "region change"),
                    ("owner-change", "owner change"),
                    ("remove", "object removed"),
                    ("release", "url released"),
                    ("restart", "region restart"),
                ] {
                    lifecycle(&mut t, command, reason);
                }
            }
            #[test]
            fn a_dropped_stream_resumes() {
                resume(&mut $start);
            }
            #[test]
            fn region_endpoint_over_sse() {
                region(&mut $start);
            }
        }
    };
}

sse_tests!(echo_server, EchoProcess::start(&[]));
sse_tests!(tokio_adapter, start_tokio(example_config()));
