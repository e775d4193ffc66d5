"""The one place that knows how OPCS-4 codes are spelt.

Exports write the same code many ways (`V52.2`, `v522`, `"V522 "`, `V55. 1`, `V5221` with a local
fifth character). Everything downstream sees only the normalised four-character form (`V522`), or
a `code_kind` saying why a field holds no procedure.

NHS Data Dictionary, OPCS-4 CODE: format an4 — a chapter letter and three digits; the dot before
the last digit is presentational. There is no chapter I. A locally added fifth character must be
removed before national submission, so we record it and drop it.
"""

from __future__ import annotations

import csv
import functools
import operator
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where an expression is built: the catalogue commands need
    import polars as pl  # only the pure-Python half of this module, and polars takes 0.3 s to import

# Kinds of value a procedure field can hold.
PROCEDURE = "procedure"
NO_OPERATION = "no-operation"  # "-" : HES "no operation performed"
NOT_KNOWN = "not-known"  # "&" : HES "not known"
BLANK = "blank"  # empty slot: not a procedure
INVALID = "invalid"
CODE_KINDS = (PROCEDURE, NO_OPERATION, NOT_KNOWN, BLANK, INVALID)

_CHAPTER = "[A-HJ-Z]"  # every letter but I
_FULL_CODE = rf"^{_CHAPTER}[0-9]{{3}}$"
_LOCAL_FIFTH = rf"^{_CHAPTER}[0-9]{{3}}[0-9A-Z]$"
# Why a value is invalid, most specific first; the first pattern that matches gives the reason.
_INVALID_REASONS = (
    (r"^I[0-9]{3,4}$", "OPCS-4 has no chapter I"),
    (rf"^{_CHAPTER}[0-9]{{2}}$", "three characters: a category, not a full code"),
    (r"^[0-9]+$", "digits only: no chapter letter"),
    (r"^.{6,}$", "too long for an OPCS-4 code"),
    (r"", "not a letter followed by three digits"),
)


def cleaned(raw: pl.Expr) -> pl.Expr:
    """Upper-case and remove white space and dots: `v55. 1` -> `V551`."""
    return raw.str.to_uppercase().str.replace_all(r"[\s.]", "")


def with_normalised_codes(frame: pl.DataFrame, raw: str) -> pl.DataFrame:
    """Add `code`, `code_kind`, `local_suffix` and `invalid_reason` derived from column `raw`.

    Each distinct value is normalised once and joined back: an export spells a few hundred codes
    over millions of fields, and the pattern tests cost more than the join."""
    import polars as pl
    distinct = _normalised(frame.select(pl.col(raw).unique()), raw)
    return frame.join(distinct, on=raw, how="left", nulls_equal=True, maintain_order="left")


def _normalised(frame: pl.DataFrame, raw: str) -> pl.DataFrame:
    import polars as pl
    value = pl.col("_clean")
    is_full = value.str.contains(_FULL_CODE)
    is_local = value.str.contains(_LOCAL_FIFTH)
    kind = (
        pl.when(value.is_null() | (value == ""))
        .then(pl.lit(BLANK))
        .when(value == "-")
        .then(pl.lit(NO_OPERATION))
        .when(value == "&")
        .then(pl.lit(NOT_KNOWN))
        .when(is_full | is_local)
        .then(pl.lit(PROCEDURE))
        .otherwise(pl.lit(INVALID))
    )
    # Reasons are worked out only for the (rare) invalid values: other rows see a null.
    invalid = pl.when(pl.col("code_kind") == INVALID).then(value)
    reason = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    for pattern, text in _INVALID_REASONS:
        reason = reason.when(invalid.str.contains(pattern)).then(pl.lit(text))
    return (
        frame.lazy()
        .with_columns(cleaned(pl.col(raw)).alias("_clean"))
        .with_columns(
            pl.when(is_full | is_local).then(value.str.slice(0, 4)).alias("code"),
            kind.cast(pl.Enum(CODE_KINDS)).alias("code_kind"),
            pl.when(is_local).then(value.str.slice(4, 1)).alias("local_suffix"),
        )
        .with_columns(reason.alias("invalid_reason"))
        .drop("_clean")
        .collect()
    )


@dataclass(frozen=True)
class NormalisedCode:
    code: str | None
    kind: str
    local_suffix: str | None
    invalid_reason: str | None


def normalise(value: str | None) -> NormalisedCode:
    """Normalise one value, through the same expressions used on whole frames."""
    import polars as pl
    frame = with_normalised_codes(pl.DataFrame({"raw": [value]}, schema={"raw": pl.String}), "raw")
    return NormalisedCode(*frame.select("code", "code_kind", "local_suffix", "invalid_reason").row(0))


def display(code: str) -> str:
    """`V522` -> `V52.2`, the spelling coders read."""
    return f"{code[:3]}.{code[3:]}" if len(code) == 4 else code


def display_expr(code: pl.Expr) -> pl.Expr:
    import polars as pl
    return pl.concat_str([code.str.slice(0, 3), pl.lit("."), code.str.slice(3)])


def _table(name: str) -> list[dict[str, str]]:
    """A small sourced data table shipped beside this module (see its `source`/`uncertain` columns)."""
    text = (resources.files("audit") / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


# OPCS-4 overflow categories carry the letter O whatever chapter they belong to (O16.1 Pelvis NEC is
# a Chapter Z body-region site). An O category not in the table is treated as an action code.
OVERFLOW_PARENTS: dict[str, str] = {row["category"]: row["parent_chapter"] for row in _table("overflow_categories.csv")}
# Chapter V categories that are spinal operations: "Codes within category V55.- are assigned in
# second place each time a spinal operation is coded" (NICE IPG319 and IPG366 pages).
SPINAL_CATEGORIES: tuple[str, ...] = tuple(row["category"] for row in _table("spinal_operations.csv"))
# Every code of those categories, in normal form (four characters, `_FULL_CODE`): looking a code
# up among them takes half as long as slicing its category off first (10M episodes' 1.6M codes:
# 38 -> 17 ms).
SPINAL_CODES: tuple[str, ...] = tuple(f"{category}{digit}" for category in SPINAL_CATEGORIES for digit in range(10))


def chapter(code: pl.Expr) -> pl.Expr:
    """The chapter a code belongs to: its letter, or for an overflow (O) code its parent chapter."""
    import polars as pl
    letter = code.str.slice(0, 1)
    return (
        pl.when(letter == "O")
        .then(code.str.slice(0, 3).replace_strict(OVERFLOW_PARENTS, default="O", return_dtype=pl.String))
        .otherwise(letter)
    )


def chapter_of(code: str) -> str:
    """`chapter` for one code (used by the catalogue and the tests' reference audit)."""
    return OVERFLOW_PARENTS.get(code[:3], "O") if code[:1] == "O" else code[:1]


def is_levels(code: pl.Expr) -> pl.Expr:
    """V55 Levels of spine: a qualifier, not an action (NICE spinal pages)."""
    return code.str.starts_with("V55")


def is_spinal_operation(code: pl.Expr) -> pl.Expr:
    """A spinal operation code (in normal form: `code`), which must be followed directly by a V55 code
    (audit/spinal_operations.csv)."""
    return code.is_in(SPINAL_CODES).fill_null(False)


def is_laterality(code: pl.Expr) -> pl.Expr:
    """Z94 laterality (Z94.1 bilateral, Z94.2 right, Z94.3 left)."""
    return code.str.starts_with("Z94")


def in_chapters(code: pl.Expr, chapters: tuple[str, ...]) -> pl.Expr:
    """`chapter(code).is_in(chapters)`, as prefix tests: a code's first letter, an overflow
    category's three characters. `chapter` slices every code and looks up every slice (polars
    computes both branches of its when/then): `is_action` over 500,000 codes took 33 ms, now 16."""
    overflow = "O"
    tests = [code.str.starts_with(letter) for letter in chapters if letter != overflow]
    tests += [code.str.starts_with(category) for category, parent in OVERFLOW_PARENTS.items()
              if parent in chapters and parent != overflow]
    if overflow in chapters:  # an O code of no parent chapter in the table stays in "O"
        tests.append(functools.reduce(operator.and_, [code.str.starts_with(overflow)] + [
            ~code.str.starts_with(category) for category in OVERFLOW_PARENTS]))
    return functools.reduce(operator.or_, tests)


def is_subsidiary(code: pl.Expr) -> pl.Expr:
    """Chapters Y (methods, approaches) and Z (sites), and their overflow codes, are only ever secondary."""
    return in_chapters(code, ("Y", "Z"))


def is_action(code: pl.Expr) -> pl.Expr:
    """An action code: outside Chapters Y and Z, and not V55. Null codes are not actions."""
    return (~is_subsidiary(code) & ~is_levels(code)).fill_null(False)


def is_site(code: pl.Expr) -> pl.Expr:
    """A Chapter Z site code, or an overflow site code (Z94 is laterality, not a site)."""
    return in_chapters(code, ("Z",)) & ~is_laterality(code)


# --- Patterns: how the catalogue names codes -------------------------------------------------

_EXACT = re.compile(rf"^{_CHAPTER}[0-9]{{3}}$")
_CATEGORY = re.compile(rf"^{_CHAPTER}[0-9]{{2}}-$")
_CHAPTER_WILDCARD = re.compile(rf"^CHAPTER:({_CHAPTER})$")


@dataclass(frozen=True)
class CodePattern:
    """An exact code (`V52.2`), a category (`V55.-`) or a whole chapter (`chapter:Z`).

    Kept as distinct kinds so that a mistyped pattern fails loudly at load time instead of
    silently matching nothing.
    """

    kind: str  # "exact" | "category" | "chapter"
    prefix: str  # the normalised code, category or chapter letter
    spelling: str  # as written in the catalogue

    def expr(self, code: pl.Expr) -> pl.Expr:
        if self.kind == "exact":
            return code == self.prefix
        if self.kind == "chapter":  # an overflow code counts in its parent chapter (O16.1: Z)
            return in_chapters(code, (self.prefix,))
        return code.str.starts_with(self.prefix)

    def matches(self, code: str) -> bool:
        if self.kind == "chapter":
            return chapter_of(code) == self.prefix
        return code == self.prefix if self.kind == "exact" else code.startswith(self.prefix)

    def __str__(self) -> str:
        if self.kind == "exact":
            return display(self.prefix)
        if self.kind == "category":
            return f"{self.prefix}.-"
        return f"any Chapter {self.prefix} code"


def parse_pattern(spelling: str) -> CodePattern:
    """Parse a catalogue code spelling; raises ValueError naming what is wrong."""
    value = re.sub(r"[\s.]", "", str(spelling).upper())
    if _EXACT.match(value):
        return CodePattern("exact", value, spelling)
    if _CATEGORY.match(value):
        return CodePattern("category", value[:3], spelling)
    if m := _CHAPTER_WILDCARD.match(value):
        return CodePattern("chapter", m.group(1), spelling)
    raise ValueError(
        f"{spelling!r} is not an OPCS-4 code (V52.2), category (V55.-) or chapter (chapter:Z)"
    )


def any_of(patterns: tuple[CodePattern, ...], code: pl.Expr) -> pl.Expr:
    """True where `code` matches any of the patterns. Grouped by kind, one membership test per
    kind: matching looks for the catalogue's 97 index patterns at once, and as 77 OR-ed tests
    of a code set each they cost 0.2 s per 500,000 codes (0.02 s this way)."""
    import polars as pl
    exact = sorted({p.prefix for p in patterns if p.kind == "exact"})
    categories = sorted({p.prefix for p in patterns if p.kind == "category"})
    chapters = tuple(sorted({p.prefix for p in patterns if p.kind == "chapter"}))
    expr = pl.lit(False)
    if exact:
        expr = expr | (code == exact[0] if len(exact) == 1 else code.is_in(exact))
    if categories:
        expr = expr | (code.str.starts_with(categories[0]) if len(categories) == 1
                       else code.str.slice(0, 3).is_in(categories))
    if chapters:
        expr = expr | in_chapters(code, chapters)
    return expr
