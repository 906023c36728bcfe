//! Clients that connect from a chosen loopback address (127.0.0.2, …) to a
//! chosen front, so a test can tell clients apart behind a proxy: a
//! tungstenite WebSocket, `curl --interface`, and a raw SSE reader.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

use tungstenite::Message;

use crate::e2e_support::WAIT;
use crate::e2e_support::http::{Answer, curl};
use crate::e2e_support::wire::{self, Client};

/// A TCP connection from `source` (any port) to `to`, with timeouts.
pub fn tcp(source: IpAddr, to: SocketAddr) -> TcpStream {
    assert!(source.is_loopback() && to.ip().is_loopback(), "tests talk on loopback only");
    // std cannot bind before connecting; tokio's TcpSocket can.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            let stream = tokio::time::timeout(WAIT, socket.connect(to)).await??;
            stream.into_std()
        })
        .unwrap_or_else(|e| panic!("connect {source} → {to}: {e}"));
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// The path (with query) of a `ws://`/`http://` URL, and its authority.
pub fn parts(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let slash = rest.find('/').unwrap_or(rest.len());
    (&rest[..slash], &rest[slash..])
}

/// A WebSocket handshake on `url` from `source` through `front`; the
/// session, or the status the handshake was refused with.
pub fn ws(source: IpAddr, front: SocketAddr, url: &str) -> Result<Client, u16> {
    match tungstenite::client::client(url, tcp(source, front)) {
        Ok((ws, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("handshake on {url} via {front}: {e}"),
    }
}

/// [`ws`] that must succeed, with one echo checked.
pub fn ws_echo(source: IpAddr, front: SocketAddr, url: &str, text: &str) -> Client {
    let mut ws = ws(source, front, url).unwrap_or_else(|s| panic!("handshake on {url} via {front}: {s}"));
    ws.send(Message::text(text)).unwrap();
    assert_eq!(wire::recv_text(&mut ws), text, "echo on {url} via {front}");
    ws
}

/// `curl` from `source` to `url`, its host name resolved to `front`.
pub fn curl_from(source: IpAddr, front: SocketAddr, url: &str, args: &[&str]) -> Answer {
    let (authority, _) = parts(url);
    let (host, port) = authority.rsplit_once(':').expect("a URL with a port");
    let interface = source.to_string();
    let resolve = format!("{host}:{port}:{}", front.ip());
    assert_eq!(port, front.port().to_string(), "{url} does not name the front {front}");
    let mut all = vec!["--interface", &interface, "--resolve", &resolve];
    all.extend_from_slice(args);
    curl(&all, url)
}

/// `llGetHTTPHeader(name)` as the echo script reads it, for a request from
/// `source` through `front` to the HTTP-in URL `url` (its `/header/<name>`).
pub fn header_seen(source: IpAddr, front: SocketAddr, url: &str, name: &str, extra: &[&str]) -> String {
    let answer = curl_from(source, front, &format!("{url}header/{name}"), extra);
    assert_eq!(answer.status, 200, "{url}header/{name}: {}", answer.head);
    answer.text()
}

/// The body of a response, chunked or not (nginx re-chunks a streamed response).
struct Body {
    inner: BufReader<TcpStream>,
    /// `Some(left in this chunk)` for a chunked body.
    chunk: Option<usize>,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(left) = self.chunk else { return self.inner.read(buf) };
        if self.done {
            return Ok(0);
        }
        let mut left = left;
        if left == 0 {
            let mut size = String::new();
            if self.inner.read_line(&mut size)? == 0 {
                return Ok(0);
            }
            if size.trim().is_empty() {
                // The CRLF that ends the previous chunk.
                size.clear();
                if self.inner.read_line(&mut size)? == 0 {
                    return Ok(0);
                }
            }
            let hex = size.trim().split(';').next().unwrap_or("");
            left = usize::from_str_radix(hex, 16).map_err(|_| std::io::Error::other(format!("chunk size {size:?}")))?;
            if left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = self.inner.by_ref().take(left.min(buf.len()) as u64).read(buf)?;
        self.chunk = Some(left - n);
        Ok(n)
    }
}

/// One server-sent event stream on a WebSocket URL (SPEC §14).
pub struct Sse {
    reader: BufReader<Body>,
    /// The stream's send URL (an absolute path).
    pub send: String,
}

impl Sse {
    /// Opens a stream on `url` from `source` through `front`; the status and,
    /// on 200, the stream with its first (`session`) event read.
    pub fn open(source: IpAddr, front: SocketAddr, url: &str) -> (u16, Option<Sse>) {
        let (authority, path) = parts(url);
        let mut s = tcp(source, front);
        write!(s, "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        }
        if status != 200 {
            return (status, None);
        }
        let body = Body { inner: reader, chunk: chunked.then_some(0), done: false };
        let mut sse = Sse { reader: BufReader::new(body), send: String::new() };
        let (name, data) = sse.event().expect("the session event");
        assert_eq!(name, "session", "{data}");
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        sse.send = v["send"].as_str().expect("a send URL").to_string();
        (status, Some(sse))
    }

    /// The next event as (name, data), comments skipped;
    /// `None` at the end of the response.
    pub fn event(&mut self) -> Option<(String, String)> {
        let (mut name, mut data, mut any) = ("message".to_string(), String::new(), false);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).expect("read the stream") == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if any {
                    return Some((name, data));
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
                any = true;
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = v.to_string();
                any = true;
            } else if line.starts_with("id: ") {
                any = true;
            }
            // Anything else: a comment (a heartbeat).
        }
    }

    /// The next `message` event's text.
    pub fn message(&mut self) -> String {
        let (name, data) = self.event().expect("a message event");
        assert_eq!(name, "message", "{data}");
        serde_json::from_str(&data).expect("a JSON string")
    }
}
