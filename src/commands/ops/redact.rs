//! A sink's own secrets masked out of what a dead letter shows: a destination that echoes
//! the request in its error answer puts the sink's bearer token into the DLQ's response
//! excerpt, and `dlq show`, `dlq list` and the console print that excerpt.

use bytes::Bytes;

use crate::connectors::sink::Credentials;
use crate::connectors::Sink;

/// The values of a sink's secrets, masked wherever a dead letter's text is shown.
pub(super) struct Redact(Vec<String>);

/// What a masked secret shows as.
const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not masked: masking them would blank common words.
const REDACT_MIN_CHARS: usize = 6;

impl Redact {
    /// What `sink` sends and a destination may echo: its header values from secret
    /// references, the password of its URL (raw and as the `Basic` credentials made of
    /// it) and its signing key.
    pub(super) fn of(sink: &Sink) -> Redact {
        let mut secrets: Vec<String> = sink
            .headers
            .iter()
            .filter(|(_, v)| v.is_sensitive())
            .filter_map(|(_, v)| v.to_str().ok().map(str::to_owned))
            .collect();
        if let Some((user, password)) = sink.url.userinfo() {
            use base64::Engine as _;
            let basic = format!("{user}:{password}");
            secrets.push(base64::engine::general_purpose::STANDARD.encode(basic));
            secrets.push(password);
        }
        match &sink.credentials {
            Some(Credentials::Header(v)) => {
                // `Bearer <token>` / `Basic <pair>`: the credential alone is echoed too.
                if let Ok(v) = v.to_str() {
                    secrets.extend(v.split_once(' ').map(|(_, c)| c.to_owned()));
                    secrets.push(v.to_owned());
                }
            }
            Some(Credentials::OAuth2 { client_secret, .. }) => {
                secrets.push(client_secret.expose().to_owned());
            }
            None => {}
        }
        secrets.extend(sink.signing_key.iter().map(|k| k.expose().to_owned()));
        secrets.retain(|s| s.chars().count() >= REDACT_MIN_CHARS);
        // The longest first, so a secret inside a longer one is masked with it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redact(secrets)
    }

    /// `raw` with every secret masked, before it is escaped or cut for display; also the
    /// start of a secret at its very end, where a stored excerpt cut one off.
    pub(super) fn bytes(&self, raw: &Bytes) -> Bytes {
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
        Bytes::from(out)
    }
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
}
