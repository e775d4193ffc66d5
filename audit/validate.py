"""Stage 2: decide which input rows can be audited at all.

Rows are checked against the pandera schemas in `schemas/inputs.py` (every check runs, so all
problems are collected); every failing row goes to the rejected frame with its file, row number and a plain reason.
Nothing is dropped silently: accepted + rejected = read, for every file.

A file's rows are checked inside its one streaming query (`first_failure`, audit.canonical): the
same expressions the row schemas are built from (schemas.inputs.ROW_CHECKS), evaluated while the
file is parsed instead of in a pass of their own. The identity checks look across whole files, so
they run through pandera (`rejected_rows`) once every file has been read.
"""

from __future__ import annotations

import polars as pl

from audit.checks import failing_rows
from schemas.engine import pa
from schemas.inputs import REJECTION_REASONS, ROW_CHECKS

REJECTED_SCHEMA = {
    "source_file": pl.String,
    "source_row": pl.Int64,
    "episode_id": pl.String,
    "reason": pl.String,
    "source_line": pl.Int64,  # line of the file where the row starts (CSV), for finding it in an editor
}


def _failing_rows(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """(index, reason) for each failing row, the first failing check in schema order."""
    failing = failing_rows(frame, schema)
    reasons = [REJECTION_REASONS[check.name] for check in schema.checks]
    return (
        failing.sort("index", "check_number")
        .unique("index", keep="first", maintain_order=True)
        .select("index", pl.col("check_number").replace_strict(
            dict(enumerate(reasons)), return_dtype=pl.String).alias("reason"))
    )


def rejected_rows(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """The rows of `frame` that fail the schema's checks, with their reasons (the accepted rows
    are the others; they are never copied here, which at ten million long rows was 2 GB)."""
    failing = _failing_rows(frame.select(list(schema.columns)), schema)
    if failing.height == 0:
        return pl.DataFrame(schema=REJECTED_SCHEMA)
    return frame.with_row_index("index").join(failing, on="index").select(
        "source_file", "source_row", pl.col("episode_id").str.strip_chars(), "reason",
        pl.col("source_line") if "source_line" in frame.columns else pl.lit(None, pl.Int64).alias("source_line"),
    )


def first_failure(shape: str) -> pl.Expr:
    """The reason for the first row check (in schema order) a row fails; null for a row that
    passes them all. `shape`: "wide" or "long"."""
    reason = pl.lit(None, pl.String)
    for name, passes in reversed(ROW_CHECKS[shape]):
        reason = pl.when(passes).then(reason).otherwise(pl.lit(REJECTION_REASONS[name]))
    return reason
