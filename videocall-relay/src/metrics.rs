//! The Prometheus metrics every relay exposes on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

impl Reason {
    pub fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

/// Counters and gauges of one relay process. Cheap to update from any thread.
#[derive(Debug)]
pub struct RelayMetrics {
    pub sessions: Gauge,
    pub rooms: Gauge,
    pub bus_ready: Gauge,
    pub packets_in: Counter,
    pub bytes_in: Counter,
    pub packets_out: Counter,
    pub bytes_out: Counter,
    /// Packets that were valid but did not reach a receiver: `slow_receiver`, `bus_unavailable`.
    pub packets_dropped: Family<Reason, Counter>,
    /// Packets refused from a client: `malformed`, `oversized`, `text_frame`, `unknown_type`, …
    pub packets_rejected: Family<Reason, Counter>,
    /// Connections refused before joining: `bad_room_id`, `token_expired`, `room_full`, …
    pub connections_refused: Family<Reason, Counter>,
    /// Sessions ended, by reason: `left`, `timed out`, `too slow to keep up`, protocol errors.
    pub sessions_closed: Family<Reason, Counter>,
    pub bus_publish_seconds: Histogram,
    /// Video frames not forwarded to a receiver because it takes another layer of that stream
    /// (simulcast): what per-receiver forwarding saves.
    pub layer_skipped: Counter,
    /// Media packets delivered to this relay's sessions only, not published to the bus: no
    /// other relay serves their room.
    pub media_kept_here: Counter,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        // 10 µs … ~650 ms: LocalBus publishes in microseconds, NATS in tens to hundreds.
        let buckets = prometheus_client::metrics::histogram::exponential_buckets(0.000_01, 2.0, 17);
        Self {
            sessions: Gauge::default(),
            rooms: Gauge::default(),
            bus_ready: Gauge::default(),
            packets_in: Counter::default(),
            bytes_in: Counter::default(),
            packets_out: Counter::default(),
            bytes_out: Counter::default(),
            packets_dropped: Family::default(),
            packets_rejected: Family::default(),
            connections_refused: Family::default(),
            sessions_closed: Family::default(),
            bus_publish_seconds: Histogram::new(buckets),
            layer_skipped: Counter::default(),
            media_kept_here: Counter::default(),
        }
    }
}

impl RelayMetrics {
    /// Registers every metric under the `videocall` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("videocall");
        r.register("sessions", "Sessions connected to this relay", self.sessions.clone());
        r.register("rooms", "Rooms with at least one session on this relay", self.rooms.clone());
        r.register("bus_ready", "1 while the room bus is connected", self.bus_ready.clone());
        r.register("packets_in", "Packets accepted from clients", self.packets_in.clone());
        r.register("bytes_in", "Bytes accepted from clients", self.bytes_in.clone());
        r.register("packets_out", "Packets handed to client connections", self.packets_out.clone());
        r.register("bytes_out", "Bytes handed to client connections", self.bytes_out.clone());
        r.register("packets_dropped", "Valid packets that did not reach a receiver", self.packets_dropped.clone());
        r.register("packets_rejected", "Packets refused from clients", self.packets_rejected.clone());
        r.register(
            "connections_refused",
            "Connections refused before joining a room",
            self.connections_refused.clone(),
        );
        r.register("sessions_closed", "Sessions ended, by reason", self.sessions_closed.clone());
        r.register("bus_publish_seconds", "Time to hand a packet to the room bus", self.bus_publish_seconds.clone());
        r.register(
            "layer_skipped",
            "Video frames not forwarded to a receiver that takes another layer of the stream",
            self.layer_skipped.clone(),
        );
        r.register(
            "media_kept_here",
            "Media packets delivered on this relay only: no other relay served their room",
            self.media_kept_here.clone(),
        );
    }

    pub fn dropped(&self, reason: &'static str, packets: u64) {
        self.packets_dropped.get_or_create(&Reason::new(reason)).inc_by(packets);
    }

    pub fn rejected(&self, reason: &'static str) {
        self.packets_rejected.get_or_create(&Reason::new(reason)).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.connections_refused.get_or_create(&Reason::new(reason)).inc();
    }

    pub fn closed(&self, reason: &'static str) {
        self.sessions_closed.get_or_create(&Reason::new(reason)).inc();
    }
}

/// The registry in the Prometheus/OpenMetrics text format, and its content type.
pub fn encode(registry: &Registry) -> Result<(String, &'static str), std::fmt::Error> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry)?;
    Ok((body, "application/openmetrics-text; version=1.0.0; charset=utf-8"))
}
