//! Rate limits on the endpoints that mint tokens or sessions and check passwords, per client
//! address: a token bucket each, refilled continuously. The buckets themselves are plain state
//! with the time passed in; [`RateLimits`] is what handlers call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use parking_lot::Mutex;
use videocall_relay::budget::TokenBucket;

use crate::error::ApiError;

/// Most addresses remembered per bucket set; beyond it, full buckets are forgotten (they are
/// the same as new ones) and, if that is not enough, the whole map starts over.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
pub struct Buckets {
    per_second: f64,
    burst: f64,
    buckets: HashMap<IpAddr, TokenBucket>,
}

impl Buckets {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_minute) / 60.0, burst: f64::from(burst.max(1)), buckets: HashMap::new() }
    }

    /// Takes one request's token for `client`; `Err(wait)` when there is none yet.
    pub fn take(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&client) {
            self.buckets.retain(|_, bucket| !bucket.is_full(now));
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        let (rate, burst) = (self.per_second, self.burst);
        let bucket = self.buckets.entry(client).or_insert_with(|| TokenBucket::new(now, rate, burst));
        // With no refill at all, a minute is as good an answer as any.
        bucket.take(now, 1.0).map_err(|wait| wait.min(Duration::from_secs(60)))
    }
}

/// The two classes of limited endpoints.
pub struct RateLimits {
    tokens: Mutex<Buckets>,
    logins: Mutex<Buckets>,
    limited:
        prometheus_client::metrics::family::Family<Vec<(String, String)>, prometheus_client::metrics::counter::Counter>,
}

impl RateLimits {
    pub fn new(tokens_per_minute: u32, logins_per_minute: u32) -> Self {
        Self {
            // Bursts allow a page load's few calls; the steady rate allows polling once a second.
            tokens: Mutex::new(Buckets::new(tokens_per_minute, tokens_per_minute.div_ceil(6))),
            logins: Mutex::new(Buckets::new(logins_per_minute, logins_per_minute.div_ceil(3))),
            limited: Default::default(),
        }
    }

    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register("api_rate_limited", "API requests refused by a rate limit", self.limited.clone());
    }

    /// Joining a meeting, asking for a room token or a guest token.
    pub fn check_token(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check(&self.tokens, "token", req)
    }

    /// Creating a session, signing in, and password attempts.
    pub fn check_login(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check(&self.logins, "login", req)
    }

    fn check(&self, buckets: &Mutex<Buckets>, class: &str, req: &HttpRequest) -> Result<(), ApiError> {
        let client = req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        match buckets.lock().take(client, Instant::now()) {
            Ok(()) => Ok(()),
            Err(wait) => {
                self.limited.get_or_create(&vec![("class".to_owned(), class.to_owned())]).inc();
                let secs = wait.as_secs().max(1);
                Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many requests; try again in {secs} s"),
                )
                .retry_after(secs))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate_per_address() {
        let mut b = Buckets::new(60, 3);
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
