//! A tiny W3C WebDriver client (HTTP/1.1 over std `TcpStream`, JSON with
//! serde_json) driving Debian's headless Chromium through `chromedriver`.
//!
//! Missing binaries fail the test: `scripts/setup.sh` installs them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key under which an element reference is returned.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Browser start and page loads may take this long on a busy machine.
const SLOW: Duration = Duration::from_secs(60);

fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found (set {var} or run scripts/setup.sh to install Debian's chromium and chromium-driver)",
        path.display()
    );
    path
}

/// The cargo target directory (the parent of `CARGO_TARGET_TMPDIR`).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_path_buf()
}

/// A chromedriver process and one headless Chromium session; both end on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: PathBuf,
}

impl Browser {
    pub fn start() -> Browser {
        Browser::start_with(&[])
    }

    /// A browser started with more command-line flags (e.g. to trust a test certificate).
    pub fn start_with(extra: &[String]) -> Browser {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        // The port is probed free, then handed over: another socket can take it
        // in between, and chromedriver then never answers. A fresh port makes
        // that race harmless; a chromedriver that is really broken fails all tries.
        let mut tries = 0;
        let mut browser = loop {
            tries += 1;
            let port = {
                let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
                probe.local_addr().unwrap().port()
            };
            let driver = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            // A fresh profile per try: a failed try removes its own when dropped.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let name = format!("chromium-profile-{}-{nanos}-{tries}", std::process::id());
            let profile = target_dir().join("tmp").join(name);
            std::fs::create_dir_all(&profile).unwrap();
            let mut candidate = Browser { driver, port, session: String::new(), profile };
            let deadline = Instant::now() + Duration::from_secs(20);
            while !candidate.try_request("GET", "/status", None).is_some_and(|v| v["ready"] == true) {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if candidate.try_request("GET", "/status", None).is_some_and(|v| v["ready"] == true) {
                break candidate;
            }
            let _ = candidate.driver.kill();
            assert!(tries < 3, "chromedriver did not become ready on {tries} ports, 20 s each");
        };
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-quic",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1000,900",
            &format!("--user-data-dir={}", browser.profile.display()),
        ];
        let args: Vec<&str> = args.iter().copied().chain(extra.iter().map(String::as_str)).collect();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let created = browser.request("POST", "/session", Some(&capabilities));
        browser.session = created["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// One WebDriver command; panics on a WebDriver error.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let value = self.try_request(method, path, body).unwrap_or_else(|| panic!("{method} {path}: no answer"));
        if let Some(error) = value.get("error") {
            panic!("{method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    fn try_request(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        stream.set_read_timeout(Some(SLOW)).ok()?;
        stream.set_write_timeout(Some(SLOW)).ok()?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body.as_bytes()).ok()?;
        // chromedriver keeps connections alive despite `Connection: close`, so
        // the body is read by its length (or chunks), not to end of stream.
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
            raw.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
        let length = head.lines().find_map(|l| l.strip_prefix("content-length:")?.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked");
        let mut payload = raw[end + 4..].to_vec();
        loop {
            let done = match length {
                Some(len) => payload.len() >= len,
                None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
                None => false,
            };
            if done {
                break;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) if length.is_none() && !chunked => break,
                Ok(0) | Err(_) => return None,
                Ok(n) => payload.extend_from_slice(&chunk[..n]),
            }
        }
        if chunked {
            payload = dechunk(&payload);
        }
        let json: Value = serde_json::from_slice(&payload).ok()?;
        Some(json["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn navigate(&self, url: &str) {
        self.request("POST", &self.session_path("/url"), Some(&json!({ "url": url })));
    }

    /// Elements matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.request(
            "POST",
            &self.session_path("/elements"),
            Some(&json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .map_or_else(Vec::new, |a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_string)).collect())
    }

    /// The one element matching `css`.
    pub fn find(&self, css: &str) -> String {
        self.find_all(css).into_iter().next().unwrap_or_else(|| panic!("no element {css}"))
    }

    pub fn text(&self, element: &str) -> String {
        self.request("GET", &self.session_path(&format!("/element/{element}/text")), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The texts of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.find_all(css).iter().map(|e| self.text(e)).collect()
    }

    /// Types into an element, as a person would.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.request("POST", &self.session_path(&format!("/element/{element}/value")), Some(&json!({ "text": text })));
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.request("POST", &self.session_path(&format!("/element/{element}/click")), Some(&json!({})));
    }

    /// Polls until `cond` holds on the text of `css`, for at most 60 s (a loaded
    /// 2-core CI machine starts Chromium slowly); returns that text.
    pub fn wait_text(&self, css: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SLOW;
        loop {
            let texts = self.texts(css);
            if let Some(t) = texts.iter().find(|t| cond(t)) {
                return t.clone();
            }
            if Instant::now() > deadline {
                let source = self.request("GET", &self.session_path("/source"), None);
                let url = self.request("GET", &self.session_path("/url"), None);
                panic!("the page never showed {what}; {css} holds {texts:?}; page {url} is {source}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.request("GET", &self.session_path("/screenshot"), None);
        let png = data_encoding::BASE64.decode(b64.as_str().expect("base64 PNG").as_bytes()).expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_request("DELETE", &self.session_path(""), None);
        }
        // Only the chromedriver this test started, by its handle.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}
