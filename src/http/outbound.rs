//! The one way hookbridge builds an outbound HTTP client (egress deliveries and their
//! token requests, ingress's fetches of providers' published keys): a deadline per
//! request, a bounded connect, HTTP/2 connections pinged, no redirects (a redirect would take a request, and the
//! credentials on it, where the configuration never said), hookbridge's user agent.

use std::time::Duration;

/// Longest time a connection may take to establish.
const MAX_CONNECT: Duration = Duration::from_secs(10);

/// Longest interval between HTTP/2 pings on a connection, and longest wait for a ping's
/// answer (both are the request `timeout` when that is shorter).
const H2_PING_EVERY: Duration = Duration::from_secs(10);

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
        .http2_keep_alive_interval(timeout.min(H2_PING_EVERY))
        .http2_keep_alive_timeout(timeout.min(H2_PING_EVERY))
        .http2_keep_alive_while_idle(true)
        .user_agent(concat!("hookbridge/", env!("CARGO_PKG_VERSION")))
}
