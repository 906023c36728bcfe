//! The `echo_server` example as a child process: its URL lines, its stdin
//! commands, and what `/proc` says of it.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The URLs the server printed last, per (region, label), and those it revoked.
#[derive(Default)]
pub struct Urls {
    current: HashMap<(usize, String), String>,
    /// URLs replaced by a newer line: revoked by the command that printed it.
    revoked: VecDeque<(String, String)>,
    /// How many were ever revoked (the deque keeps the last few).
    revoked_total: u64,
    /// Bumped on every change, so waiters can tell.
    pub generation: u64,
}

/// How many revoked URLs are kept for probing.
const REVOKED_KEPT: usize = 64;

impl Urls {
    /// `label` (`object-url`, `region-url`, `http-url`, `secure-object-url`, `secure-http-url`) of `region`.
    pub fn get(&self, region: usize, label: &str) -> Option<String> {
        self.current.get(&(region, label.to_string())).cloned()
    }

    /// Whether `url` was replaced (and so revoked) already.
    pub fn is_revoked(&self, url: &str) -> bool {
        self.revoked.iter().any(|(_, u)| u == url)
    }

    /// Revoked URLs not yet probed (`seen`: how many were taken before), with their labels.
    pub fn take_revoked(&mut self, seen: &mut u64) -> Vec<(String, String)> {
        let fresh = (self.revoked_total - *seen).min(self.revoked.len() as u64) as usize;
        *seen = self.revoked_total;
        self.revoked.iter().skip(self.revoked.len() - fresh).cloned().collect()
    }

    fn line(&mut self, line: &str) {
        let mut parts = line.split(' ');
        let (Some(label), Some(url)) = (parts.next(), parts.next()) else { return };
        if !label.ends_with("-url") || !url.contains("://") {
            return;
        }
        let region = parts.find_map(|p| p.strip_prefix("region=")).and_then(|n| n.parse().ok()).unwrap_or(0);
        if let Some(old) = self.current.insert((region, label.to_string()), url.to_string())
            && old != url
        {
            self.revoked.push_back((label.to_string(), old));
            self.revoked_total += 1;
            if self.revoked.len() > REVOKED_KEPT {
                self.revoked.pop_front();
            }
        }
        self.generation += 1;
    }
}

/// Shared URL state and a condition to wait for changes on.
pub type Shared = Arc<(Mutex<Urls>, Condvar)>;

/// Waits until `region`'s `label` is a URL other than `old` (at most `wait`).
pub fn next_url(shared: &Shared, region: usize, label: &str, old: Option<&str>, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    let (lock, cv) = &**shared;
    let mut urls = lock.lock().unwrap();
    loop {
        match urls.get(region, label) {
            Some(u) if Some(u.as_str()) != old => return Some(u),
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        urls = cv.wait_timeout(urls, left).unwrap().0;
    }
}

/// The running server.
pub struct Server {
    child: Child,
    stdin: Mutex<ChildStdin>,
    pub urls: Shared,
    pub pid: u32,
}

impl Server {
    /// Starts `bin` with `args`; its stderr goes to `log`.
    pub fn start(bin: &str, args: &[String], log: &std::path::Path) -> Server {
        let err = std::fs::File::create(log).expect("server log");
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let stdin = Mutex::new(child.stdin.take().unwrap());
        let urls: Shared = Arc::default();
        let out = BufReader::new(child.stdout.take().unwrap());
        let shared = urls.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let (lock, cv) = &*shared;
                lock.lock().unwrap().line(&line);
                cv.notify_all();
            }
        });
        let pid = child.id();
        Server { child, stdin, urls, pid }
    }

    /// One stdin command (`reset 2`, `restart 0`, …).
    pub fn command(&self, line: &str) {
        let mut stdin = self.stdin.lock().unwrap();
        let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
    }

    /// Asks the server to quit and waits for it (at most 10 s, then kills it).
    pub fn stop(mut self) {
        self.command("quit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident set size in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }

    /// utime + stime, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks(11) + ticks(12)) / hz.max(1.0)
    }
}
