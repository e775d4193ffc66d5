"""Stage 2: decide which input rows can be audited at all.

Rows are checked against the pandera schemas in `schemas/inputs.py` with lazy error collection;
every failing row goes to the rejected frame with its file, row number and a plain reason.
Nothing is dropped silently: accepted + rejected = read, for every file.
"""

from __future__ import annotations

import polars as pl
import pandera.polars as pa

from schemas.inputs import IDENTITY, LONG_ROWS, REJECTION_REASONS, WIDE_ROWS

REJECTED_SCHEMA = {
    "source_file": pl.String,
    "source_row": pl.Int64,
    "episode_id": pl.String,
    "reason": pl.String,
}


def _failing_rows(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """(index, reason) for each failing row, the first failing check in schema order."""
    try:
        schema.validate(frame, lazy=True)
        return pl.DataFrame(schema={"index": pl.UInt32, "reason": pl.String})
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    unexpected = cases.filter(~pl.col("check").is_in(list(REJECTION_REASONS)))
    if unexpected.height:
        # A column or type problem here is a bug in the loader, not bad input.
        raise RuntimeError(f"{schema.name}: unexpected schema failure {unexpected['check'].to_list()}")
    order = {name: i for i, name in enumerate(REJECTION_REASONS)}
    return (
        cases.select(
            pl.col("index").cast(pl.UInt32),
            pl.col("check").replace_strict(order, return_dtype=pl.Int32).alias("rank"),
        )
        .sort("index", "rank")
        .unique("index", keep="first", maintain_order=True)
        .select(
            "index",
            pl.col("rank")
            .replace_strict({i: REJECTION_REASONS[n] for n, i in order.items()}, return_dtype=pl.String)
            .alias("reason"),
        )
    )


def split_rejected(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(accepted rows, rejected rows with reasons)."""
    failing = _failing_rows(frame.select(list(schema.columns)), schema)
    if failing.height == 0:
        return frame, pl.DataFrame(schema=REJECTED_SCHEMA)
    indexed = frame.with_row_index("index")
    rejected = indexed.join(failing, on="index").select(
        "source_file", "source_row", pl.col("episode_id").str.strip_chars(), "reason"
    )
    accepted = indexed.join(failing, on="index", how="anti").drop("index")
    return accepted, rejected


def row_schema(shape: str) -> pa.DataFrameSchema:
    return WIDE_ROWS if shape == "wide" else LONG_ROWS
