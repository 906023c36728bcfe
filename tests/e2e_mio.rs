//! End to end against the mio adapter in this process (one thread owns the region and every socket): the same checks as
//! for the example, plus timers, back-pressure and `WS_ERR_BUSY`, which need
//! a short config or access to the region.

mod e2e_support;

use e2e_support::echo::{example_config, start_mio};

conformance_tests!(start_mio(example_config()));
adapter_tests!(start_mio);

/// Thousands of open sessions on one thread, each still served.
#[test]
fn two_thousand_sessions() {
    use e2e_support::Target;
    use e2e_support::wire::Raw;
    let _heavy = e2e_support::heavy();
    let config = lsl_websocket::Config { sessions_per_url: 4000, handshakes_per_second: 100_000, ..example_config() };
    let t = start_mio(config);
    let url = t.object_url();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut sessions: Vec<Raw> = (0..250).map(|_| Raw::open(&url)).collect();
                for (j, raw) in sessions.iter_mut().enumerate() {
                    raw.text(&format!("{i}/{j}"));
                }
                for (j, raw) in sessions.iter_mut().enumerate() {
                    assert_eq!(raw.expect_text(), format!("{i}/{j}"));
                }
                sessions
            })
        })
        .collect();
    let sessions: Vec<Raw> = threads.into_iter().flat_map(|t| t.join().expect("a client thread")).collect();
    assert_eq!(sessions.len(), 2000);
    let opens = t.with(|h, _, _| h.events.iter().filter(|(_, e)| e.kind == lsl_websocket::EventKind::Open).count());
    assert_eq!(opens, 2000, "one WS_OPEN per session");
}
