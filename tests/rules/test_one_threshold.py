"""A threshold that judges something has one home, thresholds.yaml: the collectors' defaults, the
rules and the dashboards' colours all read the same number (issue 9: the ES heap check failed at
0.9 while its panel turned red at 0.85)."""

from __future__ import annotations

from einvoice_exporter.collectors import elasticsearch, redis

from einvoice_core.generate.dashboards import load_objectives
from einvoice_core.thresholds import shipped


def test_collector_defaults_and_dashboard_colours_are_the_thresholds_file() -> None:
    th = shipped()
    objectives = load_objectives()
    es = elasticsearch.Settings()
    assert es.max_heap_ratio == objectives.es_heap_ratio == th.elasticsearch.heap_ratio_max
    assert es.max_disk_ratio == objectives.es_disk_ratio == th.elasticsearch.disk_ratio_max
    assert redis.Settings().memory_used_max_ratio == objectives.redis_memory_ratio \
        == th.redis.memory_ratio_warning
    assert objectives.local_resolution_ratio == th.tickets.local_resolution_min
    assert objectives.one_time_resolution_ratio == th.tickets.one_time_resolution_min


def test_a_module_still_sets_its_own_threshold() -> None:
    assert elasticsearch.Settings(max_heap_ratio=0.75).max_heap_ratio == 0.75
    assert elasticsearch.Settings(max_heap_ratio=None).max_heap_ratio is None
