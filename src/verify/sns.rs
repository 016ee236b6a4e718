//! Amazon SNS HTTP/HTTPS subscriptions: a JSON body signed by SNS with the private key of
//! the certificate at its `SigningCertURL`.
//!
//! Rule (AWS docs, "Verifying the signatures of Amazon SNS messages"): the string to sign
//! is `name\nvalue\n` for each of these fields, in this order, when present — for a
//! `Notification`: `Message`, `MessageId`, `Subject`, `Timestamp`, `TopicArn`, `Type`; for
//! a `SubscriptionConfirmation` or `UnsubscribeConfirmation`: `Message`, `MessageId`,
//! `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`. `SignatureVersion` 1 signs it
//! with SHA1withRSA, 2 with SHA256withRSA; `Signature` is base64. The certificate is
//! fetched only from `https` on an SNS host: by default `sns.<region>.amazonaws.com` (or
//! `.amazonaws.com.cn`) for the region of the message's `TopicArn`, which must be one of
//! the source's `topics`, with AWS's certificate path — all checked before anything is
//! fetched, so a forged message costs at most one fetch per new URL. SNS signs no
//! delivery time, so no window is
//! applied; `replay_guard = { id = "json:/MessageId", … }` refuses a replayed message.
//! Fields outside the list (`MessageAttributes`, `UnsubscribeURL`) are not signed.
//!
//! A `SubscriptionConfirmation` or `UnsubscribeConfirmation` is never produced: see
//! [`Sns::confirmation`].

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use serde::Deserialize;

use super::keys::{self, KeyFormat, KeySet, KeySource};
use super::{VerifyError, WebhookRequest};

/// The cert host patterns used when `cert_hosts` is not set; `{region}` is the region
/// of the message's `TopicArn`.
pub const DEFAULT_CERT_HOSTS: [&str; 2] = [
    "sns.{region}.amazonaws.com",
    "sns.{region}.amazonaws.com.cn",
];

/// A notification (as SNS sends it; the signature is not a real one).
pub const SAMPLE_BODY: &[u8] = br#"{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324","TopicArn":"arn:aws:sns:us-west-2:123456789012:MyTopic","Subject":"My First Message","Message":"Hello world!","Timestamp":"2012-05-02T00:54:06.655Z","SignatureVersion":"1","Signature":"EXAMPLEw6JRN...","SigningCertURL":"https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem","UnsubscribeURL":"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:MyTopic:c9135db0-26c4-47ec-8998-413945fb5a96"}"#;

/// Verifies SNS messages for the configured topics.
#[derive(Debug, Clone)]
pub struct Sns {
    topics: Vec<String>,
    cert_hosts: Vec<String>,
    confirm: bool,
}

/// The message as SNS sends it; only the fields the signature covers and those that
/// say how to check it are read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Message {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    message: String,
    timestamp: String,
    subject: Option<String>,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    token: Option<String>,
    signature_version: String,
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
}

/// What a verified control message asks of the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    pub kind: &'static str,
    pub topic: String,
    /// The URL that confirms the subscription, checked like a certificate URL.
    pub url: url::Url,
    /// Whether hookbridge visits it (`confirm_subscriptions`, and only to subscribe).
    pub visit: bool,
}

const NOTIFICATION: &str = "Notification";
/// The `Type` of a subscription confirmation.
pub const SUBSCRIBE: &str = "SubscriptionConfirmation";
const UNSUBSCRIBE: &str = "UnsubscribeConfirmation";

/// Longest `SigningCertURL` taken (AWS's are under 120 bytes).
const MAX_CERT_URL: usize = 256;

/// AWS's certificate path: `/SimpleNotificationService-<hex>.pem`.
fn is_certificate_path(path: &str) -> bool {
    (path.strip_prefix("/SimpleNotificationService-"))
        .and_then(|rest| rest.strip_suffix(".pem"))
        .is_some_and(|hex| {
            (1..=64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

impl Sns {
    /// `topics`: the ARNs accepted; `cert_hosts`: host (or `host:port`) patterns with
    /// `{region}`, [`DEFAULT_CERT_HOSTS`] when empty.
    pub fn new(topics: Vec<String>, cert_hosts: Vec<String>, confirm: bool) -> Self {
        let cert_hosts = if cert_hosts.is_empty() {
            DEFAULT_CERT_HOSTS.iter().map(|h| (*h).to_owned()).collect()
        } else {
            cert_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect()
        };
        Sns {
            topics,
            cert_hosts,
            confirm,
        }
    }

    /// The topics, certificate hosts and confirmation setting, for `check`.
    pub fn summary(&self) -> String {
        format!(
            "topics {}   cert_hosts {}   confirm_subscriptions {}",
            self.topics.join(", "),
            self.cert_hosts.join(", "),
            self.confirm
        )
    }

    /// Checks the message's form, topic and certificate URL, then names the certificate.
    pub fn key_source(&self, req: &WebhookRequest<'_>) -> Result<KeySource, VerifyError> {
        let (_, source) = self.read(req)?;
        Ok(source)
    }

    /// The whole check, the signature against the certificate in `keys`.
    pub fn verify(&self, req: &WebhookRequest<'_>, keys: &KeySet) -> Result<(), VerifyError> {
        let (m, _) = self.read(req)?;
        let key = keys.certificate().ok_or(VerifyError::UnknownKey)?;
        let digest = match m.signature_version.as_str() {
            "1" => MessageDigest::sha1(),
            _ => MessageDigest::sha256(),
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&m.signature)
            .map_err(|_| VerifyError::MalformedBody("Signature"))?;
        let valid = Verifier::new(digest, key)
            .and_then(|mut v| {
                for part in string_to_sign(&m) {
                    v.update(part.as_bytes())?;
                }
                v.verify(&signature)
            })
            .unwrap_or(false);
        if valid {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// For a verified control message, what to do with it: a `SubscriptionConfirmation`
    /// is confirmed by visiting its `SubscribeURL` only with `confirm_subscriptions`
    /// (otherwise the operator is told the URL), an `UnsubscribeConfirmation` is only
    /// acknowledged. `None` for a notification, which is produced.
    pub fn confirmation(&self, req: &WebhookRequest<'_>) -> Option<Confirmation> {
        let (m, _) = self.read(req).ok()?;
        let kind = match m.kind.as_str() {
            SUBSCRIBE => SUBSCRIBE,
            UNSUBSCRIBE => UNSUBSCRIBE,
            _ => return None,
        };
        // Checked in `read`: a control message carries an allowed SubscribeURL.
        let url = self
            .url(m.subscribe_url.as_deref()?, &m.topic_arn, true)
            .ok()?;
        Some(Confirmation {
            kind,
            topic: m.topic_arn,
            url,
            visit: self.confirm && kind == SUBSCRIBE,
        })
    }

    /// The message parsed and checked, and its certificate's source.
    fn read(&self, req: &WebhookRequest<'_>) -> Result<(Message, KeySource), VerifyError> {
        let m: Message =
            serde_json::from_slice(req.body).map_err(|_| VerifyError::MalformedBody("message"))?;
        match m.kind.as_str() {
            // SNS puts neither in a notification; a notification carrying one is altered.
            NOTIFICATION if m.subscribe_url.is_some() => {
                return Err(VerifyError::MalformedBody("SubscribeURL"))
            }
            NOTIFICATION => {}
            SUBSCRIBE | UNSUBSCRIBE => {
                let url = m.subscribe_url.as_deref();
                let allowed = |u| self.url(u, &m.topic_arn, true).is_ok();
                if m.token.is_none() || !url.is_some_and(allowed) {
                    return Err(VerifyError::MalformedBody("SubscribeURL"));
                }
            }
            _ => return Err(VerifyError::MalformedBody("Type")),
        }
        if !matches!(m.signature_version.as_str(), "1" | "2") {
            return Err(VerifyError::MalformedBody("SignatureVersion"));
        }
        if !self.topics.contains(&m.topic_arn) {
            return Err(VerifyError::Claim("TopicArn"));
        }
        // Only AWS's own certificate paths, and no longer than they are, before any
        // fetch: every other URL on an allowed host would cost a fetch and a cache slot.
        let url = Some(&m.signing_cert_url)
            .filter(|raw| raw.len() <= MAX_CERT_URL)
            .and_then(|raw| self.url(raw, &m.topic_arn, false).ok())
            .filter(|u| is_certificate_path(u.path()))
            .ok_or(VerifyError::MalformedBody("SigningCertURL"))?;
        let source = KeySource {
            url,
            format: KeyFormat::Certificate,
        };
        Ok((m, source))
    }

    /// `raw` if it is a certificate URL (or, with `visit`, a URL to visit: a query is
    /// allowed) on a certificate host for the topic's region.
    fn url(&self, raw: &str, topic_arn: &str, visit: bool) -> Result<url::Url, keys::KeyUrlError> {
        let region = region(topic_arn).ok_or(keys::KeyUrlError::Host)?;
        let allowed = |host: &str| {
            (self.cert_hosts.iter()).any(|pattern| pattern.replace("{region}", region) == host)
        };
        if visit {
            keys::visit_url(raw, allowed)
        } else {
            keys::key_url(raw, allowed)
        }
    }
}

/// The region of `arn:<partition>:sns:<region>:<account>:<name>`: letters, digits, `-`.
fn region(topic_arn: &str) -> Option<&str> {
    let mut parts = topic_arn.split(':');
    let (Some("arn"), Some(_), Some("sns"), Some(region)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let valid = !region.is_empty()
        && (region.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(region)
}

/// The signed fields as AWS lists them for the message's type, `name\nvalue\n` each.
fn string_to_sign(m: &Message) -> Vec<String> {
    let fields: Vec<(&str, Option<&str>)> = if m.kind == NOTIFICATION {
        vec![
            ("Message", Some(&m.message)),
            ("MessageId", Some(&m.message_id)),
            ("Subject", m.subject.as_deref()),
            ("Timestamp", Some(&m.timestamp)),
            ("TopicArn", Some(&m.topic_arn)),
            ("Type", Some(&m.kind)),
        ]
    } else {
        vec![
            ("Message", Some(&m.message)),
            ("MessageId", Some(&m.message_id)),
            ("SubscribeURL", m.subscribe_url.as_deref()),
            ("Timestamp", Some(&m.timestamp)),
            ("Token", m.token.as_deref()),
            ("TopicArn", Some(&m.topic_arn)),
            ("Type", Some(&m.kind)),
        ]
    };
    (fields.into_iter())
        .filter_map(|(name, value)| Some(format!("{name}\n{}\n", value?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::req;
    use openssl::asn1::Asn1Time;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use openssl::x509::{X509Builder, X509NameBuilder};

    const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";
    const CERT_URL: &str = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3e.pem";

    fn cert() -> (PKey<Private>, KeySet) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "sns.amazonaws.com")
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let pem = b.build().to_pem().unwrap();
        (key, KeySet::parse(KeyFormat::Certificate, &pem).unwrap())
    }

    /// `fields` signed as SNS signs them, with `version`.
    fn signed(key: &PKey<Private>, version: &str, fields: serde_json::Value) -> Vec<u8> {
        let mut m = fields;
        m["SignatureVersion"] = version.into();
        m["SigningCertURL"] = m.get("SigningCertURL").cloned().unwrap_or(CERT_URL.into());
        m["Signature"] = "".into();
        let parsed: Message = serde_json::from_value(m.clone()).unwrap();
        let digest = if version == "1" {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        };
        let mut signer = Signer::new(digest, key).unwrap();
        for part in string_to_sign(&parsed) {
            signer.update(part.as_bytes()).unwrap();
        }
        m["Signature"] = base64::engine::general_purpose::STANDARD
            .encode(signer.sign_to_vec().unwrap())
            .into();
        m.to_string().into_bytes()
    }

    fn notification() -> serde_json::Value {
        serde_json::json!({"Type": "Notification", "MessageId": "m-1", "TopicArn": TOPIC,
            "Subject": "hi", "Message": "Hello world!", "Timestamp": "2012-05-02T00:54:06.655Z",
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"})
    }

    fn subscription(kind: &str) -> serde_json::Value {
        serde_json::json!({"Type": kind, "MessageId": "m-2", "TopicArn": TOPIC,
            "Token": "2336412f37", "Message": "You have chosen to subscribe",
            "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=2336412f37",
            "Timestamp": "2012-04-26T20:45:04.751Z"})
    }

    fn sns() -> Sns {
        Sns::new(vec![TOPIC.to_owned()], Vec::new(), false)
    }

    fn verdict(v: &Sns, keys: &KeySet, body: &[u8]) -> Result<(), VerifyError> {
        let h = http::HeaderMap::new();
        let r = req(&h, body, 0);
        v.key_source(&r)?;
        v.verify(&r, keys)
    }

    #[test]
    fn both_signature_versions_and_every_type_verify() {
        let (key, keys) = cert();
        let v = sns();
        for version in ["1", "2"] {
            assert_eq!(
                verdict(&v, &keys, &signed(&key, version, notification())),
                Ok(())
            );
            let mut no_subject = notification();
            no_subject.as_object_mut().unwrap().remove("Subject");
            assert_eq!(
                verdict(&v, &keys, &signed(&key, version, no_subject)),
                Ok(())
            );
            for kind in [SUBSCRIBE, UNSUBSCRIBE] {
                let body = signed(&key, version, subscription(kind));
                assert_eq!(verdict(&v, &keys, &body), Ok(()), "{kind}");
            }
        }
        let (_, others) = cert();
        let body = signed(&key, "2", notification());
        assert_eq!(verdict(&v, &others, &body), Err(VerifyError::Mismatch));
        let tampered = String::from_utf8(body)
            .unwrap()
            .replace("Hello world!", "Hello moon!");
        assert_eq!(
            verdict(&v, &keys, tampered.as_bytes()),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn topic_type_version_and_certificate_url_are_checked_before_any_fetch() {
        let (key, _) = cert();
        let v = sns();
        let h = http::HeaderMap::new();
        let source = |body: &[u8]| v.key_source(&req(&h, body, 0)).map(|s| s.url.to_string());
        assert_eq!(
            source(&signed(&key, "1", notification())),
            Ok(CERT_URL.to_owned())
        );
        let with = |field: &str, value: &str| {
            let mut m = notification();
            m[field] = value.into();
            signed(&key, "1", m)
        };
        let cert_url = VerifyError::MalformedBody("SigningCertURL");
        for (body, expected) in [
            (
                with("TopicArn", "arn:aws:sns:us-west-2:123456789012:Other"),
                VerifyError::Claim("TopicArn"),
            ),
            (with("Type", "Other"), VerifyError::MalformedBody("Type")),
            (
                signed(&key, "3", notification()),
                VerifyError::MalformedBody("SignatureVersion"),
            ),
            (
                with("SigningCertURL", "http://sns.us-west-2.amazonaws.com/c.pem"),
                cert_url,
            ),
            (
                with(
                    "SigningCertURL",
                    "https://sns.us-east-1.amazonaws.com/c.pem",
                ),
                cert_url,
            ),
            (
                with(
                    "SigningCertURL",
                    "https://sns.us-west-2.amazonaws.com.evil.example/c.pem",
                ),
                cert_url,
            ),
            (
                with(
                    "SigningCertURL",
                    "https://evil.example/sns.us-west-2.amazonaws.com/c.pem",
                ),
                cert_url,
            ),
            (
                with(
                    "SigningCertURL",
                    "https://sns.us-west-2.amazonaws.com/c.txt",
                ),
                cert_url,
            ),
            (
                with("SubscribeURL", "https://sns.us-west-2.amazonaws.com/"),
                VerifyError::MalformedBody("SubscribeURL"),
            ),
            (b"not json".to_vec(), VerifyError::MalformedBody("message")),
            (b"{}".to_vec(), VerifyError::MalformedBody("message")),
        ] {
            assert_eq!(
                source(&body),
                Err(expected),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        let mut foreign = subscription(SUBSCRIBE);
        foreign["SubscribeURL"] = "https://evil.example/confirm".into();
        let body = signed(&key, "1", foreign);
        assert_eq!(
            source(&body),
            Err(VerifyError::MalformedBody("SubscribeURL"))
        );
        // China regions, and a configured host for a local certificate server.
        let cn = "arn:aws-cn:sns:cn-north-1:123456789012:T";
        let v = Sns::new(vec![cn.to_owned()], Vec::new(), false);
        let mut m = notification();
        m["TopicArn"] = cn.into();
        m["SigningCertURL"] =
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-a1.pem".into();
        assert!(v
            .key_source(&req(&h, &signed(&key, "1", m.clone()), 0))
            .is_ok());
        let local = Sns::new(vec![cn.to_owned()], vec!["127.0.0.1:8443".into()], false);
        m["SigningCertURL"] = "http://127.0.0.1:8443/SimpleNotificationService-a1.pem".into();
        assert!(local
            .key_source(&req(&h, &signed(&key, "1", m.clone()), 0))
            .is_ok());
        // Any other path on an allowed host, or a URL longer than AWS's, costs no fetch.
        for url in [
            "http://127.0.0.1:8443/x.pem".to_owned(),
            "http://127.0.0.1:8443/SimpleNotificationService-zz.pem".to_owned(),
            format!(
                "http://127.0.0.1:8443/SimpleNotificationService-{}.pem",
                "a".repeat(300)
            ),
        ] {
            m["SigningCertURL"] = url.clone().into();
            assert_eq!(
                local.key_source(&req(&h, &signed(&key, "1", m.clone()), 0)),
                Err(VerifyError::MalformedBody("SigningCertURL")),
                "{url}"
            );
        }
    }

    #[test]
    fn only_subscription_confirmations_are_visited_and_only_when_configured() {
        let (key, _) = cert();
        let h = http::HeaderMap::new();
        let body = signed(&key, "1", subscription(SUBSCRIBE));
        let r = req(&h, &body, 0);
        let c = sns().confirmation(&r).unwrap();
        assert_eq!((c.kind, c.visit), (SUBSCRIBE, false));
        assert!(c
            .url
            .as_str()
            .starts_with("https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription"));
        let confirming = Sns::new(vec![TOPIC.to_owned()], Vec::new(), true);
        assert!(confirming.confirmation(&r).unwrap().visit);
        let body = signed(&key, "1", subscription(UNSUBSCRIBE));
        let c = confirming.confirmation(&req(&h, &body, 0)).unwrap();
        assert_eq!((c.kind, c.visit), (UNSUBSCRIBE, false));
        let body = signed(&key, "1", notification());
        assert_eq!(confirming.confirmation(&req(&h, &body, 0)), None);
    }
}
