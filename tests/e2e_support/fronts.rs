//! Real reverse proxies in front of the example, each started by a test and
//! killed when dropped: nginx (http and stream modules) and HAProxy.
//!
//! Their configs are the ones docs/deploy.md documents (docs/nginx/*.conf,
//! docs/haproxy/*.cfg), read at run time with each `{{NAME}}` replaced, so
//! the documented config is the tested one. Only what a test needs around
//! them (pid file, logs, temp paths, foreground) is written here.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::e2e_support::WAIT;

/// Where Debian's libnginx-mod-stream puts the stream module.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// A documented config file (relative to docs/) with each `{{NAME}}`
/// replaced (comments, which explain the names, are left as they are).
pub fn documented(file: &str, values: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut used = vec![false; values.len()];
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        if !line.trim_start().starts_with('#') {
            for (i, (name, value)) in values.iter().enumerate() {
                let placeholder = format!("{{{{{name}}}}}");
                used[i] |= line.contains(&placeholder);
                line = line.replace(&placeholder, value);
            }
            assert!(!line.contains("{{"), "{file}: a placeholder is left in {line:?}");
        }
        out.push_str(&line);
        out.push('\n');
    }
    for ((name, _), used) in values.iter().zip(used) {
        assert!(used, "{file} has no {{{{{name}}}}}");
    }
    out
}

/// An executable of a Debian package, found in /usr/sbin or on PATH.
fn binary(name: &str, package: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.is_file() {
        return sbin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: run scripts/setup.sh (it installs the Debian package {package})"))
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lslws-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on `ip`: bound, read and released, for a proxy to bind
/// a moment later. Linux may hand a just-released port out again at once
/// (two calls in a row have returned the same one), so no port is handed
/// out twice in one test process; another process taking it meanwhile is
/// unlikely, and then fails loudly.
pub fn free_port(ip: &str) -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let addr = listener.local_addr().unwrap();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// A proxy process; killed (by its own handle) when dropped.
pub struct Front {
    name: &'static str,
    child: Child,
    /// Its log, shown when it fails.
    log: PathBuf,
    /// Its config, logs and temp files, removed after it stopped.
    _dir: TempDir,
}

impl Front {
    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until every address accepts connections; panics with the log if
    /// the proxy exits or does not listen within [`WAIT`].
    fn wait_listening(mut self, addrs: &[SocketAddr]) -> Front {
        let deadline = Instant::now() + WAIT;
        for addr in addrs {
            while TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("{} exited ({status}) before listening on {addr}:\n{}", self.name, self.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not listening on {addr} within {WAIT:?}:\n{}",
                    self.name,
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self
    }

    /// Asserts the proxy is still running (it did not die of a request).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's version line (`nginx version: nginx/1.22.1`).
pub fn nginx_version() -> String {
    let out = Command::new(binary("nginx", "nginx")).arg("-v").output().expect("run nginx -v");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// HAProxy's version line.
pub fn haproxy_version() -> String {
    let out = Command::new(binary("haproxy", "haproxy")).arg("-v").output().expect("run haproxy -v");
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string()
}

/// Starts nginx in the foreground, one process (no master, so killing it
/// leaves no worker behind), everything it writes in its own temp dir.
/// `http` goes into the `http { }` block, `top` at the top level (a
/// `stream { }` block); `listens` are the addresses it must accept on.
pub fn nginx(http: &str, top: &str, listens: &[SocketAddr]) -> Front {
    let bin = binary("nginx", "nginx");
    let dir = TempDir::new("nginx");
    let d = dir.0.display();
    let stream_module = if top.contains("stream {") {
        assert!(
            Path::new(STREAM_MODULE).is_file(),
            "{STREAM_MODULE} missing: run scripts/setup.sh (it installs libnginx-mod-stream)"
        );
        format!("load_module {STREAM_MODULE};")
    } else {
        String::new()
    };
    dir.write("lsl-websocket.conf", http);
    dir.write("top.conf", top);
    let conf = format!(
        "{stream_module}\n\
         daemon off;\nmaster_process off;\nworker_processes 1;\n\
         pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 1024; }}\n\
         include {d}/top.conf;\n\
         http {{\n\
           access_log {d}/access.log;\n\
           client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           include {d}/lsl-websocket.conf;\n\
         }}\n"
    );
    let conf = dir.write("nginx.conf", &conf);
    let log = dir.path("error.log");
    let child = Command::new(bin)
        .arg("-p")
        .arg(&dir.0)
        .arg("-e")
        .arg(&log)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    Front { name: "nginx", child, log, _dir: dir }.wait_listening(listens)
}

/// Starts HAProxy in the foreground (`-db`) with `config`; `listens` are the
/// addresses it must accept on.
pub fn haproxy(config: &str, listens: &[SocketAddr]) -> Front {
    let bin = binary("haproxy", "haproxy");
    let dir = TempDir::new("haproxy");
    let conf = dir.write("haproxy.cfg", config);
    let log = dir.path("haproxy.log");
    let out = std::fs::File::create(&log).expect("create the haproxy log");
    let child = Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn haproxy");
    Front { name: "haproxy", child, log, _dir: dir }.wait_listening(listens)
}
