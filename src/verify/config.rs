//! The `verify = { scheme = "…", … }` table of a connector file, and its validation into a
//! ready [`Verifier`].
//!
//! Each scheme's table is its own struct with `deny_unknown_fields`, so a key that does
//! not apply to the chosen scheme (e.g. `tolerance` for GitHub, which signs no timestamp)
//! is a parse error rather than silently ignored. Values that need more than serde can
//! check — secret references, durations, header names, templates, URLs — are validated
//! in [`VerifyConfig::build`], which reports `(key, reason)` with the key relative to the
//! `verify` table and never a secret value.

use std::time::Duration;

use http::header::HeaderName;
use serde::Deserialize;

use super::crypto::{Algorithm, Key};
use super::generic::{GenericHmac, RecipeError, Template};
use super::recipe::Encoding;
use crate::signature::ed25519::PublicKey;

use super::token::SharedToken;
use super::url::{Forwarded, Network, SignedUrl, FORWARDED_HOST, FORWARDED_PROTO};
use super::{
    calendly, discord, eventgrid, github, gitlab, hubspot, linear, mailgun, meta, msgraph, paddle,
    sendgrid, shopify, slack, square, standard, stripe, twilio, twitch, workos, zoom, Verifier,
};
use crate::config::secret::{Secret, SecretRef};

/// Largest accepted `tolerance`: beyond an hour replay protection means little.
const MAX_TOLERANCE: Duration = Duration::from_secs(3600);

/// A build error: (config key relative to `verify`, human-readable reason).
type BuildError = (String, String);

fn err(key: impl Into<String>, reason: impl Into<String>) -> BuildError {
    (key.into(), reason.into())
}

/// The serde form in a connector file:
/// `verify = { scheme = "github", secrets = ["${GITHUB_SECRET}"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum VerifyConfig {
    /// `scheme = "github"`: secrets, `allow_sha1`.
    Github(GithubConfig),
    /// `scheme = "stripe"`: secrets, `tolerance` (default 5m).
    Stripe(TimedConfig),
    /// `scheme = "slack"`: secrets, `tolerance` (default 5m).
    Slack(TimedConfig),
    /// `scheme = "shopify"`: secrets.
    Shopify(SecretsConfig),
    /// `scheme = "standard-webhooks"` (alias `"svix"`): secrets, `tolerance` (default 5m).
    #[serde(alias = "svix")]
    StandardWebhooks(TimedConfig),
    /// `scheme = "gitlab"`: secrets (the secret tokens).
    Gitlab(SecretsConfig),
    /// `scheme = "twilio"`: secrets (auth tokens), `public_url`.
    Twilio(UrlConfig),
    /// `scheme = "paddle"`: secrets, `tolerance` (default 5s).
    Paddle(TimedConfig),
    /// `scheme = "square"`: secrets (signature keys), `public_url`.
    Square(UrlConfig),
    /// `scheme = "hubspot"`: secrets (app client secrets), `public_url`.
    Hubspot(UrlConfig),
    /// `scheme = "zoom"`: secrets (secret tokens), `tolerance` (default 5m).
    Zoom(TimedConfig),
    /// `scheme = "linear"`: secrets, `tolerance` (default 1m).
    Linear(TimedConfig),
    /// `scheme = "microsoft-graph"`: secrets (the subscriptions' `clientState` values).
    #[serde(rename = "microsoft-graph")]
    MsGraph(SecretsConfig),
    /// `scheme = "azure-event-grid"`: `header` (a secret delivery property) must equal a
    /// secret; answers the subscription validation for the listed `topics` only.
    AzureEventGrid(EventGridConfig),
    /// `scheme = "mailgun"`: secrets (webhook signing keys), `tolerance` (default 15m).
    Mailgun(TimedConfig),
    /// `scheme = "calendly"`: secrets (webhook signing keys), `tolerance` (default 3m).
    Calendly(TimedConfig),
    /// `scheme = "workos"`: secrets, `tolerance` (default 3m).
    Workos(TimedConfig),
    /// `scheme = "twitch"`: secrets, `tolerance` (default 10m).
    Twitch(TimedConfig),
    /// `scheme = "hmac"`: configurable HMAC.
    Hmac(HmacConfig),
    /// `scheme = "meta"`: secrets (app secrets), `verify_token` (or `verify_tokens`).
    Meta(MetaConfig),
    /// `scheme = "discord"` (interactions): `public_keys` (hex), `tolerance` (default 5m).
    Discord(DiscordConfig),
    /// `scheme = "discord-events"` (webhook events): as `discord`.
    DiscordEvents(DiscordConfig),
    /// `scheme = "sendgrid"`: `public_keys` (base64 DER), optional `tolerance`.
    Sendgrid(DiscordConfig),
    /// `scheme = "token"`: `header` must equal a secret.
    Token(TokenConfig),
    /// `scheme = "bearer"`: `Authorization: Bearer <secret>`.
    Bearer(SecretsConfig),
    /// `scheme = "basic"`: `Authorization: Basic base64(<user:password>)`.
    Basic(SecretsConfig),
    /// `scheme = "none"`: no verification, for trusted internal senders.
    None(NoneConfig),
}

/// `secret = "…"` or `secrets = ["…", …]` (rotation: any one valid is valid).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// A single secret reference.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Several secret references.
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
}

/// Meta's table: the app secrets that sign events, and the verify tokens the GET
/// subscription request must carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// A single app secret reference.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Several app secret references.
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
    /// The verify token entered in the app's webhook settings.
    #[serde(default)]
    pub verify_token: Option<SecretRef>,
    /// Several verify tokens (rotation).
    #[serde(default)]
    pub verify_tokens: Option<Vec<SecretRef>>,
}

/// Secrets plus a replay-protection window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedConfig {
    /// A single secret reference.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Several secret references.
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
    /// How far the signed timestamp may be from now, either way (humantime, e.g. "5m").
    #[serde(default)]
    pub tolerance: Option<String>,
}

/// GitHub's table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// A single secret reference.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Several secret references.
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
    /// Accept the legacy `X-Hub-Signature: sha1=…` when the SHA-256 header is absent.
    #[serde(default)]
    pub allow_sha1: bool,
}

/// Secrets plus the public URL the sender signs (Twilio, Square).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlConfig {
    /// A single secret reference.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Several secret references.
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
    /// The URL as configured at the provider, e.g. `"https://hooks.example.com/twilio"`.
    /// Required unless `trust_forwarded_from` is set.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Proxies (addresses or CIDR networks) whose forwarded headers give the signed URL
    /// instead of `public_url`; requests from anywhere else fail.
    #[serde(default)]
    pub trust_forwarded_from: Option<Vec<String>>,
    /// The forwarded headers those proxies set themselves (required with
    /// `trust_forwarded_from`): `X-Forwarded-Proto`, and `X-Forwarded-Host` only when the
    /// proxy overwrites it; otherwise the host comes from `Host`.
    #[serde(default)]
    pub trust_forwarded_headers: Option<Vec<String>>,
}

/// The generic HMAC table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// A single secret reference.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Several secret references.
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
    /// The header carrying the signature (required).
    pub header: String,
    /// Text before the encoded MAC, e.g. `"sha256="` (default empty).
    #[serde(default)]
    pub prefix: String,
    /// `sha1`, `sha256` (default) or `sha512`.
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// `hex` (default) or `base64`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Header carrying a Unix-seconds timestamp that the template signs.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Signed content (default `"{body}"`; required with `timestamp_header`).
    #[serde(default)]
    pub template: Option<String>,
    /// Replay window (default 5m; only with `timestamp_header`).
    #[serde(default)]
    pub tolerance: Option<String>,
    /// The URL the sender signs, for a template using `{url}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How each secret is written: `text` (default: its bytes are the key), `hex` or
    /// `base64` (decoded to the key bytes, for providers that hand out binary keys).
    #[serde(default)]
    pub secret_encoding: SecretEncoding,
    /// The signature header lists several signatures (each after `prefix`) separated
    /// by this, e.g. `","` or `" "`; any may match (at most 16 are read).
    #[serde(default)]
    pub signature_separator: Option<String>,
    /// Proxies whose forwarded headers give the URL for `{url}` instead of `public_url`.
    #[serde(default)]
    pub trust_forwarded_from: Option<Vec<String>>,
    /// The forwarded headers those proxies set themselves (as for Twilio).
    #[serde(default)]
    pub trust_forwarded_headers: Option<Vec<String>>,
}

/// How a generic HMAC secret is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretEncoding {
    /// The secret's bytes are the key.
    #[default]
    Text,
    /// Hex digits, decoded to the key.
    Hex,
    /// Standard base64 (padded), decoded to the key.
    Base64,
}

fn default_algorithm() -> Algorithm {
    Algorithm::Sha256
}

/// Discord's and SendGrid's table: public keys are not secrets, so they are plain
/// strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The public key(s) as the provider shows them (Discord: hex; SendGrid: base64 DER).
    pub public_keys: Vec<String>,
    /// How far the signed timestamp may be from now, either way.
    #[serde(default)]
    pub tolerance: Option<String>,
}

/// A shared-secret header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A single secret reference.
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// Several secret references.
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
    /// The header carrying the secret (required).
    pub header: String,
}

/// Azure Event Grid: a shared-secret header, and the topics whose subscription
/// validation is answered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventGridConfig {
    #[serde(default)]
    pub secret: Option<SecretRef>,
    #[serde(default)]
    pub secrets: Option<Vec<SecretRef>>,
    /// The header carrying the secret (required).
    pub header: String,
    /// Resource ids (or prefixes of them, e.g. a subscription or resource group) of the
    /// topics this source takes events from (required, not empty).
    pub topics: Vec<String>,
}

/// `scheme = "none"` takes no other keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoneConfig {}

/// Resolves `secret`/`secrets` into values, naming the failing key.
fn resolve_secrets(
    secret: &Option<SecretRef>,
    secrets: &Option<Vec<SecretRef>>,
) -> Result<Vec<Secret>, BuildError> {
    resolve_listed(secret, secrets, "secret")
}

/// `<name>` or `<name>s`, one or a list (rotation), resolved; errors name the key.
fn resolve_listed(
    one: &Option<SecretRef>,
    many: &Option<Vec<SecretRef>>,
    name: &str,
) -> Result<Vec<Secret>, BuildError> {
    let plural = format!("{name}s");
    match (one, many) {
        (Some(_), Some(_)) => Err(err(
            name,
            format!("set either {name} or {plural}, not both"),
        )),
        (None, None) => Err(err(plural, format!("at least one {name} is required"))),
        (Some(one), None) => Ok(vec![one.resolve().map_err(|e| err(name, e.to_string()))?]),
        (None, Some(list)) if list.is_empty() => {
            Err(err(plural, format!("must list at least one {name}")))
        }
        (None, Some(list)) => list
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.resolve()
                    .map_err(|e| err(format!("{plural}[{i}]"), e.to_string()))
            })
            .collect(),
    }
}

/// The secrets' text as MAC keys.
fn text_keys(
    secret: &Option<SecretRef>,
    secrets: &Option<Vec<SecretRef>>,
) -> Result<Vec<Key>, BuildError> {
    Ok(resolve_secrets(secret, secrets)?
        .iter()
        .map(super::crypto::secret_key)
        .collect())
}

/// The generic scheme's keys, decoded per `secret_encoding`; errors name the secret.
fn encoded_keys(c: &HmacConfig) -> Result<Vec<Key>, BuildError> {
    use base64::Engine;
    let values = resolve_secrets(&c.secret, &c.secrets)?;
    (values.iter().enumerate())
        .map(|(i, value)| {
            let text = value.expose();
            let decoded = match c.secret_encoding {
                SecretEncoding::Text => return Ok(super::crypto::secret_key(value)),
                SecretEncoding::Hex => hex::decode(text).ok(),
                SecretEncoding::Base64 => {
                    base64::engine::general_purpose::STANDARD.decode(text).ok()
                }
            };
            match decoded {
                Some(bytes) if !bytes.is_empty() => Ok(Key::new(bytes)),
                _ => Err(err(
                    secret_key_name(c.secret.is_some(), i),
                    format!(
                        "is not {} (secret_encoding)",
                        match c.secret_encoding {
                            SecretEncoding::Hex => "hex",
                            _ => "base64",
                        }
                    ),
                )),
            }
        })
        .collect()
}

/// Standard Webhooks: `whsec_…` secrets verify `v1` signatures, `whpk_…` public keys
/// `v1a` (Ed25519) ones.
fn standard_verifier(c: &TimedConfig) -> Result<Verifier, BuildError> {
    let values = resolve_secrets(&c.secret, &c.secrets)?;
    let (mut keys, mut public_keys) = (Vec::new(), Vec::new());
    for (i, value) in values.iter().enumerate() {
        if value.expose().starts_with("whpk_") {
            let key = standard::decode_public_key(value.expose()).ok_or_else(|| {
                err(
                    secret_key_name(c.secret.is_some(), i),
                    "is not a Standard Webhooks public key (whpk_ followed by base64 of 32 bytes)",
                )
            })?;
            public_keys.push(key);
        } else {
            keys.push(standard_key(value, c.secret.is_some(), i)?);
        }
    }
    let verifier = standard::StandardWebhooks::new(
        keys,
        tolerance(&c.tolerance, standard::DEFAULT_TOLERANCE)?,
    )
    .with_public_keys(public_keys);
    Ok(Verifier::StandardWebhooks(verifier))
}

/// `secret` or `secrets[i]`, for errors about one resolved value.
fn secret_key_name(single: bool, index: usize) -> String {
    if single {
        "secret".to_owned()
    } else {
        format!("secrets[{index}]")
    }
}

/// GitLab: `whsec_…` secrets are signing tokens (Standard Webhooks keys), the others
/// plain secret tokens.
fn gitlab_verifier(c: &SecretsConfig) -> Result<Verifier, BuildError> {
    let values = resolve_secrets(&c.secret, &c.secrets)?;
    let (mut tokens, mut signing) = (Vec::new(), Vec::new());
    for (i, value) in values.iter().enumerate() {
        if value.expose().starts_with("whsec_") {
            signing.push(standard_key(value, c.secret.is_some(), i)?);
        } else {
            tokens.push(super::crypto::secret_key(value));
        }
    }
    let signs_first = values
        .first()
        .is_some_and(|v| v.expose().starts_with("whsec_"));
    Ok(Verifier::Gitlab(gitlab::Gitlab::new(
        tokens,
        signing,
        signs_first,
    )))
}

/// One `whsec_…` secret decoded, or an error naming its key.
fn standard_key(value: &Secret, single: bool, index: usize) -> Result<Key, BuildError> {
    standard::decode_secret(value.expose()).ok_or_else(|| {
        err(
            secret_key_name(single, index),
            "is not a Standard Webhooks secret (expected whsec_ followed by base64)",
        )
    })
}

/// Discord: every public key must be 32 bytes of hex.
fn discord_verifier(c: &DiscordConfig, kind: discord::Kind) -> Result<Verifier, BuildError> {
    if c.public_keys.is_empty() {
        return Err(err("public_keys", "must list at least one public key"));
    }
    let keys = (c.public_keys.iter().enumerate())
        .map(|(i, text)| {
            PublicKey::from_hex(text).ok_or_else(|| {
                err(
                    format!("public_keys[{i}]"),
                    "is not an Ed25519 public key (64 hex digits)",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Verifier::Discord(discord::Discord::new(
        keys,
        tolerance(&c.tolerance, discord::DEFAULT_TOLERANCE)?,
        kind,
    )))
}

/// SendGrid: every key must be an EC public key; no window unless `tolerance` is set.
fn sendgrid_verifier(c: &DiscordConfig) -> Result<Verifier, BuildError> {
    if c.public_keys.is_empty() {
        return Err(err(
            "public_keys",
            "must list at least one verification key",
        ));
    }
    let keys = (c.public_keys.iter().enumerate())
        .map(|(i, text)| {
            sendgrid::VerificationKey::from_base64(text).ok_or_else(|| {
                err(
                    format!("public_keys[{i}]"),
                    "is not an ECDSA verification key (base64 of DER SubjectPublicKeyInfo)",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let window = match &c.tolerance {
        Some(_) => Some(tolerance(&c.tolerance, MAX_TOLERANCE)?),
        None => None,
    };
    Ok(Verifier::Sendgrid(sendgrid::Sendgrid::new(keys, window)))
}

/// A provider recipe's engine; a recipe that does not build is a bug, reported as such.
fn meta_verifier(c: &MetaConfig) -> Result<Verifier, BuildError> {
    let secrets = text_keys(&c.secret, &c.secrets)?;
    let tokens = resolve_listed(&c.verify_token, &c.verify_tokens, "verify_token")?
        .iter()
        .map(super::crypto::secret_key)
        .collect();
    meta::Meta::new(secrets, tokens)
        .map(Verifier::Meta)
        .map_err(|e| err("scheme", e.to_string()))
}

fn recipe(built: Result<GenericHmac, RecipeError>) -> Result<Verifier, BuildError> {
    built
        .map(Verifier::Hmac)
        .map_err(|e| err("scheme", e.to_string()))
}

/// Parses `tolerance`, or returns the scheme's default.
fn tolerance(raw: &Option<String>, default: Duration) -> Result<Duration, BuildError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let value = humantime::parse_duration(raw.trim())
        .map_err(|e| err("tolerance", format!("not a duration like \"5m\": {e}")))?;
    if value < Duration::from_secs(1) {
        return Err(err("tolerance", "must be at least 1s"));
    }
    if value > MAX_TOLERANCE {
        return Err(err("tolerance", "must be at most 1h"));
    }
    Ok(value)
}

/// Where a URL-signing scheme learns the URL it checks: `public_url`, or forwarded
/// headers from the named proxies — never from what any client says (see [`SignedUrl`]).
/// `signs_url` is false for a scheme or template that signs no URL; setting either key
/// then is a mistake worth reporting.
fn signed_url(
    public_url: &Option<String>,
    trust_forwarded_from: &Option<Vec<String>>,
    trust_forwarded_headers: &Option<Vec<String>>,
    signs_url: bool,
) -> Result<SignedUrl, BuildError> {
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

fn header_name(key: &str, raw: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(raw.trim().as_bytes())
        .map_err(|_| err(key, "is not a valid HTTP header name"))
}

fn build_hmac(c: &HmacConfig) -> Result<Verifier, BuildError> {
    let keys = encoded_keys(c)?;
    let header = header_name("header", &c.header)?;
    if !c.prefix.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(err("prefix", "must be printable ASCII"));
    }
    let timestamp_header = match &c.timestamp_header {
        Some(raw) => Some(header_name("timestamp_header", raw)?),
        None => None,
    };
    let template = match (&c.template, &timestamp_header) {
        (Some(raw), _) => Template::parse(raw).map_err(|e| err("template", e.to_string()))?,
        (None, None) => Template::parse("{body}").map_err(|e| err("template", e.to_string()))?,
        (None, Some(_)) => {
            return Err(err(
                "template",
                "is required with timestamp_header, e.g. \"{timestamp}.{body}\"",
            ))
        }
    };
    if template.headers().any(|h| *h == header) {
        return Err(err("template", "cannot sign the signature header itself"));
    }
    let timestamp = match timestamp_header {
        Some(ts_header) => {
            if ts_header == header {
                return Err(err("timestamp_header", "must differ from header"));
            }
            if !template.uses_timestamp() {
                return Err(err(
                    "template",
                    "must contain {timestamp} when timestamp_header is set, or the timestamp is not signed",
                ));
            }
            Some((
                ts_header,
                tolerance(&c.tolerance, super::generic::DEFAULT_TOLERANCE)?,
            ))
        }
        None => {
            if template.uses_timestamp() {
                return Err(err(
                    "template",
                    "uses {timestamp} but timestamp_header is not set",
                ));
            }
            if c.tolerance.is_some() {
                return Err(err("tolerance", "only applies with timestamp_header"));
            }
            None
        }
    };
    if c.signature_separator.as_deref() == Some("") {
        return Err(err("signature_separator", "must not be empty"));
    }
    Ok(Verifier::Hmac(
        GenericHmac::new(
            keys,
            header,
            c.prefix.clone(),
            c.algorithm,
            c.encoding,
            timestamp,
            template,
        )
        .with_separator(c.signature_separator.clone()),
    ))
}

impl VerifyConfig {
    /// Resolves secret references and validates; on error returns (key, reason) where key
    /// is the config key relative to `verify`, e.g. `("secrets[1]", "environment variable
    /// X is not set")` or `("tolerance", "must be at most 1h")`. Never puts a secret value
    /// in the reason.
    pub fn build(&self) -> Result<Verifier, (String, String)> {
        self.signed_url()?;
        Ok(match self {
            VerifyConfig::Github(c) => recipe(github::build(
                text_keys(&c.secret, &c.secrets)?,
                c.allow_sha1,
            ))?,
            VerifyConfig::MsGraph(c) => {
                Verifier::MsGraph(msgraph::MsGraph::new(text_keys(&c.secret, &c.secrets)?))
            }
            VerifyConfig::AzureEventGrid(c) => Verifier::EventGrid(eventgrid::EventGrid::new(
                SharedToken::token(
                    "azure-event-grid",
                    header_name("header", &c.header)?,
                    None,
                    &text_keys(&c.secret, &c.secrets)?,
                ),
                eventgrid::topics(&c.topics).map_err(|reason| err("topics", reason))?,
            )),
            VerifyConfig::Mailgun(c) => Verifier::Mailgun(mailgun::Mailgun::new(
                text_keys(&c.secret, &c.secrets)?,
                tolerance(&c.tolerance, mailgun::DEFAULT_TOLERANCE)?,
            )),
            VerifyConfig::Calendly(c) => recipe(calendly::RECIPE.build(
                text_keys(&c.secret, &c.secrets)?,
                Some(tolerance(&c.tolerance, calendly::DEFAULT_TOLERANCE)?),
                &[],
            ))?,
            VerifyConfig::Workos(c) => recipe(workos::RECIPE.build(
                text_keys(&c.secret, &c.secrets)?,
                Some(tolerance(&c.tolerance, workos::DEFAULT_TOLERANCE)?),
                &[],
            ))?,
            VerifyConfig::Stripe(c) => recipe(stripe::RECIPE.build(
                text_keys(&c.secret, &c.secrets)?,
                Some(tolerance(&c.tolerance, stripe::DEFAULT_TOLERANCE)?),
                &[],
            ))?,
            VerifyConfig::Slack(c) => recipe(slack::RECIPE.build(
                text_keys(&c.secret, &c.secrets)?,
                Some(tolerance(&c.tolerance, slack::DEFAULT_TOLERANCE)?),
                &[],
            ))?,
            VerifyConfig::Shopify(c) => {
                recipe(shopify::RECIPE.build(text_keys(&c.secret, &c.secrets)?, None, &[]))?
            }
            VerifyConfig::StandardWebhooks(c) => standard_verifier(c)?,
            VerifyConfig::Gitlab(c) => gitlab_verifier(c)?,
            VerifyConfig::Twilio(c) => {
                Verifier::Twilio(twilio::Twilio::new(text_keys(&c.secret, &c.secrets)?))
            }
            VerifyConfig::Paddle(c) => recipe(paddle::RECIPE.build(
                text_keys(&c.secret, &c.secrets)?,
                Some(tolerance(&c.tolerance, paddle::DEFAULT_TOLERANCE)?),
                &[],
            ))?,
            VerifyConfig::Square(c) => {
                recipe(square::RECIPE.build(text_keys(&c.secret, &c.secrets)?, None, &[]))?
            }
            VerifyConfig::Hubspot(c) => {
                recipe(hubspot::RECIPE.build(text_keys(&c.secret, &c.secrets)?, None, &[]))?
            }
            VerifyConfig::Zoom(c) => recipe(zoom::RECIPE.build(
                text_keys(&c.secret, &c.secrets)?,
                Some(tolerance(&c.tolerance, zoom::DEFAULT_TOLERANCE)?),
                &[],
            ))?,
            VerifyConfig::Linear(c) => Verifier::Linear(linear::Linear::new(
                text_keys(&c.secret, &c.secrets)?,
                tolerance(&c.tolerance, linear::DEFAULT_TOLERANCE)?,
            )),
            VerifyConfig::Twitch(c) => Verifier::Twitch(twitch::Twitch::new(
                text_keys(&c.secret, &c.secrets)?,
                tolerance(&c.tolerance, twitch::DEFAULT_TOLERANCE)?,
            )),
            VerifyConfig::Hmac(c) => build_hmac(c)?,
            VerifyConfig::Discord(c) => discord_verifier(c, discord::Kind::Interactions)?,
            VerifyConfig::DiscordEvents(c) => discord_verifier(c, discord::Kind::Events)?,
            VerifyConfig::Sendgrid(c) => sendgrid_verifier(c)?,
            VerifyConfig::Meta(c) => meta_verifier(c)?,
            VerifyConfig::Token(c) => Verifier::Token(SharedToken::token(
                "token",
                header_name("header", &c.header)?,
                None,
                &text_keys(&c.secret, &c.secrets)?,
            )),
            VerifyConfig::Bearer(c) => {
                Verifier::Token(SharedToken::bearer(&text_keys(&c.secret, &c.secrets)?))
            }
            VerifyConfig::Basic(c) => {
                let keys = text_keys(&c.secret, &c.secrets)?;
                if let Some(i) = keys.iter().position(|k| !k.as_bytes().contains(&b':')) {
                    let key = if c.secret.is_some() {
                        "secret".to_owned()
                    } else {
                        format!("secrets[{i}]")
                    };
                    return Err(err(key, "must be user:password"));
                }
                Verifier::Token(SharedToken::basic(&keys))
            }
            VerifyConfig::None(_) => Verifier::None,
        })
    }

    /// Config-level secret refs, so `check` can warn about literal secrets.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        let (secret, secrets) = match self {
            VerifyConfig::Github(c) => (&c.secret, &c.secrets),
            VerifyConfig::Shopify(c)
            | VerifyConfig::MsGraph(c)
            | VerifyConfig::Gitlab(c)
            | VerifyConfig::Bearer(c)
            | VerifyConfig::Basic(c) => (&c.secret, &c.secrets),
            VerifyConfig::Token(c) => (&c.secret, &c.secrets),
            VerifyConfig::AzureEventGrid(c) => (&c.secret, &c.secrets),
            VerifyConfig::Stripe(c)
            | VerifyConfig::Calendly(c)
            | VerifyConfig::Workos(c)
            | VerifyConfig::Mailgun(c)
            | VerifyConfig::Slack(c)
            | VerifyConfig::StandardWebhooks(c)
            | VerifyConfig::Paddle(c)
            | VerifyConfig::Zoom(c)
            | VerifyConfig::Linear(c)
            | VerifyConfig::Twitch(c) => (&c.secret, &c.secrets),
            VerifyConfig::Twilio(c) | VerifyConfig::Square(c) | VerifyConfig::Hubspot(c) => {
                (&c.secret, &c.secrets)
            }
            VerifyConfig::Hmac(c) => (&c.secret, &c.secrets),
            VerifyConfig::Meta(c) => {
                return (c.secret.iter().chain(c.secrets.iter().flatten()))
                    .chain(c.verify_token.iter())
                    .chain(c.verify_tokens.iter().flatten())
                    .collect()
            }
            VerifyConfig::Discord(_)
            | VerifyConfig::DiscordEvents(_)
            | VerifyConfig::Sendgrid(_)
            | VerifyConfig::None(_) => return Vec::new(),
        };
        secret.iter().chain(secrets.iter().flatten()).collect()
    }

    /// The request header that carries the secret itself (a token compared as is), which
    /// must never be copied into a Kafka record or used as its key.
    pub fn secret_header(&self) -> Option<&str> {
        match self {
            VerifyConfig::Token(c) => Some(&c.header),
            VerifyConfig::AzureEventGrid(c) => Some(&c.header),
            VerifyConfig::Bearer(_) | VerifyConfig::Basic(_) => Some("Authorization"),
            VerifyConfig::Gitlab(_) => Some(gitlab::HEADER),
            _ => None,
        }
    }

    /// Scheme name as written in config, e.g. `"github"` (`svix` reads back as
    /// `"standard-webhooks"`).
    pub fn scheme_name(&self) -> &'static str {
        match self {
            VerifyConfig::Github(_) => "github",
            VerifyConfig::Stripe(_) => "stripe",
            VerifyConfig::Slack(_) => "slack",
            VerifyConfig::Shopify(_) => "shopify",
            VerifyConfig::StandardWebhooks(_) => "standard-webhooks",
            VerifyConfig::Gitlab(_) => "gitlab",
            VerifyConfig::Twilio(_) => "twilio",
            VerifyConfig::Paddle(_) => "paddle",
            VerifyConfig::Square(_) => "square",
            VerifyConfig::Hubspot(_) => "hubspot",
            VerifyConfig::Zoom(_) => "zoom",
            VerifyConfig::Linear(_) => "linear",
            VerifyConfig::Calendly(_) => "calendly",
            VerifyConfig::Mailgun(_) => "mailgun",
            VerifyConfig::AzureEventGrid(_) => "azure-event-grid",
            VerifyConfig::MsGraph(_) => "microsoft-graph",
            VerifyConfig::Workos(_) => "workos",
            VerifyConfig::Twitch(_) => "twitch",
            VerifyConfig::Hmac(_) => "hmac",
            VerifyConfig::Discord(_) => "discord",
            VerifyConfig::DiscordEvents(_) => "discord-events",
            VerifyConfig::Sendgrid(_) => "sendgrid",
            VerifyConfig::Meta(_) => "meta",
            VerifyConfig::Token(_) => "token",
            VerifyConfig::Bearer(_) => "bearer",
            VerifyConfig::Basic(_) => "basic",
            VerifyConfig::None(_) => "none",
        }
    }

    /// Where the HTTP handler takes the signed URL from (Twilio, Square, a generic
    /// template with `{url}`); errors as [`build`](Self::build) reports them.
    pub fn signed_url(&self) -> Result<SignedUrl, BuildError> {
        match self {
            VerifyConfig::Twilio(c) | VerifyConfig::Square(c) | VerifyConfig::Hubspot(c) => {
                signed_url(
                    &c.public_url,
                    &c.trust_forwarded_from,
                    &c.trust_forwarded_headers,
                    true,
                )
            }
            VerifyConfig::Hmac(c) => {
                let signs_url = c
                    .template
                    .as_deref()
                    .and_then(|t| Template::parse(t).ok())
                    .is_some_and(|t| t.uses_url());
                signed_url(
                    &c.public_url,
                    &c.trust_forwarded_from,
                    &c.trust_forwarded_headers,
                    signs_url,
                )
            }
            _ => Ok(SignedUrl::NotSigned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Source {
        verify: VerifyConfig,
    }

    fn parse(toml_text: &str) -> Result<VerifyConfig, String> {
        toml::from_str::<Source>(toml_text)
            .map(|s| s.verify)
            .map_err(|e| e.to_string())
    }

    fn build(toml_text: &str) -> Result<Verifier, (String, String)> {
        parse(toml_text).unwrap().build()
    }

    const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn every_scheme_parses_and_builds() {
        let cases = [
            (
                r#"verify = { scheme = "github", secrets = ["a", "b"], allow_sha1 = true }"#,
                "github",
            ),
            (
                r#"verify = { scheme = "stripe", secret = "whsec_x", tolerance = "10m" }"#,
                "stripe",
            ),
            (r#"verify = { scheme = "slack", secrets = ["s"] }"#, "slack"),
            (
                r#"verify = { scheme = "shopify", secret = "s" }"#,
                "shopify",
            ),
            (
                &format!(r#"verify = {{ scheme = "standard-webhooks", secret = "{WHSEC}" }}"#),
                "standard-webhooks",
            ),
            (
                &format!(
                    r#"verify = {{ scheme = "svix", secrets = ["{WHSEC}"], tolerance = "2m" }}"#
                ),
                "standard-webhooks",
            ),
            (
                r#"verify = { scheme = "gitlab", secret = "tok" }"#,
                "gitlab",
            ),
            (
                r#"verify = { scheme = "twilio", secret = "tok", public_url = "https://hooks.example.com/twilio" }"#,
                "twilio",
            ),
            (
                r#"verify = { scheme = "paddle", secret = "pdl_ntfset_x", tolerance = "30s" }"#,
                "paddle",
            ),
            (
                r#"verify = { scheme = "square", secret = "k", trust_forwarded_from = ["10.0.0.0/8", "::1"], trust_forwarded_headers = ["X-Forwarded-Proto"] }"#,
                "square",
            ),
            (r#"verify = { scheme = "zoom", secret = "z" }"#, "zoom"),
            (r#"verify = { scheme = "linear", secret = "l" }"#, "linear"),
            (
                r#"verify = { scheme = "twitch", secret = "t", tolerance = "10m" }"#,
                "twitch",
            ),
            (
                r#"verify = { scheme = "hmac", secret = "h", header = "X-Sig" }"#,
                "hmac",
            ),
            (
                r#"
                [verify]
                scheme = "hmac"
                secrets = ["h"]
                header = "X-Signature"
                prefix = "v1="
                algorithm = "sha512"
                encoding = "base64"
                timestamp_header = "X-Timestamp"
                template = "{timestamp}.{header:X-Request-Id}.{body}"
                tolerance = "1m"
                "#,
                "hmac",
            ),
            (
                r#"verify = { scheme = "token", secret = "t", header = "X-Webhook-Token" }"#,
                "token",
            ),
            (
                r#"verify = { scheme = "bearer", secrets = ["t"] }"#,
                "bearer",
            ),
            (
                r#"verify = { scheme = "calendly", secret = "c", tolerance = "3m" }"#,
                "calendly",
            ),
            (r#"verify = { scheme = "workos", secret = "w" }"#, "workos"),
            (
                r#"verify = { scheme = "mailgun", secret = "m" }"#,
                "mailgun",
            ),
            (
                r#"verify = { scheme = "microsoft-graph", secret = "client-state" }"#,
                "microsoft-graph",
            ),
            (
                r#"verify = { scheme = "azure-event-grid", secret = "s", header = "X-Event-Grid-Secret", topics = ["/subscriptions/x"] }"#,
                "azure-event-grid",
            ),
            (
                r#"verify = { scheme = "discord", public_keys = ["3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"] }"#,
                "discord",
            ),
            (
                r#"verify = { scheme = "discord-events", public_keys = ["3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"] }"#,
                "discord-events",
            ),
            (
                r#"verify = { scheme = "basic", secret = "user:pw" }"#,
                "basic",
            ),
            (r#"verify = { scheme = "none" }"#, "none"),
        ];
        for (text, scheme) in cases {
            let config = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(config.scheme_name(), scheme);
            let verifier = config.build().unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(verifier.scheme_name(), scheme);
        }
    }

    #[test]
    fn unknown_keys_and_schemes_are_rejected() {
        for text in [
            r#"verify = { scheme = "github", secret = "a", tolerance = "5m" }"#,
            r#"verify = { scheme = "stripe", secret = "a", tolerence = "5m" }"#,
            r#"verify = { scheme = "none", secret = "a" }"#,
            r#"verify = { scheme = "shopify", secret = "a", allow_sha1 = true }"#,
            r#"verify = { scheme = "hmac", secret = "a", header = "X", algorithm = "md5" }"#,
            r#"verify = { scheme = "hmac", secret = "a", header = "X", encoding = "base32" }"#,
            r#"verify = { scheme = "hmac", secret = "a" }"#,
            r#"verify = { scheme = "github-enterprise", secret = "a" }"#,
            r#"verify = { secret = "a" }"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn missing_env_secret_names_key_and_variable_without_value() {
        let text =
            r#"verify = { scheme = "github", secrets = ["${HOOKBRIDGE_TEST_UNSET_VAR_1B7F}"] }"#;
        let (key, reason) = build(text).unwrap_err();
        assert_eq!(key, "secrets[0]");
        assert!(
            reason.contains("HOOKBRIDGE_TEST_UNSET_VAR_1B7F"),
            "{reason}"
        );
        let text = r#"verify = { scheme = "slack", secrets = ["literal-ok", "${HOOKBRIDGE_TEST_UNSET_VAR_1B7F}"] }"#;
        assert_eq!(build(text).unwrap_err().0, "secrets[1]");
        let text = r#"verify = { scheme = "zoom", secret = "${HOOKBRIDGE_TEST_UNSET_VAR_1B7F}" }"#;
        assert_eq!(build(text).unwrap_err().0, "secret");
    }

    #[test]
    fn secret_values_never_appear_in_errors_or_debug() {
        let text =
            r#"verify = { scheme = "standard-webhooks", secret = "whsec_hunter2-not-base64!" }"#;
        let (key, reason) = build(text).unwrap_err();
        assert_eq!(key, "secret");
        assert!(!reason.contains("hunter2"), "{reason}");
        let config = parse(r#"verify = { scheme = "github", secrets = ["hunter2"] }"#).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let verifier = config.build().unwrap();
        assert!(!format!("{verifier:?}").contains("hunter2"));
        let verifier = build(&format!(
            r#"verify = {{ scheme = "svix", secret = "{WHSEC}" }}"#
        ))
        .unwrap();
        assert!(!format!("{verifier:?}").contains("C2FVsBQ"));
    }

    #[test]
    fn secret_file_references_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("github-secret");
        std::fs::write(&path, "It's a Secret to Everybody\n").unwrap();
        let text = format!(
            r#"verify = {{ scheme = "github", secret = "file:{}" }}"#,
            path.display()
        );
        let verifier = build(&text).unwrap();
        let headers = verifier.sign(b"Hello, World!", "", 0).unwrap();
        assert_eq!(
            headers.get("x-hub-signature-256").unwrap(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let missing = format!(
            r#"verify = {{ scheme = "github", secret = "file:{}/nope" }}"#,
            dir.path().display()
        );
        assert_eq!(build(&missing).unwrap_err().0, "secret");
    }

    #[test]
    fn secret_and_secrets_rules() {
        let both = r#"verify = { scheme = "github", secret = "a", secrets = ["b"] }"#;
        assert_eq!(build(both).unwrap_err().0, "secret");
        let neither = r#"verify = { scheme = "github" }"#;
        assert_eq!(build(neither).unwrap_err().0, "secrets");
        let empty = r#"verify = { scheme = "github", secrets = [] }"#;
        assert_eq!(build(empty).unwrap_err().0, "secrets");
        let empty_value = r#"verify = { scheme = "github", secrets = ["a", ""] }"#;
        assert_eq!(build(empty_value).unwrap_err().0, "secrets[1]");
    }

    #[test]
    fn tolerance_validation() {
        let with = |t: &str| {
            format!(r#"verify = {{ scheme = "stripe", secret = "s", tolerance = "{t}" }}"#)
        };
        assert!(build(&with("30s")).is_ok());
        assert!(build(&with("1h")).is_ok());
        assert_eq!(
            build(&with("2h")).unwrap_err(),
            ("tolerance".into(), "must be at most 1h".into())
        );
        assert_eq!(build(&with("500ms")).unwrap_err().0, "tolerance");
        assert_eq!(build(&with("0s")).unwrap_err().0, "tolerance");
        assert_eq!(build(&with("soon")).unwrap_err().0, "tolerance");
    }

    #[test]
    fn public_url_validation() {
        let bad = r#"verify = { scheme = "twilio", secret = "t", public_url = "/relative" }"#;
        assert_eq!(build(bad).unwrap_err().0, "public_url");
        let bad = r#"verify = { scheme = "square", secret = "t", public_url = "ftp://x.com/" }"#;
        assert_eq!(build(bad).unwrap_err().0, "public_url");
        let good = parse(
            r#"verify = { scheme = "square", secret = "t", public_url = "https://x.com/sq" }"#,
        )
        .unwrap();
        assert_eq!(
            good.signed_url().unwrap().public(),
            Some("https://x.com/sq")
        );
        assert_eq!(
            parse(r#"verify = { scheme = "github", secret = "t" }"#)
                .unwrap()
                .signed_url(),
            Ok(SignedUrl::NotSigned)
        );
    }

    #[test]
    fn generic_secrets_may_be_hex_or_base64() {
        use crate::verify::testutil::req;
        // The same 4-byte key written three ways signs the same MAC.
        let tables = [
            r#"scheme = "hmac", secret = "k3y!", header = "X-Sig""#,
            r#"scheme = "hmac", secret = "6b337921", header = "X-Sig", secret_encoding = "hex""#,
            r#"scheme = "hmac", secret = "azN5IQ==", header = "X-Sig", secret_encoding = "base64""#,
        ];
        let signed = build(&format!("verify = {{ {} }}", tables[0]))
            .unwrap()
            .sign(b"{}", "", 0)
            .unwrap();
        for t in tables {
            let v = build(&format!("verify = {{ {t} }}")).unwrap();
            assert_eq!(v.verify(&req(&signed, b"{}", 0)).map(|_| ()), Ok(()), "{t}");
        }
        let bad = r#"verify = { scheme = "hmac", secrets = ["00", "zz"], header = "X-Sig", secret_encoding = "hex" }"#;
        assert_eq!(build(bad).unwrap_err().0, "secrets[1]");
        let bad = r#"verify = { scheme = "hmac", secret = "not base64!", header = "X-Sig", secret_encoding = "base64" }"#;
        assert_eq!(build(bad).unwrap_err().0, "secret");
    }

    #[test]
    fn generic_signature_headers_may_list_several_signatures() {
        use crate::verify::testutil::{headers, req};
        let one = build(r#"verify = { scheme = "hmac", secret = "new-secret", header = "X-Sig", prefix = "v1=" }"#).unwrap();
        let signed = one.sign(b"{}", "", 0).unwrap();
        let good = signed.get("x-sig").unwrap().to_str().unwrap().to_owned();
        let v = build(r#"verify = { scheme = "hmac", secrets = ["new-secret"], header = "X-Sig", prefix = "v1=", signature_separator = "," }"#).unwrap();
        let listed = format!("v1=00ff,{good},v1=zz");
        let h = headers(&[("X-Sig", &listed)]);
        assert_eq!(v.verify(&req(&h, b"{}", 0)).map(|_| ()), Ok(()));
        // Without a separator the whole value is one signature, and does not match.
        assert!(one.verify(&req(&h, b"{}", 0)).is_err());
        let none_match = headers(&[("X-Sig", "v1=00ff,v1=zz")]);
        assert!(v.verify(&req(&none_match, b"{}", 0)).is_err());
        let empty = r#"verify = { scheme = "hmac", secret = "s", header = "X-Sig", signature_separator = "" }"#;
        assert_eq!(build(empty).unwrap_err().0, "signature_separator");
    }

    #[test]
    fn url_signing_schemes_need_a_url_they_can_trust() {
        for text in [
            r#"verify = { scheme = "twilio", secret = "t" }"#,
            r#"verify = { scheme = "square", secret = "t" }"#,
            r#"verify = { scheme = "hmac", secret = "t", header = "X-Sig", template = "{url}{body}" }"#,
        ] {
            let (key, reason) = build(text).unwrap_err();
            assert_eq!(key, "public_url", "{text}");
            assert!(reason.contains("trust_forwarded_from"), "{reason}");
        }
        let cases = [
            (
                r#"public_url = "https://a.com/t", trust_forwarded_from = ["10.0.0.1"]"#,
                "trust_forwarded_from",
            ),
            ("trust_forwarded_from = []", "trust_forwarded_from"),
            (
                r#"trust_forwarded_from = ["10.0.0.1", "proxy.internal"]"#,
                "trust_forwarded_from[1]",
            ),
            (
                r#"trust_forwarded_from = ["10.0.0.1", "0.0.0.0/0"], trust_forwarded_headers = ["X-Forwarded-Proto"]"#,
                "trust_forwarded_from[1]",
            ),
            (
                r#"trust_forwarded_from = ["::/0"], trust_forwarded_headers = ["X-Forwarded-Proto"]"#,
                "trust_forwarded_from[0]",
            ),
            (
                r#"trust_forwarded_from = ["10.0.0.1"]"#,
                "trust_forwarded_headers",
            ),
            (
                r#"trust_forwarded_from = ["10.0.0.1"], trust_forwarded_headers = ["X-Forwarded-Host"]"#,
                "trust_forwarded_headers",
            ),
            (
                r#"trust_forwarded_from = ["10.0.0.1"], trust_forwarded_headers = ["X-Forwarded-Proto", "Forwarded"]"#,
                "trust_forwarded_headers[1]",
            ),
            (
                r#"public_url = "https://a.com/t", trust_forwarded_headers = ["X-Forwarded-Proto"]"#,
                "trust_forwarded_headers",
            ),
        ];
        for (extra, key) in cases {
            let text = format!(r#"verify = {{ scheme = "twilio", secret = "t", {extra} }}"#);
            assert_eq!(build(&text).unwrap_err().0, key, "{extra}");
        }
        let trusted = parse(
            r#"verify = { scheme = "twilio", secret = "t", trust_forwarded_from = ["10.0.0.1"], trust_forwarded_headers = ["x-forwarded-proto", "X-Forwarded-Host"] }"#,
        )
        .unwrap();
        assert!(
            matches!(trusted.signed_url(), Ok(SignedUrl::Forwarded(f)) if f.proxies.len() == 1 && f.host_header)
        );
        // Without {url} in the template the keys would do nothing: say so.
        let unused = r#"verify = { scheme = "hmac", secret = "t", header = "X-Sig", public_url = "https://a.com/" }"#;
        assert_eq!(build(unused).unwrap_err().0, "public_url");
    }

    #[test]
    fn hmac_validation() {
        let base = r#"scheme = "hmac"
secret = "s"
"#;
        let cases = [
            ("header = \"bad header\"", "header"),
            ("header = \"X-Sig\"\nprefix = \"caf\u{e9}\"", "prefix"),
            ("header = \"X-Sig\"\ntemplate = \"{body\"", "template"),
            ("header = \"X-Sig\"\ntemplate = \"{timestamp}.{body}\"", "template"),
            ("header = \"X-Sig\"\ntimestamp_header = \"X-Ts\"", "template"),
            ("header = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\ntemplate = \"{body}\"", "template"),
            ("header = \"X-Sig\"\ntimestamp_header = \"X-Sig\"\ntemplate = \"{timestamp}{body}\"", "timestamp_header"),
            ("header = \"X-Sig\"\ntimestamp_header = \"bad name\"\ntemplate = \"{timestamp}{body}\"", "timestamp_header"),
            ("header = \"X-Sig\"\ntolerance = \"1m\"", "tolerance"),
            ("header = \"X-Sig\"\ntemplate = \"{header:X-Sig}{body}\"", "template"),
            ("header = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\ntemplate = \"{timestamp}{body}\"\ntolerance = \"3h\"", "tolerance"),
            ("header = \"X-Sig\"\ntemplate = \"{url}{body}\"\npublic_url = \"nope\"", "public_url"),
        ];
        for (extra, key) in cases {
            let text = format!("[verify]\n{base}{extra}\n");
            assert_eq!(build(&text).unwrap_err().0, key, "{extra}");
        }
    }

    #[test]
    fn public_key_schemes_name_the_bad_key() {
        let bad = r#"verify = { scheme = "discord", public_keys = ["zz"] }"#;
        assert_eq!(build(bad).unwrap_err().0, "public_keys[0]");
        let bad = r#"verify = { scheme = "sendgrid", public_keys = ["AAAA"] }"#;
        assert_eq!(build(bad).unwrap_err().0, "public_keys[0]");
        let none = r#"verify = { scheme = "sendgrid", public_keys = [] }"#;
        assert_eq!(build(none).unwrap_err().0, "public_keys");
    }

    #[test]
    fn basic_needs_user_and_password() {
        let bad = r#"verify = { scheme = "basic", secrets = ["user:pw", "no-colon"] }"#;
        assert_eq!(build(bad).unwrap_err().0, "secrets[1]");
        let bad = r#"verify = { scheme = "token", secret = "t", header = "bad header" }"#;
        assert_eq!(build(bad).unwrap_err().0, "header");
        assert!(parse(r#"verify = { scheme = "token", secret = "t" }"#).is_err());
    }

    #[test]
    fn secret_refs_lists_every_reference() {
        let config =
            parse(r#"verify = { scheme = "twitch", secrets = ["${A}", "file:/b", "c"] }"#).unwrap();
        let refs = config.secret_refs();
        assert_eq!(refs.len(), 3);
        assert_eq!(refs.iter().filter(|r| r.is_literal()).count(), 1);
        let single = parse(r#"verify = { scheme = "gitlab", secret = "${A}" }"#).unwrap();
        assert_eq!(single.secret_refs().len(), 1);
        assert!(parse(r#"verify = { scheme = "none" }"#)
            .unwrap()
            .secret_refs()
            .is_empty());
    }
}
