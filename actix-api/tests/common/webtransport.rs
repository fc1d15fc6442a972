//! A native WebTransport client (wtransport) for tests.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result};
use protobuf::Message as _;
use tokio::sync::mpsc;
use videocall_types::{PacketWrapper, framing};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint};

use super::{Config, Guest, Received, RunningServer, decode, http_url, start};

/// A single-node server with its WebTransport listener on a free loopback port, its HTTP base
/// URL, and the WebTransport base URL and certificate hash it reports.
pub struct WebTransportServer {
    pub server: RunningServer,
    pub http: String,
    pub base: String,
    pub hash: [u8; 32],
}

/// actix-api with WebTransport in-process: on `config`'s UDP address when the test chose one
/// (a link in front of it, say), else on a free one.
pub async fn start_with_webtransport(mut config: Config) -> WebTransportServer {
    config.webtransport_listen.get_or_insert_with(|| "127.0.0.1:0".parse().unwrap());
    let server = start(config).await;
    let http = http_url(&server);
    let (base, hash) = webtransport_info(&http).await;
    WebTransportServer { server, http, base, hash }
}

/// The relay's base URL and development certificate hash, from `/api/v1/webtransport`.
pub async fn webtransport_info(http: &str) -> (String, [u8; 32]) {
    let info: serde_json::Value =
        reqwest::get(format!("{http}/api/v1/webtransport")).await.unwrap().json().await.unwrap();
    let hash = info["certificate_hashes"][0]["value"].as_str().expect("a development certificate hash");
    assert_eq!(info["certificate_hashes"][0]["algorithm"], "sha-256");
    (info["url"].as_str().unwrap().to_owned(), hash_from_hex(hash))
}

pub fn lobby(base: &str, guest: &Guest) -> String {
    format!("{base}lobby/{}/{}?token={}", guest.user, guest.room, guest.token)
}

pub struct WtClient {
    pub connection: Connection,
    /// Every packet the relay sends, with the number of the stream it came on.
    received: tokio::sync::Mutex<mpsc::UnboundedReceiver<(usize, Vec<u8>)>>,
    /// The task accepting streams holds the connection; dropping the client stops it, so a
    /// dropped client's connection goes away as it would without the task.
    reader: tokio::task::AbortHandle,
    _endpoint: Endpoint<wtransport::endpoint::endpoint_side::Client>,
}

impl Drop for WtClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads every stream the relay opens, each in its own task.
fn read_streams(connection: Connection) -> (mpsc::UnboundedReceiver<(usize, Vec<u8>)>, tokio::task::AbortHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut number = 0;
        while let Ok(mut stream) = connection.accept_uni().await {
            number += 1;
            let (tx, n) = (tx.clone(), number);
            tokio::spawn(async move {
                let mut decoder = framing::FrameDecoder::new(1 << 20);
                while let Ok(Some(chunk)) = stream.quic_stream_mut().read_chunk(1 << 16, true).await {
                    decoder.push(&chunk.bytes);
                    while let Ok(Some(packet)) = decoder.next_packet() {
                        let _ = tx.send((n, packet));
                    }
                }
            });
        }
    });
    (rx, task.abort_handle())
}

pub fn hash_from_hex(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

impl WtClient {
    /// Connects to `url` (`https://…/lobby/{user}/{room}?token=…`) trusting `hash`.
    pub async fn connect(url: &str, hash: [u8; 32]) -> Result<Self> {
        let config = ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([Sha256Digest::new(hash)])
            .keep_alive_interval(Some(Duration::from_secs(1)))
            .build();
        let endpoint = Endpoint::client(config)?;
        let connection = endpoint.connect(url).await.context("webtransport connect")?;
        let (received, reader) = read_streams(connection.clone());
        Ok(Self { connection, received: tokio::sync::Mutex::new(received), reader, _endpoint: endpoint })
    }

    pub async fn send(&self, packet: &PacketWrapper) -> Result<()> {
        self.send_bytes(&packet.write_to_bytes()?).await
    }

    /// Sends one packet on its own stream.
    pub async fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_raw(&framing::encode(bytes)).await
    }

    /// Sends `bytes` as they are (framing included) on a new stream, and finishes it.
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<()> {
        let mut stream = self.connection.open_uni().await?.await?;
        stream.write_all(bytes).await?;
        stream.finish().await?;
        Ok(())
    }

    pub async fn recv(&self) -> Result<Received> {
        self.recv_within(Duration::from_secs(5)).await
    }

    pub async fn recv_within(&self, limit: Duration) -> Result<Received> {
        Ok(decode(&self.recv_raw_within(limit).await?.1))
    }

    /// The next packet as bytes, with the number of the stream it came on.
    pub async fn recv_raw_within(&self, limit: Duration) -> Result<(usize, Vec<u8>)> {
        let mut received = self.received.lock().await;
        tokio::time::timeout(limit, received.recv()).await.context("timed out")?.context("connection closed")
    }

    /// Waits for the server to close the session; returns the code and reason.
    pub async fn closed(&self) -> (u32, String) {
        match tokio::time::timeout(Duration::from_secs(15), self.connection.closed()).await.expect("closed within 15 s")
        {
            wtransport::error::ConnectionError::ApplicationClosed(close) => {
                (close.code().into_inner() as u32, String::from_utf8_lossy(close.reason()).into_owned())
            }
            other => (0, other.to_string()),
        }
    }
}
