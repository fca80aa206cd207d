# botwatch in a container: `docker build -t botwatch .` then
#   docker run -d --name botwatch -p 8080:8080 -v botwatch:/var/lib/botwatch \
#     -v $PWD/botwatch.toml:/etc/botwatch/botwatch.toml:ro botwatch
# The config must listen on 0.0.0.0:8080 ([server] listen) to be reachable from outside.
# Build stage: the release binary, stripped (profile `dist`).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --profile dist -p botwatch \
    && cp target/dist/botwatch /botwatch

# Run stage: Debian slim with CA certificates (feeds over HTTPS, SMTP with TLS), a non-root
# user, the store in a volume.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/botwatch --create-home botwatch \
    && mkdir -p /etc/botwatch
COPY --from=build /botwatch /usr/local/bin/botwatch
USER botwatch
WORKDIR /var/lib/botwatch
ENV BOTWATCH_CONFIG=/etc/botwatch/botwatch.toml
VOLUME ["/var/lib/botwatch"]
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/botwatch"]
CMD ["run"]
