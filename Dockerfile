# The image-update container image, in four stages:
#
#   build    compiles a static (musl) release binary;
#   runtime  Debian slim with git and CA certificates, running as an
#            unprivileged user (65532), entry point `image-update`: the image
#            for Kubernetes Jobs (deploy/) and for running it by hand.
#              docker build --target runtime -t REGISTRY/image-update:TAG .
#   krm      the runtime image with `image-update fn` as its entry point, for
#            `kpt fn eval --image` and Kptfile pipelines (kpt starts function
#            images without arguments).
#              docker build --target krm -t REGISTRY/image-update-fn:TAG .
#   action   the runtime image running as root. It is the last stage, so the
#            default target, which is what GitHub builds for the container
#            action (action.yml: `image: Dockerfile`): GitHub runs a container
#            action as the image's user, and the workspace it mounts belongs
#            to the runner's user, so only root may write to it.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
COPY src ./src
# musl-gcc compiles the C parts (ring, mimalloc) for the musl target; the
# result depends on no shared library at all.
RUN target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$target" \
 && env "CC_$(uname -m)_unknown_linux_musl=musl-gcc" \
        cargo build --release --locked --target "$target" \
 && install -D -m 0755 "target/$target/release/image-update" /out/image-update \
 && /out/image-update --version

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 image-update \
 && useradd --no-log-init --uid 65532 --gid 65532 --create-home --home-dir /home/image-update \
            --shell /usr/sbin/nologin image-update
COPY --from=build /out/image-update /usr/local/bin/image-update
LABEL org.opencontainers.image.title="image-update" \
      org.opencontainers.image.description="Keep container image references in a GitOps repository up to date"
# Numeric, so that Kubernetes can check runAsNonRoot against it.
USER 65532:65532
ENTRYPOINT ["image-update"]

FROM runtime AS krm
ENTRYPOINT ["image-update", "fn"]

FROM runtime AS action
USER 0:0
