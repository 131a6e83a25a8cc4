# Prometheus from Debian's package (2.42), for sites that cannot pull prom/prometheus:
# docker-compose.debian.yml builds it from BASE_IMAGE (any Debian 12 image, e.g. one made with
# debootstrap; docs/deploy.md#offline-images). Same flags and paths as prom/prometheus.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus /etc/prometheus \
    && chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
