"""HTML from Jinja2 templates, PDF from that HTML with WeasyPrint, files into the archive.

WeasyPrint lays out print CSS itself (page margin boxes for the page numbers, page breaks),
draws the inline SVG charts and embeds a subset of the CJK font it used (Noto Sans CJK SC from
Debian's fonts-noto-cjk), with no network and no browser."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from einvoice_core.contract import REASON_ZH, TICKET_CLASS_ZH, TICKET_STATE_ZH

from .fmt import duration, hours, pct
from .period import REPORT_TZ


def _local(moment: datetime | None, form: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if moment is None else moment.astimezone(REPORT_TZ).strftime(form)


def _zh(mapping: Any, key: str) -> str:
    try:
        return str(mapping[key])
    except (KeyError, ValueError):
        return key


def environment() -> Environment:
    env = Environment(loader=PackageLoader("einvoice_reports", "templates"),
                      autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        pct=pct, duration=duration, hours=hours, local=_local,
        class_zh=lambda key: _zh(TICKET_CLASS_ZH, key), state_zh=lambda key: _zh(TICKET_STATE_ZH, key),
        reason_zh=lambda key: _zh(REASON_ZH, key))
    return env


def render_html(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML  # heavy import, only when a PDF is asked for

    pdf = HTML(string=html).write_pdf()
    assert pdf is not None
    return pdf


def write_atomic(path: Path, data: bytes) -> Path:
    """Write beside the target and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def archive_path(archive: Path, kind: str, period_label: str, ext: str) -> Path:
    return archive / kind / f"{period_label}.{ext}"
