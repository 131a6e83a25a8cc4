"""The documented scrape configs give every check its own `instance` in a real Prometheus, and the
detail series carry item/zone/check/target so our dashboards' variables select them in this mode
too: the `einvoice-probe` job exactly as commented in deploy/prometheus/prometheus.yml, and the
blackbox-style job exactly as written in docs/deploy.md (section 6.2)."""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from einvoice_exporter.config import load_config
from einvoice_exporter.coverage import file_sd

from tests.redis.conftest import StartRedis
from tests.support.procs import Proc, free_port, require_binary, wait_until

ROOT = Path(__file__).resolve().parents[2]


def documented_probe_job() -> dict[str, Any]:
    text = (ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8")
    block = text.split("# BEGIN einvoice-probe\n", 1)[1].split("  # END einvoice-probe", 1)[0]
    jobs = yaml.safe_load("\n".join(line.removeprefix("  # ") for line in block.splitlines()))
    assert isinstance(jobs, list) and len(jobs) == 1
    job: dict[str, Any] = jobs[0]
    return job


def documented_exporter_drop() -> list[dict[str, Any]]:
    text = (ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8")
    block = text.split("    # metric_relabel_configs:\n", 1)[1].split("\n\n", 1)[0]
    rules = yaml.safe_load("\n".join(line.removeprefix("    #   ") for line in block.splitlines()))
    assert isinstance(rules, list)
    return rules


def documented_blackbox_job() -> dict[str, Any]:
    text = (ROOT / "docs/deploy.md").read_text(encoding="utf-8")
    section = text.split("### 6.2", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    jobs = yaml.safe_load(block.group(1))
    job: dict[str, Any] = jobs[0]
    return job


def query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:
        result: list[dict[str, Any]] = json.load(answer)["data"]["result"]
    return result


def ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_documented_jobs_give_each_check_its_own_instance(start_redis: StartRedis, tmp_path: Path) -> None:
    first, second = start_redis(), start_redis()
    second.client().set("invoice:1", "x")
    config_path = tmp_path / "exporter.yml"
    config_path.write_text(
        "modules:\n"
        "  log_redis: {kind: redis, timeout: 5s, item: '06'}\n"
        "checks:\n"
        f"  - {{name: log-redis-a, item: '06', module: log_redis, target: '{first.address}'}}\n"
        f"  - {{name: session-redis, item: '12', module: log_redis, target: '{second.address}'}}\n",
        encoding="utf-8")
    exporter_port = free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    exporter = Proc([str(exe), "--config", str(config_path), "--web.listen-address",
                     f"127.0.0.1:{exporter_port}", "--log.level", "warn"], tmp_path / "exporter.log")
    exporter_address = f"127.0.0.1:{exporter_port}"
    sd = tmp_path / "einvoice-checks.json"
    sd.write_text(file_sd(load_config(config_path), exporter_address), encoding="utf-8")

    probe_job = documented_probe_job()
    probe_job["file_sd_configs"] = [{"files": [str(sd)]}]
    blackbox_job = documented_blackbox_job()
    blackbox_job["static_configs"] = [{"targets": [first.address]}]
    blackbox_job["relabel_configs"][-1]["replacement"] = exporter_address
    metrics_job = {"job_name": "einvoice-exporter", "static_configs": [{"targets": [exporter_address]}],
                   "metric_relabel_configs": documented_exporter_drop()}
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [metrics_job, probe_job, blackbox_job]}), encoding="utf-8")
    prometheus = Proc([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                      tmp_path / "prometheus.log")
    try:
        exporter.wait_port(exporter_port)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: ready(base), timeout=60, what="prometheus ready")
        wait_until(lambda: len(query(base, "redis_connected_clients")) == 3
                   and len(query(base, 'einvoice_item_info{job="einvoice-exporter"}')) > 0,
                   timeout=60, what="both jobs scraped")

        probe = {s["metric"]["instance"]: s["metric"]
                 for s in query(base, 'redis_connected_clients{job="einvoice-probe"}')}
        assert set(probe) == {first.address, second.address}  # one instance per check
        assert {k: probe[second.address][k] for k in ("item", "zone", "check", "target")} == {
            "item": "12", "zone": "intranet", "check": "session-redis", "target": second.address}
        # Our dashboards' selector (einvoice_core/generate/dashboards.py SEL) finds the detail series.
        sel = 'zone=~"intranet", item=~"12", check=~"session-redis", target=~".*"'
        assert len(query(base, f"redis_db_keys{{{sel}, db=\"db0\"}}")) == 1
        uniform = query(base, 'einvoice_check_up{job="einvoice-probe"}')
        assert {s["metric"]["check"] for s in uniform} == {"log-redis-a", "session-redis"}
        # The /metrics job keeps the exporter's own series but no check's (no double storage).
        assert query(base, '{job="einvoice-exporter", check!=""}') == []
        assert query(base, 'up{job="einvoice-exporter"}')[0]["value"][1] == "1"

        blackbox = query(base, 'redis_connected_clients{job="einvoice-redis"}')
        assert [s["metric"]["instance"] for s in blackbox] == [first.address]
        assert blackbox[0]["metric"]["target"] == first.address

        every = query(base, '{job=~"einvoice-probe|einvoice-redis"}')
        assert not any(name.startswith("exported_") for s in every for name in s["metric"])
    finally:
        prometheus.stop()
        exporter.stop()
