//! A throwaway PostgreSQL database on the local server: created with a unique name for one
//! test and dropped (connections and all) when the test is done. The server is reached through
//! `TEST_POSTGRES_URL`, by default `postgres://postgres@127.0.0.1:5432/postgres` (trust auth).

use anyhow::{Context, Result};
use sqlx::{Connection as _, PgConnection};

pub struct ThrowawayDatabase {
    admin: PgConnection,
    name: String,
    /// The new database's URL.
    pub url: String,
}

impl ThrowawayDatabase {
    pub async fn create(prefix: &str) -> Result<Self> {
        let admin_url = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url} (set TEST_POSTGRES_URL)"))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
        let server = admin_url.rsplit_once('/').context("TEST_POSTGRES_URL names no database")?.0;
        let url = format!("{server}/{name}");
        Ok(Self { admin, name, url })
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_now(&mut self) -> Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut self.admin).await?;
        Ok(())
    }
}
