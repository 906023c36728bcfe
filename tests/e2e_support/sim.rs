//! The `echo_server` example as one simulator host behind a proxy: a child
//! process started with any flags, whose URL lines (`object-url <url>`,
//! `http-url <url>`, `region-url <url>`, `secure-…`; with `--regions N`
//! each ends ` region=<i>`, and is kept as `object-url region=<i>`) are
//! read from its output. Killed when dropped.

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
        let mut labels = vec!["object-url", "http-url"];
        if args.contains(&"--secure-authority") {
            labels.extend(["secure-object-url", "secure-http-url"]);
        }
        Sim::start_expecting(bind, args, &labels)
    }

    /// [`Sim::start`] that waits for these URL labels.
    pub fn start_expecting(bind: SocketAddr, args: &[&str], labels: &[&str]) -> Sim {
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
        sim.wait(|sim, _| labels.iter().all(|label| sim.urls.contains_key(*label)));
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
                        let key = match fields.find(|f| f.starts_with("region=")) {
                            Some(region) => format!("{label} {region}"),
                            None => label.to_string(),
                        };
                        self.urls.insert(key, url.to_string());
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
        let labels: Vec<&str> = ["object-url", "http-url", "secure-object-url", "secure-http-url"]
            .into_iter()
            .filter(|label| self.urls.contains_key(*label))
            .collect();
        self.command_expecting(command, &labels);
    }

    /// Sends a stdin command and waits until each of these URLs changed.
    pub fn command_expecting(&mut self, command: &str, labels: &[&str]) {
        let old: Vec<(&str, Option<String>)> = labels.iter().map(|l| (*l, self.urls.get(*l).cloned())).collect();
        self.send(command);
        self.wait(|sim, _| old.iter().all(|(label, url)| sim.urls.get(*label) != url.as_ref()));
    }

    /// Writes one stdin line.
    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to echo_server's stdin");
        self.stdin.flush().unwrap();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Only the child this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
