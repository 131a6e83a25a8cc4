"""Host rules from Prometheus' own node_exporter (issue 20): the file `einvoice-hosts.rules.yml`
and its promtool tests `tests/hosts.test.yml`, thresholds from the `hosts` section of
thresholds.yaml.

node_exporter runs on every server and is scraped by one job per zone (`node-extranet`,
`node-intranet`, ...); every target carries the labels `zone` and `item` (the item whose service
runs on the host, see docs/deploy.md), so a host alert is routed, grouped and shown on the wall
under that item like any other alert of it. Alerts carry `target`: the instance, with the
mountpoint for filesystem alerts, so the usual "critical inhibits warning" rule only pairs alerts
of the same host and filesystem.

Kept apart from rules.py, which adds the two files with one line.
"""

from __future__ import annotations

from typing import Any

from einvoice_core.catalogue import Severity
from einvoice_core.thresholds import Hosts, Thresholds, duration_seconds

FILE_NAME = "einvoice-hosts.rules.yml"
TEST_FILE_NAME = "tests/hosts.test.yml"

FREE = "einvoice:host_filesystem_free:ratio"
TO_FULL = "einvoice:host_filesystem_seconds_to_full"
INODES = "einvoice:host_filesystem_inodes_free:ratio"
MEMORY = "einvoice:host_memory_available:ratio"
SWAP = "einvoice:host_swap_used:ratio"
CORES = "einvoice:host_cpu_cores"
LOAD = "einvoice:host_load15_per_core"

NODE_EXPORTER_METRICS = (
    "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_filesystem_files",
    "node_filesystem_files_free", "node_filesystem_readonly", "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes", "node_memory_SwapFree_bytes", "node_memory_SwapTotal_bytes",
    "node_cpu_seconds_total", "node_load15", "node_timex_offset_seconds", "node_timex_sync_status",
)
"""The node_exporter series the host rules and panels read (node_exporter 1.x names; a test scrapes
the real exporter and finds each of them)."""

DOC = (
    "# Recording rules in this file (labels: job, instance, zone, item; filesystems add device,\n"
    "# fstype, mountpoint), from node_exporter:\n"
    f"#   {FREE}        avail / size (space left for non-root users)\n"
    f"#   {TO_FULL}     avail / shrink rate over hosts.fill_window\n"
    "#                                               (+Inf while the filesystem is not shrinking)\n"
    f"#   {INODES} files_free / files\n"
    f"#   {MEMORY}        MemAvailable / MemTotal\n"
    f"#   {SWAP}                 1 - SwapFree / SwapTotal (hosts with swap only)\n"
    f"#   {CORES}                      CPUs seen by node_exporter\n"
    f"#   {LOAD}              node_load15 / cores\n"
)


def _fs_selector(h: Hosts) -> str:
    return (f'job=~"{h.job_regex}", fstype!~"{h.fstypes_exclude}", '
            f'mountpoint!~"{h.mountpoints_exclude}"')


def _target_fs(expr: str) -> str:
    expr = expr.replace("\n", "\n  ")
    return f'label_join(\n  {expr},\n  "target", ":", "instance", "mountpoint"\n)'


def _target_host(expr: str) -> str:
    return f'label_replace(\n  {expr},\n  "target", "$1", "instance", "(.*)"\n)'


def records(h: Hosts) -> list[dict[str, Any]]:
    fs = _fs_selector(h)
    job = f'job=~"{h.job_regex}"'
    return [
        {"record": FREE,
         "expr": f"node_filesystem_avail_bytes{{{fs}}}\n/ (node_filesystem_size_bytes{{{fs}}} > 0)"},
        {"record": TO_FULL,
         "expr": f"node_filesystem_avail_bytes{{{fs}}}\n"
                 f"/ clamp_min(-deriv(node_filesystem_avail_bytes{{{fs}}}[{h.fill_window}]), 0)"},
        {"record": INODES,
         "expr": f"node_filesystem_files_free{{{fs}}}\n/ (node_filesystem_files{{{fs}}} > 0)"},
        {"record": MEMORY,
         "expr": f"node_memory_MemAvailable_bytes{{{job}}}\n/ (node_memory_MemTotal_bytes{{{job}}} > 0)"},
        {"record": SWAP,
         "expr": f"1 - node_memory_SwapFree_bytes{{{job}}}\n/ (node_memory_SwapTotal_bytes{{{job}}} > 0)"},
        {"record": CORES,
         "expr": f'count without (cpu, mode) (node_cpu_seconds_total{{{job}, mode="idle"}})'},
        {"record": LOAD, "expr": f"node_load15{{{job}}} / {CORES}"},
    ]


HOST_ZH = "【{{ $labels.item }}】{{ $labels.instance }} "
DISK_ZH = HOST_ZH + "磁盘 {{ $labels.mountpoint }} "
PCT = "{{ $value | humanizePercentage }}"
INSTANCE = "{{ $labels.instance }}"


def _pct(ratio: float) -> str:
    return f"{ratio:.0%}"


def alerts(th: Thresholds) -> list[dict[str, Any]]:
    from einvoice_core.generate.rules import _alert, _num, _zh

    h = th.hosts
    fs_where = ("主机 {{ $labels.instance }} 的文件系统 {{ $labels.mountpoint }}"
                "（{{ $labels.device }}，{{ $labels.fstype }}）")
    fill = f"node_filesystem_avail_bytes{{{_fs_selector(h)}}}[{h.fill_window}]"
    return [
        _alert(th, "EinvoiceHostFilesystemSpaceLow",
               _target_fs(f"{FREE} < {_num(h.filesystem_free_warning)}"
                          f" and {FREE} >= {_num(h.filesystem_free_critical)}"),
               Severity.WARNING, DISK_ZH + "空间不足",
               f"{fs_where}可用空间只剩 {PCT}，低于 {_pct(h.filesystem_free_warning)}"
               f"，已持续 {_zh(h.filesystem_free_for)}。请清理日志、归档与临时文件，或扩容。",
               for_=h.filesystem_free_for),
        _alert(th, "EinvoiceHostFilesystemSpaceLow",
               _target_fs(f"{FREE} < {_num(h.filesystem_free_critical)}"),
               Severity.CRITICAL, DISK_ZH + "即将写满",
               f"{fs_where}可用空间只剩 {PCT}，低于 {_pct(h.filesystem_free_critical)}"
               f"，已持续 {_zh(h.filesystem_free_for)}。写满后服务会写日志失败或停止受理，请立即清理或扩容。",
               for_=h.filesystem_free_for),
        _alert(th, "EinvoiceHostFilesystemFillingUp",
               _target_fs(f"{FREE} < {_num(h.fill_max_free_ratio)}\n"
                          f"and predict_linear({fill}, {_num(h.fill_warning_seconds)}) < 0\n"
                          f"and predict_linear({fill}, {_num(h.fill_critical_seconds)}) >= 0"),
               Severity.WARNING, DISK_ZH + "预计一天内写满",
               f"按最近 {_zh(h.fill_window)}的写入速度（predict_linear），{fs_where}"
               f"将在 {_zh(_seconds(h.fill_warning_seconds))}内写满，当前可用 {PCT}，"
               f"已持续 {_zh(h.fill_for)}。请找出增长最快的目录（日志、归档、导出文件）并清理或扩容。",
               for_=h.fill_for),
        _alert(th, "EinvoiceHostFilesystemFillingUp",
               _target_fs(f"{FREE} < {_num(h.fill_max_free_ratio)}\n"
                          f"and predict_linear({fill}, {_num(h.fill_critical_seconds)}) < 0"),
               Severity.CRITICAL, DISK_ZH + "预计数小时内写满",
               f"按最近 {_zh(h.fill_window)}的写入速度（predict_linear），{fs_where}"
               f"将在 {_zh(_seconds(h.fill_critical_seconds))}内写满，当前可用 {PCT}，"
               f"已持续 {_zh(h.fill_for)}。请立即查找写入来源并清理或扩容。",
               for_=h.fill_for),
        _alert(th, "EinvoiceHostFilesystemInodesLow",
               _target_fs(f"{INODES} < {_num(h.inodes_free_warning)}"
                          f" and {INODES} >= {_num(h.inodes_free_critical)}"),
               Severity.WARNING, DISK_ZH + "inode 不足",
               f"{fs_where}可用 inode 只剩 {PCT}，低于 {_pct(h.inodes_free_warning)}"
               f"，已持续 {_zh(h.inodes_free_for)}。通常是大量小文件（会话、缓存、临时文件）未清理。",
               for_=h.inodes_free_for),
        _alert(th, "EinvoiceHostFilesystemInodesLow",
               _target_fs(f"{INODES} < {_num(h.inodes_free_critical)}"),
               Severity.CRITICAL, DISK_ZH + "inode 即将耗尽",
               f"{fs_where}可用 inode 只剩 {PCT}，低于 {_pct(h.inodes_free_critical)}"
               f"，已持续 {_zh(h.inodes_free_for)}。inode 耗尽后无法创建文件，请立即清理小文件。",
               for_=h.inodes_free_for),
        _alert(th, "EinvoiceHostFilesystemReadOnly",
               _target_fs(f'node_filesystem_readonly{{{_fs_selector(h)}, '
                          f'mountpoint!~"{h.readonly_ok_mountpoints}"}} == 1'),
               Severity.CRITICAL, DISK_ZH + "变为只读",
               f"{fs_where}处于只读状态，已持续 {_zh(h.readonly_for)}。"
               "通常是内核发现 I/O 或文件系统错误后重新挂载为只读，写入全部失败。"
               "请查看系统日志（dmesg）中的磁盘错误，联系主机与存储管理员。",
               for_=h.readonly_for),
        _alert(th, "EinvoiceHostMemoryLow",
               _target_host(f"{MEMORY} < {_num(h.memory_available_warning)}"
                            f" and {MEMORY} >= {_num(h.memory_available_critical)}"),
               Severity.WARNING, HOST_ZH + "可用内存不足",
               f"主机 {INSTANCE} 可用内存（MemAvailable）只剩 {PCT}，"
               f"低于 {_pct(h.memory_available_warning)}，已持续 {_zh(h.memory_for)}。"
               "请查看占用内存最多的进程（JVM 堆、缓存），警惕 OOM。",
               for_=h.memory_for),
        _alert(th, "EinvoiceHostMemoryLow",
               _target_host(f"{MEMORY} < {_num(h.memory_available_critical)}"),
               Severity.CRITICAL, HOST_ZH + "内存即将耗尽",
               f"主机 {INSTANCE} 可用内存（MemAvailable）只剩 {PCT}，"
               f"低于 {_pct(h.memory_available_critical)}，已持续 {_zh(h.memory_for)}。"
               "内核随时可能触发 OOM 杀掉服务进程，请立即处理。",
               for_=h.memory_for),
        _alert(th, "EinvoiceHostSwapUsageHigh",
               _target_host(f"{SWAP} > {_num(h.swap_used_warning)}"),
               Severity.WARNING, HOST_ZH + "交换分区使用率高",
               f"主机 {INSTANCE} 交换分区已使用 {PCT}，"
               f"超过 {_pct(h.swap_used_warning)}，已持续 {_zh(h.swap_for)}。"
               "内存长期不足，进程被换出会导致响应变慢。",
               for_=h.swap_for),
        _alert(th, "EinvoiceHostLoadHigh",
               _target_host(f"{LOAD} > {_num(h.load_per_core_warning)}"),
               Severity.WARNING, HOST_ZH + "系统负载过高",
               "主机 {{ $labels.instance }} 15 分钟平均负载为每核 {{ printf \"%.2f\" $value }}，"
               f"超过每核 {_num(h.load_per_core_warning)}，已持续 {_zh(h.load_for)}。"
               "请查看 CPU 占用与 I/O 等待（iowait），以及是否有失控的批处理任务。",
               for_=h.load_for),
        _alert(th, "EinvoiceHostClockSkew",
               _target_host(f'abs(node_timex_offset_seconds{{job=~"{h.job_regex}"}})'
                            f" > {_num(h.clock_offset_warning_seconds)}"
                            f' <= {_num(h.clock_offset_critical_seconds)}'),
               Severity.WARNING, HOST_ZH + "系统时钟偏差",
               "主机 {{ $labels.instance }} 的时钟与时间源相差 {{ printf \"%.3f\" $value }} 秒，"
               f"超过 {_num(h.clock_offset_warning_seconds)} 秒，已持续 {_zh(h.clock_offset_for)}。"
               "请检查 chrony/ntpd 的时间源与同步状态（chronyc tracking）。",
               for_=h.clock_offset_for),
        _alert(th, "EinvoiceHostClockSkew",
               _target_host(f'abs(node_timex_offset_seconds{{job=~"{h.job_regex}"}})'
                            f" > {_num(h.clock_offset_critical_seconds)}"),
               Severity.CRITICAL, HOST_ZH + "系统时钟严重偏差",
               "主机 {{ $labels.instance }} 的时钟与时间源相差 {{ printf \"%.3f\" $value }} 秒，"
               f"超过 {_num(h.clock_offset_critical_seconds)} 秒，已持续 {_zh(h.clock_offset_for)}。"
               "时钟偏差会使 TLS 证书校验失败、日志与 SLA 时间戳错误，请立即校时并检查 chrony/ntpd。",
               for_=h.clock_offset_for),
        _alert(th, "EinvoiceHostClockNotSynchronising",
               _target_host(f'node_timex_sync_status{{job=~"{h.job_regex}"}} == 0'),
               Severity.WARNING, HOST_ZH + "时钟未同步",
               f"主机 {INSTANCE} 的内核报告时钟未与时间源同步，已持续 {_zh(h.clock_unsynced_for)}。"
               "请检查 chrony/ntpd 是否运行、时间源是否可达。",
               for_=h.clock_unsynced_for),
        _alert(th, "EinvoiceHostExporterDown",
               _target_host(f'up{{job=~"{h.job_regex}"}} == 0'),
               Severity.WARNING, HOST_ZH + "的 node_exporter 无法抓取",
               f"Prometheus 已有 {_zh(h.exporter_down_for)}无法抓取主机 {INSTANCE} 的 node_exporter"
               "（任务 {{ $labels.job }}）：这台主机的磁盘、内存、时钟告警都不会再出现。"
               "请检查主机是否在线、node_exporter 服务是否运行、防火墙是否放行端口。",
               for_=h.exporter_down_for),
    ]


def _seconds(value: float) -> str:
    """Seconds as a Prometheus duration for _zh: 86400 -> "1d", 14400 -> "4h"."""
    seconds = int(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def groups(th: Thresholds) -> list[dict[str, Any]]:
    from einvoice_core.generate.rules import _expr

    recs = [{"record": r["record"], "expr": _expr(r["expr"])} for r in records(th.hosts)]
    # one group: its rules run in order, so an alert reads the recording of the same evaluation
    return [{"name": "einvoice-hosts", "interval": th.evaluation_interval, "rules": [*recs, *alerts(th)]}]


def rule_file(th: Thresholds) -> dict[str, str]:
    """{file name: content} for rules.rule_files."""
    from einvoice_core.generate.rules import HEADER, dump

    return {FILE_NAME: HEADER + DOC + dump({"groups": groups(th)})}


# --------------------------------------------------------------------------------------------
# promtool tests: every alert quiet before its `for:` has run out, firing after


HOST = {"job": "node-extranet", "instance": "sl-app-01:9100", "zone": "extranet", "item": "05"}
DISK = {**HOST, "device": "/dev/sdb1", "fstype": "xfs", "mountpoint": "/data"}
CHANGE = 6
"""Minute at which the input series turn bad; before it every alert is quiet."""


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    return {"series": name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}",
            "values": values}


def _go_percent(ratio: float) -> str:
    """Prometheus' humanizePercentage: fmt.Sprintf("%.4g%%", v*100)."""
    return f"{ratio * 100:.4g}%"


def _render(text: str, labels: dict[str, str], value: str) -> str:
    import re

    text = re.sub(r"\{\{ \$labels\.([a-z_]+) \}\}", lambda m: labels[m.group(1)], text)
    return re.sub(r"\{\{ (?:\$value \| humanizePercentage|printf \"%\.\d+f\" \$value) \}\}", value, text)


def _case(rule: dict[str, Any], series: list[dict[str, str]], labels: dict[str, str], value: str,
          quiet: int, fired: int) -> dict[str, Any]:
    target = f"{labels['instance']}:{labels['mountpoint']}" if "mountpoint" in labels else labels["instance"]
    exp_labels = {**labels, "target": target, **rule["labels"]}
    annotations = {k: _render(v, exp_labels, value) for k, v in rule["annotations"].items()}
    return {
        "interval": "1m",
        "name": f"{rule['alert']} {rule['labels']['severity']}",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": f"{quiet}m", "alertname": rule["alert"], "exp_alerts": []},
            {"eval_time": f"{fired}m", "alertname": rule["alert"],
             "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": annotations}]},
        ],
    }


def _minutes(duration: str) -> int:
    return int(duration_seconds(duration) // 60)


def tests(th: Thresholds) -> list[dict[str, Any]]:
    h = th.hosts
    rules = {(r["alert"], r["labels"]["severity"]): r for r in alerts(th)}
    cases: list[dict[str, Any]] = []
    total = 100000

    def step(rule_key: tuple[str, str], for_: str, series: list[dict[str, str]], labels: dict[str, str],
             value: str) -> None:
        quiet, fired = CHANGE + _minutes(for_) - 1, CHANGE + _minutes(for_) + 1
        cases.append(_case(rules[rule_key], series, labels, value, quiet, fired))

    length = CHANGE + 60
    mid = {"warning": (h.filesystem_free_warning + h.filesystem_free_critical) / 2,
           "critical": h.filesystem_free_critical / 2}
    for severity, ratio in mid.items():
        avail = round(total * ratio)
        step(("EinvoiceHostFilesystemSpaceLow", severity), h.filesystem_free_for,
             [_series("node_filesystem_size_bytes", DISK, f"{total}x{length}"),
              _series("node_filesystem_avail_bytes", DISK, f"{total // 2}x{CHANGE - 1} {avail}x{length}")],
             DISK, _go_percent(avail / total))
    inode_mid = {"warning": (h.inodes_free_warning + h.inodes_free_critical) / 2,
                 "critical": h.inodes_free_critical / 2}
    for severity, ratio in inode_mid.items():
        free = round(total * ratio)
        step(("EinvoiceHostFilesystemInodesLow", severity), h.inodes_free_for,
             [_series("node_filesystem_files", DISK, f"{total}x{length}"),
              _series("node_filesystem_files_free", DISK, f"{total // 2}x{CHANGE - 1} {free}x{length}")],
             DISK, _go_percent(free / total))
    step(("EinvoiceHostFilesystemReadOnly", "critical"), h.readonly_for,
         [_series("node_filesystem_readonly", DISK, f"0x{CHANGE - 1} 1x{length}")], DISK, "")
    cases += _filling_cases(th, rules, total)

    mem = {"warning": (h.memory_available_warning + h.memory_available_critical) / 2,
           "critical": h.memory_available_critical / 2}
    for severity, ratio in mem.items():
        avail = round(total * ratio)
        step(("EinvoiceHostMemoryLow", severity), h.memory_for,
             [_series("node_memory_MemTotal_bytes", HOST, f"{total}x{length}"),
              _series("node_memory_MemAvailable_bytes", HOST, f"{total // 2}x{CHANGE - 1} {avail}x{length}")],
             HOST, _go_percent(avail / total))
    swap_free = round(total * (1 - (h.swap_used_warning + 1) / 2))
    step(("EinvoiceHostSwapUsageHigh", "warning"), h.swap_for,
         [_series("node_memory_SwapTotal_bytes", HOST, f"{total}x{length}"),
          _series("node_memory_SwapFree_bytes", HOST, f"{total}x{CHANGE - 1} {swap_free}x{length}")],
         HOST, _go_percent(1 - swap_free / total))
    load = h.load_per_core_warning * 1.5
    cpus = [_series("node_cpu_seconds_total", {**HOST, "cpu": str(cpu), "mode": "idle"}, f"0+60x{length}")
            for cpu in range(2)]
    step(("EinvoiceHostLoadHigh", "warning"), h.load_for,
         [*cpus, _series("node_load15", HOST, f"0.5x{CHANGE - 1} {_g(load * 2)}x{length}")],
         HOST, f"{load:.2f}")
    offsets = {"warning": (h.clock_offset_warning_seconds + h.clock_offset_critical_seconds) / 2,
               "critical": h.clock_offset_critical_seconds * 2}
    for severity, offset in offsets.items():
        step(("EinvoiceHostClockSkew", severity), h.clock_offset_for,
             [_series("node_timex_offset_seconds", HOST, f"0.001x{CHANGE - 1} -{_g(offset)}x{length}")],
             HOST, f"{offset:.3f}")
    step(("EinvoiceHostClockNotSynchronising", "warning"), h.clock_unsynced_for,
         [_series("node_timex_sync_status", HOST, f"1x{CHANGE - 1} 0x{length}")], HOST, "")
    step(("EinvoiceHostExporterDown", "warning"), h.exporter_down_for,
         [_series("up", HOST, f"1x{CHANGE - 1} 0x{length}")], HOST, "")
    return cases


def _g(value: float) -> str:
    return f"{value:g}"


def _filling_cases(th: Thresholds, rules: dict[tuple[str, str], dict[str, Any]],
                   total: int) -> list[dict[str, Any]]:
    """A filesystem shrinking at a steady rate from the first sample: predict_linear is exact, and at
    the firing evaluation the space left lasts between the two horizons (warning) or under the
    shorter one (critical)."""
    h = th.hosts
    cases = []
    fired = _minutes(h.fill_for) + 2
    quiet = _minutes(h.fill_for) - 1
    start = int(total * h.fill_max_free_ratio * 0.9)
    warn_m, crit_m = h.fill_warning_seconds / 60, h.fill_critical_seconds / 60
    for severity, horizon in (("warning", (warn_m + crit_m) / 2), ("critical", crit_m / 2)):
        rate = max(1, round(start / (fired + horizon)))
        left = start - rate * fired
        assert left > 0, "hosts.fill_*: no test series fits these thresholds"
        if severity == "warning":
            assert crit_m * rate <= left < warn_m * rate
        else:
            assert left < crit_m * rate
        series = [_series("node_filesystem_size_bytes", DISK, f"{total}x{fired + 5}"),
                  _series("node_filesystem_avail_bytes", DISK, f"{start}-{rate}x{fired + 5}")]
        cases.append(_case(rules[("EinvoiceHostFilesystemFillingUp", severity)], series, DISK,
                           _go_percent(left / total), quiet, fired))
    return cases


def test_document(th: Thresholds) -> dict[str, Any]:
    return {"rule_files": [f"../{FILE_NAME}"], "evaluation_interval": "1m", "tests": tests(th)}


def test_file(th: Thresholds) -> dict[str, str]:
    """{file name under alert_rules/: content} of the promtool tests, for rules.write_all."""
    from einvoice_core.generate.rules import HEADER, dump

    return {TEST_FILE_NAME: HEADER + dump(test_document(th))}
