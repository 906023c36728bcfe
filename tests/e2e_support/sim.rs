//! The `echo_server` example as one simulator host behind a proxy: a child
//! process started with any flags, whose URL lines (`object-url <url>`,
//! `http-url <url>`, `region-url <url>`, `secure-…`; any trailing fields
//! ignored) are read from its output. Killed when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use crate::e2e_support::WAIT;
use crate::e2e_support::process::echo_server_bin;

/// One line of the child's output.
enum Line {
    Out(String),
    Err(String),
}

pub struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Line>,
    /// The latest URL for each label (`object-url`, `http-url`, `region-url`, …).
    pub urls: HashMap<String, String>,
    /// Where it listens for plain connections.
    pub addr: SocketAddr,
    /// Everything it printed, for failure messages.
    seen: Vec<String>,
}

impl Sim {
    /// Starts `echo_server --bind <bind> <args>` and waits for its URLs. The
    /// test picks the port: with `--authority` the URLs name the proxy, so
    /// they do not tell where the simulator listens.
    pub fn start(bind: SocketAddr, args: &[&str]) -> Sim {
        let mut child = Command::new(echo_server_bin())
            .arg("--bind")
            .arg(bind.to_string())
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
        });
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let _ = tx.send(Line::Err(line));
            }
        });
        let stdin = child.stdin.take().unwrap();
        let mut sim = Sim { child, stdin, lines, urls: HashMap::new(), addr: bind, seen: Vec::new() };
        let secure = args.contains(&"--secure-authority");
        sim.wait(|sim, _| {
            let has = |label: &str| sim.urls.contains_key(label);
            has("object-url") && has("http-url") && (!secure || has("secure-object-url") && has("secure-http-url"))
        });
        sim
    }

    /// Reads lines (recording URL lines) until `done` holds, for at most [`WAIT`].
    fn wait(&mut self, mut done: impl FnMut(&Sim, &Line) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!("echo_server: nothing expected within {WAIT:?} ({e}); it printed {:?}", self.seen)
            });
            match &line {
                Line::Out(l) => {
                    self.seen.push(l.clone());
                    let mut fields = l.split(' ');
                    if let (Some(label), Some(url)) = (fields.next(), fields.next())
                        && label.ends_with("-url")
                    {
                        self.urls.insert(label.to_string(), url.to_string());
                    }
                }
                Line::Err(l) => self.seen.push(format!("stderr: {l}")),
            }
            if done(self, &line) {
                return;
            }
        }
    }

    /// The current URL with this label.
    pub fn url(&self, label: &str) -> String {
        self.urls.get(label).cloned().unwrap_or_else(|| panic!("echo_server printed no {label}: {:?}", self.seen))
    }

    /// Sends a stdin command and waits for every new URL of the echo object
    /// (WebSocket and HTTP-in, and their secure ones when it holds them):
    /// every command ends with its script asking again.
    pub fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to echo_server's stdin");
        self.stdin.flush().unwrap();
        let old: Vec<(&str, String)> = ["object-url", "http-url", "secure-object-url", "secure-http-url"]
            .into_iter()
            .filter_map(|label| Some((label, self.urls.get(label)?.clone())))
            .collect();
        self.wait(|sim, _| old.iter().all(|(label, url)| sim.urls[*label] != *url));
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Only the child this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
