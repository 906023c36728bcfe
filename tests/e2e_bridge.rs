//! The `stdio_bridge` example end to end: a client's text appears on the
//! bridge's stdout, `send` lines on its stdin reach the client, and end of
//! input shuts it down.

mod e2e_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use e2e_support::WAIT;
use e2e_support::process::example_bin;
use e2e_support::wire::Raw;

#[test]
fn relays_a_session_through_stdio() {
    let mut child = Command::new(example_bin("stdio_bridge"))
        .args(["--bind", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stdio_bridge");
    let (tx, lines) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || lines.recv_timeout(WAIT).expect("a line from stdio_bridge");
    let url = next().strip_prefix("url ").expect("url line first").to_string();
    let mut stdin = child.stdin.take().unwrap();

    let mut raw = Raw::open(&format!("{url}room/1"));
    let open = next();
    let session = open.split(' ').nth(1).unwrap().to_string();
    assert_eq!(open, format!("open {session} /room/1"));
    raw.text("two\nlines \\ here");
    assert_eq!(next(), format!("text {session} two\\nlines \\\\ here"));

    writeln!(stdin, "send {session} back\\nto you").unwrap();
    assert_eq!(raw.expect_text(), "back\nto you");
    writeln!(stdin, "send 00000000-0000-0000-0000-000000000000 x").unwrap();
    assert_eq!(next(), "error 00000000-0000-0000-0000-000000000000 WS_ERR_NO_SESSION");
    writeln!(stdin, "close {session} 4000 done").unwrap();
    assert_eq!(raw.expect_close(4000), "done");
    assert_eq!(next(), format!("close {session} 4000 done"));

    drop(stdin);
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "stdio_bridge did not exit at end of input");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(status.success());
}

#[test]
fn relays_a_region_domain() {
    let mut child = Command::new(example_bin("stdio_bridge"))
        .args(["--bind", "127.0.0.1:0", "--domain", "chat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stdio_bridge");
    let (tx, lines) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || lines.recv_timeout(WAIT).expect("a line from stdio_bridge");
    assert_eq!(next(), format!("channel {}", lsl_websocket::clep::channel("chat")));
    let url = next().strip_prefix("url ").expect("then the region endpoint URL").to_string();
    let mut stdin = child.stdin.take().unwrap();

    let mut raw = Raw::open(&url);
    raw.text("sub,chat");
    let session = next().split(' ').nth(1).unwrap().to_string();
    raw.text("msg,chat,hello, bridge");
    assert_eq!(next(), format!("text {session} hello, bridge"));
    writeln!(stdin, "send {session} hi back").unwrap();
    assert_eq!(raw.expect_text(), "msg,chat,hi back");
    drop(stdin);
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "stdio_bridge did not exit at end of input");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
