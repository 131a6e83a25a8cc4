"""The generated SLA rules on a real Prometheus (Debian's 2.42): the self-referencing integrals that
the yearly figures rest on accumulate the outage a scraped target shows, under Prometheus' own
scheduler and staleness handling, not only in promtool's simulated clock.

The thresholds are the shipped ones with the evaluation intervals shortened to 1 s (through the
model, not by editing generated files), and the outage lasts until the rules have seen 4 s of it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from einvoice_core.generate import rules
from einvoice_core.thresholds import load_thresholds
from tests.support.procs import Proc, free_port, require_binary, wait_until

SERIES = 'einvoice_check_up{item="05",zone="extranet",check="intake_http",target="https://sl.example.gov.cn/"}'


class Target:
    """A /metrics endpoint whose check result the test flips."""

    def __init__(self) -> None:
        self.up = 1
        self.fail = False
        """Answer 500, as an exporter that is restarting does: Prometheus marks the series stale."""
        self.port = free_port()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"# TYPE einvoice_check_up gauge\n{SERIES} {target.up}\n".encode()
                self.send_response(500 if target.fail else 200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def _value(base: str, expr: str) -> float | None:
    result = requests.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@contextmanager
def _prometheus(tmp_path: Path, target: Target) -> Iterator[str]:
    """A real Prometheus with the generated rules (evaluation every second) scraping `target`."""
    binary = require_binary("prometheus")
    shipped = load_thresholds()
    th = shipped.model_copy(update={
        "evaluation_interval": "1s",
        "sla": shipped.sla.model_copy(update={"year_evaluation_interval": "1s"}),
    })
    rule_dir = tmp_path / "rules"
    rule_dir.mkdir()
    for name, text in rules.rule_files(th).items():
        (rule_dir / name).write_text(text, encoding="utf-8")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}\n"
        f"rule_files: ['{rule_dir}/*.rules.yml']\n"
        "scrape_configs:\n"
        f"  - job_name: einvoice-exporter\n    static_configs: [{{targets: ['127.0.0.1:{target.port}']}}]\n",
        encoding="utf-8")
    proc = Proc([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=400d"],
                log=tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_port(port)
        wait_until(lambda: requests.get(f"{base}/-/ready", timeout=2).ok, timeout=30, what="prometheus ready")
        yield base
    finally:
        proc.stop()


@pytest.mark.xdist_group("rules-prometheus")
def test_outage_integrals_on_a_real_prometheus(tmp_path: Path, target: Target) -> None:
    intake = '{service="intake"}'
    with _prometheus(tmp_path, target) as base:
        observed = f"sum_over_time(einvoice:service_step_seconds{intake}[1h])"
        wait_until(lambda: (_value(base, observed) or 0) >= 2, timeout=30, what="two seconds observed")
        wait_until(lambda: _value(base, f"einvoice:service_outage_seconds_year{intake}") == 0,
                   timeout=30, what="the yearly figure to start at 0")

        target.up = 0
        wait_until(lambda: (_value(base, f"einvoice:service_outage_current_seconds{intake}") or 0) >= 4,
                   timeout=30, what="four seconds of outage")
        assert _value(base, f"einvoice:service_up{intake}") == 0
        target.up = 1
        wait_until(lambda: _value(base, f"einvoice:service_outage_current_seconds{intake}") == 0,
                   timeout=30, what="the outage to end")

        def settled() -> bool:
            year = _value(base, f"einvoice:service_outage_seconds_year{intake}")
            longest = _value(base, f"einvoice:service_outage_longest_seconds_year{intake}")
            return year is not None and year == pytest.approx(longest)

        # one outage: the yearly sum of outage steps and the longest outage are the same seconds
        wait_until(settled, timeout=30, what="the yearly figures to catch up")
        year = _value(base, f"einvoice:service_outage_seconds_year{intake}")
        assert year is not None
        assert 4 <= year < 15, year
        remaining = _value(base, f"einvoice:service_outage_budget_remaining:ratio{intake}")
        assert remaining == pytest.approx(1 - year / 43200)
        since_expr = f"einvoice:service_since_last_outage_seconds{intake}"
        wait_until(lambda: (_value(base, since_expr) or 0) > 0, timeout=30, what="time since the outage")
        since = _value(base, since_expr)
        assert since is not None and 0 < since < 30
        assert (_value(base, observed) or 0) > year


@pytest.mark.xdist_group("rules-prometheus")
def test_failed_scrapes_inside_an_outage_do_not_split_it(tmp_path: Path, target: Target) -> None:
    """issue 9.2 on a real Prometheus: failed scrapes write stale markers; the outage clock bridges
    the gap (shorter than sla.max_gap) and the outage stays one outage."""
    intake = '{service="intake"}'
    clock = f"einvoice:service_outage_current_seconds{intake}"
    with _prometheus(tmp_path, target) as base:
        wait_until(lambda: _value(base, f"einvoice:service_up{intake}") == 1, timeout=30, what="service up")
        target.up = 0
        wait_until(lambda: (_value(base, clock) or 0) >= 3, timeout=30, what="three seconds of outage")

        target.fail = True
        wait_until(lambda: _value(base, clock) is None, timeout=30, what="the gap (series stale)")
        before = _value(base, f"last_over_time({clock}[5m])")
        assert before is not None and before >= 3
        gap = f"time() - last_over_time(einvoice:service_seen_timestamp_seconds{intake}[5m])"
        wait_until(lambda: (_value(base, gap) or 0) >= 3, timeout=30, what="a gap of three seconds")
        assert _value(base, f"einvoice:service_up{intake}") is None, "no data in the gap: unknown"

        target.fail = False
        wait_until(lambda: _value(base, clock) is not None, timeout=30, what="data again")
        after = _value(base, clock)
        assert after is not None and after >= before + 3, (before, after)
        assert (_value(base, f"max_over_time(einvoice:service_step_seconds{intake}[1m])") or 0) >= 3

        target.up = 1
        wait_until(lambda: _value(base, clock) == 0, timeout=30, what="the outage to end")

        def one_outage() -> bool:
            year = _value(base, f"einvoice:service_outage_seconds_year{intake}")
            longest = _value(base, f"einvoice:service_outage_longest_seconds_year{intake}")
            return year is not None and longest is not None and year > 0 and year == pytest.approx(longest)

        # the gap is inside the one outage: the yearly sum equals the longest outage, not two parts
        wait_until(one_outage, timeout=30, what="the yearly figures to show one outage")
        longest = _value(base, f"einvoice:service_outage_longest_seconds_year{intake}")
        assert longest is not None and longest >= after
