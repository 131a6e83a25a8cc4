"""Backfill a real Prometheus with known samples (promtool tsdb create-blocks-from openmetrics)
and serve it on a free port: the reports are tested on Prometheus' own arithmetic."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.procs import Proc, free_port, require_binary, wait_until

Labels = dict[str, str]


class OpenMetricsWriter:
    """Series written one after the other, each time-ascending, as promtool needs them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", encoding="utf-8")
        self._types: set[str] = set()

    def series(self, name: str, labels: Labels, samples: Iterable[tuple[float, float]]) -> None:
        """A gauge, or a counter when the name ends in _total (its family is the name without it)."""
        counter = name.endswith("_total")
        family, kind = (name.removesuffix("_total"), "counter") if counter else (name, "gauge")
        if family not in self._types:
            self._types.add(family)
            self._handle.write(f"# TYPE {family} {kind}\n")
        rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        head = f"{name}{{{rendered}}}" if rendered else name
        self._handle.writelines(f"{head} {float(value)!r} {ts:.3f}\n" for ts, value in samples)

    def close(self) -> None:
        self._handle.write("# EOF\n")
        self._handle.close()


@contextmanager
def backfilled_prometheus(tmp: Path, openmetrics: Path) -> Iterator[str]:
    """Blocks from `openmetrics` under tmp/data, Prometheus serving them; yields its URL."""
    promtool = require_binary("promtool")
    prometheus = require_binary("prometheus")
    data = tmp / "data"
    data.mkdir()
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(openmetrics), str(data)],
                   check=True, capture_output=True, timeout=900)
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    proc = Proc([prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}",
                 "--query.max-samples=200000000"], tmp / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_port(port, timeout=60)

        def ready() -> bool:
            try:
                return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=60, what="prometheus ready")
        yield url
    finally:
        proc.stop()
