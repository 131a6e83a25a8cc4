"""Alertmanager routing: amtool on the shipped file, and a real Alertmanager (Debian's
prometheus-alertmanager) posting to a local webhook receiver, with the on-site-hours and
important-period intervals built around the current clock (Alertmanager is a Go program and
ignores faketime, so the calendar moves instead of the clock)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from einvoice_core.generate import rules
from einvoice_core.thresholds import ImportantPeriod, ImportantPeriods, OnsiteWindow, load_thresholds
from tests.support.procs import Proc, free_port, require_binary, wait_until

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "alert_rules" / "alertmanager.yml"
TOKEN = "test-webhook-token-5b1f"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("amtool")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_amtool_check_config_is_clean() -> None:
    result = _amtool("check-config", str(SHIPPED))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "8 receivers" in result.stdout


# amtool routes by labels only (time intervals are applied when a group is flushed), so every
# label set also lists the important-period route; the real-Alertmanager tests below show which of
# them is active at a given moment.
ROUTES = [
    ({"alertname": "EinvoiceCheckFailing", "severity": "critical", "zone": "intranet", "item": "11"},
     "onsite-critical-intranet,important-period,second-line"),
    ({"alertname": "EinvoiceCheckFailing", "severity": "critical", "zone": "extranet", "item": "05"},
     "onsite-critical-extranet,important-period,second-line"),
    ({"alertname": "EinvoiceCertificateExpiring", "severity": "critical", "zone": "internet", "item": "01"},
     "onsite-critical-internet,important-period,second-line"),
    ({"alertname": "EinvoiceExporterDown", "severity": "critical", "job": "einvoice-exporter"},
     "onsite-critical-platform,important-period,second-line"),
    ({"alertname": "EinvoiceServiceOutage", "severity": "critical", "service": "intake"},
     "onsite-sla,important-period,second-line"),
    ({"alertname": "EinvoiceServiceStallRestoreBreached", "severity": "critical", "service": "pipeline",
      "severity_class": "stall", "sla_event": "restore_breached"},
     "onsite-sla,important-period,second-line"),
    ({"alertname": "EinvoiceAppRestartUnplanned", "severity": "warning", "job": "einvoice-apps",
      "instance": "intake-app-1:8080"},
     "onsite-warning,important-period"),
    ({"alertname": "EinvoiceOutageBudgetLow", "severity": "warning", "service": "processing"},
     "onsite-sla,important-period"),
    ({"alertname": "EinvoiceCheckFailing", "severity": "warning", "zone": "intranet", "item": "14"},
     "onsite-warning,important-period"),
    ({"alertname": "SomethingUnlabelled"}, "onsite-warning,important-period"),
]


@pytest.mark.parametrize(("labels", "receivers"), ROUTES,
                         ids=[f"{r[0]['alertname']}->{r[1]}" for r in ROUTES])
def test_amtool_routes(labels: dict[str, str], receivers: str) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    result = _amtool("config", "routes", "test", f"--config.file={SHIPPED}",
                     f"--verify.receivers={receivers}", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


# ------------------------------------------------------------------------------------------------
# A real Alertmanager


@dataclass
class Received:
    receiver: str
    path: str
    alertnames: list[str]
    authorization: str


@dataclass
class WebhookSink:
    """Stands in for the notifier: records every webhook Alertmanager posts."""

    port: int
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receivers(self) -> set[str]:
        with self.lock:
            return {r.receiver for r in self.received}

    def by_receiver(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.receiver == name]


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    port = free_port()
    state = WebhookSink(port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.received.append(Received(
                    receiver=body["receiver"], path=self.path,
                    alertnames=sorted(a["labels"]["alertname"] for a in body["alerts"]),
                    authorization=self.headers.get("Authorization", "")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class Alertmanager:
    def __init__(self, tmp: Path, sink: WebhookSink, *, onsite: list[OnsiteWindow],
                 periods: ImportantPeriods) -> None:
        binary = require_binary("prometheus-alertmanager", "alertmanager")
        th = load_thresholds()
        token = tmp / "token"
        token.write_text(TOKEN + "\n", encoding="utf-8")
        routing = th.routing.model_copy(update={"onsite_hours": tuple(onsite), "group_wait": "1s",
                                                "group_interval": "1s"})
        target = rules.AlertmanagerTarget(
            notifier_url=f"http://127.0.0.1:{sink.port}/api/v1/webhook/alertmanager",
            credentials_file=str(token))
        config = tmp / "alertmanager.yml"
        config.write_text(rules.alertmanager_yaml(th, periods, target=target, routing=routing),
                          encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc([binary, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
                          f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                          "--log.level=debug"], log=tmp / "alertmanager.log")
        self.proc.wait_port(self.port)
        wait_until(lambda: requests.get(f"{self.url}/-/ready", timeout=1).ok, what="alertmanager ready")

    def post(self, *alerts: dict[str, str]) -> None:
        body = [{"labels": labels, "annotations": {"summary": "测试"}} for labels in alerts]
        requests.post(f"{self.url}/api/v2/alerts", json=body, timeout=5).raise_for_status()

    def muted_flushes(self) -> int:
        """Flushes a time interval held back (Alertmanager logs them at debug level)."""
        log = self.proc.log_text()
        return (log.count("Notifications not sent, route is within mute time")
                + log.count("Notifications not sent, route is not within active time"))

    def alerts(self) -> list[dict]:
        return requests.get(f"{self.url}/api/v2/alerts", timeout=5).json()


def _now_shanghai() -> datetime:
    return datetime.now(SHANGHAI)


def _window(start: datetime, end: datetime) -> list[OnsiteWindow]:
    """A daily window from start to end (less than a day apart), split at midnight if it wraps."""
    a, b = start.strftime("%H:%M"), end.strftime("%H:%M")
    if a < b:
        return [OnsiteWindow(start=a, end=b)]
    tail = [OnsiteWindow(start="00:00", end=b)] if b != "00:00" else []
    return [OnsiteWindow(start=a, end="24:00"), *tail]


def _onsite_now() -> list[OnsiteWindow]:
    now = _now_shanghai()
    return _window(now - timedelta(hours=1), now + timedelta(hours=1))


def _offsite_now() -> list[OnsiteWindow]:
    """On-site hours that exclude the next hour either side of now ("03:00" for this test)."""
    now = _now_shanghai()
    return _window(now + timedelta(hours=1), now + timedelta(hours=3))


NO_PERIODS = ImportantPeriods(periods=(
    ImportantPeriod(name="过去的时期", start="2020-01-01", end="2020-01-07"),  # type: ignore[arg-type]
))


def _period_around_today() -> ImportantPeriods:
    today = _now_shanghai().date()
    return ImportantPeriods(periods=(ImportantPeriod(name="测试重要时期", start=today - timedelta(days=1),
                                                     end=today + timedelta(days=1)),))


CRITICAL = {"alertname": "EinvoiceCheckFailing", "severity": "critical", "zone": "intranet", "item": "11",
            "check": "redis_cluster", "target": "10.1.0.11:7000"}
WARNING = {"alertname": "EinvoiceCheckFailing", "severity": "warning", "zone": "intranet", "item": "14",
           "check": "push_backlog", "target": "oracle-push"}


def _deliveries(am: Alertmanager, sink: WebhookSink, expected: set[str], muted: int) -> set[str]:
    """Wait until the expected receivers got the alert and the muted flushes were logged, so the
    absence of the others is a fact and not a matter of waiting long enough."""
    wait_until(lambda: expected <= sink.receivers() and am.muted_flushes() >= muted, timeout=30,
               what=f"deliveries to {sorted(expected)} and {muted} muted flushes")
    return sink.receivers()


@pytest.mark.xdist_group("rules-alertmanager")
def test_critical_in_onsite_hours_goes_to_the_onsite_line_only(tmp_path: Path, sink: WebhookSink) -> None:
    am = Alertmanager(tmp_path, sink, onsite=_onsite_now(), periods=NO_PERIODS)
    try:
        am.post(CRITICAL)
        # muted: important-period (not active) and second-line (within on-site hours)
        got = _deliveries(am, sink, {"onsite-critical-intranet"}, muted=2)
        assert got == {"onsite-critical-intranet"}
        delivery = sink.by_receiver("onsite-critical-intranet")[0]
        assert delivery.path == "/api/v1/webhook/alertmanager"
        assert delivery.authorization == f"Bearer {TOKEN}"
        assert delivery.alertnames == ["EinvoiceCheckFailing"]
    finally:
        am.proc.stop()


@pytest.mark.xdist_group("rules-alertmanager")
def test_critical_at_night_also_reaches_the_second_line(tmp_path: Path, sink: WebhookSink) -> None:
    am = Alertmanager(tmp_path, sink, onsite=_offsite_now(), periods=NO_PERIODS)
    try:
        am.post(CRITICAL)
        got = _deliveries(am, sink, {"onsite-critical-intranet", "second-line"}, muted=1)
        assert got == {"onsite-critical-intranet", "second-line"}
        second = sink.by_receiver("second-line")[0]
        assert second.path == "/api/v1/webhook/alertmanager?route=second_line"
        assert second.authorization == f"Bearer {TOKEN}"
    finally:
        am.proc.stop()


@pytest.mark.xdist_group("rules-alertmanager")
def test_warning_at_night_waits_for_the_onsite_line(tmp_path: Path, sink: WebhookSink) -> None:
    am = Alertmanager(tmp_path, sink, onsite=_offsite_now(), periods=NO_PERIODS)
    try:
        am.post(WARNING)
        got = _deliveries(am, sink, {"onsite-warning"}, muted=1)  # important-period inactive
        assert got == {"onsite-warning"}
    finally:
        am.proc.stop()


@pytest.mark.xdist_group("rules-alertmanager")
def test_any_alert_in_an_important_period_reaches_everyone(tmp_path: Path, sink: WebhookSink) -> None:
    am = Alertmanager(tmp_path, sink, onsite=_offsite_now(), periods=_period_around_today())
    try:
        am.post(WARNING, CRITICAL)
        # warning -> onsite-warning + important-period; critical at night -> onsite + important-period,
        # its second-line route muted (the important-period receiver already covers 7x24).
        expected = {"onsite-warning", "onsite-critical-intranet", "important-period"}
        got = _deliveries(am, sink, expected, muted=1)
        assert got == expected
        # the two alerts are in different groups (item 14, item 11): one webhook each
        wait_until(lambda: len(sink.by_receiver("important-period")) == 2, what="both alerts 7x24")
        important = sink.by_receiver("important-period")
        assert {r.path for r in important} == {"/api/v1/webhook/alertmanager?route=important_period"}
        assert sorted(n for r in important for n in r.alertnames) == ["EinvoiceCheckFailing"] * 2
    finally:
        am.proc.stop()


@pytest.mark.xdist_group("rules-alertmanager")
def test_inhibitions(tmp_path: Path, sink: WebhookSink) -> None:
    am = Alertmanager(tmp_path, sink, onsite=_onsite_now(), periods=NO_PERIODS)
    try:
        outage = {"alertname": "EinvoiceServiceOutage", "severity": "critical", "service": "intake"}
        explained = {**CRITICAL, "item": "05", "zone": "extranet", "check": "intake_http",
                     "target": "https://sl.example.gov.cn/health"}
        unrelated = dict(CRITICAL)  # item 11 belongs to processing, not intake
        domain_down = {"alertname": "EinvoiceCheckFailing", "severity": "critical", "item": "01",
                       "zone": "internet", "check": "portal_dns", "target": "fpdk.example.gov.cn",
                       "domain": "fpdk.example.gov.cn"}
        same_domain_http = {**domain_down, "check": "portal_https", "target": "https://fpdk.example.gov.cn/"}
        behind = {"alertname": "EinvoiceProbeSlow", "severity": "warning", "item": "20", "zone": "extranet",
                  "check": "partner", "target": "https://fpdk.example.gov.cn/api",
                  "domain": "fpdk.example.gov.cn"}
        elsewhere = {**behind, "target": "https://other.example.com/api", "domain": "other.example.com"}
        exporter_down = {"alertname": "EinvoiceExporterDown", "severity": "critical",
                         "job": "einvoice-exporter", "instance": "exporter:9877"}
        vanished = {"alertname": "EinvoiceCheckVanished", "severity": "warning", "item": "07",
                    "zone": "extranet", "check": "auth_http", "target": "https://auth.example.gov.cn/"}
        lag = {"item": "13", "zone": "intranet", "check": "kafka_lag", "target": "10.1.0.13:9092"}
        lag_critical = {"alertname": "EinvoiceKafkaLagHigh", "severity": "critical", **lag,
                        "consumergroup": "verify"}
        lag_warning_same = {**lag_critical, "severity": "warning", "target": lag["target"]}
        lag_warning_other = {**lag_warning_same, "consumergroup": "invoice-push"}
        am.post(outage, explained, unrelated, domain_down, same_domain_http, behind, elsewhere,
                exporter_down, vanished, lag_critical, lag_warning_same, lag_warning_other)

        def state() -> dict[tuple[str, str], list[str]]:
            return {(f"{a['labels']['alertname']}/{a['labels'].get('severity')}",
                     a["labels"].get("target", "") + a["labels"].get("consumergroup", "")):
                    a["status"]["inhibitedBy"] for a in am.alerts()}

        wait_until(lambda: len(state()) == 12, what="12 alerts in alertmanager")
        status = state()
        assert status[("EinvoiceCheckFailing/critical", explained["target"])], "the outage explains item 05"
        assert status[("EinvoiceProbeSlow/warning", behind["target"])], "the unreachable domain explains it"
        assert status[("EinvoiceCheckVanished/warning", vanished["target"])], "the exporter is down"
        assert status[("EinvoiceKafkaLagHigh/warning", lag["target"] + "verify")], "the critical one says it"
        for key in [("EinvoiceServiceOutage/critical", ""),
                    ("EinvoiceCheckFailing/critical", unrelated["target"]),
                    ("EinvoiceCheckFailing/critical", domain_down["target"]),
                    ("EinvoiceCheckFailing/critical", same_domain_http["target"]),
                    ("EinvoiceProbeSlow/warning", elsewhere["target"]),
                    ("EinvoiceExporterDown/critical", ""),
                    ("EinvoiceKafkaLagHigh/critical", lag["target"] + "verify"),
                    ("EinvoiceKafkaLagHigh/warning", lag["target"] + "invoice-push")]:
            assert status[key] == [], f"{key} must not be inhibited"
    finally:
        am.proc.stop()
