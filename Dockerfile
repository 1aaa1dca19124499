# Cauldron container image, built in one step where a registry is reachable:
#
#   docker build -t cauldron .        (or: podman build --format docker -t cauldron .)
#
# Stage 1 builds a static musl binary; stage 2 is `scratch` with that binary, the
# default configuration and the directories below, running as uid/gid 65532. Machines
# without a registry build the same image from a host-built binary with
# Containerfile.local (see README.md, "Container").
#
#   /cauldron                         the binary (also the health check: `cauldron probe`)
#   /etc/cauldron/cauldron.toml       configuration (deploy/container/cauldron.toml; mount yours)
#   /etc/cauldron/plugins/            mount plugin components (.wasm) here
#   /var/lib/cauldron/                data volume (store in data/, plugin cache), owned by 65532
#
# Ports: 1883 MQTT, 8883 MQTT over TLS (when a TLS listener is configured), 9883 metrics
# and health. CAULDRON_<SECTION>__<KEY> environment variables override the file.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# ring (rustls) compiles C and assembly: musl-gcc comes from musl-tools.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN set -eux; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    cargo build --release --locked --target "$target" -p cauldron; \
    install -D -m 0755 "target/$target/release/cauldron" /out/cauldron; \
    strip /out/cauldron; \
    install -D -m 0644 deploy/container/cauldron.toml /out/etc/cauldron/cauldron.toml; \
    install -d -m 0755 /out/etc/cauldron/plugins; \
    install -d -m 0750 /data

FROM scratch
COPY --from=build /out/ /
COPY --from=build --chown=65532:65532 /data/ /var/lib/cauldron/
USER 65532:65532
VOLUME ["/var/lib/cauldron"]
EXPOSE 1883 8883 9883
# Needs [metrics] enabled on 127.0.0.1:9883 or 0.0.0.0:9883 (the default config does).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/cauldron", "probe", "http://127.0.0.1:9883/health"]
# SIGTERM: listeners close, MQTT 5 clients get DISCONNECT 0x8B, queues are flushed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/cauldron", "--config", "/etc/cauldron/cauldron.toml"]
