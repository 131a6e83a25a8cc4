"""Collector of kind `sql`: read-only aggregate queries on Oracle (oracledb thin, or cx_Oracle where
installed) and MySQL/MariaDB (pymysql).

Items 14 (data completeness and push), 17 (scheduled jobs), 18 (business volumes) and 19 (sync queue).
Ready-made queries for each are in config/example.yml; the target names the database without
credentials: `host[:port]/service_name` for Oracle (Easy Connect), `host[:port]/database` for MySQL.

    modules:
      push_db:
        kind: sql
        timeout: 20s
        sql:
          driver: oracle
          username: einvoice_monitor
          password_file: /etc/einvoice/oracle-monitor.pw
          queries:
            - name: push_backlog
              sql: SELECT COUNT(*) AS push_backlog FROM push_queue WHERE status = 'PENDING'
              values: [push_backlog]
    checks:
      - {name: push-backlog, item: "14", module: push_db, target: "10.1.4.10:1521/EINV", interval: 5m}

Read-only three ways: (1) every statement is parsed at config load with the driver's dialect and
refused unless it is one plain query (`_sqlsafe`); (2) every statement runs in a read-only transaction
(MySQL: the session's transactions are READ ONLY and autocommit makes each statement one; Oracle: `SET
TRANSACTION READ ONLY` before the queries, ROLLBACK after), so a write the parser missed fails in the
database; (3) with `assert_read_only` (the default) the first connection to a target lists the
account's privileges and the check fails while any of them can write. Grants: docs/runbook.md.

Time: the database stops a statement at the check's deadline (MariaDB `SET STATEMENT
max_statement_time=… FOR`, MySQL `max_execution_time`, Oracle `call_timeout`); should the server not
answer, the client's read timeout ends the wait and a second connection sends `KILL QUERY`.

Aggregates only: every result column is declared as a value (a number, a date becomes a Unix time,
NULL becomes 0) or a label; a result with more rows than `max_rows` fails (the label cardinality cap);
a label value that looks like taxpayer data (tax ID, invoice number, phone, ID card; the detectors
of einvoice_core.redaction) fails the check with a reason instead of being exported. Rows never
appear in logs or failure details, and neither do the database's error messages (they can quote
values): a failure names the error code only.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, StringConstraints, model_validator

from einvoice_core.redaction import MARK_ID_CARD, MARK_INVOICE, MARK_NAME, MARK_PHONE, MARK_TAX_ID, redact

from ..fields import StrictModel, one_of_secret, resolve_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from ._sqlsafe import Dialect, refuse_reason

ColumnName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
"""A result column, lower case (Oracle's upper-case names are compared in lower case). A value
column becomes the metric `einvoice_sql_<column>`; a label column becomes a label of that name."""
QueryName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
RESERVED_LABELS = frozenset({"item", "zone", "check", "target", "query", "reason", "le", "quantile"})
MAX_LABEL_LENGTH = 128
_TARGET_RE = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?"
                        r"/(?P<name>[A-Za-z0-9_.$#-]{1,128})$")
_MARK_KIND = {MARK_TAX_ID: "a taxpayer ID", MARK_INVOICE: "an invoice number", MARK_PHONE: "a phone number",
              MARK_ID_CARD: "an ID card number", MARK_NAME: "a taxpayer name"}


class Query(StrictModel):
    """One aggregate query and how its result columns become series."""

    name: QueryName
    """The `query` label of its series, and how errors name it."""
    sql: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    values: list[ColumnName] = Field(min_length=1)
    """Numeric columns; each becomes `einvoice_sql_<column>`."""
    labels: list[ColumnName] = Field(default_factory=list)
    """Columns whose values become labels: categories (a channel, a job name), never identifiers."""
    const_labels: dict[ColumnName, Annotated[str, StringConstraints(max_length=MAX_LABEL_LENGTH)]] = \
        Field(default_factory=dict)
    """Fixed labels on every series of the query (`side: source`, `dataset: invoice`)."""
    max_rows: Annotated[int, Field(ge=1, le=1000)] = 50
    """Label cardinality cap: a result with more rows fails the check rather than being exported."""

    @model_validator(mode="after")
    def _columns(self) -> Query:
        every = [*self.values, *self.labels, *self.const_labels]
        twice = sorted({c for c in every if every.count(c) > 1})
        if twice:
            raise ValueError(f"query {self.name}: column(s) {', '.join(twice)} declared more than once"
                             " (as value, label or const label)")
        reserved = sorted(set(self.labels) | set(self.const_labels) & RESERVED_LABELS)
        reserved = [c for c in reserved if c in RESERVED_LABELS]
        if reserved:
            raise ValueError(f"query {self.name}: label(s) {', '.join(reserved)} are reserved for the"
                             " exporter; alias the column to another name")
        return self


class Settings(StrictModel):
    """Settings of a `sql` module."""

    driver: Literal["oracle", "mysql"]
    """oracle: python-oracledb in thin mode (cx_Oracle when oracledb is absent). mysql: pymysql, for
    MySQL and MariaDB."""
    username: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: SecretStr | None = None
    """Usually `${ENV_VAR}`; or `password_file`."""
    password_file: Path | None = None
    pool_size: Annotated[int, Field(ge=1, le=16)] = 2
    """Connections kept per target; runs beyond it wait for a free one until their deadline."""
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    assert_read_only: bool = True
    """On the first connection to a target, list the account's privileges and fail the check while
    any of them can change data (see docs/runbook.md for the minimal grants)."""
    queries: list[Query] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _validate(self) -> Settings:
        one_of_secret(self.password, self.password_file, "password")
        names = [q.name for q in self.queries]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"query name(s) {', '.join(twice)} used more than once")
        for query in self.queries:
            refused = refuse_reason(query.sql, self.dialect)
            if refused is not None:
                raise ValueError(
                    f"query {query.name} is not a plain read-only query: it is or contains {refused}."
                    " SQL checks run one SELECT (or UNION/WITH) only; rewrite it as an aggregate SELECT")
        return self

    @property
    def dialect(self) -> Dialect:
        return "oracle" if self.driver == "oracle" else "mysql"


def parse_target(target: str) -> tuple[str, int | None, str]:
    """`host[:port]/name` -> (host, port or None, name): the database, never credentials."""
    match = _TARGET_RE.fullmatch(target)
    if match is None:
        raise ValueError("expected host[:port]/database (MySQL) or host[:port]/service_name (Oracle),"
                         " without user or password")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return match["host"].strip("[]"), port, match["name"]


def validate_target(target: str) -> str:
    parse_target(target)
    return target


# --------------------------------------------------------------------------------------------
# Turning a result into series


class ResultRefusedError(Exception):
    """A result that must not be exported; the message names columns and counts, never values."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _number(column: str, value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).timestamp()
    if hasattr(value, "total_seconds"):  # timedelta, Oracle INTERVAL DAY TO SECOND
        return float(value.total_seconds())
    raise ResultRefusedError(Reason.BAD_CONTENT, f"value column {column} is not a number")


_ACCEPTED_LABELS: set[str] = set()
"""Label values already checked and found clean: categories repeat on every run, and the taxpayer
detectors are a tenth of a run's CPU. Refused values are never kept; the set is bounded."""
_ACCEPTED_MAX = 4096


def _label(column: str, value: Any) -> str:
    if value is None:
        return ""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if text in _ACCEPTED_LABELS:
        return text
    if len(text) > MAX_LABEL_LENGTH:
        raise ResultRefusedError(Reason.BAD_CONTENT, f"label column {column} holds a value longer than"
                                                f" {MAX_LABEL_LENGTH} characters")
    cleaned = redact(text)
    if cleaned != text:
        kind = next((name for mark, name in _MARK_KIND.items() if mark in cleaned), "taxpayer data")
        raise ResultRefusedError(Reason.BAD_CONTENT, f"label column {column} holds a value that looks like"
                                                f" {kind}; labels must be categories, not identifiers")
    if len(_ACCEPTED_LABELS) >= _ACCEPTED_MAX:
        _ACCEPTED_LABELS.clear()
    _ACCEPTED_LABELS.add(text)
    return text


def result_samples(query: Query, columns: Sequence[str], rows: Sequence[Sequence[Any]]
                   ) -> list[tuple[str, dict[str, str], float]]:
    """(metric, labels, value) for each value column of each row, or ResultRefusedError."""
    names = [c.lower() for c in columns]
    declared = {*query.values, *query.labels}
    undeclared = [c for c in names if c not in declared]
    if undeclared:
        raise ResultRefusedError(Reason.BAD_CONTENT, f"query {query.name} returned undeclared column(s)"
                            f" {', '.join(undeclared)}; declare each as a value or a label")
    missing = sorted(declared - set(names))
    if missing:
        raise ResultRefusedError(Reason.BAD_CONTENT, f"query {query.name} did not return declared column(s)"
                            f" {', '.join(missing)}")
    if len(rows) > query.max_rows:
        raise ResultRefusedError(Reason.BAD_CONTENT, f"query {query.name} returned more than {query.max_rows}"
                            " rows (max_rows, the label cardinality cap)")
    index = {name: i for i, name in enumerate(names)}
    samples: list[tuple[str, dict[str, str], float]] = []
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        labels = {"query": query.name, **query.const_labels}
        for column in query.labels:
            labels[column] = _label(column, row[index[column]])
        key = tuple(labels.values())
        if key in seen:
            raise ResultRefusedError(Reason.BAD_CONTENT, f"query {query.name} returned two rows with the same"
                                " labels; group by every label column")
        seen.add(key)
        for column in query.values:
            samples.append((f"einvoice_sql_{column}", labels, _number(column, row[index[column]])))
    return samples


# --------------------------------------------------------------------------------------------
# Drivers


class DriverError(Exception):
    """A database error reduced to a bounded reason and a code: never the server's message text."""

    def __init__(self, reason: Reason, detail: str, *, connection_lost: bool = False) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.connection_lost = connection_lost


# MySQL/MariaDB error codes (server and client) and what they mean for the check.
_MYSQL_CODES: dict[int, tuple[Reason, str]] = {
    1044: (Reason.AUTH, "access denied to the database"),
    1045: (Reason.AUTH, "access denied for the user"),
    1142: (Reason.AUTH, "command denied on a table"),
    1143: (Reason.AUTH, "command denied on a column"),
    1227: (Reason.AUTH, "privilege missing"),
    1049: (Reason.ERROR, "unknown database"),
    1146: (Reason.ERROR, "table does not exist"),
    1054: (Reason.ERROR, "unknown column"),
    1064: (Reason.ERROR, "syntax error"),
    1792: (Reason.ERROR, "write refused by the read-only transaction"),
    1317: (Reason.TIMEOUT, "query interrupted at the deadline"),
    1969: (Reason.TIMEOUT, "stopped by max_statement_time at the deadline"),
    3024: (Reason.TIMEOUT, "stopped by max_execution_time at the deadline"),
    1040: (Reason.REFUSED, "too many connections"),
    1203: (Reason.REFUSED, "user has too many connections"),
    2003: (Reason.REFUSED, "cannot connect"),
    2005: (Reason.DNS, "unknown host"),
    2006: (Reason.RESET, "server has gone away"),
    2013: (Reason.RESET, "lost connection during the query"),
}
_MYSQL_LOST = {2006, 2013, 2014, 2055}

_ORACLE_CODES: dict[str, tuple[Reason, str]] = {
    "ORA-01017": (Reason.AUTH, "invalid username or password"),
    "ORA-28000": (Reason.AUTH, "account locked"),
    "ORA-01031": (Reason.AUTH, "insufficient privileges"),
    "ORA-00942": (Reason.ERROR, "table or view does not exist"),
    "ORA-00904": (Reason.ERROR, "invalid identifier"),
    "ORA-01456": (Reason.ERROR, "write refused by the read-only transaction"),
    "ORA-01013": (Reason.TIMEOUT, "call cancelled at the deadline"),
    "DPY-4024": (Reason.TIMEOUT, "call_timeout reached"),
    "DPI-1067": (Reason.TIMEOUT, "call_timeout reached"),
    "ORA-03156": (Reason.TIMEOUT, "call_timeout reached"),
    "ORA-12541": (Reason.REFUSED, "no listener"),
    "ORA-12514": (Reason.REFUSED, "service not known to the listener"),
    "ORA-12170": (Reason.TIMEOUT, "connect timeout"),
    "DPY-6005": (Reason.REFUSED, "cannot connect"),
    "DPY-6000": (Reason.REFUSED, "listener refused the connection"),
    "DPY-4011": (Reason.RESET, "connection closed"),
    "ORA-03113": (Reason.RESET, "end-of-file on communication channel"),
    "ORA-03114": (Reason.RESET, "not connected"),
    "ORA-03135": (Reason.RESET, "connection lost contact"),
}
_ORACLE_LOST = {"DPY-4011", "ORA-03113", "ORA-03114", "ORA-03135", "DPI-1080"}

# Privileges that only read or observe; anything else on the monitoring account can change data.
MYSQL_READ_PRIVILEGES = frozenset({
    "SELECT", "USAGE", "SHOW VIEW", "SHOW DATABASES", "PROCESS", "REPLICATION CLIENT", "SLAVE MONITOR",
    "BINLOG MONITOR", "REPLICA MONITOR",
})
ORACLE_READ_PRIVILEGES = frozenset({
    "CREATE SESSION", "SELECT ANY DICTIONARY", "SELECT ANY TABLE", "READ ANY TABLE", "SELECT_CATALOG_ROLE",
    "SET CONTAINER",
})
_GRANT_RE = re.compile(r"^GRANT\s+(?P<privs>.+?)\s+ON\s", re.IGNORECASE | re.DOTALL)


def mysql_write_privileges(grants: Sequence[str]) -> list[str]:
    """Privileges in `SHOW GRANTS` lines beyond reading (roles granted are listed by name too)."""
    found: set[str] = set()
    for line in grants:
        match = _GRANT_RE.match(line.strip())
        if match is None:  # `GRANT role TO user`: a role may carry anything
            role = re.match(r"^GRANT\s+(.+?)\s+TO\s", line.strip(), re.IGNORECASE)
            if role:
                found.add(f"role {role.group(1).strip()}")
            continue
        privs = re.sub(r"\([^)]*\)", "", match["privs"])  # column lists: SELECT (a, b)
        for priv in (p.strip().upper() for p in privs.split(",")):
            if priv and priv not in MYSQL_READ_PRIVILEGES:
                found.add(priv)
        if re.search(r"WITH\s+GRANT\s+OPTION", line, re.IGNORECASE):
            found.add("GRANT OPTION")
    return sorted(found)


def capped_statement(sql: str, max_rows: int, dialect: Dialect) -> str:
    """The query wrapped so that the server returns at most max_rows + 1 rows: enough to tell that
    the cap is exceeded, never a whole table pulled into the exporter by a query gone wrong."""
    body = sql.strip().rstrip(";")
    if dialect == "oracle":
        return f"SELECT * FROM ({body}) WHERE ROWNUM <= {max_rows + 1}"  # noqa: S608 - the check's own query
    return f"SELECT * FROM ({body}) AS capped LIMIT {max_rows + 1}"  # noqa: S608 - parsed at config load


def mysql_statement(sql: str, seconds: float, mariadb: bool) -> str:
    """The statement sent to MariaDB, bounded by the server (MySQL gets a session variable)."""
    if mariadb:
        return f"SET STATEMENT max_statement_time={max(seconds, 0.001):.3f} FOR {sql}"
    return sql


ORACLE_BEGIN = "SET TRANSACTION READ ONLY"
ORACLE_PRIVILEGE_QUERIES = (
    "SELECT privilege FROM session_privs",
    "SELECT privilege FROM user_tab_privs WHERE grantee = USER AND privilege NOT IN ('SELECT', 'READ')",
    "SELECT 'OWNS ' || object_type FROM user_objects WHERE object_type IN ('TABLE', 'PROCEDURE',"
    " 'PACKAGE', 'FUNCTION', 'TRIGGER') GROUP BY object_type",
)


def oracle_call_timeout_ms(seconds: float) -> int:
    """oracledb's call_timeout is whole milliseconds; 0 would mean no limit, so at least 1."""
    return max(1, int(seconds * 1000))


@dataclass
class _Conn:
    raw: Any
    mariadb: bool = False
    reused: bool = False
    in_transaction: bool = False


class _MySQL:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server_time_limit = True
        """Ask the server to stop the statement at the deadline. Off only in tests, to exercise the
        fallback for a server that does not (KILL QUERY after the client's read timeout)."""

    def connect(self, target: str, password: str | None, timeout: float) -> _Conn:
        import pymysql

        host, port, database = parse_target(target)
        try:
            raw = pymysql.connect(
                host=host, port=port or 3306, user=self.settings.username, password=password or "",
                database=database, connect_timeout=min(self.settings.connect_timeout, timeout),
                read_timeout=timeout + 2.0, write_timeout=timeout + 2.0, autocommit=True,
                charset="utf8mb4", client_flag=0)
            with raw.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                (version,) = cursor.fetchone()
                # Every transaction of this session is read-only; with autocommit each statement is one.
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
        except Exception as exc:
            raise self.classify(exc) from None
        return _Conn(raw, mariadb="mariadb" in str(version).lower())

    def run(self, conn: _Conn, query: Query, deadline: float) -> tuple[list[str], list[tuple[Any, ...]]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DriverError(Reason.TIMEOUT, "deadline reached before the query")
        try:
            with conn.raw.cursor() as cursor:
                statement = capped_statement(query.sql, query.max_rows, "mysql")
                if self.server_time_limit:
                    if not conn.mariadb:
                        cursor.execute(f"SET SESSION max_execution_time = {int(remaining * 1000)}")
                    statement = mysql_statement(statement, remaining, conn.mariadb)
                cursor.execute(statement)
                columns = [d[0] for d in cursor.description or ()]
                rows = list(cursor.fetchall())
                return columns, rows
        except Exception as exc:
            error = self.classify(exc)
            if error.connection_lost and time.monotonic() >= deadline:
                self._kill(conn)
                raise DriverError(Reason.TIMEOUT, "no answer by the deadline; KILL QUERY sent",
                                  connection_lost=True) from None
            raise error from None

    def _kill(self, conn: _Conn) -> None:
        """Stop the statement on the server when the server itself did not (the second way)."""
        import pymysql

        try:
            thread_id = conn.raw.thread_id()
            killer = pymysql.connect(host=conn.raw.host, port=conn.raw.port, user=conn.raw.user,
                                     password=conn.raw.password, connect_timeout=2, read_timeout=2)
            try:
                with killer.cursor() as cursor:
                    cursor.execute(f"KILL QUERY {int(thread_id)}")
            finally:
                killer.close()
        except Exception:  # noqa: S110 - best effort; the check already reports the timeout
            pass

    def write_privileges(self, conn: _Conn) -> list[str]:
        with conn.raw.cursor() as cursor:
            cursor.execute("SHOW GRANTS FOR CURRENT_USER()")
            return mysql_write_privileges([str(row[0]) for row in cursor.fetchall()])

    def alive(self, conn: _Conn) -> bool:
        return bool(conn.raw.open)

    def finish(self, conn: _Conn) -> None:
        """Nothing to end: autocommit ended each read-only statement's transaction."""

    def close(self, conn: _Conn) -> None:
        with contextlib.suppress(Exception):  # closing a connection that may be dead
            conn.raw.close()

    @staticmethod
    def classify(exc: BaseException) -> DriverError:
        import pymysql

        if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
            code = int(exc.args[0])
            reason, text = _MYSQL_CODES.get(code, (Reason.ERROR, "database error"))
            if code == 2003 and "timed out" in str(exc.args[1:]).lower():
                reason = Reason.TIMEOUT
            return DriverError(reason, f"mysql error {code}: {text}", connection_lost=code in _MYSQL_LOST)
        if isinstance(exc, TimeoutError):
            return DriverError(Reason.TIMEOUT, "socket timeout", connection_lost=True)
        if isinstance(exc, ConnectionRefusedError):
            return DriverError(Reason.REFUSED, "connection refused", connection_lost=True)
        if isinstance(exc, OSError):
            return DriverError(Reason.RESET, f"socket error {exc.errno}", connection_lost=True)
        return DriverError(Reason.ERROR, f"driver error {type(exc).__name__}", connection_lost=True)


def import_oracle_driver() -> Any:
    """python-oracledb (thin mode, no Oracle client); cx_Oracle where only it is installed."""
    try:
        import oracledb
    except ImportError:
        import cx_Oracle as oracledb  # type: ignore[no-redef]
    return oracledb


class _Oracle:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.module = import_oracle_driver()
        self.lock = threading.Lock()
        self.hanging: set[str] = set()

    def connect(self, target: str, password: str | None, timeout: float) -> _Conn:
        """Connect within `timeout`. The thin driver's tcp_connect_timeout bounds the TCP connect
        only, not a listener that accepts and then never answers; so the attempt runs in a thread
        that is abandoned at the deadline (one per target at most: while it hangs, later runs fail
        at once instead of stacking threads), and closes what it gets if it ever connects."""
        parse_target(target)
        kwargs: dict[str, Any] = {"user": self.settings.username, "password": password or "", "dsn": target}
        if self.module.__name__ == "oracledb":
            kwargs["tcp_connect_timeout"] = min(self.settings.connect_timeout, timeout)
        with self.lock:
            if target in self.hanging:
                raise DriverError(Reason.TIMEOUT, "an earlier connection attempt is still unanswered")
            self.hanging.add(target)
        box: dict[str, Any] = {}
        done = threading.Event()
        abandoned = threading.Event()

        def attempt() -> None:
            try:
                box["conn"] = self.module.connect(**kwargs)
            except Exception as exc:
                box["error"] = exc
            finally:
                done.set()
                with self.lock:
                    self.hanging.discard(target)
                if abandoned.is_set() and "conn" in box:
                    with contextlib.suppress(Exception):
                        box["conn"].close()

        threading.Thread(target=attempt, name=f"oracle-connect-{target}", daemon=True).start()
        if not done.wait(timeout):
            abandoned.set()
            raise DriverError(Reason.TIMEOUT, f"no answer to the connection within {timeout:.1f}s")
        if "error" in box:
            raise self.classify(box["error"])
        return _Conn(box["conn"])

    def run(self, conn: _Conn, query: Query, deadline: float) -> tuple[list[str], list[tuple[Any, ...]]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DriverError(Reason.TIMEOUT, "deadline reached before the query")
        try:
            conn.raw.call_timeout = oracle_call_timeout_ms(remaining)
            cursor = conn.raw.cursor()
            try:
                if not conn.in_transaction:
                    cursor.execute(ORACLE_BEGIN)
                    conn.in_transaction = True
                cursor.execute(capped_statement(query.sql, query.max_rows, "oracle"))
                columns = [d[0] for d in cursor.description or ()]
                rows = list(cursor.fetchmany(query.max_rows + 1))
                return columns, rows
            finally:
                cursor.close()
        except Exception as exc:
            raise self.classify(exc) from None

    def finish(self, conn: _Conn) -> None:
        """End the read-only transaction; the next run starts a new one (and sees new data)."""
        conn.in_transaction = False
        try:
            conn.raw.rollback()
        except Exception as exc:
            raise self.classify(exc) from None

    def write_privileges(self, conn: _Conn) -> list[str]:
        found: set[str] = set()
        cursor = conn.raw.cursor()
        try:
            for statement in ORACLE_PRIVILEGE_QUERIES:
                cursor.execute(statement)
                found.update(str(row[0]).upper() for row in cursor.fetchall())
        finally:
            cursor.close()
        return sorted(found - ORACLE_READ_PRIVILEGES)

    def alive(self, conn: _Conn) -> bool:
        return True

    def close(self, conn: _Conn) -> None:
        with contextlib.suppress(Exception):  # closing a connection that may be dead
            conn.raw.close()

    @staticmethod
    def classify(exc: BaseException) -> DriverError:
        error = exc.args[0] if exc.args else None
        code = str(getattr(error, "full_code", "") or "")
        if not code and getattr(error, "code", None):
            code = f"ORA-{int(getattr(error, 'code', 0)):05d}"  # cx_Oracle's _Error has code only
        if code:
            reason, text = _ORACLE_CODES.get(code, (Reason.ERROR, "database error"))
            return DriverError(reason, f"oracle error {code}: {text}", connection_lost=code in _ORACLE_LOST)
        if isinstance(exc, TimeoutError):
            return DriverError(Reason.TIMEOUT, "socket timeout", connection_lost=True)
        if isinstance(exc, OSError):
            return DriverError(Reason.REFUSED, f"socket error {exc.errno}", connection_lost=True)
        return DriverError(Reason.ERROR, f"driver error {type(exc).__name__}", connection_lost=True)


# --------------------------------------------------------------------------------------------
# Pool and collector


class _Pool:
    """Connections to one target: at most `size` in use, idle ones kept for the next run."""

    def __init__(self, size: int) -> None:
        self.idle: deque[_Conn] = deque()
        self.slots = threading.BoundedSemaphore(size)
        self.lock = threading.Lock()
        self.verified: list[str] | None = None

    def take(self) -> _Conn | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give(self, conn: _Conn) -> None:
        conn.reused = True
        with self.lock:
            self.idle.append(conn)

    def drain(self) -> list[_Conn]:
        with self.lock:
            conns = list(self.idle)
            self.idle.clear()
        return conns


class SqlCollector:
    """Runs a module's queries on a target inside read-only transactions.

        einvoice_sql_up 1
        einvoice_sql_query_success{query="push_backlog"} 1
        einvoice_sql_query_duration_seconds{query="push_backlog"} 0.012
        einvoice_sql_push_backlog{query="push_backlog",channel="tax_bureau"} 42
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.driver: _MySQL | _Oracle = _MySQL(settings) if settings.driver == "mysql" else _Oracle(settings)
        self.pools: dict[str, _Pool] = {}
        self.lock = threading.Lock()

    def _pool(self, target: str) -> _Pool:
        with self.lock:
            pool = self.pools.get(target)
            if pool is None:
                pool = self.pools[target] = _Pool(self.settings.pool_size)
            return pool

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = time.monotonic() + timeout
        outcome = Outcome()
        metrics = outcome.metrics
        try:
            password = resolve_secret(self.settings.password, self.settings.password_file)
        except OSError as exc:
            metrics.gauge("einvoice_sql_up", "Whether the database session was established", 0)
            return outcome.fail(Reason.ERROR, f"password_file unreadable: {exc.strerror}")
        pool = self._pool(target)
        if not pool.slots.acquire(timeout=max(timeout, 0.0)):
            metrics.gauge("einvoice_sql_up", "Whether the database session was established", 0)
            return outcome.fail(Reason.TIMEOUT, f"all {self.settings.pool_size} pooled connections busy")
        try:
            return self._run(pool, target, password, deadline, outcome)
        finally:
            pool.slots.release()

    def _run(self, pool: _Pool, target: str, password: str | None, deadline: float,
             outcome: Outcome) -> Outcome:
        for attempt in (1, 2):
            metrics = outcome.metrics  # replaced when a stale pooled connection forces a second try
            conn = pool.take()
            try:
                if conn is None:
                    conn = self.driver.connect(target, password, max(deadline - time.monotonic(), 0.1))
                if self.settings.assert_read_only and pool.verified is None:
                    pool.verified = self.driver.write_privileges(conn)
            except DriverError as exc:
                if conn is not None:
                    self.driver.close(conn)
                if conn is not None and conn.reused and attempt == 1 and exc.connection_lost:
                    self._discard_idle(pool)
                    continue
                metrics.gauge("einvoice_sql_up", "Whether the database session was established", 0)
                return outcome.fail(exc.reason, exc.detail)
            except Exception as exc:
                if conn is not None:
                    self.driver.close(conn)
                error = self.driver.classify(exc)
                metrics.gauge("einvoice_sql_up", "Whether the database session was established", 0)
                return outcome.fail(error.reason, f"listing privileges: {error.detail}")
            if pool.verified:
                pool.give(conn)
                metrics.gauge("einvoice_sql_up", "Whether the database session was established", 1)
                return outcome.fail(Reason.AUTH, "the account can change data (" + ", ".join(pool.verified)
                                    + "); grant it read privileges only (docs/runbook.md)")
            lost, stale = self._queries(conn, deadline, outcome)
            if stale and conn.reused and attempt == 1:
                # A pooled connection the server closed (restart, idle timeout): reconnect once.
                self.driver.close(conn)
                self._discard_idle(pool)
                outcome.metrics = MetricSet()
                outcome.failure = None
                continue
            if lost:
                self.driver.close(conn)
            else:
                pool.give(conn)
            return outcome
        return outcome

    def _discard_idle(self, pool: _Pool) -> None:
        for stale in pool.drain():
            self.driver.close(stale)

    def _queries(self, conn: _Conn, deadline: float, outcome: Outcome) -> tuple[bool, bool]:
        """Run every query. Returns (lost, stale): lost when the connection must not go back to the
        pool; stale when it was already dead before the first query (worth one reconnect)."""
        metrics = outcome.metrics
        lost = False
        results: list[tuple[Query, float, list[tuple[str, dict[str, str], float]] | None]] = []
        for query in self.settings.queries:
            started = time.monotonic()
            try:
                columns, rows = self.driver.run(conn, query, deadline)
                samples = result_samples(query, columns, rows)
            except DriverError as exc:
                outcome.fail(exc.reason, f"query {query.name}: {exc.detail}")
                results.append((query, time.monotonic() - started, None))
                if exc.connection_lost:
                    lost = True
                    if len(results) == 1 and conn.reused and exc.reason is not Reason.TIMEOUT:
                        return True, True
                    break
                continue
            except ResultRefusedError as exc:
                outcome.fail(exc.reason, exc.detail)
                results.append((query, time.monotonic() - started, None))
                continue
            results.append((query, time.monotonic() - started, samples))
        if not lost:
            try:
                self.driver.finish(conn)
            except DriverError as finish_error:
                lost = finish_error.connection_lost
        metrics.gauge("einvoice_sql_up", "Whether the database session was established", 0 if lost else 1)
        for query, duration, exported in results:
            ok = exported is not None
            metrics.gauge("einvoice_sql_query_success", "Whether the query ran and its result was exported",
                          1 if ok else 0, {"query": query.name})
            metrics.gauge("einvoice_sql_query_duration_seconds", "Time the query took", duration,
                          {"query": query.name})
            for name, labels, value in exported or ():
                if not math.isfinite(value):
                    value = math.nan
                metrics.gauge(name, f"Value column of SQL query {query.name}", value, labels)
        return lost, False

    def close(self) -> None:
        with self.lock:
            pools = list(self.pools.values())
            self.pools.clear()
        for pool in pools:
            self._discard_idle(pool)


def unanswered(metrics: MetricSet) -> None:
    """`einvoice_sql_up 0` for a run that timed out or raised before it could say so itself."""
    metrics.gauge("einvoice_sql_up", "Whether the database session was established", 0)


def build(settings: Settings) -> Check:
    return SqlCollector(settings)
