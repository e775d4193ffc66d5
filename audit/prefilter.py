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
  `dd/mm/yyyy` date, which text comparison cannot order).

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
from audit.layouts import DATE_FIELDS

SEP = "\x1f"  # ASCII unit separator; a row whose fields contain it is simply audited in full
_CODE = "[A-HJ-Z][0-9]{3}"
_DASH = r"\s*-\s*"  # what audit.codes reads as "-" (it removes white space)
# Clean codes (or empty slots), then only `-` (or empty slots) after the last code.
_ALL_CLEAN = rf"^({_CODE})?({SEP}({_CODE})?)*({SEP}({_DASH})?)*$"
_DASHES_ONLY = rf"^{_DASH}({SEP}({_DASH})?)*$"
# Codes that generic rules look at wherever they stand: spinal operations, V55, overflow codes.
_ALWAYS_AUDITED = rf"(^|{SEP})({'|'.join(sorted(SPINAL_CATEGORIES + ('V55',)))}|O[0-9]{{2}})[0-9]({SEP}|$)"


def _index_pattern(index: tuple[CodePattern, ...]) -> str:
    alternatives = sorted(
        re.escape(p.prefix) + {"exact": "", "category": "[0-9]", "chapter": "[0-9]{3}"}[p.kind]
        for p in index
    )
    return rf"(^|{SEP})({'|'.join(alternatives) or '(?!)'})({SEP}|$)"


def _iso_after(day: date) -> str:
    """A regular expression for an ISO date (yyyy-mm-dd) later than `day`, digit by digit: one
    regular expression over all the row's date fields is much cheaper than parsing each."""
    digits = day.strftime("%Y%m%d")
    layout = "dddd-dd-dd"

    def spelled(chars: list[str]) -> str:
        parts = iter(chars)
        return "".join("-" if slot == "-" else next(parts) for slot in layout)

    alternatives = []
    for i, d in enumerate(digits):
        if d == "9":
            continue
        head = list(digits[:i]) + [f"[{int(d) + 1}-9]"] + ["[0-9]"] * (len(digits) - i - 1)
        alternatives.append(spelled(head))
    return "(" + "|".join(alternatives) + ")"


def _maybe_after(rows: pl.DataFrame, as_of: date) -> pl.Expr:
    """A date field that may be after `as_of`: an ISO date later than it, or any `dd/mm/yyyy`
    value (text cannot order those: the full audit parses them)."""
    columns = [c for c in rows.columns if c.startswith("date_") or c in DATE_FIELDS]
    if not columns:
        return pl.lit(False)
    dates = pl.concat_str([pl.col(c).fill_null("") for c in columns], separator=SEP)
    return dates.str.contains(rf"/|(^|{SEP})\s*{_iso_after(as_of)}")


def triage(rows: pl.DataFrame, slots: list[int], index: tuple[CodePattern, ...],
           known_codes: pl.Series | None = None, as_of: date | None = None) -> pl.DataFrame:
    """Add `needs_audit` (bool), and for the rows that do not need it `filled` (non-empty
    procedure fields) and `no_operation` (how many of them are `-`), so every field is counted.

    With the user's OPCS-4 code list, a clean code that is not in it also needs the audit."""
    if not slots:
        return rows.with_columns(needs_audit=pl.lit(False), filled=pl.lit(0, pl.UInt8), no_operation=pl.lit(0, pl.UInt8))
    fields = pl.col("_fields")
    needs = (
        (fields.str.count_matches(SEP, literal=True) != len(slots) - 1)
        | ~(fields.str.contains(_ALL_CLEAN) | fields.str.contains(_DASHES_ONLY))
        | fields.str.contains(_index_pattern(index))
        | fields.str.contains(_ALWAYS_AUDITED)
        # The first filled field is the primary (blank fields are not slots).
        | fields.str.contains(f"^{SEP}*[YZ]")
    )
    if as_of is not None:
        needs = needs | _maybe_after(rows, as_of)
    if known_codes is not None:
        needs = needs | pl.any_horizontal([
            (pl.col(f"code_{n}").str.contains(f"^{_CODE}$") & ~pl.col(f"code_{n}").is_in(known_codes.implode()))
            .fill_null(False)
            for n in slots
        ])
    return (
        rows.lazy()
        .with_columns(pl.concat_str([pl.col(f"code_{n}").fill_null("") for n in slots], separator=SEP).alias("_fields"))
        .with_columns(
            needs.alias("needs_audit"),
            fields.str.count_matches(f"[^{SEP}]+").cast(pl.UInt8).alias("filled"),
            # In a clean row every `-` is a field of its own (codes hold none).
            fields.str.count_matches("-", literal=True).cast(pl.UInt8).alias("no_operation"),
        )
        .drop("_fields")
        .collect()
    )
