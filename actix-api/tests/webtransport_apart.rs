//! The scaled layout of docker-compose.yaml: the WebTransport relay as its own server (a
//! development certificate, the same NATS and secret), and actix-api telling browsers where it
//! is and, fetched from its `/certificate`, the hash to trust. Settings given as empty strings
//! (as compose passes unset variables) count as unset.

mod common;

use clap::Parser as _;
use common::webtransport::{WtClient, hash_from_hex};
use common::*;
use testkit::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_a_separate_relays_development_certificate_hash() {
    let nats = NatsServer::start().unwrap();
    let secret = "test secret that is long enough for HS256";
    let mut wt_config = webtransport_server::Config::parse_from([
        "webtransport-server",
        "--listen",
        "127.0.0.1:0",
        "--health-listen",
        "127.0.0.1:0",
        "--tls-cert-file",
        "",
        "--tls-key-file",
        "",
    ]);
    wt_config.relay.nats_url = Some(nats.url());
    wt_config.relay.token_secret = Some(secret.into());
    let relay = webtransport_server::run(wt_config).await.unwrap();
    let wt_port = relay.webtransport.local_addr().port();

    let mut config = Config::for_tests();
    config.relay.nats_url = Some(nats.url());
    config.webtransport_url = Some(format!("https://127.0.0.1:{wt_port}/"));
    config.webtransport_certificate_url = Some(format!("http://{}/certificate", relay.health_addr));
    config.oidc_issuer_url = Some(String::new());
    config.oidc_client_id = Some(String::new());
    let server = start(config).await;
    let http = http_url(&server);

    let info: serde_json::Value =
        reqwest::get(format!("{http}/api/v1/webtransport")).await.unwrap().json().await.unwrap();
    assert_eq!(info["url"], format!("https://127.0.0.1:{wt_port}/"));
    let hash = hash_from_hex(info["certificate_hashes"][0]["value"].as_str().expect("the relay's hash"));
    assert_eq!(Some(hash), relay.webtransport.certificate_hash());
    let session: serde_json::Value =
        reqwest::get(format!("{http}/api/v1/session")).await.unwrap().json().await.unwrap();
    assert_eq!(session["sign_in_available"], false, "an empty OIDC_ISSUER_URL is no provider");

    // A token from actix-api works on the separate relay with the hash actix-api gave.
    let guest = guest(&http, "apart", "Ada").await;
    let client = WtClient::connect(&webtransport::lobby(info["url"].as_str().unwrap(), &guest), hash).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Received::Members(_)));

    server.stop().await;
    relay.stop().await;
}
