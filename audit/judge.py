"""Stage 6: a status for every matched (episode, guidance) pair.

- `superseded`: the superseded-guidance rule fired (episode dated on or after the replacement);
- `predates-guidance`: the episode is dated before the guidance was published;
- `non-compliant`: any error finding for that guidance;
- `compliant`: otherwise. Warnings never make an episode non-compliant.
"""

from __future__ import annotations

import polars as pl

from audit import codes
from audit.catalogue import Catalogue, CodeSet, Component
from audit.rules import ERROR, SUPERSEDED, WARNING, image_control
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
    patterns = image_control(component) if component.role == "approach" else component.patterns
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
    actual = pl.concat_list(pl.col("code"), pl.col("qualifiers")).list.eval(codes.display_expr(pl.element()))
    return [
        actual.list.join(" ").alias("actual_sequence"),
        pl.concat_str([*parts, laterality.list.join(" ").replace("", None), *companions],
                      separator=" ", ignore_nulls=True).alias("expected_sequence"),
    ]


def judge(occurrences: pl.DataFrame, findings: pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
    if occurrences.height == 0:
        return pl.DataFrame(schema=EPISODE_STATUS_SCHEMA)
    published = pl.DataFrame(
        {
            "guidance_id": [g.id for g in catalogue.auditable()],
            "published": [g.published.start for g in catalogue.auditable()],
        }
    )
    counts = (
        findings.filter(pl.col("guidance_id").is_not_null())
        .group_by("episode_id", "guidance_id")
        .agg(
            errors=(pl.col("severity") == ERROR).sum(),
            warnings=(pl.col("severity") == WARNING).sum(),
            superseded=(pl.col("severity") == SUPERSEDED).any(),
        )
    )
    # The pair is dated by its first occurrence (lowest position).
    pairs = occurrences.sort("position").unique(["episode_id", "guidance_id"], keep="first")
    pairs = pl.concat(
        [
            pairs.filter((pl.col("guidance_id") == g.id) & (pl.col("code_set") == cs.name))
            .with_columns(sequence_columns(cs))
            for g in catalogue.auditable()
            for cs in g.code_sets
        ]
    )
    return (
        pairs.join(counts, on=["episode_id", "guidance_id"], how="left")
        .join(published, on="guidance_id", how="left")
        .with_columns(
            pl.col("errors").fill_null(0).cast(pl.UInt32),
            pl.col("warnings").fill_null(0).cast(pl.UInt32),
            status=pl.when(pl.col("superseded").fill_null(False)).then(pl.lit("superseded"))
            .when(pl.col("episode_date") < pl.col("published")).then(pl.lit("predates-guidance"))
            .when(pl.col("errors").fill_null(0) > 0).then(pl.lit("non-compliant"))
            .otherwise(pl.lit("compliant")),
        )
        .select(list(EPISODE_STATUS_SCHEMA))
        .sort("episode_id", "guidance_id")
        .pipe(EPISODE_STATUSES.validate)
    )
