"""Window functions within an episode, for frames sorted by `episode_id` (then position).

polars' `expr.over("episode_id")` hashes the key and regroups every row: about 0.25 s per
expression for a million procedures in 200,000 episodes, which made the full audit of a
spinal-heavy export several times slower than reading it. On a frame whose episodes are
contiguous the same results come from the episode boundaries with plain array operations
(shifts, fills and cumulative sums, about 1 ms each). Every function here requires that order:
callers sort first, as they already did for their `over` windows.

The expressions repeat their parts (each `shifted` compares the episode ids again; a fill numbers
the episodes twice). Evaluated on a LazyFrame, polars computes each shared part once; a
DataFrame's own `with_columns` runs without that optimisation (polars' eager query flags), and
cost twice as long (spinal benchmark: 57 against 29 ms for the spinal rule's context).
"""

from __future__ import annotations

import polars as pl

EPISODE = pl.col("episode_id")
_POSITION = pl.col("position")


def in_episode_order(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` sorted by episode_id, then position, as every function below needs it: as it comes
    when it is already (audit.canonical sorts the procedures so, and the stages' filters and
    semi-joins keep their order), else sorted. The check is one comparison per row: at 500,000
    spinal procedures 5-7 ms, where sorting them by their text key again cost 35-65 ms, in each
    of the four stages that need the order."""
    previous = EPISODE.shift(1)
    ascending = (EPISODE > previous) | ((EPISODE == previous) & (_POSITION > _POSITION.shift(1)))
    if not frame.select(ascending.fill_null(True).all() & (EPISODE.null_count() == 0)).item():
        frame = frame.sort("episode_id", "position")
    # Flagged as sorted (it is, now): polars then groups by the id along its runs instead of
    # hashing it (matching's episode lists at 10M episodes: 67 -> 22 ms). Filters keep the flag.
    return frame.with_columns(EPISODE.set_sorted())


def episodes_with(frame: pl.DataFrame, rows: pl.Expr) -> pl.DataFrame:
    """Every row of the episodes where any row is one of `rows`: a semi-join of `frame` (in
    episode order) with its own episodes, by their numbers in frame order rather than by hashing
    the text id (10M episodes' spinal procedures, 1.65M rows: 350 against 140 ms)."""
    if not frame.height:
        return frame
    marks = frame.lazy().select(episode_number().alias("number"), rows.fill_null(False).alias("hit")).collect()
    number = marks.get_column("number")
    listed = pl.repeat(False, number[-1] + 1, eager=True).scatter(number.filter(marks.get_column("hit")), True)
    return frame.filter(listed.gather(number))


def first_row() -> pl.Expr:
    """True on the first row of each episode."""
    return (EPISODE != EPISODE.shift(1)).fill_null(True)


def last_row() -> pl.Expr:
    return (EPISODE != EPISODE.shift(-1)).fill_null(True)


def episode_number() -> pl.Expr:
    """1, 2, ... one number per episode, in frame order."""
    return first_row().cast(pl.Int64).cum_sum()


def shifted(expr: pl.Expr, n: int) -> pl.Expr:
    """`expr.shift(n).over("episode_id")`: null where the shifted row is another episode's."""
    return pl.when(EPISODE.shift(n) == EPISODE).then(expr.shift(n))


def forward_filled(expr: pl.Expr) -> pl.Expr:
    """`expr.forward_fill().over("episode_id")`: a value is never carried into the next episode."""
    number = episode_number()
    source = pl.when(expr.is_not_null()).then(number).forward_fill()
    return pl.when(source == number).then(expr.forward_fill())


def backward_filled(expr: pl.Expr) -> pl.Expr:
    """`expr.backward_fill().over("episode_id")`."""
    number = episode_number()
    source = pl.when(expr.is_not_null()).then(number).backward_fill()
    return pl.when(source == number).then(expr.backward_fill())


def cumulative_sum(expr: pl.Expr) -> pl.Expr:
    """`expr.cum_sum().over("episode_id")` for a column without nulls."""
    total = expr.cum_sum()
    return total - pl.when(first_row()).then(total - expr).forward_fill()


def episode_sum(expr: pl.Expr) -> pl.Expr:
    """`expr.sum().over("episode_id")` for a column without nulls."""
    return pl.when(last_row()).then(cumulative_sum(expr)).backward_fill()


def row_number() -> pl.Expr:
    """`pl.int_range(pl.len()).over("episode_id")`: 0, 1, ... within each episode."""
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    return row - pl.when(first_row()).then(row).forward_fill()


def episode_length() -> pl.Expr:
    """`pl.len().over("episode_id")`."""
    return pl.when(last_row()).then(row_number() + 1).backward_fill()
