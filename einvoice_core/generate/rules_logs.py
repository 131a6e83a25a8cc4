"""Alert rules of the log scanner and nginx (items 03, 04, 09, 16): one rule per pattern class with
the class's severity and count from thresholds.yaml (`logs.classes`), the nginx 5xx ratio and
latency, `nginx -t`, and the scanner falling behind; with their promtool tests.

Reads the thresholds only. The class names are the pattern library's `class` values (the exporter's
patterns.yaml); a class listed here with no pattern simply never fires.
"""

from __future__ import annotations

import re
from typing import Any

from einvoice_core.catalogue import Severity
from einvoice_core.thresholds import Thresholds, duration_seconds

CLASS_ZH: dict[str, str] = {
    "oom": "内存耗尽，OOM killer 杀掉了进程",
    "io_error": "磁盘或文件系统 I/O 错误（ext4、XFS、块设备、ATA）",
    "ro_remount": "文件系统被重新挂载为只读",
    "disk_full": "磁盘空间已满（No space left on device）",
    "kernel_bug": "内核错误（BUG、软锁死、任务挂起）",
    "hardware": "硬件错误（MCE、EDAC 内存纠错）",
    "nfs": "NFS 服务器无响应",
    "segfault": "进程段错误崩溃",
    "auth_failure": "认证失败（sshd、PAM、sudo）",
    "ogg_abended": "GoldenGate 进程异常终止（ABENDED）",
    "ogg_error": "GoldenGate 报错（ERROR OGG-nnnnn）",
    "ogg_warning": "GoldenGate 告警（WARNING OGG-nnnnn）",
    "etl_error": "ETL 日志出现错误",
    "etl_failed": "ETL 任务失败",
    "no_live_upstreams": "nginx 没有可用的上游（no live upstreams）",
    "upstream_timed_out": "nginx 等待上游超时（upstream timed out）",
    "connect_failed": "nginx 连接上游失败（connect() failed）",
    "upstream_closed": "上游提前关闭连接（upstream prematurely closed）",
}
"""How people read each class; operators' own classes are shown by their name."""

BY = "item, zone, check, target, source, class"
NGINX_BY = "item, zone, check, target"


def _zh(duration: str) -> str:
    units = {"y": "年", "w": "周", "d": "天", "h": "小时", "m": "分钟", "s": "秒", "ms": "毫秒"}
    return " ".join(f"{n} {units[u]}" for n, u in re.findall(r"(\d+)(ms|[ywdhms])", duration))


def _alert(th: Thresholds, name: str, expr: str, severity: Severity, summary: str, description: str,
           anchor: str, for_: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ and duration_seconds(for_) > 0:
        rule["for"] = for_
    rule["labels"] = {"severity": str(severity), **(labels or {})}
    rule["annotations"] = {"summary": summary, "description": description,
                           "runbook_url": f"{th.runbook_url}#{anchor}"}
    return rule


def _class_alert(th: Thresholds, klass: str) -> dict[str, Any]:
    rule = th.logs.classes[klass]
    window = th.logs.window
    name_zh = CLASS_ZH.get(klass, klass)
    return _alert(
        th, "EinvoiceLogPatternMatched",
        f'sum by ({BY}) (increase(einvoice_log_matches_total{{class="{klass}"}}[{window}]))'
        f" >= {rule.min_matches}",
        rule.severity,
        f"【{{{{ $labels.item }}}}】{{{{ $labels.target }}}}：{name_zh}",
        f"检查 {{{{ $labels.check }}}} 在日志 {{{{ $labels.source }}}} 中 {_zh(window)}内出现"
        f"至少 {rule.min_matches} 行“{name_zh}”（规则类别 {klass}）。"
        "最近一行（已脱敏）可在采集器本机页面查看；按运维手册本类别的处置步骤检查。",
        f"einvoicelogpatternmatched-{klass}", labels={"class": klass})


def groups(th: Thresholds) -> list[dict[str, Any]]:
    """The rule groups, appended to einvoice-details.rules.yml."""
    ng = th.nginx
    total = f"sum by ({NGINX_BY}) (rate(nginx_http_response_count_total[5m]))"
    errors = f'sum by ({NGINX_BY}) (rate(nginx_http_response_count_total{{status=~"5.."}}[5m]))'
    ratio = f"({errors} / {total})"
    busy = f"{total} > {ng.error_ratio_min_rps:g}"
    rules = [_class_alert(th, klass) for klass in sorted(th.logs.classes)]
    rules += [
        _alert(th, "EinvoiceNginx5xxRatioHigh",
               f"({ratio} > {ng.error_ratio_warning:g} and {ratio} <= {ng.error_ratio_critical:g})"
               f" and {busy}",
               Severity.WARNING, "【{{ $labels.item }}】nginx {{ $labels.target }} 5xx 比例偏高",
               f"nginx 访问日志中 5xx 应答占比超过 {ng.error_ratio_warning:.0%} "
               f"已持续 {_zh(ng.error_ratio_for)}。"
               "请查看错误日志中的上游超时、连接失败，以及上游服务是否健康。",
               "einvoicenginx5xxratiohigh", ng.error_ratio_for),
        _alert(th, "EinvoiceNginx5xxRatioHigh", f"{ratio} > {ng.error_ratio_critical:g} and {busy}",
               Severity.CRITICAL, "【{{ $labels.item }}】nginx {{ $labels.target }} 5xx 比例过高",
               f"nginx 访问日志中 5xx 应答占比超过 {ng.error_ratio_critical:.0%} 已持续 "
               f"{_zh(ng.error_ratio_for)}，大量请求失败。请立即检查上游服务与 nginx 错误日志。",
               "einvoicenginx5xxratiohigh", ng.error_ratio_for),
        _alert(th, "EinvoiceNginxSlow",
               f"histogram_quantile(0.95, sum by ({NGINX_BY}, le) "
               f"(rate(nginx_http_response_time_seconds_bucket[5m]))) > {ng.p95_seconds_warning:g}",
               Severity.WARNING, "【{{ $labels.item }}】nginx {{ $labels.target }} 响应变慢",
               f"nginx 请求耗时（$request_time）的 95 分位超过 {ng.p95_seconds_warning:g} 秒已持续 "
               f"{_zh(ng.p95_for)}。对比上游耗时（nginx_http_upstream_time_seconds）判断慢在上游还是 nginx。",
               "einvoicenginxslow", ng.p95_for),
        _alert(th, "EinvoiceNginxConfigInvalid", "einvoice_nginx_config_ok == 0", Severity.WARNING,
               "【{{ $labels.item }}】nginx 配置检查（nginx -t）失败",
               f"nginx -t 报告配置有误已持续 {_zh(ng.config_invalid_for)}：当前进程仍在运行旧配置，"
               "但下一次 reload 或重启会失败。请在主机上运行 nginx -t 查看出错的行并修正。",
               "einvoicenginxconfiginvalid", ng.config_invalid_for),
        _alert(th, "EinvoiceLogScannerBehind", "einvoice_log_behind == 1", Severity.WARNING,
               "【{{ $labels.item }}】日志扫描落后：{{ $labels.target }}",
               f"检查 {{{{ $labels.check }}}} 每次运行都未能读到日志末尾，已持续 {_zh(th.logs.behind_for)}："
               "日志增长快于扫描或检查超时过短，日志告警会延迟。请加大检查的 timeout 或 max_bytes_per_run。",
               "einvoicelogscannerbehind", th.logs.behind_for),
    ]
    return [{"name": "einvoice-logs", "rules": rules}]


# --------------------------------------------------------------------------------------------
# promtool tests: every rule quiet before, firing after


def _render(text: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{ \$labels\.([a-z_]+) \}\}", lambda m: labels[m.group(1)], text)


def _case(rule: dict[str, Any], series: list[dict[str, str]], labels: dict[str, str], quiet: str,
          fired: str) -> dict[str, Any]:
    annotations = {k: _render(v, labels) for k, v in rule["annotations"].items()}
    return {
        "interval": "1m",
        "name": f"{rule['alert']} {rule['labels']['severity']} {labels.get('class', '')}".strip(),
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": quiet, "alertname": rule["alert"], "exp_alerts": []},
            {"eval_time": fired, "alertname": rule["alert"],
             "exp_alerts": [{"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": annotations}]},
        ],
    }


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    return {"series": name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}


def tests(th: Thresholds) -> list[dict[str, Any]]:
    rules = groups(th)[0]["rules"]
    cases = []
    host = {"item": "03", "zone": "extranet", "check": "syslog", "target": "/var/log/syslog",
            "source": "/var/log/syslog"}
    window_steps = int(duration_seconds(th.logs.window) // 60)
    for rule in rules:
        if rule["alert"] != "EinvoiceLogPatternMatched":
            continue
        klass = rule["expr"].split('class="')[1].split('"')[0]
        labels = {**host, "class": klass}
        count = th.logs.classes[klass].min_matches
        series = [_series("einvoice_log_matches_total", {**labels, "pattern": f"{klass}_p"},
                          f"0x{window_steps} {count}x{window_steps}")]
        cases.append(_case(rule, series, labels, f"{window_steps}m", f"{window_steps + 2}m"))
    ng = th.nginx
    nginx = {"item": "04", "zone": "extranet", "check": "nginx", "target": "http://127.0.0.1:8080/stub_status"}
    for_steps = int(duration_seconds(ng.error_ratio_for) // 60)
    by_severity = {r["labels"]["severity"]: r for r in rules if r["alert"] == "EinvoiceNginx5xxRatioHigh"}
    for severity, share in (("warning", (ng.error_ratio_warning + ng.error_ratio_critical) / 2),
                            ("critical", min(1.0, ng.error_ratio_critical * 2))):
        per_min = 600  # 10 requests per second
        bad = round(per_min * share)
        series = [_series("nginx_http_response_count_total", {**nginx, "status": "200"},
                          f"0+{per_min - bad}x40"),
                  _series("nginx_http_response_count_total", {**nginx, "status": "502"},
                          f"0x10 0+{bad}x30")]
        cases.append(_case(by_severity[severity], series, nginx, "12m", f"{12 + for_steps + 5}m"))
    p95_steps = int(duration_seconds(ng.p95_for) // 60)
    slow = next(r for r in rules if r["alert"] == "EinvoiceNginxSlow")
    over = ng.p95_seconds_warning * 2
    bound = f"{ng.p95_seconds_warning:g}"
    series = [_series("nginx_http_response_time_seconds_bucket", {**nginx, "le": bound}, "0+100x5 500+5x40"),
              _series("nginx_http_response_time_seconds_bucket", {**nginx, "le": f"{over:g}"}, "0+100x45"),
              _series("nginx_http_response_time_seconds_bucket", {**nginx, "le": "+Inf"}, "0+100x45")]
    cases.append(_case(slow, series, nginx, "8m", f"{8 + p95_steps + 2}m"))
    config = next(r for r in rules if r["alert"] == "EinvoiceNginxConfigInvalid")
    steps = int(duration_seconds(ng.config_invalid_for) // 60)
    cases.append(_case(config, [_series("einvoice_nginx_config_ok", nginx, f"1x5 0x{steps + 10}")], nginx,
                       f"{5 + steps - 1}m", f"{5 + steps + 1}m"))
    behind = next(r for r in rules if r["alert"] == "EinvoiceLogScannerBehind")
    steps = int(duration_seconds(th.logs.behind_for) // 60)
    scanner = {k: v for k, v in host.items() if k != "source"}
    cases.append(_case(behind, [_series("einvoice_log_behind", scanner, f"0x5 1x{steps + 10}")], scanner,
                       f"{5 + steps - 1}m", f"{5 + steps + 1}m"))
    return cases


def test_document(th: Thresholds) -> dict[str, Any]:
    return {"rule_files": ["../einvoice-details.rules.yml"], "evaluation_interval": "1m", "tests": tests(th)}
