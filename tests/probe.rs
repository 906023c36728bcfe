//! The `probe` example (a live-server conformance probe) as a child process:
//! every check passes against the `echo_server` example, and checks fail —
//! without hanging — against deliberately broken servers.
//!
//! The probe is built like `echo_server` (see `e2e_support::process`), or
//! taken from `PROBE_BIN`.

mod e2e_support;
mod probe_fakes;
mod probe_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e_support::Target;
use e2e_support::process::EchoProcess;
use probe_fakes::Mode;
use probe_fakes::lines::LineMode;
use probe_support::{Run, assert_verdicts, check_names, fail_line, fake_server, names_needing, probe};
use tungstenite::Message;

/// The SPEC rows the probe lists as not checked from outside.
const NOT_CHECKED: [&str; 14] = [
    "sessions-503",
    "rate-429",
    "handshake-timeout",
    "idle-ping-1006",
    "back-pressure",
    "script-events",
    "revocation",
    "region-too-large",
    "region-uns-notice",
    "http-inflight-503",
    "http-rate-429",
    "http-revocation-503",
    "http-413-switch",
    "http-content-type",
];

/// The HTTP-in checks (SPEC §8).
const HTTP_CHECKS: [&str; 21] = [
    "http-unknown-cap-404",
    "http-method-405",
    "http-head-431",
    "http-body-echo",
    "http-body-2048",
    "http-latin1-default",
    "http-utf8-declared",
    "http-invalid-utf8-fffd",
    "http-chunked",
    "http-expect-100",
    "http-keep-alive",
    "http-pipelining",
    "http-connection-close",
    "http-10-close",
    "http-status",
    "http-status-500",
    "http-header-readback",
    "http-header-255",
    "http-path-info",
    "http-method",
    "http-hold-504",
];

#[test]
fn every_check_passes_against_echo_server() {
    let p = EchoProcess::start(&["--http-timeout", "1"]);
    let region = p.region_url().expect("echo_server's region echo script holds the region URL");
    let http = p.http_url();
    let args = ["--object-url", &p.object_url(), "--region-url", &region, "--http-url", &http, "--http-timeout", "1"];
    let run = probe(&[&args[..], &["--lines", "--sse"]].concat());
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let names = check_names();
    assert!(names.len() >= 60, "only {} checks listed", names.len());
    for name in HTTP_CHECKS {
        assert!(names.iter().any(|(n, needs)| n == name && needs.starts_with("--http-url")), "{name} not listed");
    }
    for name in LINE_CHECKS {
        assert!(names.iter().any(|(n, needs)| n == name && needs.starts_with("--lines")), "{name} not listed");
    }
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
    let object_checks = check_names().iter().filter(|(_, needs)| needs.is_empty()).count();
    assert_eq!(run.summary(), format!("{object_checks} passed, 0 failed"), "{}", run.shown());
    assert!(run.lines.iter().all(|l| !l.contains(" region-echo")), "{}", run.shown());
    assert!(run.lines.iter().any(|l| l.starts_with("SKIP region-*")), "{}", run.shown());
    assert!(run.lines.iter().all(|l| !l.starts_with("PASS http-")), "{}", run.shown());
    assert!(run.lines.iter().any(|l| l.starts_with("SKIP http-*")), "{}", run.shown());
}

#[test]
fn without_http_timeout_the_504_check_is_left_out() {
    let p = EchoProcess::start(&[]);
    let http = p.http_url();
    let run = probe(&["--object-url", &p.object_url(), "--http-url", &http]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let http_checks = names_needing("--http-url").len();
    let object_checks = check_names().iter().filter(|(_, needs)| needs.is_empty()).count();
    // Every HTTP-in check but http-hold-504.
    assert_eq!(run.summary(), format!("{} passed, 0 failed", object_checks + http_checks - 1), "{}", run.shown());
    assert!(run.has("SKIP http-hold-504"), "{}", run.shown());
    assert!(run.has("PASS http-pipelining"), "{}", run.shown());
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
    let http = format!("http://{addr}/lslhttp/1d2c3b4a-93a1-4c55-8e1b-2b7d0c4e9f10/");
    let args = ["--object-url", &object, "--region-url", &region, "--timeout", "1", "--lines", "--sse"];
    let run = probe(&[&args[..], &["--http-url", &http, "--http-timeout", "1"]].concat());
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
    let http = format!("http://{addr}/lslhttp/1d2c3b4a-93a1-4c55-8e1b-2b7d0c4e9f10/");
    let args = ["--object-url", &object, "--region-url", &object, "--timeout", "0.2", "--lines", "--sse"];
    let run = probe(&[&args[..], &["--http-url", &http, "--http-timeout", "0.2"]].concat());
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
    let cases: [&[&str]; 11] = [
        &[],
        &["--object-url"],
        &["--object-url", "http://127.0.0.1:1/x"],
        &["--object-url", "wss://127.0.0.1:1/x"],
        &["--object-url", "ws://127.0.0.1:1/x", "--max-message", "lots"],
        &["--object-url", "ws://127.0.0.1:1/x", "--domain", "a,b"],
        &["--object-url", "ws://127.0.0.1:1/x", "--dance"],
        &["--object-url", "ws://127.0.0.1:1/x", "--http-url", "ws://127.0.0.1:1/lslhttp/x/"],
        &["--object-url", "ws://127.0.0.1:1/x", "--http-url", "https://127.0.0.1:1/lslhttps/x/"],
        &["--object-url", "ws://127.0.0.1:1/x", "--http-timeout", "1"],
        &["--object-url", "ws://127.0.0.1:1/x", "--http-url", "http://127.0.0.1:1/lslhttp/x/", "--http-timeout", "x"],
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
    assert!(text.contains("http-body-2048 [--http-url]: "), "{text}");
    assert!(text.contains("http-hold-504 [--http-url --http-timeout]: "), "{text}");
    assert!(text.contains("x-path-info as echo_server's does"), "{text}");
    assert!(
        text.contains("lines-echo [--lines]: ") && text.contains("lines-region [--lines --region-url]: "),
        "{text}"
    );
}

/// Runs every check against a sloppy HTTP-in server (`probe_fakes`),
/// the object URL there answers 404.
fn sloppy_run(serve: fn(TcpStream)) -> Run {
    let addr = fake_server(serve);
    let cap = probe_fakes::CAP;
    let object = format!("ws://{addr}/lslws/6f1d3b0e-93a1-4c55-8e1b-2b7d0c4e9f10/");
    let http = format!("http://{addr}/lslhttp/{cap}/");
    let run = probe(&["--object-url", &object, "--http-url", &http, "--http-timeout", "1", "--timeout", "1"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    println!("{}", run.shown());
    run
}

/// What the sloppy servers get right and wrong, and so which checks pass and fail.
const SLOPPY_RIGHT: [&str; 9] = [
    "http-unknown-cap-404",
    "http-body-echo",
    "http-utf8-declared",
    "http-invalid-utf8-fffd",
    "http-status",
    "http-header-readback",
    "http-method",
    "http-connection-close",
    "http-10-close",
];
const SLOPPY_WRONG: [&str; 12] = [
    "http-method-405",
    "http-head-431",
    "http-body-2048",
    "http-latin1-default",
    "http-chunked",
    "http-expect-100",
    "http-keep-alive",
    "http-pipelining",
    "http-status-500",
    "http-header-255",
    "http-path-info",
    "http-hold-504",
];

#[test]
fn a_sloppy_http_in_server_fails_the_checks_it_breaks() {
    let run = sloppy_run(|s| probe_fakes::sloppy_http(s, Mode::CloseAlways));
    assert_verdicts(&run, &SLOPPY_RIGHT, &SLOPPY_WRONG);
    let latin1 = run.lines.iter().find(|l| l.starts_with("FAIL http-latin1-default")).unwrap();
    assert!(latin1.contains("caf\\u{fffd}") || latin1.contains("caf�"), "{latin1}");
    let cut = run.lines.iter().find(|l| l.starts_with("FAIL http-status-500")).unwrap();
    assert!(cut.contains("700") && cut.contains("want 500"), "{cut}");
    let expect = run.lines.iter().find(|l| l.starts_with("FAIL http-expect-100")).unwrap();
    assert!(expect.contains("100 Continue") && expect.contains("no answer within"), "{expect}");
    // Every HTTP-in check is judged, none hangs.
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
}

#[test]
fn a_keep_open_http_in_server_fails_the_close_checks() {
    let run = sloppy_run(|s| probe_fakes::sloppy_http(s, Mode::KeepOpen));
    let mut right: Vec<&str> = SLOPPY_RIGHT.iter().copied().filter(|n| !n.ends_with("close")).collect();
    right.extend(["http-keep-alive", "http-pipelining"]);
    assert_verdicts(&run, &right, &["http-connection-close", "http-10-close"]);
    let close = run.lines.iter().find(|l| l.starts_with("FAIL http-connection-close")).unwrap();
    assert!(close.contains("stayed open"), "{close}");
}

/// What [`Mode::WrongAnswers`] breaks: the checks the other sloppy servers pass.
const WRONG_ANSWERS: [&str; 7] = [
    "http-unknown-cap-404",
    "http-body-echo",
    "http-utf8-declared",
    "http-invalid-utf8-fffd",
    "http-status",
    "http-header-readback",
    "http-method",
];

#[test]
fn a_wrong_answers_http_in_server_fails_the_checks_it_breaks() {
    let run = sloppy_run(|s| probe_fakes::sloppy_http(s, Mode::WrongAnswers));
    let right = ["http-latin1-default", "http-status-500"];
    assert_verdicts(&run, &right, &WRONG_ANSWERS);
    let line = |name: &str| run.lines.iter().find(|l| l.starts_with(&format!("FAIL {name}:"))).unwrap().clone();
    assert!(line("http-invalid-utf8-fffd").contains("ab?cd"), "{}", run.shown());
    assert!(line("http-status").contains("400") && line("http-status").contains("want 418"), "{}", run.shown());
    assert!(line("http-method").contains("\"get\""), "{}", run.shown());
}

#[test]
fn every_http_check_is_shown_failing_by_a_broken_server() {
    // The three sloppy servers above between them fail every HTTP-in check.
    let mut failed: Vec<&str> = SLOPPY_WRONG.to_vec();
    failed.extend(["http-connection-close", "http-10-close"]);
    failed.extend(WRONG_ANSWERS);
    failed.sort_unstable();
    let mut listed = names_needing("--http-url");
    listed.sort_unstable();
    assert_eq!(failed, listed);
    let mut all = HTTP_CHECKS.to_vec();
    all.sort_unstable();
    assert_eq!(all, listed);
}

/// The line-client checks (SPEC §13, `--lines`).
const LINE_CHECKS: [&str; 11] = [
    "lines-echo",
    "lines-escapes",
    "lines-crlf",
    "lines-split",
    "lines-oversize-1009",
    "lines-invalid-utf8-1007",
    "lines-unknown-404",
    "lines-bad-first-line-400",
    "lines-ping-pong",
    "lines-close-echo",
    "lines-region",
];

/// Runs the probe with `--lines` against a broken line server; its other
/// checks fail at once (the server closes what is not a line client).
fn broken_lines_run(serve: fn(TcpStream)) -> Run {
    let addr = fake_server(serve);
    let object = format!("ws://{addr}/lslws/{}/", probe_fakes::CAP);
    let region = format!("ws://{addr}/lslws/{}/", probe_fakes::lines::REGION_CAP);
    let run = probe(&["--object-url", &object, "--region-url", &region, "--lines", "--timeout", "1"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    println!("{}", run.shown());
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
    run
}

/// What [`LineMode::Sloppy`] gets wrong: everything but line framing.
const SLOPPY_LINES_WRONG: [&str; 9] = [
    "lines-escapes",
    "lines-crlf",
    "lines-oversize-1009",
    "lines-invalid-utf8-1007",
    "lines-unknown-404",
    "lines-bad-first-line-400",
    "lines-ping-pong",
    "lines-close-echo",
    "lines-region",
];

#[test]
fn a_sloppy_line_server_fails_the_line_checks_it_breaks() {
    let run = broken_lines_run(|s| probe_fakes::lines::broken_lines(s, LineMode::Sloppy));
    assert_verdicts(&run, &["lines-echo", "lines-split"], &SLOPPY_LINES_WRONG);
    assert!(fail_line(&run, "lines-escapes").contains("want \"\\\\\\\\ping\""), "{}", run.shown());
    assert!(fail_line(&run, "lines-ping-pong").contains("\"\\\\ping\", want \"\\\\pong\""), "{}", run.shown());
    assert!(fail_line(&run, "lines-close-echo").contains("stayed open"), "{}", run.shown());
    assert!(fail_line(&run, "lines-unknown-404").contains("\"hello\", want \\error 404"), "{}", run.shown());
    assert!(fail_line(&run, "lines-crlf").contains("crlf\\r"), "{}", run.shown());
}

#[test]
fn a_line_server_that_takes_reads_for_lines_fails_the_framing_checks() {
    let run = broken_lines_run(|s| probe_fakes::lines::broken_lines(s, LineMode::PerRead));
    // Right here: the checks that wait for each answer before the next write
    // (the others send lines back to back, which a per-read server may or may
    // not see as one read).
    let right: Vec<&str> = SLOPPY_LINES_WRONG
        .iter()
        .copied()
        .filter(|n| !matches!(*n, "lines-region" | "lines-oversize-1009" | "lines-ping-pong"))
        .collect();
    assert_verdicts(&run, &right, &["lines-echo", "lines-split", "lines-region"]);
    assert!(fail_line(&run, "lines-echo").contains("one\\\\ntwo"), "{}", run.shown());
    // Between them the two broken line servers fail every line check.
    let mut failed = SLOPPY_LINES_WRONG.to_vec();
    failed.extend(["lines-echo", "lines-split"]);
    failed.sort_unstable();
    let mut listed = names_needing("--lines");
    listed.sort_unstable();
    let mut all = LINE_CHECKS.to_vec();
    all.sort_unstable();
    assert_eq!(failed, listed);
    assert_eq!(all, listed);
}
