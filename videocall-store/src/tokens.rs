//! Revoked tokens: a removed participant's token is refused until it would have expired anyway.

use sqlx::Row as _;

use crate::{Result, Store};

impl Store {
    /// Refuses `token_id` from now on (it belonged to `user` in `meeting`, and expires at
    /// `expires_at`). Revoking twice is harmless.
    pub async fn revoke_token(
        &self,
        token_id: &str,
        meeting: &str,
        user: &str,
        expires_at: i64,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO revoked_tokens (token_id, meeting_id, user_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (token_id) DO NOTHING",
        )
        .bind(token_id)
        .bind(meeting)
        .bind(user)
        .bind(expires_at)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn is_revoked(&self, token_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM revoked_tokens WHERE token_id = $1")
            .bind(token_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Forgets revocations of tokens that have expired by `now` (they are refused anyway);
    /// how many went.
    pub async fn purge_revocations(&self, now: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
