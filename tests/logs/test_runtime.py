"""The log checks through the real config parser, runtime and exposition: identity labels added,
histograms exposed as histograms, and a config with an unknown pattern set refused with its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.exposition import encode
from einvoice_exporter.runtime import Runtime
from prometheus_client.parser import text_string_to_metric_families

from einvoice_core.redaction import MARK_PHONE
from tests.exporter.conftest import http_get

from .conftest import OOM, append

CONFIG = """
modules:
  os_logs:
    kind: logfile
    timeout: 5s
    logfile: {{pattern_sets: [os], state_file: {state}}}
  web:
    kind: nginx
    timeout: 5s
    nginx: {{access_log: {access}, log_format: '$status $request_time', buckets: [0.1, 1]}}
checks:
  - {{name: host-syslog, item: "03", module: os_logs, target: {log}}}
  - {{name: nginx-local, item: "04", module: web, target: "http://127.0.0.1:1/stub_status"}}
"""


def test_exposition_through_the_runtime(tmp_path: Path):
    log, access = tmp_path / "syslog", tmp_path / "access.log"
    log.write_bytes(b"")
    access.write_bytes(b"")
    text = CONFIG.format(state=tmp_path / "s.json", access=access, log=log)
    config = parse_config(text, "test.yml", env={})
    runtime = Runtime(config)
    try:
        list(runtime.collect(None))
        append(log, OOM * 2)
        append(access, b"200 0.050\n502 2.500\nnot a line\n")
        text = encode(runtime.collect(None)).decode()
    finally:
        runtime.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    matches = [s for s in families["einvoice_log_matches"].samples
               if s.labels["class"] == "oom" and s.name.endswith("_total")]
    assert [(s.labels["item"], s.labels["check"], s.value) for s in matches] == [("03", "host-syslog", 2.0)]
    histogram = families["nginx_http_response_time_seconds"]
    assert histogram.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.1": 1.0, "1.0": 1.0, "+Inf": 2.0}
    assert all("__sample_suffix" not in s.labels for s in histogram.samples)
    assert families["nginx_parse_errors"].samples[0].value == 1
    up = {s.labels["check"]: s.value for s in families["einvoice_check_up"].samples}
    assert up == {"host-syslog": 1.0, "nginx-local": 0.0}  # nothing on port 1: nginx_up 0, reason refused


def test_unknown_pattern_set_is_refused_with_its_location(tmp_path: Path):
    text = CONFIG.format(state=tmp_path / "s.json", access=tmp_path / "a", log=tmp_path / "l")
    with pytest.raises(ConfigError, match=r"pattern_sets.*unknown pattern set"):
        parse_config(text.replace("[os]", "[os, windows]"), "test.yml", env={})


def test_last_match_page_is_redacted_and_escaped(tmp_path: Path, serve):
    log = tmp_path / "auth.log"
    log.write_bytes(b"")
    text = CONFIG.format(state=tmp_path / "s.json", access=tmp_path / "a.log", log=log)
    served = serve(Runtime(parse_config(text, "test.yml", env={})))
    http_get(f"{served.url}/metrics")
    append(log, b"Dec  6 03:10:02 h sshd[991]: Failed password for 13812345678 from 10.1.1.1 <script>x\n")
    _, metrics, _ = http_get(f"{served.url}/metrics")
    assert "13812345678" not in metrics
    status, page, headers = http_get(f"{served.url}/logs")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "13812345678" not in page and MARK_PHONE in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "auth_failure" in page and "日志规则最近匹配" in page
