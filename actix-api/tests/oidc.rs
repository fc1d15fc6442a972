//! Sign-in through OpenID Connect against a real (in-test) provider: the authorization code
//! flow with PKCE, a signed-in user behind the session cookie, signed-in-only meetings, and the
//! ID tokens that must be refused (signed by another key, carrying another nonce), a tampered
//! state and a callback without its sign-in.

mod common;

use common::api::{Api, assert_error};
use common::oidc_provider::{CLIENT_ID, CLIENT_SECRET, Misbehave, Provider};
use common::*;
use serde_json::json;

fn config_for(provider: &Provider) -> Config {
    let mut config = Config::for_tests();
    // PUBLIC_URL is required with sign-in: the server's address is fixed before it starts.
    let port = testkit::free_port();
    config.listen = ([127, 0, 0, 1], port).into();
    config.public_url = Some(format!("http://127.0.0.1:{port}"));
    config.oidc_issuer_url = Some(provider.issuer.clone());
    config.oidc_client_id = Some(CLIENT_ID.into());
    config.oidc_client_secret = Some(CLIENT_SECRET.into());
    // Many sign-ins from one address in a few seconds: more than a person makes.
    config.rate_limit_logins_per_minute = 6000;
    config
}

/// Goes to the provider and back, as a browser would; returns the callback's response.
async fn sign_in(api: &mut Api, return_to: &str) -> (u16, serde_json::Value) {
    let (status, _) = api.get(&format!("/api/v1/auth/login?return_to={return_to}")).await;
    assert_eq!(status.as_u16(), 303);
    let authorize = api.location.clone().unwrap();
    let (status, body) = api.get_url(&authorize).await;
    assert_eq!(status.as_u16(), 303, "the provider: {body}");
    let callback = api.location.clone().unwrap();
    let (status, body) = api.get_url(&callback).await;
    (status.as_u16(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_pkce_and_refusals() {
    let provider = Provider::start().await;
    let server = start(config_for(&provider)).await;
    let http = http_url(&server);

    let mut grace = Api::new(&http);
    let (_, session) = grace.get("/api/v1/session").await;
    assert_eq!(session["sign_in_available"], true);

    // The login sends the browser to the provider with PKCE, state and nonce.
    grace.get("/api/v1/auth/login?return_to=/meeting/abc").await;
    let authorize = grace.location.clone().unwrap();
    assert!(authorize.starts_with(&format!("{}/authorize?", provider.issuer)), "{authorize}");
    for part in ["code_challenge_method=S256", "code_challenge=", "nonce=", "state=", "client_id=videocall-test"] {
        assert!(authorize.contains(part), "{authorize} lacks {part}");
    }
    let pending = grace.set_cookie.clone().unwrap();
    for attribute in ["videocall_oidc=", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(pending.contains(attribute), "{pending}");
    }
    grace.others.clear();

    // The whole round trip: back where we started, signed in.
    let (status, body) = sign_in(&mut grace, "/meeting/abc").await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(grace.location.as_deref(), Some("/meeting/abc"));
    let (_, me) = grace.get("/api/v1/session").await;
    assert_eq!(
        (me["user"]["kind"].as_str(), me["user"]["display_name"].as_str()),
        (Some("signed_in"), Some("Grace Hopper"))
    );
    let grace_id = me["user"]["id"].as_str().unwrap().to_owned();
    // Signing in again is the same account; an open redirect target is ignored.
    let mut again = Api::new(&http);
    assert_eq!(sign_in(&mut again, "//evil.example/").await.0, 303);
    assert_eq!(again.location.as_deref(), Some("/"));
    assert_eq!(again.get("/api/v1/session").await.1["user"]["id"], grace_id.as_str());
    // A tab (`%09`) between the slashes: browsers drop it and would go to evil.example.
    for sneaky in ["/%09/evil.example", "/%0A/evil.example", "/%5C/evil.example"] {
        let mut again = Api::new(&http);
        assert_eq!(sign_in(&mut again, sneaky).await.0, 303);
        assert_eq!(again.location.as_deref(), Some("/"), "{sneaky}");
    }

    // Signed-in-only meetings: guests are turned away, other signed-in users come in.
    let (status, meeting) =
        grace.post("/api/v1/meetings", json!({"name": "Staff", "signed_in_only": true, "waiting_room": false})).await;
    assert_eq!(status.as_u16(), 201, "{meeting}");
    let join = format!("/api/v1/meetings/{}/join", meeting["id"].as_str().unwrap());
    let mut guest = Api::new(&http);
    assert_error(guest.post(&join, json!({"display_name": "Guest"})).await, 403, "sign_in_required");
    provider.sign_in_as("ada", "Ada Lovelace");
    let mut ada = Api::new(&http);
    assert_eq!(sign_in(&mut ada, "/").await.0, 303);
    let (status, ada_in) = ada.post(&join, json!({})).await;
    assert_eq!((status.as_u16(), ada_in["state"].as_str()), (200, Some("admitted")), "{ada_in}");
    assert_ne!(ada_in["user"]["id"], grace_id.as_str());

    // ID tokens that are not the provider's, or not for this sign-in, are refused.
    provider.misbehave(Misbehave::ForeignSignature);
    let mut forger = Api::new(&http);
    let (status, body) = sign_in(&mut forger, "/").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("bad_signature")), "{body}");
    assert!(forger.cookie.is_none(), "no session");
    provider.misbehave(Misbehave::WrongNonce);
    let (status, body) = sign_in(&mut Api::new(&http), "/").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("nonce_mismatch")), "{body}");
    provider.misbehave(Misbehave::Nothing);

    // A callback whose state is not the one sent, or with no sign-in started here.
    let mut tampered = Api::new(&http);
    tampered.get("/api/v1/auth/login").await;
    let authorize = tampered.location.clone().unwrap();
    tampered.get_url(&authorize).await;
    let callback = tampered.location.clone().unwrap();
    let (code_part, _) = callback.split_once("&state=").unwrap();
    assert_error(tampered.get_url(&format!("{code_part}&state=forged")).await, 400, "state_mismatch");
    assert_error(Api::new(&http).get_url(&callback).await, 400, "sign_in_expired");
    // The provider saying no.
    assert_error(
        Api::new(&http).get("/api/v1/auth/callback?error=access_denied&error_description=nope").await,
        401,
        "sign_in_refused",
    );

    server.stop().await;
    provider.stop().await;
}

#[tokio::test]
async fn without_a_provider_sign_in_is_not_offered() {
    let server = start(Config::for_tests()).await;
    let mut api = Api::new(&http_url(&server));
    assert_eq!(api.get("/api/v1/session").await.1["sign_in_available"], false);
    assert_error(api.get("/api/v1/auth/login").await, 404, "sign_in_unavailable");
    server.stop().await;
}
