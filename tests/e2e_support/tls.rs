//! Test certificates made with rcgen (a CA and a leaf for `127.0.0.1` and
//! `localhost`, written as PEM files), and a rustls client (ring, trusting
//! only that CA) under tungstenite and plain HTTP/1.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sha2::Digest;
use tungstenite::{Message, WebSocket};

use super::wire::tcp;

/// A test CA and a leaf it signed, as PEM files in a fresh directory (removed on drop).
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    ca_der: CertificateDer<'static>,
    /// base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo (Chromium's
    /// `--ignore-certificate-errors-spki-list`).
    pub leaf_spki_sha256: String,
}

impl Certs {
    pub fn new() -> Certs {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "lsl-websocket test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let spki = sha2::Sha256::digest(leaf_key.subject_public_key_info());
        Certs {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("cert.pem", leaf_cert.pem()),
            key: write("key.pem", leaf_key.serialize_pem()),
            ca_der: ca_cert.der().clone(),
            leaf_spki_sha256: data_encoding::BASE64.encode(&spki),
            dir,
        }
    }

    /// `--tls-cert FILE --tls-key FILE --tls-bind 127.0.0.1:0` for `echo_server`.
    pub fn args(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            "--tls-cert".into(),
            path(&self.cert),
            "--tls-key".into(),
            path(&self.key),
            "--tls-bind".into(),
            "127.0.0.1:0".into(),
        ]
    }

    /// A rustls client configuration (ring) trusting only this CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS stream over TCP with the test timeouts.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Any `scheme://host:port/path` URL → (address, path).
pub fn split(url: &str) -> (SocketAddr, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (host.parse().unwrap_or_else(|_| panic!("not host:port in {url}")), path.to_string())
}

/// Opens TLS to a `wss://` or `https://` URL's host (its IP is the server name).
pub fn connect(url: &str, config: &Arc<ClientConfig>) -> TlsStream {
    tls_over(tcp(split(url).0), config)
}

/// TLS for `127.0.0.1` over a TCP stream the caller opened (and may have written to).
pub fn tls_over(sock: TcpStream, config: &Arc<ClientConfig>) -> TlsStream {
    let ip = sock.peer_addr().unwrap().ip();
    let conn = ClientConnection::new(config.clone(), ServerName::IpAddress(ip.into())).unwrap();
    StreamOwned::new(conn, sock)
}

/// tungstenite's client over rustls.
pub type WssClient = WebSocket<TlsStream>;

/// Opens a tungstenite session on a `wss://` URL.
pub fn wss_client(url: &str, config: &Arc<ClientConfig>) -> WssClient {
    let (ws, response) =
        tungstenite::client::client(url, connect(url, config)).unwrap_or_else(|e| panic!("handshake on {url}: {e}"));
    assert_eq!(response.status().as_u16(), 101);
    ws
}

/// Sends text and expects it back (answering pings on the way).
pub fn echo_once(ws: &mut WssClient, text: &str) {
    ws.send(Message::text(text)).unwrap();
    loop {
        match ws.read().unwrap_or_else(|e| panic!("reading the echo: {e}")) {
            Message::Text(t) => return assert_eq!(t.as_str(), text),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// One HTTP/1.1 request (with `Connection: close`) over `stream`; the whole answer as text.
pub fn request(mut stream: impl Read + Write, head: &str, body: &str) -> String {
    let request = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // The server's close_notify, or only its FIN: either ends the answer.
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}
