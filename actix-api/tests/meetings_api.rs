//! The meetings API against the real server, on SQLite (in memory) and on a throwaway
//! PostgreSQL database: every endpoint's success path and its failures, with the relay
//! carrying out the host's decisions on live WebSocket connections.

mod common;

use common::api::{Api, assert_error};
use common::*;
use serde_json::{Value, json};
use videocall_relay::{RoomToken, TokenKey};
use videocall_types::{ModerationPacket, PacketType, RoomId, UserId, moderation_packet::Action};

const SECRET: &str = "test secret that is long enough for HS256";

async fn sessions_and_validation(host: &mut Api) {
    let (status, body) = host.get("/api/v1/session").await;
    assert_eq!((status.as_u16(), &body["user"]), (200, &serde_json::Value::Null));
    assert_eq!(body["sign_in_available"], false);
    assert_error(host.post("/api/v1/meetings", json!({"name": "Standup"})).await, 401, "not_signed_in");
    assert_error(host.get("/api/v1/meetings").await, 401, "not_signed_in");
    assert_error(host.post("/api/v1/session", json!({"display_name": ""})).await, 400, "bad_display_name");
    // A right-to-left isolate would make this read as someone else's name.
    let spoof = json!({"display_name": "Host \u{2067}tsoH\u{2069}"});
    assert_error(host.post("/api/v1/session", spoof).await, 400, "bad_display_name");

    let (status, me) = host.post("/api/v1/session", json!({"display_name": "Hannah Host"})).await;
    assert_eq!(status.as_u16(), 201, "{me}");
    assert_eq!(me["kind"], "guest");
    let cookie = host.set_cookie.clone().unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let (_, session) = host.get("/api/v1/session").await;
    assert_eq!(session["user"]["display_name"], "Hannah Host");
    // Renaming keeps the same user.
    let (status, renamed) = host.post("/api/v1/session", json!({"display_name": "Hannah"})).await;
    assert_eq!((status.as_u16(), &renamed["id"]), (200, &me["id"]));

    // A forged cookie is no session.
    let mut forged = host.anonymous();
    forged.cookie = Some("videocall_session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA".into());
    assert_error(forged.get("/api/v1/meetings").await, 401, "not_signed_in");

    assert_error(host.post("/api/v1/meetings", json!({"name": "  "})).await, 400, "bad_name");
    assert_error(host.post("/api/v1/meetings", json!({"name": "Board\u{202E}"})).await, 400, "bad_name");
    assert_error(host.post("/api/v1/meetings", json!({"name": "x", "colour": "red"})).await, 400, "bad_json");
    assert_error(
        host.post("/api/v1/meetings", json!({"name": "x", "signed_in_only": true})).await,
        400,
        "sign_in_unavailable",
    );
    let huge = json!({"name": "x".repeat(10_000)});
    assert_error(host.post("/api/v1/meetings", huge).await, 413, "body_too_large");
    assert_error(host.post_raw("/api/v1/meetings", "text/plain", b"name=x".to_vec()).await, 415, "not_json");
    assert_error(host.get("/api/v1/meetings/no-such-meeting").await, 404, "meeting_not_found");
    assert_error(host.get("/api/v1/meetings/bad.id").await, 404, "meeting_not_found");
}

/// The whole flow on one server.
async fn meeting_flow(http: &str) {
    let mut host = Api::new(http);
    sessions_and_validation(&mut host).await;

    let (status, meeting) =
        host.post("/api/v1/meetings", json!({"name": "Board", "password": "open sesame", "waiting_room": true})).await;
    assert_eq!(status.as_u16(), 201, "{meeting}");
    let id = meeting["id"].as_str().unwrap().to_owned();
    assert!(RoomId::parse(&id).is_ok());
    assert_eq!((meeting["has_password"].as_bool(), meeting["you_are_host"].as_bool()), (Some(true), Some(true)));
    assert!(meeting.get("password_hash").is_none(), "the hash never leaves the server");
    let (_, mine) = host.get("/api/v1/meetings").await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["id"], id.as_str());
    let base = format!("/api/v1/meetings/{id}");

    // The host is in straight away, without the password.
    let (status, host_join) = host.post(&format!("{base}/join"), json!({})).await;
    assert_eq!((status.as_u16(), host_join["state"].as_str()), (200, Some("admitted")), "{host_join}");
    let mut host_ws = Client::join(http, &Guest::from_token(&host_join["token"])).await;

    // A guest: a display name, then the password, then the waiting room.
    let mut guest = Api::new(http);
    let (_, public) = guest.get(&base).await;
    assert_eq!((public["name"].as_str(), public["you_are_host"].as_bool()), (Some("Board"), Some(false)));
    assert_error(guest.post(&format!("{base}/join"), json!({})).await, 400, "display_name_required");
    assert_error(guest.post(&format!("{base}/join"), json!({"display_name": "Bob"})).await, 401, "password_required");
    assert!(guest.cookie.is_none(), "a refused join makes no guest");
    let wrong = json!({"display_name": "Bob", "password": "guess"});
    assert_error(guest.post(&format!("{base}/join"), wrong).await, 403, "wrong_password");
    let right = json!({"display_name": "Bob", "password": "open sesame"});
    let (status, waiting) = guest.post(&format!("{base}/join"), right.clone()).await;
    assert_eq!((status.as_u16(), waiting["state"].as_str()), (202, Some("waiting")), "{waiting}");
    assert!(waiting.get("token").is_none());
    assert!(guest.cookie.is_some(), "the guest got a session");
    let bob = waiting["user"]["id"].as_str().unwrap().to_owned();
    let (status, still) = guest.post(&format!("{base}/token"), json!(null)).await;
    assert_eq!((status.as_u16(), still["state"].as_str()), (202, Some("waiting")));
    // Tokens for meeting rooms come only from the join flow.
    assert_error(
        guest.post("/api/v1/guest-tokens", json!({"room": id, "display_name": "Bob"})).await,
        409,
        "meeting_join_required",
    );

    // Only the host decides.
    assert_error(guest.get(&format!("{base}/participants")).await, 403, "not_host");
    assert_error(guest.post(&format!("{base}/participants/{bob}/admit"), json!(null)).await, 403, "not_host");
    assert_error(guest.post(&format!("{base}/end"), json!(null)).await, 403, "not_host");
    let (_, list) = host.get(&format!("{base}/participants")).await;
    let states: Vec<(&str, bool)> =
        list.as_array().unwrap().iter().map(|p| (p["state"].as_str().unwrap(), p["is_host"] == true)).collect();
    assert_eq!(states, [("admitted", true), ("waiting", false)]);
    assert_error(
        host.post(&format!("{base}/participants/nobody/admit"), json!(null)).await,
        404,
        "participant_not_found",
    );
    assert_error(host.post(&format!("{base}/participants/{bob}/dance"), json!(null)).await, 404, "unknown_action");
    assert_error(host.post(&format!("{base}/participants/{bob}/mute"), json!(null)).await, 409, "not_in_meeting");
    let (status, admitted) = host.post(&format!("{base}/participants/{bob}/admit"), json!(null)).await;
    assert_eq!((status.as_u16(), admitted["state"].as_str()), (200, Some("admitted")));
    assert_error(host.post(&format!("{base}/participants/{bob}/admit"), json!(null)).await, 409, "not_waiting");

    // Admitted: the token, and into the room.
    let (status, ticket) = guest.post(&format!("{base}/token"), json!(null)).await;
    assert_eq!(status.as_u16(), 200, "{ticket}");
    assert_eq!(
        (ticket["token"]["room"].as_str(), ticket["token"]["display_name"].as_str()),
        (Some(id.as_str()), Some("Bob"))
    );
    let mut bob_ws = Client::join(http, &Guest::from_token(&ticket["token"])).await;
    assert!(matches!(host_ws.recv().await.unwrap(), Received::Joined(_, user) if user == bob));

    // Mute: a control message to Bob only.
    let (status, _) = host.post(&format!("{base}/participants/{bob}/mute"), json!(null)).await;
    assert_eq!(status.as_u16(), 202);
    let packet = next_packet(&mut bob_ws).await;
    assert_eq!(packet.packet_type.enum_value(), Ok(PacketType::MODERATION));
    let moderation = <ModerationPacket as protobuf::Message>::parse_from_bytes(&packet.data).unwrap();
    assert_eq!(moderation.action, Some(Action::MuteUser(bob.clone())));

    // Remove: the connection closes, and the token, the join and the token endpoint refuse.
    let (status, _) = host.post(&format!("{base}/participants/{bob}/remove"), json!(null)).await;
    assert_eq!(status.as_u16(), 204);
    assert_eq!(bob_ws.expect_close().await, (4003, "removed by the host".into()));
    assert!(matches!(host_ws.recv().await.unwrap(), Received::Left(_, reason) if reason == "removed by the host"));
    let old_path = ticket["token"]["websocket_path"].as_str().unwrap();
    let (status, body) = Client::connect_raw(http, old_path).await.err().expect("the old token is refused");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("token_revoked"), "{body}");
    assert_error(guest.post(&format!("{base}/token"), json!(null)).await, 403, "removed");
    assert_error(guest.post(&format!("{base}/join"), right).await, 403, "removed");
    let host_id = host_join["user"]["id"].as_str().unwrap();
    assert_error(
        host.post(&format!("{base}/participants/{host_id}/remove"), json!(null)).await,
        400,
        "cannot_remove_host",
    );

    // Rejected stays rejected.
    let mut eve = Api::new(http);
    let (_, eve_waiting) =
        eve.post(&format!("{base}/join"), json!({"display_name": "Eve", "password": "open sesame"})).await;
    let eve_id = eve_waiting["user"]["id"].as_str().unwrap().to_owned();
    let (status, rejected) = host.post(&format!("{base}/participants/{eve_id}/reject"), json!(null)).await;
    assert_eq!((status.as_u16(), rejected["state"].as_str()), (200, Some("rejected")));
    assert_error(eve.post(&format!("{base}/token"), json!(null)).await, 403, "rejected");

    // A token that expired, or was signed by someone else, is refused by the relay.
    let key = TokenKey::from_secret(SECRET.as_bytes()).unwrap();
    let grant = RoomToken {
        user: UserId::parse(host_id).unwrap(),
        room: RoomId::parse(&id).unwrap(),
        name: videocall_types::DisplayName::parse("H").unwrap(),
        expires_at: 1_000,
        id: RoomToken::fresh_id(),
        recorder: false,
    };
    let expired = key.issue(&grant, 900).unwrap();
    let (status, body) =
        Client::connect_raw(http, &format!("/lobby/{host_id}/{id}?token={expired}")).await.err().unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("token_expired"), "{body}");

    // Leaving is recorded; coming back (no waiting room for the admitted? no: it starts over).
    let mut carol = Api::new(http);
    let plain = host.post("/api/v1/meetings", json!({"name": "Open", "waiting_room": false})).await.1;
    let open_base = format!("/api/v1/meetings/{}", plain["id"].as_str().unwrap());
    let (status, carol_in) = carol.post(&format!("{open_base}/join"), json!({"display_name": "Carol"})).await;
    assert_eq!((status.as_u16(), carol_in["state"].as_str()), (200, Some("admitted")), "{carol_in}");
    assert!(carol_in["token"]["token"].is_string());
    assert_eq!(carol.post(&format!("{open_base}/leave"), json!(null)).await.0.as_u16(), 204);
    assert_error(carol.post(&format!("{open_base}/token"), json!(null)).await, 409, "not_joined");
    let (_, list) = host.get(&format!("{open_base}/participants")).await;
    // Listed by arrival, to the second: the host and Carol may have come in the same one.
    let carol_entry = list.as_array().unwrap().iter().find(|p| p["display_name"] == "Carol").expect("Carol is listed");
    assert_eq!(carol_entry["state"], "left");
    assert!(carol_entry["left_at"].is_i64());

    // End for everyone: the host's connection closes too, and nothing gets back in.
    assert_eq!(host.post(&format!("{base}/end"), json!(null)).await.0.as_u16(), 204);
    assert_eq!(host_ws.expect_close().await, (4004, "the meeting has ended".into()));
    assert_error(host.post(&format!("{base}/end"), json!(null)).await, 410, "meeting_ended");
    assert_error(host.post(&format!("{base}/join"), json!({})).await, 410, "meeting_ended");
    assert_error(host.post(&format!("{base}/token"), json!(null)).await, 410, "meeting_ended");
    let host_path = host_join["token"]["websocket_path"].as_str().unwrap();
    let (status, _) = Client::connect_raw(http, host_path).await.err().expect("an ended meeting refuses tokens");
    assert_eq!(status, 403);
    let (_, ended) = host.get(&base).await;
    assert!(ended["ended_at"].is_i64());

    // Signing out ends the session on the server, not only in this browser.
    let old_cookie = host.cookie.clone();
    let (status, _) = host.delete("/api/v1/session").await;
    assert_eq!(status.as_u16(), 204);
    assert!(host.set_cookie.as_deref().unwrap().contains("Max-Age=0"));
    let mut replay = Api::new(http);
    replay.cookie = old_cookie;
    assert_error(replay.get("/api/v1/meetings").await, 401, "not_signed_in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_on_sqlite() {
    let server = start(Config::for_tests()).await;
    meeting_flow(&http_url(&server)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_on_postgres() {
    let mut database = testkit::ThrowawayDatabase::create("videocall_api").await.unwrap();
    let mut config = Config::for_tests();
    config.database_url = database.url.clone();
    let outcome = tokio::spawn(async move {
        let server = start(config).await;
        meeting_flow(&http_url(&server)).await;
        server.stop().await;
    })
    .await;
    database.drop_now().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_login_endpoints_are_rate_limited_per_address() {
    let mut config = Config::for_tests();
    config.rate_limit_logins_per_minute = 3;
    config.rate_limit_tokens_per_minute = 6;
    let server = start(config).await;
    let http = http_url(&server);
    let mut api = Api::new(&http);
    // Logins: a burst of one.
    assert_eq!(api.post("/api/v1/session", json!({"display_name": "A"})).await.0.as_u16(), 201);
    let limited = api.post("/api/v1/session", json!({"display_name": "A"})).await;
    let message = assert_error(limited, 429, "rate_limited");
    assert!(message.contains("try again"), "{message}");
    // Tokens: a burst of one, counted apart from logins.
    let room = json!({"room": "r", "display_name": "A"});
    assert_eq!(api.post("/api/v1/guest-tokens", room.clone()).await.0.as_u16(), 201);
    let response = reqwest::Client::new().post(format!("{http}/api/v1/guest-tokens")).json(&room).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    let metrics = common::metrics(&server).await;
    for line in [
        "api_rate_limited_total{class=\"login\"} 1",
        "api_rate_limited_total{class=\"token\"} 1",
        "api_errors_total{status=\"429\"} 2",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    server.stop().await;
}

/// A POST from `address` as a trusted proxy reports it (`X-Forwarded-For`).
async fn post_from(http: &str, path: &str, address: &str, cookie: Option<&str>, body: Value) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().post(format!("{http}{path}")).header("x-forwarded-for", address).json(&body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_see_the_client_behind_trusted_proxies_only() {
    let mut config = Config::for_tests();
    config.rate_limit_tokens_per_minute = 6;
    let room = json!({"room": "r", "display_name": "A"});

    // No trusted proxy: a forged X-Forwarded-For changes nothing, everyone is the peer.
    let server = start(config.clone()).await;
    let http = http_url(&server);
    assert_eq!(post_from(&http, "/api/v1/guest-tokens", "198.51.100.1", None, room.clone()).await.0, 201);
    let (status, body) = post_from(&http, "/api/v1/guest-tokens", "198.51.100.2", None, room.clone()).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    server.stop().await;

    // Behind a trusted proxy (this test, on loopback): each client has its own bucket.
    config.trusted_proxies = Some("127.0.0.1/32, ::1".into());
    let server = start(config).await;
    let http = http_url(&server);
    for client in ["198.51.100.1", "198.51.100.2", "203.0.113.5, 198.51.100.3"] {
        assert_eq!(post_from(&http, "/api/v1/guest-tokens", client, None, room.clone()).await.0, 201, "{client}");
    }
    assert_eq!(post_from(&http, "/api/v1/guest-tokens", "198.51.100.2", None, room).await.0, 429);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guesses_are_limited_per_meeting_and_creation_per_session() {
    let mut config = Config::for_tests();
    config.trusted_proxies = Some("127.0.0.1, ::1".into());
    config.rate_limit_password_failures_per_minute = 6;
    config.rate_limit_meetings_per_minute = 3;
    let server = start(config).await;
    let http = http_url(&server);
    let mut host = Api::new(&http);
    host.post("/api/v1/session", json!({"display_name": "Host"})).await;
    let (status, meeting) =
        host.post("/api/v1/meetings", json!({"name": "Board", "password": "4711", "waiting_room": false})).await;
    assert_eq!(status.as_u16(), 201, "{meeting}");
    let join = format!("/api/v1/meetings/{}/join", meeting["id"].as_str().unwrap());

    // Ten wrong guesses, each from an address of its own, then the meeting makes everyone wait.
    for i in 0..10 {
        let body = json!({"display_name": "Guesser", "password": format!("{i:04}")});
        let (status, answer) = post_from(&http, &join, &format!("198.51.100.{}", i + 1), None, body).await;
        assert_eq!((status, answer["code"].as_str()), (403, Some("wrong_password")), "guess {i}: {answer}");
    }
    let body = json!({"display_name": "Guesser", "password": "0010"});
    let (status, answer) = post_from(&http, &join, "198.51.100.77", None, body).await;
    assert_eq!((status, answer["code"].as_str()), (429, Some("rate_limited")), "{answer}");
    // The right password waits too: the limit does not say whether a guess would have been right.
    let body = json!({"display_name": "Late", "password": "4711"});
    assert_eq!(post_from(&http, &join, "198.51.100.78", None, body).await.0, 429);

    // Creating meetings: three a minute per session, even from new addresses.
    let cookie = host.cookie.clone().unwrap();
    for (i, address) in ["192.0.2.1", "192.0.2.2"].iter().enumerate() {
        let (status, body) =
            post_from(&http, "/api/v1/meetings", address, Some(&cookie), json!({"name": format!("M{i}")})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = post_from(&http, "/api/v1/meetings", "192.0.2.3", Some(&cookie), json!({"name": "M"})).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    let metrics = common::metrics(&server).await;
    for line in ["api_rate_limited_total{class=\"password\"} 2", "api_rate_limited_total{class=\"meeting\"} 1"] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    server.stop().await;
}
