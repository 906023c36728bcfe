//! Many regions on one port (SPEC §16): `echo_server --regions N` runs N
//! regions in one process, each on its own thread (`adapter::sim`), all
//! behind one listener; every URL line names its region (` region=<i>`).
//! Each capability starts with its region's route tag, the acceptor routes
//! by it, and a capability of one region never resolves in another.

mod e2e_support;

use std::collections::HashMap;
use std::sync::Arc;

use e2e_support::http::curl;
use e2e_support::process::{EchoProcess, Line};
use e2e_support::wire::{self, Client, echo_once, recv_close};
use tungstenite::Message;

/// `echo_server --regions N` and the latest URL of each (line label, region).
struct Sim {
    process: EchoProcess,
    urls: HashMap<(String, usize), String>,
}

impl Sim {
    fn start(regions: usize) -> Sim {
        raise_open_files(4096);
        let process = EchoProcess::spawn(&["--regions", &regions.to_string()]);
        let mut sim = Sim { process, urls: HashMap::new() };
        for region in 0..regions {
            for label in ["object-url", "http-url", "region-url"] {
                sim.wait(label, region, |_| true);
            }
        }
        sim
    }

    /// Reads lines until `(label, region)` holds a URL `accept` takes; returns it.
    fn wait(&mut self, label: &str, region: usize, accept: impl Fn(&str) -> bool) -> String {
        let key = (label.to_string(), region);
        loop {
            if let Some(url) = self.urls.get(&key).filter(|u| accept(u)) {
                return url.clone();
            }
            let (l, r, url) = self.process.wait_for(|line| match line {
                Line::Out(text) => {
                    let words: Vec<&str> = text.split(' ').collect();
                    let [label, url, region] = words[..] else { panic!("a line without region=: {text}") };
                    let region = region.strip_prefix("region=")?.parse::<usize>().ok()?;
                    Some((label.to_string(), region, url.to_string()))
                }
                _ => None,
            });
            self.urls.insert((l, r), url);
        }
    }

    fn url(&self, label: &str, region: usize) -> String {
        self.urls[&(label.to_string(), region)].clone()
    }

    /// Sends a stdin command and waits until region `region`'s object holds a new URL.
    fn renewed(&mut self, command: &str, region: usize) -> (String, String) {
        let (old, old_http) = (self.url("object-url", region), self.url("http-url", region));
        self.process.send_line(command);
        (self.wait("object-url", region, |u| u != old), self.wait("http-url", region, |u| u != old_http))
    }
}

/// The capability's route tag: its first four hex digits.
fn tag(url: &str) -> String {
    url.split("/lsl").nth(1).and_then(|rest| rest.split('/').nth(1)).unwrap()[..4].to_string()
}

/// The same URL with another region's tag in its capability.
fn with_tag(url: &str, tag: &str) -> String {
    let at = url.find("/lslws/").map(|i| i + 7).or_else(|| url.find("/lslhttp/").map(|i| i + 9)).unwrap();
    format!("{}{tag}{}", &url[..at], &url[at + 4..])
}

/// The status a WebSocket handshake on `url` gets.
fn handshake_status(url: &str) -> u16 {
    let (addr, path) = wire::split_url(url);
    wire::http(addr, &wire::upgrade_request(&path, "")).status
}

/// The test and the example hold two sockets per connection between them.
fn raise_open_files(need: u64) {
    let soft = || {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or("").to_string();
        line.split_whitespace().nth(3).and_then(|s| s.parse::<u64>().ok()).unwrap_or(u64::MAX)
    };
    if soft() < need {
        // prlimit raises this process's soft limit from outside (no libc here); the child inherits it.
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &std::process::id().to_string(), &format!("--nofile={need}:")])
            .status();
    }
    assert!(soft() >= need, "the open-file limit {} is below {need}: raise `ulimit -n`", soft());
}

#[test]
fn thousand_connections_over_four_regions_all_echo() {
    let _heavy = e2e_support::heavy();
    let sim = Sim::start(4);
    let urls: Vec<String> = (0..4).map(|r| sim.url("object-url", r)).collect();
    let tags: std::collections::HashSet<String> = urls.iter().map(|u| tag(u)).collect();
    assert_eq!(tags.len(), 4, "each region mints with its own tag: {urls:?}");
    let addrs: std::collections::HashSet<_> = urls.iter().map(|u| wire::split_url(u).0).collect();
    assert_eq!(addrs.len(), 1, "one port for all regions: {urls:?}");
    println!("regions on {addrs:?}: {urls:?}");

    // 250 connections on each region's object URL, all open at once,
    // opened and driven by one thread per region.
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = urls
        .into_iter()
        .enumerate()
        .map(|(r, url)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut clients: Vec<Client> = (0..250).map(|_| wire::client(&url)).collect();
                barrier.wait();
                for round in 0..3 {
                    for (c, ws) in clients.iter_mut().enumerate() {
                        ws.send(Message::text(format!("{r}:{c}:{round}"))).unwrap();
                    }
                    for (c, ws) in clients.iter_mut().enumerate() {
                        assert_eq!(wire::recv_text(ws), format!("{r}:{c}:{round}"), "region {r} client {c}");
                    }
                }
                clients.len()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().expect("a region's clients")).sum();
    assert_eq!(total, 1000);
}

#[test]
fn capability_of_one_region_never_resolves_in_another() {
    let mut sim = Sim::start(3);
    let (a, b) = (sim.url("object-url", 1), sim.url("object-url", 2));
    let (a_http, b_http) = (sim.url("http-url", 1), sim.url("http-url", 2));
    assert_eq!(handshake_status(&a), 101);
    // A's capability with B's tag reaches B, whose tables never held it: 404.
    let forged = with_tag(&a, &tag(&b));
    assert_eq!(tag(&forged), tag(&b));
    assert_eq!(handshake_status(&forged), 404, "{forged}");
    let forged_http = with_tag(&a_http, &tag(&b_http));
    assert_eq!(curl(&["-d", "x"], &forged_http).status, 404, "{forged_http}");
    assert_eq!(curl(&["-d", "in b"], &b_http).text(), "in b");

    // A capability minted in region 1, after region 1 is gone: 404 (its tag
    // now lands in the default region, which never knew it).
    sim.process.send_line("remove-region 1");
    wire::wait_until("region 1 gone", || handshake_status(&a) == 404);
    assert_eq!(curl(&["-d", "x"], &a_http).status, 404);
    assert_eq!(handshake_status(&b), 101);
    // The page is served by the default region (region 0).
    assert_eq!(curl(&[], &format!("http://{}/", wire::split_url(&b).0)).status, 200);
}

#[test]
fn removing_a_region_closes_only_its_sessions() {
    let mut sim = Sim::start(4);
    let mut sessions: Vec<Client> = (0..4).map(|r| wire::client(&sim.url("object-url", r))).collect();
    for ws in &mut sessions {
        echo_once(ws, "before");
    }
    sim.process.send_line("remove-region 2");
    assert_eq!(recv_close(&mut sessions[2]), (1001, "region restart".to_string()));
    for r in [0, 1, 3] {
        echo_once(&mut sessions[r], &format!("region {r} still echoes"));
    }
    assert_eq!(handshake_status(&sim.url("object-url", 2)), 404);
    // A region added at run time gets the next index and works beside them.
    sim.process.send_line("add-region");
    let fresh = sim.wait("object-url", 4, |_| true);
    assert!(![0, 1, 3].iter().any(|&r| tag(&sim.url("object-url", r)) == tag(&fresh)), "a tag of its own");
    echo_once(&mut wire::client(&fresh), "new region");
    let http = sim.wait("http-url", 4, |_| true);
    assert_eq!(curl(&["-d", "new http"], &http).text(), "new http");
    echo_once(&mut sessions[0], "region 0 after the add");
}

#[test]
fn crossing_revokes_the_old_url_and_the_target_mints_a_new_one() {
    let mut sim = Sim::start(2);
    let (old, old_http) = (sim.url("object-url", 0), sim.url("http-url", 0));
    let mut session = wire::client(&old);
    echo_once(&mut session, "in region 0");
    let (new, new_http) = sim.renewed("cross 0 1", 1);
    // SPEC §4: a region change revokes the object's URLs with close 1001.
    assert_eq!(recv_close(&mut session), (1001, "region change".to_string()));
    assert_eq!(handshake_status(&old), 404);
    assert_eq!(curl(&["-d", "x"], &old_http).status, 404);
    // The new URLs are region 1's and work.
    assert_eq!(tag(&new), tag(&sim.url("region-url", 1)));
    echo_once(&mut wire::client(&new), "in region 1");
    assert_eq!(curl(&["-d", "crossed"], &new_http).text(), "crossed");
    // Region 0 rezzed a new echo object of its own, which works too.
    let rezzed = sim.wait("object-url", 0, |u| u != old);
    assert_eq!(tag(&rezzed), tag(&old));
    echo_once(&mut wire::client(&rezzed), "region 0's new object");
}
