# authzd container image: a release build, then a minimal non-root runtime.
#
#   docker build -t registry.example.com/authzd:0.1.0 .
#   docker run --rm -p 50051:50051 -p 8181:8181 \
#     -v "$PWD/deploy:/etc/authzd:ro" registry.example.com/authzd:0.1.0
#
# The image holds only the binary. Config, model and policy are mounted at
# /etc/authzd (the Kubernetes examples mount a ConfigMap there, so edits
# arrive live). Inside a container the config must listen on all interfaces:
#   [server]
#   grpc_addr = "0.0.0.0:50051"
#   http_addr = "0.0.0.0:8181"

FROM rust:1.88-bookworm AS build
WORKDIR /src
# Only what the build reads (see .dockerignore): no protoc is needed, the
# protos compile with protox.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
# Cargo.toml declares the benches; cargo checks their files exist.
COPY benches ./benches
RUN cargo build --release --locked --bin authzd

# glibc, libgcc and CA certificates (issuer discovery, JWKS and stores over
# TLS), no shell, runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/authzd /usr/local/bin/authzd
USER 65532:65532
# gRPC (authzd.v1, Envoy ext_authz, health) and HTTP (JSON, ext_authz HTTP
# mode, forward auth, /healthz, /readyz, /metrics).
EXPOSE 50051 8181
ENTRYPOINT ["/usr/local/bin/authzd"]
CMD ["serve", "--config", "/etc/authzd/authzd.toml", "--log-format", "json"]
