//! Rate limits on the endpoints that mint tokens or sessions, create meetings and check
//! passwords, per client address (as the trusted proxies report it), per session for meeting
//! creation, and per meeting for wrong passwords: a token bucket each, refilled continuously. The buckets themselves are plain state
//! with the time passed in; [`RateLimits`] is what handlers call.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use parking_lot::Mutex;
use videocall_relay::budget::TokenBucket;

use crate::client_address::TrustedProxies;
use crate::error::ApiError;

/// Most addresses remembered per bucket set; beyond it, full buckets are forgotten (they are
/// the same as new ones) and, if that is not enough, the whole map starts over.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
pub struct Buckets<K> {
    per_second: f64,
    burst: f64,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_minute) / 60.0, burst: f64::from(burst.max(1)), buckets: HashMap::new() }
    }

    fn bucket(&mut self, key: &K, now: Instant) -> &mut TokenBucket {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(key) {
            self.buckets.retain(|_, bucket| !bucket.is_full(now));
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        let (rate, burst) = (self.per_second, self.burst);
        self.buckets.entry(key.clone()).or_insert_with(|| TokenBucket::new(now, rate, burst))
    }

    /// Takes one request's token for `key`; `Err(wait)` when there is none yet.
    pub fn take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        // With no refill at all, a minute is as good an answer as any.
        self.bucket(&key, now).take(now, 1.0).map_err(|wait| wait.min(Duration::from_secs(60)))
    }

    /// Whether `key` has a token, without taking it.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        self.bucket(key, now).check(now, 1.0).map_err(|wait| wait.min(Duration::from_secs(60)))
    }
}

/// The limited endpoints: per client address (behind the trusted proxies), and per meeting for
/// wrong passwords.
pub struct RateLimits {
    trusted: TrustedProxies,
    tokens: Mutex<Buckets<IpAddr>>,
    logins: Mutex<Buckets<IpAddr>>,
    meetings_by_address: Mutex<Buckets<IpAddr>>,
    meetings_by_user: Mutex<Buckets<String>>,
    password_failures: Mutex<Buckets<String>>,
    limited:
        prometheus_client::metrics::family::Family<Vec<(String, String)>, prometheus_client::metrics::counter::Counter>,
}

/// Requests a minute of each class.
pub struct Rates {
    pub tokens: u32,
    pub logins: u32,
    pub meetings: u32,
    pub password_failures: u32,
}

impl RateLimits {
    pub fn new(rates: Rates, trusted: TrustedProxies) -> Self {
        Self {
            trusted,
            // Bursts allow a page load's few calls; the steady rate allows polling once a second.
            tokens: Mutex::new(Buckets::new(rates.tokens, rates.tokens.div_ceil(6))),
            logins: Mutex::new(Buckets::new(rates.logins, rates.logins.div_ceil(3))),
            meetings_by_address: Mutex::new(Buckets::new(rates.meetings, rates.meetings)),
            meetings_by_user: Mutex::new(Buckets::new(rates.meetings, rates.meetings)),
            // Ten tries at once (typing mistakes of a whole team), then the steady rate.
            password_failures: Mutex::new(Buckets::new(rates.password_failures, 10)),
            limited: Default::default(),
        }
    }

    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register("api_rate_limited", "API requests refused by a rate limit", self.limited.clone());
    }

    /// The client's address, as the trusted proxies report it.
    pub fn client(&self, req: &HttpRequest) -> IpAddr {
        self.trusted.client_of(req)
    }

    /// Joining a meeting, asking for a room token or a guest token.
    pub fn check_token(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.refuse("token", self.tokens.lock().take(self.client(req), Instant::now()))
    }

    /// Creating a session, signing in, and password attempts.
    pub fn check_login(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.refuse("login", self.logins.lock().take(self.client(req), Instant::now()))
    }

    /// Creating a meeting: per address and per session.
    pub fn check_create_meeting(&self, req: &HttpRequest, user: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        self.refuse("meeting", self.meetings_by_address.lock().take(self.client(req), now))?;
        self.refuse("meeting", self.meetings_by_user.lock().take(user.to_owned(), now))
    }

    /// Before checking a password of `meeting`: refused while its wrong passwords are over the
    /// limit, whoever tries.
    pub fn check_password(&self, meeting: &str) -> Result<(), ApiError> {
        self.refuse("password", self.password_failures.lock().check(&meeting.to_owned(), Instant::now()))
    }

    /// A wrong password for `meeting` was given.
    pub fn wrong_password(&self, meeting: &str) {
        let _ = self.password_failures.lock().take(meeting.to_owned(), Instant::now());
    }

    fn refuse(&self, class: &str, taken: Result<(), Duration>) -> Result<(), ApiError> {
        taken.map_err(|wait| {
            self.limited.get_or_create(&vec![("class".to_owned(), class.to_owned())]).inc();
            let secs = wait.as_secs().max(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {secs} s"),
            )
            .retry_after(secs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate_per_address() {
        let mut b: Buckets<IpAddr> = Buckets::new(60, 3);
        let t0 = Instant::now();
        let (a, c) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            b.take(a, t0).unwrap();
        }
        let wait = b.take(a, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        b.take(c, t0).unwrap();
        b.take(a, t0 + Duration::from_secs(1)).unwrap();
        assert!(b.take(a, t0 + Duration::from_secs(1)).is_err());
        // Refills to the burst, not beyond.
        for _ in 0..3 {
            b.take(a, t0 + Duration::from_secs(100)).unwrap();
        }
        assert!(b.take(a, t0 + Duration::from_secs(100)).is_err());
    }
}
