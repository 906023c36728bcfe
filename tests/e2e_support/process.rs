//! The `echo_server` example as a child process.
//!
//! Cargo builds examples for `cargo test` but gives tests no path to them
//! (`CARGO_BIN_EXE_*` exists for binaries only), so [`echo_server_bin`]
//! runs `cargo build --example echo_server --message-format=json` once per
//! test binary, with the same cargo, profile and features as the test
//! itself, and takes the executable's path from cargo's own report. That
//! honours `CARGO_TARGET_DIR`, `--target-dir` in config files, and custom
//! profiles, and is a no-op when the example is already built. Set
//! `ECHO_SERVER_BIN` to test a prebuilt binary instead.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::{Target, WAIT, wire};

/// Path of the built `echo_server` example.
pub fn echo_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("ECHO_SERVER_BIN") {
        Some(path) => path.into(),
        None => example_bin("echo_server"),
    })
    .clone()
}

/// Builds an example with the same cargo, profile and features as this test
/// and returns the executable's path, as cargo reports it.
pub fn example_bin(name: &str) -> PathBuf {
    let mut features = Vec::new();
    if cfg!(feature = "std") {
        features.push("std");
    }
    if cfg!(feature = "tokio") {
        features.push("tokio");
    }
    if cfg!(feature = "tls") {
        features.push("tls");
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--example", name, "--message-format=json-render-diagnostics"])
        .args(["--features", &features.join(",")])
        .stderr(Stdio::inherit());
    // The same profile as this test, so the library's artifacts are shared.
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build --example");
    assert!(out.status.success(), "cargo build --example {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no {name} executable"))
}

/// A line the child printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Out(String),
    Err(String),
    /// The child's stdout ended.
    Closed,
}

/// A running `echo_server` child; killed when dropped.
pub struct EchoProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    /// Every stderr line seen so far.
    pub stderr: Vec<String>,
    addr: SocketAddr,
    object_url: String,
    region_url: Option<String>,
    http_url: String,
    /// With `--tls-cert`: the echo object's `wss://` and `https://` URLs.
    pub secure_object_url: Option<String>,
    pub secure_http_url: Option<String>,
}

impl EchoProcess {
    /// Starts `echo_server --bind 127.0.0.1:0 <args>` and waits for its URLs
    /// (with `--tls-cert`, for the secure ones too).
    pub fn start(args: &[&str]) -> EchoProcess {
        let mut process = EchoProcess::spawn(args);
        let tls = args.contains(&"--tls-cert");
        // The region script's answer is a URL on stdout or a denial on stderr;
        // the two pipes are read by two threads, so it may come first.
        let (mut object, mut region, mut http) = (None, None, None);
        let (mut secure_object, mut secure_http) = (None, None);
        while object.is_none()
            || region.is_none()
            || http.is_none()
            || (tls && (secure_object.is_none() || secure_http.is_none()))
        {
            process.wait_for(|line| {
                match line {
                    Line::Out(l) if l.starts_with("object-url ") => object = Some(l[11..].to_string()),
                    Line::Out(l) if l.starts_with("http-url ") => http = Some(l[9..].to_string()),
                    Line::Out(l) if l.starts_with("region-url ") => region = Some(Some(l[11..].to_string())),
                    Line::Out(l) if l.starts_with("secure-object-url ") => secure_object = Some(l[18..].to_string()),
                    Line::Out(l) if l.starts_with("secure-http-url ") => secure_http = Some(l[16..].to_string()),
                    Line::Err(l) if l.starts_with("region-url denied") => region = Some(None),
                    _ => return None,
                }
                Some(())
            });
        }
        process.object_url = object.unwrap_or_default();
        process.region_url = region.flatten();
        process.http_url = http.unwrap_or_default();
        (process.secure_object_url, process.secure_http_url) = (secure_object, secure_http);
        process.addr = wire::split_url(&process.object_url).0;
        process
    }

    /// Starts `echo_server --bind 127.0.0.1:0 <args>` and returns at once;
    /// read its lines with [`wait_for`](EchoProcess::wait_for).
    pub fn spawn(args: &[&str]) -> EchoProcess {
        let mut child = Command::new(echo_server_bin())
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn echo_server");
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let out_tx = tx.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = out_tx.send(Line::Out(line));
            }
            let _ = out_tx.send(Line::Closed);
        });
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let _ = tx.send(Line::Err(line));
            }
        });
        let stdin = child.stdin.take();
        EchoProcess {
            child,
            stdin,
            lines,
            stderr: Vec::new(),
            addr: "127.0.0.1:0".parse().unwrap(),
            object_url: String::new(),
            region_url: None,
            http_url: String::new(),
            secure_object_url: None,
            secure_http_url: None,
        }
    }

    /// Waits for the first line `pick` accepts; every stderr line is kept.
    pub fn wait_for<T>(&mut self, mut pick: impl FnMut(&Line) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("echo_server printed nothing expected within {WAIT:?}; it printed {seen:?}")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("echo_server's output ended"),
            };
            if let Line::Err(l) = &line {
                self.stderr.push(l.clone());
            }
            if let Some(found) = pick(&line) {
                return found;
            }
            seen.push(line.clone());
            assert_ne!(line, Line::Closed, "echo_server's stdout ended");
        }
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("write to echo_server's stdin");
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the child to exit, for at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for echo_server") {
                return status;
            }
            assert!(Instant::now() < deadline, "echo_server did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Target for EchoProcess {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn object_url(&self) -> String {
        self.object_url.clone()
    }

    fn region_url(&self) -> Option<String> {
        self.region_url.clone()
    }

    fn http_url(&self) -> String {
        self.http_url.clone()
    }

    fn command(&mut self, command: &str) {
        self.send_line(command);
        // After a restart both scripts print new URLs, in either order.
        let (mut object, mut http) = (None, None);
        let mut region = (command != "restart" || self.region_url.is_none()).then(|| self.region_url.clone());
        // With TLS the echo object prints its secure URLs too.
        let tls = self.secure_object_url.is_some();
        let (mut secure_object, mut secure_http) = (None, None);
        while object.is_none()
            || region.is_none()
            || http.is_none()
            || (tls && (secure_object.is_none() || secure_http.is_none()))
        {
            let (label, url) = self.wait_for(|line| match line {
                Line::Out(l) => l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
                _ => None,
            });
            match label.as_str() {
                "secure-object-url" => secure_object = Some(url),
                "secure-http-url" => secure_http = Some(url),
                "object-url" => object = Some(url),
                "region-url" => region = Some(Some(url)),
                "http-url" => http = Some(url),
                _ => panic!("unexpected line {label} {url}"),
            }
        }
        self.object_url = object.unwrap_or_default();
        self.region_url = region.flatten();
        self.http_url = http.unwrap_or_default();
        if tls {
            (self.secure_object_url, self.secure_http_url) = (secure_object, secure_http);
        }
    }

    fn quit(&mut self) -> Duration {
        let start = Instant::now();
        self.send_line("quit");
        let status = self.wait_exit(WAIT);
        assert!(status.success(), "echo_server exited with {status}");
        start.elapsed()
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        // Only the child this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
