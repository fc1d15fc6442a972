# syntax=docker/dockerfile:1
# Container images of the platform, one build for all three:
#   docker build --target actix-api -t videocall/actix-api .           (serves the web client too)
#   docker build --target webtransport-server -t videocall/webtransport-server .
#   docker build --target bot -t videocall/bot .
# The build stage runs `cargo xtask dist`, the same command CI runs outside Docker.

FROM rust:1.95-bookworm AS build
# libclang: the bot's V4L2 bindings; the wasm32 target: the web client.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN cargo xtask dist --out /dist

FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to NATS, PostgreSQL and the identity provider; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/videocall --create-home videocall \
    && install -d -o 10001 -g 10001 /var/lib/videocall/nats-tls
WORKDIR /var/lib/videocall
USER 10001:10001

FROM runtime AS actix-api
COPY --from=build /dist/bin/actix-api /usr/local/bin/actix-api
COPY --from=build /dist/web /usr/share/videocall/web
ENV LISTEN_ADDR=0.0.0.0:8080 \
    WEB_ROOT=/usr/share/videocall/web \
    DATABASE_URL=sqlite:/var/lib/videocall/videocall.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/actix-api"]

FROM runtime AS webtransport-server
COPY --from=build /dist/bin/webtransport-server /usr/local/bin/webtransport-server
# Issues NATS's private certificate for docker-compose.yaml (its nats-tls service).
COPY --from=build /dist/bin/internal-tls /usr/local/bin/internal-tls
ENV WEBTRANSPORT_LISTEN=[::]:4433 \
    HEALTH_LISTEN_ADDR=0.0.0.0:4434
EXPOSE 4433/udp 4434
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["curl", "-fsS", "http://127.0.0.1:4434/healthz"]
ENTRYPOINT ["/usr/local/bin/webtransport-server"]

FROM runtime AS bot
COPY --from=build /dist/bin/bot /usr/local/bin/bot
# A client, not a server: it has no HTTP endpoint of its own; it exits nonzero when it fails.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/bot"]
CMD ["--help"]
