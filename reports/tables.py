"""The tables' rows as HTML, built by polars string expressions (reports.markup): the findings
table's (_findings.html, up to a few thousand rows of eleven cells each) and the breakdowns' by
provider, specialty, consultant and coder (_breakdown_tables.html, up to 2,200 rows)."""

from __future__ import annotations

from functools import cache
from urllib.parse import quote

import polars as pl

from reports.cards import specialty_name
from reports.common import (
    BREAKDOWN_CAP,
    CHANGE_ICONS,
    CHANGE_LABELS,
    MIN_N,
    NOT_RECORDED,
    SEVERITY_ICONS,
    SEVERITY_LABELS,
)
from reports.markup import badge, escaped, grouped_digits, html, looked_up, when
from reports.page import FILTERED, Rows
from reports.text import number, percent


def finding_rows(shown: pl.DataFrame, anchors: dict[str, str], show_first_seen: bool) -> Rows:
    """One `<tr>` per finding of `shown` (the bundle's findings, capped), in its order; a finding
    whose episode has a worklist card links to it (`anchors`: episode id -> card id)."""
    if shown.is_empty():
        return Rows()
    cards = pl.DataFrame({"episode_id": list(anchors), "href": list(anchors.values())},
                         schema={"episode_id": pl.String, "href": pl.String})
    frame = (
        shown.lazy()
        .join(cards.lazy(), on="episode_id", how="left", maintain_order="left")
        .with_columns(pl.col(pl.String).fill_null(""))
        .select(_row(show_first_seen).alias("html"), *FILTERED)
        .collect()
    )
    return Rows.of(frame)


@cache  # built once per process: a page is built up to three times while its size is fitted
def _row(show_first_seen: bool) -> pl.Expr:
    text = {c: escaped(pl.col(c)) for c in ("episode_id", "guidance_id", "rule_id", "severity", "status", "change",
                                            "provider", "specialty", "consultant", "coder", "first_seen")}
    status, change = pl.col("status"), pl.col("change")
    change_label = escaped(change.replace_strict(CHANGE_LABELS, default=change, return_dtype=pl.String))
    episode = pl.when(pl.col("href") != "").then(
        html('<a href="#', escaped(pl.col("href")), '">', text["episode_id"], "</a>")).otherwise(text["episode_id"])
    first_seen = html(
        '<td class="date" data-csv="', text["first_seen"], when(change != "", " (", change_label, ")"), '">',
        escaped(pl.when(pl.col("first_seen") != "").then(pl.col("first_seen")).otherwise(pl.lit("–"))),
        when(change != "", "<br>", badge("ch", change, CHANGE_ICONS, CHANGE_LABELS)), "</td>",
    )
    return html(
        '<tr data-filter-item="findings" data-guidance="', text["guidance_id"], '" data-rule="', text["rule_id"],
        '" data-severity="', text["severity"], '" data-status="', text["status"], '" data-pair="',
        text["guidance_id"], ":", text["status"], '"',
        html(' data-change="', text["change"], '"') if show_first_seen else "",
        ' data-episode-id="', text["episode_id"], '" data-provider="', text["provider"], '" data-specialty="',
        text["specialty"], '" data-consultant="', text["consultant"], '" data-coder="', text["coder"],
        '"><th scope="row" class="key">', episode, "</th><td>",
        escaped(pl.when(pl.col("guidance_id") != "").then(pl.col("guidance_id")).otherwise(pl.lit("–"))),
        "</td><td><code>", text["rule_id"], '</code></td><td data-csv="', text["severity"],
        when(status != "", " (", text["status"], ")"), '">', badge("sev", pl.col("severity"), SEVERITY_ICONS,
                                                                   SEVERITY_LABELS),
        when(status != "", "<br><small>", text["status"], "</small>"), '</td><td class="n">',
        escaped(pl.col("position")), '</td><td class="code">', escaped(pl.col("code")), "</td><td>",
        escaped(pl.col("expected")), "</td><td>", escaped(pl.col("message")), "</td><td>", text["provider"],
        "</td><td>", text["specialty"], "</td><td>", text["consultant"], "</td>",
        first_seen if show_first_seen else "", "</tr>\n",
    )


def breakdown_rows(breakdowns: pl.DataFrame) -> pl.DataFrame:
    """(column, html, rest): one `<tr>` per row of the bundle's breakdowns (reports.bundle: per
    column, most errors first), in its order; `rest`: past the table's first BREAKDOWN_CAP rows,
    held hidden for its search box. What is Python (the drill-down links' URL quoting, as jinja2's
    `urlencode` writes it; percentages; specialty names) is computed once per distinct value."""
    frame = breakdowns.with_columns(judged=pl.col("matched") - pl.col("predates") - pl.col("date_uncertain"))
    return (
        frame.lazy()
        .join(looked_up(frame, ["value"], "quoted", lambda value: quote(value, safe="/")), on="value", how="left",
              maintain_order="left")
        .join(looked_up(frame, ["compliant", "judged"], "percent",
                        lambda compliant, judged: percent(compliant, judged) if judged >= MIN_N else "–"),
              on=["compliant", "judged"], how="left", maintain_order="left")
        .join(looked_up(frame.filter(pl.col("column") == "specialty"), ["column", "value"], "name",
                        lambda _, value: specialty_name(value) if value else ""),
              on=["column", "value"], how="left", maintain_order="left")
        .with_columns(pl.col("name").fill_null(""), rest=pl.int_range(pl.len()).over("column") >= BREAKDOWN_CAP)
        .select("column", _breakdown_row().alias("html"), "rest")
        .collect()
    )


@cache
def _breakdown_row() -> pl.Expr:
    """As _breakdown_tables.html wrote each row: every count but 0 a link to the lists filtered to
    this value, and a percentage too few judged episodes leave out titled so; "(not recorded)" has
    neither (there is no filter for a missing value)."""
    value, name = pl.col("value"), pl.col("name")
    query = html(escaped(pl.col("column")), ":", escaped(pl.col("quoted")))
    counts = {c: grouped_digits(pl.col(c)) for c in ("matched", "compliant", "non_compliant", "superseded",
                                                     "findings", "errors", "warnings")}

    def drill(count: str, filtered: str, target: str) -> pl.Expr:
        return pl.when(pl.col(count) == 0).then(counts[count]).otherwise(html(
            '<a class="drill" href="#filter=', query, filtered, "&amp;in=", target, '" data-drill="', target, '">',
            counts[count], "</a>"))

    def cells(*parts: pl.Expr) -> pl.Expr:
        return html(*(piece for part in parts for piece in ('<td class="n">', part, "</td>")))

    percentage = escaped(pl.col("percent"))
    linked = html(
        cells(counts["matched"], drill("compliant", ",status:compliant", "worklist"),
              drill("non_compliant", ",status:non-compliant", "worklist"), drill("superseded", ",status:superseded", "check")),
        '<td class="n"', when(pl.col("judged") < MIN_N, f' title="fewer than {number(MIN_N)} judged episodes: no percentage"'),
        ">", percentage, "</td>",
        cells(drill("findings", "", "findings"), drill("errors", ",severity:error", "findings"),
              drill("warnings", ",severity:warning", "findings")))
    plain = html(cells(counts["matched"], counts["compliant"], counts["non_compliant"], counts["superseded"],
                       percentage, counts["findings"], counts["errors"], counts["warnings"]))
    return html(
        '<tr data-value="', escaped(value), '"', when(pl.col("rest"), " data-rest hidden"),
        '><th scope="row" class="key code"><bdi>',
        escaped(pl.when(value != "").then(value).otherwise(pl.lit(NOT_RECORDED))), "</bdi>",
        when(name != "", ' <span class="muted small">', escaped(name), "</span>"), "</th>\n",
        pl.when(value != "").then(linked).otherwise(plain), "\n</tr>\n",
    )
