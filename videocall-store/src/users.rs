//! Users: guests (a display name) and signed-in users (an identity provider's subject).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{Result, Store, User, UserKind};

/// A user by one column (a macro: the SQL stays literal).
macro_rules! select {
    () => {
        "SELECT id, display_name, kind, subject, created_at FROM users WHERE "
    };
}

fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        kind: UserKind::parse(&row.try_get::<String, _>("kind")?)?,
        subject: row.try_get("subject")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Records `user`, or updates the display name of one already known by id.
    pub async fn save_user(&self, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, display_name, kind, subject, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name",
        )
        .bind(&user.id)
        .bind(&user.display_name)
        .bind(user.kind.as_str())
        .bind(&user.subject)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(crate::conflict("a user with that subject"))?;
        Ok(())
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>> {
        self.user_where(concat!(select!(), "id = $1"), id).await
    }

    /// The signed-in user with the identity provider's `subject`.
    pub async fn user_by_subject(&self, subject: &str) -> Result<Option<User>> {
        self.user_where(concat!(select!(), "subject = $1"), subject).await
    }

    async fn user_where(&self, sql: &'static str, value: &str) -> Result<Option<User>> {
        let row = sqlx::query(sql).bind(value).fetch_optional(&self.pool).await?;
        row.as_ref().map(user).transpose()
    }
}
