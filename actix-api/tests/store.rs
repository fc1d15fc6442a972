//! The server and its database: SQLite by default, PostgreSQL by URL, and `/readyz` saying
//! whether the database answers.

mod common;

use common::{Config, http_url, start};
use serde_json::Value;

async fn get(http: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{http}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_postgres_database() {
    let mut database = testkit::ThrowawayDatabase::create("videocall_api").await.unwrap();
    let mut config = Config::for_tests();
    config.database_url = database.url.clone();
    let server = start(config).await;
    let http = http_url(&server);
    let (status, body) = get(&http, "/readyz").await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!((ready["database"].as_str(), ready["database_ready"].as_bool()), (Some("postgres"), Some(true)));

    // The database goes away under the server: not ready, still alive, and it says which part.
    database.drop_now().await.unwrap();
    let (status, body) = get(&http, "/readyz").await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!((ready["database_ready"].as_bool(), ready["bus_ready"].as_bool()), (Some(false), Some(true)));
    assert_eq!(get(&http, "/healthz").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_is_created_and_a_bad_url_stops_the_start() {
    let path = std::env::temp_dir().join(format!("videocall-api-{}.db", std::process::id()));
    let mut config = Config::for_tests();
    config.database_url = format!("sqlite:{}", path.display());
    let server = start(config).await;
    assert!(path.is_file(), "the database file is created");
    let (status, body) = get(&http_url(&server), "/readyz").await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    let mut config = Config::for_tests();
    config.database_url = "postgres://nobody:secret@127.0.0.1:9/none".into();
    let error = match actix_api::start(config).await {
        Ok(_) => panic!("started without its database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("opening the database postgres://nobody:***@127.0.0.1:9/none"), "{error}");
    assert!(!error.contains("secret"), "the password stays out of messages: {error}");
}
