# syntax=docker/dockerfile:1
#
# The API server image: `sky` (CLI and server in one binary) on Debian slim.
#
#   docker build --build-arg SKYPILOT_COMMIT="$(git rev-parse --short=8 HEAD)" \
#       -t REGISTRY/skypilot-api-server:0.1.0 .
#   docker run -p 46580:46580 -v skypilot-data:/var/lib/skypilot \
#       -v "$PWD/initial-auth:/etc/skypilot/initial-auth:ro" \
#       -e SKYPILOT_INITIAL_BASIC_AUTH=/etc/skypilot/initial-auth/basic-auth \
#       REGISTRY/skypilot-api-server:0.1.0
#
# (initial-auth/basic-auth holds USER:PASSWORD. Pass a file, not the password
# itself: PID 1 keeps its environment for the container's life.)
#
# The Helm chart (charts/skypilot-api-server) runs it as uid/gid 10001 with a
# read-only root filesystem: state goes to the data dir (a volume), scratch to
# /tmp and to HOME (emptyDirs).

FROM rust:1-bookworm AS builder
WORKDIR /src
# build.rs records the source commit; there is no .git in the build context.
ARG SKYPILOT_COMMIT=unknown
# Protos are compiled by protox in build.rs: no protoc needed.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin sky \
    && install -D -m 0755 target/release/sky /out/sky

FROM debian:bookworm-slim
# ca-certificates: the CLI in the image verifies https endpoints against the
# system roots. tini: PID 1 that forwards SIGTERM to the server and reaps the
# orphaned processes that jobs on the local infra may leave behind.
# openssh-client: `ssh` (and `ssh-keygen`), which the server runs to reach the
# hosts of SSH node pools.
# bash and sed, which run jobs, are part of the base image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini openssh-client \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, the one the chart's securityContext runs as.
RUN groupadd --system --gid 10001 sky \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/sky --create-home \
        --shell /bin/bash sky \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/skypilot
COPY --from=builder /out/sky /usr/local/bin/sky

USER 10001:10001
WORKDIR /home/sky
ENV HOME=/home/sky \
    SKYPILOT_API_SERVER_DATA_DIR=/var/lib/skypilot \
    SKYPILOT_LOG_FORMAT=json
EXPOSE 46580
# SIGTERM: the server stops accepting, lets running requests finish within
# --shutdown-grace-seconds, flushes its store and exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sky"]
CMD ["api", "start", "--deploy", "--foreground"]
