//! Differential tests against tungstenite's client role: its handshake and
//! frames are accepted by the core as the same texts, and everything the core
//! sends back (texts, pongs, pings, closes) reads in tungstenite as the same messages.

mod common;

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use common::*;
use lsl_websocket::{ConnectionId, EventKind, Key, Output, ScriptInfo};
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::{Bytes, Message, WebSocket};

/// An in-memory socket: what the client writes goes to the server and back.
#[derive(Default)]
struct Pipe {
    from_server: VecDeque<u8>,
    to_server: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.from_server.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.from_server.len());
        for (slot, byte) in buf.iter_mut().zip(self.from_server.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.to_server.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A tungstenite client connected to the simulated region.
struct TClient {
    ws: WebSocket<Pipe>,
    conn: ConnectionId,
    session: Key,
    /// How much of the server's output the pipe has been given.
    delivered: usize,
}

/// Moves the server's new bytes for `conn` into `pipe`.
fn deliver(sim: &Sim, conn: ConnectionId, delivered: &mut usize, pipe: &mut Pipe) {
    let bytes = sim.bytes(conn);
    pipe.from_server.extend(&bytes[*delivered..]);
    *delivered = bytes.len();
}

fn connect(sim: &mut Sim, who: ScriptInfo, url: &str) -> TClient {
    let conn = sim.accept();
    let mut delivered = 0;
    let mut attempt = tungstenite::client(url, Pipe::default());
    let ws = loop {
        match attempt {
            Ok((ws, response)) => {
                assert_eq!(response.status().as_u16(), 101);
                break ws;
            }
            Err(HandshakeError::Interrupted(mut mid)) => {
                let pipe = mid.get_mut().get_mut();
                let request = std::mem::take(&mut pipe.to_server);
                sim.send(conn, &request);
                deliver(sim, conn, &mut delivered, pipe);
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => panic!("tungstenite refused the handshake: {e}"),
        }
    };
    let events = sim.events(who.script);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Open);
    TClient { ws, conn, session: events[0].id, delivered }
}

impl TClient {
    /// Client → server: send what tungstenite wrote.
    fn push(&mut self, sim: &mut Sim) {
        let bytes = std::mem::take(&mut self.ws.get_mut().to_server);
        if !bytes.is_empty() {
            let _ = sim.feed(self.conn, &bytes);
        }
    }

    fn send(&mut self, sim: &mut Sim, message: Message) {
        self.ws.send(message).unwrap();
        self.push(sim);
    }

    /// Server → client: every message tungstenite reads from the server's output.
    fn read_all(&mut self, sim: &mut Sim) -> Vec<Message> {
        deliver(sim, self.conn, &mut self.delivered, self.ws.get_mut());
        let mut messages = Vec::new();
        loop {
            match self.ws.read() {
                Ok(message) => messages.push(message),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("tungstenite rejected the server's output: {e}"),
            }
        }
        // Replies tungstenite queued (pongs, close echoes) go back to the server.
        let _ = self.ws.flush();
        self.push(sim);
        messages
    }
}

fn setup() -> (Sim, ScriptInfo, TClient) {
    let mut sim = Sim::new();
    let who = sim.script();
    let url = sim.request_url(who);
    let client = connect(&mut sim, who, &url);
    (sim, who, client)
}

fn samples() -> Vec<String> {
    vec![
        String::new(),
        "a".repeat(125),
        "b".repeat(126),
        "c".repeat(127),
        "d".repeat(2048),
        "héllo wörld — ✓ 😀 日本語".to_string(),
        "€".repeat(682),
        "line\nbreak, comma\ttab".to_string(),
    ]
}

#[test]
fn tungstenite_handshake_and_texts_are_accepted() {
    let (mut sim, who, mut client) = setup();
    for text in samples() {
        client.send(&mut sim, Message::text(text));
    }
    assert_eq!(sim.texts(who.script), samples());
    assert!(!sim.closed.contains(&client.conn));
}

#[test]
fn tungstenite_fragmented_texts_are_accepted() {
    let (mut sim, who, mut client) = setup();
    let text = "fragmented € across ✓ frames 😀";
    let bytes = text.as_bytes();
    // Cut inside multi-byte characters on purpose.
    let cuts = [0, 13, 14, 27, 31, bytes.len()];
    let parts: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
    for (i, part) in parts.iter().enumerate() {
        let op = if i == 0 { Data::Text } else { Data::Continue };
        let frame = Frame::message(Bytes::copy_from_slice(part), OpCode::Data(op), i + 1 == parts.len());
        client.send(&mut sim, Message::Frame(frame));
    }
    assert_eq!(sim.texts(who.script), [text]);
}

#[test]
fn core_sends_read_back_as_the_same_texts() {
    let (mut sim, who, mut client) = setup();
    for text in samples() {
        sim.region.websocket_send(who.script, client.session, &text).unwrap();
    }
    sim.pump();
    let messages = client.read_all(&mut sim);
    let expected: Vec<Message> = samples().into_iter().map(Message::text).collect();
    assert_eq!(messages, expected);
}

#[test]
fn echo_round_trip() {
    let (mut sim, who, mut client) = setup();
    for text in samples() {
        client.send(&mut sim, Message::text(text));
    }
    for event in sim.events(who.script) {
        assert_eq!(event.kind, EventKind::Text);
        sim.region.websocket_send(who.script, event.id, &event.data).unwrap();
    }
    sim.pump();
    let echoed: Vec<String> = client
        .read_all(&mut sim)
        .into_iter()
        .map(|m| match m {
            Message::Text(t) => t.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(echoed, samples());
}

#[test]
fn tungstenite_pings_get_matching_pongs() {
    let (mut sim, who, mut client) = setup();
    let payloads: [&[u8]; 3] = [b"", b"are you there?", &[0x5a; 125]];
    for p in payloads {
        client.send(&mut sim, Message::Ping(Bytes::copy_from_slice(p)));
    }
    let messages = client.read_all(&mut sim);
    let expected: Vec<Message> = payloads.iter().map(|p| Message::Pong(Bytes::copy_from_slice(p))).collect();
    assert_eq!(messages, expected);
    assert!(sim.events(who.script).is_empty());
}

#[test]
fn server_idle_ping_is_answered_by_tungstenite_and_keeps_the_session() {
    let (mut sim, who, mut client) = setup();
    sim.advance_secs(30.0);
    assert_eq!(client.read_all(&mut sim), [Message::Ping(Bytes::new())]);
    // tungstenite's automatic pong went back in read_all.
    sim.advance_secs(30.0);
    assert!(!sim.closed.contains(&client.conn));
    assert_eq!(client.read_all(&mut sim), [Message::Ping(Bytes::new())], "pinged again, not dropped");
    assert!(sim.events(who.script).is_empty());
}

#[test]
fn tungstenite_close_is_echoed() {
    let (mut sim, who, mut client) = setup();
    client.send(&mut sim, Message::text("bye soon"));
    let close = CloseFrame { code: CloseCode::Normal, reason: "done".into() };
    client.ws.close(Some(close.clone())).unwrap();
    client.push(&mut sim);
    assert!(sim.log.contains(&Output::Close(client.conn)));
    assert_eq!(client.read_all(&mut sim), [Message::Close(Some(close))]);
    let events = sim.events(who.script);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, EventKind::Close);
    assert_eq!(events[1].data, "1000 done");
}

#[test]
fn script_close_reads_in_tungstenite_and_its_echo_ends_the_transport() {
    let (mut sim, who, mut client) = setup();
    sim.region.websocket_close(sim.now, who.script, client.session, 4000, "see you").unwrap();
    sim.pump();
    assert!(!sim.closed.contains(&client.conn));
    let messages = client.read_all(&mut sim);
    assert_eq!(
        messages,
        [Message::Close(Some(CloseFrame { code: CloseCode::Library(4000), reason: "see you".into() }))]
    );
    // read_all pushed tungstenite's echo.
    assert!(sim.closed.contains(&client.conn));
}

#[test]
fn revocation_reads_as_going_away_with_the_cause() {
    let (mut sim, who, mut client) = setup();
    sim.region.object_changed_region(sim.now, who.object);
    sim.pump();
    let messages = client.read_all(&mut sim);
    assert_eq!(messages, [Message::Close(Some(CloseFrame { code: CloseCode::Away, reason: "region change".into() }))]);
    assert!(sim.closed.contains(&client.conn));
}

#[test]
fn oversize_and_binary_read_as_the_spec_close_codes() {
    let (mut sim, _, mut client) = setup();
    client.send(&mut sim, Message::text("x".repeat(2049)));
    match client.read_all(&mut sim).as_slice() {
        [Message::Close(Some(f))] => assert_eq!(f.code, CloseCode::Size),
        other => panic!("{other:?}"),
    }
    let (mut sim, _, mut client) = setup();
    client.send(&mut sim, Message::binary(vec![1, 2, 3]));
    match client.read_all(&mut sim).as_slice() {
        [Message::Close(Some(f))] => assert_eq!(f.code, CloseCode::Unsupported),
        other => panic!("{other:?}"),
    }
}
