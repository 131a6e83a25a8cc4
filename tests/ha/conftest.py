"""A highly available monitoring core on loopback, from Debian's packages, on free ports:

    target (a tiny exporter whose check the test turns down and up)
      |  scraped every second by
    Prometheus a, Prometheus b   (deploy/prometheus/prometheus.yml: PROMETHEUS_REPLICA=a|b, the
      |        \\                 committed alert_relabel_configs and remote_write, rules from
      |         \\                alert_rules/ with their intervals and `for:` shortened to seconds)
      |          remote write -> VictoriaMetrics (deploy/victoria-metrics/relabel.yml drops `replica`,
      |                          -dedup.minScrapeInterval=1s)
      |                       -> VictoriaMetrics "raw" (no relabelling, no dedup: the control that shows
      |                          what the pair would count without them)
    alerts to both of Alertmanager 1, Alertmanager 2 (one cluster: --cluster.* on loopback, the
      committed alert_rules/alertmanager.yml with its receivers pointed at a recording webhook)
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import Proc, free_port, require_binary, wait_until

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = ("einvoice-items.rules.yml", "einvoice-sla.rules.yml", "einvoice-monitoring.rules.yml")
PEER_TIMEOUT = "2s"


class Target:
    """The exposition of an exporter with one check of item 10 (处理服务); `up` is the check's state.
    `serving=False` closes the port, as a lost link between zones does (Prometheus: up == 0)."""

    def __init__(self) -> None:
        self.up = True
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None
        self._serve()

    def _serve(self) -> None:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                value = 1 if target.up else 0
                body = (
                    "# TYPE einvoice_check_up gauge\n"
                    f'einvoice_check_up{{item="10",zone="intranet",check="proc-health",'
                    f'target="http://10.9.0.10:8080/actuator/health"}} {value}\n'
                    "# TYPE einvoice_item_info gauge\n"
                    'einvoice_item_info{item="10",name="内网处理服务运行健康检查",zone="intranet"} 1\n'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def serving(self) -> bool:
        return self.server is not None

    def set_serving(self, serving: bool) -> None:
        if serving and self.server is None:
            self._serve()
        elif not serving and self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@dataclass
class Recorder:
    """Alertmanager's webhook receiver: every notification, as sent (payload version 4)."""

    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    def start(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                body["_path"] = self.path
                recorder.received.append(body)
                recorder.authorizations.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def shortened_rules(directory: Path) -> list[Path]:
    """The committed rule files with every group interval 1s and every `for:` 2s (test pace)."""
    out = []
    for name in RULE_FILES:
        doc = yaml.safe_load((REPO / "alert_rules" / name).read_text(encoding="utf-8"))
        for group in doc["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "2s"
        path = directory / name
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        out.append(path)
    return out


def shortened_routes(route: dict[str, Any]) -> None:
    for key, value in (("group_wait", "1s"), ("group_interval", "3s"), ("repeat_interval", "1h")):
        route[key] = value
    for child in route.get("routes", []):
        shortened_routes(child)


@dataclass
class Core:
    directory: Path
    target: Target
    recorder: Recorder
    vm: str
    vm_raw: str
    prometheus: dict[str, str]
    alertmanagers: list[str]
    procs: dict[str, Proc]

    def prom_query(self, base: str, expr: str, at: float) -> list[dict[str, Any]]:
        params = {"query": expr, "time": f"{at:.3f}"}
        body = requests.get(f"{base}/api/v1/query", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def remote_write_sent(self, replica: str) -> dict[str, float]:
        """Per remote-write URL, the newest sample timestamp Prometheus `replica` has sent."""
        text = requests.get(f"{self.prometheus[replica]}/metrics", timeout=10).text
        sent: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "prometheus_remote_storage_queue_highest_sent_timestamp_seconds":
                    sent[sample.labels["url"]] = sample.value
        return sent


def _prometheus_config(core_dir: Path, target: Target, rules: list[Path], vm: str, vm_raw: str,
                       alertmanagers: list[str]) -> Path:
    """deploy/prometheus/prometheus.yml, kept but for its addresses and the test's pace."""
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    assert prom["global"]["external_labels"]["replica"] == "${PROMETHEUS_REPLICA}"
    prom["global"].update({"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"})
    prom["rule_files"] = [str(p) for p in rules]
    [am] = prom["alerting"]["alertmanagers"]
    am["static_configs"] = [{"targets": [url.removeprefix("http://") for url in alertmanagers]}]
    [write] = prom["remote_write"]
    write["url"] = f"{vm}/api/v1/write"
    write["queue_config"]["batch_send_deadline"] = "500ms"
    prom["remote_write"] = [write, {**write, "url": f"{vm_raw}/api/v1/write"}]
    prom["scrape_configs"] = [{"job_name": "einvoice-exporter",
                               "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}]}]
    path = core_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(prom, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _alertmanager_config(core_dir: Path, recorder: Recorder) -> Path:
    am = yaml.safe_load((REPO / "alert_rules/alertmanager.yml").read_text(encoding="utf-8"))
    token = core_dir / "notifier_webhook_token"
    token.write_text("ha-test-token\n")
    for receiver in am["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = re.sub(r"^http://notifier:9878", f"http://127.0.0.1:{recorder.port}", hook["url"])
            hook["http_config"]["authorization"]["credentials_file"] = str(token)
    shortened_routes(am["route"])
    path = core_dir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(am, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager", "alertmanager")
    vm_bin = require_binary("victoria-metrics")
    directory = tmp_path_factory.mktemp("ha")
    procs: dict[str, Proc] = {}
    target = Target()
    recorder = Recorder().start()
    try:
        vm_port, vm_raw_port = free_port(), free_port()
        for name, port, extra in (
            ("vm", vm_port, ["-dedup.minScrapeInterval=1s",
                             f"-relabelConfig={REPO / 'deploy/victoria-metrics/relabel.yml'}"]),
            ("vm-raw", vm_raw_port, []),
        ):
            procs[name] = Proc([vm_bin, f"-storageDataPath={directory / name}",
                                f"-httpListenAddr=127.0.0.1:{port}", "-search.latencyOffset=0s",
                                "-retentionPeriod=2y", *extra], directory / f"{name}.log").wait_port(port)
        vm, vm_raw = f"http://127.0.0.1:{vm_port}", f"http://127.0.0.1:{vm_raw_port}"

        am_ports = [(free_port(), free_port()) for _ in range(2)]
        am_config = _alertmanager_config(directory, recorder)
        for index, (web, gossip) in enumerate(am_ports, start=1):
            peers = [f"--cluster.peer=127.0.0.1:{g}" for w, g in am_ports if g != gossip]
            procs[f"am{index}"] = Proc([
                alertmanager_bin, f"--config.file={am_config}", f"--storage.path={directory / f'am{index}'}",
                f"--web.listen-address=127.0.0.1:{web}", f"--web.external-url=http://127.0.0.1:{web}",
                f"--cluster.listen-address=127.0.0.1:{gossip}",
                f"--cluster.advertise-address=127.0.0.1:{gossip}",
                *peers, f"--cluster.peer-timeout={PEER_TIMEOUT}", "--cluster.gossip-interval=100ms",
                "--cluster.pushpull-interval=2s", "--cluster.settle-timeout=5s",
            ], directory / f"am{index}.log").wait_port(web)
        alertmanagers = [f"http://127.0.0.1:{web}" for web, _ in am_ports]

        rules = shortened_rules(directory)
        prom_config = _prometheus_config(directory, target, rules, vm, vm_raw, alertmanagers)
        prometheus = {}
        for replica in ("a", "b"):
            port = free_port()
            procs[f"prometheus-{replica}"] = Proc([
                prometheus_bin, f"--config.file={prom_config}", f"--storage.tsdb.path={directory / replica}",
                f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=expand-external-labels",
            ], directory / f"prometheus-{replica}.log",
                env={"PATH": "/usr/bin:/bin", "PROMETHEUS_REPLICA": replica}).wait_port(port)
            prometheus[replica] = f"http://127.0.0.1:{port}"
        for url in [*prometheus.values(), *alertmanagers]:
            wait_until(functools.partial(_ready, url), timeout=60, interval=0.2, what=f"{url}/-/ready")
        yield Core(directory, target, recorder, vm, vm_raw, prometheus, alertmanagers, procs)
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()
        target.set_serving(False)
        recorder.stop()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_for_vm(core: Core, at: float, timeout: float = 60) -> None:
    """Until both Prometheus have sent every sample up to `at` to both VictoriaMetrics."""
    def sent() -> bool:
        return all(len(s) == 2 and min(s.values()) >= at for s in
                   (core.remote_write_sent(replica) for replica in core.prometheus))

    wait_until(sent, timeout=timeout, interval=0.5, what="remote write caught up")


def now() -> float:
    return time.time()
