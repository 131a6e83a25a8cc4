"""kafka_exporter's and blackbox_exporter's community dashboards keep their data on our exporter.

Every panel of kafka_exporter's grafana.com dashboard 7589, of the repository's own "Kafka Exporter
Overview" and of its kafka-mixin overview is evaluated against a tansu broker (the Kafka protocol;
tests/kafka) with a topic being written and a group committing; every panel of the
blackbox-exporter-mixin dashboard against a real nginx over HTTP and HTTPS (test CA) through
`/probe`. As for Redis and Elasticsearch (test_dashboards.py), a real Prometheus scrapes the exporter
through the documented `einvoice-probe` job (one `instance` per check); the dashboards' variables are
read from Prometheus the way Grafana reads them (label_values) and substituted into each expression;
a panel fails when none of its expressions returns a series. A panel that cannot have data says why
in the fixture (`no_data_with_reference`, `https_only`).
"""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from einvoice_exporter.config import load_config
from einvoice_exporter.coverage import file_sd

from tests.collectors_net.conftest import Pki
from tests.collectors_net.test_blackbox_parity import Site
from tests.community.test_instance_per_target import documented_probe_job, query, ready
from tests.kafka.conftest import Broker
from tests.support.procs import Proc, free_port, require_binary, wait_until

FIXTURES = Path(__file__).parent / "fixtures"
JOB = "einvoice-probe"


def dashboard(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert board["source"].startswith("https://github.com/")
    return board


def expr_of(name: str, title: str) -> str:
    [panel] = [p for p in dashboard(name)["panels"] if p["title"] == title]
    expr: str = panel["exprs"][0]
    return expr


def label_values(base: str, definition: str) -> list[str]:
    """Grafana's `label_values(selector, label)` against Prometheus' series API, as Grafana asks it."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", definition.strip(), re.S)
    assert match, definition
    selector, label = match.groups()
    url = f"{base}/api/v1/series?" + urllib.parse.urlencode({"match[]": selector.strip()})
    with urllib.request.urlopen(url, timeout=10) as answer:
        return sorted({s[label] for s in json.load(answer)["data"] if label in s})


def substitute(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${name}", values[name])
    assert "$" not in expr.replace("$__", ""), expr
    return expr


def empty_panels(base: str, board: dict[str, Any], values: dict[str, str], *, tls: bool = True) -> list[str]:
    missing = []
    for panel in board["panels"]:
        if "no_data_with_reference" in panel or ("https_only" in panel and not tls):
            continue
        if not any(query(base, substitute(expr, values)) for expr in panel["exprs"]):
            missing.append(panel["title"])
    return missing


def listed_panels_with_data(base: str, board: dict[str, Any], values: dict[str, str], *,
                            tls: bool = True) -> list[str]:
    """Panels the fixture lists as empty for a stated reason that nevertheless have data: the reason
    no longer holds and the listing must go."""
    listed = [p for p in board["panels"] if "no_data_with_reference" in p or ("https_only" in p and not tls)]
    return [p["title"] for p in listed
            if any(query(base, substitute(expr, values)) for expr in p["exprs"])]


@contextmanager
def probe_stack(config: str, tmp_path: Path) -> Iterator[str]:
    """Our exporter on `config`, and a Prometheus scraping it through the documented einvoice-probe
    job with the file-SD the exporter generates; yields Prometheus' base URL once it is ready."""
    config_path = tmp_path / "exporter.yml"
    config_path.write_text(config, encoding="utf-8")
    exporter_port, port = free_port(), free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    exporter = Proc([str(exe), "--config", str(config_path), "--web.listen-address",
                     f"127.0.0.1:{exporter_port}", "--log.level", "warn"], tmp_path / "exporter.log")
    sd = tmp_path / "checks.json"
    sd.write_text(file_sd(load_config(config_path), f"127.0.0.1:{exporter_port}"), encoding="utf-8")
    job = documented_probe_job()
    assert job["job_name"] == JOB
    job["file_sd_configs"] = [{"files": [str(sd)]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": [job]}),
        encoding="utf-8")
    prometheus = Proc([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                      tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    try:
        exporter.wait_port(exporter_port)
        wait_until(lambda: ready(base), timeout=60, what="prometheus ready")
        yield base
    finally:
        prometheus.stop()
        exporter.stop()


KAFKA_BOARDS = ("kafka_exporter_7589.json", "kafka_exporter_overview.json", "kafka_mixin_overview.json")


def test_kafka_exporter_dashboards_panels_have_data(broker: Broker, tmp_path: Path) -> None:
    topic = broker.topic("community-invoices", partitions=2)
    broker.produce(topic, 0, 5)
    broker.produce(topic, 1, 3)
    broker.commit("community-push", {(topic, 0): 2, (topic, 1): 3})
    config = ("modules:\n"
              "  lag: {kind: kafka, timeout: 5s, item: '13'}\n"
              "checks:\n"
              f"  - {{name: kafka-main, item: '13', module: lag, target: '{broker.bootstrap}'}}\n")
    with probe_stack(config, tmp_path) as base:
        variables = dashboard("kafka_exporter_7589.json")["variables"]
        # The dashboards' variables, resolved one after the other as Grafana does.
        wait_until(lambda: label_values(base, variables["job"]) == [JOB], timeout=60,
                   what="$job lists the einvoice-probe job")
        values = {"job": JOB}
        instance_query = substitute(variables["instance"], values)
        assert label_values(base, instance_query) == [broker.bootstrap]  # one instance: the broker
        values["instance"] = broker.bootstrap
        topics = label_values(base, substitute(variables["topic"], values))
        assert topic in topics
        values["topic"] = "(" + "|".join(topics) + ")"  # "All" of a multi-valued variable
        # kafka-mixin's $consumergroup reads kafka_consumergroup_members, which tansu cannot give
        # (DescribeGroups does not decode: tests/kafka/conftest.py); with a real Kafka it lists the
        # group, which is what is substituted here.
        assert label_values(base, dashboard("kafka_mixin_overview.json")["variables"]["consumergroup"]) == []
        values["consumergroup"] = "community-push"

        def all_have_data() -> bool:
            broker.produce(topic, 0, 1)  # traffic while the rates' windows fill
            return not any(empty_panels(base, dashboard(name), values) for name in KAFKA_BOARDS)

        wait_until(all_have_data, timeout=90, interval=1.0,
                   what="every panel of the kafka_exporter dashboards has data")
        # What the panels show is this broker's truth, not a mix of targets.
        partitions = query(base, substitute(expr_of("kafka_exporter_7589.json", "Partitions per Topic"),
                                            values))
        assert [(s["metric"]["topic"], s["value"][1]) for s in partitions
                if s["metric"]["topic"] == topic] == [(topic, "2")]
        lag = query(base, substitute(expr_of("kafka_exporter_7589.json", "Lag by  Consumer Group"), values))
        by_group = {(s["metric"]["consumergroup"], s["metric"]["topic"]): float(s["value"][1]) for s in lag}
        assert by_group[("community-push", topic)] >= 3  # 5 - 2 on partition 0, then more produced
        for name in KAFKA_BOARDS:
            assert listed_panels_with_data(base, dashboard(name), values) == [], name
    for name in KAFKA_BOARDS:
        skipped = [p for p in dashboard(name)["panels"] if "no_data_with_reference" in p]
        assert len(skipped) == (2 if name == "kafka_mixin_overview.json" else 0), name


def test_blackbox_exporter_mixin_panels_have_data(site: Site, pki: Pki, tmp_path: Path) -> None:
    targets = {"plain": f"{site.http}/index.html", "tls": f"{site.https}/index.html",
               "redirect": f"{site.http}/old"}
    config = ("modules:\n"
              "  web: {kind: http, timeout: 5s, item: '01', http: {tls_config: {ca_file: '"
              f"{pki.ca.cert_path}'}}}}}}\n"
              "checks:\n" + "".join(
                  f"  - {{name: site-{name}, item: '01', module: web, target: '{url}'}}\n"
                  for name, url in targets.items()))
    board = dashboard("blackbox_exporter_mixin.json")
    with probe_stack(config, tmp_path) as base:
        wait_until(lambda: label_values(base, board["variables"]["job"]) == [JOB], timeout=60,
                   what="$job lists the einvoice-probe job")
        instance_query = substitute(board["variables"]["instance"], {"job": JOB})
        wait_until(lambda: label_values(base, instance_query) == sorted(targets.values()), timeout=60,
                   what="$instance lists every probed URL, one instance each")
        for name, url in targets.items():
            values = {"job": JOB, "instance": url}  # single-valued: Grafana puts the value as it is

            def panels_full(values: dict[str, str] = values, tls: bool = name == "tls") -> bool:
                return not empty_panels(base, board, values, tls=tls)

            wait_until(panels_full, timeout=60, interval=1.0,
                       what=f"every blackbox-mixin panel has data for {url}")
            assert listed_panels_with_data(base, board, values, tls=name == "tls") == [], url
        # The facts on the panels are this target's own.
        name = "blackbox_exporter_mixin.json"
        [code] = query(base, substitute(expr_of(name, "Latest Response Code"),
                                        {"job": JOB, "instance": targets["plain"]}))
        assert code["value"][1] == "200"
        [redirects] = query(base, substitute(expr_of(name, "Redirects"),
                                             {"job": JOB, "instance": targets["redirect"]}))
        assert redirects["value"][1] == "1"
        [ssl_share] = query(base, substitute(expr_of(name, "Probes SSL"), {"job": JOB}))
        assert abs(float(ssl_share["value"][1]) - 1 / 3) < 1e-9  # one of three probes over TLS
