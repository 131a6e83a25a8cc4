"""The 20 monitoring items of the contract (seed §二.1), the single source of truth.

Exporters, the rule and dashboard generators, the notifier and the reports all read this module.
It imports nothing but the standard library, so reading it never pulls in a collector or a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Zone(StrEnum):
    INTERNET = "internet"
    EXTRANET = "extranet"
    INTRANET = "intranet"


ZONE_NAMES_ZH: dict[Zone, str] = {
    Zone.INTERNET: "互联网端",
    Zone.EXTRANET: "外网",
    Zone.INTRANET: "内网",
}


class Severity(StrEnum):
    """Alert severity; `critical` pages, `warning` tickets."""

    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    """Two digits, the contract's own numbering: "01" … "20"."""
    name_zh: str
    """The check as the source document names it (without the leading 涉及系统)."""
    short: str
    """Short English name, snake_case, for rule names and logs."""
    zone: Zone
    severity: Severity
    meaning_zh: str
    """What the item means in practice, one Chinese sentence for dashboards and runbooks."""


ITEMS: tuple[Item, ...] = (
    Item("01", "互联网端域名连通性检查", "internet_domain", Zone.INTERNET, Severity.CRITICAL,
         "公网域名解析、TCP/TLS/HTTP 可达性及证书有效期"),
    Item("02", "外网负载均衡虚服务健康检查", "extranet_lb_vip", Zone.EXTRANET, Severity.CRITICAL,
         "负载均衡虚服务（VIP:端口）应答正常，后端成员在线"),
    Item("03", "外网服务器操作系统日志检查", "extranet_os_log", Zone.EXTRANET, Severity.WARNING,
         "外网主机系统日志：OOM、磁盘/IO 错误、段错误、认证失败、内核错误"),
    Item("04", "外网nginx检查", "extranet_nginx", Zone.EXTRANET, Severity.CRITICAL,
         "nginx 存活、stub_status、5xx 比例与上游错误、配置校验"),
    Item("05", "外网受理服务运行健康检查", "extranet_intake", Zone.EXTRANET, Severity.CRITICAL,
         "受理服务健康检查接口、响应时间、WebLogic 服务/线程/JDBC 状态"),
    Item("06", "外网日志内存数据库运行情况检查", "extranet_log_redis", Zone.EXTRANET, Severity.WARNING,
         "外网日志 Redis：存活、内存与 maxmemory、连接、淘汰、持久化、复制"),
    Item("07", "外网身份认证连通性检查", "extranet_identity_auth", Zone.EXTRANET, Severity.CRITICAL,
         "身份认证服务可达且应答正确"),
    Item("08", "安全接入、统一受理、版式文件前置转发连通性检查", "extranet_forwarding", Zone.EXTRANET,
         Severity.CRITICAL, "安全接入、统一受理、版式文件（OFD）前置的转发链路连通"),
    Item("09", "内网服务器操作系统日志检查", "intranet_os_log", Zone.INTRANET, Severity.WARNING,
         "内网主机系统日志（同第 03 项）"),
    Item("10", "内网处理服务运行健康检查", "intranet_processing", Zone.INTRANET, Severity.CRITICAL,
         "处理服务健康检查接口、响应时间、WebLogic 状态"),
    Item("11", "内网内存数据库集群检查", "intranet_redis_cluster", Zone.INTRANET, Severity.CRITICAL,
         "Redis 集群：cluster_state、槽位 ok/pfail/fail、节点、副本、内存"),
    Item("12", "ES、redis数据库状态检查", "intranet_es_redis", Zone.INTRANET, Severity.CRITICAL,
         "Elasticsearch 集群健康（状态、节点、未分配分片、堆内存、磁盘）与 Redis 状态"),
    Item("13", "KAFKA消费状态检查", "intranet_kafka_consumption", Zone.INTRANET, Severity.WARNING,
         "消费组各主题分区的积压、积压趋势、组状态、成员"),
    Item("14", "数据检查（包括完整性、推送传输运行检查等）", "intranet_data_integrity", Zone.INTRANET,
         Severity.WARNING, "源端与目标端数据量比对、未推送积压、推送失败、最早未推送时长"),
    Item("15", "应用、docker、微服务运行状态检查", "intranet_containers", Zone.INTRANET, Severity.WARNING,
         "容器运行/重启/不健康、重启次数；微服务实例在线"),
    Item("16", "数据传输日志检查", "intranet_transfer_log", Zone.INTRANET, Severity.WARNING,
         "OGG（GoldenGate）进程状态与延迟、ETL/传输日志错误"),
    Item("17", "业务数据自动任务检查", "intranet_scheduled_jobs", Zone.INTRANET, Severity.WARNING,
         "定时任务（DBMS_SCHEDULER、任务表）：最近运行状态、超期、失败"),
    Item("18", "业务数据监控", "intranet_business_volume", Zone.INTRANET, Severity.WARNING,
         "业务量（开具/查验发票数）与预期区间比对"),
    Item("19", "数据同步接口监控", "intranet_data_sync", Zone.INTRANET, Severity.WARNING,
         "数据同步接口应答；同步队列积压与时长"),
    Item("20", "外围接口监控", "extranet_peripheral", Zone.EXTRANET, Severity.WARNING,
         "外围/合作方接口：可达性、响应时间、应答内容"),
)

_BY_ID: dict[str, Item] = {item.id: item for item in ITEMS}


def item_ids() -> tuple[str, ...]:
    return tuple(_BY_ID)


def normalize_item_id(value: object) -> str:
    """Accept "01", "1" or 1 (YAML reads `item: 01` as the integer 1) and return "01".

    Raises ValueError with a sentence a person understands for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("item must be a number from 01 to 20")
    if isinstance(value, int):
        text = f"{value:02d}"
    elif isinstance(value, str) and value.strip().isdigit():
        text = f"{int(value.strip()):02d}"
    else:
        raise ValueError(f"item must be a number from 01 to 20, not {value!r}")
    if text not in _BY_ID:
        raise ValueError(f"item {text} is not one of the contract's items 01 to 20")
    return text


def get_item(item_id: str) -> Item:
    return _BY_ID[normalize_item_id(item_id)]
