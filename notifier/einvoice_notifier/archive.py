"""The report archive `einvoice-report` writes (`report_archive`, its --out): what is in it, and
which file a request may have. Read by the console's 报告 page and by the notice of a new report.

Only `<kind>/<period>.<html|pdf|xlsx>` files of the reports' own kinds count; a file is served only
if its resolved path stays inside the archive (a symlink pointing out of it is refused).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

FILE_RE = re.compile(r"^(?P<label>[0-9A-Za-z][0-9A-Za-z-]{0,40})\.(?P<ext>html|pdf|xlsx)$")
MEDIA = {"html": "text/html; charset=utf-8", "pdf": "application/pdf",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
FORMAT_ZH = {"html": "网页", "pdf": "PDF", "xlsx": "Excel"}
REPORTS_PAGE = "/console/reports"
"""The console's 报告 page; a file is served at REPORTS_PAGE/<kind>/<name>."""


@dataclass(frozen=True, slots=True)
class ArchivedReport:
    kind: str
    title: str
    label: str
    files: tuple[tuple[str, str, int], ...]
    """(format, URL, bytes), html before pdf before xlsx."""
    modified: datetime


@functools.cache
def report_titles() -> dict[str, str]:
    """The reports' kinds and titles (einvoice_reports, installed with the notifier; none without it,
    said once in the log)."""
    try:
        from einvoice_reports.cli import TITLES
    except ImportError:
        log.warning("report archive: the einvoice_reports package is not installed; no report is listed")
        return {}
    return dict(TITLES)


def list_archive(archive: Path) -> list[ArchivedReport]:
    """Every report in the archive, newest period first within each kind (kinds in the reports' order)."""
    found: list[ArchivedReport] = []
    for kind, title in report_titles().items():
        folder = archive / kind
        if not folder.is_dir():
            continue
        grouped: dict[str, list[Path]] = {}
        for path in folder.iterdir():
            match = FILE_RE.fullmatch(path.name)
            if match and path.is_file() and not path.is_symlink():
                grouped.setdefault(match["label"], []).append(path)
        for label in sorted(grouped, reverse=True):
            paths = sorted(grouped[label], key=lambda p: list(MEDIA).index(p.suffix[1:]))
            files = tuple((p.suffix[1:], f"{REPORTS_PAGE}/{kind}/{p.name}", p.stat().st_size)
                          for p in paths)
            modified = datetime.fromtimestamp(max(p.stat().st_mtime for p in paths), UTC)
            found.append(ArchivedReport(kind, title, label, files, modified))
    return found


def archived_file(archive: Path, kind: str, name: str) -> Path | None:
    """The file to serve, or None unless it is a report of a known kind inside the archive."""
    if kind not in report_titles() or FILE_RE.fullmatch(name) is None:
        return None
    root = archive.resolve()
    path = archive / kind / name
    if path.is_symlink() or not path.is_file():
        return None
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(root) else None
