"""A small client of Prometheus' HTTP API (/api/v1/query and /api/v1/query_range), which
VictoriaMetrics and Thanos Query serve too. Only instant and range queries are used."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from .errors import ReportError, SourceUnavailableError

SOURCE = "Prometheus"


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]
    """(unix seconds, value)."""


def _value(raw: str) -> float:
    value = float(raw)
    return value if math.isfinite(value) else math.nan


class PrometheusClient:
    """Instant and range queries; an unreachable server or a refused query is a ReportError."""

    def __init__(self, url: str, timeout: float = 60.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _get(self, path: str, params: dict[str, str]) -> Any:
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise SourceUnavailableError(SOURCE, f"{self.url} 超时") from exc
        except requests.RequestException as exc:
            raise SourceUnavailableError(SOURCE, f"{self.url} 无法连接：{type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise SourceUnavailableError(
                SOURCE, f"{self.url} 应答不是 JSON（HTTP {response.status_code}）") from exc
        if body.get("status") != "success":
            raise ReportError(f"Prometheus 拒绝查询：{body.get('errorType', '')} {body.get('error', '')}"
                              f"（{params.get('query', '')}）")
        return body["data"]

    def query(self, expr: str, at: datetime | float) -> list[Sample]:
        """An instant vector at `at` (aware datetime or unix seconds); scalars come back as one sample."""
        when = at.timestamp() if isinstance(at, datetime) else at
        data = self._get("/api/v1/query", {"query": expr, "time": f"{when:.3f}"})
        if data["resultType"] == "scalar":
            return [Sample({}, _value(data["result"][1]))]
        if data["resultType"] != "vector":
            raise ReportError(f"Prometheus 返回了 {data['resultType']}，需要 vector：{expr}")
        return [Sample(dict(item["metric"]), _value(item["value"][1])) for item in data["result"]]

    def raw(self, selector: str, start: float, end: float) -> list[Series]:
        """The stored samples of `selector` in [start, end] (to the millisecond) with their own
        timestamps (an instant query of a range selector): rule evaluations and scrapes as recorded."""
        millis = max(round((end - start) * 1000), 1)
        data = self._get("/api/v1/query", {"query": f"{selector}[{millis}ms]", "time": f"{end:.3f}"})
        if data["resultType"] != "matrix":
            raise ReportError(f"Prometheus 返回了 {data['resultType']}，需要 matrix：{selector}")
        return [Series(dict(item["metric"]), [(float(t), _value(v)) for t, v in item["values"]])
                for item in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:.3f}"})
        return [Series(dict(item["metric"]), [(float(t), _value(v)) for t, v in item["values"]])
                for item in data["result"]]

    def ping(self) -> None:
        """Raise SourceUnavailableError unless the server answers its build-info API."""
        self._get("/api/v1/status/buildinfo", {})
