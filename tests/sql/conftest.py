"""A real MariaDB on a free port, with grant tables (the read-only assertion needs them), a monitor
account with SELECT only, and a small data set shaped like the push and job-log tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from einvoice_stack.mariadb import mariadb_server_argv
from tests.support.procs import (
    Proc,
    check_mariadb_datadir,
    free_port,
    install_mariadb_datadir,
    require_binary,
    wait_until,
)

MONITOR = ("monitor", "monitor-pw")
WRITER = ("writer", "writer-pw")
DATABASE = "einv"


@dataclass
class MariaDB:
    base: Path
    port: int
    server: str
    proc: Proc | None = None
    extra_args: tuple[str, ...] = ()
    """More mariadbd flags (a replica's server id and binary log)."""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> MariaDB:
        self.proc = Proc(mariadb_server_argv(self.server, self.base, self.base / "data", self.port,
                                             "--max-connections=400", *self.extra_args),
                         log=self.base / "mariadb.log")
        self.proc.wait_port(self.port, timeout=60)

        def answers() -> bool:
            try:
                self.root().close()
            except pymysql.err.OperationalError:
                return False
            return True

        wait_until(answers, timeout=30, what="mariadb answering")
        check_mariadb_datadir(self.port, self.base / "data")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)
            self.proc = None

    def root(self) -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2,
                               autocommit=True)

    def execute(self, *statements: str) -> list[tuple]:
        conn = self.root()
        try:
            with conn.cursor() as cursor:
                rows: list[tuple] = []
                for statement in statements:
                    cursor.execute(statement)
                    rows = list(cursor.fetchall())
                return rows
        finally:
            conn.close()


def new_mariadb(base: Path, *extra_args: str) -> MariaDB:
    """A fresh data directory (mariadb-install-db) and its server, started on a free port."""
    server = require_binary("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
    install_mariadb_datadir(base / "data")
    return MariaDB(base, free_port(), server, extra_args=extra_args).start()


def start_mariadb(base: Path) -> MariaDB:
    db = new_mariadb(base)
    db.execute(
        f"CREATE DATABASE {DATABASE}",
        f"CREATE TABLE {DATABASE}.push_queue (id INT PRIMARY KEY AUTO_INCREMENT, channel VARCHAR(32),"
        " status VARCHAR(16), taxpayer_id VARCHAR(20), created_at DATETIME)",
        f"INSERT INTO {DATABASE}.push_queue (channel, status, taxpayer_id, created_at) VALUES"
        " ('bureau', 'PENDING', '91450100MA5KQ7R2XH', NOW() - INTERVAL 30 MINUTE),"
        " ('bureau', 'PENDING', '91450100MA5KQ7R2XH', NOW() - INTERVAL 5 MINUTE),"
        " ('bank', 'FAILED', '91450100MA5KQ7R2XH', NOW() - INTERVAL 2 MINUTE),"
        " ('bank', 'DONE', '91450100MA5KQ7R2XH', NOW())",
        f"CREATE USER '{MONITOR[0]}'@'%' IDENTIFIED BY '{MONITOR[1]}'",
        f"GRANT SELECT ON {DATABASE}.* TO '{MONITOR[0]}'@'%'",
        f"GRANT SELECT ON mysql.event TO '{MONITOR[0]}'@'%'",
        f"CREATE USER '{WRITER[0]}'@'%' IDENTIFIED BY '{WRITER[1]}'",
        f"GRANT SELECT, INSERT, UPDATE ON {DATABASE}.* TO '{WRITER[0]}'@'%'",
    )
    return db


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    db = start_mariadb(tmp_path_factory.mktemp("sql-mariadb"))
    yield db
    db.stop()
