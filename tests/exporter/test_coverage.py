"""Coverage of the 20 items (`--check-config`), items monitored elsewhere, and `--file-sd` scraped by a
real Prometheus through `/probe?check=`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.coverage import Placement, coverage, file_sd, format_coverage
from einvoice_exporter.runtime import Runtime

from tests.exporter.conftest import Served, http_get
from tests.support.procs import Proc, free_port, require_binary, wait_until

CONFIG = """
modules:
  web: {kind: http, timeout: 2s}
  port: {kind: tcp, timeout: 2s}
checks:
  - {name: portal, item: "01", module: web, target: "http://127.0.0.1:1/"}
  - {name: intake-1, item: "05", module: web, target: "http://127.0.0.1:2/health"}
  - {name: intake-2, item: "05", module: port, target: "127.0.0.1:3"}
monitored_elsewhere:
  "15": 容器平台自带监控负责（见运维手册 3.2）
  7: 身份认证由总局统一监控
"""


def test_coverage_counts_checks_by_kind_and_names_what_is_missing() -> None:
    rows = {row.item.id: row for row in coverage(parse_config(CONFIG, "c.yml"))}
    assert rows["05"].checks == 2 and rows["05"].kinds == (("http", 1), ("tcp", 1))
    assert rows["05"].status == "covered" and rows["05"].placement is Placement.ZONE
    assert rows["01"].placement is Placement.OUTSIDE
    assert rows["03"].placement is Placement.HOST and rows["03"].status == "none"
    assert rows["15"].status == "elsewhere"
    assert rows["15"].elsewhere == "容器平台自带监控负责（见运维手册 3.2）"
    assert rows["07"].status == "elsewhere"
    text = format_coverage(list(rows.values()))
    missing = sorted(set(rows) - {"01", "05", "07", "15"})
    assert text.splitlines()[-1] == (f"coverage: 2 of 20 items have checks, 2 monitored elsewhere, "
                                     f"16 without checks ({', '.join(missing)})")


def test_an_item_cannot_have_checks_and_be_monitored_elsewhere() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace('"15":', '"05":'), "c.yml")
    assert "checks[1] (intake-1): item 05 is declared in monitored_elsewhere" in str(caught.value)


def test_monitored_elsewhere_needs_a_real_item_and_a_note() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace('"15":', '"21":'), "c.yml")
    assert "monitored_elsewhere" in str(caught.value) and "21" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace("容器平台自带监控负责（见运维手册 3.2）", "''"), "c.yml")
    assert "monitored_elsewhere.15" in str(caught.value)


def test_check_config_prints_the_coverage(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(CONFIG, encoding="utf-8")
    argv = [sys.executable, "-m", "einvoice_exporter", "--config", str(path), "--check-config"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "config OK: 2 modules, 3 checks"
    assert any(line.startswith("05    covered         2  http×1, tcp×1") for line in lines)
    assert any("monitored elsewhere: 身份认证由总局统一监控" in line for line in lines)
    assert lines[-1].startswith("coverage: 2 of 20 items have checks, 2 monitored elsewhere")


def test_metrics_mark_the_items_monitored_elsewhere(serve: Callable[..., Served]) -> None:
    served = serve(Runtime(parse_config(CONFIG, "c.yml")))
    status, body, _ = http_get(served.url + "/metrics")
    assert status == 200
    marked = sorted(line for line in body.splitlines()
                    if line.startswith("einvoice_item_monitored_elsewhere{"))
    assert marked == ['einvoice_item_monitored_elsewhere{item="07"} 1.0',
                      'einvoice_item_monitored_elsewhere{item="15"} 1.0']


def test_probe_by_check_name_labels_the_series_with_the_check(serve: Callable[..., Served]) -> None:
    served = serve(Runtime(parse_config(CONFIG, "c.yml")))
    status, body, _ = http_get(served.url + "/probe?check=intake-2")
    assert status == 200
    assert ('einvoice_check_up{item="05",zone="extranet",check="intake-2",target="127.0.0.1:3",'
            'system="public_service"} 0.0' in body)
    assert "probe_success 0.0" in body
    assert http_get(served.url + "/probe?check=nope")[0] == 400
    status, body, _ = http_get(served.url + "/probe?check=intake-2&module=web")
    assert status == 400 and "do not combine" in body


def _query(base: str, expr: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:
        result: list[dict[str, object]] = json.load(answer)["data"]["result"]
    return result


def test_file_sd_gives_every_check_its_own_instance_in_a_real_prometheus(
        serve: Callable[..., Served], tmp_path: Path) -> None:
    config = parse_config(CONFIG, "c.yml")
    served = serve(Runtime(config))
    address = served.url.removeprefix("http://")
    groups = json.loads(file_sd(config, address))
    assert [group["labels"]["__param_check"] for group in groups] == ["portal", "intake-1", "intake-2"]
    (tmp_path / "checks.json").write_text(json.dumps(groups), encoding="utf-8")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "einvoice-probe", "metrics_path": "/probe",
                            "file_sd_configs": [{"files": [str(tmp_path / "checks.json")]}]}],
    }), encoding="utf-8")
    proc = Proc([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                tmp_path / "prometheus.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(base), timeout=60, what="prometheus ready")
        wait_until(lambda: len(_query(base, 'einvoice_check_up{job="einvoice-probe"}')) == 3, timeout=60,
                   what="three checks scraped")
        series = {(s["metric"]["check"], s["metric"]["instance"], s["metric"]["target"])  # type: ignore[index]
                  for s in _query(base, 'einvoice_check_up{job="einvoice-probe"}')}
        assert series == {("portal", "http://127.0.0.1:1/", "http://127.0.0.1:1/"),
                          ("intake-1", "http://127.0.0.1:2/health", "http://127.0.0.1:2/health"),
                          ("intake-2", "127.0.0.1:3", "127.0.0.1:3")}
        # No label of the exposition was shadowed (Prometheus would have renamed it exported_*).
        assert not any(name.startswith("exported_")
                       for s in _query(base, '{job="einvoice-probe"}') for name in s["metric"])  # type: ignore[attr-defined]
    finally:
        proc.stop()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
