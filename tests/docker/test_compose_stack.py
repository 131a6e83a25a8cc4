"""docker-compose.yml started for real: images built, the stack up, a failing check becomes a ticket.

Debian's `docker-compose` 1.29 drives a private dockerd (conftest.compose_engine, its data root kept
between runs so the image layers are cached). No registry is reachable here, so the images come
from docker-compose.debian.yml: Prometheus, Alertmanager and VictoriaMetrics from Debian's packages
and the Python image from the same Dockerfile, all on a Debian 12 base made with debootstrap plus
this machine's package settings (siteimage.py). Grafana's image cannot be had (no registry, no
Debian package) and is the one service left out.

The project is a copy of the checkout (its committed and working files), with the secrets made by
deploy/secrets/generate.sh as a newcomer would. An override generated here puts every service on
the host network with free loopback ports (extra_hosts maps the compose service names to 127.0.0.1,
so the committed configs keep their host names) and shortens the scrape and Alertmanager timings.
The chain: the exporter's check of a closed port (item 02) fails -> the rules' EinvoiceCheckFailing
fires in Prometheus -> Alertmanager -> the notifier's webhook -> a ticket, read from its JSON API.
Prometheus also remote-writes to VictoriaMetrics, read back through the reports' client.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from einvoice_reports.prom import PrometheusClient

from tests.docker.conftest import Daemon, _cannot_run, minbase_tarball
from tests.docker.siteimage import ensure_base_image
from tests.support.procs import free_port, require_binary, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STARTED = ("victoria-metrics", "alertmanager", "notifier", "exporter", "prometheus")
"""Every service of docker-compose.yml but grafana (no image here)."""
BUILT = ("prometheus", "alertmanager", "victoria-metrics", "exporter")
"""The builds (the notifier shares the exporter's image)."""


def _copy_checkout(dest: Path) -> None:
    """The checkout's tracked and untracked-but-not-ignored files, as they are on disk."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        source = REPO / raw.decode()
        if not source.is_file():
            continue
        target = dest / raw.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _get(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _shorten_routes(route: dict[str, Any]) -> None:
    """Test pace on every route that sets its own timing (the committed routing is kept)."""
    for key, value in (("group_wait", "1s"), ("group_interval", "5s"), ("repeat_interval", "1h")):
        if key in route or "routes" in route or "receiver" in route:
            route[key] = value
    for child in route.get("routes", []):
        _shorten_routes(child)


class Project:
    """The copied project, its rendered test configs and the docker-compose command line."""

    def __init__(self, root: Path, work: Path, engine: Daemon, base_image: str) -> None:
        self.root = root
        self.work = work
        self.engine = engine
        self.base_image = base_image
        self.name = "einvoice" + secrets.token_hex(3)
        self.ports = {name: free_port() for name in
                      ("prometheus", "alertmanager", "exporter", "notifier", "victoria-metrics", "closed")}
        self.api_token = secrets.token_urlsafe(24)
        self.override = work / "docker-compose.test.yml"

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        binary = shutil.which("docker-compose")
        assert binary is not None
        env = {**os.environ, "DOCKER_HOST": self.engine.target, "EINVOICE_BASE_IMAGE": self.base_image,
               "EINVOICE_EXPORTER_CONFIG": str(self.work / "exporter.yml"), "COMPOSE_HTTP_TIMEOUT": "300"}
        argv = [binary, "--project-name", self.name, "--project-directory", str(self.root),
                "-f", str(self.root / "docker-compose.yml"),
                "-f", str(self.root / "docker-compose.debian.yml"),
                "-f", str(self.override), *args]
        return subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def render(self) -> None:
        p = self.ports
        names = {"exporter:9877": f"exporter:{p['exporter']}", "notifier:9878": f"notifier:{p['notifier']}",
                 "alertmanager:9093": f"alertmanager:{p['alertmanager']}",
                 "localhost:9090": f"localhost:{p['prometheus']}",
                 "victoria-metrics:8428": f"victoria-metrics:{p['victoria-metrics']}"}
        text = (self.root / "deploy/prometheus/prometheus.yml").read_text()
        for old, new in names.items():
            text = text.replace(old, new)
        prom = yaml.safe_load(text)
        prom["global"].update({"scrape_interval": "2s", "scrape_timeout": "1500ms"})
        keep = {"einvoice-exporter", "einvoice-notifier", "prometheus", "alertmanager"}
        prom["scrape_configs"] = [job for job in prom["scrape_configs"] if job["job_name"] in keep]
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(prom, allow_unicode=True, sort_keys=False))

        am = yaml.safe_load((self.root / "alert_rules/alertmanager.yml").read_text())
        for receiver in am["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = hook["url"].replace("notifier:9878", f"notifier:{p['notifier']}")
        _shorten_routes(am["route"])
        (self.work / "alertmanager.yml").write_text(yaml.safe_dump(am, allow_unicode=True, sort_keys=False))

        notifier = yaml.safe_load((self.root / "deploy/notifier/notifier.yml").read_text())
        notifier.update({"listen": f"0.0.0.0:{p['notifier']}", "public_url": self.url("notifier"),
                         "api_tokens": [{"name": "compose-test", "token": self.api_token, "role": "viewer"}]})
        (self.work / "notifier.yml").write_text(yaml.safe_dump(notifier, allow_unicode=True, sort_keys=False))

        exporter = {
            "modules": {"port_open": {"kind": "tcp", "timeout": "1s"},
                        "health": {"kind": "http", "timeout": "1s", "http": {"valid_status_codes": [200]}}},
            "checks": [
                {"name": "exporter-self", "item": "05", "module": "health",
                 "target": f"http://127.0.0.1:{p['exporter']}/-/healthy"},
                # nothing listens there: refused, the check fails (item 02, critical, for: 1m)
                {"name": "lb-vip", "item": "02", "module": "port_open", "target": f"127.0.0.1:{p['closed']}"},
            ],
        }
        (self.work / "exporter.yml").write_text(yaml.safe_dump(exporter, sort_keys=False))
        for path in self.work.iterdir():
            path.chmod(0o644)  # read by the containers' own users

        hosts = [f"{name}:127.0.0.1" for name in ("prometheus", "alertmanager", "exporter", "notifier",
                                                   "victoria-metrics")]

        def health(url: str) -> dict[str, Any]:
            return {"test": ["CMD", "wget", "-q", "-O", "/dev/null", url], "interval": "5s"}

        def py_health(url: str) -> dict[str, Any]:
            code = f"import urllib.request; urllib.request.urlopen('{url}')"
            return {"test": ["CMD", "python3", "-c", code],
                    "interval": "5s"}

        host = {"network_mode": "host", "extra_hosts": hosts}
        override = {"services": {
            "prometheus": {**host, "command": [
                "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                f"--web.listen-address=127.0.0.1:{p['prometheus']}",
                "--enable-feature=expand-external-labels",
                f"--web.external-url={self.url('prometheus')}"],
                "volumes": [f"{self.work / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro"],
                "healthcheck": health(f"{self.url('prometheus')}/-/ready")},
            "alertmanager": {**host, "command": [
                "--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager",
                f"--web.listen-address=127.0.0.1:{p['alertmanager']}", "--cluster.listen-address=",
                f"--web.external-url={self.url('alertmanager')}"],
                "volumes": [f"{self.work / 'alertmanager.yml'}:/etc/alertmanager/alertmanager.yml:ro"],
                "healthcheck": health(f"{self.url('alertmanager')}/-/ready")},
            "victoria-metrics": {**host, "command": [
                "-storageDataPath=/victoria-metrics-data",
                f"-httpListenAddr=127.0.0.1:{p['victoria-metrics']}",
                "-dedup.minScrapeInterval=2s", "-relabelConfig=/etc/victoria-metrics/relabel.yml",
                "-search.latencyOffset=0s"],
                "healthcheck": health(f"{self.url('victoria-metrics')}/health")},
            "exporter": {**host, "command": [
                "einvoice-exporter", "--config=/etc/einvoice/exporter.yml",
                f"--web.listen-address=127.0.0.1:{p['exporter']}"],
                "healthcheck": py_health(f"{self.url('exporter')}/-/healthy")},
            "notifier": {**host,
                         "volumes": [f"{self.work / 'notifier.yml'}:/etc/einvoice/notifier.yml:ro"],
                         "healthcheck": py_health(f"{self.url('notifier')}/-/healthy")},
        }}
        self.override.write_text(yaml.safe_dump(override, sort_keys=False))


@pytest.fixture(scope="module")
def project(compose_engine: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    if shutil.which("docker-compose") is None:
        _cannot_run("docker-compose is not installed (apt-get install docker-compose)")
    if shutil.which("git") is None:
        _cannot_run("git is not installed")
    root = tmp_path_factory.mktemp("compose-project")
    _copy_checkout(root)
    made = subprocess.run(["sh", str(root / "deploy/secrets/generate.sh")], capture_output=True, text=True,
                          check=True)
    assert "created  deploy/secrets/exporter.env" in made.stdout
    work = tmp_path_factory.mktemp("compose-work")
    work.chmod(0o755)
    base = ensure_base_image(compose_engine, minbase_tarball())
    proj = Project(root, work, compose_engine, base)
    proj.render()
    yield proj
    down = proj.compose("down", "--volumes", "--timeout", "20", timeout=300)
    if down.returncode != 0:
        print(down.stdout + down.stderr)


def test_the_stack_builds_starts_and_a_failing_check_becomes_a_ticket(project: Project) -> None:
    built = project.compose("build", *BUILT, timeout=3600)
    assert built.returncode == 0, (built.stdout + built.stderr)[-6000:]

    up = project.compose("up", "-d", "--no-build", *STARTED)
    assert up.returncode == 0, (up.stdout + up.stderr)[-6000:]

    def logs() -> str:
        return project.compose("logs", "--no-color", "--tail", "40").stdout[-8000:]

    ready = {"prometheus": "/-/ready", "alertmanager": "/-/ready", "exporter": "/-/healthy",
             "notifier": "/-/healthy", "victoria-metrics": "/health"}
    for name, path in ready.items():
        try:
            wait_until(functools.partial(_answers, project.url(name) + path), timeout=120, interval=1,
                       what=f"{name} answering on {project.url(name)}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None

    # The images are the ones built here and run as their non-root users.
    for service in STARTED:
        cid = project.compose("ps", "-q", service).stdout.strip()
        assert cid, f"{service} has no container"
        user = project.engine.cli("inspect", "--format", "{{.Config.User}}", cid).stdout.strip()
        assert user not in ("", "0", "root"), f"{service} runs as root"

    # The Python image renders the reports' Chinese PDFs: WeasyPrint finds pango and the CJK font.
    exporter_id = project.compose("ps", "-q", "exporter").stdout.strip()
    code = ("import sys, weasyprint; sys.stdout.buffer.write(weasyprint.HTML(string="
            "'<p style=\"font-family: Noto Sans CJK SC\">电子发票监控月报</p>').write_pdf())")
    pdf = subprocess.run([project.engine.client, "--host", project.engine.target, "exec", exporter_id,
                          "python3", "-c", code], capture_output=True, timeout=120, check=False)
    assert pdf.returncode == 0, pdf.stderr.decode(errors="replace")[-3000:]
    assert pdf.stdout.startswith(b"%PDF-"), pdf.stdout[:100]
    assert b"Fontconfig error" not in pdf.stderr, pdf.stderr[-500:]
    (project.work / "report.pdf").write_bytes(pdf.stdout)
    fonts = subprocess.run([require_binary("pdffonts"), str(project.work / "report.pdf")],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Noto-Sans-CJK-SC" in fonts and " yes yes " in fonts, fonts  # embedded, subset

    # The exporter's failing check, scraped by Prometheus, through the committed rules...
    def alert_in_prometheus() -> bool:
        alerts = _get(project.url("prometheus") + "/api/v1/alerts")["data"]["alerts"]
        return any(a["labels"].get("alertname") == "EinvoiceCheckFailing" and a["labels"].get("item") == "02"
                   and a["state"] == "firing" for a in alerts)

    try:
        wait_until(alert_in_prometheus, timeout=240, interval=2, what="EinvoiceCheckFailing firing")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{logs()}") from None
    rules = _get(project.url("prometheus") + "/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in rules} >= {"einvoice-items", "einvoice-sla"}

    # ...to Alertmanager, without the Prometheus replica label (alert_relabel_configs)...
    def alert_in_alertmanager() -> list[dict[str, Any]]:
        return [a for a in _get(project.url("alertmanager") + "/api/v2/alerts")
                if a["labels"].get("alertname") == "EinvoiceCheckFailing" and a["labels"].get("item") == "02"]

    wait_until(lambda: bool(alert_in_alertmanager()), timeout=60, interval=1, what="alert in Alertmanager")
    assert all("replica" not in a["labels"] for a in alert_in_alertmanager())

    # Item 02 is a member of the intake service (受理服务): the rules also raise its outage, which
    # Alertmanager's inhibition lets through alone (the check's own alert is explained by it).
    def outage_in_alertmanager() -> list[dict[str, Any]]:
        return [a for a in _get(project.url("alertmanager") + "/api/v2/alerts")
                if a["labels"].get("alertname") == "EinvoiceServiceOutage"
                and a["labels"].get("service") == "intake"]

    wait_until(lambda: bool(outage_in_alertmanager()), timeout=120, interval=1, what="outage in Alertmanager")
    wait_until(lambda: alert_in_alertmanager()[0]["status"]["state"] == "suppressed", timeout=60, interval=1,
               what="the check's alert inhibited by the outage")

    # ...to the notifier's webhook (bearer token from the compose secret): a ticket.
    def outage_tickets() -> list[dict[str, Any]]:
        found = _get(project.url("notifier") + "/api/v1/tickets", token=project.api_token)
        return [t for t in found if t["alertname"] == "EinvoiceServiceOutage"]

    try:
        wait_until(lambda: bool(outage_tickets()), timeout=120, interval=2, what="an outage ticket")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{logs()}") from None
    [ticket] = outage_tickets()
    assert ticket["state"] == "open" and ticket["severity_class"] == "outage"
    assert ticket["labels"]["service"] == "intake" and "replica" not in ticket["labels"]
    assert "02" in ticket["description"]

    # Prometheus remote-writes to VictoriaMetrics; the reports' client reads it back there,
    # with `replica` dropped on ingest (deploy/victoria-metrics/relabel.yml).
    vm = PrometheusClient(project.url("victoria-metrics"), timeout=10)
    vm.ping()

    def in_vm() -> list[Any]:
        return vm.query('einvoice_check_up{check="lb-vip"}', at=time.time())

    wait_until(lambda: bool(in_vm()), timeout=60, interval=1, what="einvoice_check_up in VictoriaMetrics")
    samples = in_vm()
    assert len(samples) == 1 and samples[0].value == 0
    assert "replica" not in samples[0].labels and samples[0].labels["platform"] == "einvoice-gx"
