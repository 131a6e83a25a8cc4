# One image for the bundle's Python services; docker-compose.yml picks the program by `command`:
#   einvoice-exporter --config=/etc/einvoice/exporter.yml --web.listen-address=0.0.0.0:9877
#   einvoice-notifier --config=/etc/einvoice/notifier.yml
#   einvoice-report ...   (PDF reports: WeasyPrint with pango and the Noto CJK font below)
#
# BASE_IMAGE is any Debian 12 (bookworm) image: python:3.11-slim (the default, from Docker Hub), or,
# where no registry is reachable, a local one built with debootstrap (docs/deploy.md#offline-images):
#   docker build --network host --build-arg BASE_IMAGE=local/debian:bookworm .
# Python comes from the base when it has one (python:3.11-slim), else from Debian's python3 (3.11).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive \
    PATH=/opt/einvoice/venv/bin:$PATH \
    XDG_CACHE_HOME=/tmp/.cache

# WeasyPrint (einvoice-report) needs pango, pangoft2 and harfbuzz-subset; the reports are Chinese and
# embed Noto Sans CJK SC (fontconfig's per-user cache goes to the tmpfs /tmp: the root filesystem is
# read-only in compose). tzdata: the services compute Beijing time (TZ=Asia/Shanghai).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
       libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk \
       $(command -v python3 >/dev/null || echo python3 python3-venv) \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/einvoice/venv

WORKDIR /opt/einvoice-monitoring
# The dependencies first, from pyproject.toml alone: a layer rebuilt only when they change.
COPY pyproject.toml README.md ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
       > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
# Only what the packages need (see .dockerignore); tests, docs and dashboards stay out.
COPY einvoice_core ./einvoice_core
COPY exporters ./exporters
COPY notifier ./notifier
COPY reports ./reports
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/einvoice-notifier \
       --shell /usr/sbin/nologin einvoice \
    && mkdir -p /var/lib/einvoice-notifier /etc/einvoice \
    && chown einvoice:einvoice /var/lib/einvoice-notifier

USER 10001:10001
WORKDIR /var/lib/einvoice-notifier
EXPOSE 9877 9878
CMD ["einvoice-exporter", "--help"]
