"""Backfill a real Prometheus with known samples (promtool tsdb create-blocks-from openmetrics)
and serve it on a free port: the reports are tested on Prometheus' own arithmetic."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def _create_blocks(promtool: str, openmetrics: Path, data: Path, timeout: float) -> None:
    """One file's blocks, made in a folder of their own and then moved into `data` (so that several
    promtool runs never write into one folder at once)."""
    out = data.parent / f"blocks-{openmetrics.stem}"
    out.mkdir()
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(openmetrics), str(out)],
                   check=True, capture_output=True, timeout=timeout)
    for block in out.iterdir():
        block.rename(data / block.name)
    out.rmdir()


@contextmanager
def backfilled_prometheus(tmp: Path, openmetrics: Path | Sequence[Path], parallel: int = 1,
                          timeout: float = 900) -> Iterator[str]:
    """Blocks from `openmetrics` (one file, or several covering disjoint times, backfilled
    `parallel` at a time) under tmp/data, Prometheus serving them; yields its URL.

    promtool 2.42 writes 2-hour blocks and reads its whole input once per block, so a month is
    backfilled much faster from one file per day than from one file."""
    promtool = require_binary("promtool")
    prometheus = require_binary("prometheus")
    data = tmp / "data"
    data.mkdir()
    files = [openmetrics] if isinstance(openmetrics, Path) else list(openmetrics)
    with ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool:
        for done in [pool.submit(_create_blocks, promtool, f, data, timeout) for f in files]:
            done.result()
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
