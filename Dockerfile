# preflight in a container: `docker build -t preflight .`, then
# `docker run --rm -v "$PWD/smoke-tests:/suite:ro" preflight run /suite --base-url https://staging.example.com`.

# Build stage: the same command as the README's install section.
FROM rust:1-slim AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# Runtime stage: the binary, CA certificates (TLS uses the system's roots), a non-root user.
FROM debian:stable-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/preflight preflight
COPY --from=build /src/target/release/preflight /usr/local/bin/preflight
USER 10001
WORKDIR /home/preflight
ENTRYPOINT ["preflight"]
CMD ["--help"]
