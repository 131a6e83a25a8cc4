"""The Oracle paths as far as no Oracle server is needed (none runs here): dialect parsing is in
test_sql.py; here, the real python-oracledb thin driver against a closed port and against a
listener that never answers, and the statements and limits sent to the server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from einvoice_exporter.collectors import sql
from einvoice_exporter.outcome import Reason

from tests.support.collectors import reason
from tests.support.procs import free_port


def oracle_settings(**extra: object) -> sql.Settings:
    return sql.Settings.model_validate({
        "driver": "oracle", "username": "einvoice_monitor", "password": "pw", "connect_timeout": 1.0,
        "queries": [{"name": "jobs", "values": ["failed"],
                     "sql": "SELECT COUNT(*) AS failed FROM user_scheduler_job_run_details"
                            " WHERE status = 'FAILED' AND log_date > SYSTIMESTAMP - INTERVAL '1' HOUR"}],
        **extra})


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """Accepts TCP connections and never says a word (an Oracle listener that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


def test_thin_driver_refused_is_a_metric() -> None:
    check = sql.SqlCollector(oracle_settings())
    try:
        outcome = check.run(f"127.0.0.1:{free_port()}/EINV", 3.0)
    finally:
        check.close()
    assert reason(outcome) is Reason.REFUSED, outcome.failure
    assert outcome.failure is not None and outcome.failure.detail.startswith("oracle error DPY-")
    assert outcome.metrics.value("einvoice_sql_up") == 0


def test_thin_driver_silent_listener_times_out(silent_listener: int) -> None:
    check = sql.SqlCollector(oracle_settings())
    started = time.monotonic()
    try:
        outcome = check.run(f"127.0.0.1:{silent_listener}/EINV", 2.0)
    finally:
        check.close()
    assert reason(outcome) in (Reason.TIMEOUT, Reason.REFUSED), outcome.failure
    assert time.monotonic() - started < 8.0
    assert outcome.metrics.value("einvoice_sql_up") == 0


def test_statements_and_limits_sent_to_oracle() -> None:
    assert sql.ORACLE_BEGIN == "SET TRANSACTION READ ONLY"
    assert sql.oracle_call_timeout_ms(2.5) == 2500
    assert sql.oracle_call_timeout_ms(0.0001) == 1  # 0 would mean "no limit" to oracledb
    assert all(sql.refuse_reason(q, "oracle") is None for q in sql.ORACLE_PRIVILEGE_QUERIES)
    assert sql.import_oracle_driver().__name__ in ("oracledb", "cx_Oracle")


def test_result_size_is_capped_on_the_server() -> None:
    oracle = sql.capped_statement("SELECT job, COUNT(*) AS n FROM j GROUP BY job;", 50, "oracle")
    assert oracle == "SELECT * FROM (SELECT job, COUNT(*) AS n FROM j GROUP BY job) WHERE ROWNUM <= 51"
    assert sql.refuse_reason(oracle, "oracle") is None
    mysql = sql.capped_statement("WITH c AS (SELECT 1 AS n) SELECT n FROM c", 2, "mysql")
    assert mysql == "SELECT * FROM (WITH c AS (SELECT 1 AS n) SELECT n FROM c) AS capped LIMIT 3"
    assert sql.refuse_reason(mysql, "mysql") is None


def test_mysql_and_mariadb_statement_building() -> None:
    assert sql.mysql_statement("SELECT 1", 1.5, mariadb=True) == \
        "SET STATEMENT max_statement_time=1.500 FOR SELECT 1"
    assert sql.mysql_statement("SELECT 1", 1.5, mariadb=False) == "SELECT 1"


def test_oracle_error_codes_are_bounded_reasons() -> None:
    import oracledb

    # A real driver error object: connecting to nothing raises DPY-6005 with its full_code.
    try:
        oracledb.connect(user="u", password="p", dsn=f"127.0.0.1:{free_port()}/X", tcp_connect_timeout=1)
    except oracledb.Error as exc:
        error = sql._Oracle.classify(exc)
    assert error.reason is Reason.REFUSED and "DPY-6005" in error.detail


@pytest.mark.parametrize("target", ["user:pw@db:1521/EINV", "db", "db:1521", "db:99999/EINV"])
def test_bad_targets_are_refused(target: str) -> None:
    with pytest.raises(ValueError):
        sql.validate_target(target)
