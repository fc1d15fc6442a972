//! Meetings: created by a host, listed by host, ended once.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{Meeting, NewMeeting, Result, Store};

/// The columns, in the order the queries below use them (a macro: the SQL stays literal).
macro_rules! columns {
    () => {
        "id, name, host_id, created_at, ended_at, password_hash, waiting_room, signed_in_only"
    };
}

fn meeting(row: &AnyRow) -> Result<Meeting> {
    Ok(Meeting {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        host_id: row.try_get("host_id")?,
        created_at: row.try_get("created_at")?,
        ended_at: row.try_get("ended_at")?,
        password_hash: row.try_get("password_hash")?,
        waiting_room: row.try_get::<i64, _>("waiting_room")? != 0,
        signed_in_only: row.try_get::<i64, _>("signed_in_only")? != 0,
    })
}

impl Store {
    /// Creates a meeting; its id must be new and its host a known user.
    pub async fn create_meeting(&self, new: &NewMeeting) -> Result<Meeting> {
        sqlx::query(concat!("INSERT INTO meetings (", columns!(), ") VALUES ($1, $2, $3, $4, NULL, $5, $6, $7)"))
            .bind(&new.id)
            .bind(&new.name)
            .bind(&new.host_id)
            .bind(new.created_at)
            .bind(&new.password_hash)
            .bind(i64::from(new.waiting_room))
            .bind(i64::from(new.signed_in_only))
            .execute(&self.pool)
            .await
            .map_err(crate::conflict("a meeting with that id"))?;
        Ok(Meeting {
            id: new.id.clone(),
            name: new.name.clone(),
            host_id: new.host_id.clone(),
            created_at: new.created_at,
            ended_at: None,
            password_hash: new.password_hash.clone(),
            waiting_room: new.waiting_room,
            signed_in_only: new.signed_in_only,
        })
    }

    pub async fn meeting(&self, id: &str) -> Result<Option<Meeting>> {
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM meetings WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(meeting).transpose()
    }

    /// The meetings `host` created, newest first.
    pub async fn meetings_hosted_by(&self, host: &str) -> Result<Vec<Meeting>> {
        sqlx::query(concat!("SELECT ", columns!(), " FROM meetings WHERE host_id = $1 ORDER BY created_at DESC, id"))
            .bind(host)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(meeting)
            .collect()
    }

    /// Ends a meeting at `at`; false when it had already ended or does not exist.
    /// Turns the waiting room on: from now on the host admits each newcomer. True when it was
    /// off.
    pub async fn require_admission(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE meetings SET waiting_room = 1 WHERE id = $1 AND waiting_room = 0")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn end_meeting(&self, id: &str, at: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE meetings SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
