"""Which episodes of an export need the full audit.

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
row rather than one per field: about twice as fast on a 24-field HES extract. Joining and testing
them is still most of the prefilter's cost, so for a CSV file without quotes the record scan
(audit.records) first tests each line against `plain_coding`, narrower patterns of clean coding,
while it checks the line's field count; only the rows it cannot certify are triaged (`scanned`,
`triage_flagged`). A long file's rows
are each one field: they are flagged one by one while the file is read, and an episode's flags
are combined in position order (`long_episode_triage`), to the same effect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

import polars as pl

from audit.codes import SPINAL_CATEGORIES, CodePattern
from audit.dates import after_day, any_odd_date, real_date_until, typed_dates
from audit.layouts import date_column_names
from audit.records import Coding
from schemas.inputs import position_number

SEP = "\x1f"  # ASCII unit separator; a row whose fields contain it is simply audited in full
_CODE = "[A-HJ-Z][0-9]{3}"
_DASH = r"\s*-\s*"  # what audit.codes reads as "-" (it removes white space)
# Clean codes (or empty slots), then only `-` (or empty slots) after the last code.
_ALL_CLEAN = rf"^({_CODE})?({SEP}({_CODE})?)*({SEP}({_DASH})?)*$"
_DASHES_ONLY = rf"^{_DASH}({SEP}({_DASH})?)*$"
# Codes that generic rules look at wherever they stand: spinal operations, V55, overflow codes.
_ALWAYS = rf"({'|'.join(sorted(SPINAL_CATEGORIES + ('V55',)))}|O[0-9]{{2}})[0-9]"
_ALWAYS_AUDITED = rf"(^|{SEP}){_ALWAYS}({SEP}|$)"


def _index_alternatives(index: tuple[CodePattern, ...]) -> list[str]:
    return sorted(
        re.escape(p.prefix) + {"exact": "", "category": "[0-9]", "chapter": "[0-9]{3}"}[p.kind]
        for p in index
    )


def _index_pattern(index: tuple[CodePattern, ...]) -> str | None:
    """A field holding one of the index codes; None without any (polars' regular expressions
    have no never-matching pattern such as `(?!)`)."""
    alternatives = _index_alternatives(index)
    return rf"(^|{SEP})({'|'.join(alternatives)})({SEP}|$)" if alternatives else None


CERTIFIED_SLOTS = 8  # the scan certifies rows coded in these first slots only (`plain_coding`)
_LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"  # an OPCS-4 code's first character (`_CODE`: no I)


def _codes_except(prefixes: set[str], depth: int = 0) -> str | None:
    """A clean code (`_CODE`), from its `depth`-th character on, that starts with none of
    `prefixes`; None when there is none. Regular expressions have no set difference, so the
    pattern is spelled out from the prefixes' trie: the characters no prefix starts with, then each
    prefix's first character followed by what its own rest leaves (1-2 kB for the catalogue's index)."""
    if "" in prefixes:
        return None
    alphabet, rest = (_LETTERS if depth == 0 else "0123456789"), "[0-9]" * (3 - depth)
    firsts = {p[0] for p in prefixes} & set(alphabet)  # (a prefix no clean code has excludes nothing)
    free = "".join(c for c in alphabet if c not in firsts)
    parts = [f"[{free}]{rest}"] if free else []
    for first in sorted(firsts):
        after = _codes_except({p[1:] for p in prefixes if p[0] == first}, depth + 1) if depth < 3 else None
        parts += [first + after] if after is not None else []
    return f"(?:{'|'.join(parts)})" if parts else None


# The most characters the pattern of one clean code may take with the index codes left out one by
# one (today's catalogue: 2,095); past it, their whole categories are (1,229).
CODE_PATTERN_BUDGET = 4_000


def _clean_codes(index: tuple[CodePattern, ...]) -> tuple[str | None, str | None]:
    """(any clean code, a clean code that may stand first: not Chapter Y or Z) that fires no rule,
    as patterns. An exact index code is left out alone, so a row holding another code of its
    category (H202 beside the index code H205) is certified, not triaged: 22,419 of the 73,006
    rows of the 1M benchmark that the scan left to triage when whole categories were left out
    (10M CSV: reading and validating 20.2-20.4 -> 17.9-19.0 s). That costs about 20 ms a run to compile the
    line's larger pattern; a catalogue whose codes take more than CODE_PATTERN_BUDGET leaves out
    their categories, as all of them were before."""
    always = {*SPINAL_CATEGORIES, "V55", "O"}
    for fires in ({p.prefix for p in index} | always, {p.prefix[:3] for p in index} | always):
        code, primary = _codes_except(fires), _codes_except(fires | {"Y", "Z"})
        if max(len(code or ""), len(primary or "")) <= CODE_PATTERN_BUDGET:
            break
    return code, primary


def plain_coding(index: tuple[CodePattern, ...], first: int, others: list[int],
                 dates: Sequence[int | None] = ()) -> Coding:
    """Patterns for a wide row's procedure fields, by their place in the record (`first` holds the
    primary slot, `others` the rest in slot order; `dates`, where given, each slot's date field,
    None for a slot without one), that a row coded cleanly and holding nothing that fires a rule
    matches (`triage` would set it aside): the row is certified when its fields match every
    pattern of one of the alternatives. audit.records tests them on each line of a CSV file while
    it scans it, so only the other rows are triaged after parsing (`scanned`), and their lines are
    all the audit needs of their dates and episode fields. They are narrower than `triage` (it
    takes white space around a `-`, and codes after an empty primary slot too), never wider:

    - coded: the primary field a code not from Chapter Y or Z; each of the next
      CERTIFIED_SLOTS - 1 fields empty or a code, up to one from which each of them is empty or
      `-` with an empty date (the padding some PAS exports write into unused slots: a `-` before
      a code needs the audit); every later field empty or `-`;
    - not coded: every field empty or `-` (HES's "no operation" first);
    - and no index code, no spinal operation, V55 or overflow (O) code (`_clean_codes`).

    The pattern of a code is written out for each field, so its size decides what the line's
    pattern costs to compile (once per core); few episodes have more codes than CERTIFIED_SLOTS
    (0.9% of the benchmark's). audit.records writes the fields the alternatives share once (from
    the start and from the end), so the padded alternatives add only their `-` fields, and the
    alternatives cost about what one does to match.
    """
    code, primary = _clean_codes(index)
    padding = dict.fromkeys(others, "-?")
    not_coded = {first: "-?", **padding}
    if primary is None:
        return (not_coded,)
    region = others[:CERTIFIED_SLOTS - 1] if code is not None else []
    date_of = dict(zip([first, *others], dates))
    coded = []
    for n in range(len(region), -1, -1):  # the slots after the primary coded before the padding
        padded_dates = {date_of[s]: "" for s in region[n:] if date_of.get(s) is not None}
        coded.append({first: primary, **padding, **dict.fromkeys(region[:n], f"(?:{code})?"), **padded_dates})
    return (*coded, not_coded)


def maybe_after(date_columns: list[str], as_of: date, odd: pl.Expr | None = None, uk: bool = False,
                typed: dict[str, pl.DataType] | None = None, later_in_odd: bool = False) -> pl.Expr:
    """A date field that may be after `as_of`: a plain ISO date (a time may follow it) later than
    it (ISO text sorts as its date does) or on it with a time, or any value that is not plain
    (`audit.dates.odd_date`: white space before it, `dd/mm/yyyy` unless `uk`; rare in real
    exports, and `parse_date` may read a later date from them). Every value the full audit could
    read as a later date is among these; text comparison and one regular expression cost far less
    than parsing every field.
    `odd`: a column already flagging the rows with such a value (audit.canonical's), not to test
    them twice. `uk` (a CSV file's dates): a `dd/mm/yyyy` date is plain, and its text does not
    sort as its date, so one with a `/` is later unless it is a real UK date on or before the day
    (a test per column, kept to CSV files: on a 1M Parquet run it cost 7%). `typed`: the columns
    a Parquet file types as dates (`audit.dates.typed_dates`), compared as dates. `later_in_odd`:
    `odd` flags every text value that may be after `as_of` too (`audit.dates.any_odd_date`'s
    `until`: one bounded pattern per column, where the test and the comparison were two: a
    500,000-row Parquet slice's date checks 215 -> 174 ms), so only typed columns are compared."""
    if not date_columns:
        return pl.lit(False)
    typed = typed or {}
    # Later than the as-of day itself: the day with a time after it (audit.dates.with_time) sorts
    # after it too, and is taken in, as an instant that day (a time with its offset from UTC) may
    # be the next day in England (audit.dates.parse_date); those are a day's rows at most.
    day = as_of.isoformat()
    uk_until = f"^(?:{real_date_until(as_of, uk=True)})$" if uk else None

    def later(value: pl.Expr) -> pl.Expr:
        if uk_until is None:
            return (value > day).fill_null(False)
        written_uk = value.str.contains("/", literal=True)
        return pl.when(written_uk).then(~value.str.contains(uk_until)).otherwise(value > day).fill_null(False)
    later_day = pl.any_horizontal([after_day(c, typed[c], as_of) if c in typed else later(pl.col(c))
                                   for c in date_columns if c in typed or not later_in_odd] or [pl.lit(False)])
    return later_day | (odd if odd is not None else any_odd_date(date_columns, uk, typed))


def _fields_need_audit(fields: pl.Expr, present: pl.Expr, index: tuple[CodePattern, ...]) -> pl.Expr:
    """The tests on the joined string of one episode's procedure fields (`present`: how many
    fields were joined): two regular expressions, each an alternation (one pass over the text
    each), for clean coding and for a value that can fire a rule."""
    clean = f"{_ALL_CLEAN}|{_DASHES_ONLY}"
    # The first filled field is the primary (blank fields are not slots): a Y/Z code there.
    fires = "|".join(p for p in (_index_pattern(index), _ALWAYS_AUDITED, f"^{SEP}*[YZ]") if p)
    # Null (absent) fields are left out of the joined string, which costs half as much to build as
    # one with every slot; the patterns allow empty fields anywhere, so they read it the same way.
    # A separator inside a field shows as more separators than the fields present (less one).
    return (
        (fields.str.count_matches(SEP, literal=True) != (present - 1).clip(0))
        | ~fields.str.contains(clean)
        | fields.str.contains(fires)
    )


def _row_needs_audit(schema: pl.Schema, code_columns: list[str], known_codes: pl.Series | None,
                     as_of: date | None, odd_dates: pl.Expr | None, uk: bool = False,
                     later_in_odd: bool = False) -> pl.Expr:
    """What needs the audit field by field rather than from the joined string: a date that may be
    after `as_of` (`uk`, `later_in_odd`: see `maybe_after`), a clean code missing from the user's code list.
    `schema`: the rows', whose date columns (typed or text) are tested."""
    needs = pl.lit(False)
    if as_of is not None:
        needs = needs | maybe_after(date_column_names(schema.names()), as_of, odd_dates, uk, typed_dates(schema),
                                    later_in_odd)
    if known_codes is not None:
        as_text = [pl.col(c).cast(pl.String) for c in code_columns]  # (a narrow read's codes are categories)
        needs = needs | pl.any_horizontal([
            (code.str.contains(f"^{_CODE}$") & ~code.is_in(known_codes.implode())).fill_null(False)
            for code in as_text
        ])
    return needs


def triage(rows: pl.LazyFrame, slots: list[int], index: tuple[CodePattern, ...],
           known_codes: pl.Series | None = None, as_of: date | None = None,
           odd_dates: pl.Expr | None = None, uk: bool = False, later_in_odd: bool = False) -> pl.LazyFrame:
    """Add `needs_audit` (bool), and for the rows that do not need it `filled` (non-empty
    procedure fields) and `no_operation` (how many of them are `-`), so every field is counted.

    With the user's OPCS-4 code list, a clean code that is not in it also needs the audit.
    Lazy: audit.canonical runs it inside the file's one streaming query, and passes its own flag
    of rows with an odd date value as `odd_dates` (`uk`: a CSV file's; `later_in_odd`: see
    `maybe_after`)."""
    if not slots:
        return rows.with_columns(needs_audit=pl.lit(False), filled=pl.lit(0, pl.UInt8), no_operation=pl.lit(0, pl.UInt8))
    fields = pl.col("_fields")
    present = pl.sum_horizontal([pl.col(f"code_{n}").is_not_null() for n in slots]).cast(pl.Int32)
    needs = _fields_need_audit(fields, present, index) | _row_needs_audit(
        rows.collect_schema(), [f"code_{n}" for n in slots], known_codes, as_of, odd_dates, uk, later_in_odd)
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


TO_TRIAGE = "_to_triage"  # a row the record scan could not certify clean, triaged once read whole
# (`triage_flagged`; a narrow read parses it from its line and triages it there: audit.canonical._checks)
_COUNTS = ["needs_audit", "filled", "no_operation"]


def scanned(rows: pl.LazyFrame, slots: list[int], to_triage: pl.Expr, known_codes: pl.Series | None = None,
            as_of: date | None = None, odd_dates: pl.Expr | None = None, uk: bool = False) -> pl.LazyFrame:
    """`triage`'s columns where the record scan has tested each row's coding (`plain_coding`):
    a row it certified is coded cleanly and fires nothing, so its fields are only counted (each
    `-` is a whole field: the primary's, or padding); `to_triage` flags the others, for
    `triage_flagged` to triage once the batch is read (a few percent of an extract: the joined
    fields' tests are most of the prefilter's cost). What needs the audit field by field is tested on every row (where
    the scan also tested the dates against the as-of date, a narrow batch has none to test)."""
    codes = [pl.col(f"code_{n}") for n in slots]
    return rows.with_columns(
        to_triage.alias(TO_TRIAGE),
        _row_needs_audit(rows.collect_schema(), [f"code_{n}" for n in slots], known_codes, as_of, odd_dates,
                         uk).alias("needs_audit"),
        # (A quoted empty field, `""`, is parsed as empty text, not null: as empty as a null.)
        pl.sum_horizontal((code != "").fill_null(False) for code in codes).cast(pl.UInt8).alias("filled"),
        pl.sum_horizontal((code == "-").fill_null(False) for code in codes).cast(pl.UInt8).alias("no_operation"),
    )


def triage_flagged(batch: pl.DataFrame, slots: list[int], index: tuple[CodePattern, ...],
                   known_codes: pl.Series | None = None, as_of: date | None = None,
                   odd_dates: str | None = None, uk: bool = False) -> pl.DataFrame:
    """A `scanned` batch with its flagged rows triaged in full, in place, in one query over those
    rows' procedure and date fields. `odd_dates`: the batch's column of rows that may hold an odd
    date (the scan flags every row it leaves to triage so): made exact for the flagged rows first,
    so the full date test later runs on the few that have one (on every flagged row it cost 0.2 s
    per million rows)."""
    flagged = batch[TO_TRIAGE]
    if not flagged.any():
        return batch
    dates = date_column_names(batch.columns)
    rows = batch.lazy().select(*[f"code_{n}" for n in slots], *dates).filter(flagged)  # (not every column copied)
    redone = list(_COUNTS)
    if odd_dates is not None:
        odd = any_odd_date(dates, uk, typed_dates(batch.schema))
        rows, redone = rows.with_columns(odd.alias(odd_dates)), [*redone, odd_dates]
    exact = triage(rows, slots, index, known_codes, as_of, pl.col(odd_dates) if odd_dates else None, uk)
    return replace_rows(batch, flagged, exact.select(redone).collect())


def replace_rows(batch: pl.DataFrame, flagged: pl.Series, values: pl.DataFrame) -> pl.DataFrame:
    """`batch` with its `flagged` rows' columns replaced by `values` (one row per flagged row, in order)."""
    where = flagged.arg_true()
    return batch.with_columns(batch[name].clone().scatter(where, values[name]) for name in values.columns)


# A long file's rows, flagged in its streaming query for `long_episode_triage`.
ROW_NEEDS = "_row_needs"  # this row alone needs the audit (a code that fires, a date, the code list)
LONG_FLAGS = [ROW_NEEDS, "_code", "_dash", "_yz", "_position"]


def long_row_triage(rows: pl.LazyFrame, index: tuple[CodePattern, ...], known_codes: pl.Series | None = None,
                    as_of: date | None = None, odd_dates: pl.Expr | None = None, uk: bool = False,
                    later_in_odd: bool = False) -> pl.LazyFrame:
    """A long file's part of the triage, row by row inside its streaming query: what needs the
    audit in this field alone, the field's shape (a clean code, `-`, a Chapter Y/Z start) and its
    position; `filled` and `no_operation` count it (each row is one field). Whether the episode
    needs the audit is known only from all its rows: `long_episode_triage`."""
    code = pl.col("code_raw")
    fires = "|".join([*_index_alternatives(index), _ALWAYS])
    return rows.with_columns(
        (code.str.contains(f"^({fires})$").fill_null(False)
         | _row_needs_audit(rows.collect_schema(), ["code_raw"], known_codes, as_of,
                            odd_dates, uk, later_in_odd)).alias(ROW_NEEDS),
        code.str.contains(f"^{_CODE}$").fill_null(False).alias("_code"),
        code.str.contains(f"^{_DASH}$").fill_null(False).alias("_dash"),
        code.str.contains("^[YZ]").fill_null(False).alias("_yz"),
        position_number(pl.col("position")).alias("_position"),
        code.is_not_null().cast(pl.UInt8).alias("filled"),
        code.str.contains("-", literal=True).fill_null(False).cast(pl.UInt8).alias("no_operation"),
    )


def long_episode_triage(batch: pl.DataFrame, accepted: pl.Expr, *also: pl.Expr) -> pl.DataFrame:
    """Each episode of a long batch that holds whole episodes once, from its `accepted` rows:
    `needs_audit`, from their flags (the tests a wide row's joined fields get, read field by field
    in position order: every accepted long row has a code, so there are no empty fields), and the
    aggregations `also` (audit.canonical's test for a repeated position), so the batch's rows are
    grouped by their text id once. An episode is set aside exactly when the same episode written
    wide would be: every field a clean code or `-`, every `-` after the last code, none that
    fires a rule, no Chapter Y/Z code first. One row per episode: few of a batch's episodes need
    the audit, so no column of the batch is copied to say it."""
    position = pl.col("_position")
    needs = (pl.col(ROW_NEEDS) | ~pl.col("shaped") | (pl.col("first_yz") == position).fill_null(False)
             | (pl.col("last_code") > pl.col("first_dash")).fill_null(False))
    return (
        batch.lazy().filter(accepted)
        .with_columns(last_code=pl.when(pl.col("_code")).then(position),
                      first_dash=pl.when(pl.col("_dash")).then(position),
                      first_yz=pl.when(pl.col("_yz")).then(position),
                      shaped=pl.col("_code") | pl.col("_dash"))
        .group_by("episode_id")
        .agg(pl.col(ROW_NEEDS).any(), pl.col("shaped").all(), pl.col("last_code").max(),
             pl.col("first_dash").min(), pl.col("first_yz").min(), position.min(), *also)
        .select("episode_id", needs.alias("needs_audit"), *[pl.col(a.meta.output_name()) for a in also])
        .collect()
    )
