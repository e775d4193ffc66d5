"""The checks the file's one streaming query makes (audit.canonical) against the slower, plainer
definitions they stand in for: pandera's row schemas, and parsing every date."""

from datetime import date

import polars as pl
import pytest

from audit.dates import is_unparseable, odd_date
from audit.validate import first_failure, rejected_rows
from schemas.inputs import LONG_ROWS, WIDE_ROWS

LONG_ROWS_TABLE = [
    # episode_id, position, code_raw
    ("E1", "1", "W371"),
    (None, "1", "W371"),
    ("  ", "x", None),  # fails all three checks: the first (no id) is the reason
    ("E2", "0", "W371"),
    ("E2", "1000", None),
    ("E3", " 2.0 ", "  "),
    ("E4", None, "W381"),
    ("\tE5", "999", "W381"),
]


@pytest.mark.parametrize("shape, schema", [("wide", WIDE_ROWS), ("long", LONG_ROWS)])
def test_the_streamed_reasons_are_the_row_schemas(shape, schema):
    frame = pl.DataFrame(LONG_ROWS_TABLE, schema=["episode_id", "position", "code_raw"], orient="row").with_columns(
        source_file=pl.lit("f.csv"), source_row=pl.int_range(1, len(LONG_ROWS_TABLE) + 1, dtype=pl.Int64))
    rejected = rejected_rows(frame, schema)
    by_pandera = dict(rejected.select("source_row", "reason").iter_rows())
    streamed = frame.with_columns(first_failure(shape).alias("reason"))
    assert dict(streamed.filter(pl.col("reason").is_not_null()).select("source_row", "reason").iter_rows()) == by_pandera
    assert by_pandera  # both shapes reject some of these rows


def test_every_real_date_from_year_1_to_9999_is_plain():
    days = pl.date_range(date(1, 1, 1), date(9999, 12, 31), eager=True).dt.to_string("%Y-%m-%d")
    assert days.len() == (date(9999, 12, 31) - date(1, 1, 1)).days + 1
    assert days.to_frame("v").filter(odd_date(pl.col("v"))).height == 0


def _every_shape():
    years = [0, 1, 4, 100, 200, 400, 1800, 1900, 2000, 2023, 2024, 2100, 2400, 9999]
    yield from (f"{y:04d}-{m:02d}-{d:02d}" for y in years for m in range(0, 14) for d in range(0, 33))
    yield from ["", " ", " 2024-01-01", "2024-01-01 ", "01/01/2024", "2024-01-01T10:00", "2024-1-1", "x",
                "1800-01-01", "1801-01-01", "20240101", "2024-01-011", "2024-01-01 00:00:00.000",
                "2023-02-29 00:00", "2024-01-01t10:00", "2024-01-01\t10:00", "1800-01-01 00:00:00"]


def test_every_unparseable_value_is_odd_and_odd_values_are_few():
    values = pl.DataFrame({"v": list(_every_shape())}).with_columns(
        odd=odd_date(pl.col("v")), unparseable=is_unparseable(pl.col("v")))
    assert values.filter(pl.col("unparseable") & ~pl.col("odd")).height == 0
    real = values.filter(pl.col("v").str.contains(r"^\d{4}-\d{2}-\d{2}$")
                         & (pl.col("v").str.to_date("%Y-%m-%d", strict=False).dt.year() >= 1))
    assert real.height > 3000 and not real["odd"].any()  # a real plain date never costs the full test
    # What polars' own parser would also take, white space or one-digit months, gets the full test.
    assert values.filter(pl.col("v").is_in([" 2024-01-01", "2024-1-1"]))["odd"].all()
    assert not values.filter(pl.col("v") == "")["odd"].any()
    assert values.filter(pl.col("v") == "2023-02-29")["odd"].item()
    # A time after a real date leaves it plain (timestamps as text); after an unreal one it does not.
    assert not values.filter(pl.col("v").is_in(["2024-01-01 00:00:00.000", "2024-01-01T10:00"]))["odd"].any()
    assert values.filter(pl.col("v") == "2023-02-29 00:00")["odd"].item()
    assert pl.DataFrame({"v": [None]}, schema={"v": pl.String}).select(odd_date(pl.col("v"))).item() is False


def test_leap_days_follow_the_gregorian_rule():
    leap = [y for y in range(1, 10000) if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0]
    values = pl.DataFrame({"v": [f"{y:04d}-02-29" for y in range(1, 10000)]})
    plain = values.filter(~odd_date(pl.col("v")))["v"].str.slice(0, 4).cast(pl.Int32).to_list()
    assert plain == leap


@pytest.mark.parametrize("as_of", [date(2026, 12, 3), date(2026, 1, 1), date(2024, 2, 29), date(2024, 2, 28),
                                   date(2025, 3, 1), date(2026, 10, 31), date(2026, 9, 30), date(2000, 1, 10),
                                   date(1999, 12, 31), date(2030, 6, 9)])
def test_real_dates_until_as_of_are_exactly_the_real_dates_not_after_it(as_of):
    """The record scan's date test for a run's as-of date (audit.dates.real_date_until) takes in
    no value after it and no unreal one (a row it certifies needs no date column parsed); of the
    real dates it leaves out only those before year 1000 and leap days over LEAP_DAYS_BACK years
    back (such a row is only triaged in full)."""
    from audit.dates import LEAP_DAYS_BACK, real_date_until, with_time

    shapes = pl.DataFrame({"v": list(_every_shape())
                           + [f"{y:04d}-{m:02d}-{d:02d}" for y in range(as_of.year - 2, as_of.year + 2)
                              for m in range(0, 14) for d in range(0, 33)]})
    days = pl.date_range(date(990, 1, 1), date(2100, 12, 31), eager=True).dt.to_string("%Y-%m-%d").to_frame("v")
    values = pl.concat([shapes, days]).unique()
    day = as_of.isoformat()
    judged = values.with_columns(
        taken=pl.col("v").str.contains(f"^{with_time(real_date_until(as_of))}$"),
        real_until=~odd_date(pl.col("v")) & (pl.col("v") != "") & (pl.col("v").str.slice(0, 10) <= day))
    assert judged.filter(pl.col("taken") & ~pl.col("real_until")).height == 0
    left_out = judged.filter(~pl.col("taken") & pl.col("real_until"))["v"]
    year = left_out.str.slice(0, 4).cast(pl.Int32)
    old_leap_day = (left_out.str.slice(5) == "02-29") & (year < as_of.year - LEAP_DAYS_BACK)
    assert ((year < 1000) | old_leap_day).all()
    assert judged["taken"].sum() > 300_000 and judged.filter(pl.col("v") == day)["taken"].item()
