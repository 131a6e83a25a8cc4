"""Collector of kind `json_values`: numbers of any JSON answer as metrics, as json_exporter does
(item 15 and every Spring Boot actuator endpoint of the intake and processing services).

The module names, per metric, a path to the items (`each`), and relative to each item a path to
the value and paths to the label values; string values are mapped to numbers (`value_map`, e.g.
`UP: 1`). Everything is bounded: at most `max_series` samples per metric, label values cut at 64
characters, the body at `max_body_bytes`. Optional `min`/`max` turn a sample beyond them into a
failure with reason `threshold` (naming the metric and its labels, never the document).

Paths are dot-separated keys; `*` stands for every element of a list or every value of an object;
a key that contains dots is written in brackets (`components.[db.primary].status`); `$key` as a
label path is the key (or list index) under which the item was found. Example, the actuator health
endpoint of Spring Boot 2.x/3.x:

    metrics:
      - name: einvoice_app_health_component_up
        help: Whether a health component reports UP
        each: components.*
        value: status
        value_map: {UP: 1, DOWN: 0, OUT_OF_SERVICE: 0, UNKNOWN: 0}
        labels: {component: $key}
        min: 1
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, StringConstraints, model_validator

from ..fields import StrictModel, check_tls_files, one_of_secret, resolve_secret
from ..outcome import Check, Outcome, Reason
from . import CheckError, Deadline

LABEL_MAX = 64
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,127}$")]
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")]
RESERVED_LABELS = ("item", "zone", "check", "target")
_SEGMENT = re.compile(r"\[([^\]]+)\]|([^.\[\]]+)")


def parse_path(path: str) -> list[str]:
    """`a.*.[b.c]` -> ["a", "*", "b.c"]; "" or "." -> [] (the item itself)."""
    if path in ("", "."):
        return []
    segments: list[str] = []
    position = 0
    for match in _SEGMENT.finditer(path):
        between = path[position:match.start()]
        if between not in ("", "."):
            raise ValueError(f"path {path!r} cannot be read near {between!r}")
        segments.append(match.group(1) or match.group(2))
        position = match.end()
    if path[position:] not in ("",):
        raise ValueError(f"path {path!r} cannot be read at its end")
    return segments


def walk(node: Any, segments: list[str], key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) the path reaches from `node`; `key` is the last key or index taken."""
    if not segments:
        yield key, node
        return
    head, rest = segments[0], segments[1:]
    if head == "*":
        if isinstance(node, list):
            for index, child in enumerate(node):
                yield from walk(child, rest, str(index))
        elif isinstance(node, dict):
            for child_key, child in node.items():
                yield from walk(child, rest, str(child_key))
        return
    if isinstance(node, dict) and head in node:
        yield from walk(node[head], rest, head)
    elif isinstance(node, list) and head.isdigit() and int(head) < len(node):
        yield from walk(node[int(head)], rest, head)


class JsonMetric(StrictModel):
    name: MetricName
    help: Annotated[str, Field(min_length=1, max_length=200)]
    each: str | None = None
    """Path to the items; each item found yields one sample. Absent: the document is the item."""
    value: str = ""
    """Path to the value, relative to the item (a number, a boolean, or a string in value_map)."""
    labels: dict[LabelName, str] = Field(default_factory=dict)
    """Label name -> path relative to the item, or `$key`."""
    value_map: dict[str, float] = Field(default_factory=dict)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _paths(self) -> JsonMetric:
        for path in [self.each or "", self.value, *(p for p in self.labels.values() if p != "$key")]:
            parse_path(path)
        clash = set(self.labels) & set(RESERVED_LABELS)
        if clash:
            raise ValueError(f"label(s) {sorted(clash)} are reserved for the runtime")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class Settings(StrictModel):
    """Settings of a `json_values` module. The target is the http(s) URL of the JSON document."""

    metrics: Annotated[list[JsonMetric], Field(min_length=1)]
    headers: dict[str, str] = Field(default_factory=dict)
    """Plain headers (e.g. Accept); credentials go in username/password_file or bearer_token_file."""
    username: Annotated[str, Field(min_length=1)] | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    bearer_token_file: Path | None = None
    ca_file: Path | None = None
    insecure_skip_verify: bool = False
    max_series: Annotated[int, Field(ge=1, le=5000)] = 200
    """Samples kept per metric; more are dropped and counted."""
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        one_of_secret(self.password, self.password_file, "password")
        if self.username is None and (self.password is not None or self.password_file is not None):
            raise ValueError("password needs username")
        if any(h.lower() in ("authorization", "cookie") for h in self.headers):
            raise ValueError("credentials do not go in headers; use username/password_file or "
                             "bearer_token_file")
        names = [m.name for m in self.metrics]
        if len(names) != len(set(names)):
            raise ValueError("each metric name appears once")
        check_tls_files(self.ca_file, None, None)
        return self


def validate_target(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{target!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError("credentials do not belong in the URL (it becomes the target label)")
    return target


def fetch_json(url: str, deadline: Deadline, *, headers: dict[str, str] | None = None,
               auth: tuple[str, str] | None = None, verify: bool | str = True,
               max_bytes: int = 4 * 1024 * 1024, what: str = "the document") -> Any:
    """GET `url` within the deadline and parse its JSON body; failures as CheckError."""
    import requests
    from urllib3.exceptions import HTTPError as TransportError
    from urllib3.exceptions import ReadTimeoutError

    remaining = deadline.remaining(f"waiting for {what}")
    try:
        with requests.Session() as session:
            session.trust_env = False
            with session.get(url, headers={"Accept": "application/json", "User-Agent": "einvoice-exporter",
                                           **(headers or {})},
                             auth=auth, verify=verify, timeout=remaining, allow_redirects=False,
                             stream=True) as response:
                deadline.phase(f"reading {what}")
                raw = response.raw.read(max_bytes + 1, decode_content=True)
                status = response.status_code
    except requests.exceptions.SSLError:
        raise CheckError(Reason.TLS, f"TLS failed fetching {what}") from None
    except requests.exceptions.Timeout:
        raise CheckError(Reason.TIMEOUT, f"no answer within {remaining:.1f}s ({deadline.doing()})") from None
    except requests.exceptions.ConnectionError as exc:
        inner: BaseException | None = exc
        for _ in range(16):
            if isinstance(inner, socket.gaierror):
                raise CheckError(Reason.DNS, "the host does not resolve") from None
            inner = inner.__context__ if inner is not None else None
        if "timed out" in str(exc).lower():
            raise CheckError(Reason.TIMEOUT,
                             f"no answer within {remaining:.1f}s ({deadline.doing()})") from None
        raise CheckError(Reason.REFUSED, f"cannot connect to fetch {what}") from None
    except (TimeoutError, ReadTimeoutError):
        raise CheckError(Reason.TIMEOUT,
                         f"the body stopped within {remaining:.1f}s ({deadline.doing()})") from None
    except TransportError:
        raise CheckError(Reason.RESET, f"the answer was broken off ({deadline.doing()})") from None
    except requests.exceptions.RequestException as exc:
        raise CheckError(Reason.ERROR, f"request failed: {type(exc).__name__}") from None
    if status in (401, 403):
        raise CheckError(Reason.AUTH, f"HTTP {status} fetching {what}")
    if status != 200:
        raise CheckError(Reason.BAD_STATUS, f"HTTP {status} fetching {what}")
    if len(raw) > max_bytes:
        raise CheckError(Reason.BAD_CONTENT, f"{what} is larger than {max_bytes} bytes")
    try:
        return json.loads(raw)
    except ValueError:
        raise CheckError(Reason.BAD_CONTENT, f"{what} is not JSON") from None


def number(value: object, value_map: dict[str, float] | None = None) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value_map and value in value_map:
            return value_map[value]
        if not value_map:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _label(value: object) -> str:
    if isinstance(value, str):
        return value[:LABEL_MAX]
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return ""


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, target: str, timeout: float) -> Outcome:
        s = self.settings
        try:
            validate_target(target)
        except ValueError as exc:
            return Outcome().fail(Reason.ERROR, f"bad target: {exc}")
        deadline = Deadline(timeout)
        outcome = Outcome()
        try:
            headers = dict(s.headers)
            if s.bearer_token_file is not None:
                headers["Authorization"] = f"Bearer {resolve_secret(None, s.bearer_token_file)}"
            auth = None
            if s.username is not None:
                auth = (s.username, resolve_secret(s.password, s.password_file) or "")
        except OSError as exc:
            return outcome.fail(Reason.ERROR, f"cannot read a secret file: {exc.strerror}")
        verify: bool | str = False if s.insecure_skip_verify else (str(s.ca_file) if s.ca_file else True)
        try:
            document = fetch_json(target, deadline, headers=headers, auth=auth, verify=verify,
                                  max_bytes=s.max_body_bytes)
            self._extract(document, outcome)
        except CheckError as exc:
            outcome.fail_with(exc)
        return outcome

    def _extract(self, document: Any, outcome: Outcome) -> None:
        ms = outcome.metrics
        problems: list[str] = []
        missing: list[str] = []
        for metric in self.settings.metrics:
            items = list(walk(document, parse_path(metric.each))) if metric.each else [("", document)]
            kept = 0
            dropped = 0
            for key, item in items:
                values = [v for _k, v in walk(item, parse_path(metric.value))]
                value = number(values[0], metric.value_map) if values else None
                if value is None:
                    continue
                labels: dict[str, str] = {}
                for label, path in metric.labels.items():
                    if path == "$key":
                        labels[label] = key[:LABEL_MAX]
                    else:
                        found = [v for _k, v in walk(item, parse_path(path))]
                        labels[label] = _label(found[0]) if found else ""
                if kept >= self.settings.max_series:
                    dropped += 1
                    continue
                kept += 1
                ms.gauge(metric.name, metric.help, value, labels)
                if (metric.min is not None and value < metric.min) or (
                        metric.max is not None and value > metric.max):
                    shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                    bound = (f"below {metric.min:g}" if metric.min is not None and value < metric.min
                             else f"above {metric.max:g}")
                    problems.append(f"{metric.name}{{{shown}}} = {value:g}, {bound}")
            if dropped:
                ms.gauge("einvoice_json_series_dropped", "Samples dropped by max_series", dropped,
                         {"metric": metric.name})
            if kept == 0:
                missing.append(metric.name)
        if missing and len(missing) == len(self.settings.metrics):
            raise CheckError(Reason.BAD_CONTENT, f"no value found for {', '.join(missing[:3])}")
        if problems:
            outcome.fail(Reason.THRESHOLD, "; ".join(problems[:3])
                         + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))

    def close(self) -> None:
        """Nothing pooled."""


def build(settings: Settings) -> Check:
    return Collector(settings)
