"""Inline SVG charts (web/charts.py) and the number formats (web/formats.py)."""

from __future__ import annotations

from xml.etree import ElementTree

from pilothouse.web import charts, formats


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def test_line_chart_is_valid_svg_with_escaped_labels() -> None:
    svg = charts.line([("<a>", 1.0), ("b", None), ("c", 4.0)], title="t & <t>", fmt=formats.count)
    root = _parse(svg)
    assert root.tag.endswith("svg")
    assert "<a>" not in svg
    assert "&lt;a&gt;" in svg
    assert root.attrib["aria-label"] == "t & <t>"
    assert len([e for e in root.iter() if e.tag.endswith("circle")]) == 3
    assert "no data" in svg


def test_empty_and_flat_series_do_not_divide_by_zero() -> None:
    _parse(charts.line([], title="empty"))
    _parse(charts.line([("a", 0.0), ("b", 0.0)], title="flat"))
    _parse(charts.line([("only", 3.0)], title="one point"))
    _parse(charts.bars([], title="nothing"))


def test_bars_scale_to_the_largest_value() -> None:
    svg = charts.bars([("big", 10.0), ("small", 2.5)], title="cost", width=400)
    rects = [e for e in _parse(svg).iter() if e.tag.endswith("rect")]
    assert [r.attrib["width"] for r in rects] == ["400", "100"]


def test_span_bar_is_clamped_inside_the_trace() -> None:
    svg = charts.span_bar(0.9, 0.5, "llm", "<x>")
    rect = next(e for e in _parse(svg).iter() if e.tag.endswith("rect"))
    assert rect.attrib["x"] == "900"
    assert rect.attrib["width"] == "100"
    assert rect.attrib["class"] == "span-llm"
    assert "&lt;x&gt;" in svg
    hostile = charts.span_bar(0, 1, 'x" onload="alert(1)', "")
    assert "onload" not in hostile.replace("span-xonloadalert1", "")


def test_formats_read_well() -> None:
    assert formats.duration(850) == "850 ms"
    assert formats.duration(1250) == "1.25 s"
    assert formats.duration(125_000) == "2m 05s"
    assert formats.usd(0.00041) == "$0.00041"
    assert formats.usd(12.5) == "$12.50"
    assert formats.count(1234) == "1,234"
    assert formats.count(2_500_000) == "2.5M"
    assert formats.percent(0.5) == "50.0%"
    assert formats.percent(None) == "—"
    assert formats.short("x" * 100, 10) == "x" * 9 + "…"
