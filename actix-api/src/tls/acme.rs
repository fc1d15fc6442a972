//! A certificate from an ACME CA (Let's Encrypt by default) for `--domain`: obtained with the
//! HTTP-01 challenge, which the plain HTTP listener answers, stored beside the database, and
//! renewed once two thirds of its lifetime have passed.
//!
//! When renewal is due is decided by [`renewal_due`] and [`retry_after`], which read no clock;
//! [`renew_forever`] is the adapter that sleeps and talks to the CA (through `instant-acme`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::{HttpResponse, web};
use anyhow::{Context, Result, bail};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::CurrentCertificate;
use super::self_signed::{certificate_facts, der_facts};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A failed renewal is tried again after a tenth of the time the certificate has left, but no
/// sooner than this (a CA that is down is not asked every second)…
const MIN_RETRY: Duration = Duration::from_secs(10);
/// …and no later than this (a CA back up is used within the hour).
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// How long the CA may take to validate the challenge and to issue the certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The name the certificate is for; it must resolve to this server, whose plain HTTP
    /// listener answers the CA on port 80.
    pub domain: String,
    /// The CA's directory URL.
    pub directory: String,
    /// A contact address for the CA's expiry notices (`mailto:` added when missing).
    pub contact: Option<String>,
    /// Root certificate (PEM) that the CA's directory is served with, for test CAs such as
    /// Pebble; unset: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Where the account, certificate and key are kept.
    pub dir: PathBuf,
}

impl AcmeSettings {
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.domain))
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.domain))
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("acme-account.json")
    }

    /// The stored certificate and key (PEM), if they are for this domain and still valid at
    /// `now`.
    pub fn stored(&self, now: SystemTime) -> Option<(String, String)> {
        let cert = std::fs::read_to_string(self.cert_path()).ok()?;
        let key = std::fs::read_to_string(self.key_path()).ok()?;
        let facts = certificate_facts(&cert)?;
        (facts.not_after > now && facts.names.contains(&self.domain)).then_some((cert, key))
    }
}

/// The HTTP-01 challenges under way: token to key authorization.
#[derive(Debug, Clone, Default)]
pub struct Challenges(Arc<RwLock<HashMap<String, String>>>);

/// `GET /.well-known/acme-challenge/{token}`, which the CA fetches over plain HTTP.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/acme-challenge/{token}", web::get().to(answer_challenge));
}

async fn answer_challenge(token: web::Path<String>, challenges: web::Data<Challenges>) -> HttpResponse {
    match challenges.0.read().get(token.as_str()) {
        Some(answer) => HttpResponse::Ok().content_type("application/octet-stream").body(answer.clone()),
        None => HttpResponse::NotFound().content_type("text/plain").body("no such challenge\n"),
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed: once two thirds of
/// its lifetime have passed (30 days before the end of Let's Encrypt's 90, as certbot does),
/// which leaves a month of retries if the CA is down.
pub fn renewal_due(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime * 2 / 3
}

/// How long to wait after a failed attempt at `now`, for a certificate that ends at `not_after`.
pub fn retry_after(now: SystemTime, not_after: SystemTime) -> Duration {
    let left = not_after.duration_since(now).unwrap_or_default();
    (left / 10).clamp(MIN_RETRY, MAX_RETRY)
}

/// Renews the certificate whenever it is due, for as long as the server runs.
pub async fn renew_forever(settings: AcmeSettings, challenges: Challenges, current: Arc<CurrentCertificate>) {
    loop {
        let now = SystemTime::now();
        let (not_before, not_after) = match current.leaf().and_then(|leaf| der_facts(&leaf)) {
            Some(facts) => (facts.not_before, facts.not_after),
            None => (now, now),
        };
        let due = renewal_due(not_before, not_after);
        if let Ok(wait) = due.duration_since(now) {
            tokio::time::sleep(wait).await;
        }
        match obtain(&settings, &challenges).await {
            Ok((cert, key)) => match super::certified_key(cert.as_bytes(), key.as_bytes()) {
                Ok(renewed) => {
                    current.replace(renewed);
                    tracing::info!(domain = settings.domain, fingerprint = %current.fingerprint(), "certificate renewed");
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "the renewed certificate does not load"),
            },
            Err(e) => {
                let wait = retry_after(SystemTime::now(), not_after);
                tracing::error!(error = %format!("{e:#}"), retry_in_secs = wait.as_secs(), "certificate renewal failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The account stored for this directory, or a new one (then stored).
async fn account(settings: &AcmeSettings) -> Result<Account> {
    #[derive(Serialize, Deserialize)]
    struct Stored {
        directory: String,
        credentials: AccountCredentials,
    }
    let builder = || match &settings.ca_file {
        Some(root) => Account::builder_with_root(root).with_context(|| format!("reading {}", root.display())),
        None => Account::builder().context("the system's root certificates"),
    };
    let path = settings.account_path();
    if let Some(stored) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Stored>(&b).ok())
        && stored.directory == settings.directory
    {
        return builder()?.from_credentials(stored.credentials).await.context("restoring the ACME account");
    }
    let contact = settings.contact.as_deref().map(|c| match c.contains(':') {
        true => c.to_owned(),
        false => format!("mailto:{c}"),
    });
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder()?
        .create(&new, settings.directory.clone(), None)
        .await
        .with_context(|| format!("creating an account at {}", settings.directory))?;
    let stored = serde_json::to_vec(&Stored { directory: settings.directory.clone(), credentials })?;
    super::write_atomically(&path, &stored, true)?;
    Ok(account)
}

/// Orders a certificate for the domain, answers the HTTP-01 challenge, and stores the
/// certificate chain and its new key; returns them (PEM).
pub async fn obtain(settings: &AcmeSettings, challenges: &Challenges) -> Result<(String, String)> {
    tracing::info!(domain = settings.domain, directory = settings.directory, "ordering a certificate");
    let account = account(settings).await?;
    let identifiers = [Identifier::Dns(settings.domain.clone())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.context("placing the order")?;
    let mut tokens = Vec::new();
    let answered = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.context("reading an authorization")?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => bail!("authorization for {} is {other:?}", settings.domain),
            }
            let mut challenge =
                authorization.challenge(ChallengeType::Http01).context("the CA offers no http-01 challenge")?;
            challenges.0.write().insert(challenge.token.clone(), challenge.key_authorization().as_str().to_owned());
            tokens.push(challenge.token.clone());
            challenge.set_ready().await.context("telling the CA the challenge is ready")?;
        }
        let retries = RetryPolicy::new().timeout(ORDER_TIMEOUT);
        let status = order.poll_ready(&retries).await.context("waiting for validation")?;
        if status != OrderStatus::Ready {
            bail!("the order is {status:?}: the CA could not fetch http://{}/.well-known/acme-challenge/ from this server", settings.domain);
        }
        let key = order.finalize().await.context("finalizing the order")?;
        let chain = order.poll_certificate(&retries).await.context("downloading the certificate")?;
        anyhow::Ok((chain, key))
    }
    .await;
    {
        let mut pending = challenges.0.write();
        for token in &tokens {
            pending.remove(token);
        }
    }
    let (chain, key) = answered?;
    super::write_atomically(&settings.key_path(), key.as_bytes(), true)?;
    super::write_atomically(&settings.cert_path(), chain.as_bytes(), false)?;
    tracing::info!(domain = settings.domain, path = %settings.cert_path().display(), "certificate obtained");
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn renewal_is_due_after_two_thirds_of_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        assert_eq!(renewal_due(start, start + 90 * DAY), start + 60 * DAY);
        assert_eq!(renewal_due(start, start + Duration::from_secs(30)), start + Duration::from_secs(20));
        // A certificate that ends before it starts is due at once.
        assert_eq!(renewal_due(start, start - DAY), start);
    }

    #[test]
    fn a_failed_renewal_is_retried_sooner_as_the_end_nears() {
        let end = SystemTime::UNIX_EPOCH + 1000 * DAY;
        assert_eq!(retry_after(end - 30 * DAY, end), MAX_RETRY);
        assert_eq!(retry_after(end - Duration::from_secs(1000), end), Duration::from_secs(100));
        assert_eq!(retry_after(end - Duration::from_secs(5), end), MIN_RETRY);
        assert_eq!(retry_after(end + DAY, end), MIN_RETRY);
    }
}
