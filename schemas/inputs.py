"""Row-level contracts for input rows, as pandera schemas over polars frames.

Each check is named by a stable id; `REJECTION_REASONS` gives the plain-English reason written to
`rejected.csv` for a row that fails it. Checks are listed in the order reasons are preferred
when a row fails several.
"""

import polars as pl

from schemas.engine import pa


REJECTION_REASONS = {
    "episode-id-missing": "no episode id",
    "position-invalid": "position is not a whole number from 1 to 999",
    "code-missing": "no procedure code in a long-format row",
    "episode-id-duplicated": (
        "episode id appears on more than one row; every copy is rejected because the tool cannot "
        "tell which one is current"
    ),
    "episode-in-several-files": (
        "episode id appears in more than one input file; every copy is rejected because the tool "
        "cannot tell which one is current"
    ),
    "position-duplicated": "episode lists the same position twice; all its rows are rejected",
}


def position_number(raw: pl.Expr) -> pl.Expr:
    """`"2"`, `" 2 "` or `"2.0"` (a float written by a spreadsheet) -> 2; anything else null."""
    text = raw.str.strip_chars()
    return (
        pl.when(text.str.contains(r"^\d{1,3}(\.0+)?$"))
        .then(text.str.replace(r"\.0+$", ""))
        .cast(pl.Int32, strict=False)
    )


def _present(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().fill_null("") != ""


def _check(expr: pl.Expr, name: str) -> pa.Check:
    return pa.Check(lambda data: data.lazyframe.select(expr), name=name)


_BASE_COLUMNS = {
    "episode_id": pa.Column(pl.String, nullable=True),
    "source_file": pa.Column(pl.String),
    "source_row": pa.Column(pl.Int64),
}

# One file's rows, by shape: (check id, expression true for a row that passes), in the order
# reasons are preferred. The pandera schemas below are built from these; the audit evaluates the
# same expressions inside its one query per file (audit.validate.first_failure), and
# tests/test_row_checks.py keeps the two agreeing.
ROW_CHECKS = {
    "wide": (("episode-id-missing", _present("episode_id")),),
    "long": (
        ("episode-id-missing", _present("episode_id")),
        ("position-invalid", position_number(pl.col("position")).is_between(1, 999).fill_null(False)),
        ("code-missing", _present("code_raw")),
    ),
}
WIDE_ROWS = pa.DataFrameSchema(
    _BASE_COLUMNS,
    checks=[_check(expr, name) for name, expr in ROW_CHECKS["wide"]],
    name="wide export rows",
)
LONG_ROWS = pa.DataFrameSchema(
    {**_BASE_COLUMNS, "position": pa.Column(pl.String, nullable=True),
     "code_raw": pa.Column(pl.String, nullable=True)},
    checks=[_check(expr, name) for name, expr in ROW_CHECKS["long"]],
    name="long export rows",
)


def _episodes_with_repeated_positions() -> pl.Expr:
    # A string key and is_in keep this fast with millions of one-row groups, where a window
    # expression over episode_id is not.
    key = pl.concat_str([pl.col("episode_id"), position_number(pl.col("position")).cast(pl.String)], separator="|")
    repeated = (pl.col("shape") == "long") & key.is_duplicated()
    return pl.col("episode_id").filter(repeated).implode()


# All files' rows together (after stripping ids): an episode's identity must be unambiguous.
_SEVERAL_FILES = _check(pl.col("source_file").n_unique().over("episode_id") == 1, "episode-in-several-files")
_IDENTITY_COLUMNS = {**_BASE_COLUMNS, "shape": pa.Column(pl.String), "position": pa.Column(pl.String, nullable=True)}
_ONE_FILE_CHECKS = [
    _check(~((pl.col("shape") == "wide") & (pl.len().over("episode_id") > 1)), "episode-id-duplicated"),
    _check(~pl.col("episode_id").is_in(_episodes_with_repeated_positions()), "position-duplicated"),
]
IDENTITY = pa.DataFrameSchema(_IDENTITY_COLUMNS, checks=[_SEVERAL_FILES, *_ONE_FILE_CHECKS],
                              name="episode identity across files")
# The same, for a run over one file (the several-files check costs 0.4 s per million rows).
IDENTITY_ONE_FILE = pa.DataFrameSchema(_IDENTITY_COLUMNS, checks=_ONE_FILE_CHECKS, name="episode identity")
