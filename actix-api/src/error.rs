//! Errors as JSON `{code, message}` with a proper status.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, error::JsonPayloadError};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// Adds `Retry-After: secs` to the response.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        response.json(self)
    }
}

pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let (status, code) = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        }
        JsonPayloadError::ContentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
        _ => (StatusCode::BAD_REQUEST, "bad_json"),
    };
    ApiError::new(status, code, err.to_string()).into()
}

/// A path segment that does not parse (the ids are checked by the handlers).
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", err.to_string()).into()
}

/// Middleware counting API error responses by status (`api_errors_total{status}`).
pub fn count_errors(
    counter: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
) -> impl Fn(
    actix_web::dev::ServiceRequest,
    actix_web::middleware::Next<actix_web::body::BoxBody>,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error>,
            >,
    >,
> + Clone {
    move |req, next| {
        let counter = counter.clone();
        Box::pin(async move {
            let api = req.path().starts_with("/api/");
            let response = next.call(req).await?;
            let status = response.status();
            if api && (status.is_client_error() || status.is_server_error()) {
                counter.get_or_create(&vec![("status".to_owned(), status.as_u16().to_string())]).inc();
            }
            Ok(response)
        })
    }
}
