"""audit.sequence: each function equals the polars window it replaces, on episodes of 1-6 rows."""

import random

import polars as pl
import pytest

from audit import sequence

E = "episode_id"
V, B = pl.col("v"), pl.col("b")
CASES = {
    "next": (sequence.shifted(V, -1), V.shift(-1).over(E)),
    "previous": (sequence.shifted(V, 1), V.shift(1).over(E)),
    "forward fill": (sequence.forward_filled(V), V.forward_fill().over(E)),
    "backward fill": (sequence.backward_filled(V), V.backward_fill().over(E)),
    "next, backward filled": (sequence.backward_filled(sequence.shifted(V, -1)), V.shift(-1).backward_fill().over(E)),
    "cumulative sum": (sequence.cumulative_sum(B), B.cum_sum().over(E)),
    "episode sum": (sequence.episode_sum(B), B.sum().over(E)),
    "row number": (sequence.row_number(), pl.int_range(pl.len()).over(E)),
    "episode length": (sequence.episode_length(), pl.len().over(E)),
    "first row": (sequence.first_row(), pl.col("position") == pl.col("position").min().over(E)),
}


@pytest.fixture(scope="module")
def episodes():
    rng = random.Random(1)
    rows = [(f"E{e:05d}", p + 1, rng.choice([None, 1, 2, 3]), rng.randint(0, 1))
            for e in range(3000) for p in range(rng.randint(1, 6))]
    return pl.DataFrame(rows, schema={E: pl.String, "position": pl.Int32, "v": pl.Int32, "b": pl.Int32},
                        orient="row")


@pytest.mark.parametrize("name", CASES)
def test_equals_the_window_it_replaces(episodes, name):
    mine, window = CASES[name]
    result = episodes.select(mine.alias("mine"), window.alias("window"))
    assert result["mine"].cast(pl.Int64).to_list() == result["window"].cast(pl.Int64).to_list()


@pytest.mark.parametrize("order", [
    [("A", 1), ("A", 2), ("B", 1)],  # already in order
    [("B", 1), ("A", 2), ("A", 1)],
    [("A", 2), ("A", 1), ("B", 1)],  # one episode's positions out of order
    [("A", 1), ("A", 1), ("B", 1)],  # a repeated position is not "in order": sorted like any other
])
def test_in_episode_order_sorts_and_flags_the_ids_sorted(order):
    frame = pl.DataFrame(order, schema={E: pl.String, "position": pl.Int32}, orient="row")
    result = sequence.in_episode_order(frame)
    assert result.rows() == sorted(order)
    assert result[E].flags["SORTED_ASC"]  # polars then groups by the id along its runs


@pytest.mark.parametrize("rows", [V == 3, V.is_null(), B == 1, pl.lit(False), pl.lit(True)],
                         ids=["some", "null values", "most", "none", "all"])
def test_episodes_with_equals_the_semi_join_it_replaces(episodes, rows):
    hit = episodes.filter(rows.fill_null(False)).select(E).unique()
    expected = episodes.join(hit, on=E, how="semi", maintain_order="left")
    assert sequence.episodes_with(episodes, rows).equals(expected)
    assert 0 < expected.height < episodes.height or rows.meta.is_literal()


def test_episodes_with_an_empty_frame():
    empty = pl.DataFrame(schema={E: pl.String, "position": pl.Int32, "v": pl.Int32})
    assert sequence.episodes_with(empty, V == 1).height == 0
