"""The heartbeat source reads GG_LAG through a SQL connection: the same real MariaDB as tests/sql."""

from tests.sql.conftest import mariadb

__all__ = ["mariadb"]
