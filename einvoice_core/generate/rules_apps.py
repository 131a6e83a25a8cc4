"""Alert rules of the containers, WebLogic and micro-service registry collectors (items 05, 10, 15):
the file `einvoice-apps.rules.yml`, thresholds from the `apps` section of thresholds.yaml.

Kept apart from rules.py so that the item, SLA and detail rules and these evolve independently;
rules.py adds this file to the generated set with one line.
"""

from __future__ import annotations

from typing import Any

from einvoice_core.catalogue import Severity
from einvoice_core.thresholds import Thresholds

FILE_NAME = "einvoice-apps.rules.yml"


def groups(th: Thresholds) -> list[dict[str, Any]]:
    from einvoice_core.generate.rules import _alert, _items_regex, _num, _zh

    apps = th.apps
    rules: list[dict[str, Any]] = []
    window = apps.container_restart_window
    rules.append(_alert(
        th, "EinvoiceContainerRestarting",
        f"increase(einvoice_container_restarts_total[{window}]) >= {apps.container_restarts}",
        Severity.CRITICAL,
        "【{{ $labels.item }}】容器 {{ $labels.name }} 频繁重启",
        f"容器 {{{{ $labels.name }}}}（镜像 {{{{ $labels.image }}}}，Docker {{{{ $labels.target }}}}）"
        f"在 {_zh(window)}内重启了 {{{{ $value | humanize }}}} 次（阈值 {apps.container_restarts} 次），"
        "处于崩溃循环。请查看容器最近一次退出码（einvoice_container_last_exit_code）、"
        "是否被 OOM 终止（einvoice_container_oom_killed）以及容器日志。",
    ))
    rules.append(_alert(
        th, "EinvoiceContainerOOMKilled",
        "einvoice_container_oom_killed == 1",
        Severity.WARNING,
        "【{{ $labels.item }}】容器 {{ $labels.name }} 因内存超限被终止",
        "容器 {{ $labels.name }}（镜像 {{ $labels.image }}，Docker {{ $labels.target }}）"
        "最近一次运行因超出内存限制被内核终止（OOMKilled）。请核对容器内存限制与应用堆内存设置，"
        "排查内存泄漏。",
    ))
    rules.append(_alert(
        th, "EinvoiceContainerUnhealthy",
        'einvoice_container_health{status="unhealthy"} == 1',
        Severity.WARNING,
        "【{{ $labels.item }}】容器 {{ $labels.name }} 健康检查失败",
        f"容器 {{{{ $labels.name }}}}（Docker {{{{ $labels.target }}}}）的健康检查报告 unhealthy "
        f"已持续 {_zh(apps.container_unhealthy_for)}。请在该主机上执行 docker inspect 查看健康检查记录，"
        "并检查应用依赖（数据库、缓存、下游接口）。",
        for_=apps.container_unhealthy_for,
    ))
    urgent = _items_regex(apps.weblogic_stuck_urgent_items)
    description = (
        "WebLogic 服务器 {{ $labels.server }}（管理服务器 {{ $labels.target }}）有 {{ $value }} 个卡住线程"
        f"（stuck thread），已持续 {_zh(apps.weblogic_stuck_for)}。"
        "请在控制台查看线程转储（Thread Dump）定位阻塞的请求，检查数据库连接池与下游接口；"
        "必要时按预案重启该受管服务器。")
    rules.append(_alert(
        th, "EinvoiceWeblogicStuckThreads",
        f'wls_threadpool_stuck_thread_count{{item=~"{urgent}"}} > {apps.weblogic_stuck_threads}',
        Severity.CRITICAL,
        "【{{ $labels.item }}】受理服务器 {{ $labels.server }} 出现卡住线程",
        description,
        for_=apps.weblogic_stuck_for,
    ))
    rules.append(_alert(
        th, "EinvoiceWeblogicStuckThreads",
        f'wls_threadpool_stuck_thread_count{{item!~"{urgent}"}} > {apps.weblogic_stuck_threads}',
        Severity.WARNING,
        "【{{ $labels.item }}】WebLogic 服务器 {{ $labels.server }} 出现卡住线程",
        description,
        for_=apps.weblogic_stuck_for,
    ))
    rules.append(_alert(
        th, "EinvoiceWeblogicDatasourceWaiting",
        f"wls_datasource_waiting_for_connection_current_count > {_num(apps.datasource_waiting_warning)}",
        Severity.WARNING,
        "【{{ $labels.item }}】数据源 {{ $labels.name }} 有请求在等待数据库连接",
        "WebLogic 服务器 {{ $labels.server }} 的数据源 {{ $labels.name }} 有 {{ $value }} 个请求在等待连接"
        f"（阈值 {apps.datasource_waiting_warning}），已持续 {_zh(apps.datasource_waiting_for)}。"
        "请检查连接池容量、慢 SQL 与连接泄漏（wls_datasource_leaked_connection_count）。",
        for_=apps.datasource_waiting_for,
    ))
    rules.append(_alert(
        th, "EinvoiceServiceInstancesBelowMin",
        'einvoice_service_instances{state="healthy"}\n  < ignoring(state) einvoice_service_instances_min',
        Severity.WARNING,
        "【{{ $labels.item }}】微服务 {{ $labels.service }} 健康实例不足",
        "注册中心 {{ $labels.target }} 中微服务 {{ $labels.service }} 的健康实例只有 {{ $value }} 个，"
        f"低于要求的最少实例数，已持续 {_zh(apps.service_instances_for)}。"
        "请检查该服务各实例的进程、心跳与健康检查，必要时扩容或重启实例。",
        for_=apps.service_instances_for,
    ))
    return [{"name": "einvoice-apps", "interval": th.evaluation_interval, "rules": rules}]


def rule_file(th: Thresholds) -> dict[str, str]:
    """{file name: content} for rules.rule_files."""
    from einvoice_core.generate.rules import HEADER, dump

    return {FILE_NAME: HEADER + dump({"groups": groups(th)})}
