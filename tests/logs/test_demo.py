"""The demo's live log: the demo target writes a syslog-style line per health request and an OOM kill
when it goes down; the demo config's logfile check, as the stack renders it, counts that kill."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import yaml
from einvoice_exporter.collectors import build_check
from einvoice_exporter.config import parse_config

from einvoice_stack.stack import DEMO_SYSLOG, DemoTarget
from tests.support.procs import free_port

from .conftest import matches

REPO = Path(__file__).resolve().parents[2]


def test_demo_target_log_fires_the_oom_class(tmp_path: Path):
    syslog = tmp_path / "demo-syslog"
    port = free_port()
    target = DemoTarget("127.0.0.1", port, syslog=syslog).start()
    raw = yaml.safe_load((REPO / "config" / "demo" / "exporter.yml").read_text(encoding="utf-8"))
    (check_cfg,) = [c for c in raw["checks"] if c["target"] == DEMO_SYSLOG]
    check_cfg["target"] = str(syslog)
    config = parse_config(yaml.safe_dump(raw), "demo.yml", env={})
    check = build_check(config.modules[check_cfg["module"]])
    try:
        def health() -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/actuator/health", timeout=5) as r:
                    return int(r.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert health() == 200
        assert matches(check.run(str(syslog), 5), "oom") == 0
        target.set_up(False)
        assert health() == 503 and health() == 503  # one kill at the transition, not per request
        outcome = check.run(str(syslog), 5)
        assert outcome.success, outcome.failure
        assert matches(outcome, "oom") == 1
    finally:
        check.close()
        target.stop()
