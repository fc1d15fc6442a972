//! A small OpenID Connect provider for tests: a real HTTP server (discovery, authorize, token,
//! keys) that signs ID tokens with its own RSA key, checks the client secret, the redirect URI
//! and the PKCE verifier, and can be told to misbehave (a signature by another key, a nonce
//! that is not the client's).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "videocall-test";
pub const CLIENT_SECRET: &str = "provider secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehave {
    Nothing,
    /// Sign with another key, under the published key's id.
    ForeignSignature,
    /// Put another nonce in the ID token.
    WrongNonce,
}

struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    user: (String, String),
}

struct State {
    issuer: String,
    key: EncodingKey,
    foreign: EncodingKey,
    jwks: serde_json::Value,
    codes: Mutex<HashMap<String, Grant>>,
    /// Who signs in next: subject and name.
    next_user: Mutex<(String, String)>,
    misbehave: Mutex<Misbehave>,
}

pub struct Provider {
    pub issuer: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

fn rsa_key() -> (EncodingKey, rsa::RsaPrivateKey) {
    let mut rng = rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let der = key.to_pkcs1_der().unwrap();
    (EncodingKey::from_rsa_der(der.as_bytes()), key)
}

impl Provider {
    pub async fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let (key, private) = rsa_key();
        let (foreign, _) = rsa_key();
        let public = private.to_public_key();
        let jwks = serde_json::json!({"keys": [{
            "kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }]});
        let state = Arc::new(State {
            issuer: issuer.clone(),
            key,
            foreign,
            jwks,
            codes: Mutex::new(HashMap::new()),
            next_user: Mutex::new(("grace".into(), "Grace Hopper".into())),
            misbehave: Mutex::new(Misbehave::Nothing),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/.well-known/openid-configuration", web::get().to(discovery))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/jwks", web::get().to(jwks_handler))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { issuer, state, handle }
    }

    pub fn sign_in_as(&self, subject: &str, name: &str) {
        *self.state.next_user.lock().unwrap() = (subject.into(), name.into());
    }

    pub fn misbehave(&self, how: Misbehave) {
        *self.state.misbehave.lock().unwrap() = how;
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn discovery(state: web::Data<State>) -> HttpResponse {
    let i = &state.issuer;
    HttpResponse::Ok().json(serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks_handler(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(&state.jwks)
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: String,
    nonce: String,
    code_challenge: String,
    code_challenge_method: String,
}

/// Signs the configured user in at once and sends the browser back with a code.
async fn authorize(state: web::Data<State>, q: web::Query<AuthorizeQuery>) -> HttpResponse {
    let ok = q.response_type == "code"
        && q.client_id == CLIENT_ID
        && q.scope.split(' ').any(|s| s == "openid")
        && q.code_challenge_method == "S256"
        && !q.code_challenge.is_empty();
    if !ok {
        return HttpResponse::BadRequest().body("bad authorization request");
    }
    let code: String = format!("code-{:016x}", rand::random::<u64>());
    let user = state.next_user.lock().unwrap().clone();
    state.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            nonce: q.nonce.clone(),
            challenge: q.code_challenge.clone(),
            redirect_uri: q.redirect_uri.clone(),
            user,
        },
    );
    let location = format!("{}?code={code}&state={}", q.redirect_uri, q.state);
    HttpResponse::SeeOther().insert_header(("location", location)).finish()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: String,
}

/// HTTP Basic client credentials, each part form-decoded (RFC 6749, 2.3.1).
fn client_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(value).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((form_decode(user)?, form_decode(password)?))
}

fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn refuse(error: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({"error": error}))
}

async fn token(req: HttpRequest, state: web::Data<State>, form: web::Form<TokenForm>) -> HttpResponse {
    if client_credentials(&req) != Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())) {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "invalid_client"}));
    }
    // Codes are single use.
    let Some(grant) = state.codes.lock().unwrap().remove(&form.code) else { return refuse("invalid_grant") };
    if form.grant_type != "authorization_code" || form.redirect_uri != grant.redirect_uri {
        return refuse("invalid_grant");
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(form.code_verifier.as_bytes())) != grant.challenge {
        return refuse("invalid_grant");
    }
    let misbehave = *state.misbehave.lock().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let nonce = if misbehave == Misbehave::WrongNonce { "someone else's nonce".to_owned() } else { grant.nonce };
    let claims = serde_json::json!({
        "iss": state.issuer, "sub": grant.user.0, "aud": CLIENT_ID, "exp": now + 300, "iat": now,
        "nonce": nonce, "name": grant.user.1, "email": format!("{}@example.org", grant.user.0),
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let key = if misbehave == Misbehave::ForeignSignature { &state.foreign } else { &state.key };
    let id_token = jsonwebtoken::encode(&header, &claims, key).unwrap();
    HttpResponse::Ok().json(serde_json::json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}))
}
