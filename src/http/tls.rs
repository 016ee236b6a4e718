//! Optional TLS on the webhook listener, with a certificate chain and key from PEM files.
//! OpenSSL is already linked for Kafka TLS and HTTPS destinations, so the listener uses
//! it too rather than a second TLS stack.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// A ready TLS acceptor.
pub struct Tls(SslAcceptor);

/// Why the certificate or key could not be loaded. Names files, never key material.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    reason: String,
}

impl Tls {
    /// Loads `cert` (PEM chain, leaf first) and `key` (PEM private key) and checks they match.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let err = |what, path: &Path, e: openssl::error::ErrorStack| TlsError {
            what,
            path: path.display().to_string(),
            reason: e
                .errors()
                .first()
                .and_then(|e| e.reason())
                .unwrap_or("invalid")
                .to_owned(),
        };
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .map_err(|e| err("TLS setup for", cert, e))?;
        b.set_certificate_chain_file(cert)
            .map_err(|e| err("cannot load certificate chain", cert, e))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| err("cannot load private key", key, e))?;
        b.check_private_key()
            .map_err(|e| err("private key does not match the certificate in", cert, e))?;
        Ok(Tls(b.build()))
    }

    /// The TLS handshake, bounded by `timeout` so a silent client cannot hold a slot.
    pub async fn accept(&self, tcp: TcpStream, timeout: Duration) -> Option<SslStream<TcpStream>> {
        let ssl = Ssl::new(self.0.context()).ok()?;
        let mut stream = SslStream::new(ssl, tcp).ok()?;
        match tokio::time::timeout(timeout, Pin::new(&mut stream).accept()).await {
            Ok(Ok(())) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => None,
        }
    }
}
