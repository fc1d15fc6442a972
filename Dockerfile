# syntax=docker/dockerfile:1
# Container images of the platform, one build for all three:
#   docker build --target actix-api -t videocall/actix-api .           (serves the web client too)
#   docker build --target webtransport-server -t videocall/webtransport-server .
#   docker build --target bot -t videocall/bot .
# The build stage runs `cargo xtask dist`, the same command CI runs outside Docker. Where that
# release build is already made (`cargo xtask dist` puts it in target/dist), pass
# `--build-arg DIST=prebuilt` to put it in the images instead of building again in a container;
# `cargo xtask compose-test` does. (Podman 4's buildah skips stages by the build arguments it is
# given, not by this default: with it, pass `--build-arg DIST=build` to build from source.)
ARG DIST=build

FROM rust:1.95-bookworm AS build
# libclang: the bot's V4L2 bindings. The web client's wasm32 toolchain is set up by
# `cargo xtask dist` itself: rustup's target, or Debian's rustc-web where rustup cannot download.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN cargo xtask dist --out /dist

# The release build made outside the image builder (target/dist, let through by .dockerignore).
FROM scratch AS prebuilt
COPY target/dist /dist

# Where the images take the binaries and the web client from: `build` or `prebuilt`.
FROM ${DIST} AS dist

FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to NATS, PostgreSQL and the identity provider; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/videocall --create-home videocall \
    && install -d -o 10001 -g 10001 /var/lib/videocall/nats-tls /var/lib/videocall/recordings
WORKDIR /var/lib/videocall
USER 10001:10001

FROM runtime AS actix-api
COPY --from=dist /dist/bin/actix-api /usr/local/bin/actix-api
COPY --from=dist /dist/web /usr/share/videocall/web
# The recorder a host starts (`bot record`, found beside the server: RECORDER_BIN's default).
COPY --from=dist /dist/bin/bot /usr/local/bin/bot
ENV LISTEN_ADDR=0.0.0.0:8080 \
    RECORDINGS_DIR=/var/lib/videocall/recordings \
    WEB_ROOT=/usr/share/videocall/web \
    DATABASE_URL=sqlite:/var/lib/videocall/videocall.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/actix-api"]

FROM runtime AS webtransport-server
COPY --from=dist /dist/bin/webtransport-server /usr/local/bin/webtransport-server
# Issues NATS's private certificate for docker-compose.yaml (its nats-tls service).
COPY --from=dist /dist/bin/internal-tls /usr/local/bin/internal-tls
ENV WEBTRANSPORT_LISTEN=[::]:4433 \
    HEALTH_LISTEN_ADDR=0.0.0.0:4434
EXPOSE 4433/udp 4434
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["curl", "-fsS", "http://127.0.0.1:4434/healthz"]
ENTRYPOINT ["/usr/local/bin/webtransport-server"]

FROM runtime AS bot
COPY --from=dist /dist/bin/bot /usr/local/bin/bot
# A client, not a server: it has no HTTP endpoint of its own; it exits nonzero when it fails.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/bot"]
CMD ["--help"]
