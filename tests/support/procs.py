"""Start real server processes (redis-server, nginx, prometheus, ...) on free ports, wait for them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from einvoice_stack.mariadb import install_mariadb_datadir as shared_install


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the kernel's choice); small race, good enough for tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, interval: float = 0.05,
               what: str = "condition") -> None:
    """Poll `predicate` until it is true or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def require_binary(name: str, *candidates: str) -> str:
    """Path of a server binary from Debian's packages; skip with the package to install if absent
    (CI installs them all, so a skip there is a CI bug, not a pass)."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    if os.environ.get("CI"):
        raise RuntimeError(f"{name} is not installed; .ci/run must install it")
    pytest.skip(f"{name} is not installed (apt-get install the Debian package)")


def install_mariadb_datadir(datadir: Path, attempts: int = 3) -> None:
    """A fresh MariaDB data directory, retried (einvoice_stack.mariadb, shared with the demo)."""
    install = require_binary("mariadb-install-db", "mysql_install_db")
    shared_install(install, datadir, attempts)


def check_mariadb_datadir(port: int, datadir: Path) -> None:
    """The MariaDB answering on `port` is the one of `datadir`: a server that lost its port to another
    test's in a race would otherwise pass every readiness check and vanish under its users later."""
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=5)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT @@datadir")
            row = cursor.fetchone()
    finally:
        conn.close()
    if row is None or Path(row[0]).resolve() != datadir.resolve():
        raise RuntimeError(f"port {port} answers with another MariaDB ({row}), not the one of {datadir}")


class Proc:
    """A server process started by a test, stopped (and its log shown on failure) at teardown."""

    def __init__(self, argv: Sequence[str], log: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(self.argv, stdout=self._log_file, stderr=subprocess.STDOUT,
                                      cwd=cwd, env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_port(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> Proc:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.argv[0]} exited early:\n{self.log_text()}")
            return port_open(port, host)

        wait_until(ready, timeout=timeout, what=f"{self.argv[0]} listening on {host}:{port}")
        return self

    def log_text(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._log_file.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)
