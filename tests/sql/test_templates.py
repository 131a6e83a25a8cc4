"""The ready-made checks of config/example.yml: every SQL template passes the parser with its dialect,
its value columns are the ones the generated rules read, and the MySQL ones run on a real MariaDB
with tables shaped as the templates expect (Oracle ones cannot run here: no Oracle server)."""

from __future__ import annotations

import re
from pathlib import Path

from einvoice_exporter.collectors import sql
from einvoice_exporter.config import parse_config
from einvoice_exporter.schema import ExporterConfig

from einvoice_core.generate.rules_data import SQL_COLUMNS
from tests.sql.conftest import MONITOR, MariaDB

REPO = Path(__file__).resolve().parents[2]
DB_HEALTH = {"mysql_health", "mysql_replica"}
"""Database-health templates: they read a primary and a replica, run in test_dbhealth.py."""
# Every secret the example reads from the environment (placeholders), the MySQL one for real.
ENV = {**dict.fromkeys(re.findall(r"\$\{([A-Z0-9_]+)\}",
                                  (REPO / "config" / "example.yml").read_text(encoding="utf-8")), "x"),
       "EINV_MYSQL_PASSWORD": MONITOR[1]}


def _config() -> ExporterConfig:
    path = REPO / "config" / "example.yml"
    return parse_config(path.read_text(encoding="utf-8"), str(path), env=ENV)


def test_template_columns_are_the_ones_the_rules_read() -> None:
    config = _config()
    by_item: dict[str, set[str]] = {}
    for check in config.checks:
        module = config.modules[check.module]
        if module.kind == "sql":
            for query in module.sql.queries:
                by_item.setdefault(check.item, set()).update(query.values)
    for item, columns in SQL_COLUMNS.items():
        assert set(columns) <= by_item[item], (item, set(columns) - by_item[item])


def test_mysql_templates_run_on_mariadb(mariadb: MariaDB) -> None:
    mariadb.execute(
        "CREATE TABLE IF NOT EXISTS einv.invoice (id INT PRIMARY KEY AUTO_INCREMENT, created_at DATETIME)",
        "INSERT INTO einv.invoice (created_at) VALUES (DATE_FORMAT(NOW() - INTERVAL 1 HOUR,"
        " '%Y-%m-%d %H:10:00')), (DATE_FORMAT(NOW() - INTERVAL 1 HOUR, '%Y-%m-%d %H:20:00')), (NOW())",
        "CREATE TABLE IF NOT EXISTS einv.job_log (job_name VARCHAR(64), status VARCHAR(16),"
        " started_at DATETIME, expected_interval_seconds INT)",
        "INSERT INTO einv.job_log VALUES ('PUSH_DAILY', 'FAILED', NOW() - INTERVAL 2 HOUR, 86400),"
        " ('PUSH_DAILY', 'OK', NOW() - INTERVAL 26 HOUR, 86400),"
        " ('SYNC_HOURLY', 'OK', NOW() - INTERVAL 3 HOUR, 3600)",
        "CREATE TABLE IF NOT EXISTS einv.sync_queue (id INT PRIMARY KEY AUTO_INCREMENT, status VARCHAR(8),"
        " created_at DATETIME)",
        "INSERT INTO einv.sync_queue (status, created_at) VALUES ('NEW', NOW() - INTERVAL 10 MINUTE),"
        " ('RETRY', NOW() - INTERVAL 1 MINUTE), ('DONE', NOW() - INTERVAL 1 DAY)",
        "CREATE EVENT IF NOT EXISTS einv.purge_tmp ON SCHEDULE EVERY 1 HOUR DISABLE"
        " DO DELETE FROM einv.sync_queue WHERE status = 'DONE'",
    )
    config = _config()
    results = {}
    for check in config.checks:
        module = config.modules[check.module]
        if module.kind == "sql" and module.sql.driver == "mysql" and check.module not in DB_HEALTH:
            collector = sql.SqlCollector(module.sql.model_copy(update={"username": MONITOR[0]}))
            try:
                results[check.name] = collector.run(mariadb.target, 10.0)
            finally:
                collector.close()
    assert set(results) == {"counts-target", "mysql-jobs", "sync-queue"}
    for name, outcome in results.items():
        assert outcome.success, (name, outcome.failure)
    m = results["counts-target"].metrics
    assert m.value("einvoice_sql_data_count", {"query": "invoice_count", "dataset": "invoice",
                                               "side": "target"}) == 2
    jobs = results["mysql-jobs"].metrics
    assert jobs.value("einvoice_sql_job_failures", {"query": "job_log", "job": "PUSH_DAILY"}) == 1
    overdue = jobs.value("einvoice_sql_job_overdue_seconds", {"query": "job_log", "job": "SYNC_HOURLY"})
    assert overdue is not None and 7190 <= overdue <= 7300
    assert jobs.value("einvoice_sql_job_broken", {"query": "mysql_events", "job": "einv.purge_tmp"}) == 1
    sync = results["sync-queue"].metrics
    assert sync.value("einvoice_sql_sync_backlog", {"query": "sync_queue"}) == 2
    age = sync.value("einvoice_sql_sync_oldest_age_seconds", {"query": "sync_queue"})
    assert age is not None and 595 <= age <= 700
