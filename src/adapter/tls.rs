//! TLS configuration for the tokio adapter's listeners (feature `tls`).
//!
//! rustls with the **ring** provider, installed explicitly: rustls's own
//! default is aws-lc-rs, and a build that holds both providers with none
//! installed panics at start-up. Certificates and keys come from PEM files
//! read with `rustls-pki-types`.
//!
//! ```no_run
//! use lsl_websocket::adapter::tls::TlsConfig;
//! let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
//! # Ok::<(), lsl_websocket::adapter::tls::TlsError>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds malformed PEM.
    #[error("certificate file {path}: {source}")]
    Certificate {
        /// The file given.
        path: PathBuf,
        /// What the PEM reader said.
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("certificate file {path}: no certificate in it")]
    NoCertificate {
        /// The file given.
        path: PathBuf,
    },
    /// The key file could not be read, is malformed, or holds no private key.
    #[error("key file {path}: {source}")]
    Key {
        /// The file given.
        path: PathBuf,
        /// What the PEM reader said (`NoItemsFound` for a file without a key).
        source: pem::Error,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate,
    /// or its algorithm is not supported).
    #[error("rustls refused the certificate and key: {0}")]
    Rejected(#[from] rustls::Error),
}

/// A server-side TLS configuration: a certificate chain and its key.
///
/// Cheap to clone (one `Arc`); give it to as many listeners as need it.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<TlsConfig, TlsError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let certificate = |source| TlsError::Certificate { path: cert.to_path_buf(), source };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(certificate)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(certificate)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { path: cert.to_path_buf() });
        }
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key { path: key.to_path_buf(), source })?;
        TlsConfig::from_der(chain, key)
    }

    /// A configuration from DER: a certificate chain (leaf first) and its key.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<TlsConfig, TlsError> {
        let server = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(TlsConfig { server: Arc::new(server) })
    }

    /// A configuration the embedder built with rustls itself (client
    /// certificates, ALPN, session storage, another provider).
    pub fn from_rustls(server: Arc<ServerConfig>) -> TlsConfig {
        TlsConfig { server }
    }

    /// The acceptor a listener's connections are handshaken with.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }
}

/// The socket under a TLS stream: bytes the front stage read past the PROXY
/// header come first. The socket is an `Option` so it can leave its runtime
/// (`into_std`) and join another (`from_std`) under a live TLS session:
/// tokio-rustls has no way to rebuild a stream from a connection state.
#[derive(Debug)]
pub(crate) struct FrontIo {
    unread: Vec<u8>,
    sock: Option<TcpStream>,
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket detached from its runtime")
}

impl FrontIo {
    /// The socket, with what was read past a PROXY header before it.
    pub(crate) fn new(unread: Vec<u8>, sock: TcpStream) -> FrontIo {
        FrontIo { unread, sock: Some(sock) }
    }

    /// Takes the socket out (to leave this runtime).
    pub(crate) fn take(&mut self) -> io::Result<TcpStream> {
        self.sock.take().ok_or_else(detached)
    }

    /// Puts a socket registered with this runtime back.
    pub(crate) fn put(&mut self, sock: TcpStream) {
        self.sock = Some(sock);
    }

    fn sock(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.sock.as_mut().map(Pin::new).ok_or_else(detached)
    }
}

impl AsyncRead for FrontIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..n]);
            this.unread.drain(..n);
            return Poll::Ready(Ok(()));
        }
        this.sock()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for FrontIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().sock()?.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().sock()?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().sock()?.poll_shutdown(cx)
    }
}
