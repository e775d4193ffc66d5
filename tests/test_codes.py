"""The normalisation table: every spelling exports use, and why a value is invalid."""

import polars as pl
import pytest

from audit import codes
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "raw, code, kind, suffix",
    [
        ("V522", "V522", codes.PROCEDURE, None),
        ("v52.2", "V522", codes.PROCEDURE, None),  # lower case and the presentational dot
        ("V522 ", "V522", codes.PROCEDURE, None),  # space padding to the field width
        ("V55. 1", "V551", codes.PROCEDURE, None),  # NICE IPG387 prints 'V55. 1'
        (" y53.4", "Y534", codes.PROCEDURE, None),
        ("O161", "O161", codes.PROCEDURE, None),  # overflow chapter O
        ("V5221", "V522", codes.PROCEDURE, "1"),  # local fifth character recorded, dropped
        ("v52.2a", "V522", codes.PROCEDURE, "A"),
        ("-", None, codes.NO_OPERATION, None),
        ("-   ", None, codes.NO_OPERATION, None),  # artificial HES pads '-' to four characters
        ("&", None, codes.NOT_KNOWN, None),
        ("", None, codes.BLANK, None),
        ("   ", None, codes.BLANK, None),
        (None, None, codes.BLANK, None),
    ],
)
def test_normalises(raw, code, kind, suffix):
    result = codes.normalise(raw)
    assert (result.code, result.kind, result.local_suffix, result.invalid_reason) == (code, kind, suffix, None)


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("I123", "OPCS-4 has no chapter I"),
        ("V52", "three characters: a category, not a full code"),
        ("Z94", "three characters: a category, not a full code"),
        ("12345", "digits only: no chapter letter"),
        ("8", "digits only: no chapter letter"),
        ("V52222", "too long for an OPCS-4 code"),
        ("V5", "not a letter followed by three digits"),
        ("V52.2X!", "too long for an OPCS-4 code"),
        ("--", "not a letter followed by three digits"),
        ("<script>", "too long for an OPCS-4 code"),
    ],
)
def test_invalid_values_are_kept_with_a_reason(raw, reason):
    result = codes.normalise(raw)
    assert (result.code, result.kind, result.invalid_reason) == (None, codes.INVALID, reason)


@pytest.mark.parametrize(
    "spelling, kind, prefix",
    [("V52.2", "exact", "V522"), ("V55.-", "category", "V55"), ("v55 .-", "category", "V55"),
     ("chapter:Z", "chapter", "Z"), ("V55. 1", "exact", "V551")],
)
def test_catalogue_patterns(spelling, kind, prefix):
    pattern = codes.parse_pattern(spelling)
    assert (pattern.kind, pattern.prefix) == (kind, prefix)


@pytest.mark.parametrize("spelling", ["V5", "I12.3", "V55", "Z", "chapter:I", "V55.*"])
def test_bad_catalogue_patterns_fail_loudly(spelling):
    with pytest.raises(ValueError, match="is not an OPCS-4 code"):
        codes.parse_pattern(spelling)


def test_category_matches_codes_in_it_only():
    frame = pl.DataFrame({"code": ["V551", "V559", "V552", "V561", None]})
    matched = frame.select(codes.parse_pattern("V55.-").expr(pl.col("code")))
    assert matched.to_series().to_list() == [True, True, True, False, None]


@pytest.mark.parametrize("code, shown", [("V522", "V52.2"), ("Z942", "Z94.2")])
def test_display(code, shown):
    assert codes.display(code) == shown
    assert pl.select(codes.display_expr(pl.lit(code))).item() == shown


def test_spinal_operations_table_is_sourced_and_leaves_out_skull_and_v55():
    import csv

    from audit.codes import SPINAL_CATEGORIES

    rows = list(csv.DictReader((ROOT / "audit" / "spinal_operations.csv").read_text(encoding="utf-8").splitlines()))
    assert all(r["source"] for r in rows)
    # Every category whose inclusion or title is inferred says so.
    assert all(r["uncertain"] or r["title"] for r in rows)
    assert {"V52", "V40", "V33", "V38", "V28", "V36"} <= set(SPINAL_CATEGORIES)
    assert not {f"V{n:02d}" for n in range(1, 22)} & set(SPINAL_CATEGORIES)  # skull, face, jaw
    assert "V55" not in SPINAL_CATEGORIES  # levels of spine: a qualifier, not an operation


def test_a_spinal_operation_is_any_code_of_the_tables_categories():
    # "Codes within category V55.- are assigned in second place each time a spinal operation is
    # coded" (NICE IPG319 and IPG366 pages, shared/seeds): every normalised code of each spinal
    # category (audit/spinal_operations.csv) is one; V55 itself, skull codes and no code are not.
    every = [f"{category}{digit}" for category in codes.SPINAL_CATEGORIES for digit in range(10)]
    others = ["V551", "V559", "V011", "W371", "Y534", None]
    found = pl.select(codes.is_spinal_operation(pl.Series(every + others, dtype=pl.String))).to_series()
    assert found.to_list() == [True] * len(every) + [False] * len(others)


@pytest.mark.parametrize("code, chapter", [("O161", "Z"), ("V522", "V"), ("Y534", "Y"), ("O011", "O")])
def test_overflow_codes_belong_to_their_parent_chapter(code, chapter):
    import polars as pl

    from audit.codes import chapter as chapter_expr
    from audit.codes import chapter_of

    assert chapter_of(code) == chapter
    assert pl.select(chapter_expr(pl.lit(code))).item() == chapter


@pytest.mark.parametrize("chapters", [("Y", "Z"), ("Z",), ("Y",), ("V",), ("O",), ("O", "Z"), ("A", "O")])
def test_chapter_membership_by_prefix_agrees_with_the_chapter(chapters):
    """`in_chapters` (prefix tests, the fast form the rules use) says what `chapter(...).is_in`
    says, overflow codes, short values, empty and missing ones included."""
    import polars as pl

    from audit.codes import chapter, in_chapters

    values = ["Y534", "Z676", "Z942", "O161", "O16", "O162", "O131", "O1", "O", "Y", "Z", "V551", "A01", "", None]
    frame = pl.DataFrame({"code": values}, schema={"code": pl.String})
    expected = frame.select(chapter(pl.col("code")).is_in(list(chapters))).to_series().to_list()
    assert frame.select(in_chapters(pl.col("code"), chapters)).to_series().to_list() == expected
    assert True in expected and False in expected  # each case tells members from others


@pytest.mark.parametrize("spellings", [
    ("V52.2",), ("V55.-",), ("chapter:Z",), ("V52.2", "W37.1", "V55.-", "Y53.-", "chapter:Z"), ("chapter:O", "V38.8"),
])
def test_any_of_a_pattern_group_matches_what_each_pattern_matches(spellings):
    """`any_of` tests each kind of pattern at once (one membership test for all exact codes, one
    for all categories): it says what the patterns say one by one, also inside a list."""
    import polars as pl

    from audit.codes import any_of, parse_pattern

    patterns = tuple(parse_pattern(s) for s in spellings)
    values = ["V522", "V523", "V551", "V55", "W371", "Y534", "Z676", "O161", "O131", "A01", "", None]
    expected = [None if v is None else any(p.matches(v) for p in patterns) for v in values]
    frame = pl.DataFrame({"code": values}, schema={"code": pl.String})
    assert frame.select(any_of(patterns, pl.col("code"))).to_series().to_list() == expected
    listed = frame.select(pl.col("code").drop_nulls().implode().list.eval(any_of(patterns, pl.element())))
    assert listed.item().to_list() == expected[:-1]
    assert True in expected and False in expected


@pytest.mark.parametrize("name", ["is_subsidiary", "is_site", "is_action"])
def test_the_rules_code_classes_agree_with_the_reference_audit(name):
    """The code classes the rules stand on, in their fast prefix form (`in_chapters`), against the
    reference audit's plain Python. Sources: Chapter Y and Z codes are only ever secondary
    (National Clinical Coding Standards OPCS-4, PRule 7, via shared/reference/nice-coding.md s3 [U]);
    a site is a Chapter Z code, Z94 being laterality (nice-coding.md s3); an overflow code belongs to
    its parent chapter, O16.1 Pelvis NEC to Z (nice-coding.md s4, audit/overflow_categories.csv [I]);
    V55 levels of spine are assigned in second place, a qualifier and not an action (seeds IPG319,
    IPG366)."""
    import polars as pl

    from audit import codes
    from tests import reference_audit

    values = ["Y534", "Y11", "Z676", "Z942", "Z99", "O161", "O131", "V551", "V522", "W371", "A01"]
    frame = pl.DataFrame({"code": values})
    found = frame.select(getattr(codes, name)(pl.col("code"))).to_series().to_list()
    assert found == [getattr(reference_audit, name)(v) for v in values]
    assert True in found and False in found
