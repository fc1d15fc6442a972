//! Removal is enforced by the relays, across servers: two actix-api relays on different nodes of
//! a NATS cluster, sharing a throwaway PostgreSQL database, each with its WebTransport listener.
//! A participant connected to both (WebSocket to one, WebTransport to the other) is removed
//! through either server's API: both connections close, and their token is refused everywhere.

mod common;

use common::api::Api;
use common::webtransport::{WtClient, webtransport_info};
use common::*;
use serde_json::json;
use testkit::NatsCluster;

async fn removal_across_relays(cluster: &NatsCluster, database_url: &str) {
    let mut relays = Vec::new();
    for node in &cluster.nodes[..2] {
        let mut config = Config::for_tests();
        config.relay.nats_url = Some(node.url());
        config.database_url = database_url.to_owned();
        config.webtransport_listen = Some("127.0.0.1:0".parse().unwrap());
        relays.push(start(config).await);
    }
    let (a, b) = (http_url(&relays[0]), http_url(&relays[1]));
    let (wt_a, hash_a) = webtransport_info(&a).await;
    let (wt_b, hash_b) = webtransport_info(&b).await;

    // The host works through relay A; Bob's session cookie, from relay B, is good on both.
    let mut host = Api::new(&a);
    host.post("/api/v1/session", json!({"display_name": "Host"})).await;
    let (_, meeting) = host.post("/api/v1/meetings", json!({"name": "Cross", "waiting_room": false})).await;
    let id = meeting["id"].as_str().unwrap().to_owned();
    let (_, host_in) = host.post(&format!("/api/v1/meetings/{id}/join"), json!({})).await;
    let mut host_ws = Client::join(&b, &Guest::from_token(&host_in["token"])).await;

    let mut bob = Api::new(&b);
    let (status, bob_in) = bob.post(&format!("/api/v1/meetings/{id}/join"), json!({"display_name": "Bob"})).await;
    assert_eq!(status.as_u16(), 200, "{bob_in}");
    let bob_guest = Guest::from_token(&bob_in["token"]);
    bob.base = a.clone();
    let (status, again) = bob.post(&format!("/api/v1/meetings/{id}/token"), json!(null)).await;
    assert_eq!(status.as_u16(), 200, "the cookie from B works on A: {again}");

    // Bob on both relays: WebSocket to A, WebTransport to B.
    let mut bob_ws = Client::join(&a, &bob_guest).await;
    // A token opens one session: the second connection has the token the cookie got from A.
    let bob_wt_guest = Guest::from_token(&again["token"]);
    let bob_wt = WtClient::connect(&webtransport::lobby(&wt_b, &bob_wt_guest), hash_b).await.unwrap();
    assert!(matches!(bob_wt.recv().await.unwrap(), Received::Members(_)));
    let mut seen = 0;
    while seen < 2 {
        if let Received::Joined(_, user) = host_ws.recv().await.unwrap() {
            assert_eq!(user, bob_guest.user);
            seen += 1;
        }
    }

    // Removed through B's API: both of Bob's connections close, wherever they are.
    host.base = b.clone();
    let (status, body) =
        host.post(&format!("/api/v1/meetings/{id}/participants/{}/remove", bob_guest.user), json!(null)).await;
    assert_eq!(status.as_u16(), 204, "{body}");
    assert_eq!(bob_ws.expect_close().await, (4003, "removed by the host".into()));
    assert_eq!(bob_wt.closed().await, (4003, "removed by the host".into()));
    let mut gone = 0;
    while gone < 2 {
        if let Received::Left(_, reason) = host_ws.recv().await.unwrap() {
            assert_eq!(reason, "removed by the host");
            gone += 1;
        }
    }

    // The old token is refused on both relays and both transports.
    for http in [&a, &b] {
        let path = format!("/lobby/{}/{}?token={}", bob_guest.user, bob_guest.room, bob_guest.token);
        let (status, body) = Client::connect_raw(http, &path).await.err().expect("refused");
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("token_revoked"), "{body}");
    }
    for (base, hash) in [(&wt_a, hash_a), (&wt_b, hash_b)] {
        let refused = WtClient::connect(&webtransport::lobby(base, &bob_guest), hash).await;
        assert!(refused.is_err(), "webtransport at {base} let a removed participant back in");
    }

    // Bob comes back as a brand-new guest (cookies cleared): the meeting had no waiting room,
    // but after a removal every newcomer waits for the host.
    let mut again_bob = Api::new(&a);
    let (status, body) =
        again_bob.post(&format!("/api/v1/meetings/{id}/join"), json!({"display_name": "Not Bob"})).await;
    assert_eq!(status.as_u16(), 202, "a new guest got straight in after a removal: {body}");
    assert!(body["token"].is_null(), "{body}");

    // The host stays, and ending the meeting through A closes the host's session on B.
    host.base = a.clone();
    assert_eq!(host.post(&format!("/api/v1/meetings/{id}/end"), json!(null)).await.0.as_u16(), 204);
    assert_eq!(host_ws.expect_close().await, (4004, "the meeting has ended".into()));

    for relay in relays {
        relay.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_participant_is_disconnected_and_refused_on_every_relay() {
    let cluster = NatsCluster::start(2).unwrap();
    let mut database = testkit::ThrowawayDatabase::create("videocall_removal").await.unwrap();
    let url = database.url.clone();
    let outcome = tokio::spawn(async move {
        removal_across_relays(&cluster, &url).await;
    })
    .await;
    database.drop_now().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
