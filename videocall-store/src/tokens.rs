//! Revocations, kept until the tokens they refuse would have expired anyway:
//! - one token by its id (a signed-out session);
//! - every room token of one participant of a meeting (removed by the host);
//! - every room token of a meeting (ended for everyone).

use sqlx::Row as _;

use crate::{Result, Store};

impl Store {
    /// Refuses the token `token_id` from now on. Revoking twice is harmless.
    pub async fn revoke_token(&self, token_id: &str, expires_at: i64, at: i64) -> Result<()> {
        self.insert_revocation(token_id, None, None, expires_at, at).await.map(drop)
    }

    /// Records that the room token `token_id` has opened a session; false when it had already
    /// (one atomic insert, so two relays racing with the same token cannot both win). Kept
    /// until `expires_at`, when the token is refused for its age anyway.
    pub async fn claim_room_token(&self, token_id: &str, expires_at: i64, at: i64) -> Result<bool> {
        self.insert_revocation(&format!("room-token:{token_id}"), None, None, expires_at, at).await
    }

    /// Refuses every room token of `user` in `meeting`, until `expires_at`.
    pub async fn revoke_participant(&self, meeting: &str, user: &str, expires_at: i64, at: i64) -> Result<()> {
        let id = format!("participant:{meeting}:{user}");
        self.insert_revocation(&id, Some(meeting), Some(user), expires_at, at).await.map(drop)
    }

    /// Refuses every room token of `meeting`, until `expires_at`.
    pub async fn revoke_meeting(&self, meeting: &str, expires_at: i64, at: i64) -> Result<()> {
        self.insert_revocation(&format!("meeting:{meeting}"), Some(meeting), None, expires_at, at).await.map(drop)
    }

    /// True when the row is new: revocations and claims share the one insert.
    async fn insert_revocation(
        &self,
        token_id: &str,
        meeting: Option<&str>,
        user: Option<&str>,
        expires_at: i64,
        at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
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
        Ok(done.rows_affected() == 1)
    }

    pub async fn is_revoked(&self, token_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM revoked_tokens WHERE token_id = $1")
            .bind(token_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// True when `user`'s room tokens for `meeting` are refused: they were removed, or the
    /// meeting ended.
    pub async fn is_refused(&self, meeting: &str, user: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM revoked_tokens
             WHERE meeting_id = $1 AND (user_id = $2 OR user_id IS NULL)",
        )
        .bind(meeting)
        .bind(user)
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
