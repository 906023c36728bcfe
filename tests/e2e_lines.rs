//! SPEC §13, raw TCP lines on the same port, end to end over real TCP on
//! 127.0.0.1: a raw TCP client in this test (and Debian's `socat`) against
//! the `echo_server` example (a child process) and the tokio adapter in this
//! process. Echo, lines split across reads, escapes, the cap (1009),
//! invalid UTF-8 (1007), `\error 404`, a client that does not read (the
//! server stops reading, TCP pushes back, nothing is lost), every lifecycle
//! command, the region endpoint over lines, and WebSocket and HTTP-in
//! clients on the same port. Every wait is bounded.

mod e2e_support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e_support::echo::{example_config, start_tokio};
use e2e_support::process::EchoProcess;
use e2e_support::wire::{client, echo_once, split_url, tcp};
use e2e_support::{Target, WAIT};

/// A line client: one TCP connection, lines both ways.
struct Lines {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Lines {
    /// Connects to `url`'s address and sends its path (plus `suffix`) as the first line.
    fn open(url: &str, suffix: &str) -> Lines {
        let (addr, path) = split_url(url);
        let mut lines = Lines::connect(addr);
        lines.write(format!("{path}{suffix}\n").as_bytes());
        lines
    }

    fn connect(addr: SocketAddr) -> Lines {
        let stream = tcp(addr);
        Lines { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to the server");
    }

    fn send(&mut self, line: &str) {
        self.write(format!("{line}\n").as_bytes());
    }

    /// The next line, without its `\n`.
    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(_) if buf.ends_with(b"\n") => {
                buf.pop();
                String::from_utf8(buf).expect("server lines are UTF-8")
            }
            Ok(_) => panic!("connection ended inside a line: {:?}", String::from_utf8_lossy(&buf)),
            Err(e) => panic!("reading a line: {e} (after {:?})", String::from_utf8_lossy(&buf)),
        }
    }

    fn echo(&mut self, line: &str) {
        self.send(line);
        assert_eq!(self.line(), line, "echo of {line:?}");
    }

    /// The server closes: EOF within the wait, nothing more.
    fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "bytes after the last line: {:?}", String::from_utf8_lossy(&rest)),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => assert!(rest.is_empty()),
            Err(e) => panic!("no EOF: {e}; got {:?}", String::from_utf8_lossy(&rest)),
        }
    }
}

fn region_url(t: &dyn Target) -> String {
    t.region_url().expect("the region echo script holds the region endpoint")
}

pub fn echo(t: &mut dyn Target) {
    let mut c = Lines::open(&t.object_url(), "");
    for line in ["hello", "", "héllo ✓ 日本", "a,b,c", "  spaced  "] {
        c.echo(line);
    }
    // CRLF is a line end too; the answer ends with LF alone.
    c.write(b"crlf\r\n");
    assert_eq!(c.line(), "crlf");
    // The client may ask whether the server is there.
    c.send("\\ping");
    assert_eq!(c.line(), "\\pong");
    c.send("\\close 4000 done");
    assert_eq!(c.line(), "\\close 4000 done");
    c.expect_eof();
}

pub fn split_across_reads(t: &mut dyn Target) {
    let (addr, path) = split_url(&t.object_url());
    let mut c = Lines::connect(addr);
    // The first line and a message line, each in pieces, with pauses so the server reads them apart.
    let stream = format!("{path}?q=1\nhello, split world\nsecond\n");
    for piece in stream.as_bytes().chunks(5) {
        c.write(piece);
        std::thread::sleep(Duration::from_millis(15));
    }
    assert_eq!(c.line(), "hello, split world");
    assert_eq!(c.line(), "second");
    // A multi-byte character split between reads.
    c.write(b"caf\xc3");
    std::thread::sleep(Duration::from_millis(30));
    c.write(b"\xa9\n");
    assert_eq!(c.line(), "café");
}

pub fn escapes(t: &mut dyn Target) {
    let mut c = Lines::open(&t.object_url(), "");
    // The script sees the unescaped text and echoes it; the server escapes it again.
    for line in ["a\\nb", "back\\\\slash", "cr\\r", "\\\\n is not a newline", "\\q stays", "end\\"] {
        c.send(line);
        let back = c.line();
        let expected = match line {
            // Unknown escapes and a trailing backslash stay as written, so the script sees a
            // backslash, which comes back doubled.
            "\\q stays" => "\\\\q stays",
            "end\\" => "end\\\\",
            other => other,
        };
        assert_eq!(back, expected, "{line:?}");
    }
    // Control words are messages when escaped.
    c.echo("\\\\close 1000");
    c.echo("\\\\ping");
}

pub fn over_cap_1009(t: &mut dyn Target) {
    let mut c = Lines::open(&t.object_url(), "");
    c.echo(&"a".repeat(2048));
    c.send(&"a".repeat(2049));
    assert_eq!(c.line(), "\\close 1009 message too big");
    c.expect_eof();
    // A line that never ends is refused before it is held whole.
    let mut c = Lines::open(&t.object_url(), "");
    c.write("b".repeat(9000).as_bytes());
    assert_eq!(c.line(), "\\close 1009 message too big");
    c.expect_eof();
}

pub fn invalid_utf8_1007(t: &mut dyn Target) {
    let mut c = Lines::open(&t.object_url(), "");
    c.echo("ok");
    c.write(b"\xc3(\n");
    assert_eq!(c.line(), "\\close 1007 invalid utf-8");
    c.expect_eof();
}

pub fn unknown_url_404(t: &mut dyn Target) {
    let addr = t.addr();
    for first in ["/lslws/5e2a0c1d-7b3f-4e8a-9c6d-0f1e2d3c4b5a/", "/nowhere", "/lslws/not-a-key/"] {
        let mut c = Lines::connect(addr);
        c.send(first);
        assert_eq!(c.line(), "\\error 404 not found", "{first}");
        c.expect_eof();
    }
    // An HTTP-in URL is no WebSocket URL.
    let http = t.http_url();
    let path = &http[http.find("/lslhttp/").expect("an HTTP-in URL")..];
    let mut c = Lines::connect(addr);
    c.send(path);
    assert_eq!(c.line(), "\\error 404 not found");
    c.expect_eof();
}

/// A client that writes lines and reads nothing: the script's echoes fill
/// the session's outgoing buffer (sends are busy), its queue fills, the
/// server stops reading and TCP pushes back on the writer, which stalls.
/// When the client reads, every echo arrives, in order, and the writer
/// finishes. How much is absorbed before the stall is the socket buffers
/// both ways (~7 MB here), the core's 64 KiB hold, and, on a multi-thread
/// runtime, what the tokio adapter reads ahead of a pause (its report
/// queue: up to 1024 reads of 16 KiB), so the writer goes on until it stalls.
pub fn never_reading_client_is_paused(t: &mut dyn Target) {
    const MAX: usize = 100_000; // 100 MB of 1000-byte lines: far more than any buffering
    let mut c = Lines::open(&t.object_url(), "");
    let line = |i: usize| format!("{i:07} {}", "x".repeat(992));
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut w = c.writer.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let (progress, stop_w, done_w) = (written.clone(), stop.clone(), done.clone());
    let writer = std::thread::spawn(move || {
        let mut batch = String::new();
        for i in 0..MAX {
            batch.push_str(&line(i));
            batch.push('\n');
            if batch.len() > 16 * 1024 {
                w.write_all(batch.as_bytes()).expect("write lines");
                batch.clear();
                progress.store(i + 1, Ordering::SeqCst);
                if stop_w.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
        done_w.store(true, Ordering::SeqCst);
    });
    // Wait until the writer stalls: no progress for half a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = written.load(Ordering::SeqCst);
        assert!(!done.load(Ordering::SeqCst), "all {MAX} lines went out without the client reading");
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the writer never stalled (at {now} lines)");
        last = now;
    }
    stop.store(true, Ordering::SeqCst);
    c.reader.get_ref().set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut i = 0;
    while !(done.load(Ordering::SeqCst) && i == written.load(Ordering::SeqCst)) {
        let got = c.line();
        assert!(got == line(i), "echo {i} out of order or lost: {:?}", &got[..got.len().min(20)]);
        i += 1;
    }
    writer.join().expect("writer thread");
    assert!(i > last, "the stalled writer went on once the client read ({last} then {i} lines)");
    c.echo("after");
}

fn lifecycle(t: &mut dyn Target, command: &str, cause: &str) {
    let old = t.object_url();
    let mut c = Lines::open(&old, "/before");
    c.echo("before");
    t.command(command);
    assert_eq!(c.line(), format!("\\close 1001 {cause}"), "after {command}");
    c.expect_eof();
    let mut c = Lines::open(&old, "");
    assert_eq!(c.line(), "\\error 404 not found", "old URL after {command}");
    c.expect_eof();
    let new = t.object_url();
    assert_ne!(new, old, "{command} mints a new URL");
    Lines::open(&new, "").echo(&format!("after {command}"));
}

pub fn lifecycle_commands(t: &mut dyn Target) {
    for (command, cause) in [
        ("reset", "script reset"),
        ("rez", "object rezzed"),
        ("region-change", "region change"),
        ("owner-change", "owner change"),
        ("remove", "object removed"),
        ("release", "url released"),
        ("restart", "region restart"),
    ] {
        lifecycle(t, command, cause);
    }
}

pub fn region_endpoint(t: &mut dyn Target) {
    let url = region_url(t);
    let mut c = Lines::open(&url, "");
    for payload in ["hello", "a,b,c", "", "héllo ✓", "two\\nlines"] {
        c.echo(&format!("msg,echo,{payload}"));
    }
    c.send("msg,nobody-listens,x");
    assert_eq!(c.line(), "err,nobody-listens,no-listener");
    c.send("not an envelope");
    assert_eq!(c.line(), "err,,bad-frame");
    c.echo("msg,echo,still open");
    // A restart closes it and mints a new endpoint.
    t.command("restart");
    assert_eq!(c.line(), "\\close 1001 region restart");
    c.expect_eof();
    let mut c = Lines::open(&url, "");
    assert_eq!(c.line(), "\\error 404 not found");
    Lines::open(&region_url(t), "").echo("msg,echo,after");
}

/// WebSocket and HTTP-in clients on the same port, while line clients are connected.
pub fn same_port_websocket_and_http(t: &mut dyn Target) {
    let mut line = Lines::open(&t.object_url(), "");
    line.echo("line first");
    let mut ws = client(&t.object_url());
    echo_once(&mut ws, "websocket");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--data-binary", "posted body", &t.http_url()])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "posted body");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{}status/204", t.http_url()),
        ])
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204");
    line.echo("line still open");
    echo_once(&mut ws, "websocket still open");
}

/// Debian's `socat` as the line client: its stdin lines go out, the server's come back on its stdout.
fn socat_client(t: &mut dyn Target) {
    let (addr, path) = split_url(&t.object_url());
    assert!(addr.ip().is_loopback());
    let mut child = Command::new("socat")
        .args(["-t", "2", "-", &format!("TCP:{addr}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run socat (scripts/setup.sh installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || rx.recv_timeout(WAIT).expect("a line from socat within the wait");
    writeln!(stdin, "{path}\nhello from socat\ntab\there\nescaped\\nnewline").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next(), "hello from socat");
    assert_eq!(next(), "tab\there");
    assert_eq!(next(), "escaped\\nnewline");
    writeln!(stdin, "\\close 1000 bye").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next(), "\\close 1000 bye");
    // The server closed; socat ends with it.
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "socat exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("socat did not exit after the server closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

macro_rules! line_tests {
    ($module:ident, $start:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn echo() {
                super::echo(&mut $start);
            }
            #[test]
            fn split_across_reads() {
                super::split_across_reads(&mut $start);
            }
            #[test]
            fn escapes() {
                super::escapes(&mut $start);
            }
            #[test]
            fn over_cap_1009() {
                super::over_cap_1009(&mut $start);
            }
            #[test]
            fn invalid_utf8_1007() {
                super::invalid_utf8_1007(&mut $start);
            }
            #[test]
            fn unknown_url_404() {
                super::unknown_url_404(&mut $start);
            }
            #[test]
            fn never_reading_client_is_paused() {
                let _heavy = e2e_support::heavy();
                super::never_reading_client_is_paused(&mut $start);
            }
            #[test]
            fn lifecycle_commands() {
                super::lifecycle_commands(&mut $start);
            }
            #[test]
            fn region_endpoint() {
                super::region_endpoint(&mut $start);
            }
            #[test]
            fn same_port_websocket_and_http() {
                super::same_port_websocket_and_http(&mut $start);
            }
        }
    };
}

line_tests!(echo_server, EchoProcess::start(&[]));
line_tests!(tokio_adapter, start_tokio(example_config()));

#[test]
fn socat_line_client_against_echo_server() {
    socat_client(&mut EchoProcess::start(&[]));
}
