//! A sink's own secrets masked out of a destination's answer: one that echoes the request
//! in its error answer would put the sink's credentials into the dead letter's response
//! excerpt and the console's recent failures. Masked when the answer is kept (with the
//! attempt's OAuth2 access token, known only then), and again wherever a dead letter is
//! shown (`dlq show`, `dlq list`, the console), for letters written before.

use axum::http::HeaderValue;
use bytes::Bytes;

use crate::connectors::sink::Credentials;
use crate::connectors::Sink;

/// The values of a sink's secrets, masked wherever a dead letter's text is shown.
pub(crate) struct Redact(Vec<String>);

/// What a masked secret shows as.
const REDACTED: &str = "[redacted]";

/// How far past a kept excerpt its answer is masked: room for the longest secret that
/// may start inside it (a JWT is a few KiB).
pub(crate) const MASK_PAST: usize = 4096;

/// Secrets shorter than this are not masked: masking them would blank common words.
const REDACT_MIN_CHARS: usize = 6;

impl Redact {
    /// What `sink` sends and a destination may echo: its header values from secret
    /// references, the password of its URL (raw and as the `Basic` credentials made of
    /// it) and its signing key.
    pub(crate) fn of(sink: &Sink) -> Redact {
        let mut secrets: Vec<String> = Vec::new();
        for (_, value) in (sink.headers.iter()).filter(|(_, v)| v.is_sensitive()) {
            if let Ok(value) = value.to_str() {
                secrets.extend(credential_forms(value));
            }
        }
        // The URL's user and password are the sink's `Credentials::Header` (below), as
        // Basic credentials; a destination may echo the raw password too.
        if let Some(password) = sink.url.userinfo().and_then(|u| u.password.clone()) {
            secrets.push(password);
        }
        match &sink.credentials {
            Some(Credentials::Header(v)) => {
                if let Ok(v) = v.to_str() {
                    secrets.extend(credential_forms(v));
                }
            }
            Some(Credentials::OAuth2 { client_secret, .. }) => {
                secrets.push(client_secret.expose().to_owned());
            }
            None => {}
        }
        secrets.extend(sink.signing_key.iter().map(|k| k.expose().to_owned()));
        Redact(as_echoed(secrets))
    }

    /// `raw` with every secret masked, and the credentials of `authorization` (the
    /// header an attempt sent, such as an OAuth2 access token fetched at run time).
    pub(crate) fn answer(&self, raw: Bytes, authorization: Option<&HeaderValue>) -> Bytes {
        if raw.is_empty() {
            return raw;
        }
        let Some(sent) = authorization.and_then(|v| v.to_str().ok()) else {
            return self.bytes(&raw);
        };
        // The attempt's credentials join the sink's, so a token cut at the excerpt's end
        // is masked as a configured secret is.
        // (The sink's own are in their echoed forms already.)
        let mut all: Vec<String> = (self.0.iter().cloned())
            .chain(as_echoed(credential_forms(sent).collect()))
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Redact(all).bytes(&raw)
    }

    /// The first `keep` bytes of `answer` as kept, masked as [`Redact::answer`] does:
    /// over [`MASK_PAST`] bytes more than is kept, then cut, so a secret the cut would
    /// split is masked whole, not left with its first characters.
    pub(crate) fn excerpt(
        &self,
        answer: Bytes,
        authorization: Option<&HeaderValue>,
        keep: usize,
    ) -> Bytes {
        let read = answer.slice(..answer.len().min(keep.saturating_add(MASK_PAST)));
        let masked = self.answer(read, authorization);
        masked.slice(..masked.len().min(keep))
    }

    /// `raw` with every secret masked, before it is escaped or cut for display; also the
    /// start of a secret at its very end, where a stored excerpt cut one off.
    pub(crate) fn bytes(&self, raw: &Bytes) -> Bytes {
        let mut out = raw.to_vec();
        for s in &self.0 {
            out = replace_all(&out, s.as_bytes(), REDACTED.as_bytes());
        }
        for s in &self.0 {
            let s = s.as_bytes();
            if let Some(k) = (REDACT_MIN_CHARS..s.len())
                .rev()
                .find(|k| out.ends_with(&s[..*k]))
            {
                out.truncate(out.len() - k);
                out.extend_from_slice(REDACTED.as_bytes());
                break;
            }
        }
        Bytes::from(mask_bearer_tokens(&out))
    }
}

/// Every form in which a destination may echo `secrets`: as they are; as a JSON string
/// writes them (PHP's `json_encode` escapes `/` as `\/`); percent-encoded, as a query or
/// form echoes them; a Standard Webhooks key also without its `whsec_` prefix. Too
/// short ones dropped, the longest first, so a secret inside a longer one is masked
/// with it.
fn as_echoed(secrets: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(secrets.len() * 3);
    for s in secrets {
        if let Some(key) = s.strip_prefix("whsec_") {
            out.push(key.to_owned());
        }
        let json = s
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('/', "\\/");
        let percent: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
        out.extend([json, percent.replace('+', "%20"), percent]);
        out.push(s);
    }
    out.retain(|s| s.chars().count() >= REDACT_MIN_CHARS);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// A credential header's value whole, and the credential after its scheme (`Bearer <t>`,
/// `Token <t>`, `Basic <pair>`), which a destination may echo alone; of `Basic`
/// credentials also the decoded `user:password` and the password, which a destination
/// that decodes them may echo as well.
fn credential_forms(value: &str) -> impl Iterator<Item = String> {
    let after_scheme = value.split_once(' ').map(|(scheme, c)| (scheme, c.trim()));
    let decoded = after_scheme
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, pair)| {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(pair)
                .ok()?;
            let pair = String::from_utf8(bytes).ok()?;
            // The password; with none, the user (an API key sent as the user name).
            let alone = match pair.split_once(':') {
                Some((user, "")) => Some(user.to_owned()),
                Some((_, password)) => Some(password.to_owned()),
                None => None,
            };
            Some([Some(pair), alone])
        })
        .into_iter()
        .flatten()
        .flatten();
    (after_scheme.map(|(_, c)| c.to_owned()).into_iter())
        .chain(decoded)
        .chain(std::iter::once(value.to_owned()))
        .collect::<Vec<_>>()
        .into_iter()
}

/// Every `Bearer <token>` credential masked, whoever issued it: an OAuth2 access token is
/// fetched at run time, so no process reading a dead letter (`dlq show`) knows its value,
/// and a destination may echo it like any other.
fn mask_bearer_tokens(text: &[u8]) -> Vec<u8> {
    const SCHEME: &[u8] = b"bearer ";
    // RFC 6750's b64token characters.
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(b);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.len() > SCHEME.len() && rest[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
            let len = rest[SCHEME.len()..].iter().take_while(|b| token(b)).count();
            // Shorter runs are words ("a bearer of news"), as for configured secrets.
            let masked = if len >= REDACT_MIN_CHARS { len } else { 0 };
            out.extend_from_slice(&rest[..SCHEME.len()]);
            if masked > 0 {
                out.extend_from_slice(REDACTED.as_bytes());
            }
            i += SCHEME.len() + masked;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `auth.basic`'s password, echoed decoded by a destination (alone or as the pair),
    /// is masked like the header it travels in.
    #[test]
    fn a_basic_password_echoed_decoded_is_masked() {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.encode("alice:Pw-SuperSecret-9876");
        let r = Redact(as_echoed(
            credential_forms(&format!("Basic {pair}")).collect(),
        ));
        for echoed in [
            r#"{"basic_decoded":"alice:Pw-SuperSecret-9876"}"#,
            "password Pw-SuperSecret-9876 refused",
            "pw=Pw-SuperSecret-9876",
        ] {
            let out = String::from_utf8(r.bytes(&Bytes::from(echoed)).to_vec()).unwrap();
            assert!(!out.contains("SuperSecret"), "{echoed} -> {out}");
        }
        // An API key sent as the user name with no password is masked alone too.
        let pair = base64::engine::general_purpose::STANDARD.encode("sk_live_0123456789:");
        let r = Redact(as_echoed(
            credential_forms(&format!("Basic {pair}")).collect(),
        ));
        let out = r.bytes(&Bytes::from("invalid key sk_live_0123456789"));
        assert!(
            !String::from_utf8_lossy(&out).contains("sk_live"),
            "{out:?}"
        );
    }

    /// A secret echoed as a JSON string, percent-encoded or (a signing key) without its
    /// prefix is masked too.
    #[test]
    fn secrets_are_masked_in_the_forms_a_destination_echoes_them() {
        let r = Redact(as_echoed(
            credential_forms("Bearer ey.J/tok+en=")
                .chain(["whsec_MfKQ9r8GKYqrTwjU".into(), "key with/slash&amp".into()])
                .collect(),
        ));
        let masked = |text: &str| {
            String::from_utf8(r.bytes(&Bytes::from(text.to_owned())).to_vec()).unwrap()
        };
        for echoed in [
            r#"{"auth":"Bearer ey.J\/tok+en="}"#,
            "token=ey.J%2Ftok%2Ben%3D",
            r#"{"key":"MfKQ9r8GKYqrTwjU"}"#,
            "k=key+with%2Fslash%26amp",
            "k=key%20with%2Fslash%26amp",
            r#"{"k":"key with\/slash&amp"}"#,
        ] {
            let out = masked(echoed);
            assert!(out.contains(REDACTED), "{echoed} -> {out}");
            for part in ["ey.J", "MfKQ9r8G", "slash"] {
                assert!(!out.contains(part), "{echoed} -> {out}");
            }
        }
    }

    /// A secret that the excerpt's end would cut leaves none of its characters, however
    /// few of them fall inside.
    #[test]
    fn an_excerpt_is_masked_before_it_is_cut() {
        let r = Redact(as_echoed(vec!["sEcReT-vAlUe-42".into()]));
        for inside in 1..15 {
            let text = format!("{}sEcReT-vAlUe-42 and more", "x".repeat(100 - inside));
            let kept = r.excerpt(Bytes::from(text), None, 100);
            let kept = String::from_utf8_lossy(&kept);
            assert!(!kept.contains("sE"), "{inside}: {kept}");
            assert!(kept.len() <= 100);
        }
    }

    #[test]
    fn secrets_are_masked_whole_and_where_an_excerpt_cut_them() {
        let r = Redact(vec!["Bearer tok-123456".into()]);
        let masked = |text: &str| r.bytes(&Bytes::from(text.to_owned()));
        assert_eq!(
            masked("a: Bearer tok-123456\nb: Bearer tok-123456"),
            "a: [redacted]\nb: [redacted]"
        );
        assert_eq!(
            masked("authorization: Bearer tok-12"),
            "authorization: [redacted]"
        );
        assert_eq!(masked("nothing here: Bea"), "nothing here: Bea");
    }

    #[test]
    fn a_credential_header_is_masked_whole_and_without_its_scheme() {
        let text = "name = \"orders\"\ntopics = [\"orders\"]\nurl = \"http://127.0.0.1:9/hook\"\n\
            headers = { Authorization = \"Token abcdef123456\", X-Routing-Key = \"orders-eu\" }";
        let cfg: crate::connectors::sink::SinkConfig = toml::from_str(text).expect("parses");
        let sink = cfg.validate("orders.toml").unwrap().build().unwrap();
        let r = Redact::of(&sink);
        let masked = |text: &str| r.bytes(&Bytes::from(text.to_owned()));
        assert_eq!(
            masked("got Token abcdef123456, then abcdef123456 for orders-eu"),
            "got [redacted], then [redacted] for orders-eu"
        );
    }

    /// An access token the attempt sent is masked from its answer, bare or with its
    /// scheme, as the sink's configured secrets are.
    #[test]
    fn the_credentials_an_attempt_sent_are_masked_from_its_answer() {
        let r = Redact(vec!["client-secret-1".into()]);
        let sent = HeaderValue::from_static("Bearer ACCESSTOKEN-XYZ");
        let answer = Bytes::from_static(
            b"bad token ACCESSTOKEN-XYZ (Bearer ACCESSTOKEN-XYZ) for client-secret-1",
        );
        assert_eq!(
            r.answer(answer.clone(), Some(&sent)),
            "bad token [redacted] ([redacted]) for [redacted]"
        );
        assert_eq!(
            r.answer(answer, None),
            "bad token ACCESSTOKEN-XYZ (Bearer [redacted]) for [redacted]"
        );
        let cut = Bytes::from_static(b"token was ACCESSTOK");
        assert_eq!(r.answer(cut, Some(&sent)), "token was [redacted]");
    }

    #[test]
    fn a_bearer_token_no_one_configured_is_masked_too() {
        // An OAuth2 access token, fetched at run time, echoed by the destination.
        let r = Redact(Vec::new());
        let masked = |text: &str| r.bytes(&Bytes::from(text.to_owned()));
        assert_eq!(
            masked(r#"{"auth":"Bearer eyJhbGci.eyJzdWIi.c2ln=","x":1}"#),
            r#"{"auth":"Bearer [redacted]","x":1}"#
        );
        assert_eq!(
            masked("authorization: bearer abc-123_x\nok"),
            "authorization: bearer [redacted]\nok"
        );
        assert_eq!(masked("a bearer of news"), "a bearer of news");
        assert_eq!(masked("no token"), "no token");
    }
}
