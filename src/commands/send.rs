//! `hookbridge send`: POST a webhook signed exactly as the source's provider would sign
//! it, and print the response — local testing without the provider.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context};

use crate::commands::ops::OpsError;
use crate::connectors::Connectors;
use crate::verify::registry::{self, RoundTrip};
use crate::verify::{twilio, SignedUrl, Verifier};

/// The body file, at most the largest body any source takes (a device that never ends
/// is not read to the end; a body over the source's own `max_body` is sent, and its
/// 413 shown). A file that is not there, not readable or a directory is a usage error
/// (exit 2); another read error is not.
fn read_body(path: &Path) -> anyhow::Result<Vec<u8>> {
    let max_body = crate::connectors::source::MAX_MAX_BODY;
    use std::io::{ErrorKind, Read};
    let named = |e: std::io::Error| -> anyhow::Error {
        let text = format!("--body {}: {e}", path.display());
        match e.kind() {
            ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::IsADirectory => {
                OpsError::Invalid(text).into()
            }
            _ => anyhow!(text),
        }
    };
    let mut body = Vec::new();
    (std::fs::File::open(path).map_err(named)?)
        .take(max_body + 1)
        .read_to_end(&mut body)
        .map_err(named)?;
    if body.len() as u64 > max_body {
        return Err(OpsError::Invalid(format!(
            "--body {}: longer than any source takes ({max_body} bytes)",
            path.display()
        ))
        .into());
    }
    Ok(body)
}

/// Signs and sends; exit code 0 on a 2xx.
pub async fn send(
    connectors: &Connectors,
    name: &str,
    body: Option<&Path>,
    base: &str,
) -> anyhow::Result<ExitCode> {
    let source = connectors
        .source(name)
        .ok_or_else(|| OpsError::Invalid(format!("no source connector named {name:?}")))?;
    // An address, not a URL to append to: the source's path goes after it, so a query or
    // fragment would end up before the path. Not repeated in the message: it may carry a
    // password.
    let is_http = |u: reqwest::Url| {
        matches!(u.scheme(), "http" | "https")
            && u.has_host()
            && u.query().is_none()
            && u.fragment().is_none()
    };
    if !reqwest::Url::parse(base).is_ok_and(is_http) {
        return Err(OpsError::Invalid(
            "--url: expected hookbridge's webhook address, such as http://127.0.0.1:8080 (no query or fragment)".into(),
        )
        .into());
    }
    let now = crate::clock::unix_secs();
    let body: Vec<u8> = match body {
        Some(p) => read_body(p)?,
        None => source.verifier.sample_body_at(now).to_vec(),
    };
    // Mailgun signs inside the body: the body sent is the signed one.
    let (body, signed_in_body) = match source.verifier.sign_body(&body, now) {
        Some(signed) => (signed, true),
        None => (body, false),
    };
    let mut url = format!("{}{}", base.trim_end_matches('/'), source.path);
    // With trust_forwarded_from, send goes direct, so it signs what a proxy would forward.
    let mut signed_url = (source.signed_url.public()).map_or_else(|| url.clone(), str::to_owned);
    // Twilio signs a JSON body through a `bodySHA256` query parameter on the URL.
    if matches!(source.verifier, Verifier::Twilio(_))
        && body.first().is_some_and(|b| matches!(b, b'{' | b'['))
    {
        url = twilio::url_with_body_sha256(&url, &body);
        signed_url = twilio::url_with_body_sha256(&signed_url, &body);
    }
    let scheme = source.verifier.scheme_name();
    let mut headers = match source.verifier.sign(&body, &signed_url, now) {
        Some(headers) => headers,
        None if signed_in_body || scheme == "none" => Default::default(),
        // Sent unsigned, it would only be refused (and counted against this address).
        None => return Err(cannot_sign(scheme)),
    };
    if matches!(source.signed_url, SignedUrl::Forwarded(_)) {
        forwarded_headers(&mut headers, &url)?;
    }
    if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static(source.verifier.sample_content_type()),
        );
    }
    let resp = reqwest::Client::new()
        .post(&url)
        .headers(headers)
        .body(body)
        .send()
        .await
        // The URL once, in the context (reqwest's own message names it too), without a
        // user and password given in `--url`.
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("POST {}", crate::connectors::template::redacted_url(&url)))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    super::say(format_args!("{} {}", status.as_u16(), text));
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The headers a trusted proxy would add for `url`, so a source that reads the signed URL
/// from them (`trust_forwarded_from`) sees the URL `send` signed.
fn forwarded_headers(headers: &mut reqwest::header::HeaderMap, url: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).with_context(|| format!("parsing {url}"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(anyhow!("{url} has no host")),
    };
    headers.insert("x-forwarded-proto", parsed.scheme().parse()?);
    headers.insert("x-forwarded-host", host.parse()?);
    Ok(())
}

/// Why `send` cannot sign for `scheme`, as the scheme registry says.
fn cannot_sign(scheme: &str) -> anyhow::Error {
    let why = match registry::find(scheme).map(|s| s.round_trip) {
        Some(RoundTrip::CannotSign(why)) => why,
        _ => "no signing key is configured",
    };
    anyhow!("hookbridge send cannot sign for scheme {scheme:?} ({why}): sign with the provider's own tools")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing is sent for a scheme `send` cannot sign: the address is never dialled.
    #[tokio::test]
    async fn a_source_send_cannot_sign_for_is_refused_before_sending() {
        let mut connectors = Connectors::default();
        let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let text = format!(
            "[source]\nname = \"d\"\npath = \"/d\"\ntopic = \"t\"\nverify = {{ scheme = \"discord\", public_keys = [\"{key}\"] }}\n"
        );
        crate::connectors::load_file("d.toml", &text, &mut connectors).expect("a discord source");
        // Port 9 refuses: were anything sent, the error would be the connection's.
        let e = send(&connectors, "d", None, "http://127.0.0.1:9")
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("cannot sign for scheme \"discord\""),
            "{e}"
        );
    }

    #[test]
    fn a_scheme_send_cannot_sign_is_an_error_saying_why() {
        let e = cannot_sign("discord").to_string();
        assert!(
            e.contains("\"discord\"") && e.contains("cannot sign"),
            "{e}"
        );
        let Some(RoundTrip::CannotSign(why)) = registry::find("discord").map(|s| s.round_trip)
        else {
            panic!("discord is registered as one send cannot sign")
        };
        assert!(e.contains(why), "{e}");
    }
}
