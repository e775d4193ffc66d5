"""Stage 4: find each occurrence of a guidance's index code, with its qualifiers and date.

For an index code at position p, its **qualifiers** are the codes after p up to the next action
code (a code outside Chapters Y and Z and not V55): the levels, method, approach, site and
laterality codes that describe that action (NHS Digital's PYZ sequencing; NICE's spinal pages).
`following` is every valid code after p, for components that may stand later in the episode.

An occurrence is audited against a code set only when the episode carries the code set's
identifying evidence (its `identifies` components) and none of its `not_with` codes. Index codes
without that evidence are **possible, not audited**: counted per guidance, never findings (a
generic code such as V52.2 "Destruction of intervertebral disc NEC" does not by itself say which
procedure was done).

Each occurrence also carries the positions of **its operation** (`operation_start` ..
`operation_end`): the index code, its qualifiers, and subsidiary codes coded before it with no
action before them; for a code set with further actions (`scope = "episode"` companions, such as
IPG387's V38.8), up to the end of the last companion action's qualifiers. Errors there count
against the guidance (audit.judge).

Only episodes that carry an index code are reshaped; everything else is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from audit import codes, sequence
from audit.catalogue import Catalogue, CodeSet, Component

OCCURRENCE_KEY = ["episode_id", "guidance_id", "position"]
# Where an episode's date came from, in the order they are tried.
DATE_SOURCES = ("procedure_date", "qualifier_date", "episode_end", "episode_start", "admission_date")
AS_OF = "as-of"
# An operation window open to the end of the episode (positions are at most 999: audit.validate).
LAST_POSITION = 999

# How an occurrence's date stands against its guidance's dates (a date known only to a month or
# year is a window: see `timing_expr`).
PREDATES, DATE_UNCERTAIN, IN_FORCE, SUPERSEDED_TIMING, FUTURE = (
    "predates", "date-uncertain", "in-force", "superseded", "future")


def component_present(component: Component) -> pl.Expr:
    """True where one of the component's codes (or the codes a source accepts for it) is listed."""
    column = "following" if component.scope == "episode" else "qualifiers"
    return (
        pl.col(column)
        .list.eval(codes.any_of(component.accepted, pl.element()))
        .list.any()
        .fill_null(False)
    )


def _sequenced(procedures: pl.DataFrame, index_codes: pl.Expr) -> pl.DataFrame:
    """Valid codes of the episodes carrying an index code, with their place in the sequence."""
    # Which rows hold an index code, tested once: it picks the episodes, then their index rows.
    valid = sequence.in_episode_order(procedures.filter(pl.col("code_kind") == codes.PROCEDURE))
    in_order = sequence.episodes_with(valid.with_columns(is_index=index_codes.fill_null(False)), pl.col("is_index"))
    action = codes.is_action(pl.col("code"))
    # Sorted by episode and position: windows are boundary operations (audit.sequence), run lazily
    # so that polars computes their shared parts once (see audit.sequence).
    return in_order.lazy().with_columns(
        seq=sequence.row_number().cast(pl.Int32),
        is_action=action,
        next_code=sequence.shifted(pl.col("code"), -1),
        next_position=sequence.shifted(pl.col("position"), -1),
    ).with_columns(
        # Sequence index of the next action after this row (or the episode's end).
        next_action=sequence.backward_filled(sequence.shifted(pl.when(pl.col("is_action")).then(pl.col("seq")), -1))
        .fill_null(sequence.episode_length().cast(pl.Int32)),
        # The last position that still describes this row's action: just before the next action.
        window_end=(sequence.backward_filled(
            sequence.shifted(pl.when(pl.col("is_action")).then(pl.col("position")), -1)) - 1)
        .fill_null(LAST_POSITION).cast(pl.Int32),
        actions_before=sequence.cumulative_sum(pl.col("is_action").cast(pl.Int32)) - pl.col("is_action").cast(pl.Int32),
    ).collect()


@dataclass(frozen=True)
class Matches:
    occurrences: pl.DataFrame  # audited occurrences (OCCURRENCE_SCHEMA)
    possible: pl.DataFrame  # index codes without their evidence (POSSIBLE_SCHEMA), per episode and guidance


def find_occurrences(procedures: pl.DataFrame, catalogue: Catalogue, as_of: date) -> pl.DataFrame:
    """One row per (episode, guidance, index position), for every code set that matches."""
    return match_guidance(procedures, catalogue, as_of).occurrences


def match_guidance(procedures: pl.DataFrame, catalogue: Catalogue, as_of: date) -> Matches:
    sets = [(g, cs) for g in catalogue.auditable() for cs in g.code_sets]
    index_codes = codes.any_of(tuple(p for _, code_set in sets for p in code_set.index.patterns), pl.col("code"))
    sequenced = _sequenced(procedures, index_codes)
    if sequenced.height == 0:
        return Matches(empty_occurrences(), empty_possible())
    episode_lists = sequenced.group_by("episode_id").agg(
        pl.col("code").alias("all_codes"), pl.col("position").alias("all_positions"),
        pl.col("procedure_date").alias("all_dates"),
    )
    # The rows holding some index code, once: each code set's own test then runs over them only.
    index_rows = sequenced.filter("is_index")
    # Which code sets' index each row holds, for every code set in one query (one filter per code
    # set cost 85 ms of the spinal benchmark's matching, 77 code sets, most matching nothing).
    holds = index_rows.select(codes.any_of(code_set.index.patterns, pl.col("code")).alias(str(order))
                              for order, (_, code_set) in enumerate(sets))
    occurrences, possible = [], []
    for order, (guidance, code_set) in enumerate(sets):
        these = holds.get_column(str(order))
        if not these.any():
            continue
        hits = index_rows.filter(these)
        hits = (
            hits.join(episode_lists, on="episode_id")
            .with_columns(_qualifier_columns())
            .with_columns(_identified(code_set).alias("_identified"))
            .with_columns(
                guidance_id=pl.lit(guidance.id),
                code_set=pl.lit(code_set.name),
                set_order=pl.lit(order, pl.Int32),
            )
        )
        possible.append(hits.filter(~pl.col("_identified")).select("episode_id", "guidance_id", "position"))
        found = hits.filter("_identified")
        occurrences.append(_with_operation(found, code_set, sequenced))
    if not occurrences:
        return Matches(empty_occurrences(), empty_possible())
    found = (
        pl.concat(occurrences)
        .with_columns(_episode_date(as_of))
        .join(guidance_dates(catalogue), on="guidance_id", how="left")
        .with_columns(timing_expr(as_of))
        # One code set per occurrence: the first in catalogue order that matches, first among its
        # key's rows once sorted. One sort, where sorting by code set, deduplicating and sorting
        # by key were three passes (10M episodes' matching, 262,000 hits: 1.05-1.16 -> 0.97-1.00 s).
        .sort(*OCCURRENCE_KEY, "set_order")
    )
    first = pl.any_horizontal(pl.col(c) != pl.col(c).shift(1) for c in OCCURRENCE_KEY).fill_null(True)
    audited = found.filter(first).select(OCCURRENCE_COLUMNS)
    # Possible, not audited: the pair has no audited occurrence at all.
    maybe = (
        pl.concat(possible)
        .join(audited.select("episode_id", "guidance_id"), on=["episode_id", "guidance_id"], how="anti")
        .group_by("episode_id", "guidance_id").agg(pl.col("position").min())
        .sort("episode_id", "guidance_id")
    ) if possible else empty_possible()
    return Matches(audited, maybe.cast(POSSIBLE_SCHEMA))


def _qualifier_columns() -> list[pl.Expr]:
    start = pl.col("seq") + 1
    count = pl.col("next_action") - start
    return [
        pl.col("all_codes").list.slice(start, count).alias("qualifiers"),
        pl.col("all_positions").list.slice(start, count).alias("qualifier_positions"),
        pl.col("all_dates").list.slice(start, count).list.drop_nulls().list.first().alias("qualifier_date"),
        pl.col("all_codes").list.slice(start).alias("following"),
        pl.col("all_positions").list.slice(start).alias("following_positions"),
    ]


def _identified(code_set: CodeSet) -> pl.Expr:
    """The occurrence carries the code set's identifying codes and none of its `not_with` codes."""
    expr = pl.lit(True)
    for component in code_set.components:
        if component.identifies and component.role == "diagnosis":
            expr = pl.lit(False)  # diagnoses are not read: the evidence can never be seen
        elif component.identifies and component.role != "index":
            expr = expr & component_present(component)
    if code_set.not_with:
        other = pl.col("qualifiers").list.eval(codes.any_of(code_set.not_with, pl.element())).list.any()
        expr = expr & ~other.fill_null(False)
    return expr


def _with_operation(found: pl.DataFrame, code_set: CodeSet, sequenced: pl.DataFrame) -> pl.DataFrame:
    """Add operation_start / operation_end: the positions whose errors count against the guidance."""
    found = found.with_columns(
        # Subsidiary codes before the first action of the episode describe no earlier action.
        operation_start=pl.when(pl.col("actions_before") == 0).then(pl.lit(1, pl.Int32))
        .otherwise(pl.col("position")).cast(pl.Int32),
        operation_end=pl.col("window_end"),
    )
    companions = [c for c in code_set.of_role("companion") if c.scope == "episode"]
    if not companions or found.height == 0:
        return found
    patterns = tuple(p for c in companions for p in c.accepted)
    later = (
        found.select("episode_id", pl.col("position").alias("_index"))
        .join(sequenced.filter(codes.any_of(patterns, pl.col("code"))).select("episode_id", "position", "window_end"),
              on="episode_id")
        .filter(pl.col("position") > pl.col("_index"))
        .group_by("episode_id", "_index").agg(pl.col("window_end").max().alias("_companion_end"))
    )
    return (
        found.join(later, left_on=["episode_id", "position"], right_on=["episode_id", "_index"], how="left")
        .with_columns(operation_end=pl.max_horizontal("operation_end", "_companion_end").cast(pl.Int32))
        .drop("_companion_end")
    )


def _episode_date(as_of: date) -> list[pl.Expr]:
    """The index code's procedure date; else the first dated qualifier row (the same operation);
    else episode end, start, admission; else the as-of date."""
    source = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    for name in DATE_SOURCES:
        source = source.when(pl.col(name).is_not_null()).then(pl.lit(name))
    return [
        pl.coalesce(*[pl.col(n) for n in DATE_SOURCES], pl.lit(as_of)).alias("episode_date"),
        source.otherwise(pl.lit(AS_OF)).alias("date_source"),
    ]


# Each guidance's dates, as columns joined to its occurrences (`guidance_dates`): the windows its
# published and replacement dates span (the replacement's null for guidance that is current).
GUIDANCE_DATES = ["_published_start", "_published_end", "_replaced_start", "_replaced_end"]


def guidance_dates(catalogue: Catalogue) -> pl.DataFrame:
    """One row per auditable guidance: its id and `GUIDANCE_DATES`. Joined, not written into the
    expression: a when/then branch per guidance (five for each of 77) cost 0.1 s per run however
    few the occurrences, where the join costs a millisecond."""
    rows = []
    for guidance in catalogue.auditable():
        published, replaced = guidance.published, guidance.replaced_on
        replacement = (replaced.start, replaced.end) if guidance.replaced_by and replaced else (None, None)
        rows.append((guidance.id, published.start, published.end, *replacement))
    return pl.DataFrame(rows, schema={"guidance_id": pl.String, **{name: pl.Date for name in GUIDANCE_DATES}},
                        orient="row")


def timing_expr(as_of: date) -> pl.Expr:
    """How the episode date stands against its guidance's dates (the `GUIDANCE_DATES` columns).

    A date known only to a year or a month is a window from its first to its last day: an episode
    dated inside it (before the last day) cannot be judged on that boundary (`date-uncertain`); one
    dated on or after the last day is certainly after it, one before the first day certainly
    before. An episode dated after the as-of date is `future` (a data-quality finding). Current
    guidance has no replacement dates: those comparisons are null, and never taken."""
    when = pl.col("episode_date")
    return (
        pl.when(when > pl.lit(as_of)).then(pl.lit(FUTURE))
        .when(when < pl.col("_published_start")).then(pl.lit(PREDATES))
        .when(when < pl.col("_published_end")).then(pl.lit(DATE_UNCERTAIN))
        .when(when >= pl.col("_replaced_end")).then(pl.lit(SUPERSEDED_TIMING))
        .when(when >= pl.col("_replaced_start")).then(pl.lit(DATE_UNCERTAIN))
        .otherwise(pl.lit(IN_FORCE))
        .alias("timing")
    )


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
    "operation_start": pl.Int32,
    "operation_end": pl.Int32,
    "episode_date": pl.Date,
    "date_source": pl.String,
    "timing": pl.String,
    "provider": pl.String,
    "specialty": pl.String,
    "consultant": pl.String,
    "source_file": pl.String,
}
OCCURRENCE_COLUMNS = list(OCCURRENCE_SCHEMA)
POSSIBLE_SCHEMA = {"episode_id": pl.String, "guidance_id": pl.String, "position": pl.Int32}


def empty_occurrences() -> pl.DataFrame:
    return pl.DataFrame(schema=OCCURRENCE_SCHEMA)


def empty_possible() -> pl.DataFrame:
    return pl.DataFrame(schema=POSSIBLE_SCHEMA)
