//! The records the store keeps, and how their enumerations are spelled in the database.

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// A display name only.
    Guest,
    /// Signed in through the identity provider.
    SignedIn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub display_name: String,
    pub kind: UserKind,
    /// The identity provider's issuer and subject, for signed-in users.
    pub subject: Option<String>,
    pub created_at: i64,
}

/// What creating a meeting takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeeting {
    pub id: String,
    pub name: String,
    pub host_id: String,
    /// An argon2 PHC string, already hashed.
    pub password_hash: Option<String>,
    pub waiting_room: bool,
    pub signed_in_only: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub id: String,
    pub name: String,
    pub host_id: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub password_hash: Option<String>,
    pub waiting_room: bool,
    pub signed_in_only: bool,
}

impl Meeting {
    pub fn has_ended(&self) -> bool {
        self.ended_at.is_some()
    }
}

/// Where a participant stands in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantState {
    /// In the waiting room, for the host to admit or reject.
    Waiting,
    Admitted,
    Rejected,
    /// Removed by the host: their token is refused from then on.
    Removed,
    Left,
}

impl ParticipantState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Admitted => "admitted",
            Self::Rejected => "rejected",
            Self::Removed => "removed",
            Self::Left => "left",
        }
    }

    pub fn parse(value: &str) -> Result<Self, StoreError> {
        Ok(match value {
            "waiting" => Self::Waiting,
            "admitted" => Self::Admitted,
            "rejected" => Self::Rejected,
            "removed" => Self::Removed,
            "left" => Self::Left,
            other => return Err(StoreError::Corrupt { field: "participant state", value: other.to_owned() }),
        })
    }
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::SignedIn => "signed_in",
        }
    }

    pub fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "guest" => Ok(Self::Guest),
            "signed_in" => Ok(Self::SignedIn),
            other => Err(StoreError::Corrupt { field: "user kind", value: other.to_owned() }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub meeting_id: String,
    pub user_id: String,
    pub display_name: String,
    pub state: ParticipantState,
    pub joined_at: i64,
    pub decided_at: Option<i64>,
    pub left_at: Option<i64>,
}
