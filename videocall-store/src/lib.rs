//! Persistence: meetings, their participants, users and revoked tokens. SQLite (a file, the
//! single-node default, or in memory) and PostgreSQL (`DATABASE_URL=postgres://…`) are served
//! by one code base through sqlx's `any` driver; the schema is applied at start-up for both.
//!
//! - `model.rs`: the records.
//! - `migrate.rs`: the embedded schema and the runner that applies what a database lacks.
//! - `meetings.rs`, `participants.rs`, `users.rs`, `tokens.rs`: the queries, one table each.
//!
//! The records' times are milliseconds since the Unix epoch, given by the caller: the store
//! reads no clock for them (only to note when a schema version was applied).

mod meetings;
mod migrate;
mod model;
mod participants;
mod tokens;
mod users;

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use thiserror::Error;

pub use model::{Meeting, NewMeeting, Participant, ParticipantState, User, UserKind};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{0}: not a database URL this server takes (sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("connecting to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("applying schema version {version}: {source}")]
    Migrate { version: i64, source: sqlx::Error },
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("a stored {field} holds {value:?}, which this version does not know")]
    Corrupt { field: &'static str, value: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// [`Store::connect_waiting`]'s first pause, doubling up to [`CONNECT_RETRY_MAX`]: a database
/// that is about to answer is found within a second, one that takes long is not hammered.
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(250);
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(4);

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` and applies the schema it lacks. `sqlite:path` creates the file;
    /// `sqlite::memory:` is a database that lives as long as the store.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else if url == "sqlite::memory:" {
            (Backend::Sqlite, url.to_owned())
        } else if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            // Create the file if it is not there yet.
            let sep = if path.contains('?') { '&' } else { '?' };
            let mode = if path.contains("mode=") { String::new() } else { format!("{sep}mode=rwc") };
            (Backend::Sqlite, format!("sqlite://{path}{mode}"))
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if url == "sqlite::memory:" {
            // Every connection to `:memory:` is a database of its own: keep exactly one.
            options = options.max_connections(1).idle_timeout(None).max_lifetime(None);
        } else if backend == Backend::Sqlite {
            // SQLite has one writer at a time; a few readers beside it are plenty.
            options = options.max_connections(4);
        }
        let pool = options.connect(&url).await.map_err(StoreError::Connect)?;
        if backend == Backend::Sqlite && url != "sqlite::memory:" {
            // Readers do not wait for the writer; kept by the file once set.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await.map_err(StoreError::Connect)?;
        }
        let store = Self { pool, backend };
        migrate::run(&store.pool, backend).await?;
        Ok(store)
    }

    /// [`Store::connect`], trying a PostgreSQL server again while it cannot be reached (its
    /// name not resolvable yet, refusing connections, starting up) for up to `wait`: a database
    /// started beside the server (compose, a cluster) takes seconds before it answers, and a
    /// server that gave up at once would only be restarted into the same race. Other errors,
    /// and SQLite (a file opens or it does not), end it at once.
    pub async fn connect_waiting(url: &str, wait: Duration) -> Result<Self> {
        let wait = if url.starts_with("postgres") { wait } else { Duration::ZERO };
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = CONNECT_RETRY_FIRST;
        loop {
            match Self::connect(url).await {
                Err(StoreError::Connect(e)) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(error = %e, retry_in = ?pause, "the database is not reachable yet");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(CONNECT_RETRY_MAX);
                }
                result => return result,
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (waits for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps a unique or primary key violation to `Conflict(what)`, anything else to `Query`.
fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Query(error),
    }
}
