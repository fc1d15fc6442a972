//! One WebTransport session: moves packets between the client's streams and a relay session.
//!
//! In: unidirectional streams of length-delimited packets (`videocall_types::framing`), read
//! concurrently; each stream's packets are published in order, streams as their packets
//! complete. Datagrams carry small packets whose loss is acceptable (heartbeats),
//! rate-limited. Out: framed packets on the streams the client chose (`outbound`).
//! Liveness comes from QUIC: keep-alives while the peer answers, the idle timeout when it
//! does not, which ends the session and reports the leave.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use videocall_relay::budget::TokenBucket;
use videocall_relay::relay::JoinFailure;
use videocall_relay::{Relay, SessionError, SessionHandle, TokenKey, auth};
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, VarInt};

use crate::inbound::{self, PendingBudget};
use crate::limits::{DATAGRAMS_PER_SECOND, MAX_STREAMS_READ};
use crate::outbound::Outbound;
use videocall_types::framing::StreamMode;

pub(crate) struct Shared {
    pub relay: Relay,
    pub tokens: TokenKey,
    pub max_packet_bytes: usize,
}

/// Authorizes, joins and runs one incoming session to its end.
pub(crate) async fn handle_incoming(incoming: IncomingSession, shared: Arc<Shared>) {
    let request = match incoming.await {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(error = %e, "webtransport handshake failed");
            return;
        }
    };
    let metrics = shared.relay.metrics().clone();
    let grant = auth::parse_lobby_path(request.path()).and_then(|(user, room, token)| {
        auth::authorize(&shared.tokens, &user, &room, token.as_deref(), auth::unix_now())
    });
    let grant = match grant {
        Ok(grant) => grant,
        Err(e) => {
            // WebTransport can only answer 403, 404 or 429 here.
            metrics.refused(e.code());
            tracing::info!(path = request.path().split('?').next().unwrap_or(""), reason = %e, "refused");
            match e.http_status() {
                400 => request.not_found().await,
                _ => request.forbidden().await,
            }
            return;
        }
    };
    let query = request.path().split_once('?').map_or("", |(_, q)| q);
    let mode = match auth::query_param(query, "streams").map_or(Ok(StreamMode::default()), str::parse) {
        Ok(mode) => mode,
        Err(e) => {
            metrics.refused("bad_path");
            tracing::info!(reason = %e, "refused");
            request.not_found().await;
            return;
        }
    };
    let handle = match shared.relay.join(&grant, request.remote_address().ip()).await {
        Ok(handle) => handle,
        Err(e) => {
            let code = e.code();
            metrics.refused(code);
            tracing::info!(room = %grant.room, user = %grant.user, reason = %e, "refused");
            // 403: do not come back with this token; 429: try again later.
            match e {
                JoinFailure::Revoked | JoinFailure::TokenUsed => request.forbidden().await,
                _ => request.too_many_requests().await,
            }
            return;
        }
    };
    let connection = match request.accept().await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::debug!(error = %e, "accepting the session failed");
            return;
        }
    };
    tracing::info!(room = %handle.room(), user = %handle.user(), session = %handle.id(), streams = mode.as_str(), "joined over webtransport");
    run(connection, handle, mode, &shared).await;
}

/// How a session ended.
enum Ending {
    /// The connection is gone; nobody to tell.
    Gone,
    /// Close with this code and reason, counting it under `label`.
    Close { code: u16, reason: String, label: &'static str },
}

impl From<SessionError> for Ending {
    fn from(e: SessionError) -> Self {
        Self::Close { code: e.close_code(), reason: e.to_string(), label: e.reason() }
    }
}

async fn run(connection: Connection, handle: SessionHandle, mode: StreamMode, shared: &Shared) {
    let metrics = shared.relay.metrics().clone();
    let max = shared.max_packet_bytes;

    let writer = async {
        let mut outbound = Outbound::new(connection.clone(), mode);
        let mut batch = Vec::new();
        loop {
            batch.clear();
            if let Err(reason) = handle.recv_batch(&mut batch).await {
                return Ending::Close {
                    code: reason.close_code(),
                    reason: reason.as_str().into(),
                    label: reason.as_str(),
                };
            }
            for packet in batch.drain(..) {
                if outbound.send(packet).await.is_err() {
                    return Ending::Gone;
                }
            }
        }
    };

    let reader = async {
        let mut streams = SelectAll::new();
        let pending = PendingBudget::default();
        // A second's worth of datagrams may come at once.
        let rate = f64::from(DATAGRAMS_PER_SECOND);
        let mut budget = TokenBucket::new(Instant::now(), rate, rate);
        let mut alive = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                stream = connection.accept_uni(), if streams.len() < MAX_STREAMS_READ => match stream {
                    Ok(stream) => streams.push(inbound::packets(stream, max, pending.clone())),
                    Err(_) => return Ending::Gone,
                },
                Some(read) = streams.next() => match read {
                    Ok(packet) => {
                        if let Err(e) = handle.publish(&packet).await {
                            return e.into();
                        }
                    }
                    Err(failure) => {
                        if let Some((code, reason, label)) = failure.close(max) {
                            metrics.rejected(label);
                            return Ending::Close { code, reason, label };
                        }
                    }
                },
                datagram = connection.receive_datagram() => match datagram {
                    Ok(datagram) if budget.take(Instant::now(), 1.0).is_ok() => {
                        if let Err(e) = handle.publish(&datagram.payload()).await {
                            return e.into();
                        }
                    }
                    Ok(_) => metrics.dropped("datagram_rate", 1),
                    Err(_) => return Ending::Gone,
                },
                // The QUIC connection is up (its idle timeout ends it otherwise): the client is alive.
                _ = alive.tick() => handle.touch(),
            }
        }
    };

    let ending = tokio::select! {
        ending = writer => ending,
        ending = reader => ending,
    };
    match ending {
        Ending::Gone => {
            tracing::info!(room = %handle.room(), session = %handle.id(), "webtransport session gone");
            handle.finish("left");
        }
        Ending::Close { code, reason, label } => {
            tracing::info!(room = %handle.room(), session = %handle.id(), code, %reason, "closing webtransport session");
            // Sessions the relay ended were counted with the relay's reason already.
            handle.finish(label);
            connection.close(VarInt::from(u32::from(code)), reason.as_bytes());
        }
    }
}
