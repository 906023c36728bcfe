//! Measurements for bench/bridge.sh (ignored in normal runs; no assertions on time):
//! round trips client → bridge → script → client against the same exchange
//! on the crate's native WebSocket URL (the `echo_server` example), and
//! HTTP requests per client message.
//!
//! `ECHO_SERVER_BIN=target/release/examples/echo_server cargo test --release
//! --features bridge --test sl_bridge_bench -- --ignored --nocapture`

mod sl_bridge_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lsl_websocket::Config;
use sl_bridge_support::grid::{Grid, grid_config};
use sl_bridge_support::{BridgeProc, Client, SECRET};

const ROUNDS: usize = 500;
const WARM_UP: usize = 50;

/// p50, p99 and mean of `rounds` sequential exchanges; `exchange` sends and awaits one.
fn measure(rounds: usize, mut exchange: impl FnMut(usize)) -> (Duration, Duration, Duration) {
    for i in 0..WARM_UP {
        exchange(i);
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|i| {
            let t = Instant::now();
            exchange(i);
            t.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / rounds as u32;
    (times[rounds / 2], times[rounds * 99 / 100], mean)
}

fn row(name: &str, (p50, p99, mean): (Duration, Duration, Duration), per_message: &str) {
    let us = |d: Duration| d.as_micros();
    println!("{name}\t{}\t{}\t{}\t{per_message}", us(p50), us(p99), us(mean));
}

fn native_echo_url() -> (std::process::Child, String) {
    let bin = std::env::var("ECHO_SERVER_BIN").expect("set ECHO_SERVER_BIN (bench/bridge.sh does)");
    let mut child = Command::new(bin)
        .args(["--bind", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start echo_server");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let url = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("object-url ").map(str::to_string))
        .expect("echo_server printed its URL");
    (child, url)
}

#[test]
#[ignore = "a measurement: run by bench/bridge.sh"]
fn round_trips_and_requests_per_message() {
    let text = "x".repeat(64);
    println!("# exchange\tp50_us\tp99_us\tmean_us\thttp_requests_per_message");

    let (mut echo, url) = native_echo_url();
    let mut c = Client::open(&url);
    row("native websocket echo", measure(ROUNDS, |_| c.echo(&text)), "0");
    let _ = echo.kill();
    let _ = echo.wait();

    let bridge = BridgeProc::start(&[]);
    // The grid's per-address rate limit (50/s by default) would throttle the
    // bridge, one address, to 50 deliveries a second: lifted to measure the bridge.
    let config = Config { handshakes_per_second: 1_000_000, ..grid_config() };
    let grid = Grid::start_with(&bridge.base(), SECRET, config);
    let url = grid.ws_url();
    let mut c = Client::open(&url);
    c.echo("warm");
    let before = bridge.stat("deliveries");
    let times = measure(ROUNDS, |_| c.echo(&text));
    let per = (bridge.stat("deliveries") - before) as f64 / (ROUNDS + WARM_UP) as f64;
    row("bridge echo (reply in the HTTP-in answer)", times, &format!("{per:.2}"));

    let (pushes, deliveries) = (bridge.stat("pushes"), bridge.stat("deliveries"));
    let times = measure(ROUNDS / 5, |_| {
        c.send(&format!("!push {text}"));
        assert_eq!(c.recv(), text);
    });
    let n = (ROUNDS / 5 + WARM_UP) as f64;
    let per = (bridge.stat("pushes") - pushes + bridge.stat("deliveries") - deliveries) as f64 / n;
    row("bridge push (llHTTPRequest to the push URL)", times, &format!("{per:.2}"));

    // A burst: 100 clients send 20 messages each at once; batches carry many.
    let before = (bridge.stat("deliveries"), bridge.stat("client_events"));
    let t = Instant::now();
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = Client::open(&url);
                for j in 0..20 {
                    c.send(&format!("c{i}-m{j}"));
                }
                for j in 0..20 {
                    assert_eq!(c.recv(), format!("c{i}-m{j}"));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("burst client");
    }
    let elapsed = t.elapsed();
    let requests = bridge.stat("deliveries") - before.0;
    let events = bridge.stat("client_events") - before.1;
    let retries = bridge.stat("retries");
    println!("# retries (503/429 or unreachable) during the run: {retries}");
    println!(
        "burst 100 clients x 20\t-\t-\t-\t{:.3} ({requests} requests for {events} client events, {:.0} messages/s)",
        requests as f64 / events as f64,
        2000.0 / elapsed.as_secs_f64()
    );
    grid.assert_no_script_errors();
}
