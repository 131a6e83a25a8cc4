"""The committed dashboards: regenerated identically, stable uids, datasource variable, Chinese text,
and every metric they query produced by the bundle (code or rules) or by Prometheus itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from einvoice_core.catalogue import ITEMS, ZONE_NAMES_ZH, Zone
from einvoice_core.generate import dashboards
from tests.dashboards import inventory as inv

EXPECTED_UIDS = {
    "ops-wall": "einvoice-ops-wall",
    "sla": "einvoice-sla",
    "oncall": "einvoice-oncall",
    "item-detail": "einvoice-item-detail",
    "network": "einvoice-network",
    "redis": "einvoice-redis",
    "elasticsearch": "einvoice-elasticsearch",
    "kafka": "einvoice-kafka",
    "pipeline": "einvoice-pipeline",
    "hosts": "einvoice-hosts",
    "exporter": "einvoice-exporter",
    "apps": "einvoice-apps",
}
"""Links, bookmarks and the TV's kiosk URL point at these: changing one is a breaking change."""

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    return inv.load_dashboards()


def test_committed_files_equal_a_fresh_generation(tmp_path: Path) -> None:
    written = dashboards.write_all(tmp_path)
    fresh = {path.name: path.read_text(encoding="utf-8") for path in written}
    committed = {path.name: path.read_text(encoding="utf-8")
                 for path in sorted(inv.DASHBOARD_DIR.glob("*.json"))}
    assert sorted(fresh) == sorted(committed), "run `make generate` and commit grafana_dashboards/"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale dashboards {stale}: run `make generate` and commit grafana_dashboards/"


def test_generation_is_deterministic() -> None:
    first = {stem: dashboards.render(board) for stem, board in dashboards.build_all().items()}
    second = {stem: dashboards.render(board) for stem, board in dashboards.build_all().items()}
    assert first == second


def test_uids_are_the_fixed_ones_and_unique(boards: dict[str, dict[str, Any]]) -> None:
    assert {stem: board["uid"] for stem, board in boards.items()} == EXPECTED_UIDS
    assert len(set(EXPECTED_UIDS.values())) == len(EXPECTED_UIDS)
    for board in boards.values():
        assert len(board["uid"]) <= 40  # Grafana's limit


def _datasources(node: Any, path: str = "") -> list[tuple[str, Any]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((f"{path}.{key}", value))
            found.extend(_datasources(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_datasources(value, f"{path}[{index}]"))
    return found


def test_datasource_is_always_the_variable(boards: dict[str, dict[str, Any]]) -> None:
    for stem, board in boards.items():
        variables = board["templating"]["list"]
        ds_vars = [var for var in variables if var["type"] == "datasource"]
        assert [(var["name"], var["query"]) for var in ds_vars] == [("datasource", "prometheus")]
        refs = _datasources(board)
        assert refs, stem
        wrong = [(where, ref) for where, ref in refs if ref != {"type": "prometheus", "uid": "${datasource}"}]
        assert not wrong, f"{stem}: hard-coded datasource {wrong[:3]}"
        for panel in inv.panels(board):
            if panel["type"] not in ("row", "text"):
                assert panel["datasource"] == dashboards.DATASOURCE, f"{stem}/{panel['title']}"
                assert panel["targets"], f"{stem}/{panel['title']} has no query"


def test_people_read_chinese_in_shanghai_time(boards: dict[str, dict[str, Any]]) -> None:
    for stem, board in boards.items():
        assert board["timezone"] == "Asia/Shanghai", stem
        assert CJK.search(board["title"]) and CJK.search(board["description"]), stem
        for panel in inv.panels(board):
            assert CJK.search(panel["title"]), f"{stem}: panel title {panel['title']!r} is not Chinese"
            if panel["type"] not in ("row", "text"):
                assert CJK.search(panel["description"]), f"{stem}/{panel['title']}: no Chinese description"
        for var in board["templating"]["list"]:
            assert CJK.search(var["label"]), f"{stem}: variable {var['name']} label"


def test_panels_sit_on_the_grid_without_overlapping(boards: dict[str, dict[str, Any]]) -> None:
    for stem, board in boards.items():
        cells: dict[tuple[int, int], str] = {}
        ids = [panel["id"] for panel in inv.panels(board)]
        assert len(ids) == len(set(ids)), f"{stem}: duplicate panel ids"
        for panel in inv.panels(board):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{stem}/{panel['title']}"
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{stem}: {panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_ops_wall_shows_every_item_per_zone_for_a_tv(boards: dict[str, dict[str, Any]]) -> None:
    wall = boards["ops-wall"]
    assert wall["refresh"] == "30s" and wall["editable"] is False
    grids = {}
    for panel in inv.panels(wall):
        for zone in Zone:
            if panel["title"].startswith(ZONE_NAMES_ZH[zone]):
                grids[zone] = panel
    assert set(grids) == set(Zone)
    for zone, panel in grids.items():
        expr = panel["targets"][0]["expr"]
        assert f'einvoice_item_info{{zone="{zone.value}"}}' in expr
        assert panel["options"]["colorMode"] == "background"
        assert panel["targets"][0]["legendFormat"] == "{{item}} {{name}}"
        colours = {step["color"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        assert {"green", "orange", "red"} <= colours
        for item in ITEMS:
            assert (item.name_zh in panel["description"]) == (item.zone == zone), item.id
        texts = {m["options"]["result"]["text"] for m in panel["fieldConfig"]["defaults"]["mappings"]}
        assert texts == {"正常", "部分异常", "故障", "未配置", "外部监控"}


def test_sla_panels_compare_against_the_thresholds_file() -> None:
    objectives = dashboards.Objectives(availability=0.995, outage_budget_seconds=6 * 3600,
                                       max_single_outage_seconds=3600, local_resolution_ratio=0.7)
    board = dashboards.sla(objectives)
    by_title = {panel["title"]: panel for panel in inv.panels(board)}

    def steps(title: str) -> list[float | None]:
        return [s["value"] for s in by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    assert steps("本月可用性") == [None, 0.995]
    assert by_title["年度已用宕机时间（近 365 天）"]["fieldConfig"]["defaults"]["max"] == 6 * 3600
    assert by_title["年度最长单次宕机（近 365 天）"]["fieldConfig"]["defaults"]["max"] == 3600
    assert steps("本级解决率") == [None, 0.7]
    assert by_title["本月可用性"]["timeFrom"] == "now/M" and by_title["本年可用性"]["timeFrom"] == "now/y"
    shipped = dashboards.load_objectives()
    committed = inv.load_dashboards()["sla"]
    gauge = next(p for p in inv.panels(committed) if p["title"] == "本月可用性")
    assert gauge["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == shipped.availability
    assert shipped.outage_budget_seconds == 12 * 3600


def test_oncall_orders_open_tickets_by_nearest_deadline(boards: dict[str, dict[str, Any]]) -> None:
    panel = next(p for p in inv.panels(boards["oncall"]) if p["title"].startswith("未关闭工单"))
    assert panel["targets"][0]["expr"] == "sort(einvoice_notifier_ticket_deadline_timestamp_seconds - time())"
    assert panel["options"]["sortBy"] == [{"displayName": "Value", "desc": False}]


def test_metric_name_lexer() -> None:
    expr = ('sum by (le, severity_class) (increase(einvoice_notifier_x_bucket{a="b(c)"}[$__range]))'
            ' / on (item) group_left (name) max by (item, name) (einvoice_item_info) or vector(0)'
            ' + ALERTS offset 5m - label_replace(up, "x", "$1", "y", "(.*)") > bool 1e3')
    assert inv.metric_names(expr) == {"einvoice_notifier_x_bucket", "einvoice_item_info", "ALERTS", "up"}
    assert inv.metric_names("einvoice:service_up") == {"einvoice:service_up"}
    definition = 'label_values(probe_success{zone=~"$zone"}, check)'
    assert inv.variable_expr(definition) == 'probe_success{zone=~"$zone"}'


def test_every_metric_a_panel_uses_is_produced(boards: dict[str, dict[str, Any]]) -> None:
    from einvoice_core.generate.rules_hosts import NODE_EXPORTER_METRICS  # checked on the real one

    produced = (inv.exporter_metrics() | inv.notifier_metrics() | inv.recorded_series()
                | inv.PROMETHEUS_BUILTIN | set(NODE_EXPORTER_METRICS))
    used: dict[str, list[str]] = {}
    for query in inv.queries(boards):
        for name in inv.metric_names(query.expr):
            used.setdefault(name, []).append(query.key)
    assert len(used) > 60
    # prometheus_client exposes a counter `x` as `x_total` and a histogram as `x_bucket/_sum/_count`
    missing = {name for name in used if name not in produced
               and re.sub(r"_(total|bucket|sum|count)$", "", name) not in produced}
    unexplained = {name: used[name][:2] for name in sorted(missing)}
    assert not unexplained, f"panels query series nothing produces: {unexplained}"


def test_changes_are_annotations_on_the_sla_and_oncall_boards(boards: dict[str, dict[str, Any]]) -> None:
    produced = inv.notifier_metrics()
    for uid in ("einvoice-sla", "einvoice-oncall"):
        board = next(b for b in boards.values() if b["uid"] == uid)
        changes = [a for a in board["annotations"]["list"] if "change" in a.get("expr", "")]
        assert [a["name"] for a in changes] == ["变更窗口开始", "变更跟踪截止"], uid
        for annotation in changes:
            names = inv.metric_names(annotation["expr"])
            assert names and names <= produced, (uid, names)  # the notifier's change register exports them
            assert annotation["useValueForTime"] and annotation["datasource"]["uid"] == "${datasource}"
            assert set(annotation["tagKeys"].split(",")) <= {"system", "kind"}


def test_every_variable_a_query_uses_is_defined(boards: dict[str, dict[str, Any]]) -> None:
    """An undefined `$name` reaches Prometheus literally and the panel silently shows nothing."""
    for stem, board in boards.items():
        defined = {var["name"] for var in board["templating"]["list"]}
        for query in inv.queries({stem: board}):
            used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", query.expr)) - {"__range", "__rate_interval",
                                                                           "__interval"}
            assert used <= defined, f"{query.key} uses undefined {used - defined}"


def test_links_point_at_dashboards_that_exist(boards: dict[str, dict[str, Any]]) -> None:
    uids = set(EXPECTED_UIDS.values())
    links = 0
    for stem, board in boards.items():
        for panel in inv.panels(board):
            for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                target = re.match(r"/d/([\w-]+)", link["url"])
                assert target and target.group(1) in uids, f"{stem}/{panel['title']}: {link['url']}"
                variables = re.findall(r"var-(\w+)=", link["url"])
                target_board = next(b for b in boards.values() if b["uid"] == target.group(1))
                assert set(variables) <= {v["name"] for v in target_board["templating"]["list"]}
                links += 1
    assert links >= 3  # the ops wall's item tiles open the item detail dashboard


def test_the_sdk_is_the_build_for_the_deployed_grafana() -> None:
    """grafana-foundation-sdk is built per Grafana version (`<epoch>!<grafana version>`): the dashboards
    are built with the models of the Grafana that docker-compose.yml runs, pinned so in pyproject.toml
    (a plain `>=` would resolve to another version's build: the 10.1 builds carry the highest epochs)."""
    import tomllib
    from importlib.metadata import version

    import yaml

    compose = yaml.safe_load((inv.REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]["image"].rsplit(":", 1)[1]
    project = tomllib.loads((inv.REPO / "pyproject.toml").read_text(encoding="utf-8"))
    [pin] = [dep for dep in project["project"]["dependencies"] if dep.startswith("grafana-foundation-sdk")]
    assert pin.startswith("grafana-foundation-sdk~="), pin
    assert pin.split("!", 1)[1].split(".")[:2] == grafana.split(".")[:2], (pin, grafana)
    assert version("grafana-foundation-sdk").split("!", 1)[1].split(".")[:2] == grafana.split(".")[:2]
