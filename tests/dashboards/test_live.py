"""Every panel query against a real Prometheus (Debian 2.42): it parses, and on the demo stack it
returns data.

`promtool` 2.42 has no command that only parses a query, so the queries go to Prometheus' HTTP API:
an invalid one is answered 400 `bad_data`. The "returns data" test runs the bundle's chain as the
demo does (`einvoice_stack`: exporter on config/demo/exporter.yml, the notifier, Alertmanager with
the shipped routing, Prometheus with the generated rules) on free ports, with the demo target held
down so that alerts fire and a ticket opens. Intervals are shortened through configuration only:
the rule files are copied with every group's `interval` and every alert's `for:` shortened.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboards import inventory as inv
from tests.support.procs import Proc, free_port, require_binary, wait_until

pytestmark = pytest.mark.xdist_group("dashboards")

ALLOWED_EMPTY_IN_DEMO: dict[str, str] = {
    # uid/panel title: why the demo stack cannot fill it
}
"""Panels whose queries may return nothing on the demo stack, each with the reason. Kept small:
everything the demo produces must be on screen."""


def _api_query(base: str, expr: str) -> tuple[int, dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": inv.substitute(expr)})
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _short_rules(target: Path, interval: str, max_for: str) -> Path:
    """The bundle's rule files with shorter evaluation intervals and `for:` (configuration only)."""
    target.mkdir(parents=True, exist_ok=True)
    files = inv.rule_files()
    if not files:
        pytest.skip("no generated alert_rules/*.rules.yml yet")
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            group["interval"] = interval
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = max_for
        (target / path.name).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return target


@pytest.fixture(scope="module")
def bare_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus with the bundle's rules and no targets: enough to parse every query."""
    binary = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("prom-bare")
    port = free_port()
    rule_files = [str(path) for path in inv.rule_files()]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(
        {"global": {"evaluation_interval": "5s"}, "rule_files": rule_files}))
    proc = Proc([binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"], tmp / "prometheus.log")
    try:
        proc.wait_port(port)
        wait_until(lambda: _ready(port), timeout=30, what="prometheus ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def test_every_panel_query_parses(bare_prometheus: str) -> None:
    status, body = _api_query(bare_prometheus, "sum(rate(up[5m]) by (job")
    assert status == 400 and body["errorType"] == "bad_data"  # the check can fail
    all_queries = inv.queries(inv.load_dashboards())
    assert len(all_queries) > 100
    bad = {}
    for query in all_queries:
        status, body = _api_query(bare_prometheus, query.expr)
        if status != 200 or body.get("status") != "success":
            bad[query.key] = body.get("error", status)
    assert not bad, f"queries Prometheus rejects: {bad}"


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    demo = inv.REPO / "config" / "demo" / "exporter.yml"
    if not demo.exists():
        pytest.skip("config/demo/exporter.yml has not landed yet")
    from einvoice_stack.stack import Stack, StackConfig

    tmp = tmp_path_factory.mktemp("demo-stack")
    config = StackConfig(
        run_dir=tmp / "run", prometheus_port=free_port(), alertmanager_port=free_port(),
        exporter_port=free_port(), notifier_port=free_port(), demo_target_port=free_port(),
        scrape_interval="1s", evaluation_interval="1s",
        rules_dir=_short_rules(tmp / "rules", interval="2s", max_for="2s"),
        alertmanager_timing={"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
        python_bin=inv.REPO / ".venv" / "bin")
    stack = Stack(config)
    try:
        stack.start(demo_schedule=[(False, 3600.0)])
        yield stack
    finally:
        stack.stop()


def _panel_titles(boards: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {f"{board['uid']}/{panel['title']}": panel["title"] for board in boards.values()
            for panel in inv.panels(board) if panel.get("targets")}


def test_allowed_empty_list_is_small_and_names_real_panels() -> None:
    titles = _panel_titles(inv.load_dashboards())
    assert set(ALLOWED_EMPTY_IN_DEMO) <= set(titles)
    assert len(ALLOWED_EMPTY_IN_DEMO) <= len(titles) // 3
    assert all(reason.strip() for reason in ALLOWED_EMPTY_IN_DEMO.values())


def test_every_panel_returns_data_on_the_demo_stack(demo_stack: Any) -> None:
    base = demo_stack.config.url(demo_stack.config.prometheus_port)
    boards = inv.load_dashboards()
    by_panel: dict[str, list[inv.Query]] = {}
    for query in inv.queries(boards):
        if query.ref != "var":
            by_panel.setdefault(f"{query.dashboard}/{query.panel}", []).append(query)
    variables = [query for query in inv.queries(boards) if query.ref == "var"]
    expected = {key for key in by_panel if key not in ALLOWED_EMPTY_IN_DEMO}
    filled: set[str] = set()
    errors: dict[str, str] = {}

    def poll() -> bool:
        for key in sorted(expected - filled):
            for query in by_panel[key]:
                status, body = _api_query(base, query.expr)
                if status != 200:
                    errors[query.key] = body.get("error", str(status))
                elif body["data"]["result"]:
                    filled.add(key)
                    break
        return filled == expected or bool(errors)

    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        wait_until(poll, timeout=150, interval=2.0, what="every panel showing data")
    assert not errors, errors
    empty = sorted(expected - filled)
    assert not empty, (f"panels without data after {time.monotonic() - started:.0f}s: {empty}\n"
                       + demo_stack.log_tail("exporter", 1500))
    for query in variables:
        status, body = _api_query(base, query.expr)
        assert status == 200, query.key
        unconfigured = query.dashboard in {"einvoice-elasticsearch", "einvoice-kafka"}
        assert body["data"]["result"] or unconfigured, f"variable {query.key} offers no values"
