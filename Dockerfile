# hookbridge container image.
#   docker build -t hookbridge .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/my-config:/etc/hookbridge:ro" -e HOOKBRIDGE__KAFKA__BROKERS=broker:9092 hookbridge
# The image carries the example settings (hookbridge.toml) and connectors (connectors/) under
# /etc/hookbridge; mount your own over that directory (docker-compose.yml and the Helm chart
# in helm/hookbridge do). `hookbridge check --config /etc/hookbridge/hookbridge.toml`
# validates a configuration and exits non-zero on error.

# --- build -------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# rdkafka builds librdkafka from its bundled source (configure + make): a C/C++ toolchain,
# python3 for its configure script, and the OpenSSL and zlib headers found via pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential libssl-dev zlib1g-dev pkg-config python3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependencies first, against a dummy crate, so this (slow: librdkafka) layer is reused
# until Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > benches/verify.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src \
      target/release/hookbridge target/release/hookbridge.d \
      target/release/deps/hookbridge-* target/release/deps/libhookbridge-* \
      target/release/.fingerprint/hookbridge-*

# The real sources (the removed fingerprints force hookbridge itself to be rebuilt).
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked \
 && install -m 0755 target/release/hookbridge /usr/local/bin/hookbridge

# --- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hookbridge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin hookbridge

COPY --from=builder /usr/local/bin/hookbridge /usr/local/bin/hookbridge
COPY hookbridge.toml /etc/hookbridge/hookbridge.toml
COPY connectors/ /etc/hookbridge/connectors/

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# 8080: webhooks ([http] listen); 9090: admin ([admin] listen): /metrics, /healthz, /readyz.
EXPOSE 8080 9090
# SIGTERM drains within [shutdown] drain_timeout (default 25s): give `docker stop` more time,
# e.g. `docker stop -t 35`, or stop_grace_period in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hookbridge"]
CMD ["run", "--config", "/etc/hookbridge/hookbridge.toml"]
