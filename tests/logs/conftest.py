"""Helpers of the log-scanner tests: a collector built from settings, counters read back by label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from einvoice_exporter.collectors import logfile
from einvoice_exporter.outcome import Outcome

from tests.exporter.conftest import serve  # noqa: F401 (an in-process exporter server, for /logs)

OOM = b"Dec  6 03:10:01 ext-web-01 kernel: [812.1] Out of memory: Killed process 4242 (java) total-vm:8G\n"
SSHD = b"Dec  6 03:10:02 ext-web-01 sshd[991]: Failed password for root from 198.51.100.7 port 22 ssh2\n"
NOISE = b"Dec  6 03:10:03 ext-web-01 CRON[77]: (root) CMD (run-parts /etc/cron.hourly)\n"


def collector(tmp_path: Path, **settings: Any) -> logfile.Collector:
    settings.setdefault("state_file", str(tmp_path / "state.json"))
    return logfile.Collector(logfile.Settings.model_validate(settings))


def matches(outcome: Outcome, klass: str, source: str | None = None) -> float:
    total = 0.0
    for name, _type, _doc, samples in outcome.metrics.items():
        if name == "einvoice_log_matches_total":
            total += sum(v for labels, v in samples
                         if labels["class"] == klass and (source is None or labels["source"] == source))
    return total


def lines(outcome: Outcome) -> float:
    for name, _type, _doc, samples in outcome.metrics.items():
        if name == "einvoice_log_lines_total":
            return sum(v for _labels, v in samples)
    return 0.0


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "syslog"
    path.write_bytes(NOISE)
    return path
