"""Collector of kind `goldengate`: Oracle GoldenGate process status, lag and checkpoint age (item 16).

Three sources, whichever the site has (`source`):

- `rest`: the Microservices Architecture REST API. The target is the Administration Service's base
  URL; `GET /services/v2/extracts` and `/services/v2/replicats` list the processes and
  `…/{name}/info/status` gives `status` (starting, running, stopped, killed, abended), `lag` and
  `sinceLagReported` in seconds ("Retrieve Status", Oracle GoldenGate REST API 21c/23ai). With
  `distribution_url`, the Distribution Service's `GET /services/v2/sources` and
  `/services/v2/sources/{path}` give each distribution path's `status`.
- `ggsci`: classic architecture. `INFO ALL`, `LAG EXTRACT *` / `LAG REPLICAT *` (`lag_command`) and
  `SEND EXTRACT *, STATUS` / `SEND REPLICAT *, STATUS` (`send_status`) piped into `ggsci`, run as a
  local command with a timeout in the target directory (the GoldenGate home): the table columns
  Program, Status, Group, Lag at Chkpt, Time Since Chkpt (GGSCI reference "INFO ALL", 12c to 21c
  classic), "Last record lag N seconds" and "Current status: …" are parsed.
- `heartbeat`: the `GG_LAG` view that `ADD HEARTBEATTABLE` creates (12.2+), read through a `sql`
  connection (read-only, bounded like every SQL check): lag and heartbeat age per replication path.

    einvoice_goldengate_up 1
    einvoice_goldengate_process_status{process="EXT1",type="extract",status="running"} 1
    einvoice_goldengate_process_status{process="EXT1",type="extract",status="abended"} 0
    einvoice_goldengate_lag_seconds{process="EXT1",type="extract"} 3
    einvoice_goldengate_checkpoint_age_seconds{process="EXT1",type="extract"} 7
    einvoice_goldengate_process_activity{process="EXT1",type="extract",activity="processing_data"} 1
    einvoice_goldengate_heartbeat_lag_seconds{path="EXT1 ==> PUMP1 ==> REP1"} 4.2   (heartbeat)

A process ABENDED fails the check with reason `state` (and raises the critical
EinvoiceGoldenGateAbended); STOPPED or KILLED fails it too unless listed in `expected_stopped`, and so
does a RUNNING process that SEND … STATUS reports suspended. Lag thresholds are rules (thresholds.yaml).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from ..fields import StrictModel, one_of_secret, resolve_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from . import sql as sqlkind

STATUSES = ("running", "starting", "stopped", "killed", "abended")
ACTIVITIES = ("processing_data", "at_eof", "recovering", "delaying", "suspended", "other")
"""What a RUNNING process is doing, from GGSCI `SEND … STATUS` ("Current status: …")."""
TYPES = ("manager", "extract", "replicat", "distribution_path", "jagent", "pmsrvr")
ProcessName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_$#.-]{1,64}$")]

HEARTBEAT_SQL = ("SELECT incoming_path AS path, incoming_lag AS lag_seconds,"
                 " incoming_heartbeat_age AS age_seconds FROM gg_lag")
"""GG_LAG columns per "ADD HEARTBEATTABLE" (Oracle GoldenGate reference, 12.2 to 21c)."""


class Settings(StrictModel):
    """Settings of a `goldengate` module."""

    source: Literal["rest", "ggsci", "heartbeat"]
    username: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """REST: a user with the User role. heartbeat: the database account (read-only)."""
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    insecure_skip_verify: bool = False
    distribution_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    """REST: base URL of the Distribution Service, for the distribution paths' status."""
    ggsci: Path = Path("ggsci")
    """ggsci: the program, relative to the target directory (the GoldenGate home) unless absolute."""
    lag_command: bool = True
    """ggsci: also run `LAG EXTRACT *` and `LAG REPLICAT *` for the last record's lag."""
    send_status: bool = True
    """ggsci: also run `SEND EXTRACT *, STATUS` and `SEND REPLICAT *, STATUS`: a RUNNING process that
    is suspended (EVENTACTIONS SUSPEND) processes nothing, and only this shows it."""
    driver: Literal["oracle", "mysql"] = "oracle"
    """heartbeat: the database holding the GG_LAG view."""
    expected_stopped: list[ProcessName] = Field(default_factory=list)
    """Processes that are stopped on purpose (a standby Replicat): STOPPED does not fail the check."""
    max_processes: Annotated[int, Field(ge=1, le=500)] = 100

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        one_of_secret(self.password, self.password_file, "password")
        if self.source == "heartbeat" and self.username is None:
            raise ValueError("source heartbeat needs username (a read-only database account)")
        if self.source != "rest" and self.distribution_url is not None:
            raise ValueError("distribution_url only applies to source rest")
        return self


class GgError(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Process:
    name: str
    type: str
    status: str
    lag: float | None = None
    checkpoint_age: float | None = None
    activity: str | None = None


# --------------------------------------------------------------------------------------------
# ggsci


_INFO_ALL_ROW = re.compile(
    r"^(?P<program>MANAGER|EXTRACT|REPLICAT|JAGENT|PMSRVR)\s+(?P<status>RUNNING|STOPPED|ABENDED|STARTING|"
    r"KILLED)(?:\s+(?P<group>\S+)(?:\s+(?P<lag>\d+:\d\d:\d\d)\s+(?P<since>\d+:\d\d:\d\d))?)?\s*$")
_LAG_HEADER = re.compile(r"^Sending GETLAG request to (?P<program>EXTRACT|REPLICAT) (?P<group>\S+)",
                         re.IGNORECASE)
_LAG_VALUE = re.compile(r"Last record lag (?P<seconds>\d+) seconds?", re.IGNORECASE)
_LAG_EOF = re.compile(r"At EOF, no more records to process", re.IGNORECASE)


_SEND_HEADER = re.compile(r"^Sending STATUS request to (?P<program>EXTRACT|REPLICAT) (?P<group>\S+)",
                          re.IGNORECASE)
_CURRENT_STATUS = re.compile(r"Current status:\s*(?P<text>.+)", re.IGNORECASE)


def activity_of(text: str) -> str:
    """A bounded name for the free text after "Current status:"."""
    lowered = text.lower()
    for needle, name in (("suspended", "suspended"), ("in recovery", "recovering"), ("at eof", "at_eof"),
                         ("processing data", "processing_data"), ("delaying", "delaying")):
        if needle in lowered:
            return name
    return "other"


def parse_send_status(output: str) -> dict[str, str]:
    """Group -> activity from GGSCI `SEND EXTRACT|REPLICAT *, STATUS`; groups not running are absent."""
    found: dict[str, str] = {}
    current: str | None = None
    for line in output.splitlines():
        header = _SEND_HEADER.search(line)
        if header:
            current = header["group"].rstrip(".").upper()
            continue
        status = _CURRENT_STATUS.search(line)
        if status and current is not None:
            found[current] = activity_of(status["text"])
            current = None
    return found


def _hms(text: str) -> float:
    hours, minutes, seconds = (int(p) for p in text.split(":"))
    return float(hours * 3600 + minutes * 60 + seconds)


def parse_info_all(output: str) -> list[Process]:
    """Rows of GGSCI `INFO ALL`; lines that are not process rows (banner, prompt) are skipped."""
    processes = []
    for line in output.splitlines():
        match = _INFO_ALL_ROW.match(line.strip())
        if match is None:
            continue
        program = match["program"].lower()
        name = match["group"] or program.upper()
        processes.append(Process(
            name=name, type=program, status=match["status"].lower(),
            lag=_hms(match["lag"]) if match["lag"] else None,
            checkpoint_age=_hms(match["since"]) if match["since"] else None))
    return processes


def parse_lag(output: str) -> dict[str, float]:
    """Group -> last record lag in seconds from GGSCI `LAG EXTRACT|REPLICAT *` (0 at end of file)."""
    lags: dict[str, float] = {}
    current: str | None = None
    for line in output.splitlines():
        header = _LAG_HEADER.search(line)
        if header:
            current = header["group"].rstrip(".").upper()
            continue
        if current is None:
            continue
        value = _LAG_VALUE.search(line)
        if value:
            lags[current] = float(value["seconds"])
            current = None
        elif _LAG_EOF.search(line):
            lags[current] = 0.0
            current = None
    return lags


def run_ggsci(program: Path, home: str, commands: list[str], timeout: float) -> str:
    """Pipe commands into ggsci in `home`; killed at the timeout (its whole process group)."""
    executable = program if program.is_absolute() else Path(home) / program
    script = "\n".join([*commands, "EXIT", ""])
    try:
        proc = subprocess.Popen([str(executable)], cwd=home, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError:
        raise GgError(Reason.ERROR, f"ggsci not found at {executable}") from None
    except PermissionError:
        raise GgError(Reason.ERROR, f"ggsci at {executable} is not executable") from None
    except NotADirectoryError:
        raise GgError(Reason.ERROR, f"target {home} is not a directory") from None
    try:
        out, _ = proc.communicate(script.encode(), timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.communicate()
        raise GgError(Reason.TIMEOUT, f"ggsci did not finish within {timeout:.1f}s") from None
    if proc.returncode != 0:
        raise GgError(Reason.ERROR, f"ggsci exited with status {proc.returncode}")
    return out.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# REST


def _new_session() -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False  # no proxies from the environment: the Administration Server is local
    return session



class _Rest:
    """The REST source on one kept-alive HTTP session, reused by every run of the module (a run asks
    for the process list and each process's status: one TCP/TLS handshake, not one per request).
    A run that finds the session busy (runs overlapping) uses a session of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def get(self, base: str, path: str, deadline: float) -> dict[str, Any]:
        if self._lock.acquire(blocking=False):
            try:
                if self._session is None:
                    self._session = _new_session()
                return self._get(self._session, base, path, deadline)
            finally:
                self._lock.release()
        with _new_session() as session:
            return self._get(session, base, path, deadline)

    def _get(self, session: Any, base: str, path: str, deadline: float) -> dict[str, Any]:
        import requests

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GgError(Reason.TIMEOUT, f"no time left for {path}")
        password = resolve_secret(self.settings.password, self.settings.password_file)
        auth = (self.settings.username, password or "") if self.settings.username else None
        verify: bool | str = (False if self.settings.insecure_skip_verify
                              else str(self.settings.ca_file) if self.settings.ca_file else True)
        try:
            response = session.get(base.rstrip("/") + path, auth=auth, verify=verify,
                                   timeout=remaining, allow_redirects=False,
                                   headers={"Accept": "application/json"})
        except requests.exceptions.SSLError:
            raise GgError(Reason.TLS, f"{path}: TLS failed") from None
        except requests.exceptions.Timeout:
            raise GgError(Reason.TIMEOUT, f"{path}: no answer within {remaining:.1f}s") from None
        except requests.exceptions.ConnectionError as exc:
            chain: list[BaseException] = []
            cause: BaseException | None = exc
            while cause is not None and len(chain) < 10:
                chain.append(cause)
                cause = cause.__cause__ or cause.__context__
            if any(isinstance(e, socket.gaierror) for e in chain):
                raise GgError(Reason.DNS, f"{path}: host does not resolve") from None
            raise GgError(Reason.REFUSED, f"{path}: connection failed") from None
        except requests.exceptions.RequestException as exc:
            raise GgError(Reason.ERROR, f"{path}: {type(exc).__name__}") from None
        with response:
            if response.status_code in (401, 403):
                raise GgError(Reason.AUTH, f"{path}: HTTP {response.status_code}")
            if response.status_code != 200:
                raise GgError(Reason.BAD_STATUS, f"{path}: HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError:
                raise GgError(Reason.BAD_CONTENT, f"{path}: body is not JSON") from None
        inner = body.get("response") if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            raise GgError(Reason.BAD_CONTENT, f"{path}: no `response` object (api:standardResponse)")
        return inner

    def names(self, base: str, path: str, deadline: float) -> list[str]:
        items = self.get(base, path, deadline).get("items", [])
        if not isinstance(items, list):
            raise GgError(Reason.BAD_CONTENT, f"{path}: `items` is not a list")
        names = [str(i.get("name")) for i in items if isinstance(i, dict) and i.get("name")]
        if len(names) > self.settings.max_processes:
            raise GgError(Reason.BAD_CONTENT, f"{path}: more than {self.settings.max_processes} processes")
        return names

    def processes(self, target: str, deadline: float) -> list[Process]:
        found = []
        for kind in ("extract", "replicat"):
            for name in self.names(target, f"/services/v2/{kind}s", deadline):
                status = self.get(target, f"/services/v2/{kind}s/{name}/info/status", deadline)
                found.append(Process(name=name, type=kind, status=str(status.get("status", "")).lower(),
                                     lag=_seconds(status.get("lag")),
                                     checkpoint_age=_seconds(status.get("sinceLagReported"))))
        if self.settings.distribution_url:
            base = self.settings.distribution_url
            for name in self.names(base, "/services/v2/sources", deadline):
                path = self.get(base, f"/services/v2/sources/{name}", deadline)
                found.append(Process(name=name, type="distribution_path",
                                     status=str(path.get("status", "")).lower()))
        return found


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------------------------


class GoldenGateCollector:
    """Status and lag of every GoldenGate process a deployment reports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rest = _Rest(settings)
        self.heartbeat: sqlkind.SqlCollector | None = None
        if settings.source == "heartbeat":
            assert settings.username is not None  # the model requires it
            self.heartbeat = sqlkind.SqlCollector(sqlkind.Settings(
                driver=settings.driver, username=settings.username, password=settings.password,
                password_file=settings.password_file, queries=[sqlkind.Query(
                    name="gg_lag", sql=HEARTBEAT_SQL, values=["lag_seconds", "age_seconds"],
                    labels=["path"], max_rows=settings.max_processes)]))

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = time.monotonic() + timeout
        outcome = Outcome()
        if self.heartbeat is not None:
            return self._heartbeat(target, timeout, outcome)
        try:
            processes = self._processes(target, deadline)
        except GgError as exc:
            outcome.metrics.gauge("einvoice_goldengate_up", "Whether the GoldenGate source answered", 0)
            return outcome.fail(exc.reason, exc.detail)
        except OSError as exc:  # password_file unreadable
            outcome.metrics.gauge("einvoice_goldengate_up", "Whether the GoldenGate source answered", 0)
            return outcome.fail(Reason.ERROR, f"password_file unreadable: {exc.strerror}")
        emit(outcome, processes, self.settings.expected_stopped)
        return outcome

    def _processes(self, target: str, deadline: float) -> list[Process]:
        if self.settings.source == "rest":
            return self.rest.processes(target, deadline)
        commands = ["INFO ALL"]
        if self.settings.lag_command:
            commands += ["LAG EXTRACT *", "LAG REPLICAT *"]
        if self.settings.send_status:
            commands += ["SEND EXTRACT *, STATUS", "SEND REPLICAT *, STATUS"]
        output = run_ggsci(self.settings.ggsci, target, commands, deadline - time.monotonic())
        processes = parse_info_all(output)
        if not processes:
            raise GgError(Reason.BAD_CONTENT, "ggsci INFO ALL listed no process (not even MANAGER)")
        if len(processes) > self.settings.max_processes:
            raise GgError(Reason.BAD_CONTENT, f"more than {self.settings.max_processes} processes")
        lags = parse_lag(output) if self.settings.lag_command else {}
        activities = parse_send_status(output) if self.settings.send_status else {}
        for process in processes:
            if process.status == "running":
                process.lag = lags.get(process.name.upper(), process.lag)
                process.activity = activities.get(process.name.upper())
        return processes

    def _heartbeat(self, target: str, timeout: float, outcome: Outcome) -> Outcome:
        assert self.heartbeat is not None
        inner = self.heartbeat.run(target, timeout)
        up = inner.metrics.value("einvoice_sql_up") or 0
        outcome.metrics.gauge("einvoice_goldengate_up", "Whether the GoldenGate source answered", up)
        names = {"einvoice_sql_lag_seconds": ("einvoice_goldengate_heartbeat_lag_seconds",
                                              "Heartbeat lag per replication path (GG_LAG incoming_lag)"),
                 "einvoice_sql_age_seconds": ("einvoice_goldengate_heartbeat_age_seconds",
                                              "Age of the last heartbeat received per path")}
        for name, _type, _doc, samples in inner.metrics.items():
            if name in names:
                new, doc = names[name]
                for labels, value in samples:
                    outcome.metrics.gauge(new, doc, value, {"path": labels.get("path", "")})
        if inner.failure is not None:
            outcome.fail(inner.failure.reason, inner.failure.detail)
        return outcome

    def close(self) -> None:
        self.rest.close()
        if self.heartbeat is not None:
            self.heartbeat.close()


def emit(outcome: Outcome, processes: list[Process], expected_stopped: list[str]) -> None:
    metrics: MetricSet = outcome.metrics
    metrics.gauge("einvoice_goldengate_up", "Whether the GoldenGate source answered", 1)
    expected = {p.upper() for p in expected_stopped}
    for process in processes:
        labels = {"process": process.name, "type": process.type}
        for status in STATUSES:
            metrics.gauge("einvoice_goldengate_process_status", "Process status, one series per state",
                          1 if process.status == status else 0, {**labels, "status": status})
        if process.lag is not None:
            metrics.gauge("einvoice_goldengate_lag_seconds", "Lag at the last checkpoint or record",
                          process.lag, labels)
        if process.activity is not None:
            for activity in ACTIVITIES:
                metrics.gauge("einvoice_goldengate_process_activity",
                              "What a running process is doing (GGSCI SEND … STATUS), one series per state",
                              1 if process.activity == activity else 0, {**labels, "activity": activity})
        if process.checkpoint_age is not None:
            metrics.gauge("einvoice_goldengate_checkpoint_age_seconds",
                          "Time since the last checkpoint (REST: since lag was reported)",
                          process.checkpoint_age, labels)
    for process in processes:
        where = f"{process.type} {process.name}"
        if process.status == "abended":
            outcome.fail(Reason.STATE, f"{where} is ABENDED")
    for process in processes:
        if process.activity == "suspended":
            outcome.fail(Reason.STATE, f"{process.type} {process.name} is RUNNING but suspended")
        if process.status in ("stopped", "killed") and process.name.upper() not in expected:
            outcome.fail(Reason.STATE, f"{process.type} {process.name} is {process.status.upper()}")
        elif process.status not in STATUSES:
            outcome.fail(Reason.BAD_CONTENT, f"{process.type} {process.name}: unknown status")


def validate_target(target: str) -> str:
    """A base URL (rest), a GoldenGate home directory (ggsci) or host[:port]/service (heartbeat);
    which one depends on the module, so only emptiness and credentials in URLs are refused here."""
    if re.match(r"^https?://[^/]*@", target):
        raise ValueError("put credentials in username/password_file, not in the URL")
    return target


def unanswered(metrics: MetricSet) -> None:
    """`einvoice_goldengate_up 0` for a run that timed out or raised before it could say so itself."""
    metrics.gauge("einvoice_goldengate_up", "Whether the GoldenGate source answered", 0)


def build(settings: Settings) -> Check:
    return GoldenGateCollector(settings)
