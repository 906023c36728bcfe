//! Connections as the soak's clients make them: from a chosen 127.0.0.x
//! source, plain or TLS, with timeouts; and the bits of HTTP/1.1 they speak.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use socket2::{Domain, Socket, Type};

/// A byte stream, plain or TLS.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// How long any read or write may block before the soak calls it a failure.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// The TLS client configuration: trusts only the soak's own CA.
pub fn tls_config(ca: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("the soak CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TCP connection from `source` to `addr`, with the soak's timeouts.
pub fn tcp(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), IO_TIMEOUT)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Scheme, address and path of a `ws://`, `wss://`, `http://` or `https://` URL.
pub fn split(url: &str) -> (bool, SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = authority.parse().expect("the soak's URLs name 127.0.0.1:port");
    (scheme == "wss" || scheme == "https", addr, path.to_string())
}

/// A stream to `url`'s address, TLS when the URL is secure.
pub fn connect(source: IpAddr, url: &str, tls: &Arc<rustls::ClientConfig>) -> io::Result<Box<dyn Stream>> {
    let (secure, addr, _) = split(url);
    let tcp = tcp(source, addr)?;
    if !secure {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(io::Error::other)?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

/// One HTTP response: status, whether the server will close, body.
pub struct Response {
    pub status: u16,
    pub close: bool,
    pub body: Vec<u8>,
}

/// Reads one response (with a `Content-Length` body, or none).
pub fn read_response(r: &mut impl BufRead) -> io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(io::ErrorKind::InvalidData)?;
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').unwrap_or((l, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok(Response { status, close, body })
}

/// A keep-alive HTTP/1.1 client on one connection.
pub struct Http {
    pub conn: BufReader<Box<dyn Stream>>,
}

impl Http {
    pub fn open(source: IpAddr, url: &str, tls: &Arc<rustls::ClientConfig>) -> io::Result<Http> {
        Ok(Http { conn: BufReader::new(connect(source, url, tls)?) })
    }

    /// Sends one request and reads its response.
    pub fn request(&mut self, method: &str, path: &str, body: &str) -> io::Result<Response> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: soak\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let s = self.conn.get_mut();
        s.write_all(head.as_bytes())?;
        s.flush()?;
        read_response(&mut self.conn)
    }
}

/// A WebSocket upgrade request head for `path`.
pub fn upgrade_head(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        lsl_websocket_bench::HEAD_KEY
    )
}

/// The status of a WebSocket handshake attempt on `url`: 101, or the refusal's.
pub fn upgrade_status(source: IpAddr, url: &str, tls: &Arc<rustls::ClientConfig>) -> io::Result<u16> {
    let (_, _, path) = split(url);
    let mut s = connect(source, url, tls)?;
    s.write_all(upgrade_head(&path).as_bytes())?;
    s.flush()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| io::ErrorKind::InvalidData.into())
}
