//! The `verify = { scheme = "…", … }` table of a connector file, and its validation into a
//! ready [`Verifier`].
//!
//! The scheme names its row in the [registry](super::registry), which says which keys
//! its table takes ([`table::Shape`]) and how its verifier is built ([`build`]). A key
//! that does not apply to the chosen scheme (e.g. `tolerance` for GitHub, which signs no
//! timestamp) is a parse error rather than silently ignored. Values that need more than
//! serde can check — secret references, durations, header names, templates, URLs — are
//! validated in [`VerifyConfig::build`], which reports `(key, reason)` with the key
//! relative to the `verify` table and never a secret value.

pub mod build;
pub mod table;

use serde::{Deserialize, Deserializer};

use super::registry::{self, Scheme, SecretHeader};
use super::url::{Forwarded, Network, SignedUrl, FORWARDED_HOST, FORWARDED_PROTO};
use super::Verifier;
use crate::config::secret::SecretRef;
use table::{err, Table};

/// A build error: (config key relative to `verify`, human-readable reason).
pub type BuildError = (String, String);

/// The serde form in a connector file:
/// `verify = { scheme = "github", secrets = ["${GITHUB_SECRET}"] }`.
#[derive(Clone)]
pub struct VerifyConfig {
    scheme: &'static Scheme,
    table: Table,
}

impl std::fmt::Debug for VerifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyConfig")
            .field("scheme", &self.scheme.name)
            .field("table", &self.table)
            .finish()
    }
}

impl<'de> Deserialize<'de> for VerifyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        table::deserialize(d)
    }
}

impl VerifyConfig {
    /// The scheme's row, and the keys present checked against its shape; errors read as
    /// serde's own.
    fn from_table<E: serde::de::Error>(table: Table, present: &[String]) -> Result<Self, E> {
        let name = table.scheme.as_deref().ok_or(E::missing_field("scheme"))?;
        let scheme =
            registry::find(name).ok_or_else(|| E::unknown_variant(name, registry::names()))?;
        let keys = scheme.shape.keys();
        if let Some(key) = (present.iter()).find(|k| *k != "scheme" && !keys.contains(&k.as_str()))
        {
            return Err(E::unknown_field(key, keys));
        }
        if let Some(key) =
            (scheme.shape.required().iter()).find(|k| !present.iter().any(|p| p == *k))
        {
            return Err(E::missing_field(key));
        }
        Ok(VerifyConfig { scheme, table })
    }

    /// Resolves secret references and validates; on error returns (key, reason) where key
    /// is the config key relative to `verify`, e.g. `("secrets[1]", "environment variable
    /// X is not set")` or `("tolerance", "must be at most 1h")`. Never puts a secret value
    /// in the reason.
    pub fn build(&self) -> Result<Verifier, (String, String)> {
        self.signed_url()?;
        self.scheme.build.run(&self.table)
    }

    /// Config-level secret refs, so `check` can warn about literal secrets.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        self.table.secret_refs()
    }

    /// The request header that carries the secret itself (a token compared as is), which
    /// must never be copied into a Kafka record or used as its key.
    pub fn secret_header(&self) -> Option<&str> {
        match self.scheme.secret_header {
            SecretHeader::None => None,
            SecretHeader::Fixed(name) => Some(name),
            SecretHeader::Configured => self.table.header.as_deref(),
        }
    }

    /// Scheme name as written in config, e.g. `"github"` (`svix` reads back as
    /// `"standard-webhooks"`).
    pub fn scheme_name(&self) -> &'static str {
        self.scheme.name
    }

    /// Where the HTTP handler takes the signed URL from (Twilio, Square, HubSpot, a
    /// generic template with `{url}`); errors as [`build`](Self::build) reports them.
    pub fn signed_url(&self) -> Result<SignedUrl, BuildError> {
        signed_url(&self.table, self.scheme.shape.signs_url(&self.table))
    }
}

/// Where a URL-signing scheme learns the URL it checks: `public_url`, or forwarded
/// headers from the named proxies — never from what any client says (see [`SignedUrl`]).
/// `signs_url` is false for a scheme or template that signs no URL; setting either key
/// then is a mistake worth reporting.
fn signed_url(t: &Table, signs_url: bool) -> Result<SignedUrl, BuildError> {
    let (public_url, trust_forwarded_from, trust_forwarded_headers) = (
        &t.public_url,
        &t.trust_forwarded_from,
        &t.trust_forwarded_headers,
    );
    if trust_forwarded_headers.is_some() && trust_forwarded_from.is_none() {
        return Err(err(
            "trust_forwarded_headers",
            "only applies with trust_forwarded_from",
        ));
    }
    match (public_url, trust_forwarded_from) {
        (Some(_), Some(_)) => Err(err(
            "trust_forwarded_from",
            "set either public_url or trust_forwarded_from, not both",
        )),
        _ if !signs_url && (public_url.is_some() || trust_forwarded_from.is_some()) => Err(err(
            if public_url.is_some() { "public_url" } else { "trust_forwarded_from" },
            "only applies when the template signs {url}",
        )),
        (Some(raw), None) => match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                Ok(SignedUrl::Public(raw.clone()))
            }
            _ => Err(err("public_url", "must be an absolute http(s) URL")),
        },
        (None, Some(list)) if list.is_empty() => Err(err(
            "trust_forwarded_from",
            "must name at least one proxy address or network",
        )),
        (None, Some(list)) => list
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Network::parse(text).ok_or_else(|| {
                    err(
                        format!("trust_forwarded_from[{i}]"),
                        format!("{text:?} is not an IP address or CIDR network"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|proxies| forwarded(proxies, trust_forwarded_headers)),
        (None, None) if signs_url => Err(err(
            "public_url",
            "is required: the provider signs the URL it calls, which hookbridge must not take from the request; set public_url = \"https://…\" exactly as configured at the provider, or trust_forwarded_from = [\"proxy address or CIDR\"] with trust_forwarded_headers = [\"X-Forwarded-Proto\", …] to read the headers those proxies set, from them only",
        )),
        (None, None) => Ok(SignedUrl::NotSigned),
    }
}

/// The proxies (never every address) and the forwarded headers they set: the scheme
/// must come from `X-Forwarded-Proto`; `X-Forwarded-Host` is read only when listed.
fn forwarded(
    proxies: Vec<Network>,
    headers: &Option<Vec<String>>,
) -> Result<SignedUrl, BuildError> {
    if let Some(i) = proxies.iter().position(Network::is_everything) {
        return Err(err(
            format!("trust_forwarded_from[{i}]"),
            "is wider than an IPv4 /8 or IPv6 /16, so any client could set the signed URL; name your proxies' addresses or networks",
        ));
    }
    let Some(names) = headers else {
        return Err(err(
            "trust_forwarded_headers",
            format!("is required with trust_forwarded_from: list the forwarded headers your proxy sets itself, e.g. [\"{FORWARDED_PROTO}\", \"{FORWARDED_HOST}\"] (a header it does not set comes from the client)"),
        ));
    };
    let mut proto = false;
    let mut host_header = false;
    for (i, name) in names.iter().enumerate() {
        if name.eq_ignore_ascii_case(FORWARDED_PROTO) {
            proto = true;
        } else if name.eq_ignore_ascii_case(FORWARDED_HOST) {
            host_header = true;
        } else {
            return Err(err(
                format!("trust_forwarded_headers[{i}]"),
                format!("only {FORWARDED_PROTO} and {FORWARDED_HOST} are read"),
            ));
        }
    }
    if !proto {
        return Err(err(
            "trust_forwarded_headers",
            format!(
                "must list {FORWARDED_PROTO}: the scheme the provider called has no other source"
            ),
        ));
    }
    Ok(SignedUrl::Forwarded(Forwarded {
        proxies,
        host_header,
    }))
}

#[cfg(test)]
mod tests;
