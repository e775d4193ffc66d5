"""The checks the file's one streaming query makes (audit.canonical) against the slower, plainer
definitions they stand in for: pandera's row schemas, and parsing every date."""

from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.dates import is_unparseable, odd_date
from audit.validate import first_failure, rejected_rows
from schemas.inputs import EPISODE_POSITIONS, IDENTITY_ONE_FILE, LONG_ROWS, WIDE_ROWS

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


ISO, UK = "%Y-%m-%d", "%d/%m/%Y"  # how a date is spelled: HES and SUS; PAS reports opened in Excel


def test_every_real_date_from_year_1_to_9999_is_plain():
    days = pl.date_range(date(1, 1, 1), date(9999, 12, 31), eager=True).dt.to_string(ISO)
    assert days.len() == (date(9999, 12, 31) - date(1, 1, 1)).days + 1
    assert days.to_frame("v").filter(odd_date(pl.col("v"))).height == 0


def test_every_real_uk_date_is_plain_in_a_csv_file_and_odd_in_parquet():
    """A `dd/mm/yyyy` date (as a PAS report opened in Excel writes it) is plain where a CSV
    file's dates are read (`uk`), from year 1 to 9999, and odd in Parquet (ISO text or typed
    dates there; the test for it cost 7% of a 1M run)."""
    days = pl.date_range(date(1, 1, 1), date(9999, 12, 31), eager=True).dt.to_string(UK).to_frame("v")
    assert days.filter(odd_date(pl.col("v"), uk=True)).height == 0
    assert days.filter(~odd_date(pl.col("v"))).height == 0


def _every_shape():
    years = [0, 1, 4, 100, 200, 400, 1800, 1900, 2000, 2023, 2024, 2100, 2400, 9999]
    yield from (f"{y:04d}-{m:02d}-{d:02d}" for y in years for m in range(0, 14) for d in range(0, 33))
    yield from (f"{d:02d}/{m:02d}/{y:04d}" for y in years for m in range(0, 14) for d in range(0, 33))
    yield from ["", " ", " 2024-01-01", "2024-01-01 ", "01/01/2024", "2024-01-01T10:00", "2024-1-1", "x",
                "1800-01-01", "1801-01-01", "20240101", "2024-01-011", "2024-01-01 00:00:00.000",
                "2023-02-29 00:00", "2024-01-01t10:00", "2024-01-01\t10:00", "1800-01-01 00:00:00",
                "1/1/2024", "01/1/2024", " 01/01/2024", "01/01/2024 ", "01/01/2024 00:00", "01-01-2024", "01/01/24"]


def _date_of(value: pl.Expr) -> pl.Expr:
    """The date a plain value spells (its first ten characters, ISO or UK), by polars' parser."""
    return pl.coalesce(value.str.slice(0, 10).str.to_date(ISO, strict=False), value.str.to_date(UK, strict=False))


def test_every_unparseable_value_is_odd_and_odd_values_are_few():
    values = pl.DataFrame({"v": list(_every_shape())}).with_columns(
        odd=odd_date(pl.col("v")), odd_uk=odd_date(pl.col("v"), uk=True), unparseable=is_unparseable(pl.col("v")))
    assert values.filter(pl.col("unparseable") & ~(pl.col("odd") & pl.col("odd_uk"))).height == 0
    # The HES placeholders are no date in either spelling, and never counted as unreadable.
    assert not values.filter(pl.col("v").is_in(["1800-01-01", "01/01/1800", "1801-01-01"]))["unparseable"].any()
    real = values.filter(pl.col("v").str.contains(r"^\d{4}-\d{2}-\d{2}$") & (_date_of(pl.col("v")).dt.year() >= 1))
    assert real.height > 3000 and not real["odd"].any()  # a real plain date never costs the full test
    # What polars' own parser would also take, white space or one-digit months, gets the full test.
    assert values.filter(pl.col("v").is_in([" 2024-01-01", "2024-1-1", "1/1/2024", " 01/01/2024"]))["odd"].all()
    assert not values.filter(pl.col("v") == "")["odd"].any()
    assert values.filter(pl.col("v").is_in(["2023-02-29", "29/02/2023", "31/04/2024"]))["odd"].all()
    # A time after a real ISO date leaves it plain (timestamps as text); after an unreal one, or
    # after a UK date (which `parse_date` does not read so), it does not. A UK date is plain in a
    # CSV file only.
    uk_dates = values.filter(pl.col("v").is_in(["01/01/2024", "29/02/2024"]))
    assert uk_dates["odd"].all() and not uk_dates["odd_uk"].any()
    assert values.filter(pl.col("v").is_in(["29/02/2023", "01/01/2024 00:00", "1/1/2024"]))["odd_uk"].all()
    assert not values.filter(pl.col("v").is_in(["2024-01-01 00:00:00.000", "2024-01-01T10:00"]))["odd"].any()
    assert values.filter(pl.col("v").is_in(["2023-02-29 00:00", "01/01/2024 00:00"]))["odd"].all()
    assert pl.DataFrame({"v": [None]}, schema={"v": pl.String}).select(odd_date(pl.col("v"))).item() is False


@pytest.mark.parametrize("spelling", ["{y:04d}-02-29", "29/02/{y:04d}"])
def test_leap_days_follow_the_gregorian_rule(spelling):
    leap = [y for y in range(1, 10000) if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0]
    values = pl.DataFrame({"v": [spelling.format(y=y) for y in range(1, 10000)], "year": list(range(1, 10000))})
    assert values.filter(~odd_date(pl.col("v"), uk=True))["year"].to_list() == leap


@pytest.mark.parametrize("as_of", [date(2026, 12, 3), date(2026, 1, 1), date(2024, 2, 29), date(2024, 2, 28),
                                   date(2025, 3, 1), date(2026, 10, 31), date(2026, 9, 30), date(2000, 1, 10),
                                   date(1999, 12, 31), date(2030, 6, 9)])
def test_real_dates_until_as_of_are_exactly_the_real_dates_not_after_it(as_of):
    """The record scan's date test for a run's as-of date (audit.dates.plain_date with `until`)
    takes in no value after it and no unreal one (a row it certifies needs no date column parsed),
    ISO or UK; of the real dates it leaves out only those before year 1000 and leap days over
    LEAP_DAYS_BACK years back (such a row is only triaged in full)."""
    from audit.dates import LEAP_DAYS_BACK, plain_date

    near = [(y, m, d) for y in range(as_of.year - 2, as_of.year + 2) for m in range(0, 14) for d in range(0, 33)]
    shapes = pl.DataFrame({"v": list(_every_shape()) + [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in near]
                           + [f"{d:02d}/{m:02d}/{y:04d}" for y, m, d in near]})
    days = pl.date_range(date(990, 1, 1), date(2100, 12, 31), eager=True)
    values = pl.concat([shapes, days.dt.to_string(ISO).to_frame("v"), days.dt.to_string(UK).to_frame("v")]).unique()
    judged = values.with_columns(
        taken=pl.col("v").str.contains(f"^{plain_date(as_of, uk=True)}$"),
        real_until=~odd_date(pl.col("v"), uk=True) & (pl.col("v") != "") & (_date_of(pl.col("v")) <= as_of))
    assert judged.filter(pl.col("taken") & ~pl.col("real_until")).height == 0
    left_out = judged.filter(~pl.col("taken") & pl.col("real_until")).select(_date_of(pl.col("v")))["v"]
    old_leap_day = (left_out.dt.month() == 2) & (left_out.dt.day() == 29) & (left_out.dt.year() < as_of.year - LEAP_DAYS_BACK)
    assert ((left_out.dt.year() < 1000) | old_leap_day).all()
    assert judged["taken"].sum() > 600_000
    assert judged.filter(pl.col("v").is_in([as_of.isoformat(), as_of.strftime(UK)]))["taken"].all()

INSTANTS = [
    ("2024-06-01T23:00:00Z", date(2024, 6, 2)),  # midnight in London (BST) is 23:00 UTC the day before
    ("2024-06-01 23:00:00.000000+00:00", date(2024, 6, 2)),  # polars' text of a UTC timestamp
    ("2024-06-01 23:00+0000", date(2024, 6, 2)),
    ("2024-06-01T19:30:00.123-04", date(2024, 6, 2)),
    ("2024-06-02T00:30+01:00", date(2024, 6, 2)),
    ("2024-06-01T22:59:59.999Z", date(2024, 6, 1)),
    ("2024-01-01T23:30Z", date(2024, 1, 1)),  # GMT in winter
    ("2024-01-02T00:30+05:30", date(2024, 1, 1)),
    ("2024-03-31T00:59Z", date(2024, 3, 31)), ("2024-10-26T23:00Z", date(2024, 10, 27)),  # the clocks change
    ("2024-06-01 23:00:00", date(2024, 6, 1)),  # a time without its offset is England's own
    ("2024-06-01 23:00:00.000", date(2024, 6, 1)),
    ("1800-01-01T23:30Z", None), ("1801-01-01T23:00:00-05:00", None),  # the HES placeholders stay so
    ("1700-06-01T23:30Z", date(1700, 6, 1)),  # before England kept GMT: the day written
    ("9999-12-31T23:00-05:00", date(9999, 12, 31)),
    ("2024-02-30T23:00Z", None), ("2024-06-01T24:00Z", date(2024, 6, 1)),  # an hour 24 is no instant
]


@pytest.mark.parametrize("value, day", INSTANTS)
def test_an_instant_is_the_day_it_fell_on_in_england(value, day):
    """A time with its offset from UTC (Spark's CSV in a UTC session) is an instant: its date is
    England's (audit.dates.parse_date)."""
    from audit.dates import parse_date

    assert pl.select(parse_date(pl.lit(value))).item() == day


def test_a_column_of_dates_moves_its_instants_only():
    """audit.dates.parse_dates moves the instants among a column's values apart from the rest."""
    from audit.dates import parse_dates

    values = [v for v, _ in INSTANTS] + ["2024-06-01", "01/06/2024", "1800-01-01", "", None, "2024-06-01T23:00:00Z"]
    days = [d for _, d in INSTANTS] + [date(2024, 6, 1), date(2024, 6, 1), None, None, None, date(2024, 6, 2)]
    assert parse_dates(pl.Series("v", values)).to_list() == days
    assert parse_dates(pl.Series("v", values[-6:-1])).to_list() == days[-6:-1]  # (no instant among them)


@pytest.mark.parametrize("as_of", [date(2026, 6, 1), date(2026, 1, 1), date(2024, 3, 1)], ids=str)
def test_the_scan_certifies_no_instant_england_dates_after_as_of(as_of):
    """The record scan's date test for a run's as-of date takes in the as-of day's times without
    an offset, and no instant that fell after it in England; of those on or before it, it leaves
    out only instants written on the day or the next (such a row is triaged in full)."""
    from audit.dates import parse_date, plain_date

    days = [as_of + timedelta(days=n) for n in (-2, -1, 0, 1)]
    times = ["", " 00:00:00", "T23:30", " 23:59:59.999", "T12:00:00Z", "T23:30:00Z", " 23:30+00:00",
             "T20:00-05:00", "T00:30+01:00", "T01:00+0200", " 22:00:00.000000+00:00"]
    values = pl.DataFrame({"v": [f"{d.isoformat()}{t}" for d in days for t in times]})
    judged = values.with_columns(taken=pl.col("v").str.contains(f"^{plain_date(as_of, uk=True)}$"),
                                 day=parse_date(pl.col("v")))
    assert judged.filter(pl.col("taken") & ~(pl.col("day") <= as_of)).height == 0
    left_out = judged.filter(~pl.col("taken") & (pl.col("day") <= as_of))["v"]
    written_on = left_out.str.slice(0, 10).str.to_date()
    assert written_on.is_in(days[2:]).all() and left_out.str.contains("(?:Z|[+-][0-9:]+)$").all()
    on_the_day = judged.filter(pl.col("v").str.starts_with(as_of.isoformat()) & ~pl.col("v").str.contains("[Z+]|:.*-"))
    assert on_the_day["taken"].all() and on_the_day.height == 4
    # The test has instants written on the day that fell after it.
    assert judged.filter(pl.col("v").str.starts_with(as_of.isoformat()) & (pl.col("day") > as_of)).height > 0


IDENTITY_ROWS = st.lists(st.tuples(st.sampled_from(["E1", "E2", "E3", "E10", "e1", None]),
                                   st.sampled_from(["wide", "long"]), st.sampled_from([1, 2, None])), max_size=12)


def _identity(rows: list) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"episode_id": pl.String, "shape": pl.String, "position": pl.Int32},
                        orient="row").with_columns(source_file=pl.lit("0"), source_row=pl.int_range(pl.len(), dtype=pl.Int64))


def _plainly_repeated(frame: pl.DataFrame, shape: str, keys: list[str]) -> set[int]:
    """The rows of `shape` whose `keys` another row of that shape has, by grouping every row."""
    mine = frame.filter(pl.col("shape") == shape)
    repeated = mine.group_by(keys).len().filter(pl.col("len") > 1).drop("len")
    ids = repeated["episode_id"].implode()
    among = mine if shape == "wide" else frame  # a repeated position rejects every row of its episode
    # (pandera passes a check's null outcome: a row without an id is the row checks' to reject)
    return set(among.filter(pl.col("episode_id").is_in(ids).fill_null(False))["source_row"].to_list())


@settings(max_examples=150, deadline=None)
@given(rows=IDENTITY_ROWS, colliding=st.booleans())
def test_the_identity_checks_reject_exactly_the_repeated_rows(rows, colliding):
    """Rows whose episode id (wide) or id and position (long) another row repeats, found from their
    hashes and then their text (schemas.inputs._repeated): the same rows as grouping every row,
    also when every hash collides."""
    frame = _identity(rows)
    original = pl.Expr.hash
    if colliding:
        pl.Expr.hash = lambda self, *args, **kwargs: self.is_null().cast(pl.UInt64) * 0  # every row the same hash
    try:
        wide = set(rejected_rows(frame, IDENTITY_ONE_FILE)["source_row"].to_list())
        long = set(rejected_rows(frame, EPISODE_POSITIONS)["source_row"].to_list())
    finally:
        pl.Expr.hash = original
    assert wide == _plainly_repeated(frame, "wide", ["episode_id"])
    assert long == _plainly_repeated(frame, "long", ["episode_id", "position"])
