"""Parsing the dates exports write.

Exports mix ISO `yyyy-mm-dd` (HES, SUS) and `dd/mm/yyyy` (PAS reports opened in Excel). HES uses
`1800-01-01` for a null date and `1801-01-01` for an invalid one (HES data dictionary); those
placeholders are treated as no date. An impossible date (`2026-02-30`) is no date too, and is
counted so the report can show it.
"""

from datetime import date

import polars as pl

PLACEHOLDERS = (date(1800, 1, 1), date(1801, 1, 1))


def parse_date(raw: pl.Expr) -> pl.Expr:
    """A Date, or null when the value is blank, a placeholder or not a real date."""
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
    return pl.when(parsed.is_in(PLACEHOLDERS) | (parsed.dt.year() < 1)).then(None).otherwise(parsed)


def parse_dates(values: pl.Series) -> pl.Series:
    """`parse_date` of a column, each distinct value parsed once: an export repeats a few thousand
    dates over millions of fields, and the parse's pattern tests were most of its procedures'
    reshape (512,000 procedure dates of the spinal benchmark: 0.16 s, 0.02 s this way)."""
    if values.len() == 0:
        return pl.Series(values.name, [], pl.Date)
    distinct = values.unique()
    parsed = pl.select(parse_date(pl.lit(distinct))).to_series()
    return values.replace_strict(distinct, parsed, return_dtype=pl.Date)


def is_unparseable(raw: pl.Expr) -> pl.Expr:
    """A non-blank value that is neither a date nor a known placeholder."""
    text = raw.cast(pl.String).str.strip_chars()
    return (text != "") & parse_date(raw).is_null() & ~text.str.slice(0, 10).is_in(
        [d.isoformat() for d in PLACEHOLDERS]
    )


# A plain `yyyy-mm-dd` that is certainly a real date (year 1 on, 29 February in leap years only):
# matching it costs a quarter of parsing, and nearly every value matches. (audit.records tests a
# CSV's date fields with it while it scans the file's lines.)
_YEAR = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
REAL_DATE = (rf"{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
              rf"|(?:0[13578]|1[02])-31)|{_LEAP_YEAR}-02-29")


def odd_date(raw: pl.Expr) -> pl.Expr:
    """A value that is neither blank nor a plain ISO date that is certainly real: it needs the
    full `is_unparseable` test (false for a null). Every unparseable value is odd; the few rows
    holding an odd value are tested in full."""
    # (An optional group, `^(…)?$`, would take in the blank value too, at three times the cost.)
    return ~(raw.str.contains(f"^(?:{REAL_DATE})$") | (raw == "")).fill_null(True)


def any_odd_date(columns: list[str]) -> pl.Expr:
    """A row with an odd value (`odd_date`) in any of these columns; false without columns."""
    return pl.any_horizontal([odd_date(pl.col(c)) for c in columns] or [pl.lit(False)])
