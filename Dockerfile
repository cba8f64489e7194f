# Herald's operator image: a static (musl) binary on distroless/static, non-root.
#
#   docker build -t ghcr.io/herald-dev/herald:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) .
#
# The tag is the crate version, which is also the chart's appVersion and so the image
# the chart deploys by default (`make chart-check` keeps the three equal). Multi-arch:
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/herald-dev/herald:<version> --push .
# The builder is pinned to the toolchain of rust-toolchain.toml.

FROM rust:1.95-bookworm AS builder
# musl: a fully static binary (rustls on ring; no OpenSSL, no glibc) that runs on
# distroless/static. ring's C and assembly parts need musl-gcc for the target.
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY rust-toolchain.toml ./
RUN rustup target add "$(uname -m)-unknown-linux-musl"
# Dependencies first, in their own layer: a change to Herald's sources does not
# rebuild them.
COPY Cargo.toml Cargo.lock ./
# Cargo.toml declares the e2e test target: its path must exist for the manifest to load.
COPY tests ./tests
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked --target "$(uname -m)-unknown-linux-musl" \
    && rm -rf src
COPY src ./src
COPY config ./config
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target "$(uname -m)-unknown-linux-musl" \
    && cp "target/$(uname -m)-unknown-linux-musl/release/herald" /herald

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/herald-dev/herald" \
      org.opencontainers.image.description="Herald: per-tenant messaging stacks with GDPR guarantees, as a Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /herald /usr/local/bin/herald
# 65532 = distroless "nonroot"; the chart's restricted securityContext runs it as such,
# with a read-only root filesystem (Herald writes no files).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["run"]
