"""A rule as a named polars expression, and the findings built from the rows where it fails.

Every rule is a polars expression that is True where the coding follows the standard. The rules
for one frame are evaluated together, in one pass over it; findings are built from each rule's
failing rows, with the position, code, expected value and message computed as expressions too.
(pandera checks the data contracts between the stages, schemas/; the rules are not contracts but
the audit itself, and evaluating them through pandera cost one pass over the frame per rule.)
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from audit import codes
from schemas import polars_schema
from schemas.outputs import FINDINGS

FINDINGS_SCHEMA = polars_schema(FINDINGS)
FINDINGS_SORT = ["episode_id", "guidance_id", "position", "rule_id", "expected"]


@dataclass(frozen=True)
class Rule:
    """One rule applied to one frame: `passes` is True where the coding is right."""

    id: str
    severity: str
    passes: pl.Expr
    position: pl.Expr
    code: pl.Expr
    expected: pl.Expr
    message: pl.Expr


def text(*parts) -> pl.Expr:
    return pl.concat_str([p if isinstance(p, pl.Expr) else pl.lit(p) for p in parts])


def shown(code: pl.Expr) -> pl.Expr:
    return codes.display_expr(code)


INDEX = text(shown(pl.col("code")), " at position ", pl.col("position").cast(pl.String))


def _project(frame: pl.LazyFrame, rule: Rule, guidance_id, code_set, keep) -> pl.LazyFrame:
    return frame.select(
        "_failing",
        "episode_id",
        pl.lit(guidance_id, pl.String).alias("guidance_id"),
        pl.lit(code_set, pl.String).alias("code_set"),
        pl.lit(rule.id).alias("rule_id"),
        pl.lit(rule.severity).alias("severity"),
        rule.position.cast(pl.Int32).alias("position"),
        rule.code.cast(pl.String).alias("code"),
        rule.expected.cast(pl.String).alias("expected"),
        rule.message.alias("message"),
        "provider", "specialty", "consultant", "source_file",
        *keep,
    ).filter("_failing").drop("_failing")


def findings_from(frame: pl.DataFrame, rules: list[Rule], guidance_id, code_set, name: str,
                  keep: tuple[pl.Expr, ...] = ()) -> pl.DataFrame:
    """The findings of `rules` over `frame`; `keep`: extra columns to carry (dropped by the caller).
    `name`: what the frame holds, for the error if a rule cannot be evaluated (a bug)."""
    if not rules:
        return empty_findings()
    # Every rule's verdict in one pass over the frame, so polars evaluates the rules side by side
    # and shares what they have in common. A null verdict is a failure.
    try:
        fails = frame.lazy().select(
            (~rule.passes.fill_null(False)).alias(f"_fails_{number}") for number, rule in enumerate(rules)).collect()
    except pl.exceptions.PolarsError as error:  # polars' message may quote values: not repeated
        raise RuntimeError(f"{name}: a rule could not be evaluated ({type(error).__name__})") from None
    indexed = frame.with_row_index("index").hstack(fails).with_columns(_failing=pl.lit(False))
    parts = [_project(indexed.head(0).lazy(), rules[0], guidance_id, code_set, keep)]  # the shape, when none fail
    failing_rules = [number for number in range(len(rules)) if fails.get_column(f"_fails_{number}").any()]
    if failing_rules:
        # Messages may look across the episode (window expressions), so evaluate them over the
        # failing rows' whole episodes, then keep the failing rows. The episodes are picked by
        # their ids' 64-bit hashes (half the text's cost): a colliding episode comes whole, and
        # has no failing row to keep. One lazy query for every rule: polars copies only the
        # columns each rule reads, and runs the rules side by side.
        keys = frame.get_column("episode_id").hash()
        keyed = indexed.with_columns(keys.alias("_key")).lazy()
        for number in failing_rules:
            failing = keys.filter(fails.get_column(f"_fails_{number}")).unique()
            these = keyed.filter(pl.col("_key").is_in(failing.implode())).with_columns(
                pl.col(f"_fails_{number}").alias("_failing"))
            parts.append(_project(these, rules[number], guidance_id, code_set, keep))
    return pl.concat(parts).collect()


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)
