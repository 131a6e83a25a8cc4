"""SQL checks with an interval against a real MariaDB: refreshed in the background by the exporter's
scheduler (the real CLI), on kept connections; a scrape served while the query is blocked does not
wait for it, and once the result is older than stale_after_intervals intervals it is a failure with
`stale` in its detail instead of the old values."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pymysql
import pytest
from einvoice_exporter.config import parse_config
from einvoice_exporter.runtime import Runtime

from tests.exporter.conftest import sample
from tests.sql.conftest import MONITOR, MariaDB
from tests.support.procs import Proc, free_port, wait_until


def config(db: MariaDB, table: str, interval: str, extra_global: str = "") -> str:
    return (f"global: {{max_concurrency: 4{extra_global}}}\n"
            "modules:\n"
            "  bg:\n"
            "    kind: sql\n"
            "    timeout: 20s\n"
            "    sql:\n"
            "      driver: mysql\n"
            f"      username: {MONITOR[0]}\n"
            f"      password: {MONITOR[1]}\n"
            "      queries: [{name: bg, values: [bg_value],"
            f" sql: 'SELECT MAX(v) AS bg_value FROM {table}'}}]\n"
            "checks:\n"
            f"  - {{name: bg-check, item: '14', module: bg, target: '{db.target}', interval: {interval}}}\n")


def table(db: MariaDB, name: str, value: int) -> str:
    db.execute(f"DROP TABLE IF EXISTS einv.{name}", f"CREATE TABLE einv.{name} (v INT)",
               f"INSERT INTO einv.{name} VALUES ({value})")
    return name


def connections_accepted(conn: pymysql.Connection) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
        row = cursor.fetchone()
    assert row is not None
    return int(row[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read().decode()


def test_the_exporter_refreshes_in_the_background_on_kept_connections(mariadb: MariaDB,
                                                                      tmp_path: Path) -> None:
    name = table(mariadb, "bg_refresh", 1)
    path = tmp_path / "exporter.yml"
    path.write_text(config(mariadb, name, "300ms"), encoding="utf-8")
    port = free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    proc = Proc([str(exe), "--config", str(path), "--web.listen-address", f"127.0.0.1:{port}"],
                tmp_path / "exporter.log")
    url = f"http://127.0.0.1:{port}/metrics"
    root = mariadb.root()
    try:
        proc.wait_port(port)
        wait_until(lambda: sample(get(url), "einvoice_sql_bg_value", check="bg-check") == 1, timeout=30,
                   what="the first result")
        first_run = sample(get(url), "einvoice_check_last_run_timestamp_seconds", check="bg-check")
        assert first_run is not None
        accepted = connections_accepted(root)
        with root.cursor() as cursor:
            cursor.execute(f"UPDATE einv.{name} SET v = 2")
        # No scrape in between: the scheduler alone runs the query again.
        wait_until(lambda: sample(get(url), "einvoice_sql_bg_value", check="bg-check") == 2, timeout=30,
                   what="the new value, from a background run")

        def runs_later() -> bool:
            stamp = sample(get(url), "einvoice_check_last_run_timestamp_seconds", check="bg-check")
            return stamp is not None and stamp >= first_run + 1.5  # five intervals of 300 ms later

        wait_until(runs_later, timeout=30, what="more background runs")
        assert connections_accepted(root) == accepted, "a background run opened a new connection"
        text = get(url)
    finally:
        root.close()
        proc.stop()
    assert sample(text, "einvoice_check_up", check="bg-check") == 1
    assert sample(text, "probe_success", check="bg-check") == 1
    assert sample(text, "probe_duration_seconds", check="bg-check") is not None
    assert sample(text, "einvoice_sql_up", check="bg-check") == 1


@pytest.fixture
def runtime_for(mariadb: MariaDB):  # type: ignore[no-untyped-def]
    built: list[Runtime] = []

    def build(text: str) -> Runtime:
        runtime = Runtime(parse_config(text, "test.yml"), background=True)
        built.append(runtime)
        runtime.start()
        return runtime

    yield build
    for runtime in built:
        runtime.close()


def test_a_blocked_query_turns_the_served_result_stale_then_recovers(mariadb: MariaDB, runtime_for) -> None:  # type: ignore[no-untyped-def]
    name = table(mariadb, "bg_stale", 7)
    runtime = runtime_for(config(mariadb, name, "300ms", ", stale_after_intervals: 3"))

    def scraped() -> str:
        return runtime.render().decode()

    wait_until(lambda: sample(scraped(), "einvoice_sql_bg_value", check="bg-check") == 7, timeout=30,
               what="the first result")
    locker = mariadb.root()
    try:
        with locker.cursor() as cursor:
            cursor.execute(f"LOCK TABLES einv.{name} WRITE")  # the monitor's SELECT now waits
        # Scrapes keep answering from the last result, then say it is stale (> 3 x 300 ms old).
        wait_until(lambda: sample(scraped(), "einvoice_check_up", check="bg-check") == 0, timeout=30,
                   what="the result turning stale")
        stale = scraped()
        row = runtime.rows()[0]
        with locker.cursor() as cursor:
            cursor.execute("UNLOCK TABLES")
    finally:
        locker.close()
    assert sample(stale, "probe_success", check="bg-check") == 0
    assert sample(stale, "einvoice_sql_up", check="bg-check") == 0
    assert sample(stale, "einvoice_sql_bg_value", check="bg-check") is None, "old data served as current"
    assert sample(stale, "einvoice_check_failures_total", check="bg-check", reason="timeout") == 1
    assert row.last is not None and row.last.outcome.failure is not None
    assert row.last.outcome.failure.detail.startswith("stale: the last result started")
    assert "a run has been going for" in row.last.outcome.failure.detail

    wait_until(lambda: sample(scraped(), "einvoice_check_up", check="bg-check") == 1, timeout=30,
               what="a fresh result after the lock is released")
    assert sample(scraped(), "einvoice_sql_bg_value", check="bg-check") == 7
