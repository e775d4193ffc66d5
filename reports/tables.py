"""The findings table's rows as HTML (_findings.html), built by polars string expressions
(reports.markup): up to a few thousand rows of eleven cells each."""

from __future__ import annotations

import polars as pl

from reports.common import CHANGE_ICONS, CHANGE_LABELS, SEVERITY_ICONS, SEVERITY_LABELS
from reports.markup import badge, escaped, html, when
from reports.page import FILTERED, Rows


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
