"""A throwaway MariaDB server for the demo and the tests: its data directory and its command line.

Small (a 32 MB buffer pool), without binary log, and without Linux native AIO: AIO contexts are a
machine-wide budget (fs.aio-max-nr) that parallel servers exhaust ("io_setup() failed").
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def install_mariadb_datadir(install: str, datadir: Path, attempts: int = 3) -> None:
    """A fresh data directory (`install` is mariadb-install-db), retried from an empty directory: on
    a loaded machine the bootstrap server now and then fails; the last attempt's output is the error."""
    argv = [install, "--no-defaults", f"--datadir={datadir}", "--user=root", "--skip-test-db",
            "--auth-root-authentication-method=normal", "--innodb-use-native-aio=0"]
    output = ""
    for _ in range(attempts):
        shutil.rmtree(datadir, ignore_errors=True)
        datadir.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(argv, capture_output=True, timeout=180)
        if done.returncode == 0:
            return
        output = f"exit {done.returncode}:\n{(done.stdout + done.stderr).decode(errors='replace')[-3000:]}"
    raise RuntimeError(f"{install} failed {attempts} times; last {output}")


def mariadb_server_argv(server: str, base: Path, datadir: Path, port: int, *extra: str,
                        host: str = "127.0.0.1") -> list[str]:
    """mariadbd on `host:port`, its socket and pid file in `base`, root without a password."""
    return [server, "--no-defaults", f"--datadir={datadir}", f"--socket={base / 'mysqld.sock'}",
            f"--port={port}", f"--bind-address={host}", "--user=root", "--skip-log-bin",
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--innodb-use-native-aio=0",
            f"--pid-file={base / 'mysqld.pid'}", "--character-set-server=utf8mb4", *extra]
