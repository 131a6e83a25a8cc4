"""The local chain (`einvoice_stack`) for tests: free ports and shorter intervals, by configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from einvoice_stack.stack import REPO, StackConfig

from .procs import free_port, require_binary


def shortened_rules(target: Path, interval: str = "2s", max_for: str = "2s",
                    rules_dir: Path = REPO / "alert_rules") -> Path:
    """Copies of the bundle's rule files with every group's `interval` and every `for:` set to the
    given values: the rules are the generated ones, only their timing is configuration."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(rules_dir.glob("*.rules.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            group["interval"] = interval
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = max_for
        (target / path.name).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
                                        encoding="utf-8")
    return target


def fast_stack_config(tmp: Path, **overrides: Any) -> StackConfig:
    """A StackConfig on free ports with 1 s scrapes, 2 s rules and 1-2 s Alertmanager grouping."""
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    settings: dict[str, Any] = {
        "run_dir": tmp / "run", "prometheus_port": free_port(), "alertmanager_port": free_port(),
        "exporter_port": free_port(), "notifier_port": free_port(), "demo_target_port": free_port(),
        "scrape_interval": "1s", "evaluation_interval": "1s",
        "rules_dir": shortened_rules(tmp / "rules"),
        "alertmanager_timing": {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
        "python_bin": REPO / ".venv" / "bin",
    }
    settings.update(overrides)
    return StackConfig(**settings)
