"""Panels of the log scanner (items 03, 09, 16) and nginx (item 04) for the hosts dashboard.

Kept apart from dashboards.py so the hook there is one line; built with its helpers.
"""

from __future__ import annotations

from einvoice_core.generate import dashboards as d

UPSTREAM_CLASSES = "upstream_timed_out|connect_failed|no_live_upstreams|upstream_closed"


def log_panels(sel: str) -> list[d.Panel]:
    """System-log and nginx panels; `sel` is the dashboard's label selector (zone, item, check)."""
    by = f"{{{sel}}}"
    http = f"nginx_http_response_count_total{by}"
    return [
        d.row("系统日志（第 03、09 项）与传输日志（第 16 项）"),
        d.timeseries("日志匹配行数（按类别）",
                     "每 10 分钟匹配规则库的行数，按类别（oom、io_error、auth_failure…）。"
                     "指标不含日志内容；最近一行（已脱敏）在采集器本机查看。",
                     [d.query(f"sum by (class) (increase(einvoice_log_matches_total{by}[10m])) > 0",
                              "{{class}}")],
                     w=12, bars=True, stack=True),
        d.table("近 1 小时有匹配的日志", "近 1 小时每个日志源、类别的匹配行数。",
                [d.query("sum by (target, source, class) "
                         f"(increase(einvoice_log_matches_total{by}[1h])) > 0", table=True)], w=12, h=8,
                columns={"target": "检查目标", "source": "日志源", "class": "类别"}, sort_by="Value"),
        d.timeseries("日志读取速率（行/秒）", "每个检查读取日志的速率；为 0 表示日志没有写入或读不到。",
                     [d.query(f"sum by (check) (rate(einvoice_log_lines_total{by}[5m]))", "{{check}}")]),
        d.timeseries("日志轮转与扫描落后",
                     "轮转次数（rename / truncate）；落后为 1 表示每次检查都未读到末尾。",
                     [d.query(f"sum by (check, method) (increase(einvoice_log_rotations_total{by}[1h]))",
                              "{{check}} {{method}}"),
                      d.query(f"max by (check) (einvoice_log_behind{by})", "{{check}} 落后", ref="B")]),
        d.row("nginx（第 04 项）"),
        d.stat("nginx 状态", "stub_status 是否可读（nginx_up）。",
               [d.query(f"nginx_up{by}", "{{target}}", instant=True)], w=6, h=5,
               mappings=d.UP_MAPPINGS, thresholds=d.UP_STEPS),
        d.stat("nginx 配置检查", "nginx -t 的结果（在 nginx 主机上运行采集器时）。",
               [d.query(f"einvoice_nginx_config_ok{by}", "{{target}}", instant=True)], w=6, h=5,
               mappings=[d.value_map({"0": "配置错误", "1": "正常"}, {"0": d.RED, "1": d.GREEN})],
               thresholds=d.UP_STEPS),
        d.timeseries("请求速率与活动连接", "stub_status：每秒请求数与活动连接数。",
                     [d.query(f"sum by (target) (rate(nginx_http_requests_total{by}[5m]))",
                              "{{target}} 请求/秒"),
                      d.query(f"sum by (target) (nginx_connections_active{by})", "{{target}} 活动连接",
                              ref="B")]),
        d.timeseries("应答状态（按状态码类别）", "访问日志中每秒应答数，按状态码类别。",
                     [d.query(f'sum by (class) (label_replace(rate({http}[5m]), "class", "${{1}}xx", '
                              f'"status", "([1-5]).."))', "{{class}}")], stack=True),
        d.timeseries("5xx 比例", "访问日志中 5xx 应答占全部应答的比例。",
                     [d.query("sum by (target) (rate(nginx_http_response_count_total"
                              f'{{{sel}, status=~"5.."}}[5m])) / sum by (target) (rate({http}[5m]))',
                              "{{target}}")],
                     unit="percentunit", minimum=0),
        d.timeseries("请求耗时 95 分位", "$request_time 与 $upstream_response_time 的 95 分位（秒）。",
                     [d.query("histogram_quantile(0.95, sum by (target, le) "
                              f"(rate(nginx_http_response_time_seconds_bucket{by}[5m])))", "{{target}} 请求"),
                      d.query("histogram_quantile(0.95, sum by (target, le) "
                              f"(rate(nginx_http_upstream_time_seconds_bucket{by}[5m])))", "{{target}} 上游",
                              ref="B")], unit="s"),
        d.timeseries("上游错误（错误日志）", "每 10 分钟错误日志中的上游超时、连接失败、无可用上游。",
                     [d.query("sum by (class) (increase(einvoice_log_matches_total{"
                              f'{sel}, class=~"{UPSTREAM_CLASSES}"'
                              "}[10m])) > 0", "{{class}}")], w=24, bars=True, stack=True),
    ]
