//! A REST client for tests that keeps the session cookie itself (reqwest's cookie store would
//! not send a `Secure` cookie over http://127.0.0.1, which browsers treat as secure).
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::Value;

pub struct Api {
    pub base: String,
    /// The session cookie, `name=value`.
    pub cookie: Option<String>,
    /// Other cookies (the sign-in's), `name=value`.
    pub others: Vec<String>,
    /// The last `Set-Cookie` header received, whole (attributes included).
    pub set_cookie: Option<String>,
    /// The last `Location` header received.
    pub location: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base: base.to_owned(), cookie: None, others: Vec::new(), set_cookie: None, location: None, http }
    }

    /// Another client of the same server with no session.
    pub fn anonymous(&self) -> Self {
        Self::new(&self.base)
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn delete(&mut self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(self.url(path))).await
    }

    /// A POST with a raw body and content type.
    pub async fn post_raw(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).header("content-type", content_type).body(body)).await
    }

    /// A GET of an absolute URL (another server's), with this client's cookies.
    pub async fn get_url(&mut self, url: &str) -> (StatusCode, Value) {
        self.send(self.http.get(url)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let cookies: Vec<&String> = self.cookie.iter().chain(&self.others).collect();
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("; "));
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        self.location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        for set in response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            self.set_cookie = Some(set.to_owned());
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            let name = pair.split('=').next().unwrap_or_default().to_owned();
            let cleared = pair.ends_with('=');
            if name == "videocall_session" {
                self.cookie = (!cleared).then_some(pair);
            } else {
                self.others.retain(|c| !c.starts_with(&format!("{name}=")));
                if !cleared {
                    self.others.push(pair);
                }
            }
        }
        let body = response.text().await.unwrap_or_default();
        let value =
            if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::String(body)) };
        (status, value)
    }
}

/// Asserts an error response: its status and JSON code; returns the message.
#[track_caller]
pub fn assert_error(response: (StatusCode, Value), status: u16, code: &str) -> String {
    let (got, body) = response;
    assert_eq!((got.as_u16(), body["code"].as_str()), (status, Some(code)), "{body}");
    body["message"].as_str().unwrap_or_default().to_owned()
}
