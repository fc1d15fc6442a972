//! The small HTTP server of the standalone relay: /healthz, /readyz, /metrics, and
//! /certificate (the hash of a development certificate, for `serverCertificateHashes`).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use videocall_relay::Relay;

struct State {
    relay: Relay,
    registry: Registry,
    hash: crate::SharedHash,
}

/// Serves health endpoints; returns the bound address and the server's handle.
pub async fn start(
    listen: SocketAddr,
    relay: Relay,
    registry: Registry,
    hash: crate::SharedHash,
) -> Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    let state = web::Data::from(Arc::new(State { relay, registry, hash }));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().content_type("text/plain").body("ok\n") }))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/certificate", web::get().to(certificate))
    })
    .workers(1)
    .bind(listen)
    .with_context(|| format!("binding {listen}"))?;
    let addr = server.addrs().first().copied().context("no bound address")?;
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((addr, handle))
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let ready = state.relay.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).json(serde_json::json!({"ready": ready, "bus": state.relay.bus_kind()}))
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    state.relay.metrics().bus_ready.set(i64::from(state.relay.is_ready()));
    match videocall_relay::metrics::encode(&state.registry) {
        Ok((body, content_type)) => HttpResponse::Ok().content_type(content_type).body(body),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn certificate(state: web::Data<State>) -> HttpResponse {
    let hash = *state.hash.read();
    HttpResponse::Ok().json(serde_json::json!({"certificate_hashes": crate::certificate_hashes_json(hash)}))
}
