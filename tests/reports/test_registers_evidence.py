"""故障定责证据包 of scripted ticket 1 (the intake outage, 3 Nov 10:00-12:30 Beijing time) against a real
Prometheus backfilled with the probes around it, one sample a minute from 09:00 to 13:30:

- item 20 partner interface `partner-api` fails 10:00-12:25 (146 samples), item 08 `secure-access`
  answers throughout; item 05's own check fails too but is no partner interface (not in the pack);
- DNS `dns-public` fails 10:00-10:30 (31 samples); TCP `lb-vip` connects throughout; the HTTP check
  `intake-http` also has probe_success but is HTTP, not TCP (not in the TCP group);
- the exporter's `up` stays 1.
The window is 09:30-13:00 (the fault ± 30 min): 3.5 h over at most 240 points is 52.5 s, rounded up
to 60 s, so 211 points per series."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from einvoice_notifier.db import make_engine
from einvoice_notifier.registers import Registers
from einvoice_reports import cli

from .promfill import OpenMetricsWriter, backfilled_prometheus
from .scripted import NOW, TAX_ID, fill_store, local

pytestmark = pytest.mark.slow


def _series() -> list[tuple[str, dict[str, str], set[float]]]:
    """(name, labels, times at which the value is 0)."""

    def minutes(first: tuple[int, int], last: tuple[int, int]) -> set[float]:
        lo, hi = local(11, 3, *first).timestamp(), local(11, 3, *last).timestamp()
        return {lo + 60 * n for n in range(int((hi - lo) // 60) + 1)}

    return [
        (
            "einvoice_check_up",
            {"item": "20", "check": "partner-api", "target": "http://partner"},
            minutes((10, 0), (12, 25)),
        ),
        ("einvoice_check_up", {"item": "08", "check": "secure-access", "target": "sa:443"}, set()),
        (
            "einvoice_check_up",
            {"item": "05", "check": "intake-http", "target": "http://intake"},
            minutes((10, 0), (12, 30)),
        ),
        (
            "probe_dns_query_succeeded",
            {"item": "01", "check": "dns-public", "target": "fp.example"},
            minutes((10, 0), (10, 30)),
        ),
        ("probe_success", {"item": "02", "check": "lb-vip", "target": "10.0.0.1:443"}, set()),
        (
            "probe_success",
            {"item": "05", "check": "intake-http", "target": "http://intake"},
            minutes((10, 0), (12, 30)),
        ),
        ("probe_http_status_code", {"item": "05", "check": "intake-http", "target": "http://intake"}, set()),
        ("up", {"job": "einvoice-exporter", "instance": "exporter:9877"}, set()),
    ]


@pytest.fixture(scope="module")
def incident_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("evidence-prom")
    writer = OpenMetricsWriter(tmp / "incident.om")
    start = local(11, 3, 9).timestamp()
    times = [start + 60 * n for n in range(4 * 60 + 31)]
    for name, labels, failing in _series():
        writer.series(name, labels, [(t, 0 if t in failing else 1) for t in times])
    writer.close()
    with backfilled_prometheus(tmp, tmp / "incident.om") as url:
        yield url


def _rows(html: str, group: str) -> dict[str, tuple[int, int, str, str]]:
    found = {}
    for row in re.findall(rf'<tr data-group="{group}">(.*?)</tr>', html, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        found[cells[0]] = (int(cells[1]), int(cells[2]), cells[3], cells[4])
    return found


def _evidence_args(prometheus: str, store: str, out: Path) -> list[str]:
    """The evidence command for ticket 1 (the ticket id is the third argument)."""
    return ["evidence", "--ticket", "1", "--prometheus", prometheus, "--store", store, "--out", str(out)]


def test_evidence_pack_of_an_outage(tmp_path: Path, incident_prometheus: str) -> None:
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    fill_store(url).dispose()
    registers = Registers(make_engine(url), clock=lambda: NOW)
    registers.record_fault(
        1,
        "ops-lead",
        "network",
        "public_service",
        f"第20项外围接口与 DNS 同时失败；纳税人识别号 {TAX_ID} 的请求超时",
    )
    registers.engine.dispose()
    args = _evidence_args(incident_prometheus, url, tmp_path)
    assert cli.main(args, now=NOW) == 0
    html = (tmp_path / "evidence" / "ticket-1.html").read_text(encoding="utf-8")
    assert (tmp_path / "evidence" / "ticket-1.pdf").read_bytes().startswith(b"%PDF")
    assert "2026-11-03 09:30 至 2026-11-03 13:00" in html
    assert "网络（不计入运维厂商故障率）" in html
    assert _rows(html, "partner") == {
        "第08项 secure-access sa:443": (211, 0, "—", "—"),
        "第20项 partner-api http://partner": (211, 146, "10:00:00", "12:25:00"),
    }
    assert _rows(html, "dns") == {"第01项 dns-public fp.example": (211, 31, "10:00:00", "10:30:00")}
    assert _rows(html, "tcp") == {"第02项 lb-vip 10.0.0.1:443": (211, 0, "—", "—")}
    assert _rows(html, "up") == {"einvoice-exporter exporter:9877": (211, 0, "—", "—")}
    assert re.search(r'id="failing">外围与合作方接口探测（第08、19、20项）；DNS 解析', html)
    assert html.count("<svg") == 4
    timeline = re.search(r'<table id="timeline">(.*?)</table>', html, re.S).group(1)
    assert "故障定责" in timeline and "故障主体：网络" in timeline
    assert TAX_ID not in html


def test_evidence_pack_of_a_ticket_without_owner_says_so(tmp_path: Path, incident_prometheus: str) -> None:
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    fill_store(url).dispose()
    args = [*_evidence_args(incident_prometheus, url, tmp_path), "--no-pdf"]
    assert cli.main(args, now=NOW) == 0
    html = (tmp_path / "evidence" / "ticket-1.html").read_text(encoding="utf-8")
    assert "尚未定责" in html and "★4(3)" in html
    assert cli.main(["evidence", "--prometheus", incident_prometheus, "--store", url], now=NOW) == 2
    assert cli.main([*args[:2], "999", *args[3:]], now=NOW) == 2
