//! Participants: who asked to join a meeting and when, whether the host admitted or rejected
//! them, and when they left or were removed.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{Participant, ParticipantState, Result, Store};

/// The columns, in the order the queries below use them (a macro: the SQL stays literal).
macro_rules! columns {
    () => {
        "meeting_id, user_id, display_name, state, joined_at, decided_at, left_at"
    };
}

fn participant(row: &AnyRow) -> Result<Participant> {
    Ok(Participant {
        meeting_id: row.try_get("meeting_id")?,
        user_id: row.try_get("user_id")?,
        display_name: row.try_get("display_name")?,
        state: ParticipantState::parse(&row.try_get::<String, _>("state")?)?,
        joined_at: row.try_get("joined_at")?,
        decided_at: row.try_get("decided_at")?,
        left_at: row.try_get("left_at")?,
    })
}

impl Store {
    /// `user` asks to join `meeting` (straight in as `Admitted`, or `Waiting` for the host). A
    /// rejoin after leaving starts over; someone rejected or removed stays so.
    pub async fn join(
        &self,
        meeting: &str,
        user: &str,
        display_name: &str,
        state: ParticipantState,
        at: i64,
    ) -> Result<Participant> {
        sqlx::query(concat!(
            "INSERT INTO participants (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, NULL, NULL)
             ON CONFLICT (meeting_id, user_id) DO UPDATE
             SET display_name = excluded.display_name, state = excluded.state, joined_at = excluded.joined_at,
                 decided_at = NULL, left_at = NULL
             WHERE participants.state IN ('left', 'waiting', 'admitted')"
        ))
        .bind(meeting)
        .bind(user)
        .bind(display_name)
        .bind(state.as_str())
        .bind(at)
        .execute(&self.pool)
        .await?;
        self.participant(meeting, user).await?.ok_or(crate::StoreError::Query(sqlx::Error::RowNotFound))
    }

    pub async fn participant(&self, meeting: &str, user: &str) -> Result<Option<Participant>> {
        let row =
            sqlx::query(concat!("SELECT ", columns!(), " FROM participants WHERE meeting_id = $1 AND user_id = $2"))
                .bind(meeting)
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(participant).transpose()
    }

    /// Everyone who asked to join `meeting`, in the order they did.
    pub async fn participants(&self, meeting: &str) -> Result<Vec<Participant>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM participants WHERE meeting_id = $1 ORDER BY joined_at, user_id"
        ))
        .bind(meeting)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(participant)
        .collect()
    }

    /// The host's decision on someone in the waiting room; `None` when they were not waiting.
    pub async fn decide(&self, meeting: &str, user: &str, admit: bool, at: i64) -> Result<Option<Participant>> {
        let state = if admit { ParticipantState::Admitted } else { ParticipantState::Rejected };
        let done = sqlx::query(
            "UPDATE participants SET state = $1, decided_at = $2 WHERE meeting_id = $3 AND user_id = $4 AND state = 'waiting'",
        )
        .bind(state.as_str())
        .bind(at)
        .bind(meeting)
        .bind(user)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.participant(meeting, user).await
    }

    /// The host removes `user`: whatever their state, they are out for good. False when they
    /// never asked to join.
    pub async fn remove(&self, meeting: &str, user: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE participants SET state = 'removed', decided_at = $1, left_at = COALESCE(left_at, $1)
             WHERE meeting_id = $2 AND user_id = $3",
        )
        .bind(at)
        .bind(meeting)
        .bind(user)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `user` left (or their connection ended) at `at`; a removed or rejected state is kept.
    pub async fn leave(&self, meeting: &str, user: &str, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE participants SET state = 'left', left_at = $1
             WHERE meeting_id = $2 AND user_id = $3 AND state IN ('waiting', 'admitted')",
        )
        .bind(at)
        .bind(meeting)
        .bind(user)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
