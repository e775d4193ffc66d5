"""The official OPCS-4 code list, for users who have it.

The NHS's TRUD "OPCS-4 Codes and Titles" file is tab-separated `CODE<TAB>TITLE` (free
registration; the project cannot ship it). Given one with `--opcs-codes`, the audit reports
well-formed codes that are not in it (`code-not-in-opcs`) and the report shows every code's title.
Codes are spelt with or without the dot; category lines (three characters) are ignored.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from audit import codes
from audit.errors import UserError

CODE_LIST_SCHEMA = {"code": pl.String, "title": pl.String}


def load_code_list(path: Path) -> pl.DataFrame:
    """(code, title): normalised four-character codes, one row each."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: OPCS-4 code list not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror})") from None
    pairs = [(line.split("\t", 1) + [""])[:2] for line in lines if line.strip()]
    raw = pl.DataFrame(pairs, schema={"raw": pl.String, "title": pl.String}, orient="row")
    listed = (
        codes.with_normalised_codes(raw, "raw")
        .filter((pl.col("code_kind") == codes.PROCEDURE) & pl.col("local_suffix").is_null())
        .select("code", pl.col("title").str.strip_chars())
        .unique("code", keep="first")
        .sort("code")
    )
    if listed.height == 0:
        raise UserError(f"{path}: no OPCS-4 codes found (expected CODE<TAB>TITLE lines)")
    return listed
