# One image for the bundle's Python services; docker-compose.yml picks the program by `command`:
#   einvoice-exporter --config=/etc/einvoice/exporter.yml --web.listen-address=0.0.0.0:9877
#   einvoice-notifier --config=/etc/einvoice/notifier.yml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/einvoice-monitoring
# Only what the packages need (see .dockerignore); tests, docs and dashboards stay out.
COPY pyproject.toml README.md ./
COPY einvoice_core ./einvoice_core
COPY exporters ./exporters
COPY notifier ./notifier
COPY reports ./reports
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/einvoice-notifier \
       --shell /usr/sbin/nologin einvoice \
    && mkdir -p /var/lib/einvoice-notifier /etc/einvoice \
    && chown einvoice:einvoice /var/lib/einvoice-notifier

USER 10001:10001
WORKDIR /var/lib/einvoice-notifier
EXPOSE 9877 9878
CMD ["einvoice-exporter", "--help"]
