//! The in-process bus: rooms of one process, no network.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use videocall_types::RoomId;

use super::{BusError, BusSink, BusSubscription, RoomBus, parse_subject, room_wildcard, subject};
use crate::SessionId;

type Subscribers = HashMap<String, Vec<(u64, Arc<dyn BusSink>)>>;

/// Delivers each publish synchronously to the room's subscribers, in the publisher's task:
/// per-sender order holds, and the fan-out work is spread over the tasks of the senders.
#[derive(Default, Clone)]
pub struct LocalBus {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    subscribers: RwLock<Subscribers>,
    next_id: AtomicU64,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }
}

struct Unsubscribe {
    inner: Arc<Inner>,
    key: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut subscribers = self.inner.subscribers.write();
        if let Some(list) = subscribers.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                subscribers.remove(&self.key);
            }
        }
    }
}

impl RoomBus for LocalBus {
    fn publish<'a>(
        &'a self,
        room: &'a RoomId,
        from: Option<SessionId>,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        // The same subject string NATS would carry, parsed back as a subscriber would.
        let subject = subject(room, from);
        let sinks: Vec<Arc<dyn BusSink>> = self
            .inner
            .subscribers
            .read()
            .get(&room_wildcard(room))
            .map(|list| list.iter().map(|(_, sink)| sink.clone()).collect())
            .unwrap_or_default();
        if let Ok(from) = parse_subject(room, &subject) {
            for sink in sinks {
                sink.deliver(from, payload.clone());
            }
        }
        std::future::ready(Ok(())).boxed()
    }

    fn subscribe<'a>(
        &'a self,
        room: &'a RoomId,
        sink: Arc<dyn BusSink>,
    ) -> BoxFuture<'a, Result<BusSubscription, BusError>> {
        let key = room_wildcard(room);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.subscribers.write().entry(key.clone()).or_default().push((id, sink));
        let guard = Unsubscribe { inner: self.inner.clone(), key, id };
        std::future::ready(Ok(BusSubscription::new(guard))).boxed()
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}
