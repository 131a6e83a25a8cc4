"""A lean encoder for the text exposition formats, for gauges, counters and summaries.

A 500-check /metrics carries ~8,000 samples; prometheus_client's generic encoder re-validates and
re-escapes every label name of every sample, which was most of the scrape's CPU. Our label names
are fixed and valid, so only values need escaping. Any family of another type falls back to
prometheus_client's encoder, which stays the reference (the tests compare both).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

_SIMPLE = frozenset({"gauge", "counter", "summary"})


class _Families:
    """Adapts families to what prometheus_client's encoders call (`collect()`)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


_FINITE_MAX = 1.7976931348623157e308


def _value(value: float) -> str:
    if -_FINITE_MAX <= value <= _FINITE_MAX:  # the common case: finite (NaN compares false)
        return repr(float(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _label_value(text: str) -> str:
    if "\\" in text or '"' in text or "\n" in text:
        return text.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return text


def _help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if openmetrics else text


def label_text(labels: Mapping[str, str]) -> str:
    """`a="x",b="y"`: label pairs as they appear between the braces of a sample line."""
    return ",".join(f'{key}="{_label_value(value)}"' for key, value in labels.items())


@functools.lru_cache(maxsize=4096)
def family_header(name: str, type_: str, documentation: str, openmetrics: bool) -> str:
    """HELP and TYPE lines; `name` is the family's name (a counter's without `_total`)."""
    header = name + "_total" if type_ == "counter" and not openmetrics else name
    return f"# HELP {header} {_help(documentation, openmetrics)}\n# TYPE {header} {type_}\n"


def sample_line(name: str, labels: str, value: float) -> str:
    """One sample line without timestamp; `labels` as label_text() renders them."""
    if labels:
        return f"{name}{{{labels}}} {_value(value)}\n"
    return f"{name} {_value(value)}\n"


def is_simple(type_: str) -> bool:
    """Whether this encoder writes the type itself (else prometheus_client's encoder does)."""
    return type_ in _SIMPLE


def encode(families: Iterable[Metric], openmetrics: bool = False, head: Iterable[str] = ()) -> bytes:
    """The exposition of `families` in text format 0.0.4 or OpenMetrics 1.0. `head` is text already
    rendered with family_header/sample_line (whole families), written before them."""
    families = list(families)
    out: list[str] = list(head)
    if any(family.type not in _SIMPLE for family in families):
        tail = (generate_openmetrics if openmetrics else generate_latest)(_Families(families))
        return "".join(out).encode("utf-8") + tail
    append = out.append
    for family in families:
        append(family_header(family.name, family.type, family.documentation, openmetrics))
        for sample in family.samples:
            if sample.name.endswith("_created") and not openmetrics:
                continue
            line = sample_line(sample.name, label_text(sample.labels) if sample.labels else "", sample.value)
            if sample.timestamp is not None:
                stamp = float(sample.timestamp)
                line = line[:-1] + (f" {stamp:.3f}\n" if openmetrics else f" {int(stamp * 1000)}\n")
            append(line)
    if openmetrics:
        append("# EOF\n")
    return "".join(out).encode("utf-8")


def wants_openmetrics(accept: str) -> bool:
    """OpenMetrics only when the client prefers it (as Prometheus does); text 0.0.4 otherwise."""
    best_q, best = -1.0, ""
    for part in accept.split(","):
        fields = [field.strip() for field in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(raw)
                except ValueError:
                    q = 0.0
        if media in ("application/openmetrics-text", "text/plain", "*/*") and q > best_q:
            best_q, best = q, media
    return best == "application/openmetrics-text"
