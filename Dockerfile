# The one binary in a small image, run as a non-root user.
#   docker build -t cachecash:0.1.0 .
# The first build compiles RocksDB (about 16 minutes on two cores).
FROM rust:1.95-bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cachecash-cli \
    && install -m 0755 target/release/cachecash /usr/local/bin/cachecash

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 cachecash \
    && useradd --uid 10001 --gid 10001 --home-dir /data --create-home --shell /usr/sbin/nologin cachecash
COPY --from=build /usr/local/bin/cachecash /usr/local/bin/cachecash
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# p2p, JSON-RPC, Prometheus, HTTP gateway
EXPOSE 30333 9944 9615 8080
ENTRYPOINT ["/usr/local/bin/cachecash"]
CMD ["--help"]
