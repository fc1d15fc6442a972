//! Revoked room tokens, answered from the shared database: a participant the host removed, or
//! a meeting that ended, is refused by every relay whichever server took the host's action.

use futures_util::future::BoxFuture;
use videocall_relay::Revocations;
use videocall_store::Store;
use videocall_types::{RoomId, UserId};

pub struct StoreRevocations(pub Store);

impl Revocations for StoreRevocations {
    fn is_revoked<'a>(&'a self, room: &'a RoomId, user: &'a UserId) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move { self.0.is_refused(room.as_str(), user.as_str()).await.map_err(|e| e.to_string()) })
    }

    fn claim<'a>(&'a self, token_id: &'a str, expires_at: u64) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let expires_ms = i64::try_from(expires_at.saturating_mul(1000)).unwrap_or(i64::MAX);
            let now = videocall_relay::auth::unix_now().saturating_mul(1000);
            let now = i64::try_from(now).unwrap_or(i64::MAX);
            self.0.claim_room_token(token_id, expires_ms, now).await.map_err(|e| e.to_string())
        })
    }
}
