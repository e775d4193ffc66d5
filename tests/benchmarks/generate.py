"""Seeded, synthetic HES-style episode exports for the benchmark and its tests.

    python tests/benchmarks/generate.py OUT.csv --episodes N [--seed S] [--parquet OUT.parquet]

The file has the HES wide layout the audit reads (`EPIKEY`, episode dates, provider, specialty,
consultant, `OPERTN_01..24` / `OPDATE_01..24`) plus columns the audit must not read (`SEX`,
`STARTAGE`, `DIAG_01..04`, `PSEUDO_HESID`), so reading only the needed columns matters.

The mix (rates are per episode):

- procedures per episode mostly 0-8; about 40% have none (`OPERTN_01` is `-`);
- every other episode is a run of ordinary action codes from a weighted pool, each optionally
  followed by Chapter Y/Z qualifiers; none of them is a catalogue index code;
- about 2% carry a spinal index code, half V52.2 (IPG319) and half V40.1 (IPG366): compliant
  sequences and broken ones (no V55, no Y53, no site, qualifiers out of order, Y53.9, ...); V52.2
  episodes are dated before 2016 three times in four, the rest fall after IPG319 was superseded;
- about 0.1% each: a Y/Z code at position 1, codes after a `-` primary, an invalid value (`V5`,
  `12345`, ...), and lower-case or dotted spellings (`v52.2`);
- dates are ISO, episodes start 2010-2024; about 80% of procedures have an OPDATE.

Generation is vectorised (polars expressions, no per-row Python) and written in chunks, so 10M
episodes take bounded memory. Randomness is counter-based (SplitMix64 of seed and row number,
computed with polars' wrapping UInt64 arithmetic): a row depends only on the seed and its row
number, so the output is the same byte for byte whatever the chunk size, and does not depend on
polars' own random generator.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

# Bump when the generated content changes, so cached benchmark inputs are regenerated.
GENERATOR_VERSION = 1
DEFAULT_SEED = 20261121
SLOTS = 24

EPISODE_COLUMNS = ["EPIKEY", "ADMIDATE", "EPISTART", "EPIEND", "PROCODE3", "TRETSPEF", "CONSULT"]
PROCEDURE_COLUMNS = [name for n in range(1, SLOTS + 1) for name in (f"OPERTN_{n:02d}", f"OPDATE_{n:02d}")]
EXTRA_COLUMNS = ["SEX", "STARTAGE", "DIAG_01", "DIAG_02", "DIAG_03", "DIAG_04", "PSEUDO_HESID"]
HEADER = EPISODE_COLUMNS + PROCEDURE_COLUMNS + EXTRA_COLUMNS

# --- Rates ---------------------------------------------------------------------------------------

SPINAL_RATE = 0.02
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

# Spinal sequences: (name, codes, weight); weights sum to 100 for each index code.
SPINAL_TEMPLATES = {
    "V522": [
        ("compliant", "V522 V551 Y102 Y534 Z992", 40),
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
}
DATA_QUALITY_KINDS = ("yz_primary", "codes_after_no_operation", "invalid_value", "odd_spelling")

# --- Counter-based random numbers ----------------------------------------------------------------

_U64 = pl.UInt64
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
STREAMS = 32  # independent 64-bit draws per row


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


def _count_table(size: int = 4096) -> list[int]:
    """A lookup table whose uniform index gives the number of procedures in an episode."""
    rest = (1.0 - sum(COUNT_WEIGHTS)) / (SLOTS - len(COUNT_WEIGHTS) + 1)
    weights = COUNT_WEIGHTS + [rest] * (SLOTS - len(COUNT_WEIGHTS) + 1)
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

ACTION_POOL = _zipf_pool(ACTION_CODES)
QUALIFIER_POOL = _zipf_pool(QUALIFIER_CODES)
COUNT_TABLE = _count_table()
TEMPLATE_ROWS = {code: _weighted([((name, seq.split()), w) for name, seq, w in rows])
                 for code, rows in SPINAL_TEMPLATES.items()}
assert all(len(rows) == 100 for rows in TEMPLATE_ROWS.values())
TEMPLATE_NAMES = [f"{code} {name}" for code in ("V522", "V401") for name, _ in TEMPLATE_ROWS[code]]
TEMPLATE_CODES = [codes for code in ("V522", "V401") for _, codes in TEMPLATE_ROWS[code]]


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
    """Code i of the row's spinal template (null past its end)."""
    if not 0 <= i < _TEMPLATE_WIDTH:
        return pl.lit(None, pl.String)
    column = [codes[i] if i < len(codes) else None for codes in TEMPLATE_CODES]
    return pl.lit(pl.Series(column, dtype=pl.String)).gather(pl.col("_template"))


def _special_slot(j: int) -> pl.Expr:
    """Slot j of a spinal episode ([another operation] + template + [another operation]) or of a
    data-quality case (three codes: Y/Z first, `-` first, or an invalid value second)."""
    prefix = _chance("_r7", 0, SPINAL_PREFIX_RATE)
    suffix = _chance("_r7", 16, SPINAL_SUFFIX_RATE)
    length = pl.lit(pl.Series([len(codes) for codes in TEMPLATE_CODES], dtype=pl.Int64)).gather(
        pl.col("_template"))
    spinal = pl.when(prefix).then(_action(1) if j == 0 else _template(j - 1)).otherwise(_template(j))
    spinal = pl.when(suffix & (prefix.cast(pl.Int64) + length == j)).then(_action(2)).otherwise(spinal)
    invalid = _pick(INVALID_VALUES, _bits("_r7", 32, 16))
    fixed = {0: (_qualifier(0), pl.lit("-"), _action(0)),
             1: (_action(1), _action(1), invalid),
             2: (_qualifier(2), _qualifier(2), _action(2))}
    none = pl.lit(None, pl.String)
    yz, dash, bad = fixed.get(j, (none, none, none))
    return (
        pl.when(pl.col("_spinal")).then(spinal)
        .when(pl.col("_yz_primary")).then(yz)
        .when(pl.col("_dash")).then(dash)
        .when(pl.col("_invalid")).then(bad)
    )


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

def _chunk(start: int, rows: int, key: int) -> pl.DataFrame:
    """Rows start .. start+rows-1 of the export, plus helper columns prefixed `_`."""
    frame = pl.select(row=pl.int_range(start, start + rows, dtype=_U64))
    frame = frame.with_columns(_draw(key, s).alias(f"_r{s}") for s in range(STREAMS))
    # Each draw's bits are used once. _r0: procedure count (0-15), spinal (16-31), which index
    # code (32), which variant (40-55). _r1: start day (0-31), V52.2 before 2016 (32-39), wait
    # (40-47), stay (48-63). _r2: provider, specialty, consultant, sex, wait days, age. _r3:
    # diagnoses. _r4, _r5: pseudonym. _r6: data-quality selection. _r7: spinal prefix/suffix,
    # invalid value, spelling style. _r8.._r31: slots 1..24 (qualifier?, action, qualifier code,
    # has OPDATE, OPDATE day).
    spinal = _chance("_r0", 16, SPINAL_RATE)
    is_v401 = _bits("_r0", 32, 1) == _u64(1)
    template = (_bits("_r0", 40, 16) % _u64(100)) + pl.when(is_v401).then(_u64(100)).otherwise(_u64(0))
    not_spinal = ~pl.col("_spinal")
    frame = frame.with_columns(
        _k=_pick(COUNT_TABLE, _bits("_r0", 0, 16), pl.Int64),
        _spinal=spinal,
        _template=pl.when(spinal).then(template.cast(pl.Int64)),
    ).with_columns(
        _yz_primary=not_spinal & _chance("_r6", 0, DATA_QUALITY_RATE),
        _dash=not_spinal & _chance("_r6", 16, DATA_QUALITY_RATE),
        _invalid=not_spinal & _chance("_r6", 32, DATA_QUALITY_RATE),
        _spelling=_chance("_r6", 48, DATA_QUALITY_RATE),
        _v522=pl.col("_spinal") & ~is_v401,
    )

    # Dates: V52.2 episodes mostly before IPG319 was superseded.
    uniform = _bits("_r1", 0, 32) % _u64(_SPAN)
    early = _bits("_r1", 0, 32) % _u64(_BEFORE_2016)
    late = _u64(_BEFORE_2016) + _bits("_r1", 0, 32) % _u64(_AFTER_2016)
    offset = (
        pl.when(pl.col("_v522"))
        .then(pl.when(_chance("_r1", 32, V522_BEFORE_2016, 8)).then(early).otherwise(late))
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
    # row first gets an ordinary run; the few spinal, data-quality and respelt rows are then
    # computed on their own and scattered in (when/then evaluates every branch on every row).
    frame = frame.with_columns(_ordinary_slot(j).alias(f"OPERTN_{j + 1:02d}") for j in range(SLOTS))
    slots = [f"OPERTN_{j + 1:02d}" for j in range(SLOTS)]
    special = pl.col("_spinal") | pl.col("_yz_primary") | pl.col("_dash") | pl.col("_invalid")
    frame = _scatter(frame, special, [_special_slot(j).alias(name) for j, name in enumerate(slots)])
    frame = _scatter(frame, pl.col("_spelling"), [_respelt(pl.col(name)).alias(name) for name in slots])
    procedure_columns = []
    for j in range(SLOTS):
        code = pl.col(f"OPERTN_{j + 1:02d}")
        draw = f"_r{8 + j}"
        has_date = code.is_not_null() & (code != "-") & _chance(draw, 48, OPDATE_RATE, 8)
        day = pl.col("_start") + (_bits(draw, 56, 8).cast(pl.Int64) % (pl.col("_stay") + 1))
        procedure_columns += [code, pl.when(has_date).then(_as_iso(day)).alias(f"OPDATE_{j + 1:02d}")]

    consultant = _bits("_r2", 24, 16) % _u64(20_000) * _u64(449) + _u64(1_000_000)
    diagnoses = [
        pl.when(_chance("_r3", 48 + 4 * n, [1.0, 0.7, 0.5, 0.3][n], 4))
        .then(_pick(DIAGNOSES, _bits("_r3", 12 * n, 12)))
        .alias(f"DIAG_{n + 1:02d}")
        for n in range(4)
    ]
    return frame.select(
        (pl.col("row") + _u64(300_000_000_001)).cast(pl.String).alias("EPIKEY"),
        _as_iso(pl.col("_start") - pl.col("_wait")).alias("ADMIDATE"),
        _as_iso(pl.col("_start")).alias("EPISTART"),
        _as_iso(pl.col("_start") + pl.col("_stay")).alias("EPIEND"),
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
        # Helper columns for the statistics; dropped before writing.
        pl.col("_k"), pl.col("_spinal"), pl.col("_template"),
        *(pl.col(c) for c in ("_yz_primary", "_dash", "_invalid", "_spelling")),
    )


def _chunk_stats(frame: pl.DataFrame) -> dict:
    kinds = dict(zip(DATA_QUALITY_KINDS, ("_yz_primary", "_dash", "_invalid", "_spelling")))
    counts = frame.select(
        no_procedures=((pl.col("_k") == 0) & ~pl.col("_spinal") & ~pl.col("_yz_primary")
                       & ~pl.col("_dash") & ~pl.col("_invalid")).sum(),
        **{kind: pl.col(column).sum() for kind, column in kinds.items()},
    ).row(0, named=True)
    templates = frame.filter(pl.col("_spinal")).group_by("_template").len().iter_rows()
    return {"counts": counts, "templates": dict(templates)}


def generate_hes(path: Path, episodes: int, seed: int = DEFAULT_SEED, chunk: int = 500_000) -> dict:
    """Write `episodes` synthetic HES-style episodes to the CSV `path`; return what was written.

    The same seed gives the same bytes whatever `chunk` is.
    """
    if episodes < 0 or chunk < 1:
        raise ValueError("episodes must be >= 0 and chunk >= 1")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = _seed_key(seed)
    began = time.perf_counter()
    counts = {"no_procedures": 0, **{kind: 0 for kind in DATA_QUALITY_KINDS}}
    templates: dict[int, int] = {}
    with open(path, "wb") as handle:
        if episodes == 0:
            handle.write((",".join(HEADER) + "\n").encode())
        for start in range(0, episodes, chunk):
            frame = _chunk(start, min(chunk, episodes - start), key)
            stats = _chunk_stats(frame)
            for name, value in stats["counts"].items():
                counts[name] += int(value)
            for index, value in stats["templates"].items():
                templates[index] = templates.get(index, 0) + int(value)
            frame.select(HEADER).write_csv(handle, include_header=start == 0)
            del frame
    variants: dict[str, int] = {}
    for index, value in sorted(templates.items()):
        name = TEMPLATE_NAMES[index]
        variants[name] = variants.get(name, 0) + value
    index_episodes = {code: sum(v for n, v in variants.items() if n.startswith(code)) for code in ("V522", "V401")}
    return {
        "path": str(path),
        "episodes": episodes,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - began, 3),
        "index_code_episodes": index_episodes,
        "spinal_variants": dict(sorted(variants.items())),
        "episodes_without_procedures": counts.pop("no_procedures"),
        "data_quality": counts,
    }


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
    parser.add_argument("--chunk", type=int, default=500_000, help="rows generated per chunk")
    parser.add_argument("--parquet", type=Path, help="also write the same export as Parquet here")
    args = parser.parse_args(argv)
    stats = generate_hes(args.out, args.episodes, seed=args.seed, chunk=args.chunk)
    if args.parquet:
        stats["parquet"] = csv_to_parquet(args.out, args.parquet)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
