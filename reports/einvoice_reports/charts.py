"""Charts as inline SVG, drawn here: no JavaScript, no network, the same in HTML and PDF."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#1f6fb2", "#d9822b", "#2e9e5b", "#b23b3b", "#7a4fb2")
_W, _H = 640, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 40


def _frame(body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
            f'role="img" aria-label="{escape(title)}" font-size="11" font-family="Noto Sans CJK SC, sans-se'
            f'rif">'
            + "".join(body) + "</svg>")


def _axes(y_lo: float, y_hi: float, ticks: int, fmt: Callable[[float], str]) -> list[str]:
    body = []
    plot_h = _H - _TOP - _BOTTOM
    for n in range(ticks + 1):
        value = y_lo + (y_hi - y_lo) * n / ticks
        y = _TOP + plot_h - plot_h * n / ticks
        body.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        body.append(f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#444">'
                    f'{escape(fmt(value))}</text>')
    return body


def line_chart(series: Sequence[tuple[str, Sequence[float | None]]], labels: Sequence[str], title: str,
               y_lo: float, y_hi: float, fmt: Callable[[float], str], reference: float | None = None) -> str:
    """One line per series over the same x labels; None leaves a gap; `reference` is a dashed line."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    span = (y_hi - y_lo) or 1.0
    count = max(len(labels), 1)

    def x(i: int) -> float:
        return _LEFT + (plot_w * (i + 0.5) / count)

    def y(v: float) -> float:
        clamped = min(max(v, y_lo), y_hi)
        return _TOP + plot_h - plot_h * (clamped - y_lo) / span

    body = _axes(y_lo, y_hi, 4, fmt)
    step = max(1, count // 10)
    for i, label in enumerate(labels):
        if i % step == 0:
            body.append(f'<text x="{x(i):.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle" fill="#444">'
                        f'{escape(label)}</text>')
    if reference is not None:
        body.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(reference):.1f}" y2="{y(reference):.1f}" '
                    f'stroke="#b23b3b" stroke-dasharray="4 3"/>')
    for n, (name, values) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, value in enumerate(values):
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(value):.1f}")
                body.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="2" fill="{color}"/>')
        body.extend(f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="1.5"/>'
                    for run in runs if len(run) > 1)
        lx = _LEFT + 8 + n * 150
        body.append(f'<rect x="{lx}" y="{_H - 16}" width="10" height="10" fill="{color}"/>'
                    f'<text x="{lx + 14}" y="{_H - 7}" fill="#222">{escape(name)}</text>')
    return _frame(body, title)


def bar_chart(bars: Sequence[tuple[str, float]], title: str, fmt: Callable[[float], str]) -> str:
    """Vertical bars with their value on top."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    top = max([v for _, v in bars] + [1.0])
    body = _axes(0.0, top, 4, fmt)
    count = max(len(bars), 1)
    width = plot_w / count * 0.6
    for i, (label, value) in enumerate(bars):
        cx = _LEFT + plot_w * (i + 0.5) / count
        height = plot_h * value / top
        body.append(f'<rect x="{cx - width / 2:.1f}" y="{_TOP + plot_h - height:.1f}" width="{width:.1f}" '
                    f'height="{height:.1f}" fill="{PALETTE[0]}"/>')
        body.append(f'<text x="{cx:.1f}" y="{_TOP + plot_h - height - 3:.1f}" text-anchor="middle">'
                    f'{escape(fmt(value))}</text>')
        body.append(f'<text x="{cx:.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle" fill="#444">'
                    f'{escape(label)}</text>')
    return _frame(body, title)
