//! End to end: WebSocket clients (tungstenite) ↔ `sl_bridge` ↔ a grid's
//! HTTP-in (this crate) ↔ the shipped `bridge/bridge.lsl`, running in lummao.
//!
//! Needs `.venv` with lummao (scripts/setup.sh makes it).

mod sl_bridge_support;

use sl_bridge_support::grid::{Grid, Mode};
use sl_bridge_support::tls::TlsFront;
use sl_bridge_support::{BridgeProc, Client, SECRET, post, wait_until};

/// A bridge and a grid whose script registered; the script's WebSocket URL.
fn setup(bridge_args: &[&str]) -> (BridgeProc, Grid, String) {
    let bridge = BridgeProc::start(bridge_args);
    let grid = Grid::start(&bridge.base(), SECRET);
    let url = grid.ws_url();
    assert!(url.starts_with(&format!("ws://{}/lslws/", bridge.addr)), "{url}");
    (bridge, grid, url)
}

/// The script's token and push URL, from its registration answer.
fn registration(grid: &Grid) -> (String, String) {
    let (status, body) = grid.answer_from("/register");
    assert_eq!(status, 200, "{body}");
    let mut lines = body.lines();
    (lines.next().unwrap_or_default().to_string(), lines.next().unwrap_or_default().to_string())
}

#[test]
fn echo_through_the_script() {
    let (bridge, grid, url) = setup(&[]);
    let mut c = Client::open(&url);
    for text in ["hello", "two words", "100% sure ✓", "line\nbreak\r\nand %0A literal", " ", "+plus+"] {
        c.echo(text);
    }
    c.0.close(None).unwrap();
    // open, 6 texts, close: every one reached the script over HTTP-in.
    wait_until("the close was delivered", || grid.counts().0 >= 8);
    assert_eq!(bridge.stat("failures"), 0);
    grid.assert_no_script_errors();
}

#[test]
fn wrong_secret_is_refused() {
    let bridge = BridgeProc::start(&[]);
    let target = "/register?url=http%3A%2F%2F127.0.0.1%3A9%2Fx&token=&sig=00";
    let (status, _) = sl_bridge_support::http(bridge.addr, &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(status, 403);
    let grid = Grid::start(&bridge.base(), "not-the-secret");
    let (status, _) = grid.answer_from("/register");
    assert_eq!(status, 403, "a script with the wrong secret is not registered");
    assert_eq!((bridge.stat("scripts"), bridge.stat("refused")), (0, 2));
}

#[test]
fn push_to_one_session_and_broadcast() {
    let (_bridge, grid, url) = setup(&[]);
    let (mut a, mut b, mut c) = (Client::open(&url), Client::open(&url), Client::open(&url));
    // Each client's open reached the script before it is used.
    for (client, name) in [(&mut a, "a"), (&mut b, "b"), (&mut c, "c")] {
        client.echo(name);
    }
    a.send("!push just for a");
    assert_eq!(a.recv(), "just for a");
    let (status, body) = grid.answer_from("/push");
    assert_eq!((status, body.as_str()), (200, "0"), "WS_OK for the push");
    b.send("!all to everyone");
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.recv(), "to everyone");
    }
    // b got nothing else before its own next echo.
    b.echo("b again");
    grid.assert_no_script_errors();
}

#[test]
fn limits_of_2048_bytes_both_ways() {
    let (_bridge, grid, url) = setup(&[]);
    let (token, push_url) = registration(&grid);
    let mut c = Client::open(&url);
    let max = "x".repeat(2048);
    c.echo(&max);
    let multibyte = "é".repeat(1024);
    c.echo(&multibyte);
    // The script pushes (here the test, with the script's token and the
    // session key the grid saw in x-bridge-session): 2048 bytes go, 2049 do not.
    c.echo("who am I");
    let session = grid.last_session().expect("the grid saw the session key");
    let headers = format!("X-Bridge-Secret: {SECRET}\r\nX-Bridge-Token: {token}\r\n");
    let body = format!("{session} {}\n{session} {}y\n", max, max);
    let (status, statuses) = post(&push_url, &headers, &body);
    assert_eq!((status, statuses.as_str()), (200, "0\n-2"), "WS_OK, then WS_ERR_TOO_LARGE");
    assert_eq!(c.recv(), max);
    // A client message over 2048 bytes closes that client with 1009.
    c.send(&format!("{max}y"));
    assert_eq!(c.recv_close().0, 1009);
    grid.assert_no_script_errors();
}

#[test]
fn a_wrong_secret_or_token_on_push_is_refused() {
    let (_bridge, grid, _url) = setup(&[]);
    let (token, push_url) = registration(&grid);
    let (status, _) = post(&push_url, &format!("X-Bridge-Secret: nope\r\nX-Bridge-Token: {token}\r\n"), "* x\n");
    assert_eq!(status, 403);
    let (status, _) = post(&push_url, &format!("X-Bridge-Secret: {SECRET}\r\nX-Bridge-Token: nope\r\n"), "* x\n");
    assert_eq!(status, 404);
}

#[test]
fn a_grid_that_answers_503_for_a_while_loses_nothing() {
    let (bridge, grid, url) = setup(&["--backoff-ms", "50"]);
    let mut clients: Vec<Client> = (0..5).map(|_| Client::open(&url)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.echo(&format!("ready {i}"));
    }
    // Fewer 503s than the bridge's 8 tries, even if one delivery gets them all.
    grid.set_mode(Mode::Busy(7));
    for (i, c) in clients.iter_mut().enumerate() {
        for j in 0..4 {
            c.send(&format!("{i}:{j}"));
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        for j in 0..4 {
            assert_eq!(c.recv(), format!("{i}:{j}"));
        }
    }
    assert_eq!(grid.counts().1, 7, "the grid answered 503 seven times");
    assert!(bridge.stat("retries") >= 7);
    assert_eq!(bridge.stat("failures"), 0);
    grid.assert_no_script_errors();
}

#[test]
fn the_grids_own_503_at_its_in_flight_cap_is_retried() {
    // This crate's HTTP-in answers 503 with `Retry-After: 1` when the script
    // already has its cap of requests in flight: here 1, held by a stall.
    let bridge = BridgeProc::start(&[]);
    let config = lsl_websocket::Config { http_in_flight: 1, ..sl_bridge_support::grid::grid_config() };
    let grid = Grid::start_with(&bridge.base(), SECRET, config);
    let url = grid.ws_url();
    let mut clients: Vec<Client> = (0..3).map(|_| Client::open(&url)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.echo(&format!("ready {i}"));
    }
    grid.set_mode(Mode::Stall);
    clients[0].send("held");
    wait_until("the held request is in flight", || grid.stalled() == 1);
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        c.send(&format!("{i}:a"));
        c.send(&format!("{i}:b"));
    }
    wait_until("the grid answered 503", || bridge.stat("retries") >= 1);
    grid.set_mode(Mode::Normal);
    assert_eq!(clients[0].recv(), "held");
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        assert_eq!(c.recv(), format!("{i}:a"));
        assert_eq!(c.recv(), format!("{i}:b"));
    }
    assert_eq!(bridge.stat("failures"), 0);
    grid.assert_no_script_errors();
}

#[test]
fn a_grid_that_never_answers_closes_the_session_with_a_reason() {
    let (bridge, grid, url) = setup(&["--request-timeout", "2"]);
    let mut c = Client::open(&url);
    c.echo("still fine");
    grid.set_mode(Mode::Hold);
    c.send("into the void");
    let (code, reason) = c.recv_close();
    assert_eq!(code, 4502, "{reason}");
    assert!(reason.starts_with("delivery failed: no answer within 2"), "{reason}");
    assert_eq!(bridge.stat("failures"), 1);
}

#[test]
fn re_registration_within_the_grace_keeps_sessions_and_delivers_what_waited() {
    let (bridge, grid, url) = setup(&[]);
    let (token, _) = registration(&grid);
    let mut c = Client::open(&url);
    c.echo("before");
    grid.rez();
    for m in ["q1", "q2", "q3"] {
        c.send(m);
    }
    wait_until("the bridge saw the URL revoked", || bridge.stat("scripts_gone") == 1);
    grid.tell_on_rez();
    let (again, _) = registration(&grid);
    assert_eq!(again, token, "the same script, known by its token");
    for m in ["q1", "q2", "q3"] {
        assert_eq!(c.recv(), m);
    }
    c.echo("after");
    assert_eq!((bridge.stat("scripts_gone"), bridge.stat("failures")), (0, 0));
    grid.assert_no_script_errors();
}

#[test]
fn after_the_grace_sessions_close_1001_and_the_script_gets_a_new_url() {
    let (bridge, grid, url) = setup(&["--grace", "1"]);
    let mut c = Client::open(&url);
    c.echo("before");
    grid.rez();
    c.send("nobody home");
    let (code, reason) = c.recv_close();
    assert_eq!(code, 1001);
    assert_eq!(reason, "script gone: not registered again within 1 s");
    wait_until("the script was dropped", || bridge.stat("expired") == 1);
    grid.tell_on_rez();
    let fresh = grid.ws_url();
    assert_ne!(fresh, url, "an unknown token registers anew");
    Client::open(&fresh).echo("new life");
    grid.assert_no_script_errors();
}

#[test]
fn hundred_clients_twenty_messages_each_in_order() {
    let (bridge, grid, url) = setup(&[]);
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = Client::open(&url);
                for j in 0..20 {
                    c.send(&format!("c{i}-m{j}"));
                }
                for j in 0..20 {
                    assert_eq!(c.recv(), format!("c{i}-m{j}"), "client {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client saw its messages in order");
    }
    let stats = bridge.stats();
    eprintln!(
        "100 x 20: {} client events in {} requests ({} batches), {} retries",
        stats["client_events"], stats["deliveries"], stats["batches"], stats["retries"]
    );
    assert_eq!(stats["failures"], 0);
    grid.assert_no_script_errors();
}

#[test]
fn a_full_queue_pauses_the_client_and_loses_nothing() {
    let (bridge, grid, url) = setup(&["--queue", "8", "--in-flight", "1"]);
    let mut c = Client::open(&url);
    c.echo("ready");
    grid.set_mode(Mode::Stall);
    let messages: Vec<String> = (0..300).map(|i| format!("{i:04}{}", "p".repeat(996))).collect();
    let writer = {
        let (messages, mut ws) = (messages.clone(), c.0);
        std::thread::spawn(move || {
            for m in &messages {
                ws.send(tungstenite::Message::text(m.as_str())).expect("send");
            }
            ws
        })
    };
    wait_until("the bridge's queue filled", || bridge.stat("queued") == 8);
    // If the bridge read on, 300 events would arrive; it takes what its
    // queue and one batch hold, the core's queue takes 64, the rest stays unread.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let taken = bridge.stat("client_events");
    assert!(taken <= 2 + 8 + 32, "the bridge took {taken} events while the script was stalled");
    grid.set_mode(Mode::Normal);
    let mut c = Client(writer.join().expect("the writer finished"));
    for m in &messages {
        assert_eq!(&c.recv(), m);
    }
    assert_eq!(bridge.stat("failures"), 0);
    grid.assert_no_script_errors();
}

#[test]
fn a_region_with_tls_also_gives_a_wss_url_and_an_https_push_url() {
    let bridge = BridgeProc::start(&["--secure-authority", "bridge.example:443"]);
    assert_eq!(bridge.register_url, "https://bridge.example:443/register");
    // The script reaches the bridge itself here (no TLS proxy in the test).
    let grid = Grid::start(&format!("http://{}", bridge.addr), SECRET);
    let (status, body) = grid.answer_from("/register");
    assert_eq!(status, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 4, "{body}");
    assert!(lines[1].starts_with("https://bridge.example:443/lslhttps/") && lines[1].ends_with("/push"), "{body}");
    assert!(lines[2].starts_with("ws://") && lines[3].starts_with("wss://bridge.example:443/lslws/"), "{body}");
}

/// A grid whose script holds an `https://` HTTP-in URL behind a TLS front.
fn secure_grid(bridge_args: &[&str], front: &mut TlsFront) -> (BridgeProc, Grid) {
    let bridge = BridgeProc::start(bridge_args);
    let config = lsl_websocket::Config {
        secure_authority: Some(front.addr.to_string()),
        ..sl_bridge_support::grid::grid_config()
    };
    let grid = Grid::start_script(&bridge.base(), SECRET, config, true);
    front.serve(grid.addr);
    (bridge, grid)
}

#[test]
fn an_https_script_url_is_reached_over_tls_with_the_grids_ca() {
    let mut front = TlsFront::bind();
    let ca = front.ca_file.to_string_lossy().into_owned();
    let (_bridge, grid) = secure_grid(&["--grid-ca", &ca], &mut front);
    let mut c = Client::open(&grid.ws_url());
    c.echo("over TLS");
    assert!(front.handshakes.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    grid.assert_no_script_errors();
}

#[test]
fn an_untrusted_grid_certificate_fails_the_delivery_at_once() {
    let mut front = TlsFront::bind();
    let (bridge, grid) = secure_grid(&[], &mut front);
    let mut c = Client::open(&grid.ws_url());
    // The open itself cannot be delivered: the client is told why.
    let (code, reason) = c.recv_close();
    assert_eq!(code, 4502, "{reason}");
    assert!(reason.starts_with("delivery failed: TLS"), "{reason}");
    // Its close is not delivered either; neither is retried.
    assert!(bridge.stat("failures") >= 1);
    assert_eq!(bridge.stat("retries"), 0, "a certificate error is not retried");
}
