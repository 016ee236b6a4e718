//! Console logins: the token check, sessions and CSRF tokens.
//!
//! The token is compared in constant time (over SHA-256 digests, so not even its length
//! leaks). A login gets a random session id, never the token, in an HttpOnly
//! SameSite=Strict cookie, and a random CSRF token that every POST must carry. Sessions
//! live in memory, are bounded in number and expire. Failed logins are limited per client
//! address and process-wide, so the token cannot be guessed through the form at any
//! useful rate, and one client's wrong guesses do not lock the operators out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::secret::Secret;

/// The session cookie's name.
pub const COOKIE: &str = "hb_console";

/// Sessions kept at once; a new login past it ends the one closest to expiry.
const MAX_SESSIONS: usize = 32;

/// Failed logins allowed per minute from one client address; past it every login from
/// there (right or wrong) answers 429 until the minute is over.
const FAILED_LOGINS_PER_MINUTE: u32 = 10;
/// Failed logins allowed per minute from all clients together; past it every login
/// answers 429 until the minute is over. It also bounds the per-client counts kept.
const FAILED_LOGINS_PER_MINUTE_ALL: u32 = 100;

/// The address a login came from; a request without one counts as this one.
pub const NO_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// What a login attempt got.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    /// The session id for the cookie.
    Started(String),
    Wrong,
    /// Too many failed logins: try again after this long.
    Throttled(Duration),
}

/// The current minute's failed logins.
#[derive(Debug)]
struct Failures {
    since: Instant,
    count: u32,
    /// Per client; at most [`FAILED_LOGINS_PER_MINUTE_ALL`] entries, as each needs one.
    by_client: HashMap<IpAddr, u32>,
}

impl Failures {
    fn new() -> Self {
        Failures {
            since: Instant::now(),
            count: 0,
            by_client: HashMap::new(),
        }
    }
}

/// One login.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
}

/// The token and the live sessions.
pub struct Sessions {
    token: Secret,
    ttl: Duration,
    live: Mutex<HashMap<String, Session>>,
    failures: Mutex<Failures>,
}

impl Sessions {
    pub fn new(token: Secret, ttl: Duration) -> Self {
        Sessions {
            token,
            ttl,
            live: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Checks `offered`, sent from `client`, against the token in constant time; on a
    /// match starts a session.
    pub fn login(&self, client: IpAddr, offered: &str) -> Login {
        {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let elapsed = f.since.elapsed();
            if elapsed >= Duration::from_secs(60) {
                *f = Failures::new();
            } else if f.count >= FAILED_LOGINS_PER_MINUTE_ALL
                || f.by_client.get(&client).copied().unwrap_or(0) >= FAILED_LOGINS_PER_MINUTE
            {
                return Login::Throttled(Duration::from_secs(60) - elapsed);
            }
            if !equal(offered.as_bytes(), self.token.expose().as_bytes()) {
                f.count += 1;
                *f.by_client.entry(client).or_default() += 1;
                return Login::Wrong;
            }
        }
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            expires: Instant::now() + self.ttl,
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(id.clone(), session);
        Login::Started(id)
    }

    /// The live session named by the request's cookie.
    pub fn current(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up by a hash map: the id is 256 random bits, so timing reveals nothing
        // useful about other ids.
        live.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.remove(id);
        }
    }
}

impl Session {
    /// Whether a POST's `csrf` field is this session's token (constant time).
    pub fn csrf_ok(&self, offered: Option<&str>) -> bool {
        offered.is_some_and(|o| equal(o.as_bytes(), self.csrf.as_bytes()))
    }
}

/// Constant-time equality that does not reveal the length either.
fn equal(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.ct_eq(&db).into()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, v.parse().unwrap());
        h
    }

    #[test]
    fn a_login_gives_a_random_session_not_the_token() {
        let s = Sessions::new(Secret::new("a-long-console-token"), Duration::from_secs(60));
        assert_eq!(s.login(NO_ADDRESS, "wrong"), Login::Wrong);
        assert_eq!(
            s.login(NO_ADDRESS, "a-long-console-token-and-more"),
            Login::Wrong
        );
        let Login::Started(id) = s.login(NO_ADDRESS, "a-long-console-token") else {
            panic!("logged in")
        };
        assert_ne!(id, "a-long-console-token");
        assert_eq!(id.len(), 64);
        let session = s
            .current(&with_cookie(&format!("other=1; {COOKIE}={id}")))
            .expect("session");
        assert!(session.csrf_ok(Some(&session.csrf)));
        assert!(!session.csrf_ok(None));
        assert!(!session.csrf_ok(Some("nope")));
        assert!(s
            .current(&with_cookie(&format!("{COOKIE}=forged")))
            .is_none());
        s.logout(&with_cookie(&format!("{COOKIE}={id}")));
        assert!(s.current(&with_cookie(&format!("{COOKIE}={id}"))).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::new(Secret::new("a-long-console-token"), Duration::from_secs(60));
        for _ in 0..(MAX_SESSIONS * 3) {
            assert!(matches!(
                s.login(NO_ADDRESS, "a-long-console-token"),
                Login::Started(_)
            ));
        }
        assert_eq!(s.live.lock().unwrap().len(), MAX_SESSIONS);
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn failed_logins_are_limited_per_client() {
        let s = Sessions::new(Secret::new("a-long-console-token"), Duration::from_secs(60));
        for _ in 0..FAILED_LOGINS_PER_MINUTE {
            assert_eq!(s.login(ip(1), "guess"), Login::Wrong);
        }
        assert!(matches!(s.login(ip(1), "guess"), Login::Throttled(_)));
        assert!(
            matches!(s.login(ip(1), "a-long-console-token"), Login::Throttled(_)),
            "no token is checked while throttled"
        );
        assert!(
            matches!(s.login(ip(2), "a-long-console-token"), Login::Started(_)),
            "one client's guesses do not lock the operator out"
        );
    }

    #[test]
    fn failed_logins_are_limited_for_all_clients_together() {
        let s = Sessions::new(Secret::new("a-long-console-token"), Duration::from_secs(60));
        for n in 0..FAILED_LOGINS_PER_MINUTE_ALL {
            let client = ip(u8::try_from(n / FAILED_LOGINS_PER_MINUTE).unwrap());
            assert_eq!(s.login(client, "guess"), Login::Wrong);
        }
        assert!(matches!(
            s.login(ip(200), "a-long-console-token"),
            Login::Throttled(_)
        ));
        let kept = s.failures.lock().unwrap().by_client.len();
        assert_eq!(
            kept as u32,
            FAILED_LOGINS_PER_MINUTE_ALL / FAILED_LOGINS_PER_MINUTE
        );
    }
}
