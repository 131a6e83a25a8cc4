"""Pipeline-board panels of items 14, 16, 17, 18 and 19 (the `sql` and `goldengate` kinds' series),
added to the pipeline dashboard by one line in dashboards.pipeline()."""

from __future__ import annotations

from typing import Any


def panels(sel: str) -> list[Any]:
    from einvoice_core.generate.dashboards import query, row, table, timeseries

    return [
        row("数据检查、OGG、自动任务、业务量、同步队列（第 14、16、17、18、19 项）"),
        timeseries("推送积压与最早未推送时长", "第 14 项：未推送记录数（左）与最早一条的等待秒数。",
                   [query(f"sum by (channel) (einvoice_sql_push_backlog{{{sel}}})", "积压 {{channel}}"),
                    query(f"max by (channel) (einvoice_sql_push_oldest_unpushed_age_seconds{{{sel}}})",
                          "最早等待秒数 {{channel}}")]),
        timeseries("源端与目标端记录数", "第 14 项：同一数据集源端与目标端的计数（应基本一致）。",
                   [query(f"sum by (dataset, side) (einvoice_sql_data_count{{{sel}}})",
                          "{{dataset}} {{side}}")]),
        table("OGG 进程状态", "第 16 项：GoldenGate 各进程当前状态（ABENDED 为严重告警）。",
              [query(f'einvoice_goldengate_process_status{{{sel}}} == 1', table=True)], w=12, h=8,
              columns={"process": "进程", "type": "类型", "status": "状态", "check": "检查"}),
        timeseries("OGG 延迟", "第 16 项：各进程延迟与心跳表按路径的延迟（秒）。",
                   [query(f"max by (process, type) (einvoice_goldengate_lag_seconds{{{sel}}})",
                          "{{type}} {{process}}"),
                    query(f"max by (path) (einvoice_goldengate_heartbeat_lag_seconds{{{sel}}})",
                          "心跳 {{path}}")], unit="s"),
        table("自动任务", "第 17 项：窗口内失败次数、逾期秒数、是否失效/禁用。",
              [query(f"einvoice_sql_job_failures{{{sel}}} > 0"
                     f" or einvoice_sql_job_overdue_seconds{{{sel}}} > 0"
                     f" or einvoice_sql_job_broken{{{sel}}} > 0", table=True)], w=12, h=8,
              columns={"job": "任务", "check": "检查", "__name__": "指标"}),
        timeseries("业务量与往常基线", "第 18 项：当前业务量与前 4 周同一时段的中位数。",
                   [query('einvoice:business_volume{item=~"$item"}', "{{flow}} 当前"),
                    query('einvoice:business_volume:baseline{item=~"$item"}', "{{flow}} 往常")]),
        timeseries("同步队列", "第 19 项：同步队列积压条数与最早记录等待秒数。",
                   [query(f"sum by (query) (einvoice_sql_sync_backlog{{{sel}}})", "积压 {{query}}"),
                    query(f"max by (query) (einvoice_sql_sync_oldest_age_seconds{{{sel}}})",
                          "最早等待秒数 {{query}}")]),
    ]
