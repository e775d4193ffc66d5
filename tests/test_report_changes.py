"""report.html's "what changed since the last run" section and its compliance trend chart.

Nights are run through the CLI in-process with a history file (the clock pinned by
SOURCE_DATE_EPOCH), and each night's output folder is kept; the page is asserted on by parsing it
with the stdlib html.parser (tests.test_report's tiny DOM), against changes.csv and trend.csv.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from audit.catalogue import load_catalogue
from audit.cli import app
from reports import chart, render_report
from reports.chart import COLOURS, DASHES, MARKERS
from tests.test_report import (
    HOSTILE,
    PAGE_TAGS,
    Node,
    audit_into,
    hostile_outputs,
    parse_html,
    read_frame,
)

HEADER = "episode_id,position,code,procedure_date\n"
D = "2012-01-01"


def episode(episode_id: str, *codes: str) -> str:
    return "".join(f"{episode_id},{n},{code},{D}\n" for n, code in enumerate(codes, start=1))


HOSTILE_ID = '<img src=x onerror=alert(3)>"&'
# A: IPG319, fixed over the nights; B: a generic finding that stays; C: invalid from night 2 on;
# D: IPG319 compliant (a warning that stays); E, F: IPG366, absent on night 2 (a gap in its line).
NIGHTS = [
    (datetime(2026, 11, 19, 2, 0, tzinfo=timezone.utc),
     episode("A", "V522", "Y102") + episode("B", "Y534") + episode("D", "V522", "V559", "Y102", "Y534", "Z992")
     + episode("E", "V401", "V552", "Y534", "Z676") + episode("F", "V401", "Y534")),
    (datetime(2026, 11, 20, 2, 5, tzinfo=timezone.utc),
     episode("A", "V522", "V551", "Y102") + episode("B", "Y534") + episode("C", "V5")
     + episode("D", "V522", "V559", "Y102", "Y534", "Z992")),
    (datetime(2026, 11, 21, 2, 1, tzinfo=timezone.utc),
     episode("A", "V522", "V551", "Y102", "Y534", "Z992") + episode("B", "Y534") + episode("C", "V5")
     + episode("D", "V522", "V559", "Y102", "Y534", "Z992") + episode("E", "V401", "V552", "Y534", "Z676")
     + episode("F", "V401", "Y534") + episode(f'"{HOSTILE_ID.replace(chr(34), chr(34) * 2)}"', "Y534")),
]
SVG_TAGS = {"svg", "title", "desc", "g", "line", "text", "polyline", "path", "figure", "figcaption"}


@dataclass(frozen=True)
class Night:
    out: Path
    html: str
    dom: Node
    summary: dict
    changes: pl.DataFrame
    trend: pl.DataFrame
    findings: pl.DataFrame


def load_night(out: Path) -> Night:
    html = (out / "report.html").read_text(encoding="utf-8")
    return Night(out, html, parse_html(html), json.loads((out / "summary.json").read_text(encoding="utf-8")),
                 read_frame(out, "changes.csv"), read_frame(out, "trend.csv"), read_frame(out, "findings.csv"))


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> list[Night]:
    """Three nights over one scope; each night's --out folder copied aside as it was published."""
    root = tmp_path_factory.mktemp("nights")
    kept = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # no ./nice-audit.toml of the checkout's
        for n, (when, rows) in enumerate(NIGHTS, start=1):
            (root / "episodes.csv").write_text(HEADER + rows, encoding="utf-8")
            result = CliRunner().invoke(
                app, ["run", "episodes.csv", "--out", "out", "--history", "h.sqlite", "--scope", "nightly", "-q"],
                env={"SOURCE_DATE_EPOCH": str(int(when.timestamp()))},
            )
            assert result.exit_code == 0, result.output
            kept.append(load_night(Path(shutil.copytree(root / "out", root / f"night{n}"))))
    return kept


def test_each_nights_report_is_the_one_its_folder_renders_again(nights, tmp_path):
    """The run renders its report from its summary and bundle in memory (the changes and the
    trend included) while its other files are written: the page is the one the folder gives."""
    for n, night in enumerate(nights, start=1):
        out = Path(shutil.copytree(night.out, tmp_path / f"night{n}"))
        assert render_report(out, load_catalogue()).read_bytes() == (night.out / "report.html").read_bytes()


def section(night: Night) -> Node:
    return night.dom.find("section", id="changes")


def change_rows(night: Night) -> list[Node]:
    return night.dom.find("table", id="changes-table").find("tbody").find_all("tr")


def big_numbers(node: Node) -> dict[str, int]:
    numbers = node.find("ul", class_="numbers changes-numbers").find_all("li")
    return {li.find("span", class_="label").words(): int(li.find("span", class_="value").words().replace(",", ""))
            for li in numbers}


def key(row: dict) -> tuple[str, str, str, str]:
    return row["episode_id"], row["guidance_id"], row["rule_id"], row["position"]


# --- The section -------------------------------------------------------------------------------


def test_the_section_follows_the_summary_band_and_has_a_nav_link(nights):
    main = nights[1].dom.find("main")
    sections = [n for n in main.children if isinstance(n, Node) and n.tag == "section"]
    assert sections[0].attrs["id"] == "changes" and sections[1].attrs["id"] == "compliance"
    links = [a.attrs["href"] for a in nights[1].dom.find("nav").find_all("a")]
    assert links[0] == "#changes"
    assert section(nights[1]).find("h2").words() == "What changed since the last run"


def test_counts_equal_changes_csv(nights):
    night = nights[1]
    counts = dict(night.changes.group_by("change").len().iter_rows())
    assert big_numbers(section(night)) == {
        "New findings": counts.get("new", 0), "Resolved": counts.get("resolved", 0),
        "Still open": counts.get("still-open", 0),
        # Findings whose episode left the export are not "resolved" (issue 11): their own number.
        **({"Episode no longer exported": counts["episode-gone"]} if counts.get("episode-gone") else {}),
    }
    assert {k: night.summary["changes"][k] for k in ("new", "resolved", "still-open")} == \
        {k: counts.get(k, 0) for k in ("new", "resolved", "still-open")}
    assert all(counts.get(k) for k in ("new", "resolved", "still-open")), "the nights exercise every kind"


def test_previous_run_id_and_date_are_named(nights):
    night, previous = nights[1], nights[0]
    text = section(night).words()
    assert night.summary["changes"]["previous_run"] in text
    assert section(night).find("code", data_previous_run=True).words() == night.summary["changes"]["previous_run"]
    assert "started 19 November 2026, 02:00 GMT" in text
    assert previous.summary["run_started"] == night.summary["changes"]["previous_started"]


def test_every_change_row_appears_with_its_label_and_icon(nights):
    night = nights[1]
    rows = change_rows(night)
    assert len(rows) == night.changes.height
    labels = {"new": "new", "still-open": "still open", "resolved": "resolved",
              "episode-gone": "episode no longer exported"}
    shown = {}
    for tr in rows:
        cells = tr.find_all("td")
        badge = cells[3].find("span", class_=f"badge ch-{tr.attrs['data-change']}")
        icon = badge.find("i")
        assert icon.attrs["aria-hidden"] == "true" and icon.words()
        assert badge.words().replace(icon.words(), "").strip() == labels[tr.attrs["data-change"]]
        position = cells[2].words()
        shown[(tr.find("th").words(), cells[0].words().replace("–", ""), cells[1].words(),
               "" if position == "–" else position)] = (tr.attrs["data-change"], cells[4].words())
    expected = {key(r): (r["change"], r["first_seen"]) for r in night.changes.iter_rows(named=True)}
    assert shown == expected


def test_first_seen_is_shown_for_still_open_rows(nights):
    night = nights[2]
    still = night.changes.filter(pl.col("change") == "still-open")
    older = still.filter(pl.col("first_seen") < "2026-11-21")
    assert older.height, "night 3 carries findings first seen on an earlier night"
    by_key = {}
    for tr in change_rows(night):
        if tr.attrs["data-change"] == "still-open":
            cells = tr.find_all("td")
            by_key[(tr.attrs["data-episode-id"], cells[1].words())] = cells[4].words()
    for r in still.iter_rows(named=True):
        assert by_key[(r["episode_id"], r["rule_id"])] == r["first_seen"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", still["first_seen"][0])


def test_rows_are_new_then_still_open_oldest_first_then_resolved(nights):
    for night in nights[1:]:
        rows = change_rows(night)
        rank = {"new": 0, "still-open": 1, "resolved": 2, "episode-gone": 3}
        order = [(rank[tr.attrs["data-change"]], tr.find_all("td")[4].words() if tr.attrs["data-change"] == "still-open"
                  else "") for tr in rows]
        assert order == sorted(order)


def test_summary_sentence_says_what_changed(nights):
    night = nights[1]
    c = night.summary["changes"]
    sentence = night.dom.find("p", id="summary").words()
    assert sentence.endswith(f"Since the last run (19 November 2026): {c['new']} new finding"
                             f"{'' if c['new'] == 1 else 's'}, {c['resolved']} resolved, {c['still-open']} still open, "
                             f"{c['episode-gone']} gone with episodes no longer in the export.")


def test_findings_table_shows_first_seen_and_change(nights):
    night = nights[2]
    table = night.dom.find("table", id="findings-table")
    assert table.find("thead").find_all("th")[-1].words() == "First seen"
    rows = table.find("tbody").find_all("tr")
    assert len(rows) == night.findings.height
    open_keys = {key(r): r["change"] for r in night.changes.iter_rows(named=True) if r["change"] != "resolved"}
    for tr, f in zip(rows, night.findings.iter_rows(named=True)):
        assert tr.find_all("td")[-1].words().startswith(f["first_seen"])
        assert tr.attrs["data-change"] == open_keys[key(f)]


def test_change_filter_is_offered_and_cards_carry_change_tokens(nights):
    night = nights[1]
    options = [o.attrs["value"] for o in night.dom.find("select", id="filter-change").find_all("option")]
    assert options == ["", "new", "still-open", "resolved", "episode-gone"]
    new_episodes = set(night.changes.filter(pl.col("change") == "new")["episode_id"])
    for card in night.dom.find_all("article", data_filter_item="worksheet"):
        assert ("new" in card.attrs["data-change"].split()) == (card.attrs["data-episode-id"] in new_episodes)


def test_first_night_says_every_finding_is_new(nights):
    night = nights[0]
    assert night.summary["changes"]["previous_run"] is None
    note = section(night).find("p", data_changes_note="first-run")
    assert note.words() == "First run recorded in this history: every finding is new."
    assert set(night.changes["change"]) == {"new"}
    assert big_numbers(section(night)) == {"New findings": night.changes.height, "Resolved": 0, "Still open": 0}
    assert night.dom.find("p", id="summary").words().endswith(
        "First run recorded in this history: every finding is new.")
    assert not section(night).find_all("svg")
    assert "at least two runs" in section(night).find("p", data_trend_note=True).words()


def test_without_history_a_note_and_no_changes_table(tmp_path):
    out = audit_into([Path(__file__).resolve().parent.parent / "examples" / "hes_episodes.csv"], tmp_path / "out")
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["changes"] is None
    dom = parse_html(render_report(out, load_catalogue()).read_text(encoding="utf-8"))
    changes = dom.find("section", id="changes")
    assert changes.find("p", data_changes_note="no-history").words() == \
        "No run history was used for this run (use --history to compare nights)."
    assert not dom.find_all("table", id="changes-table") and not dom.find_all("svg")
    assert not dom.find_all("select", id="filter-change")
    assert "Since the last run" not in dom.find("p", id="summary").words()
    assert "First seen" not in dom.find("table", id="findings-table").find("thead").words()


# --- The trend chart ----------------------------------------------------------------------------


def points(polyline: Node) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in polyline.attrs["points"].split()]


def percent_of(svg: Node):
    """Invert the chart's y scale from its 0% and 100% grid lines."""
    zero = float(svg.find("line", data_percent="0%").attrs["y1"])
    full = float(svg.find("line", data_percent="100%").attrs["y1"])
    return lambda y: (zero - y) / (zero - full) * 100


def test_trend_draws_one_line_per_guidance_with_a_point_per_run(nights):
    night = nights[2]
    svg = section(night).find("svg", role="img")
    assert svg.find("title", id="trend-title").words() == "Compliance by guidance over the last 3 runs"
    assert "IPG319 went from 50.0% to 100.0%" in svg.find("desc").words()
    to_percent = percent_of(svg)
    trend = night.trend.with_columns(pl.col("episodes", "compliant").cast(pl.Int64))
    runs = trend.select("run_id", "started").unique(maintain_order=True).rows()
    assert len(runs) == 3 and runs[-1][0] == night.summary["run_id"]  # this run, under its id
    lines = svg.find_all("polyline")
    assert sorted(p.attrs["data-guidance"] for p in lines) == sorted(set(trend["guidance_id"]))
    xs = set()
    for line in lines:
        rows = trend.filter(pl.col("guidance_id") == line.attrs["data-guidance"])
        drawn = points(line)
        assert len(drawn) == rows.height
        assert [round(to_percent(y), 1) for _, y in drawn] == \
            [round(100 * c / e, 1) for c, e in rows.select("compliant", "episodes").rows()]
        assert [x for x, _ in drawn] == sorted(x for x, _ in drawn)
        xs |= {x for x, _ in drawn}
        markers = svg.find("g", data_guidance=line.attrs["data-guidance"]).find_all("path", class_="marker")
        assert len(markers) == rows.height and all(m.find("title").words() for m in markers)
    assert len(xs) == 3  # IPG366 skips night 2 but shares the x of nights 1 and 3
    gap = trend.filter(pl.col("guidance_id") == "IPG366")
    assert gap.height == 2


def test_each_guidance_differs_by_dash_and_marker_not_only_colour(nights):
    svg = section(nights[2]).find("svg", role="img")
    styles = []
    for g in svg.find_all("g", class_="series"):
        line = g.find("polyline")
        marker = g.find_all("path", class_="marker")[0].attrs["d"]
        styles.append((g.attrs["stroke"], line.attrs.get("stroke-dasharray", ""), re.sub(r"^M[\d.]+,[\d.]+ ", "", marker)))
    assert len({s[1] for s in styles}) == len(styles) and len({s[2] for s in styles}) == len(styles)
    assert all(s[0] in COLOURS for s in styles)
    legend = section(nights[2]).find("ul", class_="legend").find_all("li")
    assert [li.attrs["data-guidance"] for li in legend] == [g.attrs["data-guidance"] for g in svg.find_all("g", class_="series")]
    assert all(li.find("b").words() in li.words() and ("circle" in li.words() or "square" in li.words())
               for li in legend)
    assert len(DASHES) > 1 and len(MARKERS) > 1


def test_many_guidance_and_runs_stay_distinct_and_labelled():
    styles = {chart.style(i)[1:] for i in range(40)}  # dash pattern and marker, leaving colour aside
    assert len(styles) == 35 and len({chart.style(i) for i in range(40)}) == 40
    runs = [chart.RunAxis(f"{d} Nov 2026", "", f"{d} Nov 2026", f"{d} Nov 2026, 02:00", f"r{d}", False)
            for d in range(1, 31)]
    runs[-1] = chart.RunAxis("30 Nov 2026", "this run", "30 Nov 2026", "30 Nov 2026, 02:00", "", True)
    series = [chart.SeriesData(f"IPG{i}", "", "", tuple((i, 40) if d % 7 else None for d in range(30)))
              for i in range(12)]
    drawn = chart.trend_chart(runs, series, title="t", desc="d", note="")
    labelled = [t for t in drawn.x_ticks if t.label]
    assert len(labelled) <= chart.MAX_X_LABELS and drawn.x_ticks[-1].label == "30 Nov 2026"
    assert drawn.x_ticks[-1].sublabel == "this run"
    assert all(len(s.points.split()) == 30 - 5 for s in drawn.series)  # runs 0, 7, 14, 21, 28 are gaps
    assert [c.percent for c in drawn.series[3].cells[:2]] == ["–", "7.5%"]


def test_trend_table_has_the_same_percentages(nights):
    night = nights[2]
    table = section(night).find("table", id="trend-table")
    heads = [th.words() for th in table.find("thead").find_all("th")]
    assert heads[1:] == ["19 Nov 2026", "20 Nov 2026", "21 Nov 2026 this run"]
    trend = night.trend.with_columns(pl.col("episodes", "compliant").cast(pl.Int64))
    runs = trend.select("run_id", "started").unique(maintain_order=True).rows()
    for tr in table.find("tbody").find_all("tr"):
        gid = tr.find("th").words()
        cells = [td.attrs["data-percent"] for td in tr.find_all("td")]
        expected = []
        for run_id, started in runs:
            row = trend.filter((pl.col("guidance_id") == gid) & (pl.col("run_id") == run_id)
                               & (pl.col("started") == started))
            expected.append(f"{row['compliant'][0] / row['episodes'][0]:.1%}" if row.height else "–")
        assert cells == expected
    assert [td.words() for td in table.find("tr", data_guidance="IPG319").find_all("td")] == \
        ["50.0% 1 of 2", "50.0% 1 of 2", "100.0% 2 of 2"]


def test_two_runs_are_enough_for_a_chart(nights):
    svg = section(nights[1]).find("svg", role="img")
    assert len(points(svg.find("polyline", data_guidance="IPG319"))) == 2


def test_the_chart_needs_no_style_attribute_and_no_network(nights):
    dom = nights[2].dom
    assert not [n for n in dom.iter() if "style" in n.attrs]  # the CSP allows no inline style attributes
    assert not [n for n in dom.iter() if any(k in n.attrs for k in ("href", "xlink:href")) and n.tag != "a"]
    assert {n.tag for n in dom.iter()} <= PAGE_TAGS | SVG_TAGS


# --- Caps and escaping ---------------------------------------------------------------------------


def test_cap_shows_true_totals_and_points_to_changes_csv(tmp_path, nights):
    out = Path(shutil.copytree(nights[1].out, tmp_path / "out"))
    dom = parse_html(render_report(out, load_catalogue(), findings_cap=1).read_text(encoding="utf-8"))
    changes = read_frame(out, "changes.csv")
    counts = dict(changes.group_by("change").len().iter_rows())
    rows = dom.find("table", id="changes-table").find("tbody").find_all("tr")
    assert sorted(tr.attrs["data-change"] for tr in rows) == sorted(counts)  # one of each kind
    callout = dom.find("section", id="changes").find("div", class_="callout cap").words()
    assert f"Showing {len(counts)} of {changes.height} changes" in callout
    assert "changes.csv" in callout
    for kind, label in (("new", "new"), ("still-open", "still open"), ("resolved", "resolved")):
        assert f"1 of {counts[kind]} {label}" in callout
    assert big_numbers(dom.find("section", id="changes"))["Still open"] == counts["still-open"]


def test_hostile_episode_id_from_a_run_is_text(nights):
    night = nights[2]
    assert HOSTILE_ID in set(night.changes["episode_id"])
    row = next(tr for tr in change_rows(night) if tr.attrs["data-episode-id"] == HOSTILE_ID)
    assert row.find("th").words() == HOSTILE_ID
    assert "<img src=x" not in night.html and "&lt;img src=x onerror=alert(3)&gt;&#34;&amp;" in night.html
    assert not [n for n in night.dom.iter() if n.tag == "img" or any(k.startswith("on") for k in n.attrs)]


def test_hostile_values_in_changes_and_trend_are_escaped(tmp_path):
    script, braces = HOSTILE
    out = hostile_outputs(tmp_path / "out")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary["changes"] = {"previous_run": script, "previous_started": braces, "new": 1, "resolved": 1,
                          "still-open": 1}
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    pl.DataFrame([
        {"episode_id": script, "guidance_id": "IPG319", "rule_id": "levels-not-second", "position": "2",
         "change": "new", "first_seen": "2026-11-21"},
        {"episode_id": braces, "guidance_id": "", "rule_id": script, "position": script, "change": "still-open",
         "first_seen": braces},
        {"episode_id": f"{script}{braces}", "guidance_id": braces, "rule_id": script, "position": "",
         "change": "resolved", "first_seen": script},
    ]).write_csv(out / "changes.csv")
    pl.DataFrame([
        {"run_id": script, "started": braces, "guidance_id": script, "episodes": "2", "compliant": "1"},
        {"run_id": "", "started": "2026-11-21T02:00:00+00:00", "guidance_id": script, "episodes": "2",
         "compliant": "2"},
    ]).write_csv(out / "trend.csv")
    html = render_report(out, load_catalogue()).read_text(encoding="utf-8")
    dom = parse_html(html)
    assert len(dom.find_all("script")) == 1 and not dom.find("script").attrs
    assert not [n for n in dom.iter() if any(k.startswith("on") for k in n.attrs)]
    assert {n.tag for n in dom.iter()} <= PAGE_TAGS | SVG_TAGS
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    shown = " ".join(n.words() for n in dom.iter() if n.tag not in ("style", "script", "html", "#document", "body"))
    assert "49" not in shown  # {{ 7*7 }} was never evaluated
    rows = dom.find("table", id="changes-table").find("tbody").find_all("tr")
    assert [tr.attrs["data-episode-id"] for tr in rows] == [script, braces, f"{script}{braces}"]
    assert rows[0].find("th").words() == script
    section_text = dom.find("section", id="changes").words()
    assert f"Compared with the previous run over the same scope, {script}, started {braces}." in section_text
    svg = dom.find("section", id="changes").find("svg", role="img")
    assert svg.find("polyline").attrs["data-guidance"] == script
    assert script in svg.find("desc").words() and braces in dom.find("table", id="trend-table").words()
    assert "{{ 7*7 }}" in section_text


# --- In a browser ---------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_change_filter_in_the_address_hides_other_rows(tmp_path, nights):
    from tests.test_report_browser import CHROMIUM, chromium, page_messages

    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    night = nights[1]
    run = chromium(tmp_path, (night.out / "report.html").as_uri() + "#filter=change:new", "--dump-dom")
    assert page_messages(run.stderr) == []
    dom = parse_html(run.stdout)
    rows = dom.find("table", id="changes-table").find("tbody").find_all("tr")
    assert {tr.attrs["data-change"] for tr in rows if not tr.hidden} == {"new"}
    assert all(tr.hidden for tr in rows if tr.attrs["data-change"] != "new")
    findings = dom.find("table", id="findings-table").find("tbody").find_all("tr")
    assert {tr.attrs["data-change"] for tr in findings if not tr.hidden} == {"new"}
    assert dom.find("html").attrs.get("data-js") == "ready"
    counter = dom.find("span", data_filter_count="changes").words()
    assert counter == f"{sum(not tr.hidden for tr in rows)} of {len(rows)} changes rows"
