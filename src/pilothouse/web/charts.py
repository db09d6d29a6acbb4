"""Tiny inline-SVG charts rendered on the server (no JavaScript, no chart library).

Every function returns safe markup; labels are escaped here. Colours come from CSS classes
(``chart-line``, ``chart-area``, ``bar``, ``span-<kind>``) so light and dark mode both work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

Formatter = Callable[[float], str]


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def line(
    points: Sequence[tuple[str, float | None]],
    *,
    title: str,
    fmt: Formatter = _num,
    width: int = 240,
    height: int = 76,
) -> Markup:
    """A line with a filled area: ``points`` are (x label, value); None leaves a gap at 0."""
    values = [v or 0.0 for _, v in points]
    top = max(values, default=0.0) or 1.0
    pad_top, pad_bottom = 16, 16
    inner = height - pad_top - pad_bottom
    n = len(points)
    step = width / max(n - 1, 1)

    def y(v: float) -> float:
        return pad_top + inner - (v / top) * inner

    coords = [(i * step if n > 1 else width / 2, y(v)) for i, v in enumerate(values)]
    path = " ".join(f"{_num(x)},{_num(yy)}" for x, yy in coords)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="chart-axis" x1="0" y1="{pad_top + inner}" x2="{width}" '
        f'y2="{pad_top + inner}"/>',
    ]
    if coords:
        base = _num(pad_top + inner)
        area = f"0,{base} {path} {_num(coords[-1][0])},{base}"
        parts.append(f'<polygon class="chart-area" points="{area}"/>')
        parts.append(f'<polyline class="chart-line" points="{path}"/>')
        for (x, yy), (label, v) in zip(coords, points, strict=True):
            shown = "no data" if v is None else fmt(v)
            parts.append(
                f'<circle class="chart-dot" cx="{_num(x)}" cy="{_num(yy)}" r="2.5">'
                f"<title>{escape(label)}: {escape(shown)}</title></circle>"
            )
        parts.append(
            f'<text class="chart-label" x="2" y="{height - 3}">{escape(points[0][0])}</text>'
        )
        parts.append(
            f'<text class="chart-label" x="{width - 2}" y="{height - 3}" text-anchor="end">'
            f"{escape(points[-1][0])}</text>"
        )
        parts.append(f'<text class="chart-label" x="2" y="10">max {escape(fmt(top))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bars(
    items: Sequence[tuple[str, float]], *, title: str, fmt: Formatter = _num, width: int = 560
) -> Markup:
    """Horizontal bars, largest first as given: (label, value)."""
    row = 22
    height = max(row * len(items), row)
    top = max((v for _, v in items), default=0.0) or 1.0
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(items):
        y = i * row
        w = max(1.0, (value / top) * width)
        parts.append(
            f'<rect class="bar" x="0" y="{y + 3}" width="{_num(w)}" height="{row - 6}" rx="2">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
            f'<text class="bar-label" x="6" y="{y + row / 2 + 4}">{escape(label)} · '
            f"{escape(fmt(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def span_bar(start: float, length: float, kind: str = "span", label: str = "") -> Markup:
    """One waterfall row: a bar from ``start`` to ``start + length`` as fractions of the trace."""
    start = min(max(start, 0.0), 1.0)
    length = min(max(length, 0.002), 1.0 - start) or 0.002
    css = "span-" + "".join(c for c in kind.lower() if c.isalnum() or c == "-")
    return Markup(
        '<svg class="waterfall-bar" viewBox="0 0 1000 12" preserveAspectRatio="none" '
        'aria-hidden="true">'
        f'<rect class="{css}" x="{_num(start * 1000)}" y="1" width="{_num(length * 1000)}" '
        f'height="10" rx="2"><title>{escape(label)}</title></rect></svg>'
    )
