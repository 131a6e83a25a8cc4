# Alertmanager from Debian's package (prometheus-alertmanager 0.25), for sites that cannot pull
# prom/alertmanager: docker-compose.debian.yml builds it from BASE_IMAGE (any Debian 12 image;
# docs/deploy.md#offline-images). Same flags as prom/alertmanager; Debian's build has no web UI
# (the API, amtool and Grafana's Alertmanager data source work).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus-alertmanager wget ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /alertmanager /etc/alertmanager \
    && chown prometheus:prometheus /alertmanager
USER prometheus
WORKDIR /alertmanager
EXPOSE 9093 9094
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
