"""The report schedule (deploy/reports): systemd timers and services that `systemd-analyze verify`
accepts (parsed here when it is missing), firing when docs/reports.md says (next elapses worked out
by hand), running commands the CLI accepts for the period wanted; the cron alternative the same; and
its wrapper run for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from einvoice_reports import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "reports"
UNITS = DEPLOY / "systemd"
CADENCE_KIND = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's unit syntax: [Section], Key=Value (a key may repeat), # and ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None and re.fullmatch(r"[A-Za-z]+", key), f"{path.name}:{number}: {raw}"
        current.setdefault(key, []).append(value)
    return sections


def timers() -> dict[str, str]:
    """Enabled timer name -> the service instance it starts, from install.sh's list."""
    listed = re.search(r"for timer in (.*?); do", (DEPLOY / "install.sh").read_text(), re.S)
    assert listed
    out = {}
    for entry in listed.group(1).replace("\\", " ").split():
        timer = f"einvoice-report-{entry}.timer"
        template = UNITS / (re.sub(r"@.*", "@", timer.removesuffix(".timer")) + ".timer")
        unit = parse_unit(template if "@" in entry else UNITS / timer)["Timer"].get("Unit")
        out[timer] = unit[0] if unit else timer.removesuffix(".timer") + ".service"
    return out


def test_every_enabled_timer_starts_a_service_whose_command_the_cli_accepts():
    now = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    seen = set()
    for timer, service in timers().items():
        cadence, kind = re.fullmatch(r"einvoice-report-(\w+)@(\w+)\.service", service).groups()
        template = parse_unit(UNITS / f"einvoice-report-{cadence}@.service")
        (command,) = template["Service"]["ExecStart"]
        argv = command.replace("%i", kind).split()[1:]
        options = cli.parse_args(argv, now)
        assert options.kind == kind and options.span.kind == CADENCE_KIND[cadence], timer
        assert template["Service"]["SuccessExitStatus"] == ["3"]
        assert parse_unit(UNITS / f"einvoice-report-{cadence}@.timer")["Timer"]["Persistent"] == ["true"]
        seen.add((kind, options.span.label))
    # 1 Dec 2026 08:30 local: the day before, November, the third quarter's end is not due, 2025
    assert seen == {("daily", "2026-11-30"), ("health", "2026-11-30"), ("params", "2026-11-30"),
                    ("monthly", "2026-11"), ("scorecard", "2026-11"), ("health", "2026-11"),
                    ("params", "2026-11"), ("handbook", "2026-Q3"), ("yearly", "2025"),
                    ("weekly", "2026-W48")}


NEXT = {  # from 2026-11-15 00:00 UTC, worked out by hand (Asia/Shanghai is UTC+8)
    "einvoice-report-day@.timer": "Sun 2026-11-15 16:30:00 UTC",       # 16 Nov 00:30 local
    "einvoice-report-month@.timer": "Mon 2026-11-30 17:00:00 UTC",     # 1 Dec 01:00 local
    "einvoice-report-scorecard.timer": "Mon 2026-11-30 17:30:00 UTC",  # 1 Dec 01:30 local
    "einvoice-report-quarter@.timer": "Thu 2026-12-31 18:00:00 UTC",   # 1 Jan 02:00 local
    "einvoice-report-year@.timer": "Thu 2026-12-31 19:00:00 UTC",      # 1 Jan 03:00 local
    "einvoice-report-week@.timer": "Sun 2026-11-15 16:50:00 UTC",      # Mon 16 Nov 00:50 local
}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_verifies_the_units_and_computes_the_next_runs(tmp_path: Path):
    binary = Path(sys.prefix) / "bin" / "einvoice-report"
    names = []
    for timer, service in timers().items():
        for name, template in ((timer, re.sub(r"@\w+\.timer$", "@.timer", timer)),
                               (service, re.sub(r"@\w+\.service$", "@.service", service))):
            text = (UNITS / template).read_text(encoding="utf-8")
            (tmp_path / name).write_text(text.replace("/opt/einvoice/venv/bin/einvoice-report", str(binary)))
            names.append(f"./{name}")
    result = subprocess.run(["systemd-analyze", "verify", *sorted(set(names))], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    for unit, expected in NEXT.items():
        (when,) = parse_unit(UNITS / unit)["Timer"]["OnCalendar"]
        shown = subprocess.run(["systemd-analyze", "calendar", "--base-time=2026-11-15 00:00:00 UTC", when],
                               capture_output=True, text=True, timeout=30, env={**os.environ, "TZ": "UTC"})
        assert f"Next elapse: {expected}" in shown.stdout, (unit, shown.stdout, shown.stderr)


def words_of(command: str) -> list[str]:
    return command.split()


def test_the_cron_alternative_runs_the_same_reports_at_the_same_local_times():
    lines = [line.split(None, 6) for line in (DEPLOY / "einvoice-report.cron").read_text().splitlines()
             if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
    entries = {}
    for minute, hour, dom, month, dow, user, command in lines:
        assert user == "einvoice" and dow == ("1" if words_of(command)[1] == "weekly" else "*")
        words = command.split()
        assert words[0] == "/opt/einvoice/deploy/reports/run-report"
        kind, cadence = words[1], words[3]
        options = cli.parse_args(words[1:], datetime(2026, 12, 1, 0, 30, tzinfo=UTC))
        assert options.span.kind == CADENCE_KIND[cadence]
        entries[(kind, cadence)] = (int(minute), int(hour), dom, month)
    assert set(entries) == {(kind, cadence) for service in timers().values()
                            for cadence, kind in [re.search(r"-(\w+)@(\w+)\.", service).groups()]}
    assert entries[("daily", "day")] == (30, 0, "*", "*")
    assert entries[("monthly", "month")] == (0, 1, "1", "*")
    assert entries[("scorecard", "month")] == (30, 1, "1", "*")  # after the monthly report
    assert entries[("handbook", "quarter")] == (0, 2, "1", "1,4,7,10")
    assert entries[("yearly", "year")] == (0, 3, "1", "1")
    assert entries[("weekly", "week")] == (50, 0, "*", "*")  # on Mondays (dow 1)


def test_the_cron_wrapper_reads_the_env_file_and_counts_incomplete_as_done(tmp_path: Path,
                                                                            scripted_prometheus: str):
    archive = tmp_path / "archive"
    env = tmp_path / "report.env"
    env.write_text(f"EINVOICE_REPORT_PROMETHEUS={scripted_prometheus}\nEINVOICE_REPORT_ARCHIVE={archive}\n")
    path = f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin"
    ran = subprocess.run([str(DEPLOY / "run-report"), "params", "--period", "2026-11", "--no-pdf"],
                         env={"PATH": path, "EINVOICE_REPORT_ENV": str(env)}, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert (archive / "params" / "2026-11.html").is_file()
    gap = subprocess.run([str(DEPLOY / "run-report"), "params", "--period", "2026-10-01", "--no-pdf"],
                         env={"PATH": path, "EINVOICE_REPORT_ENV": str(env)}, capture_output=True, text=True,
                         timeout=300)
    assert gap.returncode == 0 and "数据不完整" in gap.stderr  # exit 3 of the CLI: written, incomplete
    env.write_text("EINVOICE_REPORT_PROMETHEUS=http://127.0.0.1:9\n"
                   f"EINVOICE_REPORT_ARCHIVE={archive}\n")
    dead = subprocess.run([str(DEPLOY / "run-report"), "params", "--period", "2026-11-02", "--no-pdf"],
                          env={"PATH": path, "EINVOICE_REPORT_ENV": str(env)}, capture_output=True, text=True,
                          timeout=300)
    assert dead.returncode == 2 and "数据源不可用：Prometheus" in dead.stderr
    assert not (archive / "params" / "2026-11-02.html").exists()
