//! The `probe` example (a live-server conformance probe) as a child process:
//! every check passes against the `echo_server` example, and checks fail —
//! without hanging — against deliberately broken servers.
//!
//! The probe is built like `echo_server` (see `e2e_support::process`), or
//! taken from `PROBE_BIN`.

mod e2e_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use e2e_support::Target;
use e2e_support::process::{EchoProcess, example_bin};
use tungstenite::Message;

/// How long one probe run may take before the test fails (and kills it).
const PROBE_LIMIT: Duration = Duration::from_secs(120);

fn probe_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("PROBE_BIN") {
        Some(path) => path.into(),
        None => example_bin("probe"),
    })
    .clone()
}

/// One finished probe run.
struct Run {
    code: Option<i32>,
    lines: Vec<String>,
    stderr: String,
    took: Duration,
}

impl Run {
    fn shown(&self) -> String {
        format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", self.code, self.lines.join("\n"), self.stderr)
    }

    /// The check lines: every line but the `SKIP` lines and the summary.
    fn checks(&self) -> Vec<&str> {
        let n = self.lines.len().saturating_sub(1);
        self.lines[..n].iter().map(String::as_str).filter(|l| !l.starts_with("SKIP ")).collect()
    }

    fn summary(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }

    fn has(&self, line_start: &str) -> bool {
        self.lines.iter().any(|l| l == line_start || l.starts_with(&format!("{line_start}:")))
    }
}

/// Runs the probe with `args`, killing it if it outlives [`PROBE_LIMIT`].
fn probe(args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new(probe_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn probe");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the probe") {
            break status;
        }
        if start.elapsed() > PROBE_LIMIT {
            // Only the child this test started, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the probe ran longer than {PROBE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap();
    Run {
        code: status.code(),
        lines: stdout.lines().map(str::to_string).collect(),
        stderr: err.join().unwrap(),
        took: start.elapsed(),
    }
}

/// Every check's name, from `probe --list`: `(name, needs --region-url)`.
fn check_names() -> Vec<(String, bool)> {
    let run = probe(&["--list"]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    run.lines
        .iter()
        .skip_while(|l| !l.starts_with("checks"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let name = l.trim_start().split([':', ' ']).next().unwrap_or_default().to_string();
            (name, l.contains("[--region-url]"))
        })
        .collect()
}

/// The SPEC rows the probe lists as not checked from outside.
const NOT_CHECKED: [&str; 9] = [
    "sessions-503",
    "rate-429",
    "handshake-timeout",
    "idle-ping-1006",
    "back-pressure",
    "script-events",
    "revocation",
    "region-too-large",
    "region-uns-notice",
];

#[test]
fn every_check_passes_against_echo_server() {
    let p = EchoProcess::start(&[]);
    let region = p.region_url().expect("echo_server's region echo script holds the region URL");
    let run = probe(&["--object-url", &p.object_url(), "--region-url", &region]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let names = check_names();
    assert!(names.len() >= 35, "only {} checks listed", names.len());
    let checks = run.checks();
    assert_eq!(checks.len(), names.len(), "{}", run.shown());
    for line in &checks {
        assert!(line.starts_with("PASS "), "{line}\n{}", run.shown());
    }
    for (name, _) in &names {
        assert!(run.has(&format!("PASS {name}")), "no PASS {name}\n{}", run.shown());
    }
    for name in NOT_CHECKED {
        let skip = run.lines.iter().find(|l| l.starts_with(&format!("SKIP {name}: ")));
        let skip = skip.unwrap_or_else(|| panic!("no SKIP {name}\n{}", run.shown()));
        assert!(skip.contains("not checked from outside"), "{skip}");
    }
    assert_eq!(run.summary(), format!("{} passed, 0 failed", names.len()));
    println!("{}", run.shown());
}

#[test]
fn without_region_url_the_region_checks_are_left_out() {
    let p = EchoProcess::start(&[]);
    let run = probe(&["--object-url", &p.object_url()]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let object_checks = check_names().iter().filter(|(_, region)| !region).count();
    assert_eq!(run.summary(), format!("{object_checks} passed, 0 failed"), "{}", run.shown());
    assert!(run.lines.iter().all(|l| !l.contains(" region-echo")), "{}", run.shown());
    assert!(run.lines.iter().any(|l| l.starts_with("SKIP region-*")), "{}", run.shown());
}

#[test]
fn max_message_flag_sets_the_cap_the_size_checks_expect() {
    let p = EchoProcess::start(&["--max-message", "100"]);
    let run = probe(&["--object-url", &p.object_url(), "--max-message", "100"]);
    assert_eq!(run.code, Some(0), "{}", run.shown());

    // The probe told the wrong cap: 201 bytes echo where it expects 1009.
    let run = probe(&["--object-url", &p.object_url(), "--max-message", "200"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    assert!(run.has("FAIL oversize-1009"), "{}", run.shown());
    assert!(run.has("PASS ping-pong"), "{}", run.shown());
}

/// A server on 127.0.0.1 that runs `serve` on each connection in its own thread.
fn fake_server(serve: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
            std::thread::spawn(move || serve(stream));
        }
    });
    addr.to_string()
}

/// Reads up to the end of a request head (or what comes within a moment).
fn read_request_head(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn every_check_fails_against_a_server_that_answers_200() {
    let addr = fake_server(|mut stream| {
        read_request_head(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    });
    let object = format!("ws://{addr}/lslws/6f1d3b0e-93a1-4c55-8e1b-2b7d0c4e9f10/");
    let region = format!("ws://{addr}/lslws/0c0d6b8e-43a1-4c55-8e1b-2b7d0c4e9f10/");
    let run = probe(&["--object-url", &object, "--region-url", &region, "--timeout", "1"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    let names = check_names();
    let checks = run.checks();
    assert_eq!(checks.len(), names.len(), "{}", run.shown());
    for line in &checks {
        assert!(line.starts_with("FAIL ") && line.contains(": "), "{line}\n{}", run.shown());
    }
    assert_eq!(run.summary(), format!("0 passed, {} failed", names.len()));
    assert!(run.has("FAIL handshake-101"), "{}", run.shown());
    let handshake = run.lines.iter().find(|l| l.starts_with("FAIL handshake-101")).unwrap();
    assert!(handshake.contains("200 OK") && handshake.contains("want 101"), "{handshake}");
    println!("{}", run.shown());
}

/// Accepts every handshake (any path) and echoes text reversed and binary as is.
fn wrong_echo(stream: TcpStream) {
    let Ok(mut ws) = tungstenite::accept(stream) else { return };
    loop {
        let reply = match ws.read() {
            Ok(Message::Text(t)) => Message::text(t.chars().rev().collect::<String>()),
            Ok(Message::Binary(b)) => Message::Binary(b),
            Ok(_) => continue,
            Err(_) => return,
        };
        if ws.send(reply).is_err() {
            return;
        }
    }
}

#[test]
fn a_wrong_echo_server_fails_the_checks_it_breaks() {
    let addr = fake_server(wrong_echo);
    let object = format!("ws://{addr}/lslws/6f1d3b0e-93a1-4c55-8e1b-2b7d0c4e9f10/");
    let region = format!("ws://{addr}/lslws/0c0d6b8e-43a1-4c55-8e1b-2b7d0c4e9f10/");
    let run = probe(&["--object-url", &object, "--region-url", &region, "--timeout", "1"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    // What tungstenite's server does right…
    for name in ["handshake-101", "ping-pong", "region-handshake-101"] {
        assert!(run.has(&format!("PASS {name}")), "no PASS {name}\n{}", run.shown());
    }
    // …and what this one does wrong.
    for name in ["unknown-cap-404", "text-echo", "binary-1003", "header-value-431", "region-echo", "region-bad-frame"] {
        assert!(run.has(&format!("FAIL {name}")), "no FAIL {name}\n{}", run.shown());
    }
    let echo = run.lines.iter().find(|l| l.starts_with("FAIL text-echo")).unwrap();
    assert!(echo.contains("olleh") && echo.contains("assumes"), "{echo}");
    println!("{}", run.shown());
    let summary = run.summary();
    assert!(summary.ends_with(" failed") && !summary.ends_with(" 0 failed"), "{summary}");
}

#[test]
fn a_silent_server_cannot_hang_the_probe() {
    // Accepts, reads everything, never answers.
    let addr = fake_server(|mut stream| {
        let mut sink = [0; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    let object = format!("ws://{addr}/lslws/6f1d3b0e-93a1-4c55-8e1b-2b7d0c4e9f10/");
    let run = probe(&["--object-url", &object, "--region-url", &object, "--timeout", "0.2"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    for line in run.checks() {
        assert!(line.starts_with("FAIL "), "{line}");
    }
    assert!(run.has("FAIL handshake-101"), "{}", run.shown());
    let handshake = run.lines.iter().find(|l| l.starts_with("FAIL handshake-101")).unwrap();
    assert!(handshake.contains("no answer within"), "{handshake}");
    println!("{}", run.shown());
    // About one 0.2 s timeout per check.
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
}

#[test]
fn bad_arguments_exit_2() {
    let cases: [&[&str]; 7] = [
        &[],
        &["--object-url"],
        &["--object-url", "http://127.0.0.1:1/x"],
        &["--object-url", "wss://127.0.0.1:1/x"],
        &["--object-url", "ws://127.0.0.1:1/x", "--max-message", "lots"],
        &["--object-url", "ws://127.0.0.1:1/x", "--domain", "a,b"],
        &["--object-url", "ws://127.0.0.1:1/x", "--dance"],
    ];
    for args in cases {
        let run = probe(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.shown());
        assert!(run.stderr.contains("usage: probe"), "{args:?}: {}", run.shown());
        assert!(run.lines.is_empty(), "{args:?}: {}", run.shown());
    }
}

#[test]
fn list_names_checks_assumptions_and_what_is_not_checked() {
    let run = probe(&["--list"]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let text = run.lines.join("\n");
    assert!(text.contains("text-echo") && text.contains("sends every text back"), "{text}");
    assert!(text.contains("not checked from outside"), "{text}");
    for name in NOT_CHECKED {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}
