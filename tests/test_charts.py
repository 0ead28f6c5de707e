"""Server-made SVG charts are well-formed, labelled and deterministic."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from oo_ml.charts import bar_chart, line_chart

NS = "{http://www.w3.org/2000/svg}"


def test_line_chart_is_valid_svg_with_every_series_and_reference() -> None:
    svg = line_chart(
        [0, 1, 2],
        {"ucb-ix1": [0.1, 0.3, 0.4], "egreedy-v1 <&>": [0.0, 0.1, 0.1]},
        {"oracle": [0.5, 0.5, 0.5], "random": [-0.1, -0.1, -0.1]},
        title="Reward",
    )
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 4
    titles = {line.find(f"{NS}title").text for line in lines}  # type: ignore[union-attr]
    assert titles == {"ucb-ix1", "egreedy-v1 <&>", "oracle", "random"}
    dashed = [line for line in lines if line.get("stroke-dasharray")]
    assert len(dashed) == 2
    assert svg == line_chart(
        [0, 1, 2],
        {"ucb-ix1": [0.1, 0.3, 0.4], "egreedy-v1 <&>": [0.0, 0.1, 0.1]},
        {"oracle": [0.5, 0.5, 0.5], "random": [-0.1, -0.1, -0.1]},
        title="Reward",
    )


def test_line_chart_survives_flat_empty_and_nan_input() -> None:
    for series in ({"flat": [1.0, 1.0]}, {}, {"nan": [float("nan"), 1.0]}):
        ET.fromstring(line_chart([0, 1], series))


def test_bar_chart_signs_and_labels() -> None:
    svg = bar_chart(["bias", "priority*morning"], [-0.5, 1.0], title="θ")
    root = ET.fromstring(svg)
    rects = [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    colors = [r.get("fill") for r in rects]
    assert colors == ["#d62728", "#2ca02c"]
    assert "priority*morning" in svg
    widths = [float(r.get("width", 0)) for r in rects]
    assert widths[1] == 2 * widths[0]
