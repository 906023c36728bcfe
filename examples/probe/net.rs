//! Targets, sockets with deadlines, and HTTP/1.1 response heads.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::{MAX_HEAD, Probe, RATE_RETRIES};

// ---------------------------------------------------------------------------
// Arguments and targets

/// A parsed `ws://` or `wss://` (or, for `--http-url`, `http://` or `https://`) URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// The host alone, the TLS server name.
    pub host: String,
    /// Path and query, the request target.
    pub path: String,
    pub addrs: Vec<SocketAddr>,
    /// `wss://` or `https://`: connections speak TLS (see [`set_tls`]).
    pub tls: bool,
}

impl Target {
    /// A `ws://` or `wss://` URL.
    pub fn parse(flag: &str, url: &str) -> Result<Target, String> {
        Target::parse_scheme(flag, url, "ws")
    }

    /// A URL of `scheme` (`ws` or `http`) or its TLS twin (`wss`, `https`).
    pub fn parse_scheme(flag: &str, url: &str, scheme: &str) -> Result<Target, String> {
        let (rest, tls) = match url.strip_prefix(&format!("{scheme}s://")) {
            Some(rest) => (rest, true),
            None => (
                url.strip_prefix(&format!("{scheme}://"))
                    .ok_or_else(|| format!("{flag}: not a {scheme}:// or {scheme}s:// URL: {url}"))?,
                false,
            ),
        };
        if tls && TLS.get().is_none() {
            return Err(format!("{flag}: {scheme}s:// needs --ca-file (the probe trusts no other roots): {url}"));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let mut path = rest[end..].split('#').next().unwrap_or("").to_string();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{flag}: no host (or user info) in {url}"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                let port = p.parse::<u16>().map_err(|_| format!("{flag}: bad port in {url}"))?;
                (h, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> =
            (host, port).to_socket_addrs().map_err(|e| format!("{flag}: cannot resolve {host}: {e}"))?.collect();
        if addrs.is_empty() {
            return Err(format!("{flag}: {host} resolves to no address"));
        }
        Ok(Target { url: url.to_string(), authority: authority.to_string(), host: host.to_string(), path, addrs, tls })
    }

    /// The same target with another request path.
    pub fn with_path(&self, path: String) -> Target {
        Target { path, ..self.clone() }
    }
}

// ---------------------------------------------------------------------------
// Sockets with deadlines

/// A TCP stream (TLS for a `wss://` or `https://` target) whose every read
/// and write ends by a deadline, renewed by [`Stream::arm`] before each
/// awaited answer. Timeouts surface as `ErrorKind::TimedOut` (never
/// `WouldBlock`, which tungstenite would take for a non-blocking socket).
pub struct Stream {
    tcp: TcpStream,
    tls: Option<Box<tls::Session>>,
    timeout: Duration,
    deadline: Instant,
}

impl Stream {
    pub fn connect(t: &Target, timeout: Duration) -> Result<Stream, (ErrorKind, String)> {
        let mut last = (ErrorKind::NotFound, String::from("no address"));
        for addr in &t.addrs {
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    let tls = if t.tls { Some(Box::new(tls::session(&t.host)?)) } else { None };
                    return Ok(Stream { tcp, tls, timeout, deadline: Instant::now() + timeout });
                }
                Err(e) => last = (e.kind(), format!("connect {addr}: {e}")),
            }
        }
        Err(last)
    }

    /// This end's address (what the server sees as the remote IP).
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        self.tcp.local_addr().ok().map(|a| a.ip())
    }

    /// Sets the limit of each later wait.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Starts a new wait of at most the timeout.
    pub fn arm(&mut self) {
        self.deadline = Instant::now() + self.timeout;
    }

    pub fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(self.timed_out());
        }
        Ok(left)
    }

    pub fn timed_out(&self) -> io::Error {
        io::Error::new(ErrorKind::TimedOut, format!("no answer within {:?}", self.timeout))
    }

    pub fn map(&self, e: io::Error) -> io::Error {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => self.timed_out(),
            _ => e,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_read_timeout(Some(left))?;
        let read = match &mut self.tls {
            Some(session) => tls::read(session, &mut self.tcp, buf),
            None => self.tcp.read(buf),
        };
        read.map_err(|e| self.map(e))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_write_timeout(Some(left))?;
        let written = match &mut self.tls {
            Some(session) => tls::write(session, &mut self.tcp, buf),
            None => self.tcp.write(buf),
        };
        written.map_err(|e| self.map(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            Some(session) => tls::flush(session, &mut self.tcp),
            None => self.tcp.flush(),
        }
    }
}

/// The trust for `wss://` and `https://` targets: the certificates of `--ca-file`.
static TLS: std::sync::OnceLock<tls::Trust> = std::sync::OnceLock::new();

/// Trusts the CA certificates in a PEM file (once, before targets are parsed).
pub fn set_tls(ca_file: &str) -> Result<(), String> {
    let trust = tls::trust(ca_file)?;
    TLS.set(trust).map_err(|_| "--ca-file given twice".to_string())
}

/// TLS with rustls (ring) when the example is built with feature `tls`.
#[cfg(feature = "tls")]
mod tls {
    use std::io::{self, ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    pub type Session = ClientConnection;
    pub type Trust = Arc<ClientConfig>;

    pub fn trust(ca_file: &str) -> Result<Trust, String> {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("--ca-file {ca_file}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--ca-file {ca_file}: {e}"))?;
            roots.add(cert).map_err(|e| format!("--ca-file {ca_file}: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("--ca-file {ca_file}: no certificate in it"));
        }
        let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    pub fn session(host: &str) -> Result<Session, (ErrorKind, String)> {
        let trust = super::TLS.get().ok_or((ErrorKind::InvalidInput, "no --ca-file".to_string()))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| (ErrorKind::InvalidInput, format!("{host} is no TLS server name: {e}")))?;
        ClientConnection::new(trust.clone(), name).map_err(|e| (ErrorKind::InvalidInput, e.to_string()))
    }

    pub fn read(session: &mut Session, tcp: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        rustls::Stream::new(session, tcp).read(buf)
    }

    pub fn write(session: &mut Session, tcp: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
        rustls::Stream::new(session, tcp).write(buf)
    }

    pub fn flush(session: &mut Session, tcp: &mut TcpStream) -> io::Result<()> {
        rustls::Stream::new(session, tcp).flush()
    }
}

/// Without feature `tls`: `--ca-file` and TLS URLs are refused.
#[cfg(not(feature = "tls"))]
mod tls {
    use std::io::{self, ErrorKind};
    use std::net::TcpStream;

    pub enum Session {}
    pub type Trust = ();

    pub fn trust(_ca_file: &str) -> Result<Trust, String> {
        Err("--ca-file: this probe was built without the `tls` feature".into())
    }

    pub fn session(_host: &str) -> Result<Session, (ErrorKind, String)> {
        Err((ErrorKind::Unsupported, "built without the `tls` feature".into()))
    }

    pub fn read(session: &mut Session, _: &mut TcpStream, _: &mut [u8]) -> io::Result<usize> {
        match *session {}
    }

    pub fn write(session: &mut Session, _: &mut TcpStream, _: &[u8]) -> io::Result<usize> {
        match *session {}
    }

    pub fn flush(session: &mut Session, _: &mut TcpStream) -> io::Result<()> {
        match *session {}
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// A response head.
pub struct Head {
    pub status: u16,
    pub text: String,
}

impl Head {
    /// A header's value, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Whether a comma-separated header holds `token`, case-insensitively.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

/// Reads one response head; returns it and the bytes after it.
pub fn read_head(stream: &mut Stream) -> Result<(Head, Vec<u8>), String> {
    stream.arm();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut parts = text.split_whitespace();
            let version = parts.next().unwrap_or("");
            let status = parts.next().and_then(|s| s.parse::<u16>().ok());
            return match status {
                Some(status) if version.starts_with("HTTP/1.") => Ok((Head { status, text }, buf[end + 4..].to_vec())),
                _ => Err(format!("not an HTTP/1.x response: {}", shown(&buf[..end]))),
            };
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("no end of the response head within {MAX_HEAD} bytes"));
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err("the server closed the connection without answering".into()),
            Ok(0) => return Err(format!("the connection closed inside the response head: {}", shown(&buf))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("no response: {e}")),
            Err(e) => return Err(format!("reading the response head: {e}; got {}", shown(&buf))),
        }
    }
}

/// Up to 120 characters of server bytes, escaped.
pub fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(120).collect::<String>().escape_debug().to_string();
    if text.chars().count() > 120 {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// Sends `request` on a new connection and reads the response head,
/// retrying after `Retry-After` while the server answers 429.
pub fn exchange(p: &Probe, t: &Target, request: &str) -> Result<(Head, Stream, Vec<u8>), String> {
    let mut tries = 0;
    loop {
        let mut stream = p.connect(t)?;
        stream.arm();
        // The server may answer (e.g. 431) and close before it has read it all:
        // a failed write is judged by the answer, if there is one.
        let written = stream.write_all(request.as_bytes());
        let (head, rest) = match read_head(&mut stream) {
            Ok(answer) => answer,
            Err(e) => {
                return Err(match written {
                    Err(w) => format!("sending the request: {w}; {e}"),
                    Ok(()) => e,
                });
            }
        };
        if head.status == 429 && tries < RATE_RETRIES {
            tries += 1;
            rate_wait(&head);
            continue;
        }
        return Ok((head, stream, rest));
    }
}

/// Waits as long as a 429's `Retry-After` asks (1 to 5 s).
pub fn rate_wait(head: &Head) {
    let secs = head.header("retry-after").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1).clamp(1, 5);
    std::thread::sleep(Duration::from_secs(secs));
}

/// A WebSocket upgrade request for `t` with `key` and extra header lines.
pub fn upgrade_request(t: &Target, key: &str, extra: &str) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
        t.path, t.authority
    )
}

/// Expects `request` to be answered `want`.
pub fn expect_status(p: &Probe, t: &Target, what: &str, request: &str, want: u16) -> Result<Head, String> {
    let (head, _, _) = exchange(p, t, request).map_err(|e| format!("{what}: {e}"))?;
    if head.status != want {
        return Err(format!("{what}: got {:?}, want {want}", head.first_line()));
    }
    Ok(head)
}
