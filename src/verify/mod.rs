//! Webhook signature verification: one [`Verifier`] per source, built from the
//! connector file's `verify = { scheme = "…", … }` table ([`VerifyConfig`]).
//!
//! Every scheme verifies the raw body bytes in constant time, accepts any of several
//! configured secrets (rotation), and — where the provider signs a timestamp — rejects
//! requests outside a tolerance window in both directions (replay protection). The set
//! of providers is closed, so dispatch is a `match` over an enum rather than `dyn`.

pub mod config;
pub mod crypto;
pub mod discord;
pub mod eventgrid;
pub mod generic;
pub mod gitlab;
pub mod keys;
pub mod linear;
pub mod mailgun;
pub mod meta;
pub mod msgraph;
pub mod pubsub;
pub mod recipe;
pub mod registry;
pub mod sendgrid;
pub mod sns;
pub mod standard;
pub mod template;
pub mod token;
pub mod twilio;
pub mod twitch;
pub mod url;

pub use config::VerifyConfig;
pub use url::SignedUrl;

/// What a verifier sees of one HTTP request. Body is the raw bytes, unparsed.
#[derive(Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The request headers as received.
    pub headers: &'a http::HeaderMap,
    /// The raw body bytes, exactly as received.
    pub body: &'a [u8],
    /// The full URL the sender signed (scheme://host[:port]/path?query). The HTTP handler
    /// builds it (from a configured public URL when behind a proxy). Only Twilio and
    /// Square (and a generic template using `{url}`) use it.
    pub url: &'a str,
    /// Unix seconds, now. Injected so tests are deterministic.
    pub now: i64,
}

impl std::fmt::Debug for WebhookRequest<'_> {
    /// Header names only: some schemes carry a secret in a header value (GitLab's token).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .field("url", &self.url)
            .field("now", &self.now)
            .finish()
    }
}

/// Why a request was rejected. Each variant maps to a short static [`reason`](Self::reason)
/// for metrics labels; none carries request data or secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but not in the provider's format.
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    /// The signed timestamp is too old or too far in the future.
    #[error("timestamp outside tolerance")]
    StaleTimestamp,
    /// No configured secret produces any of the signatures sent.
    #[error("signature does not match")]
    Mismatch,
    /// Twilio: the signature is valid but the body does not hash to the URL's `bodySHA256`.
    #[error("body does not match the signed body digest")]
    BodyDigestMismatch,
    /// A field the scheme reads from the body (Linear's `webhookTimestamp`) is missing
    /// or not in the expected form.
    #[error("malformed body field {0}")]
    MalformedBody(&'static str),
    /// Twilio: a non-form body without a `bodySHA256` URL parameter would not be covered
    /// by the signature at all.
    #[error("request body is not covered by the signature")]
    UnsignedBody,
    /// Twilio: the form has more parameters than any Twilio webhook carries.
    #[error("too many form parameters")]
    TooManyParameters,
    /// Twilio: one form parameter is larger than any Twilio webhook sends.
    #[error("form parameter too large")]
    ParameterTooLarge,
    /// Mailgun: a signature's token was already used with another body (Mailgun does not
    /// sign the body).
    #[error("signature token already used with another body")]
    ReplayedToken,
    /// The key the request names is not in the provider's published key set.
    #[error("signing key not published")]
    UnknownKey,
    /// A signed token's claim (issuer, audience, service account) is not the expected one.
    #[error("token claim {0} not accepted")]
    Claim(&'static str),
}

impl VerifyError {
    /// A short, stable label for metrics (`hookbridge_signature_failures_total{reason=…}`).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::MalformedHeader(_) => "malformed_header",
            VerifyError::StaleTimestamp => "stale_timestamp",
            VerifyError::Mismatch => "mismatch",
            VerifyError::BodyDigestMismatch => "body_digest_mismatch",
            VerifyError::MalformedBody(_) => "malformed_body",
            VerifyError::UnsignedBody => "unsigned_body",
            VerifyError::TooManyParameters => "too_many_parameters",
            VerifyError::ParameterTooLarge => "parameter_too_large",
            VerifyError::ReplayedToken => "replayed_token",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::Claim(_) => "claim",
        }
    }
}

/// A request whose signature verified: produced records are made only from one, and
/// handshakes answer only one, so unverified bytes cannot reach Kafka or be echoed to a
/// provider by construction. Only [`Verifier::verify`] makes it.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    request: WebhookRequest<'a>,
}

impl<'a> Verified<'a> {
    /// The verified body, byte for byte as received.
    pub fn body(&self) -> &'a [u8] {
        self.request.body
    }

    /// The whole request that verified.
    pub fn request(&self) -> &WebhookRequest<'a> {
        &self.request
    }
}

impl PartialEq for Verified<'_> {
    /// Two verdicts are equal when they let the same bytes through.
    fn eq(&self, other: &Self) -> bool {
        self.body() == other.body()
    }
}

impl Eq for Verified<'_> {}

/// A response the HTTP handler must send instead of producing the request to Kafka
/// (a provider's endpoint-ownership challenge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// HTTP status code.
    pub status: u16,
    /// Value of the `Content-Type` response header.
    pub content_type: &'static str,
    /// Response body.
    pub body: bytes::Bytes,
}

impl Handshake {
    fn text(challenge: String) -> Self {
        Handshake {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: bytes::Bytes::from(challenge),
        }
    }

    fn json(value: &serde_json::Value) -> Option<Self> {
        Some(Handshake {
            status: 200,
            content_type: "application/json",
            body: bytes::Bytes::from(serde_json::to_vec(value).ok()?),
        })
    }

    /// The request is a handshake but lacks the field to answer with: refuse it rather
    /// than forward a control message to Kafka.
    fn forbidden(what: &'static str) -> Self {
        Handshake {
            status: 403,
            content_type: "text/plain; charset=utf-8",
            body: bytes::Bytes::from_static(what.as_bytes()),
        }
    }

    /// 204, no body (Discord's webhook events are acknowledged this way).
    fn no_content() -> Self {
        Handshake {
            status: 204,
            content_type: "text/plain; charset=utf-8",
            body: bytes::Bytes::new(),
        }
    }

    fn bad_request(what: &'static str) -> Self {
        Handshake {
            status: 400,
            content_type: "text/plain; charset=utf-8",
            body: bytes::Bytes::from_static(what.as_bytes()),
        }
    }
}

/// A built, ready-to-use verifier. `Debug` never shows secrets.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Standard Webhooks / Svix `webhook-signature`.
    StandardWebhooks(standard::StandardWebhooks),
    /// GitLab `X-Gitlab-Token`.
    Gitlab(gitlab::Gitlab),
    /// Twilio `X-Twilio-Signature`.
    Twilio(twilio::Twilio),
    /// Linear `Linear-Signature`.
    Linear(linear::Linear),
    /// Mailgun: timestamp + token HMAC in the body.
    Mailgun(mailgun::Mailgun),
    /// Microsoft Graph change notifications: `clientState`, `validationToken`.
    MsGraph(msgraph::MsGraph),
    /// Azure Event Grid: a secret static header, and the validation handshake.
    EventGrid(eventgrid::EventGrid),
    /// Twitch EventSub `Twitch-Eventsub-Message-Signature`.
    Twitch(twitch::Twitch),
    /// One HMAC over a template: a provider recipe (GitHub, Stripe, Slack, Shopify,
    /// Paddle, Square, Zoom, HubSpot, Calendly, WorkOS) or the configurable
    /// `scheme = "hmac"`.
    Hmac(generic::GenericHmac),
    /// Discord interactions or webhook events (Ed25519).
    Discord(discord::Discord),
    /// Meta (WhatsApp, Messenger, Instagram): GitHub's HMAC plus a GET subscription.
    Meta(meta::Meta),
    /// SendGrid Event Webhook (ECDSA P-256).
    Sendgrid(sendgrid::Sendgrid),
    /// Google Pub/Sub push: an RS256 OIDC token checked with Google's published keys.
    GooglePubSub(pubsub::GooglePubSub),
    /// Amazon SNS: messages signed with the certificate at their `SigningCertURL`.
    Sns(sns::Sns),
    /// A header equal to a shared secret (`token`, `bearer`, `basic`).
    Token(token::SharedToken),
    /// No verification (`scheme = "none"`), for trusted internal senders.
    None,
}

impl Verifier {
    /// Constant-time verification over the raw bytes. Tries every configured secret
    /// (rotation). The [`Verified`] body it returns is the only way to hand a body to
    /// the producer.
    pub fn verify<'a>(&self, req: &WebhookRequest<'a>) -> Result<Verified<'a>, VerifyError> {
        self.verify_with(req, None)
    }

    /// The published key set a request's signature is checked with, for the schemes that
    /// fetch theirs (Google Pub/Sub, AWS SNS); `Ok(None)` for every other. Everything
    /// that needs no key is checked first, so a request refused here costs no fetch.
    pub fn key_source(
        &self,
        req: &WebhookRequest<'_>,
    ) -> Result<Option<keys::KeySource>, VerifyError> {
        match self {
            Verifier::GooglePubSub(v) => v.key_source(req).map(Some),
            Verifier::Sns(v) => v.key_source(req).map(Some),
            _ => Ok(None),
        }
    }

    /// As [`verify`](Self::verify), with the key set [`key_source`](Self::key_source)
    /// named, fetched; without it a fetching scheme refuses (`unknown_key`).
    pub fn verify_with<'a>(
        &self,
        req: &WebhookRequest<'a>,
        keys: Option<&keys::KeySet>,
    ) -> Result<Verified<'a>, VerifyError> {
        self.check(req, keys).map(|()| Verified { request: *req })
    }

    fn check(
        &self,
        req: &WebhookRequest<'_>,
        keys: Option<&keys::KeySet>,
    ) -> Result<(), VerifyError> {
        match self {
            Verifier::GooglePubSub(v) => v.verify(req, keys.ok_or(VerifyError::UnknownKey)?),
            Verifier::Sns(v) => v.verify(req, keys.ok_or(VerifyError::UnknownKey)?),
            Verifier::StandardWebhooks(v) => v.verify(req),
            Verifier::Gitlab(v) => v.verify(req),
            Verifier::Twilio(v) => v.verify(req),
            Verifier::Linear(v) => v.verify(req),
            Verifier::Mailgun(v) => v.verify(req),
            Verifier::MsGraph(v) => v.verify(req),
            Verifier::EventGrid(v) => v.token.verify(req),
            Verifier::Twitch(v) => v.verify(req),
            Verifier::Hmac(v) => v.verify(req),
            Verifier::Token(v) => v.verify(req),
            Verifier::Discord(v) => v.verify(req),
            Verifier::Sendgrid(v) => v.verify(req),
            Verifier::Meta(v) => v.verify(req),
            Verifier::None => Ok(()),
        }
    }

    /// Called only after [`verify`](Self::verify) succeeded: a provider handshake that
    /// must be answered instead of producing to Kafka (Slack `url_verification`, Zoom
    /// `endpoint.url_validation`, Twitch `webhook_callback_verification`).
    pub fn handshake(&self, verified: &Verified<'_>) -> Option<Handshake> {
        let req = verified.request();
        match self {
            Verifier::Twitch(v) => v.handshake(req),
            Verifier::Hmac(v) => v.handshake(req),
            Verifier::Discord(v) => v.handshake(req),
            _ => None,
        }
    }

    /// The answer to send once the record is in Kafka, when the provider needs its own
    /// rather than hookbridge's `{"status":"accepted"}` (Discord: a deferred interaction
    /// response, or 204 for a webhook event).
    pub fn acknowledgement(&self, verified: &Verified<'_>) -> Option<Handshake> {
        let req = verified.request();
        match self {
            Verifier::Discord(v) => v.acknowledgement(req),
            _ => None,
        }
    }

    /// A provider handshake that carries no secret, answered for any caller once the body
    /// is read and before verification (Azure Event Grid's subscription validation). It
    /// only echoes what the request holds, and produces nothing.
    pub fn open_handshake(&self, headers: &http::HeaderMap, body: &[u8]) -> Option<Handshake> {
        match self {
            Verifier::EventGrid(v) => v.validation(headers, body),
            _ => None,
        }
    }

    /// A provider's endpoint check, answered before any body is read (Meta's GET with
    /// `hub.challenge`, Microsoft Graph's POST with `validationToken`); `None` when this
    /// scheme has none or the request is not one.
    pub fn subscription(&self, method: &http::Method, query: Option<&str>) -> Option<Handshake> {
        match self {
            Verifier::Meta(v) if method == http::Method::GET => v.subscription(query),
            Verifier::MsGraph(v) if method == http::Method::POST => v.subscription(query),
            _ => None,
        }
    }

    /// Signs `body` exactly as the provider would, with the FIRST secret, at time `now`,
    /// returning the headers to send (used by `hookbridge send` and by tests). `url` is
    /// the URL to sign for Twilio, Square and a generic template using `{url}`. For
    /// Twilio the returned headers include the `Content-Type` the signature depends on;
    /// the caller must not override it. Returns `None` for `none`.
    pub fn sign(&self, body: &[u8], url: &str, now: i64) -> Option<http::HeaderMap> {
        match self {
            Verifier::StandardWebhooks(v) => v.sign(body, now),
            Verifier::Gitlab(v) => v.sign(body, now),
            Verifier::Twilio(v) => v.sign(body, url),
            Verifier::Linear(v) => v.sign(body),
            Verifier::Twitch(v) => v.sign(body, now),
            Verifier::Hmac(v) => v.sign(body, url, now),
            Verifier::Meta(v) => v.sign(body, url, now),
            Verifier::Token(v) => v.sign(),
            Verifier::EventGrid(v) => v.token.sign(),
            Verifier::Discord(_)
            | Verifier::Sendgrid(_)
            | Verifier::GooglePubSub(_)
            | Verifier::Sns(_)
            | Verifier::Mailgun(_)
            | Verifier::MsGraph(_)
            | Verifier::None => None,
        }
    }

    /// A realistic sample body for this provider, used by `hookbridge send` when no body
    /// is given. Linear's contains a fixed `webhookTimestamp`; use
    /// [`sample_body_at`](Self::sample_body_at) for one that verifies now.
    pub fn sample_body(&self) -> &'static [u8] {
        match self {
            Verifier::StandardWebhooks(_) => standard::SAMPLE_BODY,
            Verifier::Gitlab(_) => gitlab::SAMPLE_BODY,
            Verifier::Twilio(_) => twilio::SAMPLE_BODY,
            Verifier::Linear(_) => linear::SAMPLE_BODY,
            Verifier::Mailgun(_) => mailgun::SAMPLE_BODY,
            Verifier::MsGraph(_) => msgraph::SAMPLE_BODY,
            Verifier::EventGrid(_) => eventgrid::SAMPLE_BODY,
            Verifier::Twitch(_) => twitch::SAMPLE_BODY,
            Verifier::Hmac(v) => v.sample_body(),
            Verifier::Discord(v) => v.sample_body(),
            Verifier::Sendgrid(_) => sendgrid::SAMPLE_BODY,
            Verifier::GooglePubSub(_) => pubsub::SAMPLE_BODY,
            Verifier::Sns(_) => sns::SAMPLE_BODY,
            Verifier::Meta(_) => meta::SAMPLE_BODY,
            Verifier::Token(_) | Verifier::None => generic::SAMPLE_BODY,
        }
    }

    /// `body` as the provider would send it at `now`, for schemes that sign inside the
    /// body (Mailgun); `None` for the others, whose signature is in headers.
    pub fn sign_body(&self, body: &[u8], now: i64) -> Option<Vec<u8>> {
        match self {
            Verifier::Mailgun(v) => v.sign_body(body, now),
            Verifier::MsGraph(v) => v.sign_body(body),
            _ => None,
        }
    }

    /// The sample body as it would be sent at `now`: identical to
    /// [`sample_body`](Self::sample_body) except for Linear, whose signed
    /// `webhookTimestamp` lives in the body and must be current to verify.
    pub fn sample_body_at(&self, now: i64) -> bytes::Bytes {
        match self {
            Verifier::Linear(_) => linear::sample_body_at(now),
            other => bytes::Bytes::from_static(other.sample_body()),
        }
    }

    /// Content-Type of [`sample_body`](Self::sample_body).
    pub fn sample_content_type(&self) -> &'static str {
        match self {
            Verifier::Twilio(_) => "application/x-www-form-urlencoded",
            _ => "application/json",
        }
    }

    /// The request headers the signature covers (lowercase), besides the signature
    /// itself. Any other header — a delivery id, an event name — can be changed by a
    /// client that replays a captured signed body; `check` warns when the key or
    /// forwarded headers read one.
    pub fn signed_headers(&self) -> Vec<&str> {
        match self {
            Verifier::StandardWebhooks(_) => vec![
                standard::WEBHOOK_HEADERS.id,
                standard::WEBHOOK_HEADERS.timestamp,
                standard::SVIX_HEADERS.id,
                standard::SVIX_HEADERS.timestamp,
            ],
            Verifier::Twitch(_) => vec![twitch::MESSAGE_ID, twitch::MESSAGE_TIMESTAMP],
            Verifier::Hmac(v) => v.signed_headers(),
            Verifier::Discord(_) => vec![discord::TIMESTAMP],
            Verifier::Sendgrid(_) => vec![sendgrid::TIMESTAMP],
            _ => Vec::new(),
        }
    }

    /// The scheme's settings that are not secrets and that `check` shows (where a
    /// fetching scheme takes its keys from, what its tokens must say); `None` for most.
    pub fn details(&self) -> Option<String> {
        match self {
            Verifier::GooglePubSub(v) => Some(v.summary()),
            Verifier::Sns(v) => Some(v.summary()),
            _ => None,
        }
    }

    /// A verified control message that must not be produced (SNS's subscription and
    /// unsubscription confirmations), and what to do with it.
    pub fn confirmation(&self, verified: &Verified<'_>) -> Option<sns::Confirmation> {
        match self {
            Verifier::Sns(v) => v.confirmation(verified.request()),
            _ => None,
        }
    }

    /// The scheme name as written in config, e.g. `"github"` (also a metrics label).
    pub fn scheme_name(&self) -> &'static str {
        match self {
            Verifier::StandardWebhooks(_) => "standard-webhooks",
            Verifier::Gitlab(_) => "gitlab",
            Verifier::Twilio(_) => "twilio",
            Verifier::Linear(_) => "linear",
            Verifier::Mailgun(_) => "mailgun",
            Verifier::MsGraph(_) => "microsoft-graph",
            Verifier::EventGrid(_) => "azure-event-grid",
            Verifier::Twitch(_) => "twitch",
            Verifier::Hmac(v) => v.name(),
            Verifier::Token(v) => v.name(),
            Verifier::Discord(v) => v.name(),
            Verifier::Sendgrid(_) => "sendgrid",
            Verifier::GooglePubSub(_) => "google-pubsub",
            Verifier::Sns(_) => "aws-sns",
            Verifier::Meta(_) => "meta",
            Verifier::None => "none",
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers shared by the scheme tests.

    use super::crypto::Key;
    use super::WebhookRequest;

    /// Keys from literal secrets.
    pub fn keys(secrets: &[&str]) -> Vec<Key> {
        secrets.iter().map(|s| Key::new(s.as_bytes())).collect()
    }

    /// A request with no URL.
    pub fn req<'a>(headers: &'a http::HeaderMap, body: &'a [u8], now: i64) -> WebhookRequest<'a> {
        WebhookRequest {
            headers,
            body,
            url: "",
            now,
        }
    }

    /// Headers from (name, value) pairs.
    pub fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// A copy of `map` with `name` set to `value`.
    pub fn with_header(map: &http::HeaderMap, name: &str, value: &str) -> http::HeaderMap {
        let mut map = map.clone();
        map.insert(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
        map
    }

    /// A copy of `map` without `name`.
    pub fn without_header(map: &http::HeaderMap, name: &str) -> http::HeaderMap {
        let mut map = map.clone();
        map.remove(name);
        map
    }
}

#[cfg(test)]
mod tests;
