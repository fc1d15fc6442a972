//! A real WebSocket client (tokio-tungstenite) against a real in-process server.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use protobuf::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use videocall_types::{PacketType, PacketWrapper, PresencePacket, presence_packet::Event};

pub use actix_api::{Config, RunningServer};

pub mod api;
pub mod oidc_provider;
pub mod web_client;
pub mod webtransport;

pub async fn start(config: Config) -> RunningServer {
    actix_api::start(config).await.expect("server starts")
}

/// The server's metrics, from its separate metrics listener.
pub async fn metrics(server: &RunningServer) -> String {
    let url = format!("http://{}/metrics", server.metrics_addr());
    reqwest::get(url).await.unwrap().error_for_status().unwrap().text().await.unwrap()
}

pub struct Guest {
    pub user: String,
    pub room: String,
    pub token: String,
}

impl Guest {
    /// The room token the API answers (a guest token, or a meeting's `token`).
    pub fn from_token(token: &serde_json::Value) -> Self {
        Self {
            user: token["user_id"].as_str().expect("user_id").into(),
            room: token["room"].as_str().expect("room").into(),
            token: token["token"].as_str().expect("token").into(),
        }
    }
}

pub async fn guest(http: &str, room: &str, name: &str) -> Guest {
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{http}/api/v1/guest-tokens"))
        .json(&serde_json::json!({"room": room, "display_name": name}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    Guest {
        user: response["user_id"].as_str().unwrap().into(),
        room: response["room"].as_str().unwrap().into(),
        token: response["token"].as_str().unwrap().into(),
    }
}

pub fn http_url(server: &RunningServer) -> String {
    format!("http://{}", server.addr())
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub user: String,
    /// The member list the relay sent right after joining.
    pub members: Vec<u64>,
}

/// What a client receives, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Packet(PacketWrapper),
    Members(Vec<u64>),
    Joined(u64, String),
    Left(u64, String),
}

pub fn media(data: &[u8]) -> PacketWrapper {
    PacketWrapper { packet_type: PacketType::MEDIA.into(), data: data.to_vec(), ..Default::default() }
}

impl Client {
    /// Connects; `Err` carries the HTTP status and body of a refused upgrade.
    pub async fn connect_raw(http: &str, path: &str) -> Result<Self, (u16, String)> {
        let url = format!("{}{path}", http.replacen("http://", "ws://", 1));
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => Ok(Self { ws, user: String::new(), members: Vec::new() }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body =
                    response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                Err((response.status().as_u16(), body))
            }
            Err(e) => Err((0, e.to_string())),
        }
    }

    /// Connects with a guest token and reads the member list.
    pub async fn join(http: &str, guest: &Guest) -> Self {
        let path = format!("/lobby/{}/{}?token={}", guest.user, guest.room, guest.token);
        let mut client = Self::connect_raw(http, &path).await.expect("joins");
        client.user = guest.user.clone();
        match client.recv().await.unwrap() {
            Received::Members(members) => client.members = members,
            other => panic!("expected the member list first, got {other:?}"),
        }
        client
    }

    pub async fn send(&mut self, packet: &PacketWrapper) -> Result<()> {
        self.send_bytes(packet.write_to_bytes()?).await
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.ws.send(Message::Binary(bytes.into())).await.context("send")
    }

    /// The next packet (pings and pongs skipped), within 5 s.
    pub async fn recv(&mut self) -> Result<Received> {
        self.recv_within(Duration::from_secs(5)).await
    }

    pub async fn recv_within(&mut self, limit: Duration) -> Result<Received> {
        loop {
            let message =
                tokio::time::timeout(limit, self.ws.next()).await.context("timed out waiting for a packet")?;
            match message {
                Some(Ok(Message::Binary(bytes))) => return Ok(decode(&bytes)),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => bail!("unexpected message {other:?}"),
                Some(Err(e)) => bail!("connection error: {e}"),
                None => bail!("connection closed"),
            }
        }
    }

    /// Waits for the close frame the server sends; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let message =
                tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await.expect("close within 10 s");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), frame.reason.to_string()),
                Some(Ok(Message::Close(None))) => return (u16::from(CloseCode::Status), String::new()),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

pub fn decode(bytes: &[u8]) -> Received {
    let packet = PacketWrapper::parse_from_bytes(bytes).expect("relay sends valid PacketWrappers");
    if packet.packet_type.enum_value() == Ok(PacketType::PRESENCE) {
        let presence = PresencePacket::parse_from_bytes(&packet.data).expect("valid presence");
        return match presence.event {
            Some(Event::Members(list)) => Received::Members(list.participants.iter().map(|p| p.session_id).collect()),
            Some(Event::Joined(p)) => Received::Joined(p.session_id, p.user_id),
            Some(Event::Left(l)) => Received::Left(l.participant.session_id, l.reason),
            other => panic!("unexpected presence {other:?}"),
        };
    }
    Received::Packet(packet)
}

/// Reads packets until one that is not presence arrives.
pub async fn next_packet(client: &mut Client) -> PacketWrapper {
    loop {
        if let Received::Packet(p) = client.recv().await.expect("a packet") {
            return p;
        }
    }
}
