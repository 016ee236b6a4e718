//! The keys a `verify` table may hold, written once, and the shapes that say which of
//! them a scheme takes ([`Shape`]). A scheme's row in the [registry](crate::verify::registry)
//! names its shape; parsing rejects any key outside it (e.g. `tolerance` for GitHub,
//! which signs no timestamp) rather than ignoring it.
//!
//! The secret shape — `secret = "…"` or `secrets = ["…", …]`, any one valid (rotation) —
//! is [`Listed`]: its rules (one or the other, not both, not empty, each reference
//! resolved) and the key its errors name live there only.

use std::time::Duration;

use http::header::HeaderName;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::BuildError;
use crate::config::secret::{Secret, SecretRef};
use crate::verify::crypto::{secret_key, Algorithm, Key};
use crate::verify::recipe::Encoding;

/// Largest accepted `tolerance`: beyond an hour replay protection means little.
pub const MAX_TOLERANCE: Duration = Duration::from_secs(3600);

/// A build error with its key relative to the `verify` table.
pub fn err(key: impl Into<String>, reason: impl Into<String>) -> BuildError {
    (key.into(), reason.into())
}

/// Which keys a scheme's table takes besides `scheme`; every scheme has one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `scheme = "none"` takes no other keys.
    None,
    /// `secret` / `secrets`.
    Secrets,
    /// Secrets plus a replay window, `tolerance` (humantime, e.g. `"5m"`).
    Timed,
    /// GitHub: secrets and `allow_sha1`.
    Github,
    /// Secrets plus where the signed URL comes from: `public_url`, or
    /// `trust_forwarded_from` with `trust_forwarded_headers` (Twilio, Square, HubSpot).
    Url,
    /// The configurable HMAC.
    Hmac,
    /// Public keys (not secrets, so plain strings) and an optional `tolerance`.
    PublicKeys,
    /// Secrets compared with a configured `header`.
    Token,
    /// Azure Event Grid: a token `header` and the `topics` whose validation is answered.
    EventGrid,
    /// Meta: app secrets, and the verify token(s) of its GET subscription.
    Meta,
    /// Google Pub/Sub push: the token's `audience`, `jwks_url`, the service account
    /// `email`, and `tolerance` (clock leeway).
    PubSub,
    /// Amazon SNS: the `topics` accepted, `cert_hosts`, `confirm_subscriptions`.
    Sns,
}

const SECRETS: [&str; 2] = ["secret", "secrets"];
const URL: [&str; 3] = [
    "public_url",
    "trust_forwarded_from",
    "trust_forwarded_headers",
];

impl Shape {
    /// The keys, in the order error messages list them.
    pub fn keys(self) -> &'static [&'static str] {
        const TIMED: [&str; 3] = [SECRETS[0], SECRETS[1], "tolerance"];
        const GITHUB: [&str; 3] = [SECRETS[0], SECRETS[1], "allow_sha1"];
        const WITH_URL: [&str; 5] = [SECRETS[0], SECRETS[1], URL[0], URL[1], URL[2]];
        const HMAC: [&str; 14] = [
            SECRETS[0],
            SECRETS[1],
            "header",
            "prefix",
            "algorithm",
            "encoding",
            "timestamp_header",
            "template",
            "tolerance",
            URL[0],
            "secret_encoding",
            "signature_separator",
            URL[1],
            URL[2],
        ];
        const TOKEN: [&str; 3] = [SECRETS[0], SECRETS[1], "header"];
        const EVENT_GRID: [&str; 4] = [SECRETS[0], SECRETS[1], "header", "topics"];
        const META: [&str; 4] = [SECRETS[0], SECRETS[1], "verify_token", "verify_tokens"];
        const PUBSUB: [&str; 4] = ["audience", "jwks_url", "email", "tolerance"];
        const SNS: [&str; 3] = ["topics", "cert_hosts", "confirm_subscriptions"];
        match self {
            Shape::None => &[],
            Shape::Secrets => &SECRETS,
            Shape::Timed => &TIMED,
            Shape::Github => &GITHUB,
            Shape::Url => &WITH_URL,
            Shape::Hmac => &HMAC,
            Shape::PublicKeys => &["public_keys", "tolerance"],
            Shape::Token => &TOKEN,
            Shape::EventGrid => &EVENT_GRID,
            Shape::Meta => &META,
            Shape::PubSub => &PUBSUB,
            Shape::Sns => &SNS,
        }
    }

    /// The keys that must be present.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Shape::Hmac | Shape::Token => &["header"],
            Shape::EventGrid => &["header", "topics"],
            Shape::PublicKeys => &["public_keys"],
            Shape::PubSub => &["audience"],
            Shape::Sns => &["topics"],
            _ => &[],
        }
    }

    /// Whether the sender signs the URL it calls, so the handler must know it.
    pub fn signs_url(self, table: &Table) -> bool {
        match self {
            Shape::Url => true,
            Shape::Hmac => (table.template.as_deref())
                .and_then(|t| crate::verify::template::Template::parse(t).ok())
                .is_some_and(|t| t.uses_url()),
            _ => false,
        }
    }
}

/// How a generic HMAC secret is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
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

/// Every key any scheme takes; which ones a table may hold is its [`Shape`]'s business.
/// `docs/providers.md` documents each for the schemes that take it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The scheme name as written (an alias reads back as its scheme).
    pub scheme: Option<String>,
    /// A single secret reference.
    pub secret: Option<SecretRef>,
    /// Several secret references (rotation: any one valid is valid).
    pub secrets: Option<Vec<SecretRef>>,
    /// How far the signed timestamp may be from now, either way (humantime, e.g. "5m").
    pub tolerance: Option<String>,
    /// GitHub: accept the legacy `X-Hub-Signature: sha1=…` when the SHA-256 header is
    /// absent.
    pub allow_sha1: Option<bool>,
    /// The URL as configured at the provider, e.g. `"https://hooks.example.com/twilio"`.
    pub public_url: Option<String>,
    /// Proxies (addresses or CIDR networks) whose forwarded headers give the signed URL
    /// instead of `public_url`; requests from anywhere else fail.
    pub trust_forwarded_from: Option<Vec<String>>,
    /// The forwarded headers those proxies set themselves: `X-Forwarded-Proto`, and
    /// `X-Forwarded-Host` only when the proxy overwrites it.
    pub trust_forwarded_headers: Option<Vec<String>>,
    /// The header carrying the signature (`hmac`) or the secret (`token`, Event Grid).
    pub header: Option<String>,
    /// `hmac`: text before the encoded MAC, e.g. `"sha256="` (default empty).
    pub prefix: Option<String>,
    /// `hmac`: `sha1`, `sha256` (default) or `sha512`.
    pub algorithm: Option<Algorithm>,
    /// `hmac`: `hex` (default) or `base64`.
    pub encoding: Option<Encoding>,
    /// `hmac`: header carrying a Unix-seconds timestamp that the template signs.
    pub timestamp_header: Option<String>,
    /// `hmac`: signed content (default `"{body}"`; required with `timestamp_header`).
    pub template: Option<String>,
    /// `hmac`: how each secret is written: `text` (default), `hex` or `base64`.
    pub secret_encoding: Option<SecretEncoding>,
    /// `hmac`: the signature header lists several signatures separated by this.
    pub signature_separator: Option<String>,
    /// Discord (hex) and SendGrid (base64 DER) public keys.
    pub public_keys: Option<Vec<String>>,
    /// Azure Event Grid: resource ids (or prefixes) of the topics this source takes;
    /// Amazon SNS: the topic ARNs it takes.
    pub topics: Option<Vec<String>>,
    /// Meta: the verify token entered in the app's webhook settings.
    pub verify_token: Option<SecretRef>,
    /// Meta: several verify tokens (rotation).
    pub verify_tokens: Option<Vec<SecretRef>>,
    /// Google Pub/Sub: the audience set on the push subscription (the token's `aud`).
    pub audience: Option<String>,
    /// Google Pub/Sub: where the token signing keys (JWKS) are fetched from.
    pub jwks_url: Option<String>,
    /// Google Pub/Sub: the push subscription's service account (the token's `email`).
    pub email: Option<String>,
    /// Amazon SNS: the hosts (`{region}` placeholder) certificates are fetched from.
    pub cert_hosts: Option<Vec<String>>,
    /// Amazon SNS: visit a verified `SubscribeURL` to confirm the subscription.
    pub confirm_subscriptions: Option<bool>,
}

impl Table {
    /// Reads a table's keys in one pass; which are allowed is checked once the scheme is
    /// known (it need not come first: TOML hands keys over sorted). A key the scheme does
    /// not take is never read as a value, so its refusal names the key (`from_table`)
    /// rather than a type it would have had for another scheme; keys met before the
    /// scheme are held as plain values until it is known. Returns the keys present, in
    /// order.
    pub fn read<'de, A: MapAccess<'de>>(mut map: A) -> Result<(Table, Vec<String>), A::Error> {
        let mut t = Table::default();
        let mut present: Vec<String> = Vec::new();
        let mut held: Vec<(String, serde_json::Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if present.contains(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            match t.scheme.as_deref().and_then(crate::verify::registry::find) {
                Some(scheme) if !takes(scheme, &key) => {
                    map.next_value::<IgnoredAny>()?;
                }
                None if key != "scheme" => held.push((key.clone(), map.next_value()?)),
                _ => map.next_value_seed(Assign {
                    table: &mut t,
                    key: &key,
                })?,
            }
            present.push(key);
        }
        let scheme = t.scheme.as_deref().and_then(crate::verify::registry::find);
        for (key, value) in held {
            if scheme.is_some_and(|s| !takes(s, &key)) {
                continue;
            }
            (Assign {
                table: &mut t,
                key: &key,
            })
            .deserialize(value)
            .map_err(|e| de::Error::custom(format_args!("{e} for key `{key}`")))?;
        }
        Ok((t, present))
    }

    /// `secret` / `secrets`.
    pub fn secrets(&self) -> Listed<'_> {
        Listed {
            one: &self.secret,
            many: &self.secrets,
            name: "secret",
        }
    }

    /// Meta's `verify_token` / `verify_tokens`.
    pub fn verify_tokens(&self) -> Listed<'_> {
        Listed {
            one: &self.verify_token,
            many: &self.verify_tokens,
            name: "verify_token",
        }
    }

    /// The secrets' text as MAC keys.
    pub fn text_keys(&self) -> Result<Vec<Key>, BuildError> {
        Ok(self.secrets().resolve()?.iter().map(secret_key).collect())
    }

    /// The secrets of a scheme whose sender puts the secret itself in a header (a shared
    /// token, a bearer token), as keys. A secret no header can carry as it is (whitespace
    /// at either end, which HTTP drops from a field value, such as the newline of a
    /// secret file written with `echo`; a control character) would refuse every request
    /// with 401: it is refused here, naming its key, never showing it.
    pub fn header_keys(&self) -> Result<Vec<Key>, BuildError> {
        let listed = self.secrets();
        let values = listed.resolve()?;
        for (i, value) in values.iter().enumerate() {
            if let Some(reason) = header_secret_problem(value.expose()) {
                return Err(err(listed.key(i), reason));
            }
        }
        Ok(values.iter().map(secret_key).collect())
    }

    /// `tolerance`, or the scheme's default.
    pub fn tolerance(&self, default: Duration) -> Result<Duration, BuildError> {
        let Some(raw) = &self.tolerance else {
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

    /// `header`, which the scheme's shape requires, as a header name.
    pub fn header(&self) -> Result<HeaderName, BuildError> {
        header_name("header", self.header.as_deref().unwrap_or_default())
    }

    /// Every secret reference, so `check` can warn about literal ones.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        (self.secrets().refs())
            .chain(self.verify_tokens().refs())
            .collect()
    }
}

/// A header name from config, or an error naming `key`.
pub fn header_name(key: &str, raw: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(raw.trim().as_bytes())
        .map_err(|_| err(key, "is not a valid HTTP header name"))
}

/// `<name> = "…"` or `<name>s = ["…", …]`: one reference or a list (rotation).
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    one: &'a Option<SecretRef>,
    many: &'a Option<Vec<SecretRef>>,
    name: &'static str,
}

impl<'a> Listed<'a> {
    /// The references as written.
    pub fn refs(self) -> impl Iterator<Item = &'a SecretRef> {
        self.one.iter().chain(self.many.iter().flatten())
    }

    /// The key naming value `index` in errors: `secret` or `secrets[i]`.
    pub fn key(self, index: usize) -> String {
        if self.one.is_some() {
            self.name.to_owned()
        } else {
            format!("{}s[{index}]", self.name)
        }
    }

    /// The values, resolved; errors name the key and never hold a value.
    pub fn resolve(self) -> Result<Vec<Secret>, BuildError> {
        let (name, plural) = (self.name, format!("{}s", self.name));
        match (self.one, self.many) {
            (Some(_), Some(_)) => Err(err(
                name,
                format!("set either {name} or {plural}, not both"),
            )),
            (None, None) => Err(err(plural, format!("at least one {name} is required"))),
            (Some(one), None) => Ok(vec![one.resolve().map_err(|e| err(name, e.to_string()))?]),
            (None, Some(list)) if list.is_empty() => {
                Err(err(plural, format!("must list at least one {name}")))
            }
            (None, Some(list)) => (list.iter().enumerate())
                .map(|(i, r)| r.resolve().map_err(|e| err(self.key(i), e.to_string())))
                .collect(),
        }
    }
}

/// Why a secret sent as a header's value can never arrive as it is, if it cannot.
pub fn header_secret_problem(secret: &str) -> Option<&'static str> {
    if secret.trim_matches([' ', '\t', '\r', '\n']) != secret {
        return Some("starts or ends with whitespace, which no request header can carry: a sender's header never matches it (a secret file's trailing newline? only one is trimmed)");
    }
    if secret
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Some("holds a control character, which no request header can carry: a sender's header never matches it");
    }
    None
}

/// Whether `scheme`'s table takes `key`.
fn takes(scheme: &crate::verify::registry::Scheme, key: &str) -> bool {
    key == "scheme" || scheme.shape.keys().contains(&key)
}

/// Reads one key's value into its field of the table: the one list of the keys a
/// `verify` table may hold, each with its type.
struct Assign<'a> {
    table: &'a mut Table,
    key: &'a str,
}

impl<'de> DeserializeSeed<'de> for Assign<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        fn some<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<T>, D::Error> {
            T::deserialize(d).map(Some)
        }
        let t = self.table;
        match self.key {
            "scheme" => t.scheme = some(d)?,
            "secret" => t.secret = some(d)?,
            "secrets" => t.secrets = some(d)?,
            "tolerance" => t.tolerance = some(d)?,
            "allow_sha1" => t.allow_sha1 = some(d)?,
            "public_url" => t.public_url = some(d)?,
            "trust_forwarded_from" => t.trust_forwarded_from = some(d)?,
            "trust_forwarded_headers" => t.trust_forwarded_headers = some(d)?,
            "header" => t.header = some(d)?,
            "prefix" => t.prefix = some(d)?,
            "algorithm" => t.algorithm = some(d)?,
            "encoding" => t.encoding = some(d)?,
            "timestamp_header" => t.timestamp_header = some(d)?,
            "template" => t.template = some(d)?,
            "secret_encoding" => t.secret_encoding = some(d)?,
            "signature_separator" => t.signature_separator = some(d)?,
            "public_keys" => t.public_keys = some(d)?,
            "topics" => t.topics = some(d)?,
            "verify_token" => t.verify_token = some(d)?,
            "verify_tokens" => t.verify_tokens = some(d)?,
            "audience" => t.audience = some(d)?,
            "jwks_url" => t.jwks_url = some(d)?,
            "email" => t.email = some(d)?,
            "cert_hosts" => t.cert_hosts = some(d)?,
            "confirm_subscriptions" => t.confirm_subscriptions = some(d)?,
            // Refused by name once the scheme is known (`from_table`).
            _ => {
                IgnoredAny::deserialize(d)?;
            }
        }
        Ok(())
    }
}

/// Reads a `verify` table: [`Table::read`] through serde, for [`super::VerifyConfig`].
pub(super) struct TableVisitor;

impl<'de> Visitor<'de> for TableVisitor {
    type Value = super::VerifyConfig;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a verify table such as { scheme = \"github\", secrets = [\"…\"] }")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let (table, present) = Table::read(map)?;
        super::VerifyConfig::from_table(table, &present)
    }
}

/// Deserializes a `verify` table (see [`TableVisitor`]).
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<super::VerifyConfig, D::Error> {
    d.deserialize_map(TableVisitor)
}
