"""The `goldengate` kind against a local server answering as the Microservices REST API documents,
a stand-in ggsci printing recorded outputs, and the GG_LAG heartbeat view on a real MariaDB."""

from __future__ import annotations

import base64
import json
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from einvoice_exporter.collectors import goldengate
from einvoice_exporter.outcome import Reason

from tests.sql.conftest import MONITOR, MariaDB
from tests.support.collectors import reason, run_once

FIXTURES = Path(__file__).parent / "fixtures"
USER, PASSWORD = "oggmon", "ogg-secret"


def fixture(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / "rest" / name).read_text(encoding="utf-8"))
    assert data["source"].startswith("Oracle GoldenGate REST API")
    return data


@dataclass
class FakeGoldenGate:
    """Routes of one Administration (or Distribution) Service; tests swap answers between runs."""

    routes: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    url: str = ""
    connections: int = 0
    """TCP connections accepted (the service keeps HTTP/1.1 connections alive, as the real one does)."""

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.seen.append(path)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if authorization != expected:
            data = fixture("unauthorized.json")
            return data["status"], data["body"]
        name = self.routes.get(path)
        if name is None:
            return 404, {"$schema": "api:standardResponse", "links": [], "messages": [
                {"$schema": "ogg:message", "severity": "ERROR", "code": "OGG-12029",
                 "title": "The item type with name does not exist."}]}
        data = fixture(name)
        return data["status"], data["body"]


def serve(fake: FakeGoldenGate) -> Iterator[FakeGoldenGate]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            fake.connections += 1
            super().setup()

        def do_GET(self) -> None:
            status, body = fake.answer(self.path, self.headers.get("Authorization"))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


ADMIN_ROUTES = {
    "/services/v2/extracts": "extracts.json",
    "/services/v2/replicats": "replicats.json",
    "/services/v2/extracts/EXT1/info/status": "extract_EXT1_status.json",
    "/services/v2/extracts/PUMP1/info/status": "extract_PUMP1_status.json",
    "/services/v2/replicats/REP1/info/status": "replicat_REP1_status.json",
}


@pytest.fixture
def admin() -> Iterator[FakeGoldenGate]:
    yield from serve(FakeGoldenGate(dict(ADMIN_ROUTES)))


@pytest.fixture
def distribution() -> Iterator[FakeGoldenGate]:
    yield from serve(FakeGoldenGate({"/services/v2/sources": "sources.json",
                                     "/services/v2/sources/DP1": "source_DP1.json"}))


def rest_settings(**extra: Any) -> goldengate.Settings:
    return goldengate.Settings.model_validate({"source": "rest", "username": USER, "password": PASSWORD,
                                               **extra})


def status_of(outcome: Any, process: str, kind: str) -> str:
    states = [s for s in goldengate.STATUSES if outcome.metrics.value(
        "einvoice_goldengate_process_status", {"process": process, "type": kind, "status": s}) == 1]
    assert len(states) == 1, states
    return states[0]


def test_rest_reports_status_lag_and_checkpoint_age(admin: FakeGoldenGate,
                                                    distribution: FakeGoldenGate) -> None:
    outcome = run_once(goldengate, rest_settings(distribution_url=distribution.url), admin.url, 5.0)
    assert outcome.success, outcome.failure
    m = outcome.metrics
    assert m.value("einvoice_goldengate_up") == 1
    assert status_of(outcome, "EXT1", "extract") == "running"
    assert status_of(outcome, "DP1", "distribution_path") == "running"
    assert m.value("einvoice_goldengate_lag_seconds", {"process": "REP1", "type": "replicat"}) == 12
    assert m.value("einvoice_goldengate_checkpoint_age_seconds", {"process": "EXT1", "type": "extract"}) == 7


def test_rest_runs_reuse_one_kept_alive_connection(admin: FakeGoldenGate) -> None:
    check = goldengate.build(rest_settings())
    try:
        for _ in range(3):
            outcome = check.run(admin.url, 5.0)
            assert outcome.success, outcome.failure
    finally:
        check.close()
    assert len(admin.seen) == 3 * len(ADMIN_ROUTES)
    assert admin.connections == 1, "each request or run opened its own connection"


def test_rest_abended_extract_fails_the_check(admin: FakeGoldenGate) -> None:
    admin.routes["/services/v2/extracts/PUMP1/info/status"] = "extract_PUMP1_abended.json"
    outcome = run_once(goldengate, rest_settings(), admin.url, 5.0)
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and outcome.failure.detail == "extract PUMP1 is ABENDED"
    assert status_of(outcome, "PUMP1", "extract") == "abended"
    assert outcome.metrics.value("einvoice_goldengate_lag_seconds", {"process": "PUMP1", "type": "extract"}) \
        is None


def test_rest_wrong_password_is_auth(admin: FakeGoldenGate) -> None:
    outcome = run_once(goldengate, rest_settings(password="nope"), admin.url, 5.0)
    assert reason(outcome) is Reason.AUTH
    assert outcome.metrics.value("einvoice_goldengate_up") == 0


def test_rest_missing_process_is_bad_status(admin: FakeGoldenGate) -> None:
    del admin.routes["/services/v2/replicats/REP1/info/status"]
    outcome = run_once(goldengate, rest_settings(), admin.url, 5.0)
    assert reason(outcome) is Reason.BAD_STATUS
    assert outcome.failure is not None and "404" in outcome.failure.detail


def ggsci_home(tmp_path: Path, recording: str = "info_all_19c.txt", hang: bool = False,
               send_replicat: str = "send_replicat_status.txt") -> Path:
    """A GoldenGate home whose `ggsci` is the stand-in printing the recorded outputs."""
    fake = FIXTURES / "ggsci" / "fake_ggsci.py"
    env = (f"FAKE_GGSCI_INFO_ALL={shlex.quote(recording)}"
           f" FAKE_GGSCI_SEND_REPLICAT={shlex.quote(send_replicat)}" + (" FAKE_GGSCI_HANG=1" if hang else ""))
    script = tmp_path / "ggsci"
    script.write_text(f"#!/bin/sh\nexec env {env} {shlex.quote(sys.executable)} {shlex.quote(str(fake))}\n")
    script.chmod(0o755)
    return tmp_path


def test_ggsci_info_all_and_lag(tmp_path: Path) -> None:
    home = ggsci_home(tmp_path)
    settings = goldengate.Settings(source="ggsci", expected_stopped=["REPSTBY"])
    outcome = run_once(goldengate, settings, str(home), 10.0)
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and outcome.failure.detail == "extract PUMP1 is ABENDED"
    m = outcome.metrics
    assert status_of(outcome, "MANAGER", "manager") == "running"
    assert status_of(outcome, "REPSTBY", "replicat") == "stopped"
    # LAG's last record lag replaces the checkpoint lag of running processes.
    assert m.value("einvoice_goldengate_lag_seconds", {"process": "EXT1", "type": "extract"}) == 3
    assert m.value("einvoice_goldengate_lag_seconds", {"process": "REP1", "type": "replicat"}) == 14
    assert m.value("einvoice_goldengate_checkpoint_age_seconds",
                   {"process": "REPSTBY", "type": "replicat"}) == 101 * 3600 + 2 * 60 + 11
    # SEND … STATUS: what running processes do; a suspended Replicat fails the check too.
    assert m.value("einvoice_goldengate_process_activity",
                   {"process": "EXT1", "type": "extract", "activity": "processing_data"}) == 1
    assert m.value("einvoice_goldengate_process_activity",
                   {"process": "REP1", "type": "replicat", "activity": "suspended"}) == 1
    assert m.value("einvoice_goldengate_process_activity",
                   {"process": "REPSTBY", "type": "replicat", "activity": "suspended"}) is None


def test_ggsci_suspended_replicat_fails_the_check(tmp_path: Path) -> None:
    home = ggsci_home(tmp_path, "info_all_12c_ok.txt")
    outcome = run_once(goldengate, goldengate.Settings(source="ggsci", expected_stopped=["JAGENT"]),
                       str(home), 10.0)
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and outcome.failure.detail == "replicat REP1 is RUNNING but suspended"


def test_ggsci_healthy_12c(tmp_path: Path) -> None:
    home = ggsci_home(tmp_path, "info_all_12c_ok.txt")
    outcome = run_once(goldengate, goldengate.Settings(source="ggsci", lag_command=False,
                                                       expected_stopped=["JAGENT"]), str(home), 10.0)
    assert reason(outcome) is Reason.STATE  # REP1 is suspended in the SEND STATUS recording
    outcome = run_once(goldengate, goldengate.Settings(source="ggsci", lag_command=False, send_status=False,
                                                       expected_stopped=["JAGENT"]), str(home), 10.0)
    assert outcome.success, outcome.failure
    rep1 = {"process": "REP1", "type": "replicat"}
    assert outcome.metrics.value("einvoice_goldengate_lag_seconds", rep1) == 4


def test_unexpected_stopped_process_fails(tmp_path: Path) -> None:
    home = ggsci_home(tmp_path, "info_all_12c_ok.txt")
    settings = goldengate.Settings(source="ggsci", lag_command=False, send_status=False)
    outcome = run_once(goldengate, settings, str(home), 10.0)
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and outcome.failure.detail == "jagent JAGENT is STOPPED"


def test_hung_ggsci_is_killed_at_the_timeout(tmp_path: Path) -> None:
    home = ggsci_home(tmp_path, hang=True)
    started = time.monotonic()
    outcome = run_once(goldengate, goldengate.Settings(source="ggsci"), str(home), 1.0)
    assert reason(outcome) is Reason.TIMEOUT
    assert time.monotonic() - started < 5.0


def test_missing_ggsci_is_an_error(tmp_path: Path) -> None:
    outcome = run_once(goldengate, goldengate.Settings(source="ggsci"), str(tmp_path), 5.0)
    assert reason(outcome) is Reason.ERROR
    assert outcome.failure is not None and "ggsci not found" in outcome.failure.detail


def test_heartbeat_view_on_a_real_database(mariadb: MariaDB) -> None:
    mariadb.execute(
        "CREATE OR REPLACE VIEW einv.gg_lag AS SELECT 'SRCDB' AS local_database,"
        " 'EXT1 ==> PUMP1 ==> REP1' AS incoming_path, 4.5 AS incoming_lag, 12 AS incoming_heartbeat_age")
    settings = goldengate.Settings.model_validate({"source": "heartbeat", "driver": "mysql",
                                                   "username": MONITOR[0], "password": MONITOR[1]})
    outcome = run_once(goldengate, settings, mariadb.target, 5.0)
    assert outcome.success, outcome.failure
    path = {"path": "EXT1 ==> PUMP1 ==> REP1"}
    assert outcome.metrics.value("einvoice_goldengate_heartbeat_lag_seconds", path) == 4.5
    assert outcome.metrics.value("einvoice_goldengate_heartbeat_age_seconds", path) == 12


def test_parsers_on_recordings() -> None:
    text = (FIXTURES / "ggsci" / "info_all_19c.txt").read_text()
    rows = goldengate.parse_info_all(text)
    assert [(p.name, p.type, p.status) for p in rows] == [
        ("MANAGER", "manager", "running"), ("EXT1", "extract", "running"), ("PUMP1", "extract", "abended"),
        ("REP1", "replicat", "running"), ("REPSTBY", "replicat", "stopped")]
    lags = goldengate.parse_lag((FIXTURES / "ggsci" / "lag_extract.txt").read_text())
    assert lags == {"EXT1": 3.0}
    assert goldengate.parse_send_status((FIXTURES / "ggsci" / "send_replicat_status.txt").read_text()) \
        == {"REP1": "suspended"}
    assert goldengate.activity_of("In recovery[1]") == "recovering"
    assert goldengate.activity_of("At EOF, no more records to process") == "at_eof"


def test_unanswered_runs_say_the_source_is_down() -> None:
    from einvoice_exporter.collectors import sql
    from einvoice_exporter.outcome import MetricSet

    metrics = MetricSet()
    goldengate.unanswered(metrics)
    sql.unanswered(metrics)
    assert metrics.value("einvoice_goldengate_up") == 0 and metrics.value("einvoice_sql_up") == 0
