//! One contract for every database the store runs on: SQLite in a file, SQLite in memory, and
//! PostgreSQL (a throwaway database on the local server, created and dropped here:
//! `testkit::ThrowawayDatabase`).

use videocall_store::{Backend, NewMeeting, ParticipantState, Store, StoreError, User, UserKind};

fn guest(id: &str, name: &str) -> User {
    User { id: id.into(), display_name: name.into(), kind: UserKind::Guest, subject: None, created_at: 1_000 }
}

fn meeting(id: &str, host: &str, at: i64) -> NewMeeting {
    NewMeeting {
        id: id.into(),
        name: format!("Meeting {id}"),
        host_id: host.into(),
        password_hash: None,
        waiting_room: false,
        signed_in_only: false,
        created_at: at,
    }
}

async fn users(store: &Store) {
    store.save_user(&guest("ada", "Ada")).await.unwrap();
    assert_eq!(store.user("ada").await.unwrap(), Some(guest("ada", "Ada")));
    // Saving again renames; nothing else changes.
    store.save_user(&User { created_at: 5, ..guest("ada", "Ada L.") }).await.unwrap();
    assert_eq!(store.user("ada").await.unwrap(), Some(guest("ada", "Ada L.")));
    assert_eq!(store.user("nobody").await.unwrap(), None);

    let signed_in = User {
        id: "grace".into(),
        display_name: "Grace".into(),
        kind: UserKind::SignedIn,
        subject: Some("https://id.example|grace".into()),
        created_at: 2_000,
    };
    store.save_user(&signed_in).await.unwrap();
    assert_eq!(store.user_by_subject("https://id.example|grace").await.unwrap(), Some(signed_in.clone()));
    // One account per identity.
    let twin = User { id: "grace-2".into(), ..signed_in };
    assert!(matches!(store.save_user(&twin).await, Err(StoreError::Conflict(_))));
}

async fn meetings(store: &Store) {
    let first = store.create_meeting(&meeting("standup", "ada", 10)).await.unwrap();
    assert_eq!(store.meeting("standup").await.unwrap(), Some(first.clone()));
    assert!(matches!(store.create_meeting(&meeting("standup", "ada", 11)).await, Err(StoreError::Conflict(_))));
    let locked = NewMeeting {
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        waiting_room: true,
        signed_in_only: true,
        ..meeting("board", "ada", 20)
    };
    let board = store.create_meeting(&locked).await.unwrap();
    assert_eq!(store.meeting("board").await.unwrap(), Some(board.clone()));
    assert!(board.waiting_room && board.signed_in_only && board.password_hash.is_some());
    store.create_meeting(&meeting("other", "grace", 30)).await.unwrap();

    let mine: Vec<String> = store.meetings_hosted_by("ada").await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(mine, ["board", "standup"], "newest first, only ada's");
    assert!(store.meetings_hosted_by("nobody").await.unwrap().is_empty());

    assert!(store.end_meeting("standup", 99).await.unwrap());
    assert!(!store.end_meeting("standup", 100).await.unwrap(), "ends once");
    assert!(!store.end_meeting("nowhere", 100).await.unwrap());
    let ended = store.meeting("standup").await.unwrap().unwrap();
    assert_eq!(ended.ended_at, Some(99));
    assert!(ended.has_ended());
    assert_eq!(store.meeting("nowhere").await.unwrap(), None);
}

async fn participants(store: &Store) {
    store.save_user(&guest("bob", "Bob")).await.unwrap();
    store.save_user(&guest("eve", "Eve")).await.unwrap();
    let waiting = store.join("board", "bob", "Bob", ParticipantState::Waiting, 100).await.unwrap();
    assert_eq!((waiting.state, waiting.joined_at, waiting.decided_at), (ParticipantState::Waiting, 100, None));
    let admitted = store.decide("board", "bob", true, 110).await.unwrap().unwrap();
    assert_eq!((admitted.state, admitted.decided_at), (ParticipantState::Admitted, Some(110)));
    assert_eq!(store.decide("board", "bob", false, 111).await.unwrap(), None, "only the waiting are decided");

    store.join("board", "eve", "Eve", ParticipantState::Waiting, 120).await.unwrap();
    assert_eq!(store.decide("board", "eve", false, 125).await.unwrap().unwrap().state, ParticipantState::Rejected);
    // Asking again does not undo a rejection.
    let again = store.join("board", "eve", "Eve", ParticipantState::Waiting, 130).await.unwrap();
    assert_eq!(again.state, ParticipantState::Rejected);

    store.leave("board", "bob", 140).await.unwrap();
    let left = store.participant("board", "bob").await.unwrap().unwrap();
    assert_eq!((left.state, left.left_at), (ParticipantState::Left, Some(140)));
    // Coming back starts over.
    let back = store.join("board", "bob", "Bobby", ParticipantState::Admitted, 150).await.unwrap();
    assert_eq!((back.state, back.display_name.as_str(), back.left_at), (ParticipantState::Admitted, "Bobby", None));

    assert!(store.remove("board", "bob", 160).await.unwrap());
    assert!(!store.remove("board", "nobody", 160).await.unwrap());
    let removed = store.join("board", "bob", "Bob", ParticipantState::Admitted, 170).await.unwrap();
    assert_eq!((removed.state, removed.left_at), (ParticipantState::Removed, Some(160)), "removed for good");
    store.leave("board", "bob", 180).await.unwrap();
    assert_eq!(store.participant("board", "bob").await.unwrap().unwrap().state, ParticipantState::Removed);

    let order: Vec<(String, ParticipantState)> =
        store.participants("board").await.unwrap().into_iter().map(|p| (p.user_id, p.state)).collect();
    assert_eq!(
        order,
        [("eve".to_owned(), ParticipantState::Rejected), ("bob".to_owned(), ParticipantState::Removed)],
        "in the order they (last) asked"
    );
    assert!(store.participants("standup").await.unwrap().is_empty());
}

async fn tokens(store: &Store) {
    assert!(!store.is_revoked("t1").await.unwrap());
    store.revoke_token("t1", 1_000, 500).await.unwrap();
    store.revoke_token("t1", 1_000, 501).await.unwrap();
    store.revoke_token("t2", 2_000, 500).await.unwrap();
    assert!(store.is_revoked("t1").await.unwrap() && store.is_revoked("t2").await.unwrap());

    assert!(!store.is_refused("board", "bob").await.unwrap());
    store.revoke_participant("board", "bob", 1_200, 500).await.unwrap();
    store.revoke_participant("board", "bob", 1_200, 502).await.unwrap();
    assert!(store.is_refused("board", "bob").await.unwrap());
    assert!(!store.is_refused("board", "eve").await.unwrap(), "only bob");
    assert!(!store.is_refused("standup", "bob").await.unwrap(), "only in that meeting");
    store.revoke_meeting("standup", 3_000, 600).await.unwrap();
    assert!(store.is_refused("standup", "eve").await.unwrap(), "everyone in an ended meeting");
    assert!(!store.is_refused("board", "eve").await.unwrap());

    assert_eq!(store.purge_revocations(1_500).await.unwrap(), 2, "t1 and bob's expired");
    assert!(!store.is_revoked("t1").await.unwrap());
    assert!(store.is_revoked("t2").await.unwrap());
    assert!(!store.is_refused("board", "bob").await.unwrap());
    assert!(store.is_refused("standup", "eve").await.unwrap());
}

/// The whole contract, on an empty store.
async fn contract(store: &Store) {
    store.ping().await.unwrap();
    users(store).await;
    meetings(store).await;
    participants(store).await;
    tokens(store).await;
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    contract(&store).await;
}

#[tokio::test]
async fn sqlite_file_keeps_its_data_across_restarts() {
    let path = std::env::temp_dir().join(format!("videocall-store-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite:{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    contract(&store).await;
    store.close().await;
    // Started again: the schema is not applied twice and the data is there.
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.meetings_hosted_by("ada").await.unwrap().len(), 2);
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn postgres_throwaway_database() {
    let mut database = testkit::ThrowawayDatabase::create("videocall_store").await.unwrap();
    let url = database.url.clone();
    let outcome = async move {
        // Two relays starting together on a new database: the schema is applied once.
        let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
        a.unwrap().close().await;
        b.unwrap().close().await;
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        contract(&store).await;
        store.close().await;
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.meetings_hosted_by("ada").await.unwrap().len(), 2);
        store.close().await;
    };
    // Dropped whatever happened.
    let result = tokio::spawn(outcome).await;
    database.drop_now().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn other_urls_are_refused() {
    assert!(matches!(Store::connect("mysql://localhost/x").await, Err(StoreError::UnsupportedUrl(_))));
}
