//! The NATS bus: relays in different processes or machines meet on room subjects.
//!
//! Every message is sealed ([`super::seal`]) so that only relays can write what relays act on;
//! NATS's own authentication (user and password) and TLS keep everyone else off the bus and
//! its traffic unread.
//!
//! A relay's own sessions get its packets in-process, exactly as from the [`LocalBus`], and its
//! connection asks NATS not to echo what it publishes (`no_echo`): from NATS it takes only what
//! other relays published. With the whole room on one relay, taking every packet back from
//! nats-server (and opening it) had cost the relay 0.28 cores against 0.18 with the in-process
//! bus; without it, 0.24 (docs/benchmarks.md, "NATS without the echo"). A room's media goes to
//! NATS only while another relay serves the room ([`RoomBus::publish_here`] otherwise).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::connection::State;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use videocall_types::RoomId;

use super::seal::{BusKey, ReplayGuard};
use super::{BusError, BusSink, BusSubscription, LocalBus, RoomBus, parse_subject, room_wildcard, subject};
use crate::{SessionId, limits};

#[derive(Debug, Clone)]
pub struct NatsBusOptions {
    /// Shown in the NATS server's connection list.
    pub client_name: String,
    pub publish_timeout: Duration,
    pub subscription_capacity: usize,
    /// NATS user and password, when the server requires them.
    pub credentials: Option<(String, String)>,
    /// CA certificate (PEM) the NATS server's certificate must chain to; set, TLS is required.
    pub tls_ca: Option<PathBuf>,
}

impl Default for NatsBusOptions {
    fn default() -> Self {
        Self {
            client_name: "videocall-relay".into(),
            publish_timeout: limits::BUS_PUBLISH_TIMEOUT,
            subscription_capacity: limits::NATS_SUBSCRIPTION_CAPACITY,
            credentials: None,
            tls_ca: None,
        }
    }
}

/// A [`RoomBus`] over NATS. Reconnects by itself, forever; subscriptions are restored by the
/// client after a reconnect. While disconnected, publishes still reach this relay's own
/// sessions but fail fast with [`BusError::NotConnected`] (the other relays missed them), and
/// [`RoomBus::is_ready`] is false.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    options: NatsBusOptions,
    key: BusKey,
    /// This relay's own subscribers, served in-process.
    local: LocalBus,
}

impl NatsBus {
    /// Connects to `url` (a comma-separated list is allowed). Returns once the first
    /// connection is up, or with an error if the server cannot be reached at all. Messages are
    /// sealed and opened with `key`, which every relay of the deployment shares.
    pub async fn connect(url: &str, key: BusKey, options: NatsBusOptions) -> Result<Self, BusError> {
        let mut connect = async_nats::ConnectOptions::new();
        if let Some((user, password)) = &options.credentials {
            connect = connect.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &options.tls_ca {
            connect = connect.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = connect
            .name(&options.client_name)
            // Our own publishes reach our subscribers in-process (`local`).
            .no_echo()
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
        Ok(Self { client, options, key, local: LocalBus::new() })
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
            // Delivered in the publisher's task, before NATS sees it: per-sender order holds
            // for this relay's sessions as for the other relays'.
            self.local.publish(room, from, payload.clone()).await?;
            if self.client.connection_state() != State::Connected {
                return Err(BusError::NotConnected);
            }
            let subject = subject(room, from);
            let sealed = self.key.seal(&subject, now_ms(), &payload);
            let publish = self.client.publish(subject, sealed);
            match tokio::time::timeout(self.options.publish_timeout, publish).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(BusError::Publish(e.to_string())),
                Err(_) => Err(BusError::Timeout),
            }
        }
        .boxed()
    }

    fn publish_here<'a>(
        &'a self,
        room: &'a RoomId,
        from: Option<SessionId>,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        self.local.publish(room, from, payload)
    }

    fn subscribe<'a>(
        &'a self,
        room: &'a RoomId,
        sink: Arc<dyn BusSink>,
    ) -> BoxFuture<'a, Result<BusSubscription, BusError>> {
        async move {
            let local = self.local.subscribe(room, sink.clone()).await?;
            let mut subscriber =
                self.client.subscribe(room_wildcard(room)).await.map_err(|e| BusError::Subscribe(e.to_string()))?;
            let room = room.clone();
            let key = self.key.clone();
            let task = tokio::spawn(async move {
                let mut replays = ReplayGuard::default();
                while let Some(message) = subscriber.next().await {
                    let Ok(from) = parse_subject(&room, message.subject.as_str()) else {
                        tracing::warn!(subject = %message.subject, "ignoring message on unexpected subject");
                        continue;
                    };
                    let now = now_ms();
                    let opened =
                        key.open(message.subject.as_str(), now, &message.payload).and_then(|(payload, tag)| {
                            // What relays act on (see `seal`): their own messages, and presence
                            // and moderation on any subject.
                            if from.is_none() || acted_on(&payload) {
                                replays.check(now, tag)?;
                            }
                            Ok(payload)
                        });
                    match opened {
                        Ok(payload) => sink.deliver(from, payload),
                        Err(e) => {
                            tracing::debug!(subject = %message.subject, error = %e, "refusing bus message");
                            sink.refuse(e);
                        }
                    }
                }
            });
            // Dropping the guard aborts the task, which drops the subscriber (NATS unsubscribes),
            // and ends the in-process subscription.
            Ok(BusSubscription::new((local, AbortOnDrop(task))))
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

/// Presence and moderation: packets relays act on, whoever's subject they travel on.
fn acted_on(payload: &[u8]) -> bool {
    use videocall_types::PacketType;
    crate::wire::scan(payload).is_ok_and(|h| matches!(h.packet_type, PacketType::PRESENCE | PacketType::MODERATION))
}

/// The wall clock in ms since the Unix epoch: seals carry it, as relays on different machines
/// share no other clock.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
