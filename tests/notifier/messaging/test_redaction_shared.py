"""The detectors live in einvoice_core.redaction for every layer: the notifier re-exports them and the
module needs nothing outside the standard library (the exporter's SQL checks import it too)."""

from __future__ import annotations

import subprocess
import sys

from einvoice_notifier.messaging import redact as notifier_redact
from hypothesis import given
from hypothesis import strategies as st

import einvoice_core.redaction as core


def test_the_notifier_uses_the_shared_detectors():
    assert notifier_redact.redact is core.redact
    assert notifier_redact.uscc_valid is core.uscc_valid


def test_the_shared_module_imports_only_the_standard_library():
    probe = ("import sys; before = set(sys.modules); import einvoice_core.redaction; "
             "print('\\n'.join(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            timeout=60).stdout.split()
    outside = [name for name in loaded if name.split(".")[0] not in sys.stdlib_module_names
               and name.split(".")[0] != "einvoice_core"]
    assert outside == []
    assert "einvoice_core.redaction" in loaded


@given(st.sampled_from(["张伟", "张先生", "次日", "条款", "李四", "王女士", "先生"]),
       st.sampled_from(["", " "]))
def test_checked_identifiers_are_hidden_whatever_follows(word, gap):
    for value in ("45030419921203105x", "45030419921203105X", "91450103198765432p", "124500004985074619",
                  "13907719445"):
        out = core.redact(f"来电{gap}{value}{gap}{word}")
        assert value not in out and value.upper() not in out and word in out
