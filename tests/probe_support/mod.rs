//! Running the `probe` example as a child process, shared by
//! `tests/probe.rs` and `tests/probe_sse.rs`: one bounded run, its lines,
//! the checks `--list` names, and a fake server on 127.0.0.1.
#![allow(dead_code)] // each test binary uses a different part

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::e2e_support::process::example_bin;

/// How long one probe run may take before the test fails (and kills it).
pub const PROBE_LIMIT: Duration = Duration::from_secs(120);

pub fn probe_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("PROBE_BIN") {
        Some(path) => path.into(),
        None => example_bin("probe"),
    })
    .clone()
}

/// One finished probe run.
pub struct Run {
    pub code: Option<i32>,
    pub lines: Vec<String>,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    pub fn shown(&self) -> String {
        format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", self.code, self.lines.join("\n"), self.stderr)
    }

    /// The check lines: every line but the `SKIP` lines and the summary.
    pub fn checks(&self) -> Vec<&str> {
        let n = self.lines.len().saturating_sub(1);
        self.lines[..n].iter().map(String::as_str).filter(|l| !l.starts_with("SKIP ")).collect()
    }

    pub fn summary(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }

    pub fn has(&self, line_start: &str) -> bool {
        self.lines.iter().any(|l| l == line_start || l.starts_with(&format!("{line_start}:")))
    }
}

/// Runs the probe with `args`, killing it if it outlives [`PROBE_LIMIT`].
pub fn probe(args: &[&str]) -> Run {
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

/// Every check's name, from `probe --list`, with the flags it needs
/// (`""`, `"--region-url"`, `"--http-url"` or `"--http-url --http-timeout"`).
pub fn check_names() -> Vec<(String, String)> {
    let run = probe(&["--list"]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    run.lines
        .iter()
        .skip_while(|l| !l.starts_with("checks"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let name = l.trim_start().split([':', ' ']).next().unwrap_or_default().to_string();
            let needs = l.split_once(" [").and_then(|(_, r)| r.split_once(']')).map_or("", |(n, _)| n);
            (name, needs.to_string())
        })
        .collect()
}

/// The names of the checks that need `flags`.
pub fn names_needing(flags: &str) -> Vec<String> {
    check_names().into_iter().filter(|(_, n)| n.starts_with(flags)).map(|(name, _)| name).collect()
}

/// A server on 127.0.0.1 that runs `serve` on each connection in its own thread.
pub fn fake_server(serve: fn(TcpStream)) -> String {
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

pub fn assert_verdicts(run: &Run, pass: &[&str], fail: &[&str]) {
    for name in pass {
        assert!(run.has(&format!("PASS {name}")), "no PASS {name}\n{}", run.shown());
    }
    for name in fail {
        let line = run.lines.iter().find(|l| l.starts_with(&format!("FAIL {name}: ")));
        let line = line.unwrap_or_else(|| panic!("no FAIL {name}\n{}", run.shown()));
        assert!(line.contains("assumes") || *name == "http-unknown-cap-404", "{line}");
    }
}

pub fn fail_line<'a>(run: &'a Run, name: &str) -> &'a str {
    let line = run.lines.iter().find(|l| l.starts_with(&format!("FAIL {name}: ")));
    line.unwrap_or_else(|| panic!("no FAIL {name}\n{}", run.shown()))
}
