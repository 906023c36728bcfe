//! The soak (issue 16): every surface of the `echo_server` example at once
//! (object- and region-scope WebSocket, plain and TLS, HTTP-in, SSE with
//! resumes, line clients, over several regions) with lifecycle churn and
//! broken clients, for MINUTES; every message checked end to end.
//!
//!   soak --server PATH [--minutes M] [--out DIR]
//!
//! Prints a line of counters every minute and, last,
//! `lost=… misrouted=… reordered=… after_revoke=… …`; exits 1 unless the
//! pass rule of issue 16 holds (see `verdict`). Only 127.0.0.x is used.

mod clients;
mod counters;
mod faults;
mod net;
mod server;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use clients::{Ctx, Who};
use counters::{Counters, bump};
use server::Server;

const REGIONS: usize = 3;

/// Runs at least this long (seconds) are judged by the RSS rule.
const RSS_JUDGED_FROM: f64 = 600.0;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn certs(dir: &std::path::Path) -> (String, String, rustls::pki_types::CertificateDer<'static>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "lsl-websocket soak CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params").signed_by(&key, &ca).expect("leaf");
    let (cert, keyf) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, format!("{}{}", leaf.pem(), ca.pem())).expect("write cert");
    std::fs::write(&keyf, key.serialize_pem()).expect("write key");
    (cert.display().to_string(), keyf.display().to_string(), ca.der().clone())
}

/// A small xorshift: the churn's choices, seeded from the clock.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Every few seconds a lifecycle command on a random region while traffic
/// flows; after each, every URL it revoked is probed over every transport.
fn churn(ctx: Ctx, server: Arc<Server>) {
    let mut rng = Rng(Instant::now().elapsed().as_nanos() as u64 | 0x9e37_79b9_7f4a_7c15);
    let commands = ["reset", "rez", "region-change", "owner-change", "remove", "release"];
    let mut probed = 0;
    let mut turn = 0;
    while !ctx.stop.load(Relaxed) {
        std::thread::sleep(Duration::from_secs(3));
        turn += 1;
        let region = rng.below(REGIONS);
        let command = if turn % 10 == 0 { "restart" } else { commands[rng.below(commands.len())] };
        let (label, before) = if command == "restart" { ("region-url", None) } else { ("object-url", None) };
        let old = ctx.urls.0.lock().unwrap().get(region, label);
        server.command(&format!("{command} {region}"));
        bump(&ctx.counters.churn);
        let _ = server::next_url(&ctx.urls, region, label, old.as_deref().or(before), Duration::from_secs(10));
        // Let the rest of the new lines arrive (secure and HTTP-in URLs).
        std::thread::sleep(Duration::from_millis(300));
        let fresh = ctx.urls.0.lock().unwrap().take_revoked(&mut probed);
        for (label, url) in fresh {
            probe(&ctx, &label, &url);
        }
    }
}

/// A revoked URL answers 404 over every transport, and nothing else.
fn probe(ctx: &Ctx, label: &str, url: &str) {
    let c = &ctx.counters;
    let source = ip(70);
    let check = |what: &str, ok: bool| {
        bump(&c.probes);
        if !ok {
            eprintln!("soak: after revocation: probe {what} of {label} {url}");
            bump(&c.after_revoke);
        }
    };
    if label.ends_with("object-url") || label == "region-url" {
        let status = net::upgrade_status(source, url, &ctx.tls);
        check(&format!("upgrade {status:?}"), status.as_ref().is_ok_and(|s| *s == 404));
    }
    if label == "object-url" {
        use std::io::{BufRead, Write};
        let (_, _, path) = net::split(url);
        let line = net::connect(source, url, &ctx.tls).ok().and_then(|mut s| {
            writeln!(s, "{path}").ok()?;
            let mut r = std::io::BufReader::new(s);
            let mut l = String::new();
            r.read_line(&mut l).ok()?;
            Some(l)
        });
        check(&format!("line {line:?}"), line.as_deref().is_some_and(|l| l.starts_with("\\error 404")));
        let sse = net::Http::open(source, url, &ctx.tls).ok().and_then(|mut h| {
            let (_, _, path) = net::split(url);
            use std::io::Write as _;
            let s = h.conn.get_mut();
            write!(s, "GET {path} HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\n\r\n").ok()?;
            net::read_response(&mut h.conn).ok()
        });
        let status = sse.map(|r| r.status);
        check(&format!("sse {status:?}"), status == Some(404));
    }
    if label.ends_with("http-url") {
        let (_, _, path) = net::split(url);
        let r = net::Http::open(source, url, &ctx.tls).ok().and_then(|mut h| h.request("GET", &path, "").ok());
        let status = r.map(|r| r.status);
        check(&format!("get {status:?}"), status == Some(404));
    }
}

struct Args {
    server: String,
    minutes: f64,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args { server: String::new(), minutes: 30.0, out: PathBuf::from("target/soak") };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--server" => a.server = v,
            "--minutes" => a.minutes = v.parse().expect("--minutes: a number"),
            "--out" => a.out = PathBuf::from(v),
            _ => panic!("usage: soak --server PATH [--minutes M] [--out DIR]"),
        }
    }
    assert!(!a.server.is_empty(), "usage: soak --server PATH [--minutes M] [--out DIR]");
    a
}

fn main() {
    let a = args();
    std::fs::create_dir_all(&a.out).expect("output directory");
    let (cert, key, ca) = certs(&a.out);
    let server_args: Vec<String> = [
        "--bind",
        "127.0.0.1:0",
        "--regions",
        "3",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-bind",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = a.out.join("server.log");
    let server = Arc::new(Server::start(&a.server, &server_args, &log));
    let ctx = Ctx {
        counters: Arc::new(Counters::default()),
        urls: server.urls.clone(),
        tls: net::tls_config(ca),
        stop: Arc::new(AtomicBool::new(false)),
    };
    for region in 0..REGIONS {
        for label in ["object-url", "secure-object-url", "http-url", "secure-http-url", "region-url"] {
            server::next_url(&ctx.urls, region, label, None, Duration::from_secs(30))
                .unwrap_or_else(|| panic!("the server printed no {label} for region {region}; see {}", log.display()));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let (fds_base, rss_start, cpu_start) = (server.fds(), server.rss(), server.cpu_seconds());
    println!(
        "soak: {} minutes, pid {}, {} regions, baseline fds={fds_base} rss={rss_start}",
        a.minutes, server.pid, REGIONS
    );

    let mut threads = Vec::new();
    let mut id = 0;
    let mut spawn = |f: Box<dyn FnOnce(Who) + Send>, region: usize| {
        id += 1;
        let who = Who { id, source: ip(1 + id as u8), region };
        threads.push(std::thread::spawn(move || f(who)));
    };
    for region in 0..REGIONS {
        for label in ["object-url", "object-url", "secure-object-url", "region-url"] {
            let ctx = ctx.clone();
            spawn(Box::new(move |who| clients::websocket(ctx, who, label)), region);
        }
        for label in ["http-url", if region == 0 { "secure-http-url" } else { "http-url" }] {
            let ctx = ctx.clone();
            spawn(Box::new(move |who| clients::http_in(ctx, who, label)), region);
        }
        let c2 = ctx.clone();
        spawn(Box::new(move |who| clients::sse(c2, who)), region);
        let c3 = ctx.clone();
        spawn(Box::new(move |who| clients::lines(c3, who)), region);
    }
    let c = ctx.clone();
    threads.push(std::thread::spawn(move || faults::run(c, ip(60), ip(99))));
    let (c, s) = (ctx.clone(), server.clone());
    threads.push(std::thread::spawn(move || churn(c, s)));

    let start = Instant::now();
    let total = Duration::from_secs_f64(a.minutes * 60.0);
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut next_report = 60.0;
    let cpu_per_msg = |server: &Server, c: &Counters| {
        let delivered = c.delivered.load(Relaxed).max(1) as f64;
        (server.cpu_seconds() - cpu_start) * 1e6 / delivered
    };
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_secs(5).min(total.saturating_sub(start.elapsed())));
        let t = start.elapsed().as_secs_f64();
        samples.push((t, server.rss()));
        if t >= next_report || start.elapsed() >= total {
            next_report += 60.0;
            let fields: Vec<String> = ctx.counters.fields().iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "soak: t={t:.0}s {} rss={} fds={} cpu_per_msg_us={:.2}",
                fields.join(" "),
                server.rss(),
                server.fds(),
                cpu_per_msg(&server, &ctx.counters)
            );
        }
    }
    let cpu = cpu_per_msg(&server, &ctx.counters);
    ctx.stop.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // Every client is gone: the server's descriptors go back (a held head
    // is dropped at the 10 s handshake timeout, a silent session later).
    let wait = Instant::now();
    while server.fds() > fds_base && wait.elapsed() < Duration::from_secs(75) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let fds_end = server.fds();
    let rss_end = server.rss();
    let Ok(server) = Arc::try_unwrap(server) else { panic!("a thread still holds the server") };
    server.stop();
    let panics = std::fs::read_to_string(&log).unwrap_or_default().matches("panicked").count();
    verdict(&ctx.counters, &samples, rss_start, rss_end, fds_base, fds_end, cpu, panics);
}

/// The pass rule: nothing lost, misrouted, reordered or after revocation;
/// every refusal answered; RSS over the second half within ±5 % of its
/// value at the half-way mark; descriptors back to the baseline; no panic.
#[allow(clippy::too_many_arguments)]
fn verdict(
    c: &Counters,
    samples: &[(f64, u64)],
    start: u64,
    end: u64,
    fds_base: usize,
    fds_end: usize,
    cpu: f64,
    panics: usize,
) {
    let total = samples.last().map_or(0.0, |s| s.0);
    let half = samples.iter().find(|s| s.0 >= total / 2.0).map_or(start, |s| s.1);
    let second: Vec<u64> = samples.iter().filter(|s| s.0 >= total / 2.0).map(|s| s.1).collect();
    let (lo, hi) = (second.iter().min().copied().unwrap_or(half), second.iter().max().copied().unwrap_or(half));
    let spread = |v: u64| (v as f64 - half as f64) / half.max(1) as f64 * 100.0;
    println!(
        "soak: rss start={start} half={half} end={end} second-half min={lo} ({:+.1}%) max={hi} ({:+.1}%)",
        spread(lo),
        spread(hi)
    );
    let curve: Vec<String> =
        samples.iter().step_by((samples.len() / 10).max(1)).map(|(t, r)| format!("{t:.0}s:{}", r / 1024)).collect();
    println!("soak: rss KiB curve {}", curve.join(" "));
    println!("soak: refused by answer: {}", c.answers());
    let fields = c.fields();
    let get = |k: &str| fields.iter().find(|f| f.0 == k).map_or(0, |f| f.1);
    let rss_flat = spread(lo) >= -5.0 && spread(hi) <= 5.0;
    // The allocator is still warming up a few minutes in: a short run
    // (the CI's 2 minutes) reports the spread but is not judged by it.
    let judged = total >= RSS_JUDGED_FROM;
    let rss_ok = rss_flat || !judged;
    let pass = ["lost", "misrouted", "reordered", "after_revoke", "unanswered"].iter().all(|k| get(k) == 0)
        && get("delivered") > 0
        && rss_ok
        && fds_end <= fds_base
        && panics == 0;
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{} rss_start={start} rss_half={half} rss_end={end} rss_flat={rss_flat} rss_judged={judged} fds_base={fds_base} fds_end={fds_end} cpu_per_msg_us={cpu:.2} panics={panics} result={}",
        line.join(" "),
        if pass { "pass" } else { "FAIL" }
    );
    if !pass {
        std::process::exit(1);
    }
}
