//! Checks that need the region itself or a short config, so they run
//! against the adapters directly: idle ping and 1006, the handshake timeout,
//! read back-pressure reaching TCP, and honest `WS_ERR_BUSY`.

use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use lsl_websocket::{Config, EventKind, Key, SendError};

use super::echo::{AdapterTarget, OBJECT, example_config};
use super::wire::{OP_PING, OP_TEXT, Raw, client, echo_once, masked, recv_close, wait_until};
use super::{Target, WAIT};

/// Generates one `#[test]` per check here for an adapter started by `$start(config)`.
#[macro_export]
macro_rules! adapter_tests {
    ($start:path) => {
        $crate::adapter_tests!(@each $start; idle_ping_then_1006, handshake_timeout, backpressure_reaches_tcp,
            busy_is_honest, revoking_a_paused_session, shutdown_stops_run);
    };
    (@each $start:path; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::e2e_support::adapter::$check($start);
            }
        )*
    };
}

type Start = fn(Config) -> AdapterTarget;

/// The key of the object script's newest session.
fn newest_session(t: &AdapterTarget) -> Key {
    let mut key = None;
    wait_until("the session's WS_OPEN", || {
        key = t.with(|h, _, _| {
            h.events.iter().rev().find(|(w, e)| *w == OBJECT && e.kind == EventKind::Open).map(|(_, e)| e.id)
        });
        key.is_some()
    });
    key.unwrap()
}

pub fn idle_ping_then_1006(start: Start) {
    let idle = Duration::from_millis(300);
    let t = start(Config { idle_interval: idle, ..example_config() });
    let mut raw = Raw::open(&t.object_url());
    let opened = Instant::now();
    let ping = raw.frame();
    assert_eq!(ping.opcode, OP_PING, "{ping:?}");
    assert!(opened.elapsed() >= idle - Duration::from_millis(50), "pinged after {:?}", opened.elapsed());
    // No pong: the connection is dropped without a close frame (1006 is never sent).
    raw.expect_eof();
    wait_until("WS_CLOSE 1006", || t.with(|h, _, _| h.object_closes().iter().any(|c| c.starts_with("1006 "))));

    // A client that answers pings stays.
    let mut ws = client(&t.object_url());
    for i in 0..4 {
        std::thread::sleep(idle / 2);
        echo_once(&mut ws, &format!("alive {i}"));
    }
}

pub fn handshake_timeout(start: Start) {
    let limit = Duration::from_millis(300);
    let t = start(Config { handshake_timeout: limit, ..example_config() });
    let mut raw = super::wire::tcp(t.addr());
    raw.write_all(b"GET /lslws/").unwrap();
    let begun = Instant::now();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut raw, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the connection to be dropped, got {:?}", &buf[..n]);
    assert!(begun.elapsed() >= limit - Duration::from_millis(50), "dropped after {:?}", begun.elapsed());
}

/// A text frame numbered `i`, padded to `len` bytes.
fn numbered(i: usize, len: usize) -> String {
    let mut s = format!("{i:08}");
    s.push_str(&"m".repeat(len - s.len()));
    s
}

pub fn backpressure_reaches_tcp(start: Start) {
    let _heavy = super::heavy();
    let t = start(example_config());
    t.with(|h, _, _| h.asleep = true);
    let mut raw = Raw::open(&t.object_url());
    let mut reader = raw.reader();
    raw.stream.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    // Write until the kernel stops taking bytes: three timeouts in a row without progress.
    let (mut sent, mut bytes) = (0usize, 0usize);
    let partial = 'writing: loop {
        let f = masked(true, OP_TEXT, numbered(sent, 1000).as_bytes());
        let (mut off, mut stalls) = (0, 0);
        while off < f.len() {
            match raw.stream.write(&f[off..]) {
                Ok(n) => (off, stalls) = (off + n, 0),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    stalls += 1;
                    if stalls == 3 {
                        break 'writing (f, off);
                    }
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        bytes += f.len();
        sent += 1;
        assert!(bytes < 64 << 20, "64 MiB written and no back-pressure: reading was not paused");
    };
    let script = t.with(|h, _, _| h.scripts[OBJECT].info.script);
    let queued = t.with(move |_, region, _| region.pending_events(script));
    assert_eq!(queued, 64, "the script's queue is full");

    // The script wakes: everything arrives, in order, nothing lost.
    let (f, off) = partial;
    sent += 1;
    let check = std::thread::spawn(move || {
        for i in 0..sent {
            assert_eq!(reader.expect_text(), numbered(i, 1000));
        }
    });
    t.with(|h, region, _| {
        h.asleep = false;
        h.run_script(region, OBJECT);
    });
    raw.stream.set_write_timeout(Some(WAIT)).unwrap();
    raw.stream.write_all(&f[off..]).unwrap();
    check.join().expect("echoes after waking");
}

pub fn busy_is_honest(start: Start) {
    let _heavy = super::heavy();
    let t = start(example_config());
    let mut raw = Raw::open(&t.object_url());
    let session = newest_session(&t);
    let script = t.with(|h, _, _| h.scripts[OBJECT].info.script);
    // The client reads nothing; the script sends until WS_ERR_BUSY, repeatedly,
    // until five polls in a row find no room: socket buffers and core are full.
    let (mut total, mut no_room) = (0usize, 0);
    while no_room < 5 {
        let first = total;
        let n = t.with(move |_, region, _| {
            let mut n = 0;
            loop {
                match region.websocket_send(script, session, &numbered(first + n, 2000)) {
                    Ok(()) => n += 1,
                    Err(SendError::Busy) => return n,
                    Err(e) => panic!("send: {e:?}"),
                }
            }
        });
        total += n;
        no_room = if n == 0 { no_room + 1 } else { 0 };
        assert!(total < 50_000, "100 MB accepted for a client that reads nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(total * 2000 > 64 * 1024, "at least the outgoing buffer was accepted");
    for i in 0..total {
        assert_eq!(raw.expect_text(), numbered(i, 2000), "message {i} of {total}");
    }
    let ok = t.with(move |_, region, _| region.websocket_send(script, session, "room again"));
    assert_eq!(ok, Ok(()));
    assert_eq!(raw.expect_text(), "room again");
}

pub fn revoking_a_paused_session(start: Start) {
    let t = start(example_config());
    t.with(|h, _, _| h.asleep = true);
    let mut ws = client(&t.object_url());
    for i in 0..100 {
        ws.send(tungstenite::Message::text(format!("{i}"))).unwrap();
    }
    let script = t.with(|h, _, _| h.scripts[OBJECT].info.script);
    wait_until("a full queue", || t.with(move |_, region, _| region.pending_events(script)) == 64);
    // Reset empties the queue too. The script was told of events it never
    // read, so no new notice comes: it reads on its own once awake.
    t.with(|h, region, now| {
        h.asleep = false;
        h.command(region, now, "reset");
        h.run_script(region, OBJECT);
    });
    assert_eq!(recv_close(&mut ws), (1001, "script reset".to_string()));
    echo_once(&mut client(&t.object_url()), "new URL");
}

pub fn shutdown_stops_run(start: Start) {
    let mut t = start(example_config());
    let mut ws = client(&t.object_url());
    echo_once(&mut ws, "hi");
    let reader = std::thread::spawn(move || recv_close(&mut ws));
    let took = t.quit();
    assert_eq!(reader.join().unwrap(), (1001, "region restart".to_string()));
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(t.stopped().object_closes().is_empty(), "revocation tells the script nothing");
    let refused = std::net::TcpStream::connect_timeout(&t.addr(), Duration::from_secs(1));
    assert!(refused.is_err(), "the listener is closed after run returned");
}
