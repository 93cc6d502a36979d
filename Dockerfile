# syntax=docker/dockerfile:1
#
# hookline's container image: the release binary built in the official Rust image, run
# in debian:bookworm-slim as a non-root user (uid/gid 10001) with its SQLite database on
# the /data volume.
#
#   docker build -t hookline --build-arg REVISION=$(git rev-parse HEAD) .
#   podman build -t hookline .      buildah build --format docker -t hookline .
#   docker run -p 8080:8080 -p 50051:50051 -v hookline-data:/data hookline
#
# The cache mounts need BuildKit (Docker 23+ by default), podman or buildah.
# CI cannot pull base images, so it assembles an equivalent image from the release binary
# with umoci instead (deploy/image/build.sh); both are described in docs/deploy.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The binary loses its debug sections (the release profile keeps line tables: 119 MB
# instead of 25 MB) but keeps its symbols, so a backtrace still names functions.
# .dockerignore lets in only what the build reads: Cargo.*, build.rs, src, proto,
# migrations and benches (Cargo.toml declares the bench target, so its file must exist).
COPY . .
# The context has no .git: the revision `hookline --version` prints comes from here.
ARG REVISION=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    HOOKLINE_REVISION="${REVISION}" cargo build --release --locked --bin hookline \
 && mkdir -p /out \
 && objcopy --strip-debug target/release/hookline /out/hookline \
 && chmod 0755 /out/hookline

FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hookline" \
      org.opencontainers.image.description="Webhooks for container registries" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}"
# The CA bundle of the build image (Debian's ca-certificates): deliveries and PostgreSQL's
# TLS use rustls' bundled roots today, but anything reading the system store finds them.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN groupadd --system --gid 10001 hookline \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin hookline \
 && install -d -o 10001 -g 10001 -m 0750 /data
COPY --from=build /out/hookline /usr/local/bin/hookline
# Listen on every interface (the defaults are loopback, useless in a container); the
# embedded database lives on the volume. Override HOOKLINE_DB with a postgres:// URL to
# run several replicas.
ENV HOOKLINE_INGEST_ADDR=0.0.0.0:8080 \
    HOOKLINE_API_ADDR=0.0.0.0:50051 \
    HOOKLINE_DB=sqlite:///data/hookline.db
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
# 8080: POST /v1/notify, /healthz, /readyz, /metrics (ingest role).
# 50051: gRPC API and the web console at /console/ (api role).
EXPOSE 8080 50051
# hookline has no self-check subcommand and the image has no curl: bash (in every Debian
# image) asks the ingest role's GET /healthz over /dev/tcp, on the port of
# HOOKLINE_INGEST_ADDR. A container running without the ingest role (--roles api or
# dispatcher) has no HTTP health endpoint: run it with --no-healthcheck (compose:
# `healthcheck: {disable: true}`). Kubernetes ignores HEALTHCHECK; deploy/k8s has probes.
# Only Docker-format images keep HEALTHCHECK (buildah/podman: --format docker).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${HOOKLINE_INGEST_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["hookline"]
CMD ["serve"]
