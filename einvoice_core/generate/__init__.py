"""`einvoice-generate`: write the generated rule and dashboard files from the catalogue and thresholds.

The generated files are committed; tests regenerate them into a temporary directory and fail on any
difference, so a change to the catalogue or the thresholds cannot silently leave them stale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import dashboards, rules


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="einvoice-generate", description=__doc__)
    parser.add_argument("--root", type=Path, default=repo_root(),
                        help="repository root to write alert_rules/ and grafana_dashboards/ under")
    args = parser.parse_args(argv)
    written = [*rules.write_all(args.root), *dashboards.write_all(args.root)]
    for path in written:
        print(path)
    return 0
