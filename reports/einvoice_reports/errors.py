"""What goes wrong building a report, said so a person can act on it."""

from __future__ import annotations


class ReportError(Exception):
    """A report cannot be produced; the message says why (in Chinese, for the operator)."""


class SourceUnavailableError(ReportError):
    """A data source (Prometheus, the ticket store) did not answer."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"数据源不可用：{source}（{reason}）")
        self.source = source
        self.reason = reason
