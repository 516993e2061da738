"""A small static SVG chart: series of (x, y) points over a shared time axis, drawn without a library.

The report must open anywhere, offline, with no script: an inline SVG with
axes, gridlines, step lines and markers is all a "findings over time" plot
needs.  Labels are escaped here (``html.escape``); callers pass plain text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import attrs


@attrs.frozen
class Series:
    label: str
    points: tuple[tuple[float, float], ...]
    colour: str
    #: "step": a cumulative count (held until the next point); "line": a sampled level; "dots": events
    style: str = "line"
    #: points of a "line" series with a different ``group`` are not joined (one group per run)
    groups: tuple[int, ...] = ()


@attrs.frozen
class Band:
    """A shaded x-range with a label (one run of the campaign)."""

    start: float
    end: float
    label: str


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top`` (1, 2, 5 x 10^n)."""
    if top <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(top))
    for m in (1, 2, 5, 10):
        if m * exp >= top:
            return float(m * exp)
    return float(10 * exp)


def _tick(y: float) -> str:
    """An axis label: 2.5, 10, 12,500."""
    return f"{y:,.0f}" if y >= 100 or y == int(y) else f"{y:.1f}"


def chart(title: str, series: Sequence[Series], *, x_max: float, y_label: str, bands: Sequence[Band] = (),
          width: int = 900, height: int = 220) -> str:
    """An SVG element: ``series`` against seconds, y from 0 to a round maximum."""
    y_top = _nice(max((y for s in series for _, y in s.points), default=1.0))
    # the rotated axis title ends about 15px in; the tick labels (11px, about 7px a character at most) end 6px
    # before the plot: a fixed margin let "12,500" run into the title
    widest = max(len(_tick(y_top * k / 4)) for k in range(5))
    left, right, top, bottom = max(56, 25 + 7 * widest), 16, 28, 34
    w, h = width - left - right, height - top - bottom
    x_top = max(x_max, 1e-9)

    def px(x: float) -> float:
        return left + w * min(max(x / x_top, 0.0), 1.0)

    def py(y: float) -> float:
        return top + h - h * min(max(y / y_top, 0.0), 1.0)

    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
           f'role="img" aria-label="{e(title)}" class="chart">',
           f'<text x="{left}" y="16" class="ct">{e(title)}</text>']
    for i, b in enumerate(bands):
        x0, x1 = px(b.start), px(b.end)
        out.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 0.5):.1f}" height="{h}" '
                   f'class="band{i % 2}"><title>{e(b.label)}</title></rect>')
        if x1 - x0 > 40:
            out.append(f'<text x="{x0 + 3:.1f}" y="{top + 11}" class="bl">{e(b.label[: int((x1 - x0) / 6)])}</text>')
    for k in range(5):
        y = y_top * k / 4
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" class="yt">{_tick(y)}</text>')
    for k in range(6):
        x = x_top * k / 5
        out.append(f'<text x="{px(x):.1f}" y="{top + h + 16}" class="xt">{x:.0f}s</text>')
    out.append(f'<text x="12" y="{top + h / 2:.0f}" class="yl" transform="rotate(-90 12 {top + h / 2:.0f})">'
               f'{e(y_label)}</text>')
    for s in series:
        pts = sorted(s.points)
        if s.style == "dots":
            for x, y in pts:
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{s.colour}">'
                           f'<title>{e(s.label)} at {x:.1f}s</title></circle>')
            continue
        groups = s.groups or tuple(0 for _ in pts)
        ordered = sorted(zip(s.points, groups, strict=True))
        path: list[str] = []
        last_group = None
        prev_y = 0.0
        for (x, y), g in ordered:
            if s.style == "step":
                path.append(f"{'L' if path else 'M'}{px(x):.1f},{py(prev_y):.1f} L{px(x):.1f},{py(y):.1f}")
                prev_y = y
            else:
                path.append(f"{'L' if path and g == last_group else 'M'}{px(x):.1f},{py(y):.1f}")
            last_group = g
        if s.style == "step" and path:
            path.append(f"L{px(x_top):.1f},{py(prev_y):.1f}")
        if path:
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
    lx = left + w
    for s in reversed(series):  # legend, right-aligned
        text = e(s.label)
        lx -= 14 + 7 * len(s.label) + 18
        out.append(f'<rect x="{lx}" y="8" width="12" height="10" fill="{s.colour}"/>'
                   f'<text x="{lx + 16}" y="17" class="lg">{text}</text>')
    out.append("</svg>")
    return "\n".join(out)
