"""Which rows of a wide export need the full audit.

Most episodes in a national extract carry no NICE index code and are coded cleanly. Such an
episode can fire no rule, so it is counted and set aside before the expensive reshaping to one
row per procedure. An episode needs the full audit when any procedure field

- holds anything but a clean four-character code (lower case, dots, spaces, a fifth character,
  `&`, invalid values) — except `-` in slots after the last code, or in every filled slot: HES's
  "no operation" in position 1, and the padding some PAS exports write into unused slots, fire no
  rule (audit/rules/generic.py) and are counted as no-operation markers;
- holds a guidance's index code (exact code or category);
- holds a spinal operation code or a V55 code (the V55 rule applies to every spinal operation),
  or an overflow (O) code (its chapter decides whether it is an action, a method or a site);
- or the first filled field holds a Chapter Y or Z code;
- or, given the user's OPCS-4 code list, holds a code that is not in it;
- or, given the run's as-of date, a date field may be after it (an ISO date later than it, or any
  value that is not a plain ISO date, such as `dd/mm/yyyy`).

The generic rules fire only on such values, and guidance rules only on index codes, so the
findings are identical with and without the prefilter (tests/test_equivalence.py checks this).

The fields are joined into one string per row so that each test is one regular expression per
row rather than one per field: about twice as fast on a 24-field HES extract.
"""

from __future__ import annotations

import re
from datetime import date

import polars as pl

from audit.codes import SPINAL_CATEGORIES, CodePattern
from audit.dates import odd_date
from audit.layouts import DATE_FIELDS

SEP = "\x1f"  # ASCII unit separator; a row whose fields contain it is simply audited in full
_CODE = "[A-HJ-Z][0-9]{3}"
_DASH = r"\s*-\s*"  # what audit.codes reads as "-" (it removes white space)
# Clean codes (or empty slots), then only `-` (or empty slots) after the last code.
_ALL_CLEAN = rf"^({_CODE})?({SEP}({_CODE})?)*({SEP}({_DASH})?)*$"
_DASHES_ONLY = rf"^{_DASH}({SEP}({_DASH})?)*$"
# Codes that generic rules look at wherever they stand: spinal operations, V55, overflow codes.
_ALWAYS_AUDITED = rf"(^|{SEP})({'|'.join(sorted(SPINAL_CATEGORIES + ('V55',)))}|O[0-9]{{2}})[0-9]({SEP}|$)"


def _index_pattern(index: tuple[CodePattern, ...]) -> str | None:
    """A field holding one of the index codes; None without any (polars' regular expressions
    have no never-matching pattern such as `(?!)`)."""
    alternatives = sorted(
        re.escape(p.prefix) + {"exact": "", "category": "[0-9]", "chapter": "[0-9]{3}"}[p.kind]
        for p in index
    )
    return rf"(^|{SEP})({'|'.join(alternatives)})({SEP}|$)" if alternatives else None


def maybe_after(date_columns: list[str], as_of: date, odd: pl.Expr | None = None) -> pl.Expr:
    """A date field that may be after `as_of`: a plain ISO date later than it (ISO text sorts as
    its date does), or any value that is not a plain real ISO date (`dd/mm/yyyy`, white space, a
    time part: rare in real exports, and `audit.dates.parse_date` may read a later date from
    them). Every value the full audit could read as a later date is among these; text
    comparison and one regular expression cost far less than parsing every field. `odd`: a column
    already flagging the rows with such a value (audit.canonical's), not to test them twice."""
    if not date_columns:
        return pl.lit(False)
    day = as_of.isoformat()
    later = pl.any_horizontal([(pl.col(c) > day).fill_null(False) for c in date_columns])
    return later | (odd if odd is not None else pl.any_horizontal([odd_date(pl.col(c)) for c in date_columns]))


def triage(rows: pl.LazyFrame, slots: list[int], index: tuple[CodePattern, ...],
           known_codes: pl.Series | None = None, as_of: date | None = None,
           odd_dates: pl.Expr | None = None) -> pl.LazyFrame:
    """Add `needs_audit` (bool), and for the rows that do not need it `filled` (non-empty
    procedure fields) and `no_operation` (how many of them are `-`), so every field is counted.

    With the user's OPCS-4 code list, a clean code that is not in it also needs the audit.
    Lazy: audit.canonical runs it inside the file's one streaming query, and passes its own flag
    of rows with an odd date value as `odd_dates`."""
    if not slots:
        return rows.with_columns(needs_audit=pl.lit(False), filled=pl.lit(0, pl.UInt8), no_operation=pl.lit(0, pl.UInt8))
    fields = pl.col("_fields")
    # Two regular expressions, each an alternation (one pass over the text each): clean coding,
    # and a value that can fire a rule.
    clean = f"{_ALL_CLEAN}|{_DASHES_ONLY}"
    # The first filled field is the primary (blank fields are not slots): a Y/Z code there.
    fires = "|".join(p for p in (_index_pattern(index), _ALWAYS_AUDITED, f"^{SEP}*[YZ]") if p)
    # Null (absent) fields are left out of the joined string, which costs half as much to build as
    # one with every slot; the patterns allow empty fields anywhere, so they read it the same way.
    # A separator inside a field shows as more separators than the fields present (less one).
    present = pl.sum_horizontal([pl.col(f"code_{n}").is_not_null() for n in slots]).cast(pl.Int32)
    needs = (
        (fields.str.count_matches(SEP, literal=True) != (present - 1).clip(0))
        | ~fields.str.contains(clean)
        | fields.str.contains(fires)
    )
    if as_of is not None:
        dates = [c for c in rows.collect_schema().names() if c.startswith("date_") or c in DATE_FIELDS]
        needs = needs | maybe_after(dates, as_of, odd_dates)
    if known_codes is not None:
        needs = needs | pl.any_horizontal([
            (pl.col(f"code_{n}").str.contains(f"^{_CODE}$") & ~pl.col(f"code_{n}").is_in(known_codes.implode()))
            .fill_null(False)
            for n in slots
        ])
    return (
        rows.with_columns(pl.concat_str([pl.col(f"code_{n}") for n in slots], separator=SEP, ignore_nulls=True)
                          .fill_null("").alias("_fields"))
        .with_columns(
            needs.alias("needs_audit"),
            # Non-empty fields: runs of anything but the separator.
            fields.str.count_matches(f"[^{SEP}]+").cast(pl.UInt8).alias("filled"),
            # In a clean row every `-` is a field of its own (codes hold none).
            fields.str.count_matches("-", literal=True).cast(pl.UInt8).alias("no_operation"),
        )
        .drop("_fields")
    )
