"""Run a pandera schema's checks over a frame and say which rows failed which check.

`DataFrameSchema.validate(lazy=True)` collects every failure into `SchemaErrors`, but builds
that report row by row in Python (about 60 µs per failing row: ten seconds for the findings of a
national extract). The schema's own checks are run here through pandera's backend instead, and
the failing rows are read from each check's vectorised boolean output.
"""

from __future__ import annotations

import polars as pl

from schemas.engine import pa  # (first: pandera imported without its pandas half)
from pandera.constants import CHECK_OUTPUT_KEY  # noqa: E402  (after schemas.engine, see there)

FAILURES_SCHEMA = {"index": pl.UInt32, "check_number": pl.Int32}


def failing_rows(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """(index, check_number) for every row that fails one of the schema's dataframe checks."""
    if frame.height == 0 or not schema.checks:
        return pl.DataFrame(schema=FAILURES_SCHEMA)
    backend = schema.get_backend(frame)
    results = backend.run_checks(frame.lazy(), schema)
    parts = []
    for number, result in enumerate(results):
        if result.passed:
            continue
        if result.check_output is None:  # the check itself raised: a bug, not bad data
            raise RuntimeError(f"{schema.name}: check {result.check} failed to run: {result.message}")
        parts.append(
            result.check_output.with_row_index("index")
            .filter(~pl.col(CHECK_OUTPUT_KEY).fill_null(False))  # a null is not a pass
            .select("index", pl.lit(number, pl.Int32).alias("check_number"))
        )
    return pl.concat(parts) if parts else pl.DataFrame(schema=FAILURES_SCHEMA)
