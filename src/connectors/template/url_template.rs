//! A sink's `url` as a template: placeholders in path and query only, values
//! percent-encoded so they never add a segment or parameter, no `.`/`..` segment made of a
//! value, and a host taken from a record only when the sink lists it in `allowed_hosts`
//! (records of ingress sources are written by third parties: SSRF). Also what `check`
//! and logs show of a URL: credentials and secret-looking query values redacted.

use std::borrow::Cow;

use super::{Escape, Field, Missing, Template};

/// A sink's `url`: literal, or a template whose placeholders sit in the path and query
/// (and in the host only with `allowed_hosts`). Its `Debug` is the redacted URL.
#[derive(Clone)]
pub struct UrlTemplate {
    /// The URL as written, for `check` (placeholders shown, never values).
    pub text: String,
    /// Scheme and authority (`https://host:port`), filled in when `allowed_hosts` is set.
    origin: Template,
    /// Path, query and fragment.
    rest: Template,
    /// Hosts a filled-in URL may name (lowercase, optional `:port`); empty: the host is
    /// literal.
    allowed_hosts: Vec<String>,
    /// The user and password written before the host, percent-decoded. They are never
    /// part of a filled-in URL: the sink sends them as its `Authorization`.
    userinfo: Option<Userinfo>,
}

/// `user:password@` of a URL, percent-decoded. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Userinfo {
    pub user: String,
    /// `None` for `https://user@host/`.
    pub password: Option<String>,
}

impl UrlTemplate {
    /// Parses `text`; `Err` says what is wrong (the URL is not repeated: it may hold
    /// credentials).
    pub fn parse(text: &str, allowed_hosts: &[String]) -> Result<UrlTemplate, String> {
        // The URL parser drops tabs and line breaks anywhere and reads any number of
        // slashes after `http:`: refused, so where the host and the user and password
        // are is read here exactly as the parser reads it.
        if text.contains(['\t', '\n', '\r']) {
            return Err("the URL has a tab or line break".into());
        }
        let (scheme_end, after, authority_end) =
            authority(text).ok_or("not a URL: expected http:// or https://")?;
        // `user:password@` is taken out of the template: the sink sends it as a header of
        // its own, so no filled-in URL ever carries it.
        let (userinfo, host_start) = match text[after..authority_end].rfind('@') {
            Some(at) => (Userinfo::parse(&text[after..after + at])?, after + at + 1),
            None => (None, after),
        };
        // With no host, the parser would take the path's first segment for one.
        if host_start == authority_end {
            return Err("not a URL: expected a host after `://`".into());
        }
        let origin = Template::parse(&format!(
            "{}{}",
            &text[..after],
            &text[host_start..authority_end]
        ))?;
        let rest = Template::parse(&text[authority_end..])?;
        if text[..scheme_end].contains(['{', '}']) {
            return Err("the scheme cannot be a placeholder".into());
        }
        // Checked here as well as on the sample URL below: with `allowed_hosts` the
        // sample's host is not on the list and the sample is not made.
        if !["http", "https"].contains(&text[..scheme_end].to_ascii_lowercase().as_str()) {
            return Err("must be an http:// or https:// URL".into());
        }
        if rest.fields().next().is_some() {
            if let Some(hash) = text.find('#') {
                if text[hash..].contains('{') {
                    return Err("placeholders are not allowed in the fragment".into());
                }
            }
        }
        if origin.fields().next().is_some() && allowed_hosts.is_empty() {
            return Err(
                "placeholders in scheme, host or port need `allowed_hosts` (a record must not choose where it is sent)"
                    .into(),
            );
        }
        let t = UrlTemplate {
            text: text.to_owned(),
            origin,
            rest,
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            userinfo,
        };
        // Every placeholder filled with a plain value must give a valid http(s) URL.
        let sample = t
            .fill(|f| {
                Some(Cow::Borrowed(match f {
                    Field::Partition | Field::Offset => b"0".as_slice(),
                    _ => b"x".as_slice(),
                }))
            })
            .map(Some)
            .or_else(|e| match e {
                // The sample host is not on the list; only the shape is checked here.
                UrlError::HostNotAllowed if !t.allowed_hosts.is_empty() => Ok(None),
                e => Err(e),
            });
        match sample {
            Ok(Some(url)) if !matches!(url.scheme(), "http" | "https") => {
                Err("must be an http:// or https:// URL".into())
            }
            // A literal URL goes where the parser reads it as written.
            Ok(Some(url)) if t.fields().next().is_none() && !same_place(text, &url) => {
                Err("not a URL the way it is written: its host is unclear".into())
            }
            Ok(_) => Ok(t),
            Err(UrlError::Invalid(e)) => Err(format!("not a URL: {e}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// True when every URL it fills in is plain `http://` (the scheme is never a
    /// placeholder): requests to it can only be HTTP/1.
    pub fn is_plain_http(&self) -> bool {
        self.text
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("http:"))
    }

    /// The URL when it has no placeholder (without its user and password, like every
    /// filled-in URL).
    pub fn literal(&self) -> Option<url::Url> {
        let text = format!("{}{}", self.origin.as_literal()?, self.rest.as_literal()?);
        url::Url::parse(&text).ok().filter(|u| !has_userinfo(u))
    }

    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.origin.fields().chain(self.rest.fields())
    }

    /// The URL as written, redacted ([`redacted`]), for `check` and logs.
    pub fn redacted(&self) -> String {
        redacted(&self.text)
    }

    /// The user and password written in the URL (`https://user:pass@host/…`), percent-
    /// decoded as they are sent.
    pub fn userinfo(&self) -> Option<&Userinfo> {
        self.userinfo.as_ref()
    }

    pub fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    /// The URL for one record.
    pub fn fill<'r>(
        &self,
        mut value: impl FnMut(&Field) -> Option<Cow<'r, [u8]>>,
    ) -> Result<url::Url, UrlError> {
        let mut out = Vec::with_capacity(self.text.len() + 32);
        // A host value is written as is and must then be a host name on the list; it is
        // not percent-encoded (that would not make it a host either). Only host name
        // characters: a `:`, `/`, `@` or `[` would let it write a port, a path, userinfo
        // or an IPv6 literal after the part the operator wrote.
        let mut foreign = false;
        self.origin
            .render(&mut out, Escape::Raw, |f: &Field| {
                let v = value(f)?;
                foreign |= v.is_empty()
                    || v.iter()
                        .any(|b| !(b.is_ascii_alphanumeric() || b".-".contains(b)));
                Some(v)
            })
            .map_err(UrlError::Missing)?;
        if foreign {
            return Err(UrlError::HostNotAllowed);
        }
        let rest_start = out.len();
        self.rest
            .render(&mut out, Escape::Url, &mut value)
            .map_err(UrlError::Missing)?;
        if self.rest.fields().next().is_some() && has_dot_segment(&out[rest_start..]) {
            return Err(UrlError::DotSegment);
        }
        let text = String::from_utf8(out).map_err(|_| UrlError::HostNotAllowed)?;
        let url = url::Url::parse(&text).map_err(UrlError::Invalid)?;
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(UrlError::TooLong);
        }
        // Never expected (the user and password were taken out, a host value cannot
        // write `@`); checked so that no URL sent can carry them even if the parser reads
        // a URL differently: at load, the sample below refuses such a template.
        if has_userinfo(&url) {
            return Err(UrlError::Userinfo);
        }
        if !self.allowed_hosts.is_empty() && !self.host_allowed(&url) {
            return Err(UrlError::HostNotAllowed);
        }
        Ok(url)
    }

    fn host_allowed(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let port = url.port_or_known_default();
        // An entry without a port allows the scheme's default port only.
        let default = url::Url::parse(&format!("{}://h/", url.scheme()))
            .ok()
            .and_then(|u| u.port_or_known_default());
        self.allowed_hosts.iter().any(|a| match a.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                h == host && p.parse::<u16>().ok() == port
            }
            _ => *a == host && port == default,
        })
    }
}

impl std::fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UrlTemplate")
            .field(&self.redacted())
            .finish()
    }
}

impl std::fmt::Debug for Userinfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Userinfo")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "redacted"))
            .finish()
    }
}

impl Userinfo {
    /// `text` (between `://` and `@`); `None` when it names neither user nor password.
    fn parse(text: &str) -> Result<Option<Userinfo>, String> {
        if text.contains(['{', '}']) {
            return Err(
                "placeholders are not allowed in the URL's user or password (write a brace as %7B or %7D)"
                    .into(),
            );
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| "the URL's user or password is not UTF-8 once percent-decoded")
        };
        let (user, password) = match text.split_once(':') {
            Some((user, password)) => (decode(user)?, Some(decode(password)?)),
            None => (decode(text)?, None),
        };
        // Basic credentials are `user:password`: a `:` in the user would move the split.
        if user.contains(':') {
            return Err("the URL's user must not contain `:` (written %3A)".into());
        }
        // As the URL parser reads it: an empty password is no password (`u:@h` is `u`),
        // and `:@h` names no one.
        let password = password.filter(|p| !p.is_empty());
        Ok((!user.is_empty() || password.is_some()).then_some(Userinfo { user, password }))
    }
}

/// Whether the path of `rest` (path, query, fragment) has a `.` or `..` segment, also
/// written `%2e`: URL parsing resolves them, so a value `..` would move the request to
/// another path (`/tenants/{header.x-tenant}/orders` to `/orders`).
fn has_dot_segment(rest: &[u8]) -> bool {
    let path_end = rest
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(rest.len());
    // A `\` the operator wrote separates segments too (the parser reads it as `/`); one
    // inside a value is percent-encoded.
    rest[..path_end]
        .split(|b| matches!(b, b'/' | b'\\'))
        .any(|segment| {
            let text = String::from_utf8_lossy(segment)
                .to_ascii_lowercase()
                .replace("%2e", ".");
            text == "." || text == ".."
        })
}

/// Why a URL could not be made for a record.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error(transparent)]
    Missing(Missing),
    #[error("the filled-in host is not in allowed_hosts")]
    HostNotAllowed,
    #[error("the filled-in URL is not valid: {0}")]
    Invalid(url::ParseError),
    #[error("the filled-in path has a `.` or `..` segment")]
    DotSegment,
    #[error("the URL would carry a user or password where it is not read as one")]
    Userinfo,
    #[error("the filled-in URL is longer than {MAX_URL_BYTES} bytes")]
    TooLong,
}

/// The longest URL a request can be sent to: the HTTP client's limit for a request
/// target. A longer one fails as the request is built, which is the record's fault, not
/// the destination's.
pub const MAX_URL_BYTES: usize = u16::MAX as usize - 1;

/// A path segment this long with no placeholder, after the first, is taken for a token
/// (a Slack webhook's is 24 characters, Discord's 68) and redacted.
const TOKEN_SEGMENT: usize = 16;

/// `text`, a URL as written, with its user, password, secret-looking query values and
/// token-like path segments replaced: what `check`, logs and `Debug` show of it.
pub fn redacted(text: &str) -> String {
    let (_, after, end) = authority(text).unwrap_or((0, 0, 0));
    let mut out = match text[after..end].rfind('@') {
        Some(at) => {
            let userinfo = if text[after..after + at].contains(':') {
                "redacted:redacted"
            } else {
                "redacted"
            };
            format!("{}{userinfo}{}", &text[..after], &text[after + at..])
        }
        None => text.to_owned(),
    };
    // Slack, Discord and Teams carry their token in the path, as a long segment; a
    // template's other segments (`/tenants/{header.x-tenant}/orders`) say where records
    // go and are shown.
    if let Some((_, _, end)) = authority(&out) {
        let path_end = out[end..].find(['?', '#']).map_or(out.len(), |i| end + i);
        let path: Vec<&str> = (out[end..path_end].split('/'))
            .enumerate()
            .map(|(i, segment)| {
                let token = i > 1 && segment.len() >= TOKEN_SEGMENT && !segment.contains('{');
                if token {
                    "redacted"
                } else {
                    segment
                }
            })
            .collect();
        out = format!("{}{}{}", &out[..end], path.join("/"), &out[path_end..]);
    }
    // A fragment is never sent; what it may hold (an OAuth `#access_token=`) is hidden.
    let fragment = (authority(&out).map(|(_, _, end)| end))
        .and_then(|end| out[end..].find('#').map(|i| end + i))
        .map(|at| {
            let empty = out.len() == at + 1;
            out.truncate(at);
            if empty {
                "#"
            } else {
                "#redacted"
            }
        });
    if let Some(q) = out.find('?') {
        let query = redacted_query(&out[q + 1..]);
        out.truncate(q + 1);
        out.push_str(&query);
    }
    out.push_str(fragment.unwrap_or_default());
    out
}

/// A query with the values of secret-looking keys replaced, as a receiver splitting
/// pairs at `&` reads it and as one splitting at `;` too: a pair whose key looks secret
/// when split at `&` alone is hidden up to the next `&` (`?credential=user;p4ss`),
/// otherwise each of its `;` parts is read as a pair (`?page=2;token=…`). A key is read
/// as the receiver reads it (`%74oken` is `token`).
fn redacted_query(query: &str) -> String {
    let parts: Vec<String> = (query.split('&'))
        .map(|pair| {
            hidden(pair).unwrap_or_else(|| {
                let parts: Vec<String> = (pair.split(';'))
                    .map(|part| hidden(part).unwrap_or_else(|| part.to_owned()))
                    .collect();
                parts.join(";")
            })
        })
        .collect();
    parts.join("&")
}

/// `key=redacted` when `pair`'s key looks secret.
fn hidden(pair: &str) -> Option<String> {
    let (key, _) = pair.split_once('=')?;
    let read = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
    secret_looking(&read).then(|| format!("{key}=redacted"))
}

/// Where the authority of `text` is: the end of the scheme, and the start and end of
/// what follows `://` up to the path, query or fragment (a `\` ends it too, as in the
/// URL parser for http and https).
fn authority(text: &str) -> Option<(usize, usize, usize)> {
    let scheme_end = text.find("://")?;
    let after = scheme_end + 3;
    let end = text[after..]
        .find(['/', '?', '#', '\\'])
        .map_or(text.len(), |i| after + i);
    Some((scheme_end, after, end))
}

/// Whether `text`, parsed as written, names the host and port `url` does (the path may
/// differ by `{{` escapes).
fn same_place(text: &str, url: &url::Url) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        (u.host_str(), u.port_or_known_default()) == (url.host_str(), url.port_or_known_default())
    })
}

fn has_userinfo(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// A query parameter name that usually carries a credential (`check` and logs show its
/// value as `redacted`).
fn secret_looking(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token",
        "key",
        "sig",
        "secret",
        "pass",
        "pwd",
        "auth",
        "credential",
        "session",
        // Azure Functions' function key (`?code=`).
        "code",
    ]
    .iter()
    .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::template::{Escape, Template};

    fn values(f: &Field) -> Option<Cow<'static, [u8]>> {
        match f {
            Field::Topic => Some(Cow::Borrowed(b"orders")),
            Field::Key => Some(Cow::Borrowed(b"a/b?c=d&e#f")),
            Field::Header(h) if h == "x-tenant" => Some(Cow::Borrowed(b"acme")),
            Field::Partition => Some(Cow::Borrowed(b"3")),
            _ => None,
        }
    }

    #[test]
    fn path_and_query_values_are_percent_encoded() {
        let t = UrlTemplate::parse(
            "https://api.example.com/t/{header.x-tenant}/{topic}?k={key}&p={partition}",
            &[],
        )
        .unwrap();
        let url = t.fill(values).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/t/acme/orders?k=a%2Fb%3Fc%3Dd%26e%23f&p=3"
        );
        assert_eq!(url.host_str(), Some("api.example.com"));
    }

    #[test]
    fn a_dot_segment_value_never_moves_the_request() {
        let t =
            UrlTemplate::parse("https://h/tenants/{header.x-tenant}/orders?k={key}", &[]).unwrap();
        for bad in [&b".."[..], b"."] {
            let got = t.fill(|f| match f {
                Field::Header(_) => Some(Cow::Borrowed(bad)),
                _ => Some(Cow::Borrowed(b"..")),
            });
            assert!(matches!(got, Err(UrlError::DotSegment)), "{bad:?}: {got:?}");
        }
        let t = UrlTemplate::parse("https://h/t/{key}{topic}/x", &[]).unwrap();
        let got = t.fill(|f| match f {
            Field::Key => Some(Cow::Borrowed(b".")),
            _ => Some(Cow::Borrowed(b".")),
        });
        assert!(matches!(got, Err(UrlError::DotSegment)), "{got:?}");
        // Dots inside a segment and in the query are values like any other.
        let t = UrlTemplate::parse("https://h/t/{key}/x?q={key}", &[]).unwrap();
        let url = t.fill(|_| Some(Cow::Borrowed(b"..a"))).unwrap();
        assert_eq!(url.as_str(), "https://h/t/..a/x?q=..a");
        let url = UrlTemplate::parse("https://h/t/x?q={key}", &[])
            .unwrap()
            .fill(|_| Some(Cow::Borrowed(b"..")))
            .unwrap();
        assert_eq!(url.as_str(), "https://h/t/x?q=..");
    }

    #[test]
    fn a_missing_value_names_its_placeholder() {
        let t = UrlTemplate::parse("http://h/{header.x-other}", &[]).unwrap();
        let e = t.fill(values).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the record has no value for `{header.x-other}`"
        );
    }

    #[test]
    fn host_placeholders_need_allowed_hosts() {
        for url in [
            "https://{header.x-tenant}.example.com/x",
            "https://example.com:{partition}/x",
            "http://{key}/",
        ] {
            let e = UrlTemplate::parse(url, &[]).unwrap_err();
            assert!(e.contains("allowed_hosts"), "{url}: {e}");
        }
        let allowed = ["acme.example.com".to_owned()];
        let t = UrlTemplate::parse("https://{header.x-tenant}.example.com/x", &allowed).unwrap();
        let url = t.fill(values).unwrap();
        assert_eq!(url.host_str(), Some("acme.example.com"));
        let t = UrlTemplate::parse("https://{topic}.example.com/x", &allowed).unwrap();
        assert!(matches!(t.fill(values), Err(UrlError::HostNotAllowed)));
        // A value cannot smuggle userinfo, a path or another host in.
        let t = UrlTemplate::parse("https://{key}.example.com/x", &allowed).unwrap();
        assert!(matches!(t.fill(values), Err(UrlError::HostNotAllowed)));
        // Nor a port or a path after an allowed name: an entry without a port allows
        // the scheme's default port only.
        let allowed = [
            "eu.inv.internal".to_owned(),
            "us.inv.internal:8443".to_owned(),
        ];
        let t = UrlTemplate::parse("https://{header.r}/v1", &allowed).unwrap();
        let with = |v: &'static [u8]| t.fill(move |_| Some(Cow::Borrowed(v)));
        for bad in [
            &b"eu.inv.internal:2375/"[..],
            b"eu.inv.internal:2375",
            b"eu.inv.internal:443",
            b"us.inv.internal",
            b"[::1]",
            b"u@eu.inv.internal",
        ] {
            let got = with(bad);
            assert!(
                matches!(got, Err(UrlError::HostNotAllowed)),
                "{bad:?}: {got:?}"
            );
        }
        assert_eq!(
            with(b"EU.inv.internal").unwrap().as_str(),
            "https://eu.inv.internal/v1"
        );
        let t = UrlTemplate::parse("https://{header.r}:8443/v1", &allowed).unwrap();
        assert!(t.fill(|_| Some(Cow::Borrowed(b"us.inv.internal"))).is_ok());
        assert!(matches!(
            t.fill(|_| Some(Cow::Borrowed(b"eu.inv.internal"))),
            Err(UrlError::HostNotAllowed)
        ));
    }

    #[test]
    fn bad_templates_are_refused() {
        for (url, want) in [
            ("http://h/{nope}", "unknown placeholder"),
            ("http://h/{key", "unclosed"),
            ("http://h/}", "unmatched"),
            ("http://h/x#{key}", "fragment"),
            ("ftp://h/{key}", "http"),
            ("ftp://{header.h}/x", "http"),
            ("{key}://h/", "scheme"),
            ("http://h/{json.tenant}", "pointer"),
        ] {
            let e = UrlTemplate::parse(url, &["h".to_owned()]).unwrap_err();
            assert!(e.contains(want), "{url}: {e}");
        }
    }

    #[test]
    fn redaction_hides_credentials_and_secret_looking_query_values() {
        let t = UrlTemplate::parse("https://u:pw@h:8443/{key}?a=b@c&token=t0k#f", &[]).unwrap();
        assert_eq!(
            t.redacted(),
            "https://redacted:redacted@h:8443/{key}?a=b@c&token=redacted#redacted"
        );
        let t = UrlTemplate::parse("https://h/{key}", &[]).unwrap();
        assert_eq!(t.redacted(), "https://h/{key}");
        // A token in the path (Discord's) is a long segment; a template's own segments
        // say where records go and stay.
        let t = UrlTemplate::parse(
            "https://discord.example/api/webhooks/123/AbCdEfGhIjKlMnOpQrStUv-123?thread_id={header.t}",
            &[],
        )
        .unwrap();
        assert_eq!(
            t.redacted(),
            "https://discord.example/api/webhooks/123/redacted?thread_id={header.t}"
        );
        let t =
            UrlTemplate::parse("https://h/tenants/{header.x-tenant}/orders/{key}", &[]).unwrap();
        assert_eq!(
            t.redacted(),
            "https://h/tenants/{header.x-tenant}/orders/{key}"
        );
        // A key written percent-encoded is the same key to the receiver; `;` separates
        // pairs for some receivers; a fragment is never sent and is hidden whole.
        assert_eq!(
            redacted("https://h/{key}?%74oken=t0k&Api%2DKey=k3y&page=2"),
            "https://h/{key}?%74oken=redacted&Api%2DKey=redacted&page=2"
        );
        assert_eq!(
            redacted("https://h/x?page=2;token=t0k;a=1"),
            "https://h/x?page=2;token=redacted;a=1"
        );
        // To a receiver splitting at `&` alone, the value runs to the next `&`.
        for (url, shown) in [
            ("https://h/x?token;x=abc", "https://h/x?token;x=redacted"),
            (
                "https://h/x?credential=user;p4ss&a=1",
                "https://h/x?credential=redacted&a=1",
            ),
            ("https://h/x?token=abc;b=c", "https://h/x?token=redacted"),
        ] {
            assert_eq!(redacted(url), shown);
        }
        assert_eq!(
            redacted("https://h/cb#access_token=t0k&x=1"),
            "https://h/cb#redacted"
        );
        assert_eq!(redacted("https://h/x?a=1#"), "https://h/x?a=1#");
    }

    /// `user:password@` is taken out when the URL is read: no URL made from the template
    /// carries it, so none can put it in a request line or an HTTP/2 `:authority`.
    #[test]
    fn the_user_and_password_are_read_once_and_never_part_of_a_filled_in_url() {
        let t = UrlTemplate::parse("https://u%40corp:p%3Aw@ss@h:8443/t/{key}", &[]).unwrap();
        assert_eq!(
            t.userinfo(),
            Some(&Userinfo {
                user: "u@corp".into(),
                password: Some("p:w@ss".into())
            })
        );
        let url = t.fill(|_| Some(Cow::Borrowed(b"k"))).unwrap();
        assert_eq!(url.as_str(), "https://h:8443/t/k");
        let t = UrlTemplate::parse("http://only-user@h/x", &[]).unwrap();
        assert_eq!(
            t.userinfo(),
            Some(&Userinfo {
                user: "only-user".into(),
                password: None
            })
        );
        assert_eq!(t.literal().unwrap().as_str(), "http://h/x");
        let t = UrlTemplate::parse("http://:pw@h/x", &[]).unwrap();
        assert_eq!(t.userinfo().unwrap().password.as_deref(), Some("pw"));
        let t = UrlTemplate::parse("http://@h/x", &[]).unwrap();
        assert_eq!(t.userinfo(), None);
        assert_eq!(t.literal().unwrap().as_str(), "http://h/x");
        // With allowed hosts, the host is filled in after the user and password left.
        let t = UrlTemplate::parse("https://u:pw@{header.r}/v1", &["a.internal".into()]).unwrap();
        let url = t.fill(|_| Some(Cow::Borrowed(b"a.internal"))).unwrap();
        assert_eq!(url.as_str(), "https://a.internal/v1");
        assert_eq!((url.username(), url.password()), ("", None));
        for (bad, want) in [
            ("https://{key}:pw@h/", "user or password"),
            ("https://u:{header.p}@{header.r}/", "user or password"),
            ("https://u:%ff@h/", "not UTF-8"),
        ] {
            let e = UrlTemplate::parse(bad, &["h".to_owned()]).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains("pw"), "{bad}: {e}");
        }
    }

    /// Where the URL parser would read a user and password, or a host, differently from
    /// the split here, the URL is refused or read the parser's way: the host sent to is
    /// the parser's, and its user and password are taken out exactly as it reads them.
    #[test]
    fn the_user_password_and_host_are_read_as_the_url_parser_reads_them() {
        for text in [
            "http://a@b@c/x",
            "http://u:p@h?x@y",
            "http://h/@x",
            "http://u:p%40w@[::1]:8080/x",
            "HTTPS://U:P@H/x",
            "https://good.example\\x@evil.example/hook",
            "http://u:@h/",
            "http://:@h/",
            "http://:pw@h/",
            "http://u@h#f@g",
        ] {
            let t = UrlTemplate::parse(text, &[]).unwrap();
            let parsed = url::Url::parse(text).unwrap();
            let sent = t.literal().unwrap();
            assert_eq!(sent.host_str(), parsed.host_str(), "{text}");
            assert_eq!(sent.path(), parsed.path(), "{text}");
            assert!(!has_userinfo(&sent), "{text}");
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            };
            let want = has_userinfo(&parsed).then(|| Userinfo {
                user: decode(parsed.username()),
                password: parsed.password().map(decode),
            });
            assert_eq!(t.userinfo(), want.as_ref(), "{text}");
        }
        for (text, want) in [
            ("http://u:pw@/evil.example/hook", "expected a host"),
            ("http://@/evil.example/hook", "expected a host"),
            ("http://u:pw@\\evil.example/hook", "expected a host"),
            ("http://u%3Ax:pw@h/", "must not contain `:`"),
            ("http:///u:pw@h/x", "expected a host"),
            ("http://\\u:pw@h/x", "expected a host"),
            ("http://\t/u:pw@h/x", "tab or line break"),
            ("http://u:p\tw@h/", "tab or line break"),
            ("http://h/x\n", "tab or line break"),
            ("https://u:p{{w@h/", "%7B"),
        ] {
            let e = UrlTemplate::parse(text, &[]).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("pw"), "{text:?}: {e}");
        }
    }

    /// A `\\` written in the path separates segments as the parser reads it, so a `..`
    /// value next to one is refused like one next to a `/`; an empty host value is no
    /// host on the list; a literal `{{` is a brace, not an unclear host.
    #[test]
    fn backslash_segments_empty_hosts_and_escaped_braces() {
        let t = UrlTemplate::parse("https://h/a\\{key}/b", &[]).unwrap();
        let got = t.fill(|_| Some(Cow::Borrowed(b"..")));
        assert!(matches!(got, Err(UrlError::DotSegment)), "{got:?}");
        let t = UrlTemplate::parse("http://{key}/x/y", &["x".into()]).unwrap();
        let got = t.fill(|_| Some(Cow::Borrowed(b"")));
        assert!(matches!(got, Err(UrlError::HostNotAllowed)), "{got:?}");
        let t = UrlTemplate::parse("http://h/a{{b}}", &[]).unwrap();
        assert_eq!(t.literal().unwrap().as_str(), "http://h/a%7Bb%7D");
    }

    /// A literal URL is sent as written, whatever `allowed_hosts` lists (it is for
    /// placeholder hosts); and no `Debug` print of a template shows its password.
    #[test]
    fn a_literal_url_ignores_allowed_hosts_and_debug_hides_the_password() {
        let t = UrlTemplate::parse("https://u:s3cret@a.example/x", &["b.example".into()]).unwrap();
        assert_eq!(t.literal().unwrap().as_str(), "https://a.example/x");
        let shown = format!("{t:?} {:?}", t.userinfo());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn braces_escape_and_literals_stay_literal() {
        let t = Template::parse("a{{b}}c").unwrap();
        assert_eq!(t.as_literal(), Some("a{b}c"));
        let u = UrlTemplate::parse("http://h/plain?x=1", &[]).unwrap();
        assert_eq!(u.literal().unwrap().as_str(), "http://h/plain?x=1");
        let mut out = Vec::new();
        Template::parse("Tenant {header.x-tenant}!")
            .unwrap()
            .render(&mut out, Escape::Raw, values)
            .unwrap();
        assert_eq!(out, b"Tenant acme!");
    }
}
