"""The worklists' rows and cards as HTML, built by polars string expressions over the bundle's
card frames (findings, episode statuses and procedure sequences of the listed episodes).

A big run lists about a thousand cards, 3 MB of the page. Built as Python objects and rendered by
jinja2 they cost 0.35 s (160,000 autoescapes); built here, column by column, both lists in one
query, 0.09 s. The HTML is what _worklist.html wrote before, byte for byte. Every value from the
data passes through `reports.markup.escaped`; what is computed in Python (titles, alignments) is
computed once per distinct value.
"""

from __future__ import annotations

import csv
from functools import cache, lru_cache
from pathlib import Path

import polars as pl
from markupsafe import escape

from audit.catalogue import Catalogue
from audit.rules import ERROR, SUPERSEDED, WARNING
from reports import align
from reports.common import (
    LINE_LABELS,
    NON_COMPLIANT,
    SEVERITY_ICONS,
    SEVERITY_LABELS,
    STATUS_ICONS,
    STATUS_LABELS,
    as_int,
    rule_title,
)
from reports.markup import badge, escaped, grouped_digits, html, looked_up, when
from reports.page import FILTERED, ListedEpisodes

KIND_TITLES = {"invalid": "not an OPCS-4 code", "no-operation": "no operation performed", "not-known": "not known"}
TREATMENT_FUNCTIONS = Path(__file__).resolve().parent / "treatment_functions.csv"
NO_SEQUENCE = '<tr><td colspan="3">The procedure sequence is not in the output files.</td></tr>\n'
NO_GUIDANCE = ('<p class="pair-note">No NICE guidance matched this episode; its findings come from the general '
               'OPCS-4 rules.</p>\n')
SEQUENCE_HEAD = ('<table class="data seq"><caption>Procedure sequence as coded</caption><thead><tr><th scope="col">'
                 'Pos</th><th scope="col">Code</th><th scope="col">Title</th></tr></thead><tbody>\n')
COMPARISON_HEAD = ('<thead><tr><th scope="col">Recorded</th><th scope="col">Expected</th><th scope="col">Check</th>'
                   '</tr></thead><tbody>\n')


@cache
def treatment_functions() -> dict[str, tuple[str, str]]:
    """Treatment function code -> (NHS Data Dictionary name, confidence V / I / U)."""
    with TREATMENT_FUNCTIONS.open(encoding="utf-8", newline="") as handle:
        return {row["code"]: (row["name"], row["confidence"]) for row in csv.DictReader(handle)}


def specialty_name(code: str) -> str:
    """"Trauma and Orthopaedic Service", with "(name not verified)" where the table says so."""
    name, confidence = treatment_functions().get(code.strip(), ("", ""))
    if not name:
        return ""
    return name if confidence == "V" else f"{name} (name not verified)"


def code_title(catalogue: Catalogue, code: str) -> str:
    """The code's title, or its category's (marked with the category) for a four-character code."""
    key = code.replace(".", "")
    if key in catalogue.titles:
        return catalogue.titles[key]
    category = f"{key[:3]}.-"
    if len(key) == 4 and category in catalogue.titles:
        return f"{catalogue.titles[category]} ({category})"
    return ""


@lru_cache(maxsize=4096)
def _aligned_html(actual: str, expected: str) -> str:
    """Recorded against expected, one table row per line. Cached: thousands of cards share a few
    hundred (recorded, expected) sequences."""
    rows = []
    for line in align.align(actual, expected):
        if line.state == align.OK:
            rows.append(f"<tr><td>{escape(line.recorded)}</td><td>{escape(line.expected)}</td><td>✓</td></tr>\n")
        else:
            rows.append(f'<tr class="x l-{escape(line.state)}"><td>{escape(line.recorded or "—")}</td>'
                        f'<td>{escape(line.expected or "—")}</td><td>⚠ {escape(LINE_LABELS[line.state])}</td></tr>\n')
    return "".join(rows)


def _first_given(column: str) -> pl.Expr:
    return pl.col(column).filter(pl.col(column) != "").first()


def _with_looked_up(frame: pl.DataFrame, keys: list[str], name: str, look_up) -> pl.LazyFrame:
    return frame.lazy().join(looked_up(frame, keys, name, look_up), on=keys, how="left", maintain_order="left")


# The expressions below depend on nothing but their arguments: built once, they are reused for
# every list of every page (a page is built up to three times, with two lists each).

@cache
def _flag_parts() -> tuple[pl.Expr, ...]:
    severity = pl.col("severity")
    return (
        pl.col("mark").str.join(", ").alias("flags_text"),
        html('<br><span class="flag">', escaped(pl.col("mark")), "</span>").str.join("").alias("flags_html"),
        pl.when((severity == ERROR).any()).then(pl.lit(ERROR))
        .when((severity == SUPERSEDED).any()).then(pl.lit(SUPERSEDED))
        .when((severity == WARNING).any()).then(pl.lit(WARNING))
        .otherwise(pl.lit("")).alias("level"),
    )


def _flags(findings: pl.DataFrame) -> pl.LazyFrame:
    """Per (episode, position): the rules flagged there ("rule", or "rule (warning)" below an
    error), each once, in the findings' order, and the worst severity among them."""
    return (
        findings.lazy().filter(pl.col("position") != "")
        .with_columns(mark=pl.when(pl.col("severity").is_in([ERROR, SUPERSEDED])).then(pl.col("rule_id"))
                      .otherwise(pl.format("{} ({})", "rule_id", "severity")))
        .unique(["episode_id", "position", "mark"], keep="first", maintain_order=True)
        .group_by("episode_id", "position", maintain_order=True).agg(*_flag_parts())
    )


@cache
def _sequence_row() -> pl.Expr:
    title = (pl.when(pl.col("code_kind") == "procedure").then(pl.col("code_title"))
             .otherwise(pl.col("code_kind").replace_strict(KIND_TITLES, default="", return_dtype=pl.String)))
    title = escaped(pl.when(title != "").then(title).otherwise(pl.lit("–")))
    position, code = escaped(pl.col("position")), escaped(pl.col("code"))
    return (
        pl.when(pl.col("flags_text").is_not_null())
        .then(html('<tr class="off off-', escaped(pl.col("level")), '" aria-label="Position ', position, ", ",
                   code, ", flagged: ", escaped(pl.col("flags_text")), '"><th scope="row">', position,
                   "</th><td>⚠ ", code, "</td><td>", title, pl.col("flags_html"), "</td></tr>\n"))
        .otherwise(html('<tr><th scope="row">', position, "</th><td>", code, "</td><td>", title, "</td></tr>\n"))
    ).str.join("").alias("sequence")


def _sequences(sequences: pl.DataFrame, findings: pl.DataFrame, catalogue: Catalogue) -> pl.LazyFrame:
    """episode_id, sequence: the rows of each episode's "procedure sequence as coded" table."""
    return (
        _with_looked_up(sequences, ["code"], "code_title", lambda code: code_title(catalogue, code))
        .join(_flags(findings), on=["episode_id", "position"], how="left", maintain_order="left")
        .group_by("episode_id", maintain_order=True).agg(_sequence_row())
    )


@cache
def _pair_parts() -> tuple[pl.Expr, ...]:
    status, code_set = pl.col("status"), pl.col("code_set")
    date_source = pl.col("date_source").str.replace_all("_", " ", literal=True)
    guidance = escaped(pl.col("guidance_id"))
    status_badge = badge("st", status, STATUS_ICONS, STATUS_LABELS)
    table = html(
        '<table class="data cmp" data-guidance-id="', guidance, '"><caption>', guidance,
        when(code_set != "", " · ", escaped(code_set)), ": recorded vs expected</caption>", COMPARISON_HEAD,
        pl.col("lines"), '</tbody></table>\n<p class="pair-note">', status_badge, " Dated ",
        escaped(pl.when(pl.col("episode_date") != "").then(pl.col("episode_date")).otherwise(pl.lit("–"))),
        when(date_source != "", " (", escaped(date_source), ")"),
        " · ", escaped(pl.col("errors")), " error(s), ", escaped(pl.col("warnings")), " warning(s)</p>\n",
    )
    return (
        table.str.join("").alias("comparisons"),
        escaped(pl.format("{} {}", "guidance_id", "status")).str.join("; ").alias("pair_csv"),
        html('<span class="pair">', guidance, " ", status_badge, "</span>").str.join("").alias("pair_cell"),
        status.unique().sort().str.join(" ").alias("status_tokens"),
        pl.format("{}:{}", "guidance_id", "status").sort().str.join(" ").alias("pair_tokens"),
        pl.col("episode_date").first().alias("pair_date"),
        (status == NON_COMPLIANT).any().alias("any_non_compliant"),
    )


def _pairs(pairs: pl.DataFrame) -> pl.LazyFrame:
    """Per episode: its comparison tables, the row's guidance cell, and the filter's tokens."""
    return (_with_looked_up(pairs, ["actual_sequence", "expected_sequence"], "lines", _aligned_html)
            .group_by("episode_id", maintain_order=True).agg(*_pair_parts()))


@cache
def _finding_parts() -> tuple[tuple[pl.Expr, ...], tuple[pl.Expr, ...]]:
    """(per episode, per episode over each rule's first finding)."""
    severity, change = pl.col("severity"), pl.col("change")
    item = html(
        '<li data-rule="', escaped(pl.col("rule_id")), '">', badge("sev", severity, SEVERITY_ICONS, SEVERITY_LABELS),
        ' <b class="rule">', escaped(pl.col("rule_id")), "</b>",
        when(pl.col("guidance_id") != "", " ", escaped(pl.col("guidance_id"))),
        when(pl.col("position") != "", " · pos ", escaped(pl.col("position"))),
        " — <bdi>", escaped(pl.col("message")), "</bdi>",
        when(pl.col("expected") != "", ' <span class="muted">Expected: <bdi>', escaped(pl.col("expected")),
             "</bdi></span>"),
        pl.when(change == "new").then(pl.lit(' <span class="seen">first seen in this run</span>'))
        .when((pl.col("first_seen") != "") & (change != ""))
        .then(html(' <span class="seen">open since ', escaped(pl.col("first_seen")), "</span>"))
        .otherwise(pl.lit("")),
        "</li>\n",
    )
    by_episode = (
        item.str.join("").alias("items"),
        (severity == ERROR).sum().alias("error_count"),
        (severity == WARNING).sum().alias("warning_count"),
        pl.when((severity == ERROR).any()).then(pl.lit(ERROR))
        .when((severity == SUPERSEDED).any()).then(pl.lit(SUPERSEDED))
        .when((severity == WARNING).any()).then(pl.lit(WARNING)).alias("worst_finding"),
        pl.col("rule_id").unique().sort().str.join(" ").alias("rule_tokens"),
        severity.unique().sort().str.join(" ").alias("severity_tokens"),
        change.filter(change != "").unique().sort().str.join(" ").alias("change_tokens"),
        _first_given("episode_date").alias("finding_date"),
    )
    by_rule = (
        escaped(pl.col("rule_id")).str.join(" ").alias("rules_csv"),
        html('<span class="rule-ref sev-text-', escaped(severity), '">', escaped(pl.col("rule_title")), " <code>",
             escaped(pl.col("rule_id")), "</code></span>").str.join("<br>").alias("rules_html"),
    )
    return by_episode, by_rule


def _findings(findings: pl.DataFrame) -> pl.LazyFrame:
    """Per episode: its findings' list items, counts, rules, positions and tokens."""
    by_episode, by_rule = _finding_parts()
    # Each rule once, with the severity of its first finding, in the findings' order.
    first = findings.unique(["episode_id", "rule_id"], keep="first", maintain_order=True)
    rules = (_with_looked_up(first, ["rule_id"], "rule_title", rule_title)
             .group_by("episode_id", maintain_order=True).agg(*by_rule))
    numbered = pl.col("position").str.contains(r"^[0-9]+$")
    positions = (
        findings.lazy().filter(pl.col("position") != "").unique(["episode_id", "position"])
        .sort(numbered.not_(), pl.when(numbered).then(as_int("position")).otherwise(0), "position")
        .group_by("episode_id").agg(positions=pl.col("position").str.join(", "))
    )
    return (findings.lazy().group_by("episode_id", maintain_order=True).agg(*by_episode)
            .join(rules, on="episode_id", how="left").join(positions, on="episode_id", how="left"))


def _guidance_tokens(pairs: pl.DataFrame, findings: pl.DataFrame) -> pl.LazyFrame:
    ids = pl.concat([pairs.lazy().select("episode_id", "guidance_id"),
                     findings.lazy().select("episode_id", "guidance_id").filter(pl.col("guidance_id") != "")])
    return ids.group_by("episode_id").agg(guidance_tokens=pl.col("guidance_id").unique().sort().str.join(" "))


def _episode_facts(pairs: pl.DataFrame, findings: pl.DataFrame, carried: tuple[str, ...]) -> pl.LazyFrame:
    """Each episode's provider, specialty, ... : the first value given, its statuses' rows first;
    carried columns from its first row (a status if it has one, else a finding)."""
    columns = ["provider", "specialty", "consultant", "source_file", "local_id", "coder"]
    given = [
        frame.lazy().with_columns(pl.lit(n).alias("_from")).select("episode_id", "_from", *columns, *carried)
        for n, frame in enumerate((pairs, findings))
    ]
    rows = pl.concat(given).sort("_from", maintain_order=True)
    return rows.group_by("episode_id").agg(
        *(_first_given(c) for c in columns), *(pl.col(c).first() for c in carried))


def listed(lists: dict[str, list[str]], anchors: dict[str, str], bundle, catalogue: Catalogue,
           with_changes: bool) -> dict[str, ListedEpisodes]:
    """The rows and cards of each list (kind -> its episode ids, in order; an episode is in one
    list), built in one query: most of a list's cost is fixed, not per card."""
    order = pl.DataFrame(
        [(kind, e, anchors[e]) for kind, ids in lists.items() for e in ids],
        schema={"kind": pl.String, "episode_id": pl.String, "anchor": pl.String}, orient="row")
    if order.is_empty():
        return dict.fromkeys(lists, ListedEpisodes())
    wanted = order.select("episode_id")
    findings = (bundle["card_findings"].join(wanted, on="episode_id", how="semi")
                .sort(as_int("position"), "rule_id", "guidance_id", "row", nulls_last=True, maintain_order=True))
    pairs = bundle["card_episodes"].join(wanted, on="episode_id", how="semi").sort("guidance_id", maintain_order=True)
    sequences = (bundle["card_sequences"].join(wanted, on="episode_id", how="semi")
                 .sort(as_int("position"), maintain_order=True))
    carried = tuple(bundle.facts["carried"])
    specialties = pl.concat([pairs.select("specialty"), findings.select("specialty")])
    frame = (
        order.lazy()
        .join(_episode_facts(pairs, findings, carried), on="episode_id", how="left", maintain_order="left")
        .join(_findings(findings), on="episode_id", how="left", maintain_order="left")
        .join(_pairs(pairs), on="episode_id", how="left", maintain_order="left")
        .join(_sequences(sequences, findings, catalogue), on="episode_id", how="left", maintain_order="left")
        .join(_guidance_tokens(pairs, findings), on="episode_id", how="left", maintain_order="left")
        .with_columns(
            pl.col(pl.String).fill_null(""),
            pl.col("error_count", "warning_count").fill_null(0),
            pl.col("any_non_compliant").fill_null(False),
            has_pairs=pl.col("pair_cell").is_not_null(),
        )
        .with_columns(
            date=pl.when(pl.col("has_pairs")).then(pl.col("pair_date")).otherwise(pl.col("finding_date")),
            # a list has a local id (or coder) column when any of its episodes has one
            show_local_id=(pl.col("local_id") != "").any().over("kind"),
            show_coder=(pl.col("coder") != "").any().over("kind"),
        )
        .join(looked_up(specialties, ["specialty"], "specialty_name", specialty_name), on="specialty",
              how="left", maintain_order="left")
        .select("kind", _card(carried, with_changes).alias("html"), "show_local_id", "show_coder", *FILTERED)
        .collect()
    )
    result = {}
    for kind in lists:
        rows = frame.filter(pl.col("kind") == kind)
        result[kind] = ListedEpisodes.of(rows, show_local_id=bool(rows["show_local_id"].any()),
                                         show_coder=bool(rows["show_coder"].any()))
    return result


@cache
def _card(carried: tuple[str, ...], with_changes: bool) -> pl.Expr:
    """One episode's `<tbody>`: its worklist row and the card that opens from it (_worklist.html)."""
    col = pl.col
    text = {c: escaped(col(c)) for c in ("episode_id", "provider", "specialty", "consultant", "coder", "local_id",
                                         "source_file", "date", "anchor")}
    counts = {c: grouped_digits(col(c)) for c in ("error_count", "warning_count")}
    worst = (pl.when(col("worst_finding") != "").then(col("worst_finding"))
             .when(col("any_non_compliant")).then(pl.lit(ERROR)).otherwise(pl.lit(SUPERSEDED)))
    specialty = col("specialty_name")
    carried_meta = [html(f" · {escape(c.removeprefix('carry:'))} <b><bdi>",
                          escaped(pl.when(col(c) != "").then(col(c)).otherwise(pl.lit("–"))), "</bdi></b>")
                    for c in carried]
    return html(
        '<tbody class="wl-item w-', escaped(worst), '" data-filter-item="', escaped(col("kind")), '" data-episode-id="',
        text["episode_id"], '" data-guidance="', escaped(col("guidance_tokens")), '" data-rule="',
        escaped(col("rule_tokens")), '" data-severity="', escaped(col("severity_tokens")), '" data-status="',
        escaped(col("status_tokens")), '" data-pair="', escaped(col("pair_tokens")), '"',
        html(' data-change="', escaped(col("change_tokens")), '"') if with_changes else "",
        ' data-provider="', text["provider"], '" data-specialty="', text["specialty"], '" data-consultant="',
        text["consultant"], '"', when(col("coder") != "", ' data-coder="', text["coder"], '"'),
        ' data-date="', text["date"], '" data-errors="', counts["error_count"], '">\n<tr class="wl-row">\n'
        '<td class="tick" data-csv-skip><span class="box print-only" aria-hidden="true">☐</span></td>\n'
        '<th scope="row" class="key code"><a href="#', text["anchor"], '">', text["episode_id"], "</a></th>\n",
        when(col("show_local_id"), '<td class="code">', text["local_id"], "</td>"),
        '<td class="date">', text["date"], '</td>\n<td class="code">', text["provider"], "</td>\n"
        '<td data-csv="', text["specialty"], '"><bdi>', text["specialty"], "</bdi>",
        when(specialty != "", ' <span class="muted small">', escaped(specialty), "</span>"),
        '</td>\n<td class="code">', text["consultant"], "</td>\n",
        when(col("show_coder"), '<td class="code">', text["coder"], "</td>"),
        '<td data-csv="', col("pair_csv"), '">',
        pl.when(col("has_pairs")).then(col("pair_cell")).otherwise(pl.lit('<span class="muted">general rules</span>')),
        '</td>\n<td data-csv="', col("rules_csv"), '">', col("rules_html"), '</td>\n<td class="n">',
        escaped(pl.when(col("positions") != "").then(col("positions")).otherwise(pl.lit("–"))),
        '</td>\n</tr>\n<tr class="wl-card"><td colspan="11">\n<details><summary>Card: ', counts["error_count"],
        " error(s), ", counts["warning_count"], " warning(s) — recorded against expected</summary>\n"
        '<article class="card" id="', text["anchor"], '" data-episode-id="', text["episode_id"], '">\n'
        '<p class="card-meta">File <b><bdi>', text["source_file"], "</bdi></b>",
        when(col("local_id") != "", " · Local id <b><bdi>", text["local_id"], "</bdi></b>"),
        when(col("coder") != "", " · Coder <b><bdi>", text["coder"], "</bdi></b>"),
        *carried_meta,
        '</p>\n<div class="card-body">\n', SEQUENCE_HEAD,
        pl.when(col("sequence") != "").then(col("sequence")).otherwise(pl.lit(NO_SEQUENCE)),
        "</tbody></table>\n<div>\n",
        pl.when(col("has_pairs")).then(col("comparisons")).otherwise(pl.lit(NO_GUIDANCE)),
        '</div>\n</div>\n<ul class="card-findings">\n', col("items"),
        "</ul>\n</article>\n</details>\n</td></tr>\n</tbody>\n",
    )
