//! The one way hookbridge builds an outbound HTTP client (egress deliveries and their
//! token requests, ingress's fetches of providers' published keys): a deadline per
//! request, a bounded connect, HTTP/2 connections pinged, no redirects (a redirect would take a request, and the
//! credentials on it, where the configuration never said), hookbridge's user agent.

use std::time::Duration;

/// Longest time a connection may take to establish.
const MAX_CONNECT: Duration = Duration::from_secs(10);

/// Interval between HTTP/2 pings on a quiet connection, and the wait for a ping's
/// answer: the request `timeout`, within these bounds (a server may refuse pings more
/// frequent than every few seconds with `GOAWAY too_many_pings`).
const H2_PING_EVERY: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(10));

/// A client builder with hookbridge's outbound defaults and `timeout` per request; the
/// caller adds what is its own (trusted CAs, identity, pool size).
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT))
        .redirect(reqwest::redirect::Policy::none())
        // An HTTP/2 server gets every request on one connection, and a timed-out request
        // resets only its stream: a connection whose peer froze (a hung backend whose
        // kernel still ACKs, a NAT entry dropped) would take every later request down
        // with it. Pings find it dead and close it.
        .http2_keep_alive_interval(timeout.clamp(H2_PING_EVERY.0, H2_PING_EVERY.1))
        .http2_keep_alive_timeout(timeout.clamp(H2_PING_EVERY.0, H2_PING_EVERY.1))
        .http2_keep_alive_while_idle(true)
        .user_agent(concat!("hookbridge/", env!("CARGO_PKG_VERSION")))
}

/// For a client whose every request is plain `http://`: HTTP/1 only (no prior knowledge
/// of HTTP/2 is configured, and an `https://` proxy from the environment must not
/// negotiate it either), and without reqwest's own retries, which are of HTTP/2
/// refusals only (a `GOAWAY`, `REFUSED_STREAM`) such a client never meets, yet to be
/// able to retry they keep a copy of every request, headers and all.
pub fn http1_only(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder
        .http1_only()
        .retry(reqwest::retry::never().max_retries_per_request(0))
}
