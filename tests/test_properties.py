"""Property-based tests: normalisation, the wide -> long reshape, and row accounting.

Kept quick by default (few examples); set HYPOTHESIS_PROFILE=thorough for a longer search.
"""

import os
import string

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import codes
from audit.canonical import build
from audit.load import read_exports

settings.register_profile("quick", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

real_codes = st.from_regex(r"[A-HJ-Z][0-9]{3}", fullmatch=True)
spellings = st.one_of(
    real_codes,
    real_codes.map(lambda c: f"{c[:3]}.{c[3]}".lower()),
    real_codes.map(lambda c: f" {c} "),
    real_codes.map(lambda c: c + "1"),
)
# A NUL byte makes a file count as binary (rejected whole, by design), so text here has none.
text = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12)
anything = st.one_of(spellings, text, st.just("-   "), st.just("&"), st.none())


@given(anything)
def test_normalisation_never_raises_and_is_idempotent(value):
    first = codes.normalise(value)
    assert first.kind in codes.CODE_KINDS
    if first.code is not None:
        again = codes.normalise(first.code)
        assert (again.code, again.kind, again.local_suffix) == (first.code, codes.PROCEDURE, None)
    assert (first.invalid_reason is not None) == (first.kind == codes.INVALID)


@given(spellings)
def test_every_spelling_of_a_real_code_is_a_procedure(value):
    assert codes.normalise(value).kind == codes.PROCEDURE


cells = st.one_of(spellings, st.just(""), st.just("-"), st.just("&"), st.text(alphabet=string.ascii_letters + string.digits + " .", max_size=7))


@given(st.lists(st.lists(cells, min_size=6, max_size=6), min_size=0, max_size=25))
def test_wide_to_long_preserves_codes_and_positions(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("wide") / "e.csv"
    frame = pl.DataFrame(
        {"EPIKEY": [f"E{i}" for i in range(len(rows))],
         **{f"OPERTN_0{n + 1}": [r[n] for r in rows] for n in range(6)}},
        schema={"EPIKEY": pl.String, **{f"OPERTN_0{n + 1}": pl.String for n in range(6)}},
    )
    frame.write_csv(path)
    data = build(read_exports([path]))
    expected = sorted(
        (f"E{i}", n + 1) for i, row in enumerate(rows) for n, cell in enumerate(row)
        if codes.normalise(cell).kind != codes.BLANK
    )
    assert sorted(data.procedures.select("episode_id", "position").rows()) == expected
    assert data.episodes.height == len(rows)


# Surrogates (category Cs) cannot be written as UTF-8 at all, so they are not a possible export value.
ids = st.one_of(st.sampled_from(["A", "B", "C", " A ", ""]),
                st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=3))
positions = st.one_of(st.integers(-1, 30).map(str), st.sampled_from(["", "x", "2.0", " 3 "]))


@given(st.lists(st.tuples(ids, positions, anything), max_size=30))
def test_long_rows_are_all_accounted_for(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("long") / "e.csv"
    pl.DataFrame(rows, schema={"episode_id": pl.String, "position": pl.String, "code": pl.String},
                 orient="row").write_csv(path)
    data = build(read_exports([path]))
    read = len(rows)
    counts = data.files[0]
    assert counts.rows_read == read == counts.rows_rejected + counts.rows_audited
    assert data.rejected.height == counts.rows_rejected
    # Every audited row is an episode's procedure (blank codes are rejected in long files).
    assert data.procedures.height == counts.rows_audited
