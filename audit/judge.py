"""Stage 6: a status for every matched (episode, guidance) pair.

- `superseded`: an occurrence is dated certainly after the replacement (superseded-guidance);
- `predates-guidance`: the episode is dated certainly before the guidance was published;
- `date-uncertain`: dated inside the window of a date the catalogue knows only to a month or a
  year (or after the as-of date), so it cannot be judged on that boundary;
- `non-compliant`: any error finding for that guidance, or any generic error finding on a position
  of the guidance's own operation (the index code, its qualifiers, subsidiary codes before it with
  no action before them, and the actions of a code set that spans several: audit.match);
- `compliant`: otherwise. Warnings never make an episode non-compliant.
"""

from __future__ import annotations

import polars as pl

from audit import codes
from audit.catalogue import Catalogue, CodeSet, Component
from audit.match import DATE_UNCERTAIN, FUTURE, OCCURRENCE_KEY, PREDATES, SUPERSEDED_TIMING
from audit.rules import ERROR, WARNING
from schemas import polars_schema
from schemas.outputs import EPISODE_STATUSES

EPISODE_STATUS_SCHEMA = polars_schema(EPISODE_STATUSES)

# Where each role stands in the expected sequence (PYZ: action, V55, Y method, Y approach, Z site).
_ROLE_ORDER = ("index", "levels", "method", "approach", "site")


def _recorded(component: Component, patterns) -> pl.Expr:
    """The first code among the qualifiers (or later codes) that fills this component."""
    column = "following" if component.scope == "episode" else "qualifiers"
    match = codes.any_of(patterns, pl.element())
    if component.role == "site":
        match = match & codes.is_site(pl.element())
    return pl.col(column).list.eval(pl.element().filter(match)).list.first()


def _expected_part(component: Component) -> pl.Expr | None:
    if component.role == "index":
        return codes.display_expr(pl.col("code"))
    if component.role == "levels":
        return pl.when(codes.is_levels(pl.col("next_code")).fill_null(False)).then(
            codes.display_expr(pl.col("next_code"))).otherwise(pl.lit(str(component)))
    patterns = component.accepted
    wanted = str(component)
    if component.role == "site" and component.recommended:
        patterns, wanted = component.recommended, " or ".join(str(p) for p in component.recommended)
    elif component.role == "site":
        wanted = "Z site"
    if component.requirement == "conditional":
        wanted = f"[{wanted} if done]"
    return pl.coalesce(codes.display_expr(_recorded(component, patterns)), pl.lit(wanted))


def sequence_columns(code_set: CodeSet) -> list[pl.Expr]:
    """`actual_sequence`: the index code and its qualifiers as recorded; `expected_sequence`:
    what the code set asks for, filled with the recorded codes where they are right."""
    parts = [
        part
        for role in _ROLE_ORDER
        for component in code_set.of_role(role)
        if (part := _expected_part(component)) is not None
    ]
    laterality = pl.col("qualifiers").list.eval(
        pl.element().filter(codes.is_laterality(pl.element()))).list.eval(codes.display_expr(pl.element()))
    companions = [
        pl.lit(f"… {c}" if c.requirement == "required" else f"… [{c} if done]")
        for c in code_set.of_role("companion")
    ]
    # The index code, then its qualifiers: joined as text, not as one list of both (10M episodes'
    # 245,000 pairs: 188 -> 80 ms).
    qualifiers = pl.col("qualifiers").list.eval(codes.display_expr(pl.element())).list.join(" ")
    actual = pl.concat_str(codes.display_expr(pl.col("code")), qualifiers.replace("", None),
                           separator=" ", ignore_nulls=True)
    return [
        actual.alias("actual_sequence"),
        pl.concat_str([*parts, laterality.list.join(" ").replace("", None), *companions],
                      separator=" ", ignore_nulls=True).alias("expected_sequence"),
    ]


def errors_on_operations(occurrences: pl.DataFrame, findings: pl.DataFrame) -> pl.DataFrame:
    """(episode_id, guidance_id, errors): the pair's own error findings, plus generic error findings
    whose position lies within one of the pair's operations (each finding counted once)."""
    own = findings.filter(pl.col("guidance_id").is_not_null() & (pl.col("severity") == ERROR)).select(
        "episode_id", "guidance_id", "rule_id", "position")
    generic = findings.filter(pl.col("guidance_id").is_null() & (pl.col("severity") == ERROR)).select(
        "episode_id", "rule_id", "position")
    on_operation = (
        generic.join(occurrences.select("episode_id", "guidance_id", "operation_start", "operation_end"),
                     on="episode_id")
        .filter(pl.col("position").is_between(pl.col("operation_start"), pl.col("operation_end")))
        .select("episode_id", "guidance_id", "rule_id", "position")
        .unique()
    )
    return (
        pl.concat([own, on_operation])
        .group_by("episode_id", "guidance_id").agg(errors=pl.len())
    )


def _in_key_order(occurrences: pl.DataFrame) -> pl.DataFrame:
    """`occurrences` sorted by episode, guidance and position: as audit.match gives them (one
    comparison per row checks it), else sorted (10M episodes: 77 ms to sort and deduplicate the
    pairs, 2 ms to take each one's first row in order)."""
    if occurrences.select(pl.struct(OCCURRENCE_KEY).is_sorted()).item():
        return occurrences
    return occurrences.sort(OCCURRENCE_KEY)


def judge(occurrences: pl.DataFrame, findings: pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
    if occurrences.height == 0:
        return pl.DataFrame(schema=EPISODE_STATUS_SCHEMA)
    counts = (
        findings.filter(pl.col("guidance_id").is_not_null())
        .group_by("episode_id", "guidance_id")
        .agg(warnings=(pl.col("severity") == WARNING).sum())
    )
    errors = errors_on_operations(occurrences, findings)
    superseded = (
        occurrences.group_by("episode_id", "guidance_id")
        .agg(superseded=(pl.col("timing") == SUPERSEDED_TIMING).any())
    )
    # The pair is dated by its first occurrence (lowest position): the first of its rows in key order.
    pairs = _in_key_order(occurrences).filter(
        ((pl.col("episode_id") != pl.col("episode_id").shift(1))
         | (pl.col("guidance_id") != pl.col("guidance_id").shift(1))).fill_null(True))
    by_code_set = pairs.partition_by("guidance_id", "code_set", as_dict=True)
    pairs = pl.concat(
        [
            by_code_set[(g.id, cs.name)].with_columns(sequence_columns(cs))
            for g in catalogue.auditable()
            for cs in g.code_sets
            if (g.id, cs.name) in by_code_set  # the code sets some episode matched
        ]
    )
    key = ["episode_id", "guidance_id"]
    return (
        pairs.join(counts, on=key, how="left")
        .join(errors, on=key, how="left")
        .join(superseded, on=key, how="left")
        .with_columns(
            pl.col("errors").fill_null(0).cast(pl.UInt32),
            pl.col("warnings").fill_null(0).cast(pl.UInt32),
            status=pl.when(pl.col("superseded")).then(pl.lit("superseded"))
            .when(pl.col("timing") == PREDATES).then(pl.lit("predates-guidance"))
            .when(pl.col("timing").is_in([DATE_UNCERTAIN, FUTURE])).then(pl.lit("date-uncertain"))
            .when(pl.col("errors").fill_null(0) > 0).then(pl.lit("non-compliant"))
            .otherwise(pl.lit("compliant")),
        )
        .select(list(EPISODE_STATUS_SCHEMA))
        .sort("episode_id", "guidance_id")
        .pipe(EPISODE_STATUSES.validate)
    )
