//! `bot flood`: WebTransport sessions that misbehave on purpose, to show a relay's memory
//! stays bounded. Each session opens as many streams as the relay allows, begins a packet of
//! the largest size on each, sends part of it and never finishes. A well-behaved relay lets
//! QUIC flow control stop the writes, closes each session when the finish timeout passes, and
//! keeps serving everyone else.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;
use videocall_types::framing;
use videocall_types::limits::MAX_PACKET_BYTES;
use wtransport::error::ConnectionError;

use crate::load::link::{WebTransportInfo, check_server, connect_webtransport};
use crate::load::participant::guest_token;

#[derive(Debug, Clone, Args)]
pub struct FloodArgs {
    /// Server base URL (http); guest tokens and the WebTransport address come from it.
    #[arg(long, env = "BOT_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Misbehaving sessions at once.
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    /// Streams each session tries to open.
    #[arg(long, default_value_t = 256)]
    pub streams: usize,
    /// Bytes of each unfinished packet to send (the packet announces the largest size).
    #[arg(long, default_value_t = 256 * 1024)]
    pub bytes_per_stream: usize,
    /// Seconds to wait for the relay to close the sessions.
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
}

#[derive(Debug, Default, Serialize)]
struct SessionOutcome {
    streams_opened: usize,
    bytes_accepted: usize,
    close_code: Option<u64>,
    close_reason: String,
    closed_after_secs: f64,
}

/// Begins a packet on each stream it can open, writing what flow control takes; returns the
/// streams, to be held open (a dropped stream would be finished or reset, not left hanging).
async fn begin_packets(
    connection: &wtransport::Connection,
    args: &FloodArgs,
    outcome: &mut SessionOutcome,
) -> Vec<wtransport::SendStream> {
    let mut held = Vec::new();
    let patience = Duration::from_secs(2);
    let body = vec![0x5a; args.bytes_per_stream];
    for _ in 0..args.streams {
        let Ok(Ok(opening)) = tokio::time::timeout(patience, connection.open_uni()).await else { break };
        let Ok(Ok(mut stream)) = tokio::time::timeout(patience, opening).await else { break };
        outcome.streams_opened += 1;
        let _ = stream.write_all(&framing::prefix(MAX_PACKET_BYTES)).await;
        for chunk in body.chunks(16 * 1024) {
            match tokio::time::timeout(Duration::from_millis(200), stream.write_all(chunk)).await {
                Ok(Ok(())) => outcome.bytes_accepted += chunk.len(),
                _ => break,
            }
        }
        held.push(stream);
    }
    held
}

async fn one_session(
    info: &WebTransportInfo,
    http: &reqwest::Client,
    args: &FloodArgs,
    n: usize,
) -> Result<SessionOutcome> {
    let token = guest_token(http, &args.server, "flood", &format!("Flood {n}")).await?;
    let connection = connect_webtransport(info, &token.websocket_path).await?;
    let started = Instant::now();
    let mut outcome = SessionOutcome::default();
    let _held = begin_packets(&connection, args, &mut outcome).await;
    match tokio::time::timeout(Duration::from_secs(args.wait), connection.closed()).await {
        Ok(ConnectionError::ApplicationClosed(close)) => {
            outcome.close_code = Some(close.code().into_inner());
            outcome.close_reason = String::from_utf8_lossy(close.reason()).into_owned();
        }
        Ok(other) => outcome.close_reason = other.to_string(),
        Err(_) => outcome.close_reason = "still open".into(),
    }
    outcome.closed_after_secs = started.elapsed().as_secs_f64();
    Ok(outcome)
}

pub async fn run(args: FloodArgs) -> Result<()> {
    check_server(&args.server)?;
    let http = reqwest::Client::new();
    let info = WebTransportInfo::fetch(&http, &args.server).await?;
    let sessions: Vec<_> = (0..args.sessions)
        .map(|n| {
            let (info, http, args) = (info.clone(), http.clone(), args.clone());
            tokio::spawn(async move { one_session(&info, &http, &args, n).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for session in sessions {
        outcomes.push(session.await.context("flood session")??);
    }
    let closed = outcomes.iter().filter(|o| o.close_code.is_some()).count();
    let summary = serde_json::json!({
        "sessions": outcomes.len(),
        "closed_by_relay": closed,
        "streams_opened": outcomes.iter().map(|o| o.streams_opened).sum::<usize>(),
        "bytes_accepted": outcomes.iter().map(|o| o.bytes_accepted).sum::<usize>(),
        "max_closed_after_secs": outcomes.iter().map(|o| o.closed_after_secs).fold(0.0, f64::max),
        "close_reasons": outcomes.iter().map(|o| format!("{:?} {}", o.close_code, o.close_reason)).collect::<std::collections::BTreeSet<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
