"""The HTTP endpoints, served by a real in-process server on a free port, with scripted checks."""

from __future__ import annotations

import gzip
import http.client
from urllib.parse import quote

import pytest
from einvoice_exporter.config import parse_config
from einvoice_exporter.outcome import Outcome, Reason
from einvoice_exporter.runtime import Runtime

from einvoice_core.contract import REASON_ZH
from tests.exporter.conftest import Factory, Gate, fail, http_get, make_config, sample

PROBE_CONFIG = """
global: {scrape_timeout_offset: 500ms}
modules:
  port: {kind: tcp, timeout: 10s, item: "02"}
  bare: {kind: tcp, timeout: 2s}
checks:
  - {name: vip, item: "02", module: port, target: "10.0.0.1:443"}
"""


def probe_runtime(factory: Factory) -> Runtime:
    return Runtime(parse_config(PROBE_CONFIG, "probe.yml", {}), check_factory=factory)


@pytest.mark.parametrize(("query", "message"), [
    ("target=10.0.0.1:80", "the module parameter is missing"),
    ("module=nope&target=10.0.0.1:80", "unknown module 'nope' (configured: bare, port)"),
    ("module=port", "the target parameter is missing"),
    ("module=bare&target=10.0.0.1:80", "module 'bare' has no item; add &item=NN"),
    ("module=port&target=10.0.0.1:80&item=21", "item parameter: item 21 is not one of"),
    ("module=port&target=no-port-here", "target 'no-port-here'"),
])
def test_probe_bad_requests_are_400_with_a_message(serve, query: str, message: str):
    served = serve(probe_runtime(Factory()))
    status, body, _ = http_get(f"{served.url}/probe?{query}")
    assert status == 400
    assert message in body


def test_probe_answers_blackbox_style_with_uniform_series(serve):
    served = serve(probe_runtime(Factory({"10.0.0.9:22": fail(Reason.REFUSED)})))
    status, body, headers = http_get(f"{served.url}/probe?module=port&target=10.0.0.9:22")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    labels = {"check": "port", "target": "10.0.0.9:22", "item": "02", "zone": "extranet"}
    assert sample(body, "einvoice_check_up", **labels) == 0
    assert sample(body, "einvoice_check_failures_total", reason="refused", **labels) == 1
    assert "\nprobe_success 0.0\n" in body, "no probe_success in the outcome: the runtime adds it unlabelled"
    assert "einvoice_item_info" not in body and "process_" not in body, "only the probe's own series"

    _, again, _ = http_get(f"{served.url}/probe?module=port&target=10.0.0.9:22")
    assert sample(again, "einvoice_check_failures_total", reason="refused", **labels) == 2, \
        "the counter is a real counter across requests"


def test_probe_item_parameter_overrides_the_module_item(serve):
    served = serve(probe_runtime(Factory()))
    status, body, _ = http_get(f"{served.url}/probe?module=bare&target=10.1.1.1:389&item=7")
    assert status == 200
    assert sample(body, "einvoice_check_up", check="bare", item="07", zone="extranet") == 1
    # the scripted outcome carries probe_success itself: it is passed through without identity labels
    assert "\nprobe_success 1.0\n" in body


def test_probe_honours_the_scrape_timeout_header_minus_offset(serve, gate: Gate):
    factory = Factory({"10.0.0.5:80": gate()})
    served = serve(probe_runtime(factory))
    status, body, _ = http_get(f"{served.url}/probe?module=port&target=10.0.0.5:80",
                               headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert status == 200  # answered although the check never ends by itself
    assert sample(body, "probe_duration_seconds") == pytest.approx(1.0)
    assert factory.built[0].calls[0][1] <= 1.0, "module port (built first) got more than 1.5 s - 0.5 s"
    assert sample(body, "einvoice_check_failures_total", check="port", reason="timeout") == 1
    assert "\nprobe_success 0.0\n" in body

    status, body, _ = http_get(f"{served.url}/probe?module=port&target=10.0.0.5:80",
                               headers={"X-Prometheus-Scrape-Timeout-Seconds": "soon"})
    assert status == 400
    assert "X-Prometheus-Scrape-Timeout-Seconds" in body


def test_metrics_has_checks_self_metrics_and_process_metrics(serve):
    served = serve(Runtime(make_config(["10.0.0.1:80", "10.0.0.2:80"]), check_factory=Factory()))
    status, body, headers = http_get(f"{served.url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert sample(body, "einvoice_check_up", check="c1") == 1
    assert sample(body, "einvoice_exporter_checks_configured") == 2
    assert sample(body, "einvoice_exporter_modules_configured", kind="tcp") == 1
    assert sample(body, "einvoice_exporter_config_last_reload_successful") == 1
    assert sample(body, "einvoice_exporter_build_info") == 1
    assert sample(body, "process_resident_memory_bytes") is not None
    assert sample(body, "python_info") == 1


def test_metrics_is_gzipped_when_asked(serve):
    served = serve(Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory()))
    host, port = served.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    assert response.getheader("Content-Encoding") == "gzip"
    assert b"einvoice_check_up" in gzip.decompress(raw)


def test_openmetrics_is_negotiated(serve):
    served = serve(Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory()))
    status, body, headers = http_get(f"{served.url}/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "einvoice_check_failures_total{" in body


def test_landing_page_is_chinese_and_escapes_everything(serve):
    def hostile(_target: str, _timeout: float) -> Outcome:
        return Outcome().fail(Reason.BAD_CONTENT, "got <script>alert(1)</script> instead of UP")

    runtime = Runtime(make_config(["10.0.0.1:80", "10.0.0.2:80"]),
                      check_factory=Factory({"10.0.0.1:80": hostile}))
    served = serve(runtime)
    status, before, _ = http_get(f"{served.url}/")
    assert status == 200
    assert "尚未运行" in before, "the landing page does not run checks itself"
    http_get(f"{served.url}/metrics")
    _, page, headers = http_get(f"{served.url}/")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert REASON_ZH[Reason.BAD_CONTENT] in page and "外网受理服务运行健康检查" in page and "正常" in page


def test_health_and_unknown_paths(serve):
    served = serve(Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory()))
    assert http_get(f"{served.url}/-/healthy")[0] == 200
    assert http_get(f"{served.url}/nothing-here")[0] == 404
    assert http_get(f"{served.url}/metrics", method="POST")[0] == 405


def test_reload_endpoint_needs_the_lifecycle_flag_and_post(serve):
    runtime = Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory(),
                      loader=lambda: make_config(["10.0.0.1:80", "10.0.0.2:80"]))
    served = serve(runtime)
    status, body, _ = http_get(f"{served.url}/-/reload", method="POST")
    assert (status, body) == (403, "Lifecycle API is not enabled.\n")
    assert len(runtime.config.checks) == 1

    served = serve(runtime, lifecycle=True)
    assert http_get(f"{served.url}/-/reload")[0] == 405
    status, _, _ = http_get(f"{served.url}/-/reload", method="POST")
    assert status == 200
    assert len(runtime.config.checks) == 2


def test_reload_endpoint_with_a_bad_file_answers_500_and_keeps_the_old_config(serve):
    def bad():
        text = "modules: {}\nchecks: [{name: x, item: 1, module: m, target: t}]\n"
        return parse_config(text, "new.yml", {})

    runtime = Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory(), loader=bad)
    served = serve(runtime, lifecycle=True)
    status, body, _ = http_get(f"{served.url}/-/reload", method="POST")
    assert status == 500
    assert "new.yml: checks[0] (x): module 'm' is not defined" in body
    _, metrics, _ = http_get(f"{served.url}/metrics")
    assert sample(metrics, "einvoice_exporter_config_last_reload_successful") == 0
    assert sample(metrics, "einvoice_check_up", check="c0") == 1
    _, page, _ = http_get(f"{served.url}/")
    assert "重新加载配置失败" in page


def test_probe_target_is_url_decoded(serve):
    served = serve(probe_runtime(Factory()))
    status, body, _ = http_get(f"{served.url}/probe?module=port&target={quote('[::1]:443')}")
    assert status == 200
    assert sample(body, "einvoice_check_up", target="[::1]:443") == 1
