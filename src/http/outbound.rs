//! The one way hookbridge builds an outbound HTTP client (egress deliveries and their
//! token requests, ingress's fetches of providers' published keys): a deadline per
//! request, a bounded connect, no redirects (a redirect would take a request, and the
//! credentials on it, where the configuration never said), hookbridge's user agent.

use std::time::Duration;

/// Longest time a connection may take to establish.
const MAX_CONNECT: Duration = Duration::from_secs(10);

/// A client builder with hookbridge's outbound defaults and `timeout` per request; the
/// caller adds what is its own (trusted CAs, identity, pool size).
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hookbridge/", env!("CARGO_PKG_VERSION")))
}
