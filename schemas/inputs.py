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


# All files' rows together (after stripping ids): an episode's identity must be unambiguous.
# Each check finds its few offending ids with a group-by, then looks every row's id up among them:
# a window expression over every id (or a string key per row) held gigabytes and cost five times
# as long at ten million long rows.
def _not_among(rows: pl.LazyFrame, offending: pl.LazyFrame, where: pl.Expr | None = None) -> pl.LazyFrame:
    ids = offending.select("episode_id").collect()["episode_id"].implode()
    among = pl.col("episode_id").is_in(ids)
    return rows.select(~(among if where is None else where & among))


def _in_one_file(data) -> pl.LazyFrame:
    """False for every row of an episode id found in more than one file."""
    rows = data.lazyframe
    return _not_among(rows, rows.group_by("episode_id").agg(pl.col("source_file").n_unique())
                      .filter(pl.col("source_file") > 1))


def _repeated(rows: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """The `keys` values found on more than one of `rows`, which should each have their own. Only
    rows whose 64-bit hash of them repeats can hold one (a collision adds a row to compare, never
    hides one), so the text is grouped over those few rows: grouping ten million ids took 0.7 s,
    sorting their hashes 0.2 s."""
    hashed = (pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)).hash()
    repeated_hashes = (rows.select(hashed.alias("_hash")).sort("_hash")
                       .filter(pl.col("_hash") == pl.col("_hash").shift(1)).collect()["_hash"])
    return (rows.filter(hashed.is_in(repeated_hashes.implode())).group_by(keys).len()
            .filter(pl.col("len") > 1))


def _no_repeated_wide_ids(data) -> pl.LazyFrame:
    """False for every wide row whose episode id is on another wide row (ids on rows of another
    file are the several-files check's, which comes first)."""
    rows, wide = data.lazyframe, pl.col("shape") == "wide"
    return _not_among(rows, _repeated(rows.filter(wide), ["episode_id"]), where=wide)


def _no_repeated_positions(data) -> pl.LazyFrame:
    """False for every row of an episode that lists a position twice."""
    rows = data.lazyframe
    return _not_among(rows, _repeated(rows.filter(pl.col("shape") == "long"), ["episode_id", "position"]))


_SEVERAL_FILES = pa.Check(_in_one_file, name="episode-in-several-files")
# `position`: the long row's position number (schemas.inputs.position_number), null for a wide row.
_IDENTITY_COLUMNS = {**_BASE_COLUMNS, "shape": pa.Column(pl.String), "position": pa.Column(pl.Int32, nullable=True)}
_REPEATED_POSITIONS = pa.Check(_no_repeated_positions, name="position-duplicated")
# Every identity check, in the order reasons are preferred. The run-wide ones look across all files;
# repeated positions lie inside one episode, so audit.canonical checks them over each long
# batch's whole episodes (EPISODE_POSITIONS), with bounded memory, and gives the run-wide reasons
# precedence.
IDENTITY_CHECKS = [_SEVERAL_FILES, pa.Check(_no_repeated_wide_ids, name="episode-id-duplicated"), _REPEATED_POSITIONS]
IDENTITY = pa.DataFrameSchema(_IDENTITY_COLUMNS, checks=IDENTITY_CHECKS[:2], name="episode identity across files")
# The same, for a run over one file (the several-files check groups every id: needless then).
IDENTITY_ONE_FILE = pa.DataFrameSchema(_IDENTITY_COLUMNS, checks=IDENTITY_CHECKS[1:2], name="episode identity")
EPISODE_POSITIONS = pa.DataFrameSchema(_IDENTITY_COLUMNS, checks=[_REPEATED_POSITIONS], name="positions of whole episodes")
