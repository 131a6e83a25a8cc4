"""Generator of the dashboards files (placeholder until its issue lands)."""

from __future__ import annotations

from pathlib import Path


def write_all(root: Path) -> list[Path]:
    """Write the generated files under `root` and return their paths."""
    return []
