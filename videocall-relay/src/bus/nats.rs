//! The NATS bus: relays in different processes or machines meet on room subjects.

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use videocall_types::RoomId;

use super::{BusError, BusSink, BusSubscription, RoomBus, parse_subject, room_wildcard, subject};
use crate::{SessionId, limits};

#[derive(Debug, Clone)]
pub struct NatsBusOptions {
    /// Shown in the NATS server's connection list.
    pub client_name: String,
    pub publish_timeout: Duration,
    pub subscription_capacity: usize,
}

impl Default for NatsBusOptions {
    fn default() -> Self {
        Self {
            client_name: "videocall-relay".into(),
            publish_timeout: limits::BUS_PUBLISH_TIMEOUT,
            subscription_capacity: limits::NATS_SUBSCRIPTION_CAPACITY,
        }
    }
}

/// A [`RoomBus`] over NATS. Reconnects by itself, forever; subscriptions are restored by the
/// client after a reconnect. While disconnected, publishes fail fast with
/// [`BusError::NotConnected`] and [`RoomBus::is_ready`] is false.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    options: NatsBusOptions,
}

impl NatsBus {
    /// Connects to `url` (a comma-separated list is allowed). Returns once the first
    /// connection is up, or with an error if the server cannot be reached at all.
    pub async fn connect(url: &str, options: NatsBusOptions) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(&options.client_name)
            .subscription_capacity(options.subscription_capacity)
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                // 0, 100, 200 … 1000 ms: a restarted NATS is found again within a second.
                Duration::from_millis((attempts as u64 * 100).min(1000))
            })
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection event");
            })
            .connect(url.split(',').map(str::trim).collect::<Vec<_>>().as_slice())
            .await
            .map_err(|e| BusError::Connect(e.to_string()))?;
        Ok(Self { client, options })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

impl RoomBus for NatsBus {
    fn publish<'a>(
        &'a self,
        room: &'a RoomId,
        from: Option<SessionId>,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            if self.client.connection_state() != State::Connected {
                return Err(BusError::NotConnected);
            }
            let publish = self.client.publish(subject(room, from), payload);
            match tokio::time::timeout(self.options.publish_timeout, publish).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(BusError::Publish(e.to_string())),
                Err(_) => Err(BusError::Timeout),
            }
        }
        .boxed()
    }

    fn subscribe<'a>(
        &'a self,
        room: &'a RoomId,
        sink: Arc<dyn BusSink>,
    ) -> BoxFuture<'a, Result<BusSubscription, BusError>> {
        async move {
            let mut subscriber =
                self.client.subscribe(room_wildcard(room)).await.map_err(|e| BusError::Subscribe(e.to_string()))?;
            let room = room.clone();
            let task = tokio::spawn(async move {
                while let Some(message) = subscriber.next().await {
                    match parse_subject(&room, message.subject.as_str()) {
                        Ok(from) => sink.deliver(from, message.payload),
                        Err(()) => tracing::warn!(subject = %message.subject, "ignoring message on unexpected subject"),
                    }
                }
            });
            // Dropping the guard aborts the task, which drops the subscriber: NATS unsubscribes.
            Ok(BusSubscription::new(AbortOnDrop(task)))
        }
        .boxed()
    }

    fn is_ready(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
