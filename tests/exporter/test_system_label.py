"""issue 19: every check series carries `system` (the system of the contract's scope it watches):
the configured `system` key, validated against thresholds.yaml `systems`, or the first system that
lists the check's item."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.runtime import Runtime

from einvoice_core.contract import SYSTEM_LABEL
from einvoice_core.thresholds import shipped
from tests.exporter.conftest import Served, http_get

CONFIG = """
modules:
  port: {kind: tcp, timeout: 2s}
checks:
  - {name: intake, item: "05", module: port, target: "127.0.0.1:1"}
  - {name: fwd-default, item: "08", module: port, target: "127.0.0.1:2"}
  - {name: fwd-ofd, item: "08", module: port, target: "127.0.0.1:3", system: ofd_front}
  - {name: push, item: "14", module: port, target: "127.0.0.1:4"}
"""


def _check_up_systems(body: str) -> dict[str, str]:
    out = {}
    for line in body.splitlines():
        if line.startswith("einvoice_check_up{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            out[labels["check"].strip('"')] = labels[SYSTEM_LABEL].strip('"')
    return out


def test_each_check_is_labelled_with_its_system(serve: Callable[..., Served]) -> None:
    th = shipped()
    served = serve(Runtime(parse_config(CONFIG, "c.yml")))
    status, body, _ = http_get(served.url + "/metrics")
    assert status == 200
    systems = _check_up_systems(body)
    # the default is the first system listing the item, read from thresholds.yaml
    assert systems == {"intake": th.default_system("05"), "fwd-default": th.default_system("08"),
                       "fwd-ofd": "ofd_front", "push": th.default_system("14")}
    assert systems["intake"] == "public_service" and systems["fwd-default"] == "secure_access"
    assert systems["push"] == "invoice_mgmt"
    # the detail series of a check carry it too, and so does /probe?check=
    assert ('probe_success{item="08",zone="extranet",check="fwd-ofd",target="127.0.0.1:3",'
            'system="ofd_front"}') in body
    status, body, _ = http_get(served.url + "/probe?check=fwd-ofd")
    assert status == 200 and _check_up_systems(body) == {"fwd-ofd": "ofd_front"}
    status, body, _ = http_get(served.url + "/probe?module=port&target=127.0.0.1:5&item=14")
    assert status == 200 and _check_up_systems(body) == {"port": "invoice_mgmt"}


@pytest.mark.parametrize(("system", "message"), [
    ("ofd", r"system 'ofd' is not a system of thresholds.yaml `systems`"),
    ("invoice_mgmt",
     r"system 'invoice_mgmt' does not list item 08 .*secure_access, unified_intake, ofd_front"),
    ("OFD-front", r"system"),
])
def test_an_unknown_or_unrelated_system_fails_naming_the_check(system: str, message: str) -> None:
    text = CONFIG.replace("system: ofd_front", f"system: {system}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yml")
    error = str(caught.value)
    assert "checks.2" in error or "checks[2]" in error, error
    assert re.search(message, error), error


def test_file_sd_hands_the_system_to_the_probe_job() -> None:
    """`--file-sd`: the documented job relabels __meta_einvoice_system onto the detail series."""
    import json

    from einvoice_exporter.coverage import file_sd

    groups = json.loads(file_sd(parse_config(CONFIG, "c.yml"), "127.0.0.1:9877"))
    assert {g["labels"]["__param_check"]: g["labels"]["__meta_einvoice_system"] for g in groups} == {
        "intake": "public_service", "fwd-default": "secure_access", "fwd-ofd": "ofd_front",
        "push": "invoice_mgmt"}
