"""What a user would write instead of nice-audit, for the benchmark to time beside it (issue 15).

    python tests/benchmarks/peers.py duckdb EXPORT.csv     # the generic rules as one DuckDB SQL query
    python tests/benchmarks/peers.py pandas EXPORT.csv     # the pandas row loop an analyst would write

Both read a wide HES export (`OPERTN_01..24`) and count the findings of nice-audit's generic
rules, which need no catalogue: a Y/Z or V55 code in the primary position, `-` or `&` in the
primary position with codes after it, `-` between codes, invalid values, and the V55 rule for
every spinal operation (audit/spinal_operations.csv). They print the counts as JSON, so that the
benchmark can show they did the same work as the audit (audit/rules/generic.py is the reference).

Simplified as such a user would: the chapter of an overflow (O) code is its letter (nice-audit
maps it to its parent chapter: audit/overflow_categories.csv); nothing else is checked (no code
sets, dates, row validation, reports). So they are a lower bound for the work nice-audit does.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLOTS = 24
GENERIC_RULES = ("subsidiary-code-primary", "no-operation-with-codes", "not-known-with-codes",
                 "no-operation-between-codes", "invalid-code", "levels-not-second", "levels-repeated")
# NHS Data Dictionary OPCS-4 CODE: a chapter letter (no I) and three digits; a local fifth character.
CODE = r"[A-HJ-Z][0-9]{3}[0-9A-Z]?"


def spinal_categories() -> list[str]:
    with open(ROOT / "audit" / "spinal_operations.csv", encoding="utf-8", newline="") as handle:
        return [row["category"] for row in csv.DictReader(handle)]


def duckdb_counts(path: Path) -> dict[str, int]:
    import duckdb

    opertn = ", ".join(f"OPERTN_{n:02d}" for n in range(1, SLOTS + 1))
    spinal = ", ".join(f"'{c}'" for c in spinal_categories())
    real = "CASE WHEN kind IN ('procedure', 'invalid') THEN 1 ELSE 0 END"
    query = f"""
    WITH slots AS (
        UNPIVOT (SELECT EPIKEY, {opertn} FROM read_csv(?, all_varchar = true, header = true))
        ON COLUMNS('^OPERTN_') INTO NAME slot VALUE raw
    ), cleaned AS (
        SELECT EPIKEY AS episode, CAST(right(slot, 2) AS INTEGER) AS position,
               regexp_replace(upper(raw), '[\\s.]', '', 'g') AS v
        FROM slots
    ), filled AS (
        SELECT episode, position, left(v, 4) AS code,
               CASE WHEN v = '-' THEN 'no-operation' WHEN v = '&' THEN 'not-known'
                    WHEN regexp_full_match(v, '{CODE}') THEN 'procedure' ELSE 'invalid' END AS kind
        FROM cleaned WHERE v <> ''
    ), context AS (
        SELECT *, position = min(position) OVER (PARTITION BY episode) AS first,
               coalesce(sum({real}) OVER (PARTITION BY episode ORDER BY position
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS real_before,
               coalesce(sum({real}) OVER (PARTITION BY episode ORDER BY position
                        ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS real_after
        FROM filled
    ), valid AS (
        SELECT code, left(code, 3) IN ({spinal}) AS spinal, code LIKE 'V55%' AS levels,
               lead(code) OVER (PARTITION BY episode ORDER BY position) LIKE 'V55%' AS next_levels,
               lag(code) OVER (PARTITION BY episode ORDER BY position) LIKE 'V55%' AS previous_levels
        FROM filled WHERE kind = 'procedure'
    )
    SELECT
        (SELECT count(*) FROM context WHERE first AND kind = 'procedure'
            AND (left(code, 1) IN ('Y', 'Z') OR code LIKE 'V55%')) AS "subsidiary-code-primary",
        (SELECT count(*) FROM context WHERE first AND kind = 'no-operation' AND real_after > 0)
            AS "no-operation-with-codes",
        (SELECT count(*) FROM context WHERE first AND kind = 'not-known' AND real_after > 0)
            AS "not-known-with-codes",
        (SELECT count(*) FROM context WHERE NOT first AND kind = 'no-operation'
            AND real_before > 0 AND real_after > 0) AS "no-operation-between-codes",
        (SELECT count(*) FROM context WHERE kind = 'invalid') AS "invalid-code",
        (SELECT count(*) FROM valid WHERE spinal AND NOT coalesce(next_levels, false)) AS "levels-not-second",
        (SELECT count(*) FROM valid WHERE levels AND coalesce(previous_levels, false)) AS "levels-repeated"
    """
    connection = duckdb.connect()
    row = connection.execute(query, [str(path)]).fetchone()
    names = [d[0] for d in connection.description]
    return dict(zip(names, (int(v) for v in row)))


def pandas_counts(path: Path) -> dict[str, int]:
    """The loop over rows an analyst would write: read the CSV with pandas, then Python per row."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    spinal = set(spinal_categories())
    code_shape = re.compile(CODE)
    found: Counter[str] = Counter()
    for _, row in frame.iterrows():
        filled = []  # (kind, code) of the non-blank slots, in order
        for n in range(1, SLOTS + 1):
            value = re.sub(r"[\s.]", "", row[f"OPERTN_{n:02d}"].upper())
            if not value:
                continue
            if value == "-":
                filled.append(("no-operation", value))
            elif value == "&":
                filled.append(("not-known", value))
            elif code_shape.fullmatch(value):
                filled.append(("procedure", value[:4]))
            else:
                filled.append(("invalid", value))
        real = [kind in ("procedure", "invalid") for kind, _ in filled]
        for i, (kind, code) in enumerate(filled):
            before, after = sum(real[:i]), sum(real[i + 1:])
            if i == 0 and kind == "procedure" and (code[0] in "YZ" or code.startswith("V55")):
                found["subsidiary-code-primary"] += 1
            if i == 0 and kind == "no-operation" and after:
                found["no-operation-with-codes"] += 1
            if i == 0 and kind == "not-known" and after:
                found["not-known-with-codes"] += 1
            if i > 0 and kind == "no-operation" and before and after:
                found["no-operation-between-codes"] += 1
            if kind == "invalid":
                found["invalid-code"] += 1
        valid = [code for kind, code in filled if kind == "procedure"]
        for i, code in enumerate(valid):
            following = valid[i + 1] if i + 1 < len(valid) else ""
            if code[:3] in spinal and not following.startswith("V55"):
                found["levels-not-second"] += 1
            if code.startswith("V55") and i > 0 and valid[i - 1].startswith("V55"):
                found["levels-repeated"] += 1
    return {rule: found[rule] for rule in GENERIC_RULES}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("duckdb", "pandas"):
        sys.stderr.write("usage: peers.py duckdb|pandas EXPORT.csv\n")
        return 2
    counts = duckdb_counts(Path(args[1])) if args[0] == "duckdb" else pandas_counts(Path(args[1]))
    print(json.dumps(counts, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
