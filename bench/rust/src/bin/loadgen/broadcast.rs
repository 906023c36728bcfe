//! `loadgen broadcast`: the time from one broadcast to its last receipt.
//!
//! Opens `--conns` subscriber connections to the region URL (each sends
//! `sub,bench`), then one trigger connection. Each round the trigger sends
//! `msg,bench,go`; the server (`lsl_mio_server`'s region script, or
//! `write_floor`) stamps `CLOCK_MONOTONIC` as `t0` and sends every
//! subscriber one frame whose text starts `<t0> <subscribers> `. Every
//! subscriber task reads the same clock when its frame arrives; the round's
//! time is the last arrival minus `t0`. A round counts once every one of
//! `--conns` subscribers got it (before that, the server had not seen every
//! `sub` yet); `--warmup-rounds` complete rounds come first, then
//! `--rounds` measured ones, each started after the previous one ended.
//!
//! Prints `result bcast_p50_us=.. bcast_min_us=.. bcast_p90_us=.. bcast_max_us=..
//! rounds=.. subscribers=.. incomplete=..` and, with `--pid`,
//! `result server_cpu_us_per_frame=..` (utime+stime over the measured
//! rounds divided by rounds × subscribers) and `server_cpu_us_per_round=..`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lsl_websocket_bench::{masked, monotonic_ns, quantile};
use tokio::sync::Notify;

use super::{Args, ws_open};

/// The newest broadcast the subscribers have seen.
#[derive(Default)]
struct Round {
    t0: u64,
    expected: usize,
    got: usize,
    last: u64,
}

pub(crate) async fn run(args: Args) {
    let args = Arc::new(args);
    let round = Arc::new(Mutex::new(Round::default()));
    let done = Arc::new(Notify::new());
    let gate = Arc::new(tokio::sync::Semaphore::new(args.parallel));
    let failed = Arc::new(AtomicU64::new(0));
    let mut opening = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let (args, gate) = (args.clone(), gate.clone());
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open semaphore");
            let mut c = ws_open(&args, i).await?;
            c.write(&masked(b"sub,bench")).await?;
            Ok::<_, std::io::Error>(c)
        }));
    }
    let mut subscribers = Vec::with_capacity(args.conns);
    for task in opening {
        match task.await {
            Ok(Ok(c)) => subscribers.push(c),
            Ok(Err(e)) => {
                if failed.fetch_add(1, Relaxed) < 3 {
                    eprintln!("loadgen: subscriber failed: {e}");
                }
            }
            Err(_) => drop(failed.fetch_add(1, Relaxed)),
        }
    }
    let n = subscribers.len();
    eprintln!("loadgen: {n} subscribers connected");
    if n < args.conns {
        eprintln!("loadgen: only {n} of {} subscribers connected: no round could count", args.conns);
        std::process::exit(1);
    }
    for mut c in subscribers {
        let (round, done) = (round.clone(), done.clone());
        tokio::spawn(async move {
            while let Ok(payload) = c.ws_payload().await {
                let now = monotonic_ns();
                let text = String::from_utf8_lossy(&payload);
                let mut fields = text.strip_prefix("msg,bench,").unwrap_or("").split(' ');
                let t0: u64 = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
                let expected: usize = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
                let mut r = round.lock().expect("round lock");
                if t0 > r.t0 {
                    *r = Round { t0, expected, got: 0, last: 0 };
                }
                if t0 == r.t0 {
                    r.got += 1;
                    r.last = r.last.max(now);
                    if r.got == r.expected {
                        done.notify_one();
                    }
                }
            }
        });
    }
    let mut trigger = match ws_open(&args, args.conns).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: trigger connection failed: {e}");
            std::process::exit(1);
        }
    };
    let go = masked(b"msg,bench,go");
    let cpu = |pid: Option<u32>| pid.map(|p| super::cpu_ticks(&format!("/proc/{p}/stat"))).unwrap_or(0);
    let (mut complete, mut incomplete, mut times) = (0usize, 0usize, Vec::with_capacity(args.rounds));
    let mut cpu0 = cpu(args.pid);
    let mut attempts = 0;
    while complete < args.warmup_rounds + args.rounds && attempts < 10 * (args.warmup_rounds + args.rounds) + 100 {
        attempts += 1;
        let sent = monotonic_ns();
        if trigger.write(&go).await.is_err() {
            eprintln!("loadgen: the trigger connection closed");
            break;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let finished = loop {
            let wait = tokio::time::timeout_at(deadline, done.notified()).await;
            let r = round.lock().expect("round lock");
            // A late wake-up of an earlier round is not this one.
            if r.t0 >= sent && r.got == r.expected {
                break Some((r.last - r.t0, r.expected));
            }
            if wait.is_err() {
                break None;
            }
        };
        match finished {
            Some((took, expected)) if expected == n && n == args.conns => {
                complete += 1;
                if complete == args.warmup_rounds {
                    cpu0 = cpu(args.pid);
                }
                if complete > args.warmup_rounds {
                    times.push(took);
                }
            }
            // Not every subscription reached the server yet: not a round.
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            None => incomplete += 1,
        }
        // Let the last frames' acknowledgements settle before the next round.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu1 = cpu(args.pid);
    let measured = times.len();
    times.sort_unstable();
    let us = |q: f64| quantile(&times, q) as f64 / 1e3;
    println!(
        "result bcast_p50_us={:.1} bcast_min_us={:.1} bcast_p90_us={:.1} bcast_max_us={:.1} rounds={measured} \
         subscribers={n} incomplete={incomplete} failed={}",
        us(0.5),
        us(0.0),
        us(0.9),
        us(1.0),
        failed.load(Relaxed)
    );
    if args.pid.is_some() && measured > 0 {
        let secs = (cpu1 - cpu0) as f64 / args.clk_tck;
        println!(
            "result server_cpu_us_per_frame={:.3} server_cpu_us_per_round={:.1}",
            secs * 1e6 / (measured * n) as f64,
            secs * 1e6 / measured as f64
        );
    }
}
