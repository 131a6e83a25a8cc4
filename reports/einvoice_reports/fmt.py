"""How numbers read in the reports (Chinese units)."""

from __future__ import annotations


def pct(ratio: float | None, digits: int = 2) -> str:
    return "—" if ratio is None else f"{ratio * 100:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """1 小时 5 分 3 秒; whole seconds; "—" for None."""
    if seconds is None:
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours} 小时")
    if minutes:
        parts.append(f"{minutes} 分")
    if secs or not parts:
        parts.append(f"{secs} 秒")
    return " ".join(parts)


def hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.2f} 小时"
