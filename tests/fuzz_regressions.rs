//! Inputs the fuzz targets in `fuzz/` found crashing, minimized and replayed
//! here as plain Sans-IO tests, so `cargo test` guards the fixes without
//! cargo-fuzz. Each test names its target and the bug.

mod common;

use common::*;
use lsl_websocket::{Config, EventKind};

/// fuzz `frames`, mode 0x40 (script reset after the first chunk): once the
/// server has sent its close, the session waits for the echo and skips data
/// frames of any size. A header announcing 2^64−1 bytes then overflowed the
/// frame end (`head_len + len`), a panic in builds with overflow checks.
///
/// Minimized input (frames format `[mode][k][sizes][stream]`):
/// `40 02 06 0d | 81 81 00000000 61 | 81 ff ffffffffffffffff ffffffff`.
#[test]
fn frames_length_2_pow_64_minus_1_while_closing_does_not_overflow() {
    let mut sim = Sim::with_config(Config::default());
    let me = sim.script();
    let url = sim.request_url(me);
    let client = sim.connect(me.script, &url);
    // First chunk: a one-byte text frame (mask 0).
    sim.send(client.conn, &[0x81, 0x81, 0x00, 0x00, 0x00, 0x00, 0x61]);
    // The script is reset: the server sends 1001 and waits for the echo.
    sim.region.script_reset(sim.now, me.script);
    sim.pump();
    assert_eq!(sim.close_frames(client.conn), vec![(Some(1001), "script reset".to_string())]);
    // Second chunk: a masked text header announcing 0xffff_ffff_ffff_ffff bytes.
    let header = [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    sim.send(client.conn, &header);
    // No panic; the connection is still waiting for the echo (or gave up on it), and a close ends it.
    sim.advance_secs(6.0);
    assert!(sim.closed.contains(&client.conn), "closed by the close timeout at the latest");
    assert!(sim.events(me.script).iter().all(|e| e.kind != EventKind::Text), "a reset script hears nothing");
}
