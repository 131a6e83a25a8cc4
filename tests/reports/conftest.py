from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .promfill import backfilled_prometheus
from .scripted import fill_store, write_openmetrics


@pytest.fixture(scope="package")
def scripted_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("prom")
    with backfilled_prometheus(tmp, write_openmetrics(tmp / "month.om")) as url:
        yield url


@pytest.fixture
def scripted_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    fill_store(url).dispose()
    return url
