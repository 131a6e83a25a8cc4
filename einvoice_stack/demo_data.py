"""The demo's data checks (items 14, 16, 17, 18, 19): a MariaDB of its own and a GoldenGate stand-in.

The platform's data checks read Oracle and MySQL, and GoldenGate's ggsci; none of these is here on a
fresh machine, but Debian's MariaDB is (scripts/install-debian-deps.sh). The demo starts one in the
run directory on a free loopback port, with small tables in the shape the checks of
config/example.yml read (push queue, source and target invoices, job log, sync queue) and a
read-only monitoring account whose password is in a file; a MariaDB event renews the rows' times
every 30 s, as a live platform would. The exporter runs the same kind of read-only aggregate queries
on it (the event itself is item 17's scheduled job), and the pipeline board (数据管道) shows items 14
and 17-19 with data. Item 16 is a `ggsci` stand-in: a shell script printing a healthy `INFO ALL`
(config/demo/ggsci-info-all.txt, the layout of the GGSCI reference's INFO ALL example). All values
are healthy, but for one hourly job 10 minutes late (within thresholds.yaml's 30-minute grace, so the
自动任务 panel lists it and nothing fires): the data checks add series, not alerts, to the demo's story.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from .mariadb import install_mariadb_datadir, mariadb_server_argv

REPO = Path(__file__).resolve().parents[1]
DATABASE = "einv"
MONITOR_USER = "einvoice_monitor"
CHECK_INTERVAL = "30s"
"""Heavy counts run every few minutes in production; the demo refreshes them every 30 s."""
INFO_ALL = REPO / "config" / "demo" / "ggsci-info-all.txt"

SCHEMA = (
    "CREATE DATABASE einv CHARACTER SET utf8mb4",
    "CREATE TABLE einv.push_queue (id INT PRIMARY KEY AUTO_INCREMENT, channel VARCHAR(32),"
    " status VARCHAR(16), created_at DATETIME)",
    "INSERT INTO einv.push_queue (channel, status, created_at) VALUES"
    " ('bureau', 'PENDING', NOW() - INTERVAL 2 MINUTE), ('bureau', 'PENDING', NOW() - INTERVAL 1 MINUTE),"
    " ('bureau', 'DONE', NOW() - INTERVAL 5 MINUTE), ('bank', 'DONE', NOW() - INTERVAL 3 MINUTE)",
    "CREATE TABLE einv.source_invoice (id INT PRIMARY KEY, created_at DATETIME)",
    "CREATE TABLE einv.target_invoice (id INT PRIMARY KEY, created_at DATETIME)",
    "INSERT INTO einv.source_invoice SELECT seq, NOW() - INTERVAL seq SECOND FROM einv.seq_1_to_120",
    "INSERT INTO einv.target_invoice SELECT id, created_at FROM einv.source_invoice",
    "CREATE TABLE einv.job_log (job_name VARCHAR(32), status VARCHAR(8), started_at DATETIME,"
    " expected_interval_seconds INT)",
    "INSERT INTO einv.job_log VALUES ('PUSH_HOURLY', 'OK', NOW() - INTERVAL 70 MINUTE, 3600),"
    " ('DAILY_RECONCILE', 'OK', NOW() - INTERVAL 2 HOUR, 86400)",
    "CREATE TABLE einv.sync_queue (id INT PRIMARY KEY AUTO_INCREMENT, status VARCHAR(8),"
    " created_at DATETIME)",
    "INSERT INTO einv.sync_queue (status, created_at) VALUES ('NEW', NOW()), ('NEW', NOW())",
    # The platform keeps moving: a MariaDB event (the scheduled job item 17 watches) renews the
    # times every 30 s, so no age grows into an alert however long the demo runs.
    "CREATE EVENT einv.demo_traffic ON SCHEDULE EVERY 30 SECOND DO BEGIN"
    " UPDATE einv.push_queue SET created_at = NOW() - INTERVAL 2 MINUTE WHERE status = 'PENDING';"
    " UPDATE einv.source_invoice SET created_at = NOW() - INTERVAL id SECOND;"
    " UPDATE einv.target_invoice SET created_at = NOW() - INTERVAL id SECOND;"
    " UPDATE einv.job_log SET started_at = NOW() - INTERVAL 70 MINUTE WHERE job_name = 'PUSH_HOURLY';"
    " UPDATE einv.sync_queue SET created_at = NOW() - INTERVAL 20 SECOND;"
    " END",
)
"""Fixed statements run as root at start (the database is `DATABASE`)."""


def _query(name: str, sql: str, values: list[str], labels: list[str] | None = None,
           const_labels: dict[str, str] | None = None) -> dict[str, Any]:
    query: dict[str, Any] = {"name": name, "sql": sql, "values": values}
    if labels:
        query["labels"] = labels
    if const_labels:
        query["const_labels"] = const_labels
    return query


QUERIES: dict[str, list[dict[str, Any]]] = {
    "demo_integrity": [  # item 14 数据检查
        _query("push_backlog", "SELECT channel, COUNT(*) AS push_backlog, COALESCE(TIMESTAMPDIFF(SECOND,"
               " MIN(created_at), NOW()), 0) AS push_oldest_unpushed_age_seconds FROM push_queue"
               " WHERE status = 'PENDING' GROUP BY channel",
               ["push_backlog", "push_oldest_unpushed_age_seconds"], ["channel"]),
        _query("invoice_count_source", "SELECT COUNT(*) AS data_count FROM source_invoice", ["data_count"],
               const_labels={"dataset": "invoice", "side": "source"}),
        _query("invoice_count_target", "SELECT COUNT(*) AS data_count FROM target_invoice", ["data_count"],
               const_labels={"dataset": "invoice", "side": "target"}),
    ],
    "demo_jobs": [  # item 17 业务数据自动任务检查
        _query("mysql_events", "SELECT CONCAT(db, '.', name) AS job, CASE WHEN status = 'ENABLED' THEN 0"
               " ELSE 1 END AS job_broken, CASE WHEN status = 'ENABLED' AND last_executed IS NOT NULL"
               " THEN GREATEST(0, TIMESTAMPDIFF(SECOND, last_executed, NOW()) - interval_value) ELSE 0 END"
               " AS job_overdue_seconds FROM mysql.event", ["job_broken", "job_overdue_seconds"], ["job"]),
        _query("job_log", "SELECT job_name AS job, SUM(CASE WHEN status = 'FAILED' AND started_at >"
               " NOW() - INTERVAL 1 DAY THEN 1 ELSE 0 END) AS job_failures, GREATEST(0, TIMESTAMPDIFF("
               "SECOND, MAX(started_at), NOW()) - MAX(expected_interval_seconds)) AS job_overdue_seconds"
               " FROM job_log GROUP BY job_name", ["job_failures", "job_overdue_seconds"], ["job"]),
    ],
    "demo_volume": [  # item 18 业务数据监控
        _query("business_volume", "SELECT 'issued' AS flow, COUNT(*) AS business_volume FROM source_invoice"
               " WHERE created_at >= NOW() - INTERVAL 1 HOUR", ["business_volume"], ["flow"]),
    ],
    "demo_sync": [  # item 19 数据同步接口监控
        _query("sync_queue", "SELECT COUNT(*) AS sync_backlog, COALESCE(TIMESTAMPDIFF(SECOND,"
               " MIN(created_at), NOW()), 0) AS sync_oldest_age_seconds FROM sync_queue"
               " WHERE status IN ('NEW', 'RETRY')",
               ["sync_backlog", "sync_oldest_age_seconds"]),
    ],
}
CHECKS = (("demo-data-integrity", "14", "demo_integrity"), ("demo-scheduled-jobs", "17", "demo_jobs"),
          ("demo-business-volume", "18", "demo_volume"), ("demo-sync-queue", "19", "demo_sync"))
"""(check name, item, module) of the SQL checks."""


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class DemoDatabase:
    """A MariaDB server in `base` (data directory, socket, log), started on a free loopback port."""

    def __init__(self, base: Path, host: str = "127.0.0.1") -> None:
        self.base = base
        self.host = host
        self.port = 0
        """Chosen by plan()."""
        self.password_file = base / "monitor_password"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binaries() -> tuple[str, str] | None:
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
        return (install, server) if install and server else None

    def plan(self) -> DemoDatabase:
        """Choose the port and write the monitoring account's password file (what the exporter's
        configuration names); start() makes the server that answers there."""
        self.port = _free_port(self.host)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
        self.password_file.chmod(0o600)
        return self

    def start(self, timeout: float = 60.0) -> DemoDatabase:
        """A fresh data directory, the server on the planned port, the tables and the account."""
        found = self.binaries()
        if found is None:
            raise RuntimeError("MariaDB is not installed (Debian package mariadb-server): run `make deps`")
        install, server = found
        if not self.port:
            self.plan()
        data = self.base / "data"
        install_mariadb_datadir(install, data)
        log_file = (self.base / "mariadb.log").open("ab")
        self.proc = subprocess.Popen(
            mariadb_server_argv(server, self.base, data, self.port, "--event-scheduler=ON", host=self.host),
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()
        self._wait(timeout)
        password = self.password_file.read_text().strip()
        self._execute(*SCHEMA,
                      f"CREATE USER '{MONITOR_USER}'@'%' IDENTIFIED BY '{password}'",
                      f"GRANT SELECT ON {DATABASE}.* TO '{MONITOR_USER}'@'%'",
                      f"GRANT SELECT ON mysql.event TO '{MONITOR_USER}'@'%'")
        return self

    def _connect(self) -> Any:
        import pymysql

        return pymysql.connect(unix_socket=str(self.base / "mysqld.sock"), user="root", connect_timeout=2,
                               autocommit=True)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with code {self.proc.returncode}: "
                                   + (self.base / "mariadb.log").read_text(errors="replace")[-2000:])
            try:
                self._connect().close()
                return
            except Exception as exc:  # not accepting connections yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd not answering after {timeout:.0f} s: {exc}") from None
            time.sleep(0.2)

    def _execute(self, *statements: str) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}/{DATABASE}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def ggsci_home(base: Path) -> Path:
    """A GoldenGate home whose `ggsci` prints a healthy INFO ALL, whatever it is asked."""
    base.mkdir(parents=True, exist_ok=True)
    ggsci = base / "ggsci"
    ggsci.write_text(f"#!/bin/sh\ncat >/dev/null\ncat '{INFO_ALL}'\n")
    ggsci.chmod(0o755)
    return base


def exporter_config(db: DemoDatabase, ogg_home: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The modules and checks the demo adds to config/demo/exporter.yml."""
    modules: dict[str, Any] = {
        module: {"kind": "sql", "timeout": "5s",
                 "sql": {"driver": "mysql", "username": MONITOR_USER, "password_file": str(db.password_file),
                         "queries": queries}}
        for module, queries in QUERIES.items()}
    modules["demo_ogg"] = {"kind": "goldengate", "timeout": "5s",
                           "goldengate": {"source": "ggsci", "lag_command": False, "send_status": False,
                                          "expected_stopped": ["JAGENT"]}}
    checks = [{"name": name, "item": item, "module": module, "target": db.target, "interval": CHECK_INTERVAL}
              for name, item, module in CHECKS]
    checks.append({"name": "demo-goldengate", "item": "16", "module": "demo_ogg", "target": str(ogg_home),
                   "interval": CHECK_INTERVAL})
    return modules, checks
