//! A [`SinkDefinition`] built into a runnable [`Sink`]: the secrets (header values, `auth`,
//! the signing key) and the `tls` files resolved. Errors name the file and the key, never
//! the value.

use std::ops::Deref;

use axum::http::{HeaderName, HeaderValue};

use crate::config::{ConfigError, Secret, SecretRef};
use crate::connectors::template::{redacted_url, Template};

use super::config::{AuthConfig, ClientAuth, SignScheme};
use super::definition::carries_credentials;
use super::definition::SinkDefinition;

/// A sink ready to run: its definition with the secrets resolved. Reads through to the
/// definition's fields.
#[derive(Debug, Clone)]
pub struct Sink {
    definition: SinkDefinition,
    /// Extra request headers with a fixed value; a value from a reference is marked
    /// sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Extra request headers filled in per record.
    pub header_templates: Vec<(HeaderName, Template)>,
    /// Standard Webhooks signing key (the whole `whsec_…` string; the signer decodes it).
    pub signing_key: Option<Secret>,
    /// How requests authenticate, secrets resolved: `auth`, else the URL's user and
    /// password.
    pub credentials: Option<Credentials>,
    /// PEM contents of the `tls` files.
    pub tls_files: TlsFiles,
}

/// A sink's resolved `auth`. Its `Debug` shows the token URL redacted (it may carry a
/// password) and never a secret.
#[derive(Clone)]
pub enum Credentials {
    /// A fixed `Authorization` value, marked sensitive: `auth.bearer`, `auth.basic`, or
    /// the user and password written in the URL.
    Header(HeaderValue),
    OAuth2 {
        token_url: url::Url,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
        audience: Option<String>,
        client_auth: ClientAuth,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A sensitive value's `Debug` is `Sensitive`.
            Credentials::Header(v) => f.debug_tuple("Header").field(v).finish(),
            // What tells one client from another; the secret and the rest are left out.
            Credentials::OAuth2 {
                token_url,
                client_id,
                ..
            } => f
                .debug_struct("OAuth2")
                .field("token_url", &redacted_url(token_url.as_str()))
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// The `tls` files, read.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<Vec<u8>>,
    /// Certificate and key PEM, both or neither.
    pub identity: Option<(Vec<u8>, Secret)>,
}

impl Deref for Sink {
    type Target = SinkDefinition;

    fn deref(&self) -> &SinkDefinition {
        &self.definition
    }
}

impl SinkDefinition {
    /// Resolves the secrets: header values and the signing key. Errors name the file and
    /// the key, never the value.
    pub fn build(self) -> Result<Sink, ConfigError> {
        let file = self.file.as_str();
        let err = |key: &str, reason: String| ConfigError::new(file, format!("sink.{key}"), reason);
        let header_templates = self
            .header_refs
            .iter()
            .filter_map(|h| Some((h.name.clone(), h.template.clone()?)))
            .collect();
        let headers = self
            .header_refs
            .iter()
            .filter(|h| h.template.is_none())
            .map(|h| {
                let key = format!("headers.{}", h.key);
                let value = h.value.resolve().map_err(|e| err(&key, e.to_string()))?;
                let mut value = HeaderValue::from_str(&literal_braces(value.expose(), &h.value))
                    .map_err(|_| err(&key, "value is not a valid header value".into()))?;
                let literal = matches!(h.value, SecretRef::Literal(_));
                value.set_sensitive(!literal || carries_credentials(h.name.as_str()));
                Ok((h.name.clone(), value))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let signing_key = match &self.sign {
            None => None,
            Some(s) => match s.scheme {
                SignScheme::StandardWebhooks => {
                    Some(standard_webhooks_key(&s.secret).map_err(|r| err("sign.secret", r))?)
                }
            },
        };
        let credentials = match (&self.auth, self.url.userinfo()) {
            (Some(a), _) => Some(credentials(a).map_err(|(key, r)| err(key, r))?),
            (None, Some(u)) => Some(Credentials::Header(basic(
                &u.user,
                u.password.as_deref().unwrap_or(""),
            ))),
            (None, None) => None,
        };
        let tls_files = match &self.tls {
            None => TlsFiles::default(),
            Some(t) => {
                let read = |key: &str, path: &Option<std::path::PathBuf>| {
                    path.as_ref()
                        .map(|p| {
                            std::fs::read(p)
                                .map_err(|e| err(key, format!("cannot read {}: {e}", p.display())))
                        })
                        .transpose()
                };
                let ca = read("tls.ca", &t.ca)?;
                let cert = read("tls.cert", &t.cert)?;
                let key = read("tls.key", &t.key)?;
                if let Some(ca) = &ca {
                    openssl::x509::X509::stack_from_pem(ca)
                        .ok()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| err("tls.ca", "no PEM certificate in the file".into()))?;
                }
                let identity = match (cert, key) {
                    (Some(cert), Some(key)) => {
                        let leaf = openssl::x509::X509::from_pem(&cert)
                            .map_err(|_| err("tls.cert", "not a PEM certificate".into()))?;
                        let key = String::from_utf8(key)
                            .ok()
                            // The TLS library takes the key only from the file's start.
                            .filter(|k| k.starts_with("-----BEGIN PRIVATE KEY-----"))
                            .ok_or_else(|| {
                                err(
                                    "tls.key",
                                    "must be a PEM PKCS#8 key (BEGIN PRIVATE KEY); convert with `openssl pkcs8 -topk8 -nocrypt`".into(),
                                )
                            })?;
                        // No passphrase is asked for: a key that wants one fails here.
                        let private = openssl::pkey::PKey::private_key_from_pem_callback(
                            key.as_bytes(),
                            |_| Ok(0),
                        )
                        .map_err(|_| {
                            err("tls.key", "not a readable unencrypted private key".into())
                        })?;
                        let matches =
                            (leaf.public_key()).is_ok_and(|public| public.public_eq(&private));
                        if !matches {
                            return Err(err(
                                "tls.key",
                                "does not match the certificate in tls.cert".into(),
                            ));
                        }
                        Some((cert, Secret::new(key)))
                    }
                    _ => None,
                };
                TlsFiles { ca, identity }
            }
        };
        Ok(Sink {
            definition: self,
            headers,
            header_templates,
            credentials,
            tls_files,
            signing_key,
        })
    }
}

/// Resolves `auth`; errors name the key below `sink.` and never the value.
fn credentials(auth: &AuthConfig) -> Result<Credentials, (&'static str, String)> {
    let sensitive = |v: String, key: &'static str| {
        let mut v = HeaderValue::try_from(v)
            .map_err(|_| (key, "value is not a valid header value".to_owned()))?;
        v.set_sensitive(true);
        Ok(Credentials::Header(v))
    };
    match auth {
        AuthConfig::Bearer(r) => {
            let t = r.resolve().map_err(|e| ("auth.bearer", e.to_string()))?;
            sensitive(format!("Bearer {}", t.expose()), "auth.bearer")
        }
        AuthConfig::Basic(b) => {
            let p = b
                .password
                .resolve()
                .map_err(|e| ("auth.basic.password", e.to_string()))?;
            Ok(Credentials::Header(basic(&b.user, p.expose())))
        }
        AuthConfig::Oauth2(o) => Ok(Credentials::OAuth2 {
            token_url: url::Url::parse(o.token_url.as_written())
                .map_err(|e| ("auth.oauth2.token_url", format!("not a URL: {e}")))?,
            client_id: o.client_id.clone(),
            client_secret: o
                .client_secret
                .resolve()
                .map_err(|e| ("auth.oauth2.client_secret", e.to_string()))?,
            scopes: scopes(&o.scopes)?,
            audience: o.audience.clone(),
            client_auth: o.client_auth,
        }),
    }
}

/// The OAuth2 scopes, each one scope-token (RFC 6749 3.3: printable ASCII but space, `"`
/// and `\`): the request joins them with spaces, so `"read write"` would silently be two,
/// and an empty one or a character outside the set makes a request servers refuse.
fn scopes(scopes: &[String]) -> Result<Vec<String>, (&'static str, String)> {
    for (i, s) in scopes.iter().enumerate() {
        let token = |c: char| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c);
        if s.is_empty() || !s.chars().all(token) {
            return Err((
                "auth.oauth2.scopes",
                format!(
                    "scope {} ({s:?}) is not one scope: list each on its own, without spaces, quotes or backslashes",
                    i + 1,
                ),
            ));
        }
    }
    Ok(scopes.to_vec())
}

/// `Basic` credentials of `user` and `password`, marked sensitive. Base64 is always a
/// valid header value; the user and password are never shown.
fn basic(user: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut v = HeaderValue::try_from(format!("Basic {pair}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    v.set_sensitive(true);
    v
}

/// A literal header value with `{{`/`}}` escapes but no placeholder, as sent.
fn literal_braces(value: &str, r: &SecretRef) -> String {
    match r {
        SecretRef::Literal(_) => Template::parse(value)
            .ok()
            .and_then(|t| t.as_literal().map(str::to_owned))
            .unwrap_or_else(|| value.to_owned()),
        _ => value.to_owned(),
    }
}

/// Checks a `whsec_…` secret decodes; keeps the whole string (the signer decodes it).
fn standard_webhooks_key(secret: &SecretRef) -> Result<Secret, String> {
    use base64::Engine;
    let s = secret.resolve().map_err(|e| e.to_string())?;
    let b64 = s.expose().strip_prefix("whsec_").unwrap_or(s.expose());
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "must be a Standard Webhooks secret: whsec_ followed by base64".to_owned())?;
    if key.is_empty() {
        // An empty HMAC key signs, but anyone can forge such signatures.
        return Err("must not be empty: whsec_ followed by the base64 of the key".to_owned());
    }
    Ok(s)
}
