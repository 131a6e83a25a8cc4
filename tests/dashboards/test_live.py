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
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboards import inventory as inv
from tests.support.certs import TestCA
from tests.support.procs import Proc, free_port, require_binary, wait_until
from tests.support.stack import fast_stack_config

pytestmark = pytest.mark.xdist_group("dashboards")

_NO_ES = "the demo has no Elasticsearch (the collector is tested against recorded answers in tests/es/)"
_NO_KAFKA = "the demo has no Kafka broker (the collector is tested against tansu in tests/kafka/)"
_NO_CLUSTER = "the demo runs a standalone Redis, not a Redis Cluster (tests/redis/ builds one)"
_NO_APPS = ("the demo runs no Docker engine, WebLogic domain or Nacos/Eureka "
            "(tests/docker/, tests/weblogic/, tests/jsonvalues/ test their collectors)")
_NO_NGINX = "the demo runs no nginx (tests/nginx runs a real one)"
_NO_NODE = ("the demo runs no node_exporter (tests/rules/test_hosts_node_exporter.py scrapes a real one "
            "with the generated host rules)")
ALLOWED_EMPTY_IN_DEMO: dict[str, str] = {
    "einvoice-elasticsearch/集群健康": _NO_ES,
    "einvoice-elasticsearch/节点": _NO_ES,
    "einvoice-elasticsearch/待处理任务": _NO_ES,
    "einvoice-elasticsearch/分片": _NO_ES,
    "einvoice-elasticsearch/JVM 堆内存使用率": _NO_ES,
    "einvoice-elasticsearch/磁盘使用率": _NO_ES,
    "einvoice-elasticsearch/熔断器触发": _NO_ES,
    "einvoice-kafka/消费积压（条）": _NO_KAFKA,
    "einvoice-kafka/消费积压（秒）": _NO_KAFKA,
    "einvoice-kafka/消费速率": _NO_KAFKA,
    "einvoice-kafka/生产速率": _NO_KAFKA,
    "einvoice-kafka/消费组成员": _NO_KAFKA,
    "einvoice-kafka/消费停滞": _NO_KAFKA,
    "einvoice-kafka/消费组状态": _NO_KAFKA,
    "einvoice-kafka/分区积压时长": _NO_KAFKA,
    "einvoice-kafka/分区积压": _NO_KAFKA,
    "einvoice-pipeline/Kafka 消费积压（条）": _NO_KAFKA,
    "einvoice-pipeline/Kafka 消费积压（秒）": _NO_KAFKA,
    "einvoice-pipeline/失败原因": "no pipeline check fails in the demo, and the panel lists failures only",
    "einvoice-redis/集群状态": _NO_CLUSTER,
    "einvoice-redis/槽位": _NO_CLUSTER,
    "einvoice-redis/节点与分片": _NO_CLUSTER,
    "einvoice-redis/异常节点": _NO_CLUSTER,
    "einvoice-hosts/失败原因": "the demo's host-log check does not fail; the panel lists failures only",
    "einvoice-hosts/nginx 状态": _NO_NGINX,
    "einvoice-hosts/nginx 配置检查": _NO_NGINX,
    "einvoice-hosts/请求速率与活动连接": _NO_NGINX,
    "einvoice-hosts/应答状态（按状态码类别）": _NO_NGINX,
    "einvoice-hosts/5xx 比例": _NO_NGINX,
    "einvoice-hosts/请求耗时 95 分位": _NO_NGINX,
    "einvoice-hosts/上游错误（错误日志）": _NO_NGINX,
    **{f"einvoice-hosts/{title}": _NO_NODE for title in (
        "文件系统可用空间", "预计写满时间", "磁盘空间与 inode 可用比例", "可用内存与交换分区",
        "每核负载（15 分钟）", "时钟偏差（秒）")},
    **{f"einvoice-apps/{title}": _NO_APPS for title in (
        "容器状态", "容器重启次数（10 分钟）", "期望容器", "容器异常", "服务器状态", "卡住与占用线程",
        "线程池队列", "数据源连接", "健康实例")},
}
"""Panels whose queries may return nothing on the demo stack, each with the reason. Kept small:
everything the demo produces must be on screen."""
EMPTY_VARIABLES_IN_DEMO = {"einvoice-elasticsearch": _NO_ES, "einvoice-kafka": _NO_KAFKA,
                           "einvoice-apps": _NO_APPS, "einvoice-hosts/$host": _NO_NODE}
"""Dashboards (or one dashboard's variable, `uid/$name`) whose template variables may offer no value on
the demo stack."""


def _api_query(base: str, expr: str) -> tuple[int, dict[str, Any]]:
    """Prometheus' answer to an instant query (variables already substituted)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
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
        status, body = _api_query(bare_prometheus, query.resolved)
        if status != 200 or body.get("status") != "success":
            bad[query.key] = body.get("error", status)
    assert not bad, f"queries Prometheus rejects: {bad}"


class _TlsTarget:
    """An HTTPS endpoint with a certificate from the test CA: the certificate panels need one."""

    def __init__(self, directory: Path) -> None:
        ca = TestCA(directory)
        files = ca.issue("tls-target", days_valid=60)
        self.ca_file = ca.cert_path
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.cert, files.key)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"status":"UP"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _demo_config_plus(path: Path, redis_port: int, tls: _TlsTarget) -> Path:
    """config/demo/exporter.yml plus what the detail dashboards show: a real Redis (item 06), an
    HTTPS probe with a certificate (item 01), a data-sync interface probe (item 19). The SQL and
    GoldenGate checks of items 14, 16-19 are the demo's own (einvoice_stack/demo_data.py)."""
    config = yaml.safe_load((inv.REPO / "config/demo/exporter.yml").read_text(encoding="utf-8"))
    config["modules"]["dash_redis"] = {"kind": "redis", "timeout": "2s"}
    config["modules"]["dash_https"] = {"kind": "http", "timeout": "2s",
                                       "http": {"tls_config": {"ca_file": str(tls.ca_file)}}}
    config["checks"] += [
        {"name": "dash-log-redis", "item": "06", "module": "dash_redis", "target": f"127.0.0.1:{redis_port}"},
        {"name": "dash-portal-https", "item": "01", "module": "dash_https",
         "target": f"https://127.0.0.1:{tls.port}/"},
        {"name": "dash-sync-interface", "item": "19", "module": "exporter_health",
         "target": "http://127.0.0.1:9877/-/healthy"},
    ]
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def _about_demo_target(ticket: dict[str, Any]) -> bool:
    """The demo target is item 10's check; while it is down the processing service is in outage
    (and that outage inhibits the item's own alert)."""
    return ticket["item"] == "10" or ticket["labels"].get("service") == "processing"


@dataclass
class Demo:
    stack: Any
    api_token: str
    acted: list[str] = field(default_factory=list)

    @property
    def prometheus(self) -> str:
        return self.stack.config.url(self.stack.config.prometheus_port)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.stack.config.url(self.stack.config.notifier_port) + path
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, method=method, data=data,
                                         headers={"Authorization": f"Bearer {self.api_token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    def work_tickets(self) -> None:
        """What on-call does, so the MTTA/MTTR and resolution-ratio panels have data: acknowledge
        the open tickets, bring the demo target back (its alert resolves), close what resolved."""
        if "closed" in self.acted:
            return
        tickets = self.api("GET", "/api/v1/tickets")
        if "acknowledged" not in self.acted:
            for ticket in tickets:
                if ticket["state"] == "open":
                    self.api("POST", f"/api/v1/tickets/{ticket['id']}/acknowledge")
            if any(_about_demo_target(ticket) for ticket in tickets):
                self.acted.append("acknowledged")
                self.stack.demo_target.set_up(True)
            return
        resolved = [ticket for ticket in tickets if ticket["state"] == "resolved"]
        for ticket in resolved:
            self.api("POST", f"/api/v1/tickets/{ticket['id']}/close",
                     {"cause": "演示目标按计划停止", "solution": "演示目标已恢复", "resolved_locally": True})
        if resolved:
            self.acted.append("closed")


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    redis_server = require_binary("redis-server")
    from einvoice_stack.stack import Stack

    tmp = tmp_path_factory.mktemp("demo-stack")
    redis_port = free_port()
    redis = Proc([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(tmp), "--maxmemory", "64mb"], tmp / "redis.log")
    tls = _TlsTarget(tmp / "certs")
    token = secrets.token_urlsafe(24)
    config = fast_stack_config(
        tmp, exporter_config=_demo_config_plus(tmp / "exporter.yml", redis_port, tls),
        notifier_overrides={"api_tokens": [{"name": "dashboards-test", "token": token, "role": "operator"}],
                            "scheduler_interval": "1s"})
    stack = Stack(config)
    try:
        redis.wait_port(redis_port)
        stack.start(demo_schedule=[(False, 3600.0)])
        yield Demo(stack, token)
    finally:
        stack.stop()
        tls.stop()
        redis.stop()


def _panel_titles(boards: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {f"{board['uid']}/{panel['title']}": panel["title"] for board in boards.values()
            for panel in inv.panels(board) if panel.get("targets")}


def test_allowed_empty_list_is_small_and_names_real_panels() -> None:
    titles = _panel_titles(inv.load_dashboards())
    assert set(ALLOWED_EMPTY_IN_DEMO) <= set(titles)
    assert len(ALLOWED_EMPTY_IN_DEMO) <= len(titles) // 3
    assert all(reason.strip() for reason in ALLOWED_EMPTY_IN_DEMO.values())


def test_every_panel_returns_data_on_the_demo_stack(demo_stack: Demo) -> None:
    base = demo_stack.prometheus
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
        demo_stack.work_tickets()
        for key in sorted(expected - filled):
            for query in by_panel[key]:
                status, body = _api_query(base, query.resolved)
                if status != 200:
                    errors[query.key] = body.get("error", str(status))
                elif body["data"]["result"]:
                    filled.add(key)
                    break
        return filled == expected or bool(errors)

    # The demo target is down from the start here, so its OOM line can reach the log before
    # Prometheus' first scrape, and increase() never sees a counter that starts above 0. Once the log
    # counters are in Prometheus, the host logs another kill, as a real host would.
    wait_until(lambda: bool(_api_query(base, 'einvoice_log_matches_total{class="oom"}')[1]
                            .get("data", {}).get("result")), timeout=120, what="the log counters scraped")
    syslog = demo_stack.stack.run_dir / "logs" / "demo-syslog"
    with syslog.open("a", encoding="utf-8") as handle:
        handle.write("Dec  6 10:00:00 demo kernel: Out of memory: Killed process 4343 (java) "
                     "total-vm:8388608kB\n")

    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        wait_until(poll, timeout=240, interval=2.0, what="every panel showing data")
    assert not errors, errors
    empty = sorted(expected - filled)
    assert not empty, (f"panels without data after {time.monotonic() - started:.0f}s "
                       f"(ticket actions: {demo_stack.acted}): {empty}")
    allowed_but_filled = sorted(
        key for key in ALLOWED_EMPTY_IN_DEMO
        if any(_api_query(base, query.resolved)[1]["data"]["result"] for query in by_panel[key]))
    assert not allowed_but_filled, f"remove from ALLOWED_EMPTY_IN_DEMO, they show data: {allowed_but_filled}"
    for query in variables:
        status, body = _api_query(base, query.resolved)
        assert status == 200, query.key
        assert (body["data"]["result"] or query.dashboard in EMPTY_VARIABLES_IN_DEMO
                or f"{query.dashboard}/{query.panel}" in EMPTY_VARIABLES_IN_DEMO), (
            f"variable {query.key} offers no values")
