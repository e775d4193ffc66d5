"""Stage 4: find each occurrence of a guidance's index code, with its qualifiers and date.

For an index code at position p, its **qualifiers** are the codes after p up to the next action
code (a code outside Chapters Y and Z and not V55): the levels, method, approach, site and
laterality codes that describe that action (NHS Digital's PYZ sequencing; NICE's spinal pages).
`following` is every valid code after p, for components that may stand later in the episode.

Only episodes that carry an index code are reshaped; everything else is untouched.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from audit import codes
from audit.catalogue import Catalogue, CodeSet, Component

OCCURRENCE_KEY = ["episode_id", "guidance_id", "position"]
# Where an episode's date came from, in the order they are tried.
DATE_SOURCES = ("procedure_date", "episode_end", "episode_start", "admission_date")
AS_OF = "as-of"


def component_present(component: Component) -> pl.Expr:
    """True where one of the component's codes is among the listed codes."""
    column = "following" if component.scope == "episode" else "qualifiers"
    return (
        pl.col(column)
        .list.eval(codes.any_of(component.patterns, pl.element()))
        .list.any()
        .fill_null(False)
    )


def _sequenced(procedures: pl.DataFrame, index_codes: pl.Expr) -> pl.DataFrame:
    """Valid codes of the episodes carrying an index code, with their place in the sequence."""
    candidates = procedures.filter(
        (pl.col("code_kind") == codes.PROCEDURE) & index_codes
    ).select("episode_id").unique()
    in_order = (
        procedures.filter(pl.col("code_kind") == codes.PROCEDURE)
        .join(candidates, on="episode_id", how="semi")
        .sort("episode_id", "position")
    )
    action = codes.is_action(pl.col("code"))
    seq = pl.int_range(pl.len()).over("episode_id")
    return in_order.with_columns(
        seq=seq.cast(pl.Int32),
        is_action=action,
        next_code=pl.col("code").shift(-1).over("episode_id"),
        next_position=pl.col("position").shift(-1).over("episode_id"),
    ).with_columns(
        # Sequence index of the next action after this row (or the episode's end).
        next_action=pl.when(pl.col("is_action")).then(pl.col("seq")).shift(-1)
        .backward_fill().over("episode_id")
        .fill_null(pl.len().over("episode_id").cast(pl.Int32)),
    )


def find_occurrences(procedures: pl.DataFrame, catalogue: Catalogue, as_of: date) -> pl.DataFrame:
    """One row per (episode, guidance, index position), for every code set that matches."""
    sets = [(g, cs) for g in catalogue.auditable() for cs in g.code_sets]
    index_codes = pl.lit(False)
    for _, code_set in sets:
        index_codes = index_codes | codes.any_of(code_set.index.patterns, pl.col("code"))
    sequenced = _sequenced(procedures, index_codes)
    if sequenced.height == 0:
        return empty_occurrences()
    episode_lists = sequenced.group_by("episode_id").agg(
        pl.col("code").alias("all_codes"), pl.col("position").alias("all_positions")
    )
    occurrences = []
    for order, (guidance, code_set) in enumerate(sets):
        hits = sequenced.filter(codes.any_of(code_set.index.patterns, pl.col("code")))
        if hits.height == 0:
            continue
        occurrences.append(
            hits.join(episode_lists, on="episode_id")
            .with_columns(_qualifier_columns())
            .filter(_identified(code_set))
            .with_columns(
                guidance_id=pl.lit(guidance.id),
                code_set=pl.lit(code_set.name),
                set_order=pl.lit(order, pl.Int32),
            )
        )
    if not occurrences:
        return empty_occurrences()
    found = (
        pl.concat(occurrences)
        # One code set per occurrence: the first in catalogue order that matches.
        .sort("set_order")
        .unique(OCCURRENCE_KEY, keep="first")
        .with_columns(_episode_date(as_of))
    )
    return found.select(OCCURRENCE_COLUMNS).sort(OCCURRENCE_KEY)


def _qualifier_columns() -> list[pl.Expr]:
    start = pl.col("seq") + 1
    count = pl.col("next_action") - start
    return [
        pl.col("all_codes").list.slice(start, count).alias("qualifiers"),
        pl.col("all_positions").list.slice(start, count).alias("qualifier_positions"),
        pl.col("all_codes").list.slice(start).alias("following"),
        pl.col("all_positions").list.slice(start).alias("following_positions"),
    ]


def _identified(code_set: CodeSet) -> pl.Expr:
    expr = pl.lit(True)
    for component in code_set.components:
        if component.identifies and component.role != "index":
            expr = expr & component_present(component)
    return expr


def _episode_date(as_of: date) -> list[pl.Expr]:
    """The index code's procedure date; else episode end, start, admission; else the as-of date."""
    source = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    for name in DATE_SOURCES:
        source = source.when(pl.col(name).is_not_null()).then(pl.lit(name))
    return [
        pl.coalesce(*[pl.col(n) for n in DATE_SOURCES], pl.lit(as_of)).alias("episode_date"),
        source.otherwise(pl.lit(AS_OF)).alias("date_source"),
    ]


OCCURRENCE_SCHEMA = {
    "episode_id": pl.String,
    "guidance_id": pl.String,
    "code_set": pl.String,
    "position": pl.Int32,
    "code": pl.String,
    "next_code": pl.String,
    "next_position": pl.Int32,
    "qualifiers": pl.List(pl.String),
    "qualifier_positions": pl.List(pl.Int32),
    "following": pl.List(pl.String),
    "following_positions": pl.List(pl.Int32),
    "episode_date": pl.Date,
    "date_source": pl.String,
    "provider": pl.String,
    "specialty": pl.String,
    "consultant": pl.String,
    "source_file": pl.String,
}
OCCURRENCE_COLUMNS = list(OCCURRENCE_SCHEMA)


def empty_occurrences() -> pl.DataFrame:
    return pl.DataFrame(schema=OCCURRENCE_SCHEMA)
