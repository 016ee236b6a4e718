//! Optional TLS on the webhook listener, with a certificate chain and key from PEM files.
//! OpenSSL is already linked for Kafka TLS and HTTPS destinations, so the listener uses
//! it too rather than a second TLS stack.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::X509;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// A ready TLS acceptor.
pub struct Tls(SslAcceptor);

/// Why the certificate or key could not be loaded. Names files, never key material.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct TlsError {
    /// The setting that names the file: `http.tls.cert` or `http.tls.key`.
    pub setting: &'static str,
    what: &'static str,
    path: String,
    reason: String,
}

impl Tls {
    /// Loads `cert` (PEM chain, leaf first) and `key` (PEM private key, unencrypted) and
    /// checks they match. The files are read here, not by OpenSSL: a missing file is said
    /// so, and an encrypted key is refused instead of OpenSSL asking a terminal for its
    /// passphrase (which hung a process started with a TTY).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        const CERT: &str = "http.tls.cert";
        const KEY: &str = "http.tls.key";
        let fail = |setting, what, path: &Path, reason: String| TlsError {
            setting,
            what,
            path: path.display().to_string(),
            reason,
        };
        let openssl = |e: openssl::error::ErrorStack| {
            (e.errors().first().and_then(|e| e.reason()))
                .unwrap_or("invalid")
                .to_owned()
        };
        let read = |setting, path: &Path| {
            std::fs::read(path)
                .map_err(|e| fail(setting, "cannot read", path, e.kind().to_string()))
        };
        let pem = read(CERT, cert)?;
        let chain = X509::stack_from_pem(&pem)
            .map_err(|e| fail(CERT, "cannot load certificate chain", cert, openssl(e)))?;
        let mut chain = chain.into_iter();
        let Some(leaf) = chain.next() else {
            let reason = "no PEM certificate in it".to_owned();
            return Err(fail(CERT, "cannot load certificate chain", cert, reason));
        };
        let pem = read(KEY, key)?;
        if pem.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED") {
            let reason = "it is encrypted; give the key unencrypted (no passphrase is asked for)";
            return Err(fail(KEY, "cannot load private key", key, reason.to_owned()));
        }
        // No passphrase: a key that still wants one fails here rather than prompting.
        let private = PKey::private_key_from_pem_callback(&pem, |_| Ok(0))
            .map_err(|e| fail(KEY, "cannot load private key", key, openssl(e)))?;
        let setup = |e| fail(CERT, "TLS setup for", cert, openssl(e));
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
        b.set_certificate(&leaf).map_err(setup)?;
        for extra in chain {
            b.add_extra_chain_cert(extra).map_err(setup)?;
        }
        b.set_private_key(&private)
            .map_err(|e| fail(KEY, "cannot load private key", key, openssl(e)))?;
        b.check_private_key().map_err(|e| {
            fail(
                KEY,
                "private key does not match the certificate in",
                cert,
                openssl(e),
            )
        })?;
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

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A self-signed certificate and its key from the openssl CLI, in `dir` as
    /// `<name>.pem` and `<name>.key`; with `passphrase`, the key encrypted.
    pub(crate) fn made(dir: &Path, name: &str, passphrase: Option<&str>) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
        match passphrase {
            Some(p) => cmd.args(["-passout", &format!("pass:{p}")]),
            None => cmd.arg("-nodes"),
        };
        let out = cmd.output().expect("openssl CLI");
        assert!(out.status.success(), "{out:?}");
        (cert, key)
    }

    /// Each way the listener's files can be wrong is refused, naming the setting and
    /// the file, without a prompt or key material; a matching pair loads.
    #[test]
    fn the_listener_s_files_are_refused_naming_the_setting_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = made(dir.path(), "a", None);
        let (other_cert, other_key) = made(dir.path(), "b", None);
        let (_, encrypted) = made(dir.path(), "c", Some("secret-pass"));
        let missing = dir.path().join("nope.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        assert!(Tls::from_files(&cert, &key).is_ok());
        assert!(Tls::from_files(&other_cert, &other_key).is_ok());
        let cases = [
            (&missing, &key, "http.tls.cert", "not found"),
            (&garbage, &key, "http.tls.cert", "no PEM certificate"),
            (&cert, &missing, "http.tls.key", "not found"),
            (&cert, &garbage, "http.tls.key", "cannot load private key"),
            (&cert, &encrypted, "http.tls.key", "encrypted"),
            (&cert, &other_key, "http.tls.key", "mismatch"),
        ];
        for (c, k, setting, says) in cases {
            let Err(e) = Tls::from_files(c, k) else {
                panic!("{c:?} {k:?} refused")
            };
            let text = e.to_string();
            assert_eq!(e.setting, setting, "{text}");
            assert!(text.contains(says), "{text}");
            assert!(
                !text.contains("secret-pass") && !text.contains("PRIVATE"),
                "{text}"
            );
        }
    }
}
