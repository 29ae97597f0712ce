"""The Pareto-front chart: every completed trial, the front and what verification kept.

Drawn with Vega-Lite, not plotly, because it is the one chart on the Study page's first
screen: at 10,000 trials plotly's 4.7 MB script alone took 0.6-1.1 s of browser time on
every load, Streamlit's Vega-Lite script is a sixth of that and draws a chart of more than
2,000 marks on a canvas. The trials go to the browser as one Arrow table (a column per
encoding), not as text per point.

The chart is the front as plotly drew it: one colour per group, a shape per role (plain
trial, dropped by verification, front, verified front), error bars where verification
measured an interval, a dotted line between ties, a ring round a trial that ran the
baseline's settings, the baseline itself, and latency on log axes ticked in plain ms.
Clicking a point selects its trial number (the ``pick`` selection).
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from common import (
    BASELINE_COLOUR,
    COLOURS,
    KEPT_VERSIONS,
    MANY_POINTS,
    axis_title,
    describe,
    front_plot,
    is_baseline_config,
    log_ticks,
    number,
)
from infertune.tuning.summaries import bulk_read

#: At most this many plain trials (off the front) are drawn by default: a fixed sample beyond
#: it. Each costs the browser ~0.05 ms to draw (~0.4 s at 10,000 trials, a fifth of the
#: page); a sample of 2,000 shows the same density, and the page can draw all on request.
MAX_PLAIN = 2000
#: The roles a trial plays on the chart, drawn in this order (the front on top).
ROLES = ("other trials", "dropped by verification", "front", "front, verified")
#: The name of the chart's click selection: the page reads the clicked trial from it.
PICK = "pick"
#: The same for the front's points (a layer of their own, so a second selection).
PICK_FRONT = "pick_front"


def _star(points: int = 5, inner: float = 0.4) -> str:
    """A star as an SVG path in Vega's unit box ([-1, 1] on both axes)."""
    corners = []
    for i in range(2 * points):
        radius = 1.0 if i % 2 == 0 else inner
        angle = math.pi * i / points - math.pi / 2
        corners.append(f"{radius * math.cos(angle):.3f},{radius * math.sin(angle):.3f}")
    return "M" + "L".join(corners) + "Z"


#: Each role's marker: its shape, its area (px²) and its fill (0: a ring).
_SHAPES = {
    "other trials": "circle",
    "dropped by verification": "circle",
    "front": "diamond",
    "front, verified": _star(),
}
_SIZES = {"other trials": 50, "dropped by verification": 110, "front": 130, "front, verified": 260}
_FILL = {"other trials": 1, "dropped by verification": 0, "front": 1, "front, verified": 1}
#: A plain trial's area and opacity among thousands: small and faint, so groups show through.
_FAINT_SIZE = 14
_FAINT_OPACITY = 0.3
#: The opacity of an infeasible point (it breaks a constraint).
_INFEASIBLE_OPACITY = 0.35


@st.cache_resource(max_entries=2 * KEPT_VERSIONS, show_spinner=False)
def _unfiltered(
    storage: str, name: str, version: str, colour_by: str, y_key: str | None, limit: int | None
) -> FrontChart:
    return front_chart(front_plot(storage, name, version), colour_by, y_key, limit)


def study_chart(
    storage: str,
    name: str,
    version: str,
    colour_by: str,
    y_key: str | None = None,
    limit: int | None = MAX_PLAIN,
) -> FrontChart:
    """:func:`front_chart` of every completed trial of a study, built once per version.

    The spec is a copy (Streamlit edits a spec it draws); the table is shared: read only.
    """
    chart = _unfiltered(storage, name, version, colour_by, y_key, limit)
    return chart._replace(spec=copy.deepcopy(chart.spec))


def role_of(point: dict[str, Any]) -> str:
    """The role a completed trial plays on the chart (verification's verdict first)."""
    if point["kept"]:
        return "front, verified"
    if point["verified"]:
        return "dropped by verification"
    return "front" if point["on_front"] else "other trials"


class FrontChart(NamedTuple):
    """A front chart to draw with ``st.vega_lite_chart(chart.table, chart.spec)``.

    Attributes:
        table: The plain trials drawn (``trial``, ``group``, ``x``, ``y`` and, below
            :data:`MANY_POINTS` trials, ``opacity`` and ``configuration``).
        spec: The Vega-Lite spec; the front's points are inline in it.
        plain: How many plain trials (off the front, not verified) could be drawn.
    """

    table: pd.DataFrame
    spec: dict[str, Any]
    plain: int


def front_chart(
    plot: dict[str, Any],
    colour_by: str,
    y_key: str | None = None,
    limit: int | None = MAX_PLAIN,
) -> FrontChart:
    """The chart: a table of plain trials and a Vega-Lite spec with the front inline.

    The plain trials (thousands) are the chart's table, a few columns drawn with fixed
    marks; the front, verified and dropped points (a few dozen) carry everything their
    hover says and sit in the spec. Every per-point choice (shape, size, fill) is a column
    or a scale lookup, not an expression: Streamlit's Vega interprets expressions per point.

    Args:
        plot: ``queries.front_plot_data``'s result, its points possibly filtered.
        colour_by: The knob whose values colour the points (``precision``, ``runtime``).
        y_key: The figure on the y axis (the plot's second objective by default).
        limit: Beyond this many plain trials, a fixed sample of this many is drawn (and
            every trial that ran the baseline's settings); ``None`` draws them all.
    """
    x_key, y_key = plot["x"], y_key or plot["y"]
    many = len(plot["points"]) > MANY_POINTS
    others: list[tuple[Any, ...]] = []
    kept_plain: list[tuple[Any, ...]] = []  # plain, but always drawn: the baseline's settings
    front: list[dict[str, Any]] = []
    ringed: list[dict[str, Any]] = []
    with bulk_read():
        for p in plot["points"]:
            x, y = p["figures"].get(x_key), p["figures"].get(y_key)
            if not (_valid(x, x_key) and _valid(y, y_key)):
                continue
            role = role_of(p)
            group = str(p.get(colour_by))
            opacity = 1.0 if p["feasible"] is not False else _INFEASIBLE_OPACITY
            baseline_settings = is_baseline_config(p["config"])
            if baseline_settings:
                ringed.append({"trial": p["number"], "x": float(x), "y": float(y)})
            if role == "other trials":
                row = (p["number"], group, float(x), float(y), opacity, p["config"])
                (kept_plain if baseline_settings else others).append(row)
                continue
            x_span = p["error"].get(x_key) or (None, None)
            y_span = p["error"].get(y_key) or (None, None)
            front.append(
                {
                    "trial": p["number"],
                    "group": group,
                    "role": role,
                    "size": _SIZES[role],
                    "fill": _FILL[role],
                    "opacity": opacity,
                    "x": float(x),
                    "y": float(y),
                    "x_lo": x_span[0],
                    "x_hi": x_span[1],
                    "y_lo": y_span[0],
                    "y_hi": y_span[1],
                    "configuration": describe(p["config"]),
                    "details": _details(p, x_key, y_key),
                }
            )
    front.sort(key=lambda f: ROLES.index(f["role"]))  # verified points drawn last, on top
    plain = len(others) + len(kept_plain)
    if limit is not None and plain > limit:
        # A fixed sample (same seed every run), so the chart does not change between reruns.
        chosen = random.Random(0).sample(range(len(others)), max(0, limit - len(kept_plain)))
        others = [others[i] for i in sorted(chosen)]
    others = sorted([*others, *kept_plain], key=lambda row: int(row[0]))
    table = pd.DataFrame.from_records(
        others, columns=["trial", "group", "x", "y", "opacity", "config"]
    )
    if many:  # drawn faint alike: no opacity of their own, no text
        table = table.drop(columns=["opacity", "config"])
    else:
        table["configuration"] = [describe(c) for c in table.pop("config")]
    groups = sorted({*table["group"], *(f["group"] for f in front)})
    colour = {
        "domain": groups,
        "range": [COLOURS[i % len(COLOURS)] for i in range(len(groups))],
    }
    baseline = plot["baseline"] or {}
    marked = (
        [baseline]
        if _valid(baseline.get(x_key), x_key) and _valid(baseline.get(y_key), y_key)
        else []
    )
    ties = _ties(plot["points"], x_key, y_key)
    spans = [[f[k] for f in front if f[k] is not None] for k in ("x_lo", "x_hi", "y_lo", "y_hi")]
    x = _axis(
        "x", x_key, [table["x"], [f["x"] for f in front], *spans[:2], [b[x_key] for b in marked]]
    )
    y = _axis(
        "y", y_key, [table["y"], [f["y"] for f in front], *spans[2:], [b[y_key] for b in marked]]
    )
    colour_field = {"field": "group", "type": "nominal", "scale": colour, "title": colour_by}
    layers: list[dict[str, Any]] = [_others_layer(x, y, colour_field, many, x_key, y_key)]
    if front:
        layers.extend(_front_layers(front, x, y, colour_field, x_key, y_key))
    if ringed:
        layers.append(
            {
                "data": {"values": ringed},
                "mark": {
                    "type": "point",
                    "shape": "circle",
                    "filled": False,
                    "size": 480,
                    "stroke": BASELINE_COLOUR,
                    "strokeWidth": 2,
                },
                "encoding": {"x": x, "y": y},
            }
        )
    if ties:
        layers.append(
            {
                "data": {"values": ties},
                "mark": {"type": "rule", "strokeDash": [2, 3], "color": "#666", "strokeWidth": 1.5},
                "encoding": {"x": x, "x2": {"field": "x2"}, "y": y, "y2": {"field": "y2"}},
            }
        )
    if marked:
        spot = [
            {
                "x": b[x_key],
                "y": b[y_key],
                "label": "baseline (tf fp32)",
                "shown": f"{number(b[x_key])}, {number(b[y_key])}",
            }
            for b in marked
        ]
        tooltip = [
            {"field": "label", "title": "baseline"},
            {"field": "shown", "title": f"{x_key}, {y_key}"},
        ]
        layers.append(
            {
                "data": {"values": spot},
                "layer": [
                    {
                        "mark": {
                            "type": "point",
                            "shape": "cross",
                            "angle": 45,
                            "size": 200,
                            "filled": True,
                            "color": BASELINE_COLOUR,
                        },
                        "encoding": {"x": x, "y": y, "tooltip": tooltip},
                    },
                    {
                        "mark": {"type": "text", "dy": -14, "color": BASELINE_COLOUR},
                        "encoding": {"x": x, "y": y, "text": {"value": "baseline"}},
                    },
                ],
            }
        )
    spec = {
        "height": 480,
        "layer": layers,
        "config": {"legend": {"orient": "bottom", "direction": "horizontal"}},
    }
    if many:
        # Thousands of marks draw faster on a canvas than as SVG nodes (Streamlit switches
        # only past 2,000 rows, and a sample is 2,000). A few stay SVG: each mark labelled.
        spec["usermeta"] = {"embedOptions": {"renderer": "canvas"}}
    return FrontChart(table=table, spec=spec, plain=plain)


def _valid(value: Any, key: str) -> bool:
    """Whether a figure can be drawn (a latency must be positive: its axis is logarithmic)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and (value > 0 or not key.startswith("latency"))


def _axis(channel: str, key: str, values: list[Any]) -> dict[str, Any]:
    """A channel's encoding: a latency on a log scale ticked at 1-2-5 as plain ms.

    Every layer draws its coordinates in fields named after the channel (``x``, ``y``), so
    each uses this same encoding and the layers share one axis and one title.
    """
    encoding: dict[str, Any] = {"field": channel, "type": "quantitative", "title": axis_title(key)}
    if key.startswith("latency"):
        drawn = np.concatenate([np.asarray(v, dtype=float) for v in values])
        drawn = drawn[np.isfinite(drawn) & (drawn > 0)]
        ticks = log_ticks(float(drawn.min()), float(drawn.max())) if drawn.size else []
        encoding["scale"] = {"type": "log"}
        encoding["axis"] = {"values": ticks, "labelExpr": "format(datum.value, '~g') + ' ms'"}
    else:
        encoding["scale"] = {"zero": False}
    return encoding


def _figure_tips(x_key: str, y_key: str) -> list[dict[str, Any]]:
    """A point's two figures in its hover, named after them, to 4 significant digits."""
    return [
        {"field": axis, "type": "quantitative", "title": key, "format": ".4~g"}
        for axis, key in (("x", x_key), ("y", y_key))
    ]


def _others_layer(
    x: dict[str, Any],
    y: dict[str, Any],
    colour_field: dict[str, Any],
    many: bool,
    x_key: str,
    y_key: str,
) -> dict[str, Any]:
    """The plain trials: small and faint among thousands, clickable."""
    tooltip: list[dict[str, Any]] = [
        {"field": "trial", "type": "quantitative"},
        {"field": "group", "type": "nominal", "title": colour_field["title"]},
        *_figure_tips(x_key, y_key),
    ]
    if not many:
        tooltip.insert(1, {"field": "configuration", "type": "nominal"})
    return {
        "params": [{"name": PICK, "select": {"type": "point", "fields": ["trial"], "on": "click"}}],
        "mark": {
            "type": "point",
            "filled": True,
            "shape": "circle",
            "cursor": "pointer",
            "size": _FAINT_SIZE if many else _SIZES["other trials"],
            "stroke": "#888",
            "strokeWidth": 0 if many else 1,
        },
        "encoding": {
            "x": x,
            "y": y,
            "color": colour_field,
            "opacity": {"value": _FAINT_OPACITY}
            if many
            else {"field": "opacity", "type": "quantitative", "scale": None},
            "tooltip": tooltip,
        },
    }


def _front_layers(
    front: list[dict[str, Any]],
    x: dict[str, Any],
    y: dict[str, Any],
    colour_field: dict[str, Any],
    x_key: str,
    y_key: str,
) -> list[dict[str, Any]]:
    """The front: error bars, then the points, a shape per role (dropped ones as rings)."""
    roles = [r for r in ROLES[1:] if any(f["role"] == r for f in front)]
    by_role = {"field": "role", "type": "nominal"}
    layers: list[dict[str, Any]] = []
    # The median's confidence interval where verification measured one.
    for low, high, along, across in (("x_lo", "x_hi", x, y), ("y_lo", "y_hi", y, x)):
        spanned = [f for f in front if f[low] is not None and f[high] is not None]
        if spanned:
            channel = along["field"]
            layers.append(
                {
                    "data": {"values": spanned},
                    "mark": {"type": "rule", "strokeWidth": 1.2},
                    "encoding": {
                        channel: {**along, "field": low},
                        f"{channel}2": {"field": high},
                        across["field"]: across,
                        "color": colour_field,
                    },
                }
            )
    layers.append(
        {
            "data": {"values": front},
            "params": [
                {
                    "name": PICK_FRONT,
                    "select": {"type": "point", "fields": ["trial"], "on": "click"},
                }
            ],
            "mark": {"type": "point", "filled": True, "cursor": "pointer", "stroke": "#888"},
            "encoding": {
                "x": x,
                "y": y,
                "color": colour_field,
                "shape": {
                    **by_role,
                    "title": "role",
                    "scale": {"domain": roles, "range": [_SHAPES[r] for r in roles]},
                },
                "size": {"field": "size", "type": "quantitative", "scale": None},
                # Dropped points are rings in their group's colour; the others have a grey edge.
                "fillOpacity": {"field": "fill", "type": "quantitative", "scale": None},
                "stroke": {
                    "condition": {"test": f"datum.role === '{ROLES[1]}'", **colour_field},
                    "value": "#888",
                },
                "strokeWidth": {"value": 1.2},
                "opacity": {"field": "opacity", "type": "quantitative", "scale": None},
                "tooltip": [
                    {"field": "trial", "type": "quantitative"},
                    {"field": "configuration", "type": "nominal"},
                    *_figure_tips(x_key, y_key),
                    {"field": "role", "type": "nominal"},
                    {"field": "details", "type": "nominal", "title": " "},
                ],
            },
        }
    )
    return layers


def _details(point: dict[str, Any], x_key: str, y_key: str) -> str:
    """What the hover says of a front or verified point beyond its figures."""
    parts = []
    if point.get("speedup_p95"):
        parts.append(f"speed-up (p95) {point['speedup_p95']:.2f}x")
    if point["violations"]:
        parts.append("infeasible: " + "; ".join(point["violations"]))
    for key in dict.fromkeys((x_key, y_key)):
        span = point["error"].get(key)
        if span:
            parts.append(f"{key} in [{number(span[0])}, {number(span[1])}]")
    if point["verified"]:
        parts.append("verified" + ("" if point["kept"] else " (dropped)"))
    if point.get("ties_with"):
        parts.append("tied with " + ", ".join(f"#{n}" for n in point["ties_with"]))
    if point.get("dominated_by"):
        parts.append("surely dominated by " + ", ".join(f"#{n}" for n in point["dominated_by"]))
    return " · ".join(parts)


def _ties(points: list[dict[str, Any]], x_key: str, y_key: str) -> list[dict[str, float]]:
    """A segment between each pair of kept points that verification could not tell apart."""
    kept = {p["number"]: p for p in points if p["kept"]}
    segments = []
    for n, point in kept.items():
        for other in point.get("ties_with") or []:
            if other > n and other in kept:
                ends = [
                    (e["figures"].get(x_key), e["figures"].get(y_key)) for e in (point, kept[other])
                ]
                if all(_valid(a, x_key) and _valid(b, y_key) for a, b in ends):
                    (x1, y1), (x2, y2) = ends
                    segments.append(
                        {"x": x1, "y": y1, "x2": x2, "y2": y2, "pair": f"#{n}-#{other}"}
                    )
    return segments


def clicked_trial(event: Any) -> int | None:
    """The trial number of the point a click selected (``None`` when nothing is)."""
    selection = getattr(event, "selection", None) or {}
    for name in (PICK_FRONT, PICK):
        picked = selection.get(name) if isinstance(selection, dict) else None
        for item in picked or []:
            value = item.get("trial") if isinstance(item, dict) else None
            if value is not None:
                return int(value)
    return None
