# VictoriaMetrics single node from Debian's package (victoria-metrics 1.79), for sites that cannot
# pull victoriametrics/victoria-metrics: docker-compose.debian.yml builds it from BASE_IMAGE.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends victoria-metrics wget ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /victoria-metrics-data \
    && chown _victoria-metrics:_victoria-metrics /victoria-metrics-data
USER _victoria-metrics
WORKDIR /victoria-metrics-data
EXPOSE 8428
ENTRYPOINT ["/usr/bin/victoria-metrics"]
CMD ["-storageDataPath=/victoria-metrics-data"]
