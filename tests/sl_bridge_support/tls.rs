//! A TLS front for the grid's HTTP-in, as a simulator terminates
//! `llRequestSecureURL` traffic: tokio-rustls on ring with a certificate
//! rcgen makes for 127.0.0.1, relaying each connection to the grid's port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

/// A listening TLS front; relays once [`serve`](TlsFront::serve) named the backend.
pub struct TlsFront {
    listener: Option<std::net::TcpListener>,
    /// Where it listens (the grid's `secure_authority`).
    pub addr: SocketAddr,
    /// The certificate in PEM, for the bridge's `--grid-ca`.
    pub ca_file: PathBuf,
    acceptor: TlsAcceptor,
    /// TLS sessions completed so far.
    pub handshakes: Arc<AtomicUsize>,
    /// Stops the relay when dropped.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TlsFront {
    /// Binds 127.0.0.1 and makes a certificate for it.
    pub fn bind() -> TlsFront {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the TLS front");
        let addr = listener.local_addr().expect("address");
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a certificate");
        let ca_file =
            std::env::temp_dir().join(format!("sl_bridge_grid_ca_{}_{}.pem", std::process::id(), addr.port()));
        std::fs::write(&ca_file, key.cert.pem()).expect("write the CA file");
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(key.cert.der().to_vec())], der)
            .expect("server config");
        TlsFront {
            listener: Some(listener),
            addr,
            ca_file,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshakes: Arc::new(AtomicUsize::new(0)),
            stop: None,
        }
    }

    /// Relays every TLS connection to `backend`, on a thread of its own, until dropped.
    pub fn serve(&mut self, backend: SocketAddr) {
        let Some(listener) = self.listener.take() else { return };
        let (acceptor, handshakes) = (self.acceptor.clone(), self.handshakes.clone());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                listener.set_nonblocking(true).expect("nonblocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        _ = &mut stopped => break,
                    };
                    let Ok((tcp, _)) = accepted else { break };
                    let (acceptor, handshakes) = (acceptor.clone(), handshakes.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                        handshakes.fetch_add(1, Ordering::Relaxed);
                        let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.ca_file);
    }
}
