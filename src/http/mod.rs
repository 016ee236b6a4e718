//! What both HTTP listeners (webhooks and admin) stand on: the listener with its
//! connection limits ([`server`]), optional TLS ([`tls`]), and the per-address shares that
//! keep one client from taking a listener from everyone else ([`share`], the pure rule;
//! [`shares`], its guards). Nothing here knows what is served: `ingress` and the admin
//! listener each hand [`server::serve`] their router. Outbound, [`outbound`] builds every
//! HTTP client.

pub mod outbound;
pub mod server;
pub mod share;
pub mod shares;
pub mod tls;
