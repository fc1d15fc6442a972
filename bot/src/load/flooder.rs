//! A hostile participant for `bot load --flooders N`: it joins the first room and sends as fast
//! as its connection takes, alternating 1 KB media packets and 1 KB key packets (`AES_KEY`, each
//! of which would cost an honest receiver an RSA decryption) to the whole room. When the relay
//! closes it, it asks for a new guest token and comes back, for as long as the others publish:
//! what a determined flooder does. Its packets carry no load stamp, so the others' figures count
//! only each other's traffic.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use protobuf::Message as _;
use serde::Serialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use videocall_types::{PacketType, PacketWrapper};

use super::link::{self, LinkReceiver, Transport};
use super::participant::guest_token;

#[derive(Debug, Default, Serialize)]
pub struct FloodReport {
    /// Sessions the flooders opened (one per token).
    pub sessions: u64,
    /// Packets the relay accepted from them before closing them (as far as sending succeeded).
    pub packets_sent: u64,
    /// How their sessions ended: close code and reason, or an error, with counts.
    pub endings: BTreeMap<String, u64>,
    /// Guest tokens refused (rate limits), with counts by status.
    pub tokens_refused: u64,
    /// Longest a flooding session lasted, in ms.
    pub longest_session_ms: f64,
}

impl FloodReport {
    pub fn merge(&mut self, other: FloodReport) {
        self.sessions += other.sessions;
        self.packets_sent += other.packets_sent;
        for (ending, n) in other.endings {
            *self.endings.entry(ending).or_default() += n;
        }
        self.tokens_refused += other.tokens_refused;
        self.longest_session_ms = self.longest_session_ms.max(other.longest_session_ms);
    }
}

fn packet(n: u64) -> Vec<u8> {
    let packet_type = if n.is_multiple_of(2) { PacketType::MEDIA } else { PacketType::AES_KEY };
    let wrapper = PacketWrapper { packet_type: packet_type.into(), data: vec![0xa5; 1000], ..Default::default() };
    wrapper.write_to_bytes().unwrap_or_default()
}

/// Floods `room_name` on `server` until `end`.
pub async fn run(http: reqwest::Client, server: String, room_name: String, index: usize, end: Instant) -> FloodReport {
    let mut report = FloodReport::default();
    while Instant::now() < end {
        let token = match guest_token(&http, &server, &room_name, &format!("Flooder {index}")).await {
            Ok(token) => token,
            Err(_) => {
                report.tokens_refused += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Ok((mut sender, mut receiver)) =
            link::connect(Transport::Websocket, &server, None, &token.websocket_path).await
        else {
            *report.endings.entry("connect failed".into()).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        report.sessions += 1;
        let started = Instant::now();
        // Read (and drop) what the room sends, so that the relay's close frame reaches us.
        let reader = tokio::spawn(async move {
            let mut close = None;
            if let LinkReceiver::Ws(stream) = &mut receiver {
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(Message::Close(Some(frame))) => {
                            close = Some(format!("close {} {}", u16::from(frame.code), frame.reason));
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            (receiver, close)
        });
        let mut n = 0u64;
        let ending = loop {
            if Instant::now() >= end {
                break "the run ended".to_owned();
            }
            match sender.send(packet(n)).await {
                Ok(()) => n += 1,
                Err(e) => break format!("{e:#}"),
            }
            if n.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        };
        report.packets_sent += n;
        report.longest_session_ms = report.longest_session_ms.max(started.elapsed().as_secs_f64() * 1e3);
        let ending = match reader.await {
            Ok((receiver, close)) => {
                link::close(sender, receiver).await;
                close.unwrap_or(ending)
            }
            Err(_) => ending,
        };
        *report.endings.entry(ending).or_default() += 1;
    }
    report
}
