//! Building a scheme's [`Verifier`] from its validated table: one constructor per
//! scheme that needs more than a recipe, named by its [registry](crate::verify::registry)
//! row. Errors are `(key, reason)` with the key relative to the `verify` table, and
//! never hold a secret value.

use base64::Engine as _;

use super::table::{err, header_name, SecretEncoding, Table, MAX_TOLERANCE};
use super::BuildError;
use crate::config::secret::Secret;
use crate::signature::ed25519::PublicKey;
use crate::verify::crypto::{secret_key, Algorithm, Key};
use crate::verify::generic::{self, GenericHmac, RecipeError};
use crate::verify::recipe::Recipe;
use crate::verify::registry::github;
use crate::verify::template::Template;
use crate::verify::token::SharedToken;
use crate::verify::{
    discord, eventgrid, gitlab, keys, linear, mailgun, meta, msgraph, pubsub, sendgrid, sns,
    standard, twilio, twitch, Verifier,
};

/// A scheme's constructor.
pub type BuildFn = fn(&Table) -> Result<Verifier, BuildError>;

/// How a registry row builds its verifier.
#[derive(Debug, Clone, Copy)]
pub enum Build {
    /// An HMAC provider that is only a recipe: the secrets' text as keys, `tolerance`
    /// (when its shape has one) over the recipe's default.
    Recipe(&'static Recipe),
    /// Its own constructor.
    With(BuildFn),
}

impl Build {
    /// The verifier for `table`.
    pub fn run(&self, table: &Table) -> Result<Verifier, BuildError> {
        match self {
            Build::Recipe(recipe) => {
                let tolerance = table.tolerance(recipe.default_tolerance)?;
                hmac_recipe(recipe.build(table.text_keys()?, Some(tolerance), &[]))
            }
            Build::With(build) => build(table),
        }
    }
}

/// A recipe that does not build is a bug, reported as such.
fn hmac_recipe(built: Result<GenericHmac, RecipeError>) -> Result<Verifier, BuildError> {
    built
        .map(Verifier::Hmac)
        .map_err(|e| err("scheme", e.to_string()))
}

pub fn github(t: &Table) -> Result<Verifier, BuildError> {
    hmac_recipe(github::build(t.text_keys()?, t.allow_sha1.unwrap_or(false)))
}

pub fn twilio(t: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::Twilio(twilio::Twilio::new(t.text_keys()?)))
}

pub fn linear(t: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::Linear(linear::Linear::new(
        t.text_keys()?,
        t.tolerance(linear::DEFAULT_TOLERANCE)?,
    )))
}

pub fn twitch(t: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::Twitch(twitch::Twitch::new(
        t.text_keys()?,
        t.tolerance(twitch::DEFAULT_TOLERANCE)?,
    )))
}

pub fn mailgun(t: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::Mailgun(mailgun::Mailgun::new(
        t.text_keys()?,
        t.tolerance(mailgun::DEFAULT_TOLERANCE)?,
    )))
}

pub fn microsoft_graph(t: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::MsGraph(msgraph::MsGraph::new(t.text_keys()?)))
}

pub fn azure_event_grid(t: &Table) -> Result<Verifier, BuildError> {
    let token = SharedToken::token("azure-event-grid", t.header()?, None, &t.header_keys()?);
    let topics = eventgrid::topics(t.topics.as_deref().unwrap_or_default())
        .map_err(|reason| err("topics", reason))?;
    Ok(Verifier::EventGrid(eventgrid::EventGrid::new(
        token, topics,
    )))
}

pub fn token(t: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::Token(SharedToken::token(
        "token",
        t.header()?,
        None,
        &t.header_keys()?,
    )))
}

pub fn bearer(t: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::Token(SharedToken::bearer(&t.header_keys()?)))
}

pub fn basic(t: &Table) -> Result<Verifier, BuildError> {
    let keys = t.text_keys()?;
    if let Some(i) = keys.iter().position(|k| !k.as_bytes().contains(&b':')) {
        return Err(err(t.secrets().key(i), "must be user:password"));
    }
    Ok(Verifier::Token(SharedToken::basic(&keys)))
}

pub fn none(_: &Table) -> Result<Verifier, BuildError> {
    Ok(Verifier::None)
}

/// Meta: app secrets sign events; verify tokens answer the GET subscription.
pub fn meta(t: &Table) -> Result<Verifier, BuildError> {
    let secrets = t.text_keys()?;
    let tokens = t
        .verify_tokens()
        .resolve()?
        .iter()
        .map(secret_key)
        .collect();
    meta::Meta::new(secrets, tokens)
        .map(Verifier::Meta)
        .map_err(|e| err("scheme", e.to_string()))
}

/// Standard Webhooks: `whsec_…` secrets verify `v1` signatures, `whpk_…` public keys
/// `v1a` (Ed25519) ones.
pub fn standard_webhooks(t: &Table) -> Result<Verifier, BuildError> {
    let listed = t.secrets();
    let (mut keys, mut public_keys) = (Vec::new(), Vec::new());
    for (i, value) in listed.resolve()?.iter().enumerate() {
        if value.expose().starts_with("whpk_") {
            let key = standard::decode_public_key(value.expose()).ok_or_else(|| {
                err(
                    listed.key(i),
                    "is not a Standard Webhooks public key (whpk_ followed by base64 of 32 bytes)",
                )
            })?;
            public_keys.push(key);
        } else {
            keys.push(standard_key(value, listed.key(i))?);
        }
    }
    let verifier = standard::StandardWebhooks::new(keys, t.tolerance(standard::DEFAULT_TOLERANCE)?)
        .with_public_keys(public_keys);
    Ok(Verifier::StandardWebhooks(verifier))
}

/// GitLab: `whsec_…` secrets are signing tokens (Standard Webhooks keys), the others
/// plain secret tokens.
pub fn gitlab(t: &Table) -> Result<Verifier, BuildError> {
    let listed = t.secrets();
    let values = listed.resolve()?;
    let (mut tokens, mut signing) = (Vec::new(), Vec::new());
    for (i, value) in values.iter().enumerate() {
        if value.expose().starts_with("whsec_") {
            signing.push(standard_key(value, listed.key(i))?);
        } else if let Some(reason) = super::table::header_secret_problem(value.expose()) {
            return Err(err(listed.key(i), reason));
        } else {
            tokens.push(secret_key(value));
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
fn standard_key(value: &Secret, key: String) -> Result<Key, BuildError> {
    standard::decode_secret(value.expose()).ok_or_else(|| {
        err(
            key,
            "is not a Standard Webhooks secret (expected whsec_ followed by base64)",
        )
    })
}

pub fn discord(t: &Table) -> Result<Verifier, BuildError> {
    discord_kind(t, discord::Kind::Interactions)
}

pub fn discord_events(t: &Table) -> Result<Verifier, BuildError> {
    discord_kind(t, discord::Kind::Events)
}

/// Discord: every public key must be 32 bytes of hex.
fn discord_kind(t: &Table, kind: discord::Kind) -> Result<Verifier, BuildError> {
    let keys = public_keys(t, "public key", |text| {
        PublicKey::from_hex(text).ok_or("is not an Ed25519 public key (64 hex digits)")
    })?;
    Ok(Verifier::Discord(discord::Discord::new(
        keys,
        t.tolerance(discord::DEFAULT_TOLERANCE)?,
        kind,
    )))
}

/// SendGrid: every key must be an EC public key; no window unless `tolerance` is set.
pub fn sendgrid(t: &Table) -> Result<Verifier, BuildError> {
    let keys = public_keys(t, "verification key", |text| {
        sendgrid::VerificationKey::from_base64(text)
            .ok_or("is not an ECDSA verification key (base64 of DER SubjectPublicKeyInfo)")
    })?;
    let window = match &t.tolerance {
        Some(_) => Some(t.tolerance(MAX_TOLERANCE)?),
        None => None,
    };
    Ok(Verifier::Sendgrid(sendgrid::Sendgrid::new(keys, window)))
}

/// Google Pub/Sub push: the audience is required (a token for any other push endpoint
/// must not pass); keys from Google's JWKS unless `jwks_url` names another.
pub fn google_pubsub(t: &Table) -> Result<Verifier, BuildError> {
    let audience = t.audience.as_deref().unwrap_or_default().trim();
    if audience.is_empty() {
        return Err(err(
            "audience",
            "must be the audience set on the push subscription",
        ));
    }
    let raw = t.jwks_url.as_deref().unwrap_or(pubsub::GOOGLE_JWKS_URL);
    let jwks_url = keys::key_url(raw, |_| true).map_err(|e| err("jwks_url", e.to_string()))?;
    // Required: Google issues ID tokens for any audience to any service account of any
    // project, so without the subscription's own account a stranger's token passes.
    let email = match t.email.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(err(
                "email",
                "must be the push subscription's service account (any Google Cloud account can get a token for this audience)",
            ))
        }
        Some(e) => Some(e.to_owned()),
    };
    Ok(Verifier::GooglePubSub(pubsub::GooglePubSub::new(
        audience.to_owned(),
        jwks_url,
        email,
        t.tolerance(pubsub::DEFAULT_TOLERANCE)?,
    )))
}

/// Amazon SNS: topic ARNs (a message for any other topic is refused before its
/// certificate is fetched); certificate hosts, each a host or `host:port` that may hold
/// `{region}`.
pub fn aws_sns(t: &Table) -> Result<Verifier, BuildError> {
    let topics = t.topics.clone().unwrap_or_default();
    if topics.is_empty() {
        return Err(err(
            "topics",
            "must list the topic ARNs this source takes messages from",
        ));
    }
    if let Some(i) = topics
        .iter()
        .position(|a| !a.starts_with("arn:") || a.split(':').count() != 6)
    {
        return Err(err(
            format!("topics[{i}]"),
            "is not a topic ARN (arn:aws:sns:<region>:<account>:<name>)",
        ));
    }
    let hosts = t.cert_hosts.clone().unwrap_or_default();
    if t.cert_hosts.is_some() && hosts.is_empty() {
        return Err(err("cert_hosts", "must list at least one host"));
    }
    let valid_host = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:{}[]".contains(&b))
    };
    if let Some(i) = hosts.iter().position(|h| !valid_host(h)) {
        return Err(err(
            format!("cert_hosts[{i}]"),
            "is not a host or host:port",
        ));
    }
    Ok(Verifier::Sns(sns::Sns::new(
        topics,
        hosts,
        t.confirm_subscriptions.unwrap_or(false),
    )))
}

/// `public_keys`, each parsed; errors name the bad one.
fn public_keys<K>(
    t: &Table,
    what: &str,
    parse: impl Fn(&str) -> Result<K, &'static str>,
) -> Result<Vec<K>, BuildError> {
    let texts = t.public_keys.as_deref().unwrap_or_default();
    if texts.is_empty() {
        return Err(err("public_keys", format!("must list at least one {what}")));
    }
    (texts.iter().enumerate())
        .map(|(i, text)| parse(text).map_err(|reason| err(format!("public_keys[{i}]"), reason)))
        .collect()
}

/// The generic scheme's keys, decoded per `secret_encoding`; errors name the secret.
fn encoded_keys(t: &Table) -> Result<Vec<Key>, BuildError> {
    let encoding = t.secret_encoding.unwrap_or_default();
    let listed = t.secrets();
    let values = listed.resolve()?;
    (values.iter().enumerate())
        .map(|(i, value)| {
            let text = value.expose();
            let (decoded, name) = match encoding {
                SecretEncoding::Text => return Ok(secret_key(value)),
                SecretEncoding::Hex => (hex::decode(text).ok(), "hex"),
                SecretEncoding::Base64 => (
                    base64::engine::general_purpose::STANDARD.decode(text).ok(),
                    "base64",
                ),
            };
            match decoded {
                Some(bytes) if !bytes.is_empty() => Ok(Key::new(bytes)),
                _ => Err(err(
                    listed.key(i),
                    format!("is not {name} (secret_encoding)"),
                )),
            }
        })
        .collect()
}

/// The configurable HMAC: the template must sign the body once, and the timestamp when
/// there is one; the signature header cannot sign itself.
pub fn hmac(t: &Table) -> Result<Verifier, BuildError> {
    let keys = encoded_keys(t)?;
    let header = t.header()?;
    let prefix = t.prefix.clone().unwrap_or_default();
    if !prefix.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(err("prefix", "must be printable ASCII"));
    }
    let timestamp_header = match &t.timestamp_header {
        Some(raw) => Some(header_name("timestamp_header", raw)?),
        None => None,
    };
    let template = match (&t.template, &timestamp_header) {
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
            Some((ts_header, t.tolerance(generic::DEFAULT_TOLERANCE)?))
        }
        None => {
            if template.uses_timestamp() {
                return Err(err(
                    "template",
                    "uses {timestamp} but timestamp_header is not set",
                ));
            }
            if t.tolerance.is_some() {
                return Err(err("tolerance", "only applies with timestamp_header"));
            }
            None
        }
    };
    if t.signature_separator.as_deref() == Some("") {
        return Err(err("signature_separator", "must not be empty"));
    }
    Ok(Verifier::Hmac(
        GenericHmac::new(
            keys,
            header,
            prefix,
            t.algorithm.unwrap_or(Algorithm::Sha256),
            t.encoding.unwrap_or_default(),
            timestamp,
            template,
        )
        .with_separator(t.signature_separator.clone()),
    ))
}
