//! The schema, embedded, and a runner that applies the versions a database has not seen, each in
//! its own transaction, recording them in `store_migrations`. The SQL is written to mean the same
//! on SQLite and PostgreSQL. On PostgreSQL an advisory lock keeps relays that start together from
//! applying the same version twice.

use sqlx::{AnyConnection, AnyPool, Row as _};

use crate::{Backend, Result, StoreError};

/// The advisory lock's key (PostgreSQL): any constant the application owns.
const LOCK_KEY: i64 = 0x7669_6465_6f63_616c; // "videocal"

pub async fn run(pool: &AnyPool, backend: Backend) -> Result<()> {
    let mut conn = pool.acquire().await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK_KEY).execute(&mut *conn).await?;
    }
    let result = apply(&mut conn).await;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK_KEY).execute(&mut *conn).await?;
    }
    result
}

/// (version, SQL), in order. A released version is never edited: changes are new versions.
const MIGRATIONS: [(i64, &str); 1] = [(1, include_str!("../migrations/0001_initial.sql"))];

async fn apply(conn: &mut AnyConnection) -> Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS store_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&mut *conn)
        .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM store_migrations")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("version"))
        .collect::<Result<_, _>>()?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        let failed = |source| StoreError::Migrate { version, source };
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(failed)?;
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(failed)?;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        sqlx::query("INSERT INTO store_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    Ok(())
}
