"""Two Prometheus, VictoriaMetrics and an Alertmanager cluster, for real (conftest.py draws them).

- The pair evaluates the SLA rules twice; VictoriaMetrics stores the outage once: the figure the
  reports' client reads from it equals the time the check was down (hand computation, the test's
  clock) and the single Prometheus' own figure, while the control VictoriaMetrics without the
  committed relabelling and deduplication holds it twice.
- A lost exporter (its port closed, as when the link between zones drops) is no outage: no
  seconds are added, EinvoiceExporterDown fires, EinvoiceServiceOutage does not.
- The Alertmanager cluster receives every alert from both Prometheus and notifies once.
"""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest
import requests
from einvoice_reports.prom import PrometheusClient

from tests.ha.conftest import PEER_TIMEOUT, REPO, Core, now, wait_for_vm
from tests.support.procs import require_binary, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ha")]

SERVICE = 'service="processing"'
DOWN_SECONDS = 12.0
STEP_TOLERANCE = 3.0
"""Seconds an outage figure may differ from the test's clock: a 1 s scrape and a 1 s rule
evaluation at each edge, and the one-step bridge of the recording rules."""


def _value(core: Core, base: str, expr: str, at: float) -> float:
    result = core.prom_query(base, expr, at)
    assert len(result) == 1, (base, expr, result)
    return float(result[0]["value"][1])


def _service_up_everywhere(core: Core, value: int) -> bool:
    t = now()
    for base in core.prometheus.values():
        result = core.prom_query(base, f"einvoice:service_up{{{SERVICE}}}", t)
        if len(result) != 1 or float(result[0]["value"][1]) != value:
            return False
    return True


def _settle(core: Core) -> None:
    """The target serving, its check up, and both Prometheus evaluating the service as up."""
    core.target.set_serving(True)
    core.target.up = True
    wait_until(lambda: _service_up_everywhere(core, 1), timeout=60, interval=0.2,
               what="einvoice:service_up == 1 in both Prometheus")


def test_the_pair_records_an_outage_once_in_victoriametrics(core: Core) -> None:
    _settle(core)
    t_start = now()
    vm = PrometheusClient(core.vm, timeout=10)
    vm.ping()
    before = vm.query(f"sum_over_time(einvoice:service_outage_step_seconds{{{SERVICE}}}[365d])", t_start)
    already = before[0].value if before else 0.0

    wait_until(lambda: now() > t_start + 4, timeout=10, interval=0.2)
    t_down = now()
    core.target.up = False
    wait_until(lambda: _service_up_everywhere(core, 0), timeout=30, interval=0.2,
               what="both Prometheus see the outage")
    wait_until(lambda: now() >= t_down + DOWN_SECONDS, timeout=DOWN_SECONDS + 5, interval=0.1)
    core.target.up = True
    t_up = now()
    wait_until(lambda: _service_up_everywhere(core, 1), timeout=30, interval=0.2, what="restored")
    t_q = now() + 2
    wait_until(lambda: now() > t_q + 2, timeout=10, interval=0.2)
    wait_for_vm(core, t_q)

    hand = t_up - t_down
    expr = f"sum_over_time(einvoice:service_outage_step_seconds{{{SERVICE}}}[365d])"
    per_replica = {r: _value(core, base, expr, t_q) for r, base in core.prometheus.items()}
    for replica, seconds in per_replica.items():
        assert abs(seconds - already - hand) <= STEP_TOLERANCE, (replica, seconds, hand)

    # What the reports read: the yearly figure through their client, from VictoriaMetrics.
    stored = vm.query(expr, t_q)
    assert len(stored) == 1, [s.labels for s in stored]
    assert "replica" not in stored[0].labels and stored[0].labels["service"] == "processing"
    outage = stored[0].value - already
    assert abs(outage - hand) <= STEP_TOLERANCE, (outage, hand, per_replica)
    recorded_year = vm.query(f"einvoice:service_outage_seconds_year{{{SERVICE}}}", t_q)
    assert len(recorded_year) == 1 and abs(recorded_year[0].value - already - hand) <= STEP_TOLERANCE

    # Samples: one per second once deduplicated, as in one Prometheus; the control has both.
    count = f"count_over_time(einvoice:service_up{{{SERVICE}}}[365d])"
    in_vm = vm.query(count, t_q)[0].value
    in_a = _value(core, core.prometheus["a"], count, t_q)
    assert abs(in_vm - in_a) <= 0.15 * in_a, (in_vm, in_a)
    raw = PrometheusClient(core.vm_raw, timeout=10)
    raw_series = raw.query(expr, t_q)
    assert sorted(s.labels.get("replica", "") for s in raw_series) == ["a", "b"]
    raw_total = sum(s.value for s in raw_series)
    assert raw_total - 2 * already >= 2 * hand - 2 * STEP_TOLERANCE, (raw_total, hand)
    assert raw.query(f"sum({count})", t_q)[0].value >= 1.8 * in_a

    print(f"outage: hand {hand:.2f}s, prometheus a {per_replica['a'] - already:.2f}s, "
          f"b {per_replica['b'] - already:.2f}s, VictoriaMetrics {outage:.2f}s, "
          f"control without dedup {raw_total - 2 * already:.2f}s; samples VM {in_vm:.0f} / a {in_a:.0f}")
    # Availability over the year as the reports compute it (known time only).
    availability = vm.query(f"avg_over_time(einvoice:service_up{{{SERVICE}}}[365d])", t_q)[0].value
    assert availability == pytest.approx(
        _value(core, core.prometheus["a"], f"avg_over_time(einvoice:service_up{{{SERVICE}}}[365d])", t_q),
        abs=0.05)
    assert 0 < availability < 1


def test_a_lost_exporter_is_no_outage_but_exporter_down(core: Core) -> None:
    _settle(core)
    vm = PrometheusClient(core.vm, timeout=10)
    expr = f"sum_over_time(einvoice:service_outage_step_seconds{{{SERVICE}}}[365d])"
    t_before = now()
    wait_for_vm(core, t_before)
    before = vm.query(expr, t_before)
    counted_before = before[0].value if before else 0.0

    core.target.set_serving(False)
    t_lost = now()

    def exporter_down_firing() -> bool:
        alerts = core.prom_query(core.prometheus["a"], 'ALERTS{alertname="EinvoiceExporterDown",'
                                 'alertstate="firing"}', now())
        return len(alerts) == 1

    wait_until(exporter_down_firing, timeout=30, interval=0.3, what="EinvoiceExporterDown firing")
    wait_until(lambda: now() > t_lost + 8, timeout=15, interval=0.2)
    during = now()
    for base in core.prometheus.values():
        assert core.prom_query(base, f"einvoice:service_up{{{SERVICE}}}", during) == []
        assert core.prom_query(base, 'ALERTS{alertname="EinvoiceServiceOutage"}', during) == []
        assert core.prom_query(base, 'up{job="einvoice-exporter"}', during)[0]["value"][1] == "0"
    core.target.set_serving(True)
    wait_until(lambda: _service_up_everywhere(core, 1), timeout=30, interval=0.2, what="exporter back")
    t_after = now() + 1
    wait_until(lambda: now() > t_after + 2, timeout=10, interval=0.2)
    wait_for_vm(core, t_after)
    after = vm.query(expr, t_after)
    assert after and after[0].value == pytest.approx(counted_before, abs=0.001), (counted_before, after)


def test_the_alertmanager_cluster_notifies_once(core: Core) -> None:
    amtool = require_binary("amtool")
    for url in core.alertmanagers:
        def cluster_show(url: str = url) -> str:
            shown = subprocess.run([amtool, f"--alertmanager.url={url}", "cluster", "show", "-o", "json"],
                                   capture_output=True, text=True, timeout=30, check=False)
            assert shown.returncode == 0, shown.stderr
            return shown.stdout.replace(" ", "")

        # A peer reports "settling" until its gossip membership has been stable for a few rounds
        # (at most --cluster.settle-timeout); only then "ready".
        wait_until(lambda: '"status":"ready"' in cluster_show(), timeout=90, interval=0.5,
                   what=f"{url} cluster status ready")
        shown = cluster_show()
        assert shown.count('"address"') == 2, shown
    zoneinfo = str(REPO / "deploy/alertmanager/zoneinfo")
    checked = subprocess.run([amtool, "check-config", str(core.directory / "alertmanager.yml")],
                             capture_output=True, text=True, timeout=30, check=False,
                             env={"PATH": "/usr/bin:/bin", "ZONEINFO": zoneinfo})
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr

    _settle(core)
    start = len(core.recorder.received)
    core.target.up = False

    def notified(status: str) -> bool:
        return any(n["status"] == status and n["commonLabels"].get("alertname") == "EinvoiceServiceOutage"
                   for n in core.recorder.received[start:])

    wait_until(lambda: notified("firing"), timeout=60, interval=0.2, what="outage notification")
    for url in core.alertmanagers:
        alerts = [a for a in requests.get(f"{url}/api/v2/alerts", timeout=10).json()
                  if a["labels"]["alertname"] == "EinvoiceServiceOutage"]
        assert len(alerts) == 1 and "replica" not in alerts[0]["labels"], alerts
    core.target.up = True
    wait_until(lambda: notified("resolved"), timeout=60, interval=0.2, what="recovery notification")
    # A duplicate would come from the second peer after its wait (peer timeout x position):
    # watch three times that long after the last notification before counting.
    quiet = 3 * float(PEER_TIMEOUT.removesuffix("s"))
    last = now()
    count = len(core.recorder.received)

    def quiet_for_a_while() -> bool:
        nonlocal last, count
        if len(core.recorder.received) != count:
            count, last = len(core.recorder.received), now()
        return now() - last >= quiet

    wait_until(quiet_for_a_while, timeout=60, interval=0.2, what="no more notifications")
    sent = core.recorder.received[start:]
    keys = Counter(
        (n["receiver"], n["groupKey"], n["status"],
         tuple(sorted((a["fingerprint"], a["status"]) for a in n["alerts"])))
        for n in sent
    )
    duplicates = {key: times for key, times in keys.items() if times > 1}
    assert not duplicates, duplicates
    assert all(auth == "Bearer ha-test-token" for auth in core.recorder.authorizations)
    outage = [n for n in sent if n["commonLabels"].get("alertname") == "EinvoiceServiceOutage"]
    assert {n["status"] for n in outage} == {"firing", "resolved"}
    assert all("replica" not in n["commonLabels"] for n in sent)


def test_every_dashboard_query_runs_on_victoriametrics(core: Core) -> None:
    """The dashboards can use VictoriaMetrics as their data source: it accepts every panel query
    (MetricsQL is a superset of PromQL, checked here rather than assumed), and the SLA panels'
    series come back once, without `replica`."""
    from tests.dashboards import inventory as inv

    _settle(core)
    wait_for_vm(core, now())
    broken = requests.get(f"{core.vm}/api/v1/query", params={"query": "sum(rate(up[5m]) by (job"}, timeout=10)
    assert broken.status_code == 422 or broken.json()["status"] == "error"  # the check can fail
    queries = inv.queries(inv.load_dashboards())
    assert len(queries) > 100
    rejected = {}
    for query in queries:
        answer = requests.get(f"{core.vm}/api/v1/query", params={"query": query.resolved}, timeout=20)
        body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else {}
        if answer.status_code != 200 or body.get("status") != "success":
            rejected[query.key] = (answer.status_code, body.get("error", answer.text[:200]))
    assert not rejected, f"queries VictoriaMetrics rejects: {rejected}"
    up = PrometheusClient(core.vm, timeout=10).query("einvoice:service_up", now())
    assert [s.labels.get("service") for s in up] == ["processing"]
    assert all("replica" not in s.labels for s in up)
