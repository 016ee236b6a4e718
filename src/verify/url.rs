//! The URL a URL-signing provider (Twilio, Square, a generic template with `{url}`)
//! signed, and where hookbridge may learn it from.
//!
//! The signed URL is part of what authenticates the request, so it must not come from
//! anything the sender controls: a client could otherwise set `Host` and
//! `X-Forwarded-Proto` to replay a signature made for another endpoint of the same
//! account. A source either states its public URL (`public_url`), or names the proxies
//! it trusts (`trust_forwarded_from`) and the forwarded headers those proxies set
//! (`trust_forwarded_headers`): a header the proxy does not set itself is passed along
//! from the client (ALB, Google's load balancer, Envoy and HAProxy pass a client's
//! `X-Forwarded-Host` untouched), so only the named ones are read. A request that reached
//! hookbridge any other way has no URL it could have signed.

use std::net::IpAddr;

use http::HeaderMap;

/// Where the URL a provider signed comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedUrl {
    /// The scheme signs no URL.
    NotSigned,
    /// The URL as configured at the provider; the request's query string is appended.
    Public(String),
    /// Scheme from `X-Forwarded-Proto` and host from `X-Forwarded-Host` (when the proxies
    /// set it) or `Host`, only for requests whose peer is one of the proxies.
    Forwarded(Forwarded),
}

/// The proxies a URL may be learnt from, and which of their headers to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub proxies: Vec<Network>,
    /// The proxies set `X-Forwarded-Host` themselves; otherwise it is ignored (a client
    /// could have sent it) and the host comes from `Host`.
    pub host_header: bool,
}

/// The forwarded headers a proxy may be trusted to set; the scheme has no other source.
pub const FORWARDED_PROTO: &str = "X-Forwarded-Proto";
/// The forwarded host header.
pub const FORWARDED_HOST: &str = "X-Forwarded-Host";

/// A request reached a URL-signing source without a URL it can be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Forwarded headers are trusted only from the configured proxies.
    #[error("request did not come through a trusted proxy")]
    UntrustedPeer,
    /// A trusted proxy sent no usable scheme or host.
    #[error("trusted proxy sent no X-Forwarded-Proto or host")]
    MissingForwarded,
}

impl SignedUrl {
    /// The URL the sender signed for a request to `path_and_query` from `peer`.
    /// `NotSigned` yields an empty string: the scheme never reads it.
    pub fn resolve(
        &self,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<String, UrlError> {
        if let SignedUrl::NotSigned = self {
            return Ok(String::new()); // per request: nothing to build
        }
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        match self {
            SignedUrl::NotSigned => Ok(String::new()),
            SignedUrl::Public(public) => Ok(format!("{public}{query}")),
            SignedUrl::Forwarded(f) => {
                let trusted = peer.is_some_and(|ip| f.proxies.iter().any(|n| n.contains(ip)));
                if !trusted {
                    return Err(UrlError::UntrustedPeer);
                }
                let proto = first_value(headers, "x-forwarded-proto")
                    .filter(|p| p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("http"))
                    .ok_or(UrlError::MissingForwarded)?;
                let forwarded_host = (f.host_header)
                    .then(|| nearest_value(headers, "x-forwarded-host"))
                    .flatten();
                let host = forwarded_host
                    .or_else(|| nearest_value(headers, "host"))
                    .filter(|h| !h.contains(['/', '?', '#', '@']))
                    .ok_or(UrlError::MissingForwarded)?;
                Ok(format!("{proto}://{host}{path}{query}"))
            }
        }
    }

    /// The configured public URL, for `hookbridge send` to sign.
    pub fn public(&self) -> Option<&str> {
        match self {
            SignedUrl::Public(url) => Some(url),
            _ => None,
        }
    }
}

/// The host the trusted proxy added: the last entry of a comma-separated forwarding
/// header (over every occurrence of it). Entries before it came from further away, and a
/// client can put anything there: many load balancers pass a client's own
/// `X-Forwarded-Host` along and append theirs.
fn nearest_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    (!last.is_empty()).then_some(last)
}

/// The scheme the sender used: the first entry (later ones are inner hops, often plain
/// http behind a TLS-terminating balancer). A client can at most flip it between http
/// and https for the same host and path.
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// A proxy address or network: `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses an address or CIDR network; `None` if it is neither.
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, bits)) => (addr.parse::<IpAddr>().ok()?, bits.parse::<u8>().ok()?),
            None => {
                let addr = text.trim().parse::<IpAddr>().ok()?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Whether this is too wide to name proxies: shorter than /8 for IPv4, /16 for IPv6
    /// (`0.0.0.0/0`, or `0.0.0.0/1` + `128.0.0.0/1`, is every address; trusting it
    /// trusts anyone). No proxy fleet needs more than a /8.
    pub fn is_everything(&self) -> bool {
        self.prefix < if self.addr.is_ipv4() { 8 } else { 16 }
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 peer matches its IPv4
    /// network, since dual-stack listeners report IPv4 clients that way.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, bits: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::headers;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn networks_parse_and_match() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Network::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        let v6 = Network::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "proxy.internal", "", "10.0.0.0/x", "::/129"] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn public_url_ignores_client_headers() {
        let url = SignedUrl::Public("https://hooks.example.com/twilio".into());
        let h = headers(&[("host", "evil.example"), ("x-forwarded-proto", "http")]);
        assert_eq!(
            url.resolve("/internal/path", Some("a=1"), &h, ip("203.0.113.9")),
            Ok("https://hooks.example.com/twilio?a=1".into())
        );
        assert_eq!(url.public(), Some("https://hooks.example.com/twilio"));
    }

    fn forwarded(host_header: bool) -> SignedUrl {
        SignedUrl::Forwarded(Forwarded {
            proxies: vec![Network::parse("10.0.0.0/8").unwrap()],
            host_header,
        })
    }

    #[test]
    fn a_forwarded_host_the_proxy_does_not_set_is_the_client_s_and_ignored() {
        // A proxy that sets only X-Forwarded-Proto passes the client's X-Forwarded-Host
        // on: a signature made for another endpoint must not verify here.
        let h = headers(&[
            ("host", "hooks.example.com"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "other.example"),
        ]);
        assert_eq!(
            forwarded(false).resolve("/t", None, &h, ip("10.0.0.2")),
            Ok("https://hooks.example.com/t".into())
        );
        assert_eq!(
            forwarded(true).resolve("/t", None, &h, ip("10.0.0.2")),
            Ok("https://other.example/t".into())
        );
        assert!(Network::parse("0.0.0.0/0").unwrap().is_everything());
        assert!(Network::parse("::/0").unwrap().is_everything());
        assert!(!Network::parse("10.0.0.0/8").unwrap().is_everything());
        // Every address in pieces is every address too.
        for wide in [
            "0.0.0.0/1",
            "128.0.0.0/1",
            "64.0.0.0/7",
            "::/1",
            "8000::/1",
            "2000::/3",
        ] {
            assert!(Network::parse(wide).unwrap().is_everything(), "{wide}");
        }
        assert!(!Network::parse("fd00::/16").unwrap().is_everything());
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let url = forwarded(true);
        let h = headers(&[
            ("host", "internal:8080"),
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "hooks.example.com"),
        ]);
        assert_eq!(
            url.resolve("/twilio", None, &h, ip("10.0.0.2")),
            Ok("https://hooks.example.com/twilio".into())
        );
        assert_eq!(
            url.resolve("/twilio", None, &h, ip("203.0.113.9")),
            Err(UrlError::UntrustedPeer)
        );
        assert_eq!(
            url.resolve("/twilio", None, &h, None),
            Err(UrlError::UntrustedPeer)
        );
        let host_only = headers(&[
            ("host", "hooks.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            url.resolve("/t", Some("x=1"), &host_only, ip("10.9.9.9")),
            Ok("https://hooks.example.com/t?x=1".into())
        );
        // A client's own X-Forwarded-Host passed along by the proxy, which appended its own.
        let spoofed = headers(&[
            ("x-forwarded-host", "evil.example, hooks.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            url.resolve("/t", None, &spoofed, ip("10.9.9.9")),
            Ok("https://hooks.example.com/t".into())
        );
        let no_proto = headers(&[("host", "hooks.example.com")]);
        assert_eq!(
            url.resolve("/t", None, &no_proto, ip("10.9.9.9")),
            Err(UrlError::MissingForwarded)
        );
        let smuggled = headers(&[
            ("x-forwarded-host", "a.com/evil?"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            url.resolve("/t", None, &smuggled, ip("10.9.9.9")),
            Err(UrlError::MissingForwarded)
        );
    }
}
