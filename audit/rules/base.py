"""A rule as a named polars expression, and the findings built from the rows where it fails.

Every rule is a polars expression that is True where the coding follows the standard. The rules
for one frame form one pandera schema (one check per rule); findings are built from the failing
rows of each check (`audit.checks`), with the position, code, expected value and message computed
as expressions too.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.engine import pa
from audit import codes
from audit.checks import failing_rows
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


def schema_for(rules: list[Rule], name: str) -> pa.DataFrameSchema:
    checks = [
        pa.Check(lambda data, expr=rule.passes: data.lazyframe.select(expr), name=rule.id)
        for rule in rules
    ]
    return pa.DataFrameSchema(checks=checks, name=name)


def _project(frame: pl.DataFrame, rule: Rule, guidance_id, code_set, keep) -> pl.DataFrame:
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
    """The findings of `rules` over `frame`; `keep`: extra columns to carry (dropped by the caller)."""
    if not rules:
        return empty_findings()
    indexed = frame.with_row_index("index").with_columns(_failing=pl.lit(False))
    parts = [_project(indexed.head(0), rules[0], guidance_id, code_set, keep)]  # the shape, when none fail
    failing = failing_rows(frame, schema_for(rules, name))
    for number, rule in enumerate(rules):
        rows = failing.filter(pl.col("check_number") == number).select("index")
        if rows.height == 0:
            continue
        # Messages may look across the episode (window expressions), so evaluate them over the
        # failing rows' whole episodes, then keep the failing rows.
        episodes = indexed.join(rows, on="index", how="semi").select("episode_id").unique()
        these = indexed.join(episodes, on="episode_id", how="semi").with_columns(
            pl.col("index").is_in(rows["index"].implode()).alias("_failing"))
        parts.append(_project(these, rule, guidance_id, code_set, keep))
    return pl.concat(parts)


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)
