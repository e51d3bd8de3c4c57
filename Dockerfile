# drc daemon image: `docker build -t drc .`
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schemas ./schemas
RUN cargo build --release --locked --bin drc

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/drc drc && mkdir -p /var/lib/drc && chown drc /var/lib/drc
COPY --from=build /src/target/release/drc /usr/local/bin/drc
USER drc
ENTRYPOINT ["/usr/local/bin/drc"]
CMD ["run", "--config", "/etc/drc/zone.toml"]
