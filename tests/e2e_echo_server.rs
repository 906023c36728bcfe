//! End to end against the `echo_server` example, run as a child process
//! (see `e2e_support::process` for how it is built and found), over real TCP on
//! 127.0.0.1: every SPEC §5 row a socket can observe, each stdin command,
//! `quit`, and 200 clients × 100 messages.

mod e2e_support;

use std::time::Duration;

use e2e_support::process::{EchoProcess, Line};
use e2e_support::wire::{self, Raw, client, echo_once, http_body, split_url};
use e2e_support::{Target, WAIT};

conformance_tests!(EchoProcess::start(&[]));

#[test]
fn unknown_command_is_reported_and_ignored() {
    let mut p = EchoProcess::start(&[]);
    p.send_line("dance");
    let error = p.wait_for(|line| match line {
        Line::Err(l) if l.contains("dance") => Some(l.clone()),
        _ => None,
    });
    assert!(error.contains("unknown command"), "{error}");
    let mut ws = client(&p.object_url());
    echo_once(&mut ws, "still here");
    // The next real command still works.
    p.command("reset");
    echo_once(&mut client(&p.object_url()), "after reset");
}

#[test]
fn stdin_eof_does_not_stop_the_server() {
    let mut p = EchoProcess::start(&[]);
    let mut ws = client(&p.object_url());
    p.close_stdin();
    echo_once(&mut ws, "one");
    // Give the server the chance to (wrongly) exit, then check it did not.
    std::thread::sleep(Duration::from_millis(200));
    echo_once(&mut ws, "two");
    echo_once(&mut client(&p.object_url()), "new session");
}

#[test]
fn max_message_flag() {
    let p = EchoProcess::start(&["--max-message", "16"]);
    let mut raw = Raw::open(&p.object_url());
    raw.text(&"a".repeat(16));
    assert_eq!(raw.expect_text().len(), 16);
    raw.text(&"a".repeat(17));
    raw.expect_close(1009);
}

#[test]
fn bad_arguments_exit_2() {
    let out = std::process::Command::new(e2e_support::process::echo_server_bin())
        .args(["--max-message", "lots"])
        .output()
        .expect("run echo_server");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-message"));
}

#[test]
fn url_host_port_is_the_bound_address() {
    let p = EchoProcess::start(&[]);
    let (addr, path) = split_url(&p.object_url());
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert!(path.starts_with("/lslws/") && path.ends_with('/'), "{path}");
}

#[test]
fn serves_the_demo_page_and_urls() {
    let p = EchoProcess::start(&[]);
    let (head, body) = http_body(p.addr(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.header("content-type").unwrap_or("").starts_with("text/html"));
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("id=\"object-input\"") && page.contains("new LslSocket"), "{page}");
    let (head, body) = http_body(p.addr(), "GET /lslws.js HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.header("content-type").unwrap_or("").starts_with("text/javascript"));
    let client = String::from_utf8(body).unwrap();
    assert!(client.contains("new WebSocket") && client.contains("new EventSource"), "the client and its fallback");

    let (head, body) = http_body(p.addr(), "GET /urls HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    let urls: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(urls["object"], p.object_url().as_str());
    assert_eq!(urls["region"].as_str(), p.region_url().as_deref());
    assert_eq!(urls["http"], p.http_url().as_str());

    assert_eq!(wire::http(p.addr(), "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n").status, 404);
    let post = "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(wire::http(p.addr(), post).status, 405);
}

#[test]
fn quit_exits_zero_with_no_sessions() {
    let mut p = EchoProcess::start(&[]);
    let took = p.quit();
    assert!(took < WAIT);
}
