"""The "what changed since the last run" section and the compliance trend, from a run's
changes.csv, trend.csv and summary.json (written when the run kept a history)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import polars as pl

from audit.catalogue import Catalogue
from audit.outputs import TREND_CSV
from reports import chart
from reports.common import (
    CHANGE_LABELS,
    CHANGES,
    EPISODE_GONE,
    NEW,
    PREDATES,
    RESOLVED,
    STILL_OPEN,
    as_int,
    big_number,
    cap_rows,
    capped_per,
    catalogue_ref,
    clean,
    ordered_guidance_ids,
)
from reports.frames import Outputs
from reports.page import ChangeRow, Changes, Option, TrendChart
from reports.text import (
    long_date,
    long_datetime,
    number,
    parse_date,
    parse_datetime,
    plural,
    short_date,
)


def history_used(outputs: Outputs) -> bool:
    return outputs.summary.get("changes") is not None or outputs.bundle.facts["changes"]["present"]


def _previous_started(text: str) -> tuple[str, str]:
    """(long date, long date and time) of the previous run's start."""
    started = parse_datetime(text)
    if started is None:
        return text, text
    return long_date(started.date()), long_datetime(started)


def change_clause(outputs: Outputs, counts: dict[str, int]) -> str:
    info = outputs.summary.get("changes")
    if not history_used(outputs):
        return ""
    if info is not None and not info.get("previous_run"):
        return " First run recorded in this history: every finding is new."
    when = _previous_started(str((info or {}).get("previous_started") or ""))[0]
    gone = counts.get(EPISODE_GONE, 0)
    return (f" Since the last run{f' ({when})' if when else ''}: {plural(counts[NEW], 'new finding')}, "
            f"{number(counts[RESOLVED])} resolved, {number(counts[STILL_OPEN])} still open"
            + (f", {number(gone)} gone with episodes no longer in the export." if gone else "."))


def change_counts(outputs: Outputs) -> dict[str, int]:
    changes = outputs.bundle.facts["changes"]
    if changes["present"]:
        return {c: int(changes["by_change"].get(c, 0)) for c in CHANGES}
    info = outputs.summary.get("changes") or {}
    return {c: int(info.get(c, 0) or 0) for c in CHANGES}


def changes_section(outputs: Outputs, catalogue: Catalogue, anchors: dict[str, str], cap: int,
                    counts: dict[str, int]) -> Changes:
    if not history_used(outputs):
        return Changes(used=False, first_run=False, previous_run="", previous_started="", numbers=(), rows=(),
                       shown="0", total="0", cap=number(cap), capped=False, per_change=(), quick_filters=(),
                       file_missing=False, trend=None, trend_note="")
    info = outputs.summary.get("changes") or {}
    first_run = outputs.summary.get("changes") is not None and not info.get("previous_run")
    facts = outputs.bundle.facts["changes"]
    shown = capped_per(outputs.bundle["changes"], "change", cap)  # ordered by reports.bundle
    rows = tuple(
        ChangeRow(
            episode_id=r["episode_id"], episode_href=anchors.get(r["episode_id"], ""),
            guidance_id=r["guidance_id"], rule_id=r["rule_id"], position=r["position"], change=r["change"],
            change_label=CHANGE_LABELS.get(r["change"], r["change"]), first_seen=r["first_seen"],
            severity_tokens=r["severity_tokens"] if r["change"] != RESOLVED else "", status=r["status"],
        )
        for r in shown.iter_rows(named=True)
    )
    total = int(facts["total"])
    kinds = [c for c in CHANGES if c in facts["by_change"]]
    oldest = facts["oldest_first_seen"]
    oldest_date = parse_date(oldest)
    if first_run:
        notes = ("first run in this history", "nothing to compare with", "nothing to compare with")
    else:
        notes = (
            "found now, not in the last run",
            "in the last run, gone now, episode still exported",
            f"oldest first seen {long_date(oldest_date) if oldest_date else oldest}" if oldest
            else "found in both runs",
        )
    numbers = (
        big_number("New findings", counts[NEW], notes[0], "bad", "#filter=change:new&in=changes"),
        big_number("Resolved", counts[RESOLVED], notes[1], "ok", "#filter=change:resolved&in=changes"),
        big_number("Still open", counts[STILL_OPEN], notes[2], "warn", "#filter=change:still-open&in=changes"),
    ) + ((big_number("Episode no longer exported", counts[EPISODE_GONE],
                     "its findings went with it: not an improvement", "bad",
                     "#filter=change:episode-gone&in=changes"),) if counts.get(EPISODE_GONE) else ())
    previous_started = _previous_started(str(info.get("previous_started") or ""))[1]
    trend, trend_note = trend_section(outputs, catalogue)
    return Changes(
        used=True, first_run=first_run, previous_run=str(info.get("previous_run") or ""),
        previous_started=previous_started, numbers=numbers, rows=rows, shown=number(len(rows)),
        total=number(total), cap=number(cap), capped=len(rows) < total,
        per_change=tuple(replace(r, rule_id=CHANGE_LABELS.get(r.rule_id, r.rule_id))
                         for r in cap_rows({str(c): int(n) for c, n in facts["by_change"].items()}, shown,
                                           "change", CHANGES)),
        quick_filters=tuple(Option(c, CHANGE_LABELS[c]) for c in kinds) if len(kinds) > 1 else (),
        file_missing=not facts["present"],
        trend=trend, trend_note=trend_note,
    )


def trend_section(outputs: Outputs, catalogue: Catalogue) -> tuple[TrendChart | None, str]:
    if outputs.trend is None:
        return None, f"No trend: {TREND_CSV} is not in the output folder."
    frame = clean(outputs.trend).with_columns(as_int("episodes").fill_null(0), as_int("compliant").fill_null(0))
    judged_known = frame["judged"].str.len_chars().fill_null(0).max() or 0
    frame = frame.with_columns(as_int("judged").fill_null(pl.col("episodes")))
    run_keys = frame.select("run_id", "started").unique(maintain_order=True).rows()
    if len(run_keys) < 2:
        return None, ("The trend chart needs at least two runs over this scope; the history holds "
                      f"{plural(len(run_keys), 'run')} so far.")
    dates = [parse_datetime(started) for _, started in run_keys]
    days = [d.date() if d else None for d in dates]
    axis = []
    this_run = outputs.summary.get("run_id") or ""  # older outputs: the current run has no id
    for (run_id, started), when, day in zip(run_keys, dates, days):
        current = run_id in ("", this_run)
        label = short_date(day) if day else started
        time = when.strftime("%H:%M") if when else ""
        sublabel = "this run" if current else time if day is not None and days.count(day) > 1 else ""
        full = f"{label}, {time}" if time else label
        axis.append(chart.RunAxis(label=label, sublabel=sublabel, full_label=full,
                                  table_label=full if day is not None and days.count(day) > 1 else label,
                                  run_id=run_id, current=current))
    values: dict[str, dict[tuple[str, str], tuple[int, int]]] = defaultdict(dict)
    for r in frame.iter_rows(named=True):
        values[r["guidance_id"]][(r["run_id"], r["started"])] = (r["compliant"], r["judged"])
    series = []
    for gid in ordered_guidance_ids(catalogue, set(values)):
        ref = catalogue_ref(catalogue, gid)
        series.append(chart.SeriesData(gid, ref.title, ref.url, tuple(values[gid].get(k) for k in run_keys)))
    span = f"from {axis[0].full_label} to {axis[-1].full_label}{' (this run)' if axis[-1].current else ''}"
    moves = []
    for s in series:
        present = [v for v in s.values if v is not None and v[1]]
        if not present:
            continue
        first, last = chart.percent_text(*present[0]), chart.percent_text(*present[-1])
        moves.append(f"{s.guidance_id} went from {first} to {last}")
    desc = (f"Line chart of the percentage of matched episodes that were compliant, one line per guidance, over "
            f"{len(run_keys)} runs {span}. " + "; ".join(moves) + ". The table under the chart gives every value.")
    predates = any(int(c.get(PREDATES, 0) or 0) for c in outputs.summary.get("by_guidance", {}).values())
    if judged_known:
        note = ("Each point is compliant episodes out of the episodes judged against the guidance in that run "
                "(matched, less those dated before it was published), as under Compliance by guidance.")
    else:
        note = ("Each point is compliant episodes out of all episodes matched to the guidance in that run, as "
                f"{TREND_CSV} records them.")
    if predates and not judged_known:
        note += (" Episodes that predate the guidance count here but are left out of the % compliant under "
                 "Compliance by guidance, so the two can differ.")
    title = f"Compliance by guidance over the last {plural(len(run_keys), 'run')}"
    return chart.trend_chart(axis, series, title=title, desc=desc, note=note), ""
