//! A test CA and a server certificate signed by it (rcgen, ring), written as
//! PEM files for nginx, and a rustls client (ring provider) that trusts that
//! CA, for `wss://` through a proxy that ends TLS.

use std::net::TcpStream;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::fronts::TempDir;

/// A CA and one server certificate for `names`, as PEM files in a temp dir.
pub struct Certs {
    /// The CA certificate, DER (for rustls) and as a PEM file (for curl).
    pub ca: CertificateDer<'static>,
    pub ca_file: String,
    /// The server's chain and key files (for nginx).
    pub cert_file: String,
    pub key_file: String,
    _dir: TempDir,
}

impl Certs {
    pub fn new(names: &[&str]) -> Certs {
        let dir = TempDir::new("certs");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "lsl-websocket test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
        let path = |p: std::path::PathBuf| p.display().to_string();
        Certs {
            ca: ca.der().clone(),
            ca_file: path(dir.write("ca.pem", &ca.pem())),
            cert_file: path(dir.write("cert.pem", &format!("{}{}", leaf.pem(), ca.pem()))),
            key_file: path(dir.write("key.pem", &key.serialize_pem())),
            _dir: dir,
        }
    }

    /// A TLS client session for `host` over `tcp`, trusting only this CA.
    pub fn client(&self, host: &str, tcp: TcpStream) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }
}
