"""Seeded, synthetic HES-style episode exports for the benchmark and its tests.

    python tests/benchmarks/generate.py OUT.csv --episodes N [--seed S] [--mix hes|padded|spinal]
                                        [--parquet OUT.parquet] [--long OUT_LONG.csv]

The file has the HES wide layout the audit reads (`EPIKEY`, episode dates, provider, specialty,
consultant, `OPERTN_01..24` / `OPDATE_01..24`) plus columns the audit must not read (`SEX`,
`STARTAGE`, `DIAG_01..04`, `PSEUDO_HESID`), so reading only the needed columns matters.

The default mix, `hes` (rates are per episode):

- procedures per episode mostly 0-8; about 40% have none (`OPERTN_01` is `-`);
- every other episode is a run of ordinary action codes from a weighted pool, each optionally
  followed by Chapter Y/Z qualifiers; none of them is a catalogue index code;
- about 3.5% follow a template (`TEMPLATES`), each in compliant and broken variants: 1% V52.2
  (IPG319, with a not_with method that makes it "possible"), 1% V40.1 (IPG366), 1% another spinal
  operation that no code set audits (V25.2, V29.4, V38.2: the generic V55 rule alone, with V55
  missing, late or repeated), 0.5% other code sets (IPG387 with its V38.8 companion, IPG352,
  IPG336). So about 3% of episodes hold a spinal operation (audit/spinal_operations.csv). V52.2
  episodes are dated before 2016 three times in four, the rest fall after IPG319 was superseded;
- about 0.1% each: a Y/Z code at position 1, codes after a `-` primary, codes after a `&`
  primary, a `-` between codes, an invalid value (`V5`, `12345`, ...), an episode dated in 2090
  (after any as-of date), and lower-case or dotted spellings (`v52.2`);
- dates are ISO, episodes start 2010-2024; about 80% of procedures have an OPDATE.

The other mixes of the issue-15 benchmark (`MIXES`): `padded`, the same episodes with every unused
slot after the last code filled with `-` in 30% of rows (some PAS exports pad so); `spinal`, a
targeted spinal-surgery extract: 3-8 codes per episode, about 60% of episodes from the spinal
templates. `--long` also writes the export in the long layout (one row per procedure).

Generation is vectorised (polars expressions, no per-row Python) and written in chunks, so 10M
episodes take bounded memory. Randomness is counter-based (SplitMix64 of seed and row number,
computed with polars' wrapping UInt64 arithmetic): a row depends only on the seed and its row
number, so the output is the same byte for byte whatever the chunk size, and does not depend on
polars' own random generator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

# Bump when the generated content changes, so cached benchmark inputs are regenerated.
GENERATOR_VERSION = 2
DEFAULT_SEED = 20261121
SLOTS = 24

EPISODE_COLUMNS = ["EPIKEY", "ADMIDATE", "EPISTART", "EPIEND", "PROCODE3", "TRETSPEF", "CONSULT"]
PROCEDURE_COLUMNS = [name for n in range(1, SLOTS + 1) for name in (f"OPERTN_{n:02d}", f"OPDATE_{n:02d}")]
EXTRA_COLUMNS = ["SEX", "STARTAGE", "DIAG_01", "DIAG_02", "DIAG_03", "DIAG_04", "PSEUDO_HESID"]
HEADER = EPISODE_COLUMNS + PROCEDURE_COLUMNS + EXTRA_COLUMNS

# --- Rates ---------------------------------------------------------------------------------------

DATA_QUALITY_RATE = 0.001  # each kind
OPDATE_RATE = 0.80
QUALIFIER_RATE = 0.35  # chance that a slot after the first holds a Y/Z qualifier
SPINAL_PREFIX_RATE = 0.15  # another operation coded before the spinal one
SPINAL_SUFFIX_RATE = 0.20  # another operation coded after it
V522_BEFORE_2016 = 0.75

# P(number of procedures = k), k = 0..8; the rest is spread evenly over 9..24.
COUNT_WEIGHTS = [0.40, 0.22, 0.13, 0.09, 0.06, 0.04, 0.025, 0.015, 0.01]

FIRST_DAY = date(2010, 1, 1)
LAST_DAY = date(2024, 12, 31)
FUTURE_DAY = date(2090, 6, 1)  # the date-in-future cases: after any as-of date a run will use
SUPERSEDED_FROM = date(2016, 1, 1)  # IPG319 replaced by IPG544

# --- Code pools (none is an index code of any catalogue code set) ------------------------------

ACTION_CODES = [
    "X403", "H223", "G451", "C751", "W371", "W401", "M459", "R249", "T202", "K401",
    "L859", "H251", "C712", "R179", "X292", "U051", "A521", "H011", "J183", "Q073",
    "D151", "F341", "E031", "S069", "U212", "X352", "W903", "W381", "M421", "N303",
    "B281", "Q105", "T411", "X339", "W081", "E081", "G211", "H202", "K634", "M651",
]
QUALIFIER_CODES = [
    "Y534", "Z943", "Z942", "Z941", "Y981", "Y752", "Y751", "Y731", "Y532", "Z921",
    "Z271", "Z504", "Y022", "Y082", "Z281", "Y261", "Y703", "Z923", "Y539", "Z891",
]
INVALID_VALUES = ["V5", "12345", "I123", "W37", "X40311"]
PROVIDERS = [
    "RTH", "RRK", "RX1", "RJ1", "RR8", "RW3", "RAL", "RYJ", "RHQ", "RTD", "RM1", "RDE", "REF",
    "RWE", "RXH", "RA7", "RBZ", "RGT", "RHM", "RJ7", "RK9", "RKB", "RNA", "RP5", "RQ3", "RTE",
]
SPECIALTIES = [
    "100", "101", "110", "120", "130", "140", "150", "160", "170", "180", "191", "300", "301",
    "320", "340", "400", "420", "430", "501", "502", "560", "650", "800", "108", "302", "361",
]
DIAGNOSES = [
    "M545", "M511", "K802", "I251", "N390", "C509", "O800", "Z380", "R074", "J189", "E119",
    "I10X", "K359", "S720", "H251", "M179", "M161", "K409", "N400", "I489", "R100", "F329",
]

# Template sequences: (name, codes, weight); weights sum to 100 in each group. The group decides
# the dates (V522: mostly before IPG319 was superseded) and the statistics' names ("V522 compliant").
TEMPLATES = {
    "V522": [
        ("compliant", "V522 V551 Y102 Y534 Z992", 36),
        ("other-method-possible", "V522 V551 Y114 Y534 Z992", 4),
        ("compliant-two-levels", "V522 V552 Y102 Y534 Z992", 10),
        ("levels-missing", "V522 Y102 Y534 Z992", 8),
        ("approach-missing", "V522 V551 Y102 Z992", 8),
        ("site-missing", "V522 V551 Y102 Y534", 8),
        ("order-broken", "V522 V551 Y102 Z992 Y534", 8),
        ("approach-unspecified", "V522 V551 Y102 Y539 Z992", 6),
        ("method-missing", "V522 V551 Y534 Z992", 6),
        ("levels-unspecified", "V522 V559 Y102 Y534 Z992", 3),
        ("site-not-recommended", "V522 V551 Y102 Y534 Z676", 3),
    ],
    "V401": [
        ("compliant", "V401 V552 Y534 Z676", 45),
        ("compliant-open", "V401 V552 Z676", 10),
        ("compliant-laterality", "V401 V552 Y534 Z676 Z942", 5),
        ("levels-missing", "V401 Y534 Z676", 10),
        ("site-missing", "V401 V552 Y534", 10),
        ("laterality-not-site", "V401 V552 Y534 Z942", 5),
        ("order-broken", "V401 V552 Z676 Y534", 10),
        ("approach-unspecified", "V401 V552 Y539 Z676", 5),
    ],
    # Spinal operations no code set audits: only the generic rule that V55 comes directly after
    # each spinal operation (NICE IPG319/IPG366 pages; audit/spinal_operations.csv) applies.
    "spinal": [
        ("compliant", "V252 V551 Z993", 35),
        ("compliant-fusion", "V382 V552 Y038 Z994", 20),
        ("compliant-two-operations", "V252 V551 V382 V552 Z994", 5),
        ("levels-missing", "V294 Z993", 15),
        ("levels-late", "V252 Z993 V551", 10),
        ("levels-repeated", "V382 V551 V552 Z994", 15),
    ],
    # Other code sets, so that the companion, method and approach rules of other guidance run.
    "guidance": [
        ("IPG387 compliant", "V338 V551 Y534 V388 V551 Y534 Z676", 15),  # the page's worked sequence
        ("IPG387 site-missing", "V338 V551 Y534 V388 V551 Y534", 10),
        ("IPG504 compliant", "K268 Y792 Y534 U202", 15),
        ("IPG504 companion-missing", "K268 Y792 Y534", 15),
        ("IPG352 compliant", "K358 Y022 Y534 Z321 U202", 15),
        ("IPG352 method-missing", "K358 Y534 Z321 U202", 10),
        ("IPG336 compliant", "K131 Y534", 10),
        ("IPG336 approach-missing", "K131 Z321", 10),
    ],
}
TEMPLATE_GROUPS = tuple(TEMPLATES)
DATA_QUALITY_KINDS = ("yz_primary", "codes_after_no_operation", "codes_after_not_known", "no_operation_between",
                      "invalid_value", "future_date", "odd_spelling", "undated")
UNDATED_RATE = 0.02  # of template episodes: no procedure or episode date at all (date-missing)

# --- Counter-based random numbers ----------------------------------------------------------------

_U64 = pl.UInt64
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
STREAMS = 34  # independent 64-bit draws per row


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK64, _U64)


def _shr(x: pl.Expr, bits: int) -> pl.Expr:
    return x // _u64(1 << bits)


def _mix64(z: pl.Expr) -> pl.Expr:
    """SplitMix64's finaliser, in wrapping UInt64 arithmetic."""
    z = (z ^ _shr(z, 30)) * _u64(0xBF58476D1CE4E5B9)
    z = (z ^ _shr(z, 27)) * _u64(0x94D049BB133111EB)
    return z ^ _shr(z, 31)


def _seed_key(seed: int) -> int:
    """Scramble the seed in plain Python (same constants) so nearby seeds give unrelated streams."""
    z = (seed * _GOLDEN + 0x2545F4914F6CDD1D) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _draw(key: int, stream: int) -> pl.Expr:
    """A 64-bit draw for each row (column `row`) from one of the STREAMS streams."""
    counter = pl.col("row") * _u64(STREAMS) + _u64(stream)
    return _mix64(counter * _u64(_GOLDEN) + _u64(key))


def _bits(column: str, lo: int, width: int) -> pl.Expr:
    """Bits lo .. lo+width-1 of a draw column, as UInt64."""
    return _shr(pl.col(column), lo) % _u64(1 << width)


def _chance(column: str, lo: int, p: float, width: int = 16) -> pl.Expr:
    """True with probability p (to 1/2**width) from bits lo.. of a draw."""
    return _bits(column, lo, width) < _u64(round(p * (1 << width)))


def _pick(pool: list, index: pl.Expr, dtype=pl.String) -> pl.Expr:
    """pool[index % len(pool)], as a vectorised gather from a literal lookup table."""
    return pl.lit(pl.Series(pool, dtype=dtype)).gather((index % _u64(len(pool))).cast(pl.Int64))


def _weighted(items: list[tuple[object, int]]) -> list:
    return [value for value, weight in items for _ in range(weight)]


def _zipf_pool(codes: list[str]) -> list[str]:
    """A lookup table where earlier codes are commoner (weight ~ 1/rank)."""
    return _weighted([(code, 1 + round(60 / (rank + 1))) for rank, code in enumerate(codes)])


def _count_table(head: list[float], size: int = 4096) -> list[int]:
    """A lookup table whose uniform index gives the number of procedures in an episode:
    P(k) = head[k] for k < len(head); the rest is spread evenly over the larger k."""
    rest = (1.0 - sum(head)) / (SLOTS - len(head) + 1)
    weights = head + [rest] * (SLOTS - len(head) + 1)
    table, total = [], 0.0
    for k, weight in enumerate(weights):
        total += weight
        table += [k] * (round(total * size) - len(table))
    return table + [SLOTS] * (size - len(table))


def _as_iso(days: pl.Expr) -> pl.Expr:
    """Days since 1970-01-01 -> `yyyy-mm-dd`."""
    return days.cast(pl.Int32).cast(pl.Date).dt.to_string("%Y-%m-%d")


_EPOCH = date(1970, 1, 1)
_FIRST = (FIRST_DAY - _EPOCH).days
_SPAN = (LAST_DAY - FIRST_DAY).days + 1
_BEFORE_2016 = (SUPERSEDED_FROM - FIRST_DAY).days
_AFTER_2016 = (LAST_DAY - SUPERSEDED_FROM).days + 1
_FUTURE = (FUTURE_DAY - FIRST_DAY).days

ACTION_POOL = _zipf_pool(ACTION_CODES)
QUALIFIER_POOL = _zipf_pool(QUALIFIER_CODES)
TEMPLATE_ROWS = {group: _weighted([((name, seq.split()), w) for name, seq, w in rows])
                 for group, rows in TEMPLATES.items()}
assert all(len(rows) == 100 for rows in TEMPLATE_ROWS.values())
# Template i (0 .. 100 * groups - 1): group TEMPLATE_GROUPS[i // 100], variant i % 100.
TEMPLATE_NAMES = [f"{group} {name}" for group in TEMPLATE_GROUPS for name, _ in TEMPLATE_ROWS[group]]
TEMPLATE_CODES = [codes for group in TEMPLATE_GROUPS for _, codes in TEMPLATE_ROWS[group]]


@dataclass(frozen=True)
class Mix:
    """What kind of export to write: how many episodes follow a template, from which groups, how
    many codes the others hold, and how many rows pad their unused slots with `-`."""

    name: str
    template_rate: float
    groups: dict[str, int]  # template group -> weight
    counts: tuple[float, ...] = tuple(COUNT_WEIGHTS)  # P(k procedures) for the ordinary episodes
    pad_rate: float = 0.0

    def group_table(self) -> list[int]:
        """256 entries: a uniform byte gives the index of the template group."""
        total = sum(self.groups.values())
        table: list[int] = []
        for group, weight in self.groups.items():
            table += [TEMPLATE_GROUPS.index(group)] * round(weight / total * 256)
        return (table + table[-1:] * 256)[:256]


_HES_GROUPS = {"V522": 2, "V401": 2, "spinal": 2, "guidance": 1}  # 1%, 1%, 1%, 0.5% at 3.5%
MIXES = {
    "hes": Mix("hes", 0.035, _HES_GROUPS),
    "padded": Mix("padded", 0.035, _HES_GROUPS, pad_rate=0.30),
    # A spinal-surgery extract: every ordinary episode holds 3-8 codes, 60% follow a spinal template.
    "spinal": Mix("spinal", 0.60, {"V522": 1, "V401": 1, "spinal": 1},
                  counts=(0.0, 0.0, 0.0) + (1 / 6,) * 6),
}


# --- Procedure codes -----------------------------------------------------------------------------
# Each slot j draws an action code and a qualifier (draw _r{8 + j}).


def _action(j: int) -> pl.Expr:
    return _pick(ACTION_POOL, _bits(f"_r{8 + j}", 16, 16))


def _qualifier(j: int) -> pl.Expr:
    return _pick(QUALIFIER_POOL, _bits(f"_r{8 + j}", 32, 16))


def _ordinary_slot(j: int) -> pl.Expr:
    """A run of k codes: an action first, then at each later slot a qualifier 35% of the time."""
    k = pl.col("_k")
    if j == 0:
        return pl.when(k == 0).then(pl.lit("-")).otherwise(_action(0))
    return pl.when(k > j).then(
        pl.when(_chance(f"_r{8 + j}", 0, QUALIFIER_RATE)).then(_qualifier(j)).otherwise(_action(j))
    )


_TEMPLATE_WIDTH = max(len(codes) for codes in TEMPLATE_CODES)


def _template(i: int) -> pl.Expr:
    """Code i of the row's template (null past its end)."""
    if not 0 <= i < _TEMPLATE_WIDTH:
        return pl.lit(None, pl.String)
    column = [codes[i] if i < len(codes) else None for codes in TEMPLATE_CODES]
    return pl.lit(pl.Series(column, dtype=pl.String)).gather(pl.col("_template"))


# The data-quality cases that change slots, each three codes long, in the order they take precedence.
_SLOT_KINDS = ("_yz_primary", "_dash", "_not_known", "_between", "_invalid")


def _special_slot(j: int) -> pl.Expr:
    """Slot j of a template episode ([another operation] + template + [another operation]) or of
    a data-quality case (three codes: Y/Z first, `-` first, `&` first, `-` second, or an invalid
    value second)."""
    prefix = _chance("_r7", 0, SPINAL_PREFIX_RATE)
    suffix = _chance("_r7", 16, SPINAL_SUFFIX_RATE)
    length = pl.lit(pl.Series([len(codes) for codes in TEMPLATE_CODES], dtype=pl.Int64)).gather(
        pl.col("_template"))
    templated = pl.when(prefix).then(_action(1) if j == 0 else _template(j - 1)).otherwise(_template(j))
    templated = pl.when(suffix & (prefix.cast(pl.Int64) + length == j)).then(_action(2)).otherwise(templated)
    invalid = _pick(INVALID_VALUES, _bits("_r7", 32, 16))
    fixed = {0: (_qualifier(0), pl.lit("-"), pl.lit("&"), _action(0), _action(0)),
             1: (_action(1), _action(1), _action(1), pl.lit("-"), invalid),
             2: (_qualifier(2), _qualifier(2), _qualifier(2), _action(2), _action(2))}
    none = pl.lit(None, pl.String)
    slot = pl.when(pl.col("_templated")).then(templated)
    for kind, value in zip(_SLOT_KINDS, fixed.get(j, (none,) * len(_SLOT_KINDS))):
        slot = slot.when(pl.col(kind)).then(value)
    return slot


def _respelt(code: pl.Expr) -> pl.Expr:
    """A four-character code as v52.2, V52.2 or v522 (one style per episode)."""
    style = _bits("_r7", 48, 16) % _u64(3)
    dotted = pl.concat_str(code.str.slice(0, 3), pl.lit("."), code.str.slice(3))
    return (
        pl.when(code.str.len_chars() != 4).then(code)
        .when(style == _u64(0)).then(dotted.str.to_lowercase())
        .when(style == _u64(1)).then(dotted)
        .otherwise(code.str.to_lowercase())
    )


def _scatter(frame: pl.DataFrame, where: pl.Expr, columns: list[pl.Expr]) -> pl.DataFrame:
    """Replace `columns` in the rows where `where` holds, computing them on those rows only."""
    rows = frame.select(where.arg_true()).to_series().cast(pl.Int64)
    if rows.len() == 0:
        return frame
    values = frame[rows].select(columns)
    return frame.with_columns(frame[name].scatter(rows, values[name]) for name in values.columns)


# --- One chunk -----------------------------------------------------------------------------------

_KIND_COLUMNS = dict(zip(DATA_QUALITY_KINDS, ("_yz_primary", "_dash", "_not_known", "_between", "_invalid",
                                              "_future", "_spelling", "_undated")))
_HELPERS = ["_k", "_templated", "_template", "_pad", *_KIND_COLUMNS.values()]


def _chunk(start: int, rows: int, key: int, mix: Mix) -> pl.DataFrame:
    """Rows start .. start+rows-1 of the export, plus helper columns prefixed `_`."""
    frame = pl.select(row=pl.int_range(start, start + rows, dtype=_U64))
    frame = frame.with_columns(_draw(key, s).alias(f"_r{s}") for s in range(STREAMS))
    # Each draw's bits are used once. _r0: procedure count (0-15), template (16-31), which group
    # (32-39), which variant (40-55). _r1: start day (0-31), V52.2 before 2016 (32-39), wait
    # (40-47), stay (48-63). _r2: provider, specialty, consultant, sex, wait days, age. _r3:
    # diagnoses. _r4, _r5: pseudonym. _r6: data-quality selection (Y/Z primary, `-` primary,
    # invalid value, spelling). _r7: template prefix/suffix, invalid value, spelling style.
    # _r8.._r31: slots 1..24 (qualifier?, action, qualifier code, has OPDATE, OPDATE day).
    # _r32: `&` primary (0-15), `-` between codes (16-31), future date (32-47), padding (48-63).
    # _r33: undated template episode (0-15).
    templated = _chance("_r0", 16, mix.template_rate)
    group = _pick(mix.group_table(), _bits("_r0", 32, 8), pl.Int64)
    template = group * 100 + (_bits("_r0", 40, 16) % _u64(100)).cast(pl.Int64)
    ordinary = ~pl.col("_templated")
    frame = frame.with_columns(
        _k=_pick(_count_table(list(mix.counts)), _bits("_r0", 0, 16), pl.Int64),
        _templated=templated,
        _template=pl.when(templated).then(template),
    ).with_columns(
        _yz_primary=ordinary & _chance("_r6", 0, DATA_QUALITY_RATE),
        _dash=ordinary & _chance("_r6", 16, DATA_QUALITY_RATE),
        _not_known=ordinary & _chance("_r32", 0, DATA_QUALITY_RATE),
        _between=ordinary & _chance("_r32", 16, DATA_QUALITY_RATE),
        _invalid=ordinary & _chance("_r6", 32, DATA_QUALITY_RATE),
        # Only episodes with codes: an episode with none is set aside before any rule runs.
        _future=ordinary & (pl.col("_k") > 0) & _chance("_r32", 32, DATA_QUALITY_RATE),
        _spelling=_chance("_r6", 48, DATA_QUALITY_RATE),
        _pad=_chance("_r32", 48, mix.pad_rate),
        _undated=templated & _chance("_r33", 0, UNDATED_RATE),
        _v522=pl.col("_template") // 100 == TEMPLATE_GROUPS.index("V522"),
    )

    # Dates: V52.2 episodes mostly before IPG319 was superseded; the future cases in 2090.
    uniform = _bits("_r1", 0, 32) % _u64(_SPAN)
    early = _bits("_r1", 0, 32) % _u64(_BEFORE_2016)
    late = _u64(_BEFORE_2016) + _bits("_r1", 0, 32) % _u64(_AFTER_2016)
    future = _u64(_FUTURE) + _bits("_r1", 0, 32) % _u64(365)
    offset = (
        pl.when(pl.col("_v522").fill_null(False))
        .then(pl.when(_chance("_r1", 32, V522_BEFORE_2016, 8)).then(early).otherwise(late))
        .when(pl.col("_future")).then(future)
        .otherwise(uniform)
    )
    stay = pl.when(_chance("_r1", 48, 0.45, 8)).then(_u64(0)).otherwise(_bits("_r1", 56, 8) % _u64(14) + _u64(1))
    wait = pl.when(_chance("_r1", 40, 0.85, 8)).then(_u64(0)).otherwise(_bits("_r2", 41, 4) % _u64(7) + _u64(1))
    frame = frame.with_columns(
        _start=offset.cast(pl.Int64) + _FIRST,
        _stay=stay.cast(pl.Int64),
        _wait=wait.cast(pl.Int64),
    )

    # Codes, slot by slot (no list columns: concatenating 24 columns into lists is slow). Every
    # row first gets an ordinary run; the few template, data-quality and respelt rows are then
    # computed on their own and scattered in (when/then evaluates every branch on every row).
    frame = frame.with_columns(_ordinary_slot(j).alias(f"OPERTN_{j + 1:02d}") for j in range(SLOTS))
    slots = [f"OPERTN_{j + 1:02d}" for j in range(SLOTS)]
    special = pl.any_horizontal("_templated", *_SLOT_KINDS)
    frame = _scatter(frame, special, [_special_slot(j).alias(name) for j, name in enumerate(slots)])
    frame = _scatter(frame, pl.col("_spelling"), [_respelt(pl.col(name)).alias(name) for name in slots])
    procedure_columns = []
    for j in range(SLOTS):
        code = pl.col(f"OPERTN_{j + 1:02d}")
        draw = f"_r{8 + j}"
        has_date = (code.is_not_null() & ~code.is_in(["-", "&"]) & ~pl.col("_undated")
                    & _chance(draw, 48, OPDATE_RATE, 8))
        day = pl.col("_start") + (_bits(draw, 56, 8).cast(pl.Int64) % (pl.col("_stay") + 1))
        # Padding: the unused slots after the last code hold `-` (some PAS exports do so).
        padded = pl.when(pl.col("_pad") & code.is_null()).then(pl.lit("-")).otherwise(code)
        procedure_columns += [padded.alias(f"OPERTN_{j + 1:02d}"),
                              pl.when(has_date).then(_as_iso(day)).alias(f"OPDATE_{j + 1:02d}")]

    consultant = _bits("_r2", 24, 16) % _u64(20_000) * _u64(449) + _u64(1_000_000)
    diagnoses = [
        pl.when(_chance("_r3", 48 + 4 * n, [1.0, 0.7, 0.5, 0.3][n], 4))
        .then(_pick(DIAGNOSES, _bits("_r3", 12 * n, 12)))
        .alias(f"DIAG_{n + 1:02d}")
        for n in range(4)
    ]
    dated = ~pl.col("_undated")
    return frame.select(
        (pl.col("row") + _u64(300_000_000_001)).cast(pl.String).alias("EPIKEY"),
        pl.when(dated).then(_as_iso(pl.col("_start") - pl.col("_wait"))).alias("ADMIDATE"),
        pl.when(dated).then(_as_iso(pl.col("_start"))).alias("EPISTART"),
        pl.when(dated).then(_as_iso(pl.col("_start") + pl.col("_stay"))).alias("EPIEND"),
        _pick(PROVIDERS, _bits("_r2", 0, 16)).alias("PROCODE3"),
        _pick(SPECIALTIES, _bits("_r2", 16, 8)).alias("TRETSPEF"),
        pl.concat_str(pl.lit("C"), consultant.cast(pl.String)).alias("CONSULT"),
        *procedure_columns,
        (_bits("_r2", 40, 1) + _u64(1)).cast(pl.String).alias("SEX"),
        (_bits("_r2", 48, 16) % _u64(100)).cast(pl.String).alias("STARTAGE"),
        *diagnoses,
        pl.concat_str(
            (pl.col("_r4") % _u64(10**16)).cast(pl.String).str.zfill(16),
            (pl.col("_r5") % _u64(10**16)).cast(pl.String).str.zfill(16),
        ).alias("PSEUDO_HESID"),
        *_HELPERS,  # for the statistics; dropped before writing
    )


def _chunk_stats(frame: pl.DataFrame) -> dict:
    slot_cases = pl.any_horizontal("_templated", *_SLOT_KINDS)
    counts = frame.select(
        no_procedures=((pl.col("_k") == 0) & ~slot_cases).sum(),
        padded_rows=pl.col("_pad").sum(),
        **{kind: pl.col(column).sum() for kind, column in _KIND_COLUMNS.items()},
    ).row(0, named=True)
    templates = frame.filter(pl.col("_templated")).group_by("_template").len().iter_rows()
    return {"counts": counts, "templates": dict(templates)}


# --- The long layout -------------------------------------------------------------------------------

LONG_HEADER = ["episode_id", "position", "code", "procedure_date", "admission_date", "episode_start",
               "episode_end", "provider", "specialty", "consultant"]


def long_rows(wide: pl.DataFrame) -> pl.DataFrame:
    """The same episodes in the long layout: one row per filled slot, in episode then position order
    (so a reader can take whole episodes from consecutive rows). An episode of `-` keeps its row."""
    episode = [pl.col("EPIKEY").alias("episode_id")]
    carried = [pl.col(source).alias(target) for source, target in (
        ("ADMIDATE", "admission_date"), ("EPISTART", "episode_start"), ("EPIEND", "episode_end"),
        ("PROCODE3", "provider"), ("TRETSPEF", "specialty"), ("CONSULT", "consultant"))]
    slots = [
        wide.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"), *episode,
                    pl.lit(str(n)).alias("position"), pl.col(f"OPERTN_{n:02d}").alias("code"),
                    pl.col(f"OPDATE_{n:02d}").alias("procedure_date"), *carried)
        for n in range(1, SLOTS + 1)
    ]
    long = pl.concat(slots).filter(pl.col("code").is_not_null())
    return long.with_columns(pl.col("position").cast(pl.Int64).alias("_position")) \
        .sort("_row", "_position").select(LONG_HEADER)


def generate_hes(path: Path, episodes: int, seed: int = DEFAULT_SEED, chunk: int = 500_000,
                 mix: str | Mix = "hes", long_path: Path | None = None) -> dict:
    """Write `episodes` synthetic HES-style episodes to the CSV `path` (and, with `long_path`, the
    same episodes in the long layout); return what was written.

    The same seed and mix give the same bytes whatever `chunk` is.
    """
    mix = MIXES[mix] if isinstance(mix, str) else mix
    if episodes < 0 or chunk < 1:
        raise ValueError("episodes must be >= 0 and chunk >= 1")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = _seed_key(seed)
    began = time.perf_counter()
    counts = {"no_procedures": 0, "padded_rows": 0, **{kind: 0 for kind in DATA_QUALITY_KINDS}}
    templates: dict[int, int] = {}
    long_rows_written = 0
    with open(path, "wb") as handle, (open(long_path, "wb") if long_path else open(os.devnull, "wb")) as long:
        if episodes == 0:
            handle.write((",".join(HEADER) + "\n").encode())
            long.write((",".join(LONG_HEADER) + "\n").encode())
        for start in range(0, episodes, chunk):
            frame = _chunk(start, min(chunk, episodes - start), key, mix)
            stats = _chunk_stats(frame)
            for name, value in stats["counts"].items():
                counts[name] += int(value)
            for index, value in stats["templates"].items():
                templates[index] = templates.get(index, 0) + int(value)
            frame = frame.select(HEADER)
            frame.write_csv(handle, include_header=start == 0)
            if long_path:
                rows = long_rows(frame)
                rows.write_csv(long, include_header=start == 0)
                long_rows_written += rows.height
            del frame
    variants: dict[str, int] = {}
    for index, value in sorted(templates.items()):
        name = TEMPLATE_NAMES[index]
        variants[name] = variants.get(name, 0) + value
    by_group = {group: sum(v for n, v in variants.items() if n.split()[0] == group) for group in TEMPLATE_GROUPS}
    return {
        "path": str(path),
        "episodes": episodes,
        "seed": seed,
        "mix": mix.name,
        "generator_version": GENERATOR_VERSION,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - began, 3),
        "index_code_episodes": {code: by_group[code] for code in ("V522", "V401")},
        "template_groups": by_group,
        "spinal_operation_episodes": sum(v for n, v in variants.items() if _holds_spinal_operation(n)),
        "spinal_variants": dict(sorted(variants.items())),
        "episodes_without_procedures": counts.pop("no_procedures"),
        "padded_rows": counts.pop("padded_rows"),
        "data_quality": counts,
        **({"long": {"path": str(long_path), "rows": long_rows_written,
                     "bytes": Path(long_path).stat().st_size}} if long_path else {}),
    }


def _holds_spinal_operation(variant: str) -> bool:
    """Whether a template variant holds a spinal operation (audit/spinal_operations.csv)."""
    from audit.codes import SPINAL_CATEGORIES

    return any(code[:3] in SPINAL_CATEGORIES for codes in _variant_codes(variant) for code in codes)


def _variant_codes(variant: str) -> list[list[str]]:
    return [codes for name, codes in zip(TEMPLATE_NAMES, TEMPLATE_CODES) if name == variant][:1]


def csv_to_parquet(csv: Path, parquet: Path) -> dict:
    """The same export as Parquet (all columns strings), streamed so memory stays bounded."""
    began = time.perf_counter()
    parquet = Path(parquet)
    parquet.parent.mkdir(parents=True, exist_ok=True)
    pl.scan_csv(csv, infer_schema=False).sink_parquet(parquet)
    return {"path": str(parquet), "bytes": parquet.stat().st_size,
            "seconds": round(time.perf_counter() - began, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="CSV file to write")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes (rows)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"default {DEFAULT_SEED}")
    parser.add_argument("--mix", choices=list(MIXES), default="hes", help="default hes (see the module's doc)")
    parser.add_argument("--chunk", type=int, default=500_000, help="rows generated per chunk")
    parser.add_argument("--parquet", type=Path, help="also write the same export as Parquet here")
    parser.add_argument("--long", type=Path, help="also write the same episodes in the long layout here")
    args = parser.parse_args(argv)
    stats = generate_hes(args.out, args.episodes, seed=args.seed, chunk=args.chunk, mix=args.mix,
                         long_path=args.long)
    if args.parquet:
        stats["parquet"] = csv_to_parquet(args.out, args.parquet)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
