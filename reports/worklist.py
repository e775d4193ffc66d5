"""The worklist: one row per episode to act on, with its recorded-vs-expected card on demand.

Two lists are built from the same findings and episode statuses:

- the worklist: every episode with an error or a warning (from a guidance's code set or from the
  general OPCS-4 rules), or a non-compliant pair; errors first;
- the "check against the replacement" list: episodes whose only reason to be looked at is that
  they follow guidance NICE has replaced. They are never mixed into what coders must fix.

Each list is capped per reason (rule, or status for a pair without a finding), with true totals.
"""

from __future__ import annotations

import polars as pl

from audit.catalogue import Catalogue
from audit.rules import ERROR, SUPERSEDED
from reports.cards import listed
from reports.common import NON_COMPLIANT, WORKSHEET_STATUSES, cap_rows, capped_per
from reports.page import Worksheet
from reports.text import number

FIX, CHECK = "worklist", "check"


def reasons(findings: pl.DataFrame, episodes: pl.DataFrame) -> pl.DataFrame:
    """(episode_id, reason, severity, list): why each episode is listed, and in which list.

    An episode is in the worklist when any reason is an error or a warning; it is on the
    superseded list when every reason is superseded guidance."""
    by_rule = findings.select("episode_id", pl.col("rule_id").alias("reason"), "severity")
    by_status = (
        episodes.filter(pl.col("status").is_in(WORKSHEET_STATUSES))
        .join(by_rule, on="episode_id", how="anti")
        .select(
            "episode_id",
            pl.concat_str(pl.lit("status: "), pl.col("status")).alias("reason"),
            pl.when(pl.col("status") == NON_COMPLIANT).then(pl.lit(ERROR)).otherwise(pl.lit(SUPERSEDED))
            .alias("severity"),
        )
    )
    frame = pl.concat([by_rule, by_status])
    return (
        frame.with_columns(
            pl.when((pl.col("severity") == SUPERSEDED).all().over("episode_id"))
            .then(pl.lit(CHECK)).otherwise(pl.lit(FIX)).alias("list"),
            (pl.col("severity") == ERROR).any().over("episode_id").alias("has_error"),
        )
        .unique(["episode_id", "reason"])
        .sort("reason", pl.col("has_error").not_(), "episode_id")
    )


def build_lists(bundle, catalogue: Catalogue, cap: int, with_changes: bool) -> tuple[Worksheet, Worksheet, dict[str, str]]:
    """(worklist, superseded-only list, episode id -> card anchor), from a run's bundle
    (reports.bundle): its sample of reasons holds every reason of each episode listed at the
    bundle's cap, so the first `cap` per reason of it are the first `cap` of the whole run."""
    why = bundle["reasons"]
    chosen = {kind: capped_per(why.filter(pl.col("list") == kind), "reason", cap) for kind in (FIX, CHECK)}
    order = {
        kind: list(dict.fromkeys(
            frame.sort(pl.col("has_error").not_(), "episode_id")["episode_id"].to_list()))
        for kind, frame in chosen.items()
    }
    anchors = {eid: f"ep-{n}" for n, eid in enumerate(order[FIX] + order[CHECK], start=1)}
    totals = bundle["reason_totals"]
    html = listed(order, anchors, bundle, catalogue, with_changes)

    def listing(kind: str) -> Worksheet:
        cards = html[kind]
        total = int(bundle.facts["list_episodes"].get(kind, 0))
        per_reason = dict(totals.filter(pl.col("list") == kind).select("reason", "episodes").iter_rows())
        # per reason: episodes with it, and how many of those are listed (chosen for any reason)
        shown = why.filter(pl.col("list") == kind).join(chosen[kind].select("episode_id").unique(),
                                                          on="episode_id", how="semi")
        return Worksheet(
            kind=kind, rows=cards, total=number(total), shown=number(cards.count), cap=number(cap),
            capped=cards.count < total, per_rule=cap_rows(per_reason, shown, "reason"), total_count=total,
        )

    return listing(FIX), listing(CHECK), anchors
