//! One participant's connection to a relay, over WebSocket or WebTransport, split into a
//! sending and a receiving half. One `PacketWrapper` per WebSocket message; over WebTransport,
//! length-delimited packets (`videocall_types::framing`) on the streams `StreamMode` chooses.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::stream::{BoxStream, SelectAll, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use videocall_types::framing::{self, FrameDecoder, StreamMode};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest packet read from a WebTransport stream (the relays' limit, with room for the header).
const MAX_READ: usize = 1024 * 1024;

/// Streams read at once on the receiving side.
const STREAMS_READ: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Websocket,
    Webtransport,
}

/// Where and how to connect for WebTransport: from the server's `/api/v1/webtransport`.
#[derive(Debug, Clone)]
pub struct WebTransportInfo {
    pub base_url: String,
    pub hashes: Vec<[u8; 32]>,
    /// What to ask the relay for (`&streams=`); also how this client sends.
    pub streams: StreamMode,
}

impl WebTransportInfo {
    pub async fn fetch(http: &reqwest::Client, server: &str) -> Result<Self> {
        let info: serde_json::Value = http
            .get(format!("{server}/api/v1/webtransport"))
            .send()
            .await?
            .error_for_status()
            .context("the server offers no WebTransport")?
            .json()
            .await?;
        let base_url = info["url"].as_str().context("no WebTransport url")?.to_owned();
        let mut hashes = Vec::new();
        for h in info["certificate_hashes"].as_array().into_iter().flatten() {
            let hex = h["value"].as_str().context("hash value")?;
            let mut hash = [0u8; 32];
            for (i, byte) in hash.iter_mut().enumerate() {
                *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).context("short hash")?, 16)?;
            }
            hashes.push(hash);
        }
        Ok(Self { base_url, hashes, streams: StreamMode::default() })
    }
}

pub enum LinkSender {
    Ws(SplitSink<Ws, Message>),
    Wt {
        connection: Connection,
        /// The long-lived stream, unless a stream is opened per packet.
        stream: Option<SendStream>,
        per_packet: bool,
    },
}

pub enum LinkReceiver {
    Ws(SplitStream<Ws>),
    Wt {
        connection: Connection,
        streams: SelectAll<BoxStream<'static, Vec<u8>>>,
        /// The connection ended: no more streams to accept, only reads to finish.
        ended: bool,
    },
}

/// Opens a link; `lobby_path` is `/lobby/{user}/{room}?token=…`.
pub async fn connect(
    transport: Transport,
    server: &str,
    webtransport: Option<&WebTransportInfo>,
    lobby_path: &str,
) -> Result<(LinkSender, LinkReceiver)> {
    match transport {
        Transport::Websocket => {
            let url = format!("{}{lobby_path}", server.replacen("http", "ws", 1));
            let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true)
                .await
                .with_context(|| format!("connecting to {}", url.split('?').next().unwrap_or_default()))?;
            let (sink, stream) = ws.split();
            Ok((LinkSender::Ws(sink), LinkReceiver::Ws(stream)))
        }
        Transport::Webtransport => {
            let info = webtransport.context("WebTransport info missing")?;
            let connection = connect_webtransport(info, lobby_path).await?;
            let per_packet = info.streams == StreamMode::PerPacket;
            Ok((
                LinkSender::Wt { connection: connection.clone(), stream: None, per_packet },
                LinkReceiver::Wt { connection, streams: SelectAll::new(), ended: false },
            ))
        }
    }
}

/// A WebTransport session to `info`'s relay; `lobby_path` is `/lobby/{user}/{room}?token=…`.
pub async fn connect_webtransport(info: &WebTransportInfo, lobby_path: &str) -> Result<Connection> {
    let url = format!("{}{}&streams={}", info.base_url, lobby_path.trim_start_matches('/'), info.streams.as_str());
    let builder = ClientConfig::builder().with_bind_default();
    let config = if info.hashes.is_empty() {
        builder.with_native_certs().build()
    } else {
        builder.with_server_certificate_hashes(info.hashes.iter().map(|h| Sha256Digest::new(*h))).build()
    };
    // One endpoint (UDP socket and driver) per participant, as separate browsers would have.
    let endpoint = Endpoint::client(config)?;
    endpoint.connect(&url).await.context("WebTransport connect")
}

impl LinkSender {
    pub async fn send(&mut self, packet: Vec<u8>) -> Result<()> {
        match self {
            Self::Ws(sink) => sink.send(Message::Binary(packet.into())).await.context("sending"),
            Self::Wt { connection, stream, per_packet } => {
                let mut chunks = [Bytes::copy_from_slice(&framing::prefix(packet.len())), Bytes::from(packet)];
                if *per_packet {
                    let mut stream = connection.open_uni().await?.await?;
                    stream.quic_stream_mut().write_all_chunks(&mut chunks).await?;
                    // Finish without waiting for the relay's acknowledgement.
                    let _ = stream.quic_stream_mut().finish();
                    return Ok(());
                }
                let long_lived = match stream {
                    Some(stream) => stream,
                    None => stream.insert(connection.open_uni().await?.await?),
                };
                long_lived.quic_stream_mut().write_all_chunks(&mut chunks).await?;
                Ok(())
            }
        }
    }
}

/// The packets of one relay stream, until it ends or breaks.
fn packets(stream: RecvStream) -> BoxStream<'static, Vec<u8>> {
    let state = (stream, FrameDecoder::new(MAX_READ), false);
    futures_util::stream::unfold(state, |(mut stream, mut decoder, mut ended)| async move {
        loop {
            if let Ok(Some(packet)) = decoder.next_packet() {
                return Some((packet, (stream, decoder, ended)));
            }
            if ended {
                return None;
            }
            match stream.quic_stream_mut().read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => decoder.push(&chunk.bytes),
                _ => ended = true,
            }
        }
    })
    .boxed()
}

impl LinkReceiver {
    /// The next packet; `None` when the link is closed.
    pub async fn recv(&mut self) -> Option<Result<Bytes>> {
        match self {
            Self::Ws(stream) => loop {
                match stream.next().await? {
                    Ok(Message::Binary(bytes)) => return Some(Ok(bytes)),
                    Ok(_) => continue,
                    Err(e) => return Some(Err(e.into())),
                }
            },
            Self::Wt { connection, streams, ended } => loop {
                if *ended && streams.is_empty() {
                    return None;
                }
                tokio::select! {
                    stream = connection.accept_uni(), if !*ended && streams.len() < STREAMS_READ => match stream {
                        Ok(stream) => streams.push(packets(stream)),
                        Err(_) => *ended = true,
                    },
                    // The last stream ending leaves the set empty (`None`): loop to the check
                    // above rather than letting `select!` find every branch disabled.
                    packet = streams.next(), if !streams.is_empty() => {
                        if let Some(packet) = packet {
                            return Some(Ok(Bytes::from(packet)));
                        }
                    }
                    else => return None,
                }
            },
        }
    }
}

/// Closes the link gracefully.
pub async fn close(sender: LinkSender, receiver: LinkReceiver) {
    match (sender, receiver) {
        (LinkSender::Ws(sink), LinkReceiver::Ws(stream)) => {
            if let Ok(mut ws) = sink.reunite(stream) {
                let _ = ws.close(None).await;
            }
        }
        (LinkSender::Wt { connection, .. }, _) => connection.close(VarInt::from_u32(0), b"done"),
        _ => {}
    }
}

/// Refuses a server URL this build cannot reach.
pub fn check_server(server: &str) -> Result<()> {
    if server.starts_with("https://") && !cfg!(feature = "tls") {
        bail!("{server}: this bot was built without TLS; build it with `--features tls`");
    }
    Ok(())
}
