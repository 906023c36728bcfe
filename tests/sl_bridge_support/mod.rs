//! Support for tests/e2e_sl_bridge.rs: the `sl_bridge` binary as a child,
//! a grid (this crate's HTTP-in on the tokio adapter) running
//! `bridge/bridge.lsl` in lummao (`runner.py`), and WebSocket clients.
//!
//! Everything listens on 127.0.0.1, every wait is bounded by [`WAIT`], and
//! every child is killed on drop.
#![allow(dead_code)] // not every test uses every helper

pub mod grid;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::protocol::WebSocket;

/// Longest single wait.
pub const WAIT: Duration = Duration::from_secs(20);

/// The shared secret of every test bridge.
pub const SECRET: &str = "test-secret-0123";

/// The `sl_bridge` binary as a child process.
pub struct BridgeProc {
    child: Child,
    /// `http://127.0.0.1:PORT/register`.
    pub register_url: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl BridgeProc {
    /// Starts `sl_bridge` with `args` and waits for its URLs.
    pub fn start(args: &[&str]) -> BridgeProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sl_bridge"))
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .env("SL_BRIDGE_SECRET", SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sl_bridge");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut register_url, mut push, mut listening) = (None, None, String::new());
        while register_url.is_none() || push.is_none() {
            let line = rx.recv_timeout(WAIT).expect("sl_bridge printed its URLs");
            if let Some(a) = line.strip_prefix("listening ") {
                listening = a.to_string();
            } else if let Some(u) = line.strip_prefix("register-url ") {
                register_url = Some(u.to_string());
            } else if let Some(u) = line.strip_prefix("push-url ") {
                push = Some(u.to_string());
            }
        }
        let register_url = register_url.unwrap_or_default();
        let addr = listening.parse().expect("bridge address");
        BridgeProc { child, register_url, addr }
    }

    /// `http://HOST:PORT`, what the script's BRIDGE setting holds.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bridge's counters.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = http(self.addr, "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// One counter.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or_else(|| panic!("no counter {name}"))
    }
}

impl Drop for BridgeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `host:port` of an `http://` or `ws://` URL.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// One HTTP/1.1 exchange on a fresh connection: status and body.
pub fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A POST with extra header lines; status and body.
pub fn post(url: &str, headers: &str, body: &str) -> (u16, String) {
    let addr = authority(url).parse().expect("address");
    let path = url.split_once("://").and_then(|(_, r)| r.find('/').map(|i| &r[i..])).unwrap_or("/");
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A tungstenite client with timeouts.
pub struct Client(pub WebSocket<TcpStream>);

impl Client {
    /// Connects to a `ws://` URL.
    pub fn open(url: &str) -> Client {
        let stream = TcpStream::connect(authority(url)).expect("connect to the bridge");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let (ws, response) =
            tungstenite::client::client(url, stream).unwrap_or_else(|e| panic!("handshake {url}: {e}"));
        assert_eq!(response.status().as_u16(), 101);
        Client(ws)
    }

    /// Sends one text message.
    pub fn send(&mut self, text: &str) {
        self.0.send(Message::text(text)).expect("send");
    }

    /// The next text message (pings are answered on the way).
    pub fn recv(&mut self) -> String {
        loop {
            match self.0.read().unwrap_or_else(|e| panic!("reading a message: {e}")) {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    /// Reads until the close frame: its code and reason; panics on text.
    pub fn recv_close(&mut self) -> (u16, String) {
        loop {
            match self.0.read() {
                Ok(Message::Close(Some(f))) => return (u16::from(f.code), f.reason.to_string()),
                Ok(Message::Close(None)) => return (1005, String::new()),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(other) => panic!("expected a close, got {other:?}"),
                Err(e) => panic!("expected a close frame, got error {e}"),
            }
        }
    }

    /// Sends `text` and expects it back.
    pub fn echo(&mut self, text: &str) {
        self.send(text);
        assert_eq!(self.recv(), text);
    }
}

/// Polls `cond` every 20 ms until it holds, for at most [`WAIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
