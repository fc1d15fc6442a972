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
}
