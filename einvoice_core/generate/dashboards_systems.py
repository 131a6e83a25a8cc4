"""SLA-dashboard panels of issue 19: availability per system of the contract's scope and the
disaster-recovery drills (drill outage shown apart from the budget, the year's drill count), added to
the management SLA dashboard by one line in dashboards.sla()."""

from __future__ import annotations

from typing import Any


def panels(obj: Any) -> list[Any]:
    from einvoice_core.generate.dashboards import (
        AMBER,
        GREEN,
        RED,
        bargauge,
        gauge,
        query,
        ratio_steps,
        rename,
        row,
        stat,
        steps,
        timeseries,
    )
    from einvoice_core.thresholds import shipped

    th = shipped()
    names = [rename(key, system.name_zh) for key, system in th.systems.items()]
    services = [rename(key, name) for key, name in obj.service_names.items()]
    budget = obj.outage_budget_seconds
    return [
        row("按系统的可用性（考核按系统）与容灾演练"),
        gauge("本月各系统可用性",
              "本月至今各系统处于正常状态的时间比例（einvoice:system_sla_up：系统的任一业务服务宕机，或带该系统"
              "标签的 SLA 成员检查不可用，即系统宕机；容灾演练窗口内的宕机不计）。没有监控数据的系统不显示。",
              [query("avg_over_time(einvoice:system_sla_up[$__range])", "{{system}}", instant=True)],
              w=12, unit="percentunit", decimals=3, minimum=0.99, maximum=1,
              thresholds=ratio_steps(obj.availability), overrides=names, time_from="now/M"),
        bargauge("各系统年度宕机（近 365 天，不含演练）",
                 "近 365 天各系统累计宕机时间（einvoice:system_outage_seconds_year），与每年 "
                 f"{budget / 3600:.0f} 小时的预算比较；演练窗口内的宕机另列于下方。",
                 [query("einvoice:system_outage_seconds_year", "{{system}}", instant=True)], w=12, h=6,
                 unit="s", maximum=budget,
                 thresholds=steps((None, GREEN), (budget * 0.75, AMBER), (budget, RED)), overrides=names),
        timeseries("各系统可用性趋势（1 天窗口）",
                   "各系统滚动 1 天可用性（einvoice:system_availability:ratio_1d）。",
                   [query("einvoice:system_availability:ratio_1d", "{{system}}")], w=12, h=7,
                   unit="percentunit", thresholds=ratio_steps(obj.availability), threshold_lines=True,
                   overrides=names, legend_calcs=("lastNotNull", "min")),
        bargauge("演练宕机（近 365 天，不计入预算）",
                 "登记的容灾演练窗口（alert_rules/drill_windows.yml）内的宕机时间，按服务与系统；"
                 "这部分时间不计入年度宕机预算与可用性。",
                 [query("einvoice:service_drill_outage_seconds_year", "{{service}}", instant=True),
                  query("einvoice:system_drill_outage_seconds_year", "{{system}}", instant=True, ref="B")],
                 w=6, h=7, unit="s", thresholds=steps((None, GREEN)), overrides=services + names),
        stat("本年容灾演练（次）",
             f"合同要求每年至少 {th.drills.required_per_year} 次容灾演练：本年已进行（窗口已结束）、"
             "已登记、要求的次数。",
             [query("einvoice:drills_held:count_year", "已进行", instant=True),
              query("einvoice:drills_declared:count_year", "已登记", instant=True, ref="B"),
              query("einvoice:drills_required:count_year", "要求", instant=True, ref="C")],
             w=6, h=7, thresholds=steps((None, AMBER), (th.drills.required_per_year, GREEN)),
             text_mode="value_and_name"),
    ]
