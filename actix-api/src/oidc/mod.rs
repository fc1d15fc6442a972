//! Sign-in through an OpenID Connect provider (authorization code flow with PKCE), when
//! configured by issuer URL, client id and secret:
//!
//! - `GET /api/v1/auth/login?return_to=/path`: remembers state, nonce and the PKCE verifier in
//!   a signed cookie for ten minutes and sends the browser to the provider.
//! - `GET /api/v1/auth/callback?code&state`: checks the state, exchanges the code (with the
//!   verifier) for an ID token, verifies it (the provider's keys, issuer, audience, expiry and
//!   our nonce), finds or creates the user, starts a session and returns to `return_to`.
//!
//! The provider's discovery document and keys are fetched on first use and kept for an hour;
//! a token signed with a key we do not have refreshes them (at most every ten seconds).

mod flow;

use std::time::{Duration, Instant};

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use tokio::sync::Mutex;
use videocall_relay::TokenKey;
use videocall_store::{User, UserKind};
use videocall_types::DisplayName;

use crate::AppState;
use crate::api::session::{self, internal_store};
use crate::api::signed::SignedClaims;
use crate::api::{ApiResult, now_ms, random_id};
use crate::error::ApiError;
pub use flow::IdTokenError;
use flow::Pending;

const PENDING_COOKIE: &str = "videocall_oidc";
const PENDING_SECS: u64 = 600;
const PROVIDER_TTL: Duration = Duration::from_secs(3600);
const MIN_REFRESH: Duration = Duration::from_secs(10);

/// How to reach the provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// This site's origin as browsers see it (`https://meet.example.org`); the redirect URI is
    /// `{public_url}/api/v1/auth/callback`: PUBLIC_URL, required with sign-in, so that no
    /// request header decides where the provider sends people back.
    pub public_url: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

struct Provider {
    discovery: Discovery,
    keys: JwkSet,
    fetched: Instant,
}

pub struct Oidc {
    config: OidcConfig,
    http: crate::outbound::HttpClient,
    provider: Mutex<Option<Provider>>,
    pending: SignedClaims,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::get().to(login)).route("/api/v1/auth/callback", web::get().to(callback));
}

fn provider_error(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "identity provider failed");
    ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", format!("the identity provider failed: {e}"))
}

impl Oidc {
    pub fn new(config: OidcConfig, tokens: &TokenKey) -> anyhow::Result<Self> {
        let http = crate::outbound::HttpClient::new()?;
        Ok(Self {
            config,
            http,
            provider: Mutex::new(None),
            pending: SignedClaims::new(tokens, "oidc pending sign-in"),
        })
    }

    /// The discovery document and keys; fetched again when older than an hour, or when
    /// `refresh` (a token named a key we lack) and the last fetch is over ten seconds old.
    async fn provider(&self, refresh: bool) -> ApiResult<(Discovery, JwkSet)> {
        let mut cached = self.provider.lock().await;
        let stale = match cached.as_ref() {
            None => true,
            Some(p) => p.fetched.elapsed() > PROVIDER_TTL || (refresh && p.fetched.elapsed() > MIN_REFRESH),
        };
        if stale {
            let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
            let discovery: Discovery = self.get_json(&url).await?;
            if discovery.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
                return Err(provider_error(format!("discovery names issuer {:?}", discovery.issuer)));
            }
            let keys: JwkSet = self.get_json(&discovery.jwks_uri).await?;
            *cached = Some(Provider { discovery, keys, fetched: Instant::now() });
        }
        let p = cached.as_ref().ok_or_else(|| provider_error("no provider"))?;
        Ok((p.discovery.clone(), p.keys.clone()))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> ApiResult<T> {
        let answer = self.http.get(url).await.map_err(provider_error)?;
        if !(200..300).contains(&answer.status) {
            return Err(provider_error(format!("{url} answered {}", answer.status)));
        }
        serde_json::from_slice(&answer.body).map_err(|e| provider_error(format!("{url}: {e}")))
    }

    fn redirect_uri(&self) -> String {
        format!("{}/api/v1/auth/callback", self.config.public_url.trim_end_matches('/'))
    }

    fn pending_cookie(&self, pending: &Pending) -> ApiResult<Cookie<'static>> {
        Ok(cookie(self.pending.sign(pending)?, PENDING_SECS as i64))
    }

    fn read_pending(&self, req: &HttpRequest, now: u64) -> Option<Pending> {
        self.pending.read(req.cookie(PENDING_COOKIE)?.value(), now)
    }

    /// The code for an ID token.
    async fn exchange(
        &self,
        token_endpoint: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> ApiResult<String> {
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", &self.config.client_id),
        ];
        let basic = self.config.client_secret.as_deref().map(|secret| (self.config.client_id.as_str(), secret));
        let answer = self.http.post_form(token_endpoint, &form, basic).await.map_err(provider_error)?;
        let status = answer.status;
        let body: TokenResponse = serde_json::from_slice(&answer.body).map_err(provider_error)?;
        match ((200..300).contains(&status), body.id_token) {
            (true, Some(id_token)) => Ok(id_token),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "code_refused",
                format!(
                    "the identity provider refused the code: {} {}",
                    body.error.unwrap_or_else(|| status.to_string()),
                    body.error_description.unwrap_or_default()
                ),
            )),
        }
    }
}

fn cookie(value: String, max_age_secs: i64) -> Cookie<'static> {
    session::secure_cookie(PENDING_COOKIE, value, "/api/v1/auth", max_age_secs)
}

fn configured(state: &AppState) -> ApiResult<&Oidc> {
    state.oidc.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "sign_in_unavailable", "this server has no sign-in configured")
    })
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /api/v1/auth/login?return_to=/path`
async fn login(req: HttpRequest, state: web::Data<AppState>, query: web::Query<LoginQuery>) -> ApiResult<HttpResponse> {
    let oidc = configured(&state)?;
    state.limits.check_login(&req)?;
    let (discovery, _) = oidc.provider(false).await?;
    let pending = Pending {
        state: flow::random_secret(),
        nonce: flow::random_secret(),
        verifier: flow::random_secret(),
        return_to: flow::safe_return_to(query.return_to.as_deref()),
        exp: videocall_relay::auth::unix_now() + PENDING_SECS,
    };
    let url = flow::authorization_url(
        &discovery.authorization_endpoint,
        &oidc.config.client_id,
        &oidc.redirect_uri(),
        &pending,
    );
    Ok(HttpResponse::SeeOther().cookie(oidc.pending_cookie(&pending)?).insert_header((header::LOCATION, url)).finish())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /api/v1/auth/callback?code&state`
async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> ApiResult<HttpResponse> {
    let oidc = configured(&state)?;
    state.limits.check_login(&req)?;
    if let Some(error) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign_in_refused",
            format!("the identity provider said {error}: {detail}"),
        ));
    }
    let now = videocall_relay::auth::unix_now();
    let pending = oidc.read_pending(&req, now).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "sign_in_expired",
            "this sign-in is unknown or older than ten minutes; start again",
        )
    })?;
    if query.state.as_deref() != Some(pending.state.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "state_mismatch",
            "the sign-in state does not match; start again",
        ));
    }
    let code = query.code.as_deref().ok_or_else(|| crate::api::bad_request("code_missing", "no authorization code"))?;
    let (discovery, keys) = oidc.provider(false).await?;
    let id_token = oidc.exchange(&discovery.token_endpoint, code, &oidc.redirect_uri(), &pending.verifier).await?;
    let verify = |keys: &JwkSet| {
        flow::verify_id_token(&id_token, keys, &discovery.issuer, &oidc.config.client_id, &pending.nonce, now)
    };
    let identity = match verify(&keys) {
        Err(IdTokenError::UnknownKey(_)) => verify(&oidc.provider(true).await?.1),
        other => other,
    }
    .map_err(|e| {
        tracing::warn!(error = %e, "ID token refused");
        ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
    })?;

    let name = DisplayName::parse(identity.display_name())
        .or_else(|_| DisplayName::parse("Signed-in user"))
        .map_err(|e| crate::api::internal("display_name", e))?;
    let subject = identity.subject_key();
    let user = match state.store.user_by_subject(&subject).await.map_err(internal_store)? {
        Some(known) => User { display_name: name.to_string(), ..known },
        None => User {
            id: format!("user-{}", random_id(16)),
            display_name: name.to_string(),
            kind: UserKind::SignedIn,
            subject: Some(subject),
            created_at: now_ms(),
        },
    };
    state.store.save_user(&user).await.map_err(internal_store)?;
    tracing::info!(user = %user.id, issuer = %identity.iss, "signed in");
    Ok(HttpResponse::SeeOther()
        .cookie(session::start(&state, &user.id)?)
        .cookie(cookie(String::new(), 0))
        .insert_header((header::LOCATION, pending.return_to))
        .finish())
}
