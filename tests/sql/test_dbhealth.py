"""The database-health templates of config/example.yml (issue 20) through the sql kind on a real
MariaDB primary and a replica the test starts (GTID replication on free ports): replication state
and heartbeat lag on the replica while its SQL thread is stopped and after it catches up; connections
against max_connections, the InnoDB buffer pool, an open transaction and the backup log on the
primary. The Oracle templates are parsed with the Oracle dialect at config load (no Oracle server
here); the views they read are named in config/example.yml."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from einvoice_exporter.collectors import sql
from einvoice_exporter.config import parse_config
from einvoice_exporter.outcome import Outcome

from tests.sql.conftest import MONITOR, new_mariadb
from tests.sql.conftest import MariaDB as Server
from tests.support.procs import wait_until

REPO = Path(__file__).resolve().parents[2]
ENV = {**{name: "x" for name in re.findall(r"\$\{([A-Z0-9_]+)\}",
                                           (REPO / "config" / "example.yml").read_text(encoding="utf-8"))},
       "EINV_MYSQL_PASSWORD": MONITOR[1]}
"""Every `${VAR}` of config/example.yml set (the MySQL one to the test account's password)."""
MAX_CONNECTIONS = 123


def _start(base: Path, server_id: int) -> Server:
    return new_mariadb(base, f"--server-id={server_id}", f"--log-bin={base / 'data' / 'binlog'}",
                       "--binlog-format=ROW", f"--max-connections={MAX_CONNECTIONS}")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    base = tmp_path_factory.mktemp("dbhealth")
    primary = _start(base / "primary", 1)
    try:
        replica = _start(base / "replica", 2)
    except BaseException:
        primary.stop()
        raise
    try:
        primary.execute("CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pw'",
                        "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        replica.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port},"
                        " MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos",
                        "START SLAVE")
        primary.execute(
            "CREATE DATABASE heartbeat",
            # pt-heartbeat's table, the one mysqld_exporter's heartbeat collector reads
            "CREATE TABLE heartbeat.heartbeat (ts VARCHAR(26) NOT NULL, server_id INT UNSIGNED NOT NULL"
            " PRIMARY KEY, file VARCHAR(255), position BIGINT UNSIGNED, relay_master_log_file VARCHAR(255),"
            " exec_master_log_pos BIGINT UNSIGNED)",
            "INSERT INTO heartbeat.heartbeat (ts, server_id) VALUES"
            " (DATE_FORMAT(NOW(6) - INTERVAL 1 HOUR, '%Y-%m-%dT%H:%i:%s.%f'), 1)",
            "CREATE DATABASE ops",
            "CREATE TABLE ops.backup_log (id INT PRIMARY KEY AUTO_INCREMENT, kind VARCHAR(16),"
            " status VARCHAR(8), finished_at DATETIME) ENGINE=InnoDB",
            "INSERT INTO ops.backup_log (kind, status, finished_at) VALUES"
            " ('full', 'OK', NOW() - INTERVAL 2 DAY), ('full', 'FAILED', NOW() - INTERVAL 1 HOUR),"
            " ('binlog', 'OK', NOW() - INTERVAL 10 MINUTE), ('binlog', 'OK', NOW() - INTERVAL 70 MINUTE)",
            f"CREATE USER '{MONITOR[0]}'@'%' IDENTIFIED BY '{MONITOR[1]}'",
            f"GRANT SELECT ON heartbeat.* TO '{MONITOR[0]}'@'%'",
            f"GRANT SELECT ON ops.* TO '{MONITOR[0]}'@'%'",
            f"GRANT PROCESS ON *.* TO '{MONITOR[0]}'@'%'",
        )
        monitor = f"SELECT COUNT(*) FROM mysql.user WHERE user = '{MONITOR[0]}'"
        wait_until(lambda: bool(replica.execute(monitor)[0][0])
                   and _table_exists(replica, "heartbeat", "heartbeat"), timeout=60,
                   what="the replica applying the primary's set-up")
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def _table_exists(server: Server, schema: str, table: str) -> bool:
    rows = server.execute("SELECT COUNT(*) FROM information_schema.tables"
                          f" WHERE table_schema = '{schema}' AND table_name = '{table}'")
    return bool(rows[0][0])


def _run(module_name: str, target: str) -> Outcome:
    path = REPO / "config" / "example.yml"
    config = parse_config(path.read_text(encoding="utf-8"), str(path), env=ENV)
    module = config.modules[module_name]
    assert module.kind == "sql" and module.sql.driver == "mysql"
    collector = sql.SqlCollector(module.sql.model_copy(update={"username": MONITOR[0]}))
    try:
        outcome = collector.run(target, 10.0)
    finally:
        collector.close()
    assert outcome.success, outcome.failure
    return outcome


def _replica(replica: Server) -> tuple[float, float, float]:
    """(slave running, stored heartbeat, now) as the mysql_replica template reports them."""
    m = _run("mysql_replica", f"127.0.0.1:{replica.port}/heartbeat").metrics
    running = m.value("einvoice_sql_mysql_global_status_slave_running", {"query": "replication"})
    stored = m.value("einvoice_sql_mysql_heartbeat_stored_timestamp_seconds", {"query": "heartbeat"})
    now = m.value("einvoice_sql_mysql_heartbeat_now_timestamp_seconds", {"query": "heartbeat"})
    assert running is not None and stored is not None and now is not None
    return running, stored, now


def test_replication_state_and_heartbeat_lag_on_a_real_replica(pair: tuple[Server, Server]) -> None:
    primary, replica = pair
    running, stored, now = _replica(replica)
    assert running == 1
    assert 3590 <= now - stored <= 3700  # the primary's heartbeat of an hour ago, replicated
    assert abs(now - time.time()) < 120

    replica.execute("STOP SLAVE SQL_THREAD")
    wait_until(lambda: _replica(replica)[0] == 0, timeout=30, what="Slave_running OFF")
    primary.execute("UPDATE heartbeat.heartbeat SET ts = DATE_FORMAT(NOW(6), '%Y-%m-%dT%H:%i:%s.%f')"
                    " WHERE server_id = 1")
    running, stored_stopped, now = _replica(replica)
    assert running == 0 and stored_stopped == stored  # the replica does not apply: lag stays an hour
    assert now - stored_stopped >= 3590

    replica.execute("START SLAVE SQL_THREAD")

    def caught_up() -> bool:
        running, stored, now = _replica(replica)
        return running == 1 and now - stored < 60

    wait_until(caught_up, timeout=60, interval=0.5, what="the replica catching up")


def test_connections_buffer_pool_transactions_and_backups_on_the_primary(pair: tuple[Server, Server]) -> None:
    primary, _ = pair
    target = f"127.0.0.1:{primary.port}/ops"
    holder = primary.root()
    try:
        with holder.cursor() as cursor:  # an open InnoDB transaction
            cursor.execute("START TRANSACTION")
            cursor.execute("UPDATE ops.backup_log SET status = status WHERE id = 1")
        m = _run("mysql_health", target).metrics
        assert m.value("einvoice_sql_innodb_trx_count", {"query": "innodb_trx"}) == 1
        oldest = m.value("einvoice_sql_innodb_trx_oldest_seconds", {"query": "innodb_trx"})
        assert oldest is not None and 0 <= oldest < 120
        with holder.cursor() as cursor:
            cursor.execute("ROLLBACK")
    finally:
        holder.close()

    m = _run("mysql_health", target).metrics
    status = {"query": "global_status"}
    assert m.value("einvoice_sql_mysql_global_variables_max_connections", status) == MAX_CONNECTIONS
    connected = m.value("einvoice_sql_mysql_global_status_threads_connected", status)
    assert connected is not None and 1 <= connected < MAX_CONNECTIONS
    total = m.value("einvoice_sql_mysql_global_status_innodb_buffer_pool_pages_total", status)
    free = m.value("einvoice_sql_mysql_global_status_innodb_buffer_pool_pages_free", status)
    assert total is not None and free is not None and 0 <= free <= total
    assert total * 16384 == pytest.approx(32 * 1024 * 1024, rel=0.1)  # --innodb-buffer-pool-size=32M
    requests_ = m.value("einvoice_sql_mysql_global_status_innodb_buffer_pool_read_requests", status)
    reads = m.value("einvoice_sql_mysql_global_status_innodb_buffer_pool_reads", status)
    assert requests_ is not None and reads is not None and requests_ >= reads >= 0 and requests_ > 0
    wait_until(lambda: _run("mysql_health", target).metrics.value(
        "einvoice_sql_innodb_trx_count", {"query": "innodb_trx"}) == 0, timeout=30,
        what="no open transaction once the holder rolled back")

    full = {"query": "backup_log", "backup_type": "full"}
    binlog = {"query": "backup_log", "backup_type": "binlog"}
    assert m.value("einvoice_sql_backup_last_failed", full) == 1
    assert m.value("einvoice_sql_backup_last_failed", binlog) == 0
    full_ok = m.value("einvoice_sql_backup_last_success_timestamp_seconds", full)
    binlog_ok = m.value("einvoice_sql_backup_last_success_timestamp_seconds", binlog)
    assert full_ok is not None and binlog_ok is not None
    assert 2 * 86400 - 120 <= time.time() - full_ok <= 2 * 86400 + 120
    assert 600 - 120 <= time.time() - binlog_ok <= 600 + 120
