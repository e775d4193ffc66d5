"""Geometry of the trend chart: % compliant per guidance per run, as inline SVG.

Every coordinate is computed here and handed to the template as a string, so the template does
no arithmetic. The chart never relies on colour alone: each guidance has an Okabe-Ito colour, a
dash pattern and a marker shape, and the legend and the data table name it in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reports.page import (
    AxisTick,
    TrendCell,
    TrendChart,
    TrendPoint,
    TrendRun,
    TrendSeries,
)

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 48, 18, 56  # margins around the plot area
Y_TICKS = (0, 25, 50, 75, 100)
MAX_X_LABELS = 10  # beyond this, label every k-th run (always the latest)
MARKER = 4.5  # marker half-size

# Okabe-Ito, the darker hues first; yellow (hard to see on white) last.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = (("solid", ""), ("dashed", "9 5"), ("dotted", "2 4"), ("dash-dot", "12 4 2 4"), ("short dashes", "5 3"))
# Marker outlines relative to their centre (path data after an absolute "M x,y").
_R = MARKER
MARKERS = (
    ("circle", f"m{-_R:g},0 a{_R:g},{_R:g} 0 1,0 {2 * _R:g},0 a{_R:g},{_R:g} 0 1,0 {-2 * _R:g},0 z"),
    ("square", f"m{-_R:g},{-_R:g} h{2 * _R:g} v{2 * _R:g} h{-2 * _R:g} z"),
    ("triangle", f"m0,{-1.3 * _R:g} l{1.2 * _R:g},{2.1 * _R:g} h{-2.4 * _R:g} z"),
    ("diamond", f"m0,{-1.4 * _R:g} l{1.4 * _R:g},{1.4 * _R:g} l{-1.4 * _R:g},{1.4 * _R:g} l{-1.4 * _R:g},{-1.4 * _R:g} z"),
    ("inverted triangle", f"m0,{1.3 * _R:g} l{1.2 * _R:g},{-2.1 * _R:g} h{-2.4 * _R:g} z"),
    ("cross", f"m{-_R:g},{-_R:g} l{2 * _R:g},{2 * _R:g} m0,{-2 * _R:g} l{-2 * _R:g},{2 * _R:g}"),
    ("plus", f"m{-1.3 * _R:g},0 h{2.6 * _R:g} m{-1.3 * _R:g},{-1.3 * _R:g} v{2.6 * _R:g}"),
)


@dataclass(frozen=True)
class RunAxis:
    """One run on the x axis."""

    label: str  # "21 Nov 2026"
    sublabel: str  # "02:00", "this run" or ""
    table_label: str  # "21 Nov 2026", with the time when two runs share a date
    full_label: str  # "21 Nov 2026, 02:00", for the markers' tooltips
    run_id: str  # "" for this run
    current: bool


@dataclass(frozen=True)
class SeriesData:
    guidance_id: str
    title: str
    url: str
    values: tuple[tuple[int, int] | None, ...]  # (compliant, judged) per run; None: not matched


def _coord(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def plot_box() -> tuple[float, float, float, float]:
    return LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM


def y_of(percent: float) -> float:
    left, right, top, bottom = plot_box()
    return bottom - (bottom - top) * percent / 100


def x_of(index: int, runs: int) -> float:
    left, right, top, bottom = plot_box()
    return left + (right - left) * index / (runs - 1)


def percent_text(compliant: int, episodes: int) -> str:
    return f"{compliant / episodes:.1%}" if episodes else "–"


def style(index: int) -> tuple[str, str, str, str, str]:
    """Colour, dash pattern (name, stroke-dasharray), marker name and outline of the index-th guidance."""
    name, outline = MARKERS[index % len(MARKERS)]
    return COLOURS[index % len(COLOURS)], *DASHES[index % len(DASHES)], name, outline


def _labelled(runs: int) -> set[int]:
    stride = math.ceil(runs / MAX_X_LABELS)
    return {i for i in range(runs) if (runs - 1 - i) % stride == 0}


def trend_chart(runs: list[RunAxis], series: list[SeriesData], *, title: str, desc: str,
                note: str) -> TrendChart:
    if len(runs) < 2:
        raise ValueError("a trend needs at least two runs")
    left, right, top, bottom = plot_box()
    n = len(runs)
    built = []
    for index, s in enumerate(series):
        colour, line_name, dash, marker_name, outline = style(index)
        points, markers, cells = [], [], []
        for i, value in enumerate(s.values):
            if value is None or not value[1]:
                cells.append(TrendCell("–", "not matched" if value is None else "0 episodes"))
                continue
            compliant, episodes = value
            x, y = _coord(x_of(i, n)), _coord(y_of(100 * compliant / episodes))
            text = percent_text(compliant, episodes)
            counts = f"{compliant:,} of {episodes:,}"
            points.append(f"{x},{y}")
            when = runs[i].full_label + (" (this run)" if runs[i].current else "")
            markers.append(TrendPoint(x, y, f"{s.guidance_id}, {when}: {text} compliant ({counts})",
                                      f"M{x},{y} {outline}"))
            cells.append(TrendCell(text, counts))
        last = s.values[-1]
        latest = (f"{percent_text(*last)} in this run" if last is not None and last[1] and runs[-1].current
                  else f"{percent_text(*last)} in the latest run" if last is not None and last[1]
                  else "not matched in the latest run")
        built.append(TrendSeries(
            guidance_id=s.guidance_id, title=s.title, url=s.url, colour=colour, dash=dash, line_name=line_name,
            marker_name=marker_name, points=" ".join(points), markers=tuple(markers),
            swatch_marker=f"M20,8 {outline}", latest=latest, cells=tuple(cells),
        ))
    labelled = _labelled(n)
    x_ticks = tuple(
        AxisTick(_coord(x_of(i, n)), r.label if i in labelled else "", r.sublabel if i in labelled else "")
        for i, r in enumerate(runs)
    )
    y_ticks = tuple(AxisTick(_coord(y_of(p)), f"{p}%", "") for p in Y_TICKS)
    return TrendChart(
        width=str(WIDTH), height=str(HEIGHT), view_box=f"0 0 {WIDTH} {HEIGHT}",
        plot_left=_coord(left), plot_right=_coord(right), plot_top=_coord(top), plot_bottom=_coord(bottom),
        title=title, desc=desc, y_ticks=y_ticks, x_ticks=x_ticks,
        x_label_y=_coord(bottom + 20), x_sublabel_y=_coord(bottom + 37), y_tick_label_x=_coord(left - 8),
        y_label_x="18", y_label_y=_coord((top + bottom) / 2),
        y_label_transform=f"rotate(-90 18 {_coord((top + bottom) / 2)})",
        series=tuple(built),
        runs=tuple(TrendRun(r.table_label, r.run_id, r.current) for r in runs),
        run_count=f"{n:,}", note=note,
    )
