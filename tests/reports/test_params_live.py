"""The parameter report's contract with the exporter, on real parts: the exporter's params check on a
config file, scraped every second by a real Prometheus; an edit of the file becomes a drift in
Prometheus and a dated change (old → new) in the report built from Prometheus' API, so the series
names and labels one side writes are the ones the other side reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from einvoice_exporter.config import parse_config
from einvoice_exporter.runtime import Runtime
from einvoice_exporter.server import App, make_server
from einvoice_exporter.webconfig import WebConfig
from einvoice_reports.params import build_params, step_for
from einvoice_reports.period import REPORT_TZ, parse_period
from einvoice_reports.prom import PrometheusClient

from tests.support.procs import Proc, free_port, require_binary, wait_until


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_processes auto;\nevents { worker_connections 1024; }\n", encoding="utf-8")
    baseline = tmp_path / "baseline.yml"
    baseline.write_text("n: {worker_processes: auto, worker_connections: 1024}\n", encoding="utf-8")
    module = f"{{kind: params, params: {{source: file, format: nginx, section: n, baseline: {baseline}}}}}"
    config = parse_config(
        f"modules:\n  n: {module}\n"
        f"checks:\n  - {{name: nginx-conf, item: '04', module: n, target: {conf}}}\n", "x.yml")
    runtime = Runtime(config)
    port = free_port()
    server = make_server(("127.0.0.1", port), App(runtime, WebConfig()))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: einvoice\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    proc = Proc([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                tmp_path / "prometheus.log")
    try:
        proc.wait_port(prom_port, timeout=60)
        # The HTTP port opens before the TSDB is loaded; until then every API call answers 503.
        wait_until(lambda: requests.get(f"http://127.0.0.1:{prom_port}/-/ready", timeout=2).ok,
                   timeout=60, what="prometheus ready")
        yield f"http://127.0.0.1:{prom_port}", conf
    finally:
        proc.stop()
        server.shutdown()
        runtime.close()


def _value_now(url: str) -> str | None:
    body = requests.get(f"{url}/api/v1/query", timeout=5, params={
        "query": 'einvoice_param_info{param="worker_processes"}'}).json()
    found = sorted(body["data"]["result"], key=lambda r: float(r["value"][0]))
    return found[-1]["metric"]["value"] if found else None


def _drift(url: str) -> float | None:
    body = requests.get(f"{url}/api/v1/query", timeout=5, params={
        "query": 'einvoice_param_drift{param="worker_processes"}'}).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_an_edit_of_the_file_is_a_dated_change_in_the_report(live: tuple[str, Path]) -> None:
    url, conf = live
    wait_until(lambda: _drift(url) == 0, timeout=60, what="the drift series scraped")
    today = parse_period(datetime.now(REPORT_TZ).date().isoformat())
    step = step_for(today)
    # the report samples at steps from local midnight: let one step see the first value
    first_seen = time.time()
    boundary = (first_seen // step + 1) * step
    wait_until(lambda: time.time() > boundary + 2, timeout=step + 10,
               what="a report step with the first value")
    before = time.time()
    conf.write_text("worker_processes 4;\nevents { worker_connections 1024; }\n", encoding="utf-8")
    wait_until(lambda: _drift(url) == 1, timeout=60, what="the drift in Prometheus")
    assert _value_now(url) == "4"
    seen = time.time()
    wait_until(lambda: time.time() > (seen // step + 1) * step + 2, timeout=step + 10,
               what="a report step with the new value")
    report = build_params(today, PrometheusClient(url), datetime.now(UTC))
    (change,) = report.changes
    assert change.key[1:] == ("nginx-conf", str(conf), "worker_processes")
    assert (change.old_value, change.new_value, change.new_expected) == ("auto", "4", "auto")
    assert change.kind_zh == "参数变更" and not change.matches_after
    # dated to the first step showing the new value: after the edit, within a step of seeing it
    assert before - 1 <= change.at.timestamp() <= seen + step
    row = next(r for r in report.rows if r.param == "worker_processes")
    assert row.drift_now and row.value == "4" and row.expected == "auto"
    assert step <= row.drift_seconds <= time.time() - before + step  # counted up to now, not to midnight
    assert report.until is not None
    assert next(r for r in report.rows if r.param == "worker_connections").drift_now is False
