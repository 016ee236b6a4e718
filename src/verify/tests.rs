//! Cross-scheme tests: every scheme built from config, `sign` → `verify` over awkward
//! bodies (empty, CRLF, non-UTF-8, 1 MiB), tampering detected, sample bodies verify.

use super::config::VerifyConfig;
use super::registry::{RoundTrip, SCHEMES, TEST_URL as URL};
use super::{twilio, Verifier, VerifyError, WebhookRequest};

const NOW: i64 = 1_717_243_200;

/// One verifier per registry row that signs, built from the row's round-trip table (two
/// rotated secrets, the first signing), plus a second shape of the generic scheme.
fn all_schemes() -> Vec<(&'static str, Verifier)> {
    tables()
        .into_iter()
        .map(|(name, [first, second], keys)| (name, config(name, &[first, second], keys)))
        .collect()
}

/// The verifier for `scheme` with `secrets` and the table's other `keys`.
fn config(scheme: &str, secrets: &[&str], keys: &str) -> Verifier {
    let text = format!("scheme = \"{scheme}\"\nsecrets = {secrets:?}\n{keys}\n");
    let config: VerifyConfig = toml::from_str(&text).unwrap_or_else(|e| {
        panic!("{scheme}: its round-trip table in src/verify/registry.rs does not parse: {e}")
    });
    config.build().unwrap_or_else(|e| {
        panic!("{scheme}: its round-trip table in src/verify/registry.rs does not build: {e:?}")
    })
}

/// (scheme, secrets, other keys) for every scheme the round-trip tests sign with.
fn tables() -> Vec<(&'static str, [&'static str; 2], &'static str)> {
    let mut out: Vec<_> = (SCHEMES.iter())
        .filter_map(|s| match s.round_trip {
            RoundTrip::Signs { secrets, keys } => Some((s.name, secrets, keys)),
            RoundTrip::CannotSign(_) => None,
        })
        .collect();
    out.push((
        "hmac",
        ["new-secret", "old-secret"],
        "header = \"X-Signature\"\nprefix = \"sha256=\"",
    ));
    out
}

#[test]
fn every_registry_row_is_in_the_round_trip_tests() {
    let schemes = all_schemes();
    for (name, verifier) in &schemes {
        assert_eq!(
            verifier.scheme_name(),
            *name,
            "the verifier names its registry row"
        );
    }
    let signed: Vec<&str> = schemes.iter().map(|(name, _)| *name).collect();
    for scheme in SCHEMES {
        match scheme.round_trip {
            RoundTrip::Signs { .. } => assert!(
                signed.contains(&scheme.name),
                "scheme {} is missing from the round-trip tests (src/verify/tests.rs, all_schemes)",
                scheme.name
            ),
            RoundTrip::CannotSign(why) => assert!(!why.is_empty(), "{}", scheme.name),
        }
    }
}

fn awkward_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut big = Vec::with_capacity(1 << 20);
    while big.len() < (1 << 20) {
        big.extend_from_slice(b"{\"k\":\"v\"}\r\n\xff\x00");
    }
    vec![
        ("empty", Vec::new()),
        ("crlf", b"line one\r\nline two\r\n".to_vec()),
        ("non-utf8", vec![0xff, 0xfe, 0x00, 0xc3, 0x28, b'{', b'}']),
        ("1MiB", big),
    ]
}

/// Linear's timestamp lives in the (signed) JSON body, so its bodies must carry one.
fn linear_body(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{{\"webhookTimestamp\":{},\"blob\":\"", NOW * 1000).into_bytes();
    out.extend(body.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
    out.extend_from_slice(b"\"}");
    out
}

fn request<'a>(headers: &'a http::HeaderMap, body: &'a [u8], url: &'a str) -> WebhookRequest<'a> {
    WebhookRequest {
        headers,
        body,
        url,
        now: NOW,
    }
}

#[test]
fn sign_then_verify_round_trips_for_every_scheme_and_body() {
    for (scheme, verifier) in all_schemes() {
        for (label, raw) in awkward_bodies() {
            // A 1 MiB form parameter is over Twilio's cap (large Twilio bodies are JSON,
            // signed through bodySHA256: see the test below).
            if scheme == "twilio" && label == "1MiB" {
                assert!(verifier.sign(&raw, URL, NOW).is_none());
                continue;
            }
            let body = if scheme == "linear" {
                linear_body(&raw)
            } else {
                raw
            };
            let headers = verifier
                .sign(&body, URL, NOW)
                .unwrap_or_else(|| panic!("{scheme} cannot sign {label}"));
            let req = request(&headers, &body, URL);
            let verified = verifier
                .verify(&req)
                .unwrap_or_else(|e| panic!("{scheme} {label}: {e}"));
            assert_eq!(verifier.handshake(&verified), None, "{scheme} {label}");
        }
    }
}

#[test]
fn twilio_json_bodies_round_trip_through_body_sha256() {
    let (_, verifier) = all_schemes()
        .into_iter()
        .find(|(s, _)| *s == "twilio")
        .unwrap();
    for (label, body) in awkward_bodies() {
        let url = twilio::url_with_body_sha256(URL, &body);
        let headers = verifier.sign(&body, &url, NOW).unwrap();
        assert_eq!(
            verifier.verify(&request(&headers, &body, &url)).map(drop),
            Ok(()),
            "{label}"
        );
    }
}

#[test]
fn tampered_body_fails_for_every_body_signing_scheme() {
    for (scheme, verifier) in all_schemes() {
        let row = super::registry::find(scheme).unwrap();
        if row.secret_header != super::registry::SecretHeader::None {
            continue; // A token, not a MAC: the body is not authenticated.
        }
        let body = if scheme == "linear" {
            linear_body(b"payload")
        } else {
            b"a=1&b=2".to_vec()
        };
        let headers = verifier.sign(&body, URL, NOW).unwrap();
        let mut tampered = body.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        let result = verifier
            .verify(&request(&headers, &tampered, URL))
            .map(drop);
        assert!(result.is_err(), "{scheme} accepted a tampered body");
        assert_ne!(result, Err(VerifyError::StaleTimestamp), "{scheme}");
    }
}

#[test]
fn first_secret_signs_and_second_secret_alone_rejects_it() {
    // The configs list the signing secret first; a verifier holding only the other one
    // must reject, proving `sign` used the first.
    for (scheme, [first, second], keys) in tables() {
        let verifier = config(scheme, &[first, second], keys);
        let body = if scheme == "linear" {
            linear_body(b"x")
        } else {
            b"x".to_vec()
        };
        let headers = verifier.sign(&body, URL, NOW).unwrap();
        let old_only = config(scheme, &[second], keys);
        assert!(
            old_only.verify(&request(&headers, &body, URL)).is_err(),
            "{scheme}"
        );
    }
}

#[test]
fn sample_bodies_verify_when_signed_now() {
    for (scheme, verifier) in all_schemes() {
        let body = verifier.sample_body_at(NOW);
        assert!(!verifier.sample_body().is_empty(), "{scheme}");
        let headers = verifier.sign(&body, URL, NOW).unwrap();
        let mut headers = headers;
        if !headers.contains_key(http::header::CONTENT_TYPE) {
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(verifier.sample_content_type()),
            );
        }
        assert_eq!(
            verifier.verify(&request(&headers, &body, URL)).map(drop),
            Ok(()),
            "{scheme}"
        );
        if verifier.sample_content_type() == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&body)
                .unwrap_or_else(|e| panic!("{scheme} sample is not JSON: {e}"));
        }
    }
}

#[test]
fn none_accepts_everything_and_cannot_sign() {
    let config: VerifyConfig = toml::from_str("scheme = \"none\"").unwrap();
    let verifier = config.build().unwrap();
    let headers = http::HeaderMap::new();
    let req = request(&headers, b"anything", "");
    let verified = verifier.verify(&req).unwrap();
    assert!(verifier.sign(b"x", URL, NOW).is_none());
    assert_eq!(verifier.handshake(&verified), None);
    assert_eq!(verifier.sample_content_type(), "application/json");
}

#[test]
fn missing_headers_are_reported_not_panicked_for_every_scheme() {
    let empty = http::HeaderMap::new();
    for (scheme, verifier) in all_schemes() {
        let result = verifier.verify(&request(&empty, b"{}", URL)).map(drop);
        assert!(
            matches!(result, Err(VerifyError::MissingHeader(_))),
            "{scheme}: {result:?}"
        );
        assert_eq!(result.unwrap_err().reason(), "missing_header");
    }
}

#[test]
fn reasons_are_short_static_labels() {
    let all = [
        VerifyError::MissingHeader("h"),
        VerifyError::MalformedHeader("h"),
        VerifyError::StaleTimestamp,
        VerifyError::Mismatch,
        VerifyError::BodyDigestMismatch,
        VerifyError::MalformedBody("f"),
        VerifyError::UnsignedBody,
    ];
    for e in all {
        let r = e.reason();
        assert!(
            r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{r}"
        );
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn garbage_header_values_never_panic() {
    let values: [&[u8]; 8] = [
        b"",
        b"=",
        b",,,;;;",
        b"t=,v1=",
        b"\xff\xfe",
        b"v0=\xc3\x28",
        b"sha256=\xe2\x82",
        b"ts=99999999999999999999999;h1=zz",
    ];
    let names = [
        "x-hub-signature-256",
        "x-hub-signature",
        "stripe-signature",
        "x-slack-signature",
        "x-slack-request-timestamp",
        "x-shopify-hmac-sha256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-signature",
        "x-gitlab-token",
        "x-webhook-token",
        "authorization",
        "x-twilio-signature",
        "paddle-signature",
        "x-square-hmacsha256-signature",
        "x-zm-signature",
        "x-zm-request-timestamp",
        "linear-signature",
        "twitch-eventsub-message-id",
        "twitch-eventsub-message-timestamp",
        "twitch-eventsub-message-signature",
        "twitch-eventsub-message-type",
        "x-signature",
        "x-sig",
        "x-ts",
        "x-id",
        "content-type",
    ];
    for value in values {
        let mut headers = http::HeaderMap::new();
        for name in names {
            if let Ok(v) = http::HeaderValue::from_bytes(value) {
                headers.insert(http::header::HeaderName::from_static(name), v);
            }
        }
        for (_, verifier) in all_schemes() {
            // Only a verified request reaches a handshake, so none is asked here.
            assert!(verifier
                .verify(&request(&headers, value, URL))
                .map(drop)
                .is_err());
        }
    }
}

/// A copy of `headers` with `name`'s value rewritten by `f`.
fn rewritten(headers: &http::HeaderMap, name: &str, f: impl Fn(&str) -> String) -> http::HeaderMap {
    let mut out = headers.clone();
    let value = headers.get(name).unwrap().to_str().unwrap();
    out.insert(
        http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        http::HeaderValue::from_str(&f(value)).unwrap(),
    );
    out
}

#[test]
fn non_canonical_signatures_are_rejected_as_the_sdks_do() {
    // Each SDK compares the signature text (or decodes base64 with padding required), so
    // a signature that is the same bytes written differently is not valid there.
    let upper_hex = |v: &str| match v.rsplit_once('=') {
        Some((head, hex)) => format!("{head}={}", hex.to_ascii_uppercase()),
        None => v.to_ascii_uppercase(),
    };
    let unpadded = |v: &str| v.trim_end_matches('=').to_owned();
    type Rewrite<'a> = &'a dyn Fn(&str) -> String;
    let cases: [(&str, &str, Rewrite<'_>); 12] = [
        ("github", "x-hub-signature-256", &upper_hex),
        ("stripe", "stripe-signature", &upper_hex),
        ("stripe", "stripe-signature", &|v: &str| {
            v.replace(',', ", ")
        }),
        ("slack", "x-slack-signature", &upper_hex),
        ("paddle", "paddle-signature", &upper_hex),
        ("zoom", "x-zm-signature", &upper_hex),
        ("linear", "linear-signature", &upper_hex),
        ("twitch", "twitch-eventsub-message-signature", &upper_hex),
        ("shopify", "x-shopify-hmac-sha256", &unpadded),
        ("square", "x-square-hmacsha256-signature", &unpadded),
        ("twilio", "x-twilio-signature", &unpadded),
        ("standard-webhooks", "webhook-signature", &unpadded),
    ];
    let schemes = all_schemes();
    for (scheme, header, rewrite) in cases {
        let (_, verifier) = schemes.iter().find(|(s, _)| *s == scheme).unwrap();
        let body = if scheme == "linear" {
            linear_body(b"{}")
        } else {
            b"{}".to_vec()
        };
        let mut headers = verifier.sign(&body, URL, NOW).unwrap();
        if scheme == "twilio" {
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        assert_eq!(
            verifier.verify(&request(&headers, &body, URL)).map(drop),
            Ok(()),
            "{scheme}"
        );
        let changed = rewritten(&headers, header, rewrite);
        assert_ne!(
            changed.get(header),
            headers.get(header),
            "{scheme}: nothing rewritten"
        );
        assert!(
            verifier
                .verify(&request(&changed, &body, URL))
                .map(drop)
                .is_err(),
            "{scheme} accepted {:?}",
            changed.get(header)
        );
    }
}
