//! TLS for the HTTP/2 egress rows: a private CA and a server certificate for 127.0.0.1
//! made with the openssl CLI (as the integration tests make theirs), and an acceptor that
//! offers only `h2` by ALPN, so a client that cannot speak HTTP/2 gets no connection
//! rather than a silent HTTP/1.1 fallback.

use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::ssl::{AlpnError, Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::error::{BenchError, Result};

/// The PEM files in a directory: `ca.pem` (what a client trusts), `server.pem`, `server.key`.
pub struct Pki {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &str) -> Result<()> {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .map_err(BenchError::io("running the openssl CLI"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(BenchError::Tool(format!(
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn tls_error(what: &str) -> impl FnOnce(openssl::error::ErrorStack) -> BenchError + '_ {
    move |e| BenchError::Tool(format!("{what}: {e}"))
}

impl Pki {
    /// Makes the CA and the server certificate (SAN IP:127.0.0.1) in `dir`.
    pub fn make(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(BenchError::io("creating the PKI directory"))?;
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
            .map_err(BenchError::io("writing san.ext"))?;
        openssl(
            dir,
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca",
        )?;
        openssl(
            dir,
            "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        )?;
        openssl(
            dir,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
        )?;
        Ok(Pki {
            dir: dir.to_path_buf(),
        })
    }

    /// The CA a client must trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server acceptor with the certificate, offering `h2` only.
    pub fn h2_acceptor(&self) -> Result<SslAcceptor> {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .map_err(tls_error("TLS acceptor"))?;
        b.set_certificate_chain_file(self.dir.join("server.pem"))
            .map_err(tls_error("server.pem"))?;
        b.set_private_key_file(self.dir.join("server.key"), SslFiletype::PEM)
            .map_err(tls_error("server.key"))?;
        b.set_alpn_select_callback(|_, client| {
            openssl::ssl::select_next_proto(b"\x02h2", client).ok_or(AlpnError::ALERT_FATAL)
        });
        Ok(b.build())
    }
}

/// The server side of one TLS handshake on `tcp`.
pub async fn accept(acceptor: &SslAcceptor, tcp: TcpStream) -> Result<SslStream<TcpStream>> {
    let ssl = Ssl::new(acceptor.context()).map_err(tls_error("TLS session"))?;
    let mut stream = SslStream::new(ssl, tcp).map_err(tls_error("TLS stream"))?;
    std::pin::Pin::new(&mut stream)
        .accept()
        .await
        .map_err(|e| BenchError::Tool(format!("TLS handshake: {e}")))?;
    Ok(stream)
}
