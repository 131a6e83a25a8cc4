"""The host rules (einvoice-hosts.rules.yml) on real data: Debian's node_exporter 1.5 on this machine,
scraped by a real Prometheus under two zone jobs with their `item` labels, loading rules generated
from a test copy of the thresholds (evaluation every second, `for:` zero, thresholds moved so that
the alerts' direction is checked on whatever this machine's numbers are).

A small tmpfs mounted by the test is the filesystem we control: it is filled while Prometheus
watches (predict_linear sees it shrinking) and then remounted read-only. Without the privilege to
mount the test skips that part only.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from einvoice_core.catalogue import ITEMS as CATALOGUE
from einvoice_core.generate import dashboards_hosts_node, rules_hosts
from einvoice_core.thresholds import Thresholds, load_thresholds
from tests.support.procs import Proc, free_port, require_binary, wait_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "prometheus"
ITEMS = {"node-extranet": ("extranet", "05"), "node-intranet": ("intranet", "10")}
"""The first host group of each zone's example host list (deploy/prometheus/nodes/<zone>/)."""


def _deploy_node_jobs(sd_root: Path, address: str) -> list[dict[str, Any]]:
    """The node_exporter jobs of deploy/prometheus/prometheus.yml, their file_sd files taken from the
    shipped examples (first host group of each zone) with the hosts replaced by the local exporter."""
    deploy = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = [job for job in deploy["scrape_configs"] if job["job_name"].startswith("node-")]
    assert sorted(job["job_name"] for job in jobs) == sorted(ITEMS)
    for job in jobs:
        zone = job["job_name"].removeprefix("node-")
        example = yaml.safe_load((DEPLOY / "nodes" / zone / "hosts.yml.example").read_text(encoding="utf-8"))
        (sd_root / zone).mkdir(parents=True)
        (sd_root / zone / "hosts.yml").write_text(
            yaml.safe_dump([{"targets": [address], "labels": example[0]["labels"]}]), encoding="utf-8")
        job["file_sd_configs"] = [{"files": [str(sd_root / zone / "*.yml")]}]
    return jobs


def test_example_host_lists_name_items_of_their_zone() -> None:
    deploy = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    zones = {item.id: str(item.zone) for item in CATALOGUE}
    for job in (j for j in deploy["scrape_configs"] if j["job_name"].startswith("node-")):
        zone = job["job_name"].removeprefix("node-")
        assert job["relabel_configs"] == [{"target_label": "zone", "replacement": zone}]
        (pattern,) = job["file_sd_configs"][0]["files"]
        assert pattern == f"/etc/prometheus/nodes/{zone}/*.yml"
        groups = yaml.safe_load((DEPLOY / "nodes" / zone / "hosts.yml.example").read_text(encoding="utf-8"))
        assert groups
        for group in groups:
            assert set(group["labels"]) == {"item"}, group
            assert zones[group["labels"]["item"]] == zone, group
            assert all(target.endswith(":9100") for target in group["targets"])


@dataclass
class Stack:
    base: str
    mount: Path | None

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = requests.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def values(self, expr: str) -> list[float]:
        return [float(r["value"][1]) for r in self.query(expr)]

    def firing(self, alertname: str, **labels: str) -> list[dict[str, str]]:
        matchers = "".join(f', {k}="{v}"' for k, v in labels.items())
        alerts = self.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"{matchers}}}')
        return [r["metric"] for r in alerts]


def _test_thresholds() -> Thresholds:
    shipped = load_thresholds()
    hosts = shipped.hosts.model_copy(update={
        # keep the test's tmpfs, and overlay: in a container (CI's) the root filesystem is one
        "fstypes_exclude": "ramfs|squashfs|nsfs|autofs|proc|sysfs",
        "filesystem_free_warning": 1.02, "filesystem_free_critical": 0.0, "filesystem_free_for": "0s",
        "inodes_free_warning": 1.02, "inodes_free_critical": 0.0, "inodes_free_for": "0s",
        "memory_available_warning": 1.02, "memory_available_critical": 0.0, "memory_for": "0s",
        "load_per_core_warning": -1.0, "load_for": "0s",
        "clock_offset_warning_seconds": -1.0, "clock_offset_critical_seconds": 1e9, "clock_offset_for": "0s",
        "fill_window": "30s", "fill_max_free_ratio": 1.01, "fill_warning_seconds": 1e9,
        "fill_critical_seconds": 60, "fill_for": "0s",  # only the test's tmpfs fills that fast
        "readonly_for": "0s", "readonly_ok_mountpoints": _readonly_now(),
    })
    return shipped.model_copy(update={"evaluation_interval": "1s", "hosts": hosts})


def _readonly_now() -> str:
    """This machine's read-only mounts as a regex (read-only by design here, as the thresholds' list
    says of a real server's), so only the remount the test makes turns the wall red."""
    mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    readonly = sorted({fields[1] for fields in (line.split() for line in mounts)
                       if len(fields) > 3 and "ro" in fields[3].split(",")})
    pattern = "|".join(re.escape(point) for point in readonly) or "^$"
    return pattern.replace("\\", "\\\\")  # inside a PromQL double-quoted string


def _mount_tmpfs(path: Path) -> bool:
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return done.returncode == 0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    node_exporter = require_binary("prometheus-node-exporter", "node_exporter")
    prometheus = require_binary("prometheus")
    mount = tmp_path / "fs"
    mounted = _mount_tmpfs(mount)
    rule_dir = tmp_path / "rules"
    rule_dir.mkdir()
    for name, text in rules_hosts.rule_file(_test_thresholds()).items():
        (rule_dir / name).write_text(text, encoding="utf-8")
    ne_port, prom_port = free_port(), free_port()
    collectors = ("filesystem", "meminfo", "loadavg", "cpu", "timex")
    exporter = Proc([node_exporter, f"--web.listen-address=127.0.0.1:{ne_port}",
                     "--collector.disable-defaults",
                     *(f"--collector.{name}" for name in collectors),
                     # node_exporter leaves overlay out by default; in a container (CI's) the root
                     # filesystem is one, and it is the filesystem this test reads
                     "--collector.filesystem.fs-types-exclude="
                     "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
                     "|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs"
                     "|sysfs|tracefs)$"],
                    log=tmp_path / "node_exporter.log")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [f"{rule_dir}/*.rules.yml"],
        "scrape_configs": _deploy_node_jobs(tmp_path / "nodes", f"127.0.0.1:{ne_port}"),
    }), encoding="utf-8")
    server = Proc([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                   f"--web.listen-address=127.0.0.1:{prom_port}"], log=tmp_path / "prometheus.log")
    try:
        exporter.wait_port(ne_port)
        server.wait_port(prom_port)
        exposition = requests.get(f"http://127.0.0.1:{ne_port}/metrics", timeout=10).text
        exposed = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines()
                   if line and not line.startswith("#")}
        assert set(rules_hosts.NODE_EXPORTER_METRICS) <= exposed, (
            set(rules_hosts.NODE_EXPORTER_METRICS) - exposed)
        stack = Stack(f"http://127.0.0.1:{prom_port}", mount if mounted else None)
        wait_until(lambda: requests.get(f"{stack.base}/-/ready", timeout=2).ok, timeout=60, what="prometheus")
        yield stack
    finally:
        server.stop()
        exporter.stop()
        if mounted:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.mark.xdist_group("rules-prometheus")
def test_host_rules_on_a_real_node_exporter(stack: Stack) -> None:
    root = '{mountpoint="/", job="node-extranet"}'
    wait_until(lambda: bool(stack.values(f"einvoice:host_filesystem_free:ratio{root}")), timeout=60,
               what="the free-space ratio of / recorded")
    for rule in ("einvoice:host_filesystem_free:ratio", "einvoice:host_filesystem_inodes_free:ratio"):
        (value,) = stack.values(f"{rule}{root}")
        assert 0 < value <= 1, (rule, value)
    memory = stack.values('einvoice:host_memory_available:ratio{job="node-extranet"}')
    assert len(memory) == 1 and 0 < memory[0] <= 1
    assert stack.values('einvoice:host_cpu_cores{job="node-extranet"}') == [float(os.cpu_count() or 0)]
    swap_total = stack.values('node_memory_SwapTotal_bytes{job="node-extranet"}')
    swap = stack.values('einvoice:host_swap_used:ratio{job="node-extranet"}')
    assert (swap == []) if swap_total == [0.0] else (len(swap) == 1 and 0 <= swap[0] <= 1)
    wait_until(lambda: bool(stack.values(f"einvoice:host_filesystem_seconds_to_full{root}")), timeout=30,
               what="time-to-full of / recorded (needs two samples)")
    (to_full,) = stack.values(f"einvoice:host_filesystem_seconds_to_full{root}")
    assert to_full > 0  # +Inf while / is not shrinking

    # every host alert of both zones fires in the direction the moved thresholds say, with the
    # target's zone and item, so the wall shows a host of item 05 under item 05
    def fired(alertname: str, severity: str) -> set[tuple[str, str]]:
        return {(a["zone"], a["item"]) for a in stack.firing(alertname, severity=severity)}

    expected = set(ITEMS.values())
    for alertname in ("EinvoiceHostFilesystemSpaceLow", "EinvoiceHostFilesystemInodesLow",
                      "EinvoiceHostMemoryLow", "EinvoiceHostLoadHigh", "EinvoiceHostClockSkew"):
        wait_until(lambda name=alertname: fired(name, "warning") == expected, timeout=30,  # type: ignore[misc]
                   what=f"{alertname} warning firing for items 05 and 10")
    for alertname in ("EinvoiceHostFilesystemSpaceLow", "EinvoiceHostMemoryLow", "EinvoiceHostClockSkew"):
        assert fired(alertname, "critical") == set(), alertname
    assert _wall(stack) == {"05": 1.0, "10": 1.0}  # warnings only: amber under both items
    (disk,) = stack.firing("EinvoiceHostFilesystemSpaceLow", mountpoint="/", item="05")
    assert disk["target"] == disk["instance"] + ":/" and disk["job"] == "node-extranet"
    assert stack.values('node_timex_sync_status{job="node-extranet"}')[0] in (0.0, 1.0)

    # the shipped rules' expressions evaluate against node_exporter's real label sets
    for shipped in rules_hosts.alerts(load_thresholds()):
        stack.query(str(shipped["expr"]))

    if stack.mount is None:
        pytest.skip("no privilege to mount a tmpfs: filling and read-only remount not exercised")
    _fill_and_remount(stack, stack.mount)


def _fill_and_remount(stack: Stack, mount: Path) -> None:
    where = f'{{mountpoint="{mount}", job="node-extranet"}}'
    avail = f"node_filesystem_avail_bytes{where}"
    wait_until(lambda: len(stack.values(f"count_over_time({avail}[1m])")) == 1
               and stack.values(f"count_over_time({avail}[1m])")[0] >= 3, timeout=30,
               what="a few samples of the empty tmpfs")
    assert stack.values(f"einvoice:host_filesystem_seconds_to_full{where}") == [math.inf]
    assert stack.firing("EinvoiceHostFilesystemFillingUp", mountpoint=str(mount)) == []
    assert stack.firing("EinvoiceHostFilesystemReadOnly", mountpoint=str(mount)) == []

    def filling() -> set[str]:
        alerts = stack.firing("EinvoiceHostFilesystemFillingUp", severity="critical", mountpoint=str(mount))
        return {a["item"] for a in alerts}

    chunk = 256 * 1024
    for index in range(14):  # a chunk per scrape until the rule predicts the tmpfs full within a minute
        (before,) = stack.values(avail)
        (mount / f"blob{index}").write_bytes(os.urandom(chunk))
        wait_until(lambda before=before: stack.values(avail)[0] <= before - chunk, timeout=30,  # type: ignore[misc]
                   what="the write seen by a scrape")
        if filling() == {"05", "10"}:
            break
    wait_until(lambda: filling() == {"05", "10"}, timeout=30, what="FillingUp firing for the tmpfs")
    (to_full,) = stack.values(f"einvoice:host_filesystem_seconds_to_full{where}")
    assert 0 < to_full < math.inf

    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True, timeout=30)
    wait_until(lambda: len(stack.firing("EinvoiceHostFilesystemReadOnly", mountpoint=str(mount))) == 2,
               timeout=30, what="EinvoiceHostFilesystemReadOnly firing after the remount")
    (alert,) = stack.firing("EinvoiceHostFilesystemReadOnly", mountpoint=str(mount), item="05")
    assert alert["severity"] == "critical" and alert["fstype"] == "tmpfs"
    assert _wall(stack) == {"05": 2.0, "10": 2.0}  # a critical host alert: red


def _wall(stack: Stack) -> dict[str, float]:
    """The wall's host-health figure (dashboards_hosts_node) per item, on this Prometheus."""
    expr = dashboards_hosts_node.wall_status_expr(load_thresholds().hosts.job_regex)
    return {r["metric"].get("item", "-"): float(r["value"][1]) for r in stack.query(expr)}
