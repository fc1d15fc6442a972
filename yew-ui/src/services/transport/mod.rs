//! The connection to the relay: WebTransport first, WebSocket when WebTransport fails (or is
//! not offered). Both carry whole `PacketWrapper`s as bytes; the call does not know which it
//! has, and the call engine reads and writes the bytes.

mod websocket;
mod webtransport;

use std::rc::Rc;

use videocall_client::call::TransportKind;

pub enum Incoming {
    /// One whole `PacketWrapper`, not yet parsed.
    Bytes(Vec<u8>),
    /// The relay closed us, or the network did. `code` is the WebSocket or WebTransport close
    /// code (0 when there was none).
    Closed { code: u32, reason: String },
}

pub type OnIncoming = Rc<dyn Fn(Incoming)>;

/// Which transports to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Preference {
    Auto,
    WebTransport,
    WebSocket,
}

impl Preference {
    pub fn parse(s: &str) -> Self {
        match s {
            "webtransport" => Self::WebTransport,
            "websocket" => Self::WebSocket,
            _ => Self::Auto,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::WebTransport => "webtransport",
            Self::WebSocket => "websocket",
        }
    }
}

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub websocket_url: String,
    /// The session URL and the certificate hashes to trust, when the server offers WebTransport.
    pub webtransport: Option<(String, Vec<Vec<u8>>)>,
}

enum Link {
    WebSocket(websocket::WsLink),
    WebTransport(webtransport::WtLink),
}

pub struct Transport {
    pub kind: TransportKind,
    link: Link,
}

impl Transport {
    /// Sends one whole `PacketWrapper`'s bytes.
    pub fn send(&self, bytes: &[u8]) {
        match &self.link {
            Link::WebSocket(l) => l.send(bytes),
            Link::WebTransport(l) => l.send(bytes),
        }
    }

    /// Bytes accepted but not yet on the network: the sender's congestion signal.
    pub fn queued_bytes(&self) -> f64 {
        match &self.link {
            Link::WebSocket(l) => l.queued_bytes(),
            Link::WebTransport(l) => l.queued_bytes(),
        }
    }
}

/// Connects as `preference` allows: WebTransport first, then WebSocket. Returns the transport
/// and, when WebTransport was tried and failed, why (shown to the user).
pub async fn connect(
    preference: Preference,
    target: &Target,
    on_incoming: OnIncoming,
) -> Result<(Transport, Option<String>), String> {
    let mut failure = None;
    if preference != Preference::WebSocket {
        match &target.webtransport {
            Some((url, hashes)) => match webtransport::WtLink::open(url, hashes, on_incoming.clone()).await {
                Ok(link) => {
                    return Ok((Transport { kind: TransportKind::WebTransport, link: Link::WebTransport(link) }, None));
                }
                Err(e) => failure = Some(format!("WebTransport failed: {e}")),
            },
            None => failure = Some("this server offers no WebTransport".to_owned()),
        }
        if preference == Preference::WebTransport {
            return Err(failure.unwrap_or_default());
        }
    }
    let link = websocket::WsLink::open(&target.websocket_url, on_incoming).await?;
    Ok((Transport { kind: TransportKind::WebSocket, link: Link::WebSocket(link) }, failure))
}
