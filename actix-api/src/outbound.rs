//! The few HTTP calls the server makes itself: to the identity provider (GET a JSON document,
//! POST a form) and to a separate WebTransport relay for its certificate hash. hyper with rustls
//! on ring (the provider given here, never a process-wide default) and the system's root
//! certificates; `http://` is allowed for services on a private network and in tests.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest answer read from the provider.
const MAX_BODY: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The status and body of an answer.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl HttpClient {
    pub fn new() -> anyhow::Result<Self> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self { client: Client::builder(TokioExecutor::new()).build(connector) })
    }

    pub async fn get(&self, url: &str) -> Result<Answer, String> {
        let request = Request::builder().method(Method::GET).uri(url).header(ACCEPT, "application/json");
        self.send(request.body(Full::default()).map_err(|e| e.to_string())?).await
    }

    /// POSTs `form` (application/x-www-form-urlencoded), with HTTP Basic credentials if given.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Answer, String> {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((user, password)) = basic {
            // RFC 6749 2.3.1: each part form-encoded, then base64.
            let pair = format!("{}:{}", encode(user), encode(password));
            request = request
                .header(AUTHORIZATION, format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)));
        }
        self.send(request.body(Full::from(body.join("&"))).map_err(|e| e.to_string())?).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|e| e.to_string())?;
            Ok(Answer { status, body: body.to_bytes() })
        };
        tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| format!("no answer within {TIMEOUT:?}"))?
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
