"""Parsing the dates exports write.

Exports mix ISO `yyyy-mm-dd` (HES, SUS) and `dd/mm/yyyy` (PAS reports opened in Excel). HES uses
`1800-01-01` for a null date and `1801-01-01` for an invalid one (HES data dictionary); those
placeholders are treated as no date. An impossible date (`2026-02-30`) is no date too, and is
counted so the report can show it.

A time stamped with its offset from UTC (`2024-06-01T23:00:00Z`, `…+00:00`: Spark writing CSV in
a UTC session, as Databricks does by default) or a Parquet timestamp with a time zone (Spark's
TIMESTAMP_MICROS, pandas' tz-aware times) is an instant: its date is the day it fell on in
England (`ENGLAND`), where the episodes took place. In summer, midnight in London is 23:00 UTC
the day before, which the written date would give.
"""

import calendar
from datetime import date, datetime, time, timedelta

import polars as pl

from audit.layouts import date_column_names

PLACEHOLDERS = (date(1800, 1, 1), date(1801, 1, 1))
# England's civil time, the IANA zone, which polars carries (no system time zone data needed).
ENGLAND = "Europe/London"
# Instants are moved to England's day only from when it kept GMT (railway time, 1 December 1847;
# before it, London's local mean time) to well past any real episode: an instant outside keeps
# the day it was written with, so the HES placeholders stay placeholders, and no value leaves the
# range its type can hold (a nanosecond timestamp wraps round silently).
_ENGLAND_FROM, _ENGLAND_UNTIL = datetime(1848, 1, 1), datetime(2200, 1, 1)
# An ISO date and time of day with its offset from UTC (`Z`, `+01`, `+0100`, `+01:00`): the date,
# hours, minutes, the offset's sign, hours and minutes. Seconds never move an instant's day, as
# offsets are whole minutes.
_INSTANT = (r"^(\d{4}-\d{2}-\d{2})[ T]([01]\d|2[0-3]):([0-5]\d)(?::\d{2}(?:[.,]\d+)?)? ?"
            r"(?:Z|([+-])(\d{2}):?(\d{2})?)$")


def parse_date(raw: pl.Expr) -> pl.Expr:
    """A Date, or null when the value is blank, a placeholder or not a real date. An instant (a
    time with its offset) is the day it fell on in England."""
    return _in_england(raw, _written_day(raw))


def _written_day(raw: pl.Expr) -> pl.Expr:
    """`parse_date` without the instants' move: the day written."""
    parsed = _read_date(raw)
    return pl.when(parsed.is_in(PLACEHOLDERS)).then(None).otherwise(parsed)


def _in_england(raw: pl.Expr, written: pl.Expr) -> pl.Expr:
    """`written` (the date a value spells), or for an instant the day it fell on in England."""
    text = raw.cast(pl.String).str.strip_chars()
    part = lambda n: text.str.extract(_INSTANT, n)  # noqa: E731
    sign = pl.when(part(4) == "-").then(-1).otherwise(1)
    offset_minutes = sign * (part(5).cast(pl.Int64) * 60 + part(6).fill_null("0").cast(pl.Int64)).fill_null(0)
    utc = (written.cast(pl.Datetime("us"))
           + pl.duration(minutes=part(2).cast(pl.Int64) * 60 + part(3).cast(pl.Int64) - offset_minutes))
    moved = utc.dt.replace_time_zone("UTC").dt.convert_time_zone(ENGLAND).dt.date()
    in_range = written.is_between(_ENGLAND_FROM.date(), _ENGLAND_UNTIL.date(), closed="left")
    return pl.when(text.str.contains(_INSTANT) & in_range).then(moved).otherwise(written)


def england_times(schema: pl.Schema) -> list[pl.Expr]:
    """The date columns (audit.layouts.date_column_names) of `schema` holding timestamps with a
    time zone, as England's wall time without one (a Parquet file's, then TYPED_DATES): Spark's
    TIMESTAMP_MICROS and pandas' tz-aware times are instants, most often in UTC."""
    return [_england_time(pl.col(c)) for c in date_column_names(schema.names())
            if isinstance(schema[c], pl.Datetime) and schema[c].time_zone is not None]


def _england_time(instant: pl.Expr) -> pl.Expr:
    """A timestamp with a time zone as England's wall time, without one; outside `_ENGLAND_FROM`
    .. `_ENGLAND_UNTIL`, its wall time as written, as `parse_date` keeps the written day."""
    utc = instant.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    english = instant.dt.convert_time_zone(ENGLAND).dt.replace_time_zone(None)
    in_range = utc.is_between(_ENGLAND_FROM, _ENGLAND_UNTIL, closed="left")
    return pl.when(in_range).then(english).otherwise(instant.dt.replace_time_zone(None))


def _read_date(raw: pl.Expr) -> pl.Expr:
    """The real date a value spells (ISO, a time after it allowed, or UK), placeholders included."""
    text = raw.cast(pl.String).str.strip_chars()
    iso = (
        pl.when(text.str.contains(r"^\d{4}-\d{2}-\d{2}([ T].*)?$"))
        .then(text.str.slice(0, 10))
        .str.to_date("%Y-%m-%d", strict=False)
    )
    uk = (
        pl.when(text.str.contains(r"^\d{1,2}/\d{1,2}/\d{4}$"))
        .then(text)
        .str.to_date("%d/%m/%Y", strict=False)
    )
    parsed = pl.coalesce(iso, uk)
    # Year 0 parses (polars' calendar has one) but is no real date, and Python's has none.
    return pl.when(parsed.dt.year() < 1).then(None).otherwise(parsed)


def parse_dates(values: pl.Series) -> pl.Series:
    """`parse_date` of a column, each distinct value parsed once: an export repeats a few thousand
    dates over millions of fields, and the parse's pattern tests were most of its procedures'
    reshape (512,000 procedure dates of the spinal benchmark: 0.16 s, 0.02 s this way)."""
    if values.len() == 0:
        return pl.Series(values.name, [], pl.Date)
    # The instants among them, a few or none, are moved to England's day apart: the move costs
    # twice the parse (500,000 distinct timestamps: 0.16 s written, 0.48 s moved).
    dated = values.unique().to_frame("value").with_columns(day=_written_day(pl.col("value")))
    instants = dated.filter(pl.col("value").str.strip_chars().str.contains(_INSTANT))
    if instants.height:
        dated = dated.update(instants.with_columns(day=parse_date(pl.col("value"))), on="value", include_nulls=True)
    return values.replace_strict(dated["value"], dated["day"], return_dtype=pl.Date)


def is_unparseable(raw: pl.Expr) -> pl.Expr:
    """A non-blank value that is neither a date nor a known placeholder (in either spelling: a
    UK `01/01/1800` is the HES null date as much as `1800-01-01` is)."""
    text = raw.cast(pl.String).str.strip_chars()
    return (text != "") & _read_date(raw).is_null()


def with_time(day: str, rest: str = ".*") -> str:
    """`day` (a pattern for the date's ten characters), alone or with a time after it: a space or
    `T`, then `rest`. `parse_date` reads the date before it, so such a value is as plain as the
    date alone. SQL Server, Spark and Parquet timestamps written as text look so (`2024-01-31
    00:00:00.000`, `2024-01-31T10:05`): as odd values, every dated row of such an export needed
    the full audit (1M Parquet episodes with timestamp dates: 8.8 s and 2.4 GB)."""
    return f"(?:{day})(?:[ T]{rest})?"

# A plain `yyyy-mm-dd` that is certainly a real date (year 1 on, 29 February in leap years only):
# matching it costs a quarter of parsing, and nearly every value matches. (audit.records tests a
# CSV's date fields with it while it scans the file's lines.)
_YEAR = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
REAL_DATE = (rf"{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
              rf"|(?:0[13578]|1[02])-31)|{_LEAP_YEAR}-02-29")


def odd_date(raw: pl.Expr, uk: bool = False, until: date | None = None) -> pl.Expr:
    """A value that is neither blank nor a plain date that is certainly real (`plain_date`: ISO,
    alone or with a time after it; with `uk`, `dd/mm/yyyy` too): it needs the full
    `is_unparseable` test (false for a null). Every unparseable value is odd; the few rows
    holding an odd value are tested in full. `until`: a plain date that may be after it is odd too
    (`plain_date`'s bound), so that one pattern finds both the rows to test in full and those a
    run's as-of date sends to the audit (audit.prefilter.maybe_after's `later_in_odd`)."""
    # (An optional group, `^(…)?$`, would take in the blank value too, at three times the cost.)
    return ~(raw.str.contains(f"^{plain_date(until, uk=uk)}$") | (raw == "")).fill_null(True)


def any_odd_date(columns: list[str], uk: bool = False, typed: dict[str, pl.DataType] | None = None,
                 until: date | None = None) -> pl.Expr:
    """A row with an odd value (`odd_date`, bounded by `until` when given) in any of these
    columns; false without columns. `typed`: those of them typed as dates (`typed_dates`), tested
    as what they are (never against `until`: audit.prefilter.after_day compares them)."""
    typed = typed or {}
    return pl.any_horizontal([_odd_typed(c, typed[c]) if c in typed else odd_date(pl.col(c), uk, until)
                              for c in columns] or [pl.lit(False)])


def odd_rows(frame: pl.DataFrame, columns: list[str], uk: bool = False, typed: dict[str, pl.DataType] | None = None,
             until: date | None = None) -> pl.Series:
    """`any_odd_date` of each row of `frame` (`_odd_dates`), each text column tested over its
    non-null values only. polars' Parquet decoder appears to leave text behind a string column's
    null slots, and a pattern test over the whole column reads it: HES's later procedure-date
    columns are nearly all null, so a 500,000-row slice's 27 date columns took 286 ms to test so,
    71 ms once their null slots were emptied (itself a rebuild of every column, about 80 ms), and
    82 ms over their non-null values alone, with no rebuild (audit.canonical tests a Parquet
    file's batches so)."""
    typed = typed or {}
    row = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
    odd = [frame.lazy().select(row, _odd_typed(c, typed[c]).alias("_odd")).filter("_odd").select("_row")
           if c in typed else
           frame.lazy().select(row.filter(pl.col(c).is_not_null()), pl.col(c).drop_nulls())
           .filter(odd_date(pl.col(c), uk, until)).select("_row")
           for c in columns]
    flags = pl.Series("_odd_dates", [False] * frame.height, pl.Boolean)
    found = pl.concat(pl.collect_all(odd))["_row"] if odd else pl.Series([], dtype=pl.UInt32)
    return flags.scatter(found, True) if found.len() else flags


# The column types a Parquet file's dates may have that the checks test as they are, rather than
# as text: a date, or a date and time without a time zone in ns, us or ms (Spark writes dates as
# DATE and timestamps as INT96, which polars reads in nanoseconds, or in microseconds; pandas
# writes nanoseconds). Timestamps with a time zone, and Spark's (audit.load.spark_instants), are
# England's wall time by then (`england_times`). Casting them to text cost 0.2-0.4 s per million
# rows, and testing the text as much again. As text, such a value is a plain date in years
# 1-9999, a time perhaps after it.
TYPED_DATES = (pl.Date, pl.Datetime("us"), pl.Datetime("ms"), pl.Datetime("ns"))
_FIRST_DAY, _LAST_DAY = date(1, 1, 1), date(9999, 12, 31)
# What 64-bit nanoseconds hold (1677-09-21 to 2262-04-11): every such value is a plain date.
_NS_FIRST, _NS_LAST = datetime(1677, 9, 22), datetime(2262, 4, 11)


def typed_dates(schema: pl.Schema) -> dict[str, pl.DataType]:
    """The date columns (audit.layouts.date_column_names) of `schema` that hold TYPED_DATES."""
    return {c: schema[c] for c in date_column_names(schema.names()) if schema[c] in TYPED_DATES}


def _odd_typed(column: str, dtype: pl.DataType) -> pl.Expr:
    """A typed date outside years 1-9999, which its text shows as no real date (`odd_date`)."""
    value = pl.col(column)
    if dtype == pl.Date:
        return ~value.is_between(_FIRST_DAY, _LAST_DAY).fill_null(True)
    if dtype == pl.Datetime("ns"):
        return pl.repeat(False, pl.len())
    first, last = datetime.combine(_FIRST_DAY, time()), datetime.combine(_LAST_DAY, time.max)
    return ~value.is_between(pl.lit(first, dtype), pl.lit(last, dtype)).fill_null(True)


def after_day(column: str, dtype: pl.DataType, day: date) -> pl.Expr:
    """A typed date (TYPED_DATES) on a later day than `day` (false for a null)."""
    value = pl.col(column)
    if dtype == pl.Date:
        return (value > day).fill_null(False)
    next_day = datetime.combine(day + timedelta(days=1), time())
    if dtype == pl.Datetime("ns") and not _NS_FIRST <= next_day <= _NS_LAST:  # (no such literal)
        return value.is_not_null() if next_day < _NS_FIRST else pl.repeat(False, pl.len())
    return (value >= pl.lit(next_day, dtype)).fill_null(False)


# Leap days older than this many years before an as-of date are left out of `real_date_until`:
# a row holding one is only triaged in full (a 29 February before 1898, for a run in 2026).
LEAP_DAYS_BACK = 128


def _either(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else f"(?:{'|'.join(choices)})"


def _digits_up_to(limit: str, lowest_first: int = 0) -> str:
    """Digit strings as long as `limit`, from `lowest_first` followed by zeros up to `limit`
    (text order is number order at a fixed length): per place, the same digits before it and a
    smaller one there, then any digits."""
    choices = []
    for place, digit in enumerate(map(int, limit)):
        low = lowest_first if place == 0 else 0
        if digit > low:
            smaller = f"[{low}-{digit - 1}]" if digit - 1 > low else str(low)
            choices.append(limit[:place] + smaller + "[0-9]" * (len(limit) - place - 1))
    return _either(choices + [limit])


def _month_days(months: range, leap: bool, uk: bool = False) -> str:
    """`mm-dd` (`uk`: `dd/mm`) for every real day of these months (29 February only in a `leap`
    year)."""
    def named(keep) -> str:
        return _either([f"{m:02d}" for m in months if keep(m)])

    def pair(month: str, days: str) -> str:
        return f"{days}/{month}" if uk else f"{month}-{days}"
    choices = [pair(named(lambda m: True), "(?:0[1-9]|1[0-9]|2[0-8])")]
    if any(m != 2 for m in months):
        choices.append(pair(named(lambda m: m != 2), "(?:29|30)"))
    if any(calendar.monthrange(2001, m)[1] == 31 for m in months):
        choices.append(pair(named(lambda m: calendar.monthrange(2001, m)[1] == 31), "31"))
    if leap and 2 in months:
        choices.append(pair("02", "29"))
    return _either(choices)


def _days_up_to(last: int) -> str:
    """`dd` from 01 to `last`."""
    if last < 10:
        return "0" + (f"[1-{last}]" if last > 1 else "1")
    return _either(["0[1-9]", _digits_up_to(f"{last:02d}", lowest_first=1)])


def real_date_until(day: date, uk: bool = False) -> str:
    """A pattern like `REAL_DATE` for the real ISO dates (`uk`: `dd/mm/yyyy`) on or before `day` from year 1000 on
    (29 February from `LEAP_DAYS_BACK` years before `day` on): audit.records tests a CSV line's
    date fields with it, so that a line it certifies has no date after the run's as-of date and
    needs no date column parsed. It may leave out a real earlier date (that row is only triaged
    in full), never take in a later or unreal one. Text order is date order for `yyyy-mm-dd`, so
    the earlier years are spelled out place by place (`_digits_up_to`), then `day`'s own year
    month by month."""
    year = day.year

    def dated(years: str, days: str) -> str:  # the year and the day of the year, in the order written
        return f"{days}/{years}" if uk else f"{years}-{days}"
    choices = []
    if year > 1000:
        choices.append(dated(_digits_up_to(f"{year - 1:04d}", lowest_first=1), _month_days(range(1, 13), False, uk)))
        leap_years = [f"{y:04d}" for y in range(max(1000, year - LEAP_DAYS_BACK), year) if calendar.isleap(y)]
        if leap_years:
            choices.append(dated(_either(leap_years), "29/02" if uk else "02-29"))
    this_year = [_month_days(range(1, day.month), calendar.isleap(year), uk)] if day.month > 1 else []
    this_year.append(f"{_days_up_to(day.day)}/{day.month:02d}" if uk else f"{day.month:02d}-{_days_up_to(day.day)}")
    choices.append(dated(f"{year:04d}", _either(this_year)))
    return _either(choices)


# A plain `dd/mm/yyyy` (two-digit day and month) that is certainly a real date, as REAL_DATE.
REAL_UK_DATE = f"(?:(?:{_month_days(range(1, 13), leap=False, uk=True)})/{_YEAR}|29/02/{_LEAP_YEAR})"


def plain_date(until: date | None = None, rest: str = ".*", uk: bool = False) -> str:
    """A value `parse_date` certainly reads as a real date (on or before `until`, when given:
    `real_date_until`): ISO, a time after it allowed (`with_time`, the time `rest`); with `uk`,
    `dd/mm/yyyy` too (two-digit day and month), as a CSV file may write dates (PAS reports opened
    in Excel). A CSV file's UK dates are plain (its row tests read them as dates: `uk` in
    audit.prefilter); in Parquet, which carries ISO text or typed dates, they stay odd."""
    if until is None:
        iso = with_time(REAL_DATE, rest)
    else:
        # An instant on the as-of day (a time with its offset) may be the next day in England
        # (`parse_date`): that day's values are plain only without one.
        iso = (f"(?:{with_time(real_date_until(until - timedelta(days=1)), rest)}"
               f"|{with_time(until.isoformat(), _without_offset(rest))})")
    if not uk:
        return iso
    return f"(?:{iso}|{REAL_UK_DATE if until is None else real_date_until(until, uk=True)})"


def _without_offset(rest: str) -> str:
    """A time `rest` (`.*`, or a class `[^…]*`) that holds none of the characters an offset from
    UTC is written with (`Z`, `+`, `-`)."""
    kept = rest[2:-2] if rest.startswith("[^") and rest.endswith("]*") else r"\n"
    return rf"[^{kept}Z+\-]*"
