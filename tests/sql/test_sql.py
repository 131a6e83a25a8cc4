"""The `sql` kind against a real MariaDB: the three read-only guards, the server-side time bound,
aggregate-only results (taxpayer-looking labels refused, cardinality capped) and pool recovery."""

from __future__ import annotations

import time

import pytest
from einvoice_exporter.collectors import sql
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.outcome import Outcome, Reason

from tests.sql.conftest import MONITOR, WRITER, MariaDB
from tests.support.collectors import reason
from tests.support.procs import wait_until

TAXPAYER_ID = "91450100MA5KQ7R2XH"  # a 统一社会信用代码 with a valid check character (fixture data)


def settings(*queries: dict, account: tuple[str, str] = MONITOR, **extra: object) -> sql.Settings:
    return sql.Settings.model_validate({"driver": "mysql", "username": account[0], "password": account[1],
                                        "queries": list(queries), **extra})


BACKLOG = {"name": "push_backlog", "labels": ["channel"], "values": ["push_backlog", "oldest_age_seconds"],
           "sql": "SELECT channel, COUNT(*) AS push_backlog,"
                  " COALESCE(TIMESTAMPDIFF(SECOND, MIN(created_at), NOW()), 0) AS oldest_age_seconds"
                  " FROM push_queue WHERE status = 'PENDING' GROUP BY channel"}


def run(check: sql.SqlCollector, db: MariaDB, timeout: float = 5.0) -> Outcome:
    return check.run(db.target, timeout)


def test_aggregates_become_series(mariadb: MariaDB) -> None:
    check = sql.SqlCollector(settings(BACKLOG, {"name": "failures", "values": ["push_failures"],
                                                "const_labels": {"dataset": "invoice"},
                                                "sql": "SELECT COUNT(*) AS push_failures FROM push_queue"
                                                       " WHERE status = 'FAILED'"}))
    try:
        outcome = run(check, mariadb)
    finally:
        check.close()
    assert outcome.success, outcome.failure
    m = outcome.metrics
    assert m.value("einvoice_sql_up") == 1
    assert m.value("einvoice_sql_push_backlog", {"query": "push_backlog", "channel": "bureau"}) == 2
    age = m.value("einvoice_sql_oldest_age_seconds", {"query": "push_backlog", "channel": "bureau"})
    assert age is not None and 1790 <= age <= 1900
    assert m.value("einvoice_sql_push_failures", {"query": "failures", "dataset": "invoice"}) == 1
    assert m.value("einvoice_sql_query_success", {"query": "failures"}) == 1


@pytest.mark.parametrize(("dialect", "statement", "named"), [
    ("mysql", "INSERT INTO push_queue (status) VALUES ('X')", "DML (INSERT)"),
    ("mysql", "UPDATE push_queue SET status = 'DONE'", "DML (UPDATE)"),
    ("mysql", "DELETE FROM push_queue", "DML (DELETE)"),
    ("mysql", "DROP TABLE push_queue", "DDL (DROP)"),
    ("mysql", "CREATE TABLE x (a INT)", "DDL (CREATE)"),
    ("mysql", "SELECT id FROM push_queue FOR UPDATE", "FOR UPDATE"),
    ("mysql", "SELECT id FROM push_queue LOCK IN SHARE MODE", "locking read"),
    ("mysql", "SELECT 1; SELECT 2", "2 statements"),
    ("mysql", "SELECT 1; DELETE FROM push_queue", "2 statements"),
    ("mysql", "SELECT id INTO OUTFILE '/tmp/x' FROM push_queue", "INTO OUTFILE"),
    ("mysql", "SELECT id FROM push_queue INTO DUMPFILE '/tmp/x'", "INTO DUMPFILE"),
    ("mysql", "SELECT COUNT(*) INTO @n FROM push_queue", "SELECT … INTO"),
    ("mysql", "CALL refresh_stats()", "procedure call"),
    ("mysql", "SELECT LOAD_FILE('/etc/passwd') AS f", "LOAD_FILE"),
    ("mysql", "SET @a = 1", "SET"),
    ("oracle", "BEGIN DELETE FROM t; END;", "PL/SQL block"),
    ("oracle", "DECLARE n NUMBER; BEGIN SELECT 1 INTO n FROM dual; END;", "PL/SQL block"),
    ("oracle", "SELECT id FROM t FOR UPDATE NOWAIT", "FOR UPDATE"),
    ("oracle", "MERGE INTO t USING s ON (t.a = s.a) WHEN MATCHED THEN UPDATE SET t.b = 1", "DML (MERGE)"),
    ("oracle", "EXEC dbms_stats.gather_schema_stats('EINV')", "procedure call"),
    ("oracle", "LOCK TABLE t IN EXCLUSIVE MODE", "LOCK statement"),
    ("oracle", "SELECT utl_http.request('http://x') AS r FROM dual", "UTL_HTTP"),
])
def test_parser_refuses_anything_but_a_plain_query(dialect: str, statement: str, named: str) -> None:
    refused = sql.refuse_reason(statement, dialect)
    assert refused is not None and named in refused


@pytest.mark.parametrize(("dialect", "statement"), [
    ("mysql", BACKLOG["sql"]),
    ("mysql", "WITH c AS (SELECT status FROM push_queue) SELECT COUNT(*) AS n FROM c"),
    ("mysql", "SELECT COUNT(*) AS n FROM a UNION ALL SELECT COUNT(*) FROM b"),
    ("mysql", "SELECT SLEEP(1) AS slept"),
    ("oracle", "SELECT job_name, status FROM user_scheduler_job_run_details"
               " WHERE log_date > SYSTIMESTAMP - INTERVAL '1' HOUR"),
    ("oracle", "SELECT COUNT(*) AS n FROM t FETCH FIRST 5 ROWS ONLY"),
    ("oracle", "SELECT incoming_path AS path, incoming_lag AS lag_seconds FROM gg_lag"),
])
def test_parser_accepts_plain_queries(dialect: str, statement: str) -> None:
    assert sql.refuse_reason(statement, dialect) is None


def test_config_load_names_the_module_and_query() -> None:
    text = """
modules:
  push_db:
    kind: sql
    sql:
      driver: mysql
      username: monitor
      password: x
      queries:
        - {name: sneaky, sql: "SELECT id FROM push_queue FOR UPDATE", values: [id]}
checks:
  - {name: push-backlog, item: "14", module: push_db, target: "db:3306/einv"}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    message = str(caught.value)
    assert "push_db" in message and "sneaky" in message and "FOR UPDATE" in message


def test_write_past_the_parser_fails_in_the_read_only_transaction(mariadb: MariaDB) -> None:
    # A write the parser cannot see: a stored function that INSERTs, called from a plain SELECT. The
    # writer account may INSERT and EXECUTE and the privilege assertion is off, so the read-only
    # transaction is the only guard left; it must refuse the write in the database.
    mariadb.execute(
        "CREATE OR REPLACE FUNCTION einv.sneaky() RETURNS INT MODIFIES SQL DATA"
        " BEGIN INSERT INTO einv.push_queue (channel, status) VALUES ('x', 'PENDING'); RETURN 1; END",
        f"GRANT EXECUTE ON FUNCTION einv.sneaky TO '{WRITER[0]}'@'%'")
    statement = "SELECT einv.sneaky() AS n"
    assert sql.refuse_reason(statement, "mysql") is None  # it passes the parser
    query = {"name": "sneaky", "sql": statement, "values": ["n"]}
    check = sql.SqlCollector(settings(query, account=WRITER, assert_read_only=False))
    before = mariadb.execute("SELECT COUNT(*) FROM einv.push_queue")[0][0]
    try:
        outcome = run(check, mariadb)
    finally:
        check.close()
    assert reason(outcome) is Reason.ERROR
    assert outcome.failure is not None and "1792" in outcome.failure.detail
    assert "read-only transaction" in outcome.failure.detail
    assert mariadb.execute("SELECT COUNT(*) FROM einv.push_queue")[0][0] == before


def test_account_with_write_privileges_is_refused(mariadb: MariaDB) -> None:
    check = sql.SqlCollector(settings(BACKLOG, account=WRITER))
    try:
        outcome = run(check, mariadb)
    finally:
        check.close()
    assert reason(outcome) is Reason.AUTH
    assert outcome.failure is not None and "INSERT" in outcome.failure.detail
    assert "UPDATE" in outcome.failure.detail
    assert outcome.metrics.value("einvoice_sql_push_backlog", {"query": "push_backlog",
                                                               "channel": "bureau"}) is None


def test_mysql_grant_parsing() -> None:
    assert sql.mysql_write_privileges([
        "GRANT USAGE ON *.* TO `monitor`@`%` IDENTIFIED BY PASSWORD '*X'",
        "GRANT SELECT, SHOW VIEW ON `einv`.* TO `monitor`@`%`",
        "GRANT SELECT (id, status) ON `einv`.`push_queue` TO `monitor`@`%`"]) == []
    root = "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"
    assert sql.mysql_write_privileges([root]) == ["ALL PRIVILEGES", "GRANT OPTION"]
    assert sql.mysql_write_privileges(["GRANT `etl_role` TO `monitor`@`%`"]) == ["role `etl_role`"]


def test_sleep_is_stopped_on_the_server_at_the_timeout(mariadb: MariaDB) -> None:
    check = sql.SqlCollector(settings({"name": "slow", "sql": "SELECT SLEEP(30) AS slept",
                                       "values": ["slept"]}))
    started = time.monotonic()
    try:
        outcome = check.run(mariadb.target, 1.0)
    finally:
        check.close()
    elapsed = time.monotonic() - started
    assert reason(outcome) is Reason.TIMEOUT, outcome.failure
    assert elapsed < 4.0
    # Stopped on the server, not abandoned: no SLEEP left in the process list.

    def no_sleep() -> bool:
        return not mariadb.execute("SELECT id FROM information_schema.processlist"
                                   " WHERE info LIKE 'SET STATEMENT max_statement_time%SLEEP(30)%'")

    wait_until(no_sleep, timeout=2.0, what="the SLEEP query gone from the server")


def test_kill_query_when_the_server_does_not_stop_the_statement(mariadb: MariaDB) -> None:
    # As with a server that has no statement time limit: the client's read timeout (deadline + 2 s)
    # ends the wait, and a second connection sends KILL QUERY so the statement does not run on.
    check = sql.SqlCollector(settings({"name": "slow", "sql": "SELECT SLEEP(30) AS slept",
                                       "values": ["slept"]}))
    assert isinstance(check.driver, sql._MySQL)
    check.driver.server_time_limit = False
    try:
        outcome = check.run(mariadb.target, 1.0)
    finally:
        check.close()
    assert reason(outcome) is Reason.TIMEOUT, outcome.failure
    assert outcome.failure is not None and "KILL QUERY" in outcome.failure.detail

    def no_sleep() -> bool:
        return not mariadb.execute("SELECT id FROM information_schema.processlist"
                                   " WHERE info = 'SELECT SLEEP(30) AS slept'")

    wait_until(no_sleep, timeout=3.0, what="the SLEEP query killed on the server")


def test_label_that_looks_like_a_taxpayer_id_fails_the_check(mariadb: MariaDB) -> None:
    check = sql.SqlCollector(settings({"name": "by_taxpayer", "labels": ["channel"], "values": ["n"],
                                       "sql": "SELECT taxpayer_id AS channel, COUNT(*) AS n FROM push_queue"
                                              " GROUP BY taxpayer_id"}))
    try:
        outcome = run(check, mariadb)
    finally:
        check.close()
    assert reason(outcome) is Reason.BAD_CONTENT
    assert outcome.failure is not None and "taxpayer ID" in outcome.failure.detail
    assert TAXPAYER_ID not in outcome.failure.detail
    assert outcome.metrics.value("einvoice_sql_query_success", {"query": "by_taxpayer"}) == 0
    assert "einvoice_sql_n" not in outcome.metrics.names()


def test_cardinality_cap(mariadb: MariaDB) -> None:
    query = {"name": "by_status", "labels": ["status"], "values": ["n"], "max_rows": 2,
             "sql": "SELECT status, COUNT(*) AS n FROM push_queue GROUP BY status"}
    check = sql.SqlCollector(settings(query))
    try:
        capped = run(check, mariadb)
    finally:
        check.close()
    assert reason(capped) is Reason.BAD_CONTENT
    assert capped.failure is not None and "max_rows" in capped.failure.detail
    assert "einvoice_sql_n" not in capped.metrics.names()
    wide = sql.SqlCollector(settings({**query, "max_rows": 3}))
    try:
        ok = run(wide, mariadb)
    finally:
        wide.close()
    assert ok.success and ok.metrics.value("einvoice_sql_n", {"query": "by_status", "status": "PENDING"}) == 2


def test_with_and_union_queries_run_through_the_cap(mariadb: MariaDB) -> None:
    check = sql.SqlCollector(settings(
        {"name": "cte", "values": ["n"],
         "sql": "WITH p AS (SELECT status FROM push_queue WHERE status = 'PENDING')"
                " SELECT COUNT(*) AS n FROM p"},
        {"name": "sides", "labels": ["side"], "values": ["n"],
         "sql": "SELECT 'source' AS side, COUNT(*) AS n FROM push_queue UNION ALL"
                " SELECT 'target' AS side, COUNT(*) AS n FROM push_queue WHERE status = 'DONE'"}))
    try:
        outcome = run(check, mariadb)
    finally:
        check.close()
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("einvoice_sql_n", {"query": "cte"}) == 2
    assert outcome.metrics.value("einvoice_sql_n", {"query": "sides", "side": "target"}) == 1


def test_undeclared_column_is_refused(mariadb: MariaDB) -> None:
    check = sql.SqlCollector(settings({"name": "rows", "values": ["n"],
                                       "sql": "SELECT COUNT(*) AS n, MAX(taxpayer_id) AS t FROM push_queue"}))
    try:
        outcome = run(check, mariadb)
    finally:
        check.close()
    assert reason(outcome) is Reason.BAD_CONTENT
    assert outcome.failure is not None and "undeclared column(s) t" in outcome.failure.detail


def test_wrong_password_is_auth_without_the_password(mariadb: MariaDB) -> None:
    check = sql.SqlCollector(settings(BACKLOG, account=("monitor", "wrong-secret")))
    try:
        outcome = run(check, mariadb)
    finally:
        check.close()
    assert reason(outcome) is Reason.AUTH
    assert outcome.failure is not None and "wrong-secret" not in outcome.failure.detail
    assert outcome.metrics.value("einvoice_sql_up") == 0


def test_pool_recovers_after_the_server_restarts(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.sql.conftest import start_mariadb

    db = start_mariadb(tmp_path_factory.mktemp("sql-restart"))
    check = sql.SqlCollector(settings(BACKLOG))
    try:
        assert run(check, db).success
        pooled = check.pools[db.target].idle[0]
        db.stop()
        down = run(check, db, timeout=3.0)
        assert reason(down) in (Reason.REFUSED, Reason.RESET)
        assert down.metrics.value("einvoice_sql_up") == 0
        db.start()
        # The connection pooled before the restart is dead; the run notices, reconnects, succeeds.
        back = run(check, db)
        assert back.success, back.failure
        assert check.pools[db.target].idle[0] is not pooled
        # A restart between two runs (no failed run in between) costs no failed run either.
        db.stop()
        db.start()
        again = run(check, db)
        assert again.success, again.failure
    finally:
        check.close()
        db.stop()
