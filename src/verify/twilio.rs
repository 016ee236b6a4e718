//! Twilio webhooks: `X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url + params))`.
//!
//! Rule (Twilio Docs, "Webhooks security — Validating signatures from Twilio",
//! <https://www.twilio.com/docs/usage/webhooks/webhooks-security>, and "Security",
//! <https://www.twilio.com/docs/usage/security#validating-requests>): take the full URL
//! Twilio requested (scheme, host, path and query, exactly as configured); for an
//! `application/x-www-form-urlencoded` POST, sort the decoded parameters by name (Unicode
//! code point order) and append each name immediately followed by its value; HMAC-SHA1
//! that string with the account auth token and base64-encode it. For other bodies (JSON)
//! Twilio adds `bodySHA256=<hex SHA-256 of the body>` to the URL's query string and signs
//! the URL alone; the body must then hash to that value. Like Twilio's own helper
//! libraries, the URL is also tried with the default port added (or removed), since
//! proxies disagree about keeping `:443`. Twilio signs no timestamp, so there is no
//! replay window to check. A non-form body without `bodySHA256` is rejected: nothing
//! would authenticate it.
//!
//! The form is the one part of a webhook whose parsing cost an unauthenticated sender
//! controls, so it is bounded before any MAC: at most [`MAX_PARAMS`] parameters of at
//! most [`MAX_PARAM_BYTES`] each (a 500k-parameter body is refused after reading the
//! first thousand). Canonicalisation borrows every parameter from the body, sorts the
//! borrowed slices by their decoded bytes (decoding on the fly), and decodes them once
//! into a single buffer the MAC reads: two allocations per request, none per parameter.

use std::borrow::Cow;
use std::cmp::Ordering;

use http::header::CONTENT_TYPE;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::crypto::{self, Algorithm, Key, Tag};
use super::{VerifyError, WebhookRequest};

/// The signature header.
pub const HEADER: &str = "X-Twilio-Signature";
/// Present on webhooks signed with a SharedKey instead of the account auth token:
/// `key=<shared key id>,algorithm=HMAC_SHA256`. The secret is then the SharedKey's.
pub const SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";
/// The query parameter carrying the body digest for non-form bodies.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";
const FORM: &str = "application/x-www-form-urlencoded";

/// An incoming-SMS webhook, form-encoded as Twilio sends it.
pub const SAMPLE_BODY: &[u8] = b"ToCountry=US&ToState=CA&SmsMessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&NumMedia=0&ToCity=SAN+FRANCISCO&FromZip=94105&SmsSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Hello+from+Twilio&FromCountry=US&To=%2B14155550199&ToZip=94105&NumSegments=1&MessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&AccountSid=AC00000000000000000000000000000000&From=%2B14155550100&ApiVersion=2010-04-01";

/// Verifies Twilio webhooks.
#[derive(Debug, Clone)]
pub struct Twilio {
    keys: Vec<Key>,
}

/// Most form parameters accepted. Twilio's richest webhooks carry a few dozen; anything
/// near this is an attempt to make canonicalisation expensive.
pub const MAX_PARAMS: usize = 1000;
/// Largest accepted `name=value` pair, still percent-encoded. A 1,600-character SMS body
/// percent-encodes to under 20 KiB; Conversations attributes are at most 16 KiB decoded.
pub const MAX_PARAM_BYTES: usize = 64 << 10;

/// One `name=value` pair of a form body, still percent-encoded, borrowed from the body.
#[derive(Clone, Copy)]
struct RawParam<'a> {
    name: &'a [u8],
    value: &'a [u8],
}

/// The bytes `encoded` stands for in `application/x-www-form-urlencoded`: `+` is a space,
/// `%XX` one byte, anything else (including a malformed `%`) itself — as the
/// `form_urlencoded` crate and Twilio's helper libraries decode.
fn decoded(encoded: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut rest = encoded;
    std::iter::from_fn(move || {
        let (&first, tail) = rest.split_first()?;
        rest = tail;
        Some(match first {
            b'+' => b' ',
            b'%' => match percent_byte(rest) {
                Some(byte) => {
                    rest = rest.get(2..).unwrap_or_default();
                    byte
                }
                None => b'%',
            },
            other => other,
        })
    })
}

fn percent_byte(hex_digits: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    let (&hi, &lo) = (hex_digits.first()?, hex_digits.get(1)?);
    Some((digit(hi)? * 16 + digit(lo)?) as u8)
}

/// Order by decoded name, then decoded value (repeated names), which for UTF-8 text is
/// Twilio's code-point order.
fn canonical_order(a: &RawParam<'_>, b: &RawParam<'_>) -> Ordering {
    decoded(a.name)
        .cmp(decoded(b.name))
        .then_with(|| decoded(a.value).cmp(decoded(b.value)))
}

/// The form's parameters in canonical order, refusing bodies over the caps as soon as
/// they are seen (nothing after the offending parameter is looked at).
fn sorted_params(body: &[u8]) -> Result<Vec<RawParam<'_>>, VerifyError> {
    let mut params = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if params.len() == MAX_PARAMS {
            return Err(VerifyError::TooManyParameters);
        }
        if pair.len() > MAX_PARAM_BYTES {
            return Err(VerifyError::ParameterTooLarge);
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        params.push(RawParam { name, value });
    }
    params.sort_unstable_by(canonical_order);
    // twilio-python signs each distinct value of a name once (`sorted(set(values))`).
    params.dedup_by(|a, b| canonical_order(a, b) == Ordering::Equal);
    Ok(params)
}

/// Appends `encoded`'s decoded text to `out`. Invalid UTF-8 becomes U+FFFD, as the
/// helper libraries' string decoding does; only that rare case allocates.
fn push_decoded(out: &mut Vec<u8>, encoded: &[u8]) {
    let start = out.len();
    out.extend(decoded(encoded));
    if std::str::from_utf8(&out[start..]).is_err() {
        let text = String::from_utf8_lossy(&out[start..]).into_owned();
        out.truncate(start);
        out.extend_from_slice(text.as_bytes());
    }
}

/// What Twilio appends to the URL for a form body: every name immediately followed by
/// its value, in canonical order, decoded.
fn canonical_form(body: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let params = sorted_params(body)?;
    let mut out = Vec::with_capacity(body.len());
    for param in &params {
        push_decoded(&mut out, param.name);
        push_decoded(&mut out, param.value);
    }
    Ok(out)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.split_once(';').map_or(ct, |(media, _)| media))
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(FORM))
}

/// The `bodySHA256` value from the URL's query string, if any.
fn body_sha256_param(url: &str) -> Option<Cow<'_, str>> {
    let (_, query) = url.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == BODY_SHA256_PARAM)
        .map(|(_, value)| value)
}

/// `url` with `bodySHA256=<hex SHA-256 of body>` appended, as Twilio requests JSON
/// webhooks; `hookbridge send` uses it to build the URL before [`Twilio::sign`].
pub fn url_with_body_sha256(url: &str, body: &[u8]) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}{BODY_SHA256_PARAM}={}",
        hex::encode(Sha256::digest(body))
    )
}

/// The same URL with the scheme's default port removed if present, or added if absent;
/// `None` for a non-default port or a URL that is not http(s).
fn alternate_port_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(authority_end)?;
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let (userinfo, host_port) = authority.split_at_checked(host_start)?;
    // A ':' inside an IPv6 literal's brackets is not a port separator.
    let port_colon = host_port
        .rfind(':')
        .filter(|&colon| host_port.rfind(']').is_none_or(|bracket| colon > bracket));
    match port_colon {
        Some(colon) => {
            let (host, port) = host_port.split_at_checked(colon)?;
            (port.get(1..)? == default_port).then(|| format!("{scheme}://{userinfo}{host}{tail}"))
        }
        None => Some(format!(
            "{scheme}://{userinfo}{host_port}:{default_port}{tail}"
        )),
    }
}

/// The MAC named by [`SETTINGS_HEADER`], read as twilio-python reads it: the first
/// non-empty `algorithm=` item, case-insensitive; absent means the auth token's SHA-1.
fn signature_algorithm(headers: &HeaderMap) -> Result<Algorithm, VerifyError> {
    let Some(settings) = headers.get(SETTINGS_HEADER) else {
        return Ok(Algorithm::Sha1);
    };
    let settings = settings
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader(SETTINGS_HEADER))?;
    let named = settings
        .split(',')
        .filter_map(|item| item.split_once('='))
        .find(|(name, value)| name.trim() == "algorithm" && !value.trim().is_empty())
        .map(|(_, value)| value.trim());
    match named {
        None => Ok(Algorithm::Sha1),
        Some(a) if a.eq_ignore_ascii_case("HMAC_SHA1") => Ok(Algorithm::Sha1),
        Some(a) if a.eq_ignore_ascii_case("HMAC_SHA256") => Ok(Algorithm::Sha256),
        Some(_) => Err(VerifyError::MalformedHeader(SETTINGS_HEADER)),
    }
}

fn check_body_digest(expected_hex: &str, body: &[u8]) -> Result<(), VerifyError> {
    let mut expected = [0u8; 32];
    hex::decode_to_slice(expected_hex, &mut expected)
        .map_err(|_| VerifyError::BodyDigestMismatch)?;
    if crypto::ct_eq(&expected, &Sha256::digest(body)) {
        Ok(())
    } else {
        Err(VerifyError::BodyDigestMismatch)
    }
}

impl Twilio {
    /// A verifier over auth tokens `keys` (primary and secondary during rotation).
    pub fn new(keys: Vec<Key>) -> Self {
        Twilio { keys }
    }

    fn verify_url(
        &self,
        (url, form): (&str, &[u8]),
        alg: Algorithm,
        tag: &Tag,
    ) -> Result<(), VerifyError> {
        let alternate = alternate_port_url(url);
        for candidate in std::iter::once(url).chain(alternate.as_deref()) {
            if crypto::verify_any(
                &self.keys,
                alg,
                &[candidate.as_bytes(), form],
                std::slice::from_ref(tag),
            )
            .is_ok()
            {
                return Ok(());
            }
        }
        Err(VerifyError::Mismatch)
    }

    /// Checks the signature over `req.url` (+ form params), and the body digest when the
    /// URL carries one.
    pub fn verify(&self, req: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        let value = crypto::header_str(req.headers, HEADER)?;
        let alg = signature_algorithm(req.headers)?;
        let tag = Tag::from_base64(value, alg).ok_or(VerifyError::MalformedHeader(HEADER))?;
        if let Some(expected) = body_sha256_param(req.url) {
            self.verify_url((req.url, b""), alg, &tag)?;
            return check_body_digest(&expected, req.body);
        }
        if is_form(req.headers) {
            return self.verify_url((req.url, &canonical_form(req.body)?), alg, &tag);
        }
        if req.body.is_empty() {
            return self.verify_url((req.url, b""), alg, &tag);
        }
        Err(VerifyError::UnsignedBody)
    }

    /// Signs as Twilio would: a URL carrying `bodySHA256` (see [`url_with_body_sha256`])
    /// is signed alone with `Content-Type: application/json`; an empty body signs the URL
    /// alone; any other body is treated as form parameters with the form Content-Type.
    pub fn sign(&self, body: &[u8], url: &str) -> Option<HeaderMap> {
        let key = self.keys.first()?;
        let mut headers = HeaderMap::new();
        let form = if body_sha256_param(url).is_some() {
            crypto::insert_header(&mut headers, CONTENT_TYPE.as_str(), "application/json")?;
            Vec::new()
        } else if body.is_empty() {
            Vec::new()
        } else {
            crypto::insert_header(&mut headers, CONTENT_TYPE.as_str(), FORM)?;
            canonical_form(body).ok()?
        };
        let tag = crypto::hmac(Algorithm::Sha1, key.as_bytes(), &[url.as_bytes(), &form])?;
        crypto::insert_header(&mut headers, HEADER, &tag.to_base64())?;
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{headers, keys};
    use crate::verify::WebhookRequest;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    /// The docs' parameters, deliberately not in sorted order.
    const FORM_BODY: &[u8] =
        b"To=%2B18005551212&Digits=1234&From=%2B12349013030&CallSid=CA1234567890ABCDE&Caller=%2B12349013030";

    fn twilio(secrets: &[&str]) -> Twilio {
        Twilio::new(keys(secrets))
    }

    fn form_headers(signature: &str) -> HeaderMap {
        headers(&[
            (HEADER, signature),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ])
    }

    fn req<'a>(headers: &'a HeaderMap, body: &'a [u8], url: &'a str) -> WebhookRequest<'a> {
        WebhookRequest {
            headers,
            body,
            url,
            now: 0,
        }
    }

    #[test]
    fn twilio_docs_known_answer() {
        // Twilio Docs, "Security — Validating requests" example (auth token 12345).
        let h = form_headers("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert_eq!(twilio(&[TOKEN]).verify(&req(&h, FORM_BODY, URL)), Ok(()));
        let signed = twilio(&[TOKEN]).sign(FORM_BODY, URL).unwrap();
        assert_eq!(signed.get(HEADER), h.get(HEADER));
    }

    #[test]
    fn helper_library_known_answers() {
        // The vectors in Twilio's helper libraries' test suites (same token and URL).
        let body = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
        let h = form_headers("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(twilio(&[TOKEN]).verify(&req(&h, body, URL)), Ok(()));

        let json = br#"{"property": "value", "boolean": true}"#;
        let url = format!(
            "{URL}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(url, url_with_body_sha256(URL, json));
        let h = headers(&[
            (HEADER, "a9nBmqA0ju/hNViExpshrM61xv4="),
            ("Content-Type", "application/json"),
        ]);
        assert_eq!(twilio(&[TOKEN]).verify(&req(&h, json, &url)), Ok(()));
        assert_eq!(
            twilio(&[TOKEN]).verify(&req(&h, br#"{"property": "evil"}"#, &url)),
            Err(VerifyError::BodyDigestMismatch)
        );
    }

    #[test]
    fn default_port_is_added_or_removed() {
        let v = twilio(&[TOKEN]);
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let h = form_headers("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert_eq!(v.verify(&req(&h, FORM_BODY, with_port)), Ok(()));
        let signed_with_port = v.sign(FORM_BODY, with_port).unwrap();
        assert_eq!(v.verify(&req(&signed_with_port, FORM_BODY, URL)), Ok(()));
        // A non-default port is never dropped.
        let other_port = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert_eq!(
            v.verify(&req(&h, FORM_BODY, other_port)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn alternate_port_url_cases() {
        assert_eq!(
            alternate_port_url("https://a.com/x").as_deref(),
            Some("https://a.com:443/x")
        );
        assert_eq!(
            alternate_port_url("http://a.com").as_deref(),
            Some("http://a.com:80")
        );
        assert_eq!(
            alternate_port_url("https://a.com:443?q=1").as_deref(),
            Some("https://a.com?q=1")
        );
        assert_eq!(
            alternate_port_url("https://u:p@a.com:443/").as_deref(),
            Some("https://u:p@a.com/")
        );
        assert_eq!(
            alternate_port_url("https://[::1]/x").as_deref(),
            Some("https://[::1]:443/x")
        );
        assert_eq!(
            alternate_port_url("https://[::1]:443/x").as_deref(),
            Some("https://[::1]/x")
        );
        assert_eq!(alternate_port_url("https://a.com:8443/x"), None);
        assert_eq!(alternate_port_url("ftp://a.com/x"), None);
        assert_eq!(alternate_port_url("not a url"), None);
        assert_eq!(
            alternate_port_url("https://é.com:443/ü").as_deref(),
            Some("https://é.com/ü")
        );
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = twilio(&["new"]).sign(FORM_BODY, URL).unwrap();
        assert_eq!(
            twilio(&["old", "new"]).verify(&req(&h, FORM_BODY, URL)),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampering_wrong_secret_url_missing_and_malformed() {
        let v = twilio(&[TOKEN]);
        let h = v.sign(FORM_BODY, URL).unwrap();
        let tampered = b"To=%2B18005551212&Digits=9999&From=%2B12349013030&CallSid=CA1234567890ABCDE&Caller=%2B12349013030";
        assert_eq!(
            v.verify(&req(&h, tampered, URL)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            twilio(&["other"]).verify(&req(&h, FORM_BODY, URL)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&h, FORM_BODY, "https://mycompany.com/other.php")),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"Body=hi", URL).unwrap();
        assert_eq!(
            v.verify(&req(&other, FORM_BODY, URL)),
            Err(VerifyError::Mismatch)
        );
        let mut missing = h.clone();
        missing.remove(HEADER);
        assert_eq!(
            v.verify(&req(&missing, FORM_BODY, URL)),
            Err(VerifyError::MissingHeader(HEADER))
        );
        let malformed = form_headers("not-base64!");
        assert_eq!(
            v.verify(&req(&malformed, FORM_BODY, URL)),
            Err(VerifyError::MalformedHeader(HEADER))
        );
    }

    #[test]
    fn json_without_body_digest_is_unsigned() {
        let v = twilio(&[TOKEN]);
        let h = headers(&[
            (HEADER, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
            ("Content-Type", "application/json"),
        ]);
        assert_eq!(
            v.verify(&req(&h, b"{}", URL)),
            Err(VerifyError::UnsignedBody)
        );
    }

    #[test]
    fn json_round_trip_and_url_tampering() {
        let v = twilio(&[TOKEN]);
        let body = br#"{"event":"call.completed"}"#;
        let url = url_with_body_sha256("https://hooks.example.com/twilio", body);
        let h = v.sign(body, &url).unwrap();
        assert_eq!(h.get(CONTENT_TYPE).unwrap(), "application/json");
        assert_eq!(v.verify(&req(&h, body, &url)), Ok(()));
        let forged_url = url_with_body_sha256("https://hooks.example.com/twilio", b"{}");
        assert_eq!(
            v.verify(&req(&h, b"{}", &forged_url)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn empty_body_signs_url_alone() {
        let v = twilio(&[TOKEN]);
        let h = v.sign(b"", URL).unwrap();
        assert!(h.get(CONTENT_TYPE).is_none());
        assert_eq!(v.verify(&req(&h, b"", URL)), Ok(()));
    }

    #[test]
    fn canonical_form_decodes_like_form_urlencoded() {
        for body in [
            &b"b=2&a=z&a=y&msg=hello+world"[..],
            b"x=%E2%9C%93&%zz=1&bad=%C3&tail=%4&&=v&k&k=",
            b"name=%2B1%20415&name=%2b1+415",
        ] {
            let mut expected: Vec<(String, String)> = form_urlencoded::parse(body)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            expected.sort();
            expected.dedup();
            let joined: String = expected.iter().map(|(n, v)| format!("{n}{v}")).collect();
            assert_eq!(
                String::from_utf8(canonical_form(body).unwrap()).unwrap(),
                joined,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn shared_key_mode_uses_the_named_algorithm() {
        let v = twilio(&["shared-key-secret"]);
        let form = b"Body=hi&From=%2B1555";
        let mac = crypto::hmac(
            Algorithm::Sha256,
            b"shared-key-secret",
            &[URL.as_bytes(), b"BodyhiFrom+1555"],
        )
        .unwrap();
        let mut h = form_headers(&mac.to_base64());
        h.insert(
            SETTINGS_HEADER,
            "key=webhooks_sharedkey_1, algorithm = hmac_sha256"
                .parse()
                .unwrap(),
        );
        assert_eq!(v.verify(&req(&h, form, URL)), Ok(()));
        h.insert(
            SETTINGS_HEADER,
            "key=k,algorithm=HMAC_SHA1".parse().unwrap(),
        );
        assert_eq!(
            v.verify(&req(&h, form, URL)),
            Err(VerifyError::MalformedHeader(HEADER))
        );
        h.insert(SETTINGS_HEADER, "key=k,algorithm=HMAC_MD5".parse().unwrap());
        assert_eq!(
            v.verify(&req(&h, form, URL)),
            Err(VerifyError::MalformedHeader(SETTINGS_HEADER))
        );
    }

    #[test]
    fn repeated_identical_pairs_count_once_as_in_twilio_python() {
        let v = twilio(&[TOKEN]);
        let h = v.sign(b"a=1&b=2", URL).unwrap();
        assert_eq!(v.verify(&req(&h, b"b=2&a=1&a=1", URL)), Ok(()));
        assert_eq!(
            v.verify(&req(&h, b"b=2&a=1&a=3", URL)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn oversized_forms_are_refused_before_any_mac() {
        let v = twilio(&[TOKEN]);
        let h = form_headers("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        let flood = "a=1&".repeat(500_000);
        assert_eq!(
            v.verify(&req(&h, flood.as_bytes(), URL)),
            Err(VerifyError::TooManyParameters)
        );
        let at_cap = "a=1&".repeat(MAX_PARAMS);
        assert_eq!(
            v.verify(&req(&h, at_cap.as_bytes(), URL)),
            Err(VerifyError::Mismatch)
        );
        let big = format!("Body={}", "x".repeat(MAX_PARAM_BYTES));
        assert_eq!(
            v.verify(&req(&h, big.as_bytes(), URL)),
            Err(VerifyError::ParameterTooLarge)
        );
        assert!(v.sign(flood.as_bytes(), URL).is_none());
    }

    #[test]
    fn repeated_and_encoded_params_sort_and_decode() {
        // Values are compared decoded: `+` and `%20` are the same space.
        let v = twilio(&[TOKEN]);
        let h = v.sign(b"b=2&a=z&a=y&msg=hello+world", URL).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"a=y&msg=hello%20world&b=2&a=z", URL)),
            Ok(())
        );
    }
}
