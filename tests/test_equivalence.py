"""The fast path (batches, prefilter, vectorised rules) against a deliberately simple
reference implementation, on the same generated input."""

import dataclasses
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from audit.catalogue import load_catalogue
from audit.load import read_exports
from audit.pipeline import AuditOptions, run_audit
from tests.benchmarks.generate import generate_hes
from tests.reference_audit import reference_audit

AS_OF = date(2026, 11, 21)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("equivalence") / "hes.csv"
    generate_hes(path, episodes=20000, seed=7)
    return path


SLOTS = range(1, 25)


@pytest.fixture(scope="module")
def padded(generated):
    """The same episodes, with every unused procedure slot of 3 rows in 10 written `-`, as some PAS
    exports do: padding the prefilter must let through, never a reason to audit or to miss a row."""
    path = generated.with_name("hes_padded.csv")
    wide = pl.read_csv(generated, infer_schema=False)
    pad = pl.col("EPIKEY").str.slice(-1).cast(pl.Int64) % 10 < 3
    wide.with_columns(
        pl.when(pad & pl.col(f"OPERTN_{n:02d}").is_null()).then(pl.lit("-"))
        .otherwise(pl.col(f"OPERTN_{n:02d}")).alias(f"OPERTN_{n:02d}") for n in SLOTS
    ).write_csv(path)
    return path


@pytest.fixture(scope="module")
def odd_dates(generated):
    """The same episodes with dates the full test must look at: UK-style, impossible, spaced."""
    path = generated.with_name("hes_odd_dates.csv")
    wide = pl.read_csv(generated, infer_schema=False)
    last = pl.col("EPIKEY").str.slice(-1)
    wide.with_columns(
        pl.when(last == "7").then(pl.lit("01/02/2013")).otherwise(pl.col("ADMIDATE")).alias("ADMIDATE"),
        pl.when((last == "3") & pl.col("OPDATE_01").is_not_null()).then(pl.lit("2013-02-30"))
        .otherwise(pl.col("OPDATE_01")).alias("OPDATE_01"),
        pl.when(last == "5").then(pl.lit(" 2013-03-01")).otherwise(pl.col("EPIEND")).alias("EPIEND"),
    ).write_csv(path)
    return path


@pytest.fixture(scope="module")
def timestamps(generated):
    """The same episodes with a time after the dates of most rows, as SQL Server and Spark write
    timestamps as text: the same dates, so the same audit, and no more rows to triage."""
    path = generated.with_name("hes_timestamps.csv")
    wide = pl.read_csv(generated, infer_schema=False)
    last = pl.col("EPIKEY").str.slice(-1).cast(pl.Int64)
    time = pl.when(last % 2 == 1).then(pl.lit(" 00:00:00.000")).when(last == 2).then(pl.lit("T10:05"))
    dates = [c for c in wide.columns if c.startswith("OPDATE_") or c in ("ADMIDATE", "EPISTART", "EPIEND")]
    wide.with_columns(pl.when(pl.col(c) != "").then(pl.col(c) + time.fill_null("")).alias(c) for c in dates).write_csv(path)
    return path


@pytest.fixture(scope="module")
def uk_dates(generated):
    """The same episodes with every date written `dd/mm/yyyy`, as a PAS report opened in Excel
    writes them: the same dates, so the same audit, and no more rows to triage."""
    path = generated.with_name("hes_uk_dates.csv")
    wide = pl.read_csv(generated, infer_schema=False)
    dates = [c for c in wide.columns if c.startswith("OPDATE_") or c in ("ADMIDATE", "EPISTART", "EPIEND")]
    wide.with_columns(pl.col(c).str.to_date("%Y-%m-%d", strict=False).dt.to_string("%d/%m/%Y").alias(c)
                      for c in dates).write_csv(path)
    return path


@pytest.fixture(scope="module")
def quoted(generated):
    """The same export with every field quoted, empty ones as `""` (as pandas, R and SQL Server
    exports may write them): the same values, so the same audit, and no more rows to triage."""
    path = generated.with_name("hes_quoted.csv")
    pl.read_csv(generated, infer_schema=False).write_csv(path, quote_style="always")
    return path


@pytest.fixture(scope="module")
def quoted_rows(generated):
    """The same export with the fields of every other row quoted, and a consultant's code with a
    comma in it quoted wherever it is (a field only the CSV parser splits rightly)."""
    path = generated.with_name("hes_quoted_rows.csv")
    wide = pl.read_csv(generated, infer_schema=False).with_columns(
        pl.when(pl.col("EPIKEY").str.slice(-1) == "4").then(pl.col("CONSULT") + ", locum").otherwise("CONSULT"))
    odd = pl.int_range(pl.len()) % 2 == 1
    fields = [pl.when(odd | pl.col(c).str.contains(","))
              .then(pl.concat_str(pl.lit('"'), pl.col(c).fill_null(""), pl.lit('"')))
              .otherwise(pl.col(c).fill_null("")) for c in wide.columns]
    body = wide.select(pl.concat_str(fields, separator=",").str.join("\n")).item()
    path.write_text(",".join(wide.columns) + "\n" + body + "\n")
    return path


@pytest.fixture(scope="module")
def parquet(generated):
    """The same export as Parquet, in row groups that batches of any size straddle."""
    path = generated.with_name("hes.parquet")
    pl.read_csv(generated, infer_schema=False).write_parquet(path, row_group_size=1000)
    return path


@pytest.fixture(scope="module")
def parquet_dates(generated):
    """The same export as Parquet with its dates typed (Spark writes a SUS extract's dates so),
    the episode's as dates and the procedures' as dates and times."""
    path = generated.with_name("hes_dates.parquet")
    wide = pl.read_csv(generated, infer_schema=False)
    wide.with_columns(
        *[pl.col(c).str.to_date("%Y-%m-%d", strict=False) for c in ("ADMIDATE", "EPISTART", "EPIEND")],
        *[pl.col(f"OPDATE_{n:02d}").str.to_datetime("%Y-%m-%d", time_unit="us", strict=False) for n in SLOTS],
    ).write_parquet(path, row_group_size=1000)
    return path


@pytest.fixture(scope="module")
def long(generated):
    """The same episodes in the long layout (one row per procedure, in episode order)."""
    path = generated.with_name("long.csv")
    wide = pl.read_csv(generated, infer_schema=False)
    episode = [pl.col("ADMIDATE").alias("admission_date"), pl.col("EPISTART").alias("episode_start"),
               pl.col("EPIEND").alias("episode_end"), pl.col("PROCODE3").alias("provider"),
               pl.col("TRETSPEF").alias("specialty"), pl.col("CONSULT").alias("consultant")]
    pl.concat([
        wide.with_row_index("_order").filter(pl.col(f"OPERTN_{n:02d}").is_not_null()).select(
            "_order", pl.col("EPIKEY").alias("episode_id"), pl.lit(n).alias("position"),
            pl.col(f"OPERTN_{n:02d}").alias("code"), pl.col(f"OPDATE_{n:02d}").alias("procedure_date"), *episode)
        for n in SLOTS
    ]).sort("_order", "position").drop("_order").write_csv(path)
    return path


@pytest.fixture(scope="module")
def long_scattered(long):
    """The same long rows, every position 1 first, then every position 2, and so on: an export
    that does not keep an episode's rows together, so small batches scatter them."""
    path = long.with_name("long_scattered.csv")
    pl.read_csv(long, infer_schema=False).with_row_index("_order").sort(
        pl.col("position").cast(pl.Int32), "_order").drop("_order").write_csv(path)
    return path


def fast_audit(path, catalogue, batch_rows=None, monkeypatch=None):
    """`batch_rows`: small batches, to exercise the batch boundaries (needs `monkeypatch`)."""
    options = AuditOptions(inputs=[path], as_of=AS_OF)
    if batch_rows:
        import audit.load

        monkeypatch.setattr(audit.load, "BATCH_ROWS", batch_rows)
    return run_audit(options, catalogue, datetime.now(timezone.utc))


def as_sets(result):
    findings = {
        (e, g, r, p, s)
        for e, g, r, p, s in result.findings.select("episode_id", "guidance_id", "rule_id", "position", "severity").iter_rows()
    }
    statuses = {(e, g): s for e, g, s in result.episodes.select("episode_id", "guidance_id", "status").iter_rows()}
    return findings, statuses


@pytest.fixture(scope="module")
def reference(generated):
    return reference_audit(generated, load_catalogue(), AS_OF)


@pytest.mark.slow
@pytest.mark.parametrize("batch_rows", [None, 777, 300])
@pytest.mark.parametrize("variant", ["generated", "padded", "timestamps", "uk_dates", "quoted", "quoted_rows",
                                     "parquet", "parquet_dates", "long", "long_scattered"])
def test_fast_path_equals_reference(request, monkeypatch, reference, variant, batch_rows):
    """Every variant holds the same episodes, so the reference of the plain export is theirs too;
    batches of a few hundred rows make many episodes (long: many procedures) straddle batches."""
    catalogue = load_catalogue()
    path = request.getfixturevalue(variant)
    result = fast_audit(path, catalogue, batch_rows, monkeypatch)
    if batch_rows:  # the batches really are that small (a default bound at import once hid it)
        batches = list(read_exports([path])[0].batches())
        # A long batch may take in the rest of its last episode (at most 24 procedures here).
        assert len(batches) > 1 and max(b.height for b in batches) <= batch_rows + 24
        ids = [set(b["episode_id"]) for b in batches]
        straddling = sum(map(len, ids)) - len(set().union(*ids))
        # No episode straddles two batches, unless the file scatters its rows (then many do).
        assert straddling > 1000 if variant == "long_scattered" else straddling == 0
    findings, statuses = as_sets(result)
    expected_findings, expected_statuses = reference
    assert len(expected_findings) > 200 and len(expected_statuses) > 300  # the input exercises the rules
    assert findings == expected_findings
    assert statuses == expected_statuses
    assert result.findings.height == len(findings)  # no duplicate findings


@pytest.mark.parametrize("variant, batch_rows", [("generated", None), ("padded", None), ("long", None),
                                                 ("long", 300), ("long_scattered", 300)])
def test_prefilter_changes_nothing_but_the_work(request, monkeypatch, variant, batch_rows):
    """Padded rows are set aside like the others (they were once all audited in full), and so
    are a long file's clean episodes, batch by batch; where the file scatters an episode's rows
    over batches, it is audited in full (its batches saw only part of it)."""
    import audit.load
    from audit.canonical import build

    if batch_rows:
        monkeypatch.setattr(audit.load, "BATCH_ROWS", batch_rows)
    path = request.getfixturevalue(variant)
    catalogue = load_catalogue()
    index = tuple(p for g in catalogue.auditable() for cs in g.code_sets for p in cs.index.patterns)
    full = build(read_exports([path]))
    filtered = build(read_exports([path]), index=index)
    if variant == "long_scattered":
        seen = [b["episode_id"].str.strip_chars().unique() for b in read_exports([path])[0].batches()]
        straddling = set(pl.concat(seen).filter(pl.concat(seen).is_duplicated()))
        assert len(straddling) > 1000 and straddling <= set(filtered.episodes["episode_id"])
        assert filtered.episodes.height < full.episodes.height
    else:
        assert filtered.episodes.height < full.episodes.height / 5
    assert filtered.episodes_audited == full.episodes_audited == 20000
    kinds = full.procedures["code_kind"].value_counts().sort("code_kind")
    clean = sum(f.clean_procedures for f in filtered.files)
    clean_dashes = sum(f.clean_no_operations for f in filtered.files)
    filtered_kinds = dict(filtered.procedures["code_kind"].value_counts().iter_rows())
    full_kinds = dict(kinds.iter_rows())
    assert filtered_kinds["procedure"] + clean == full_kinds["procedure"]
    assert filtered_kinds.get("no-operation", 0) + clean_dashes == full_kinds["no-operation"]
    assert [f.invalid_dates for f in filtered.files] == [f.invalid_dates for f in full.files]


@pytest.mark.parametrize("batch_rows", [None, 777])
def test_a_parquet_files_dates_are_tested_as_its_csv_files_are(odd_dates, tmp_path, monkeypatch, batch_rows):
    """A Parquet file's date columns are tested once each batch is read, over their non-null
    values only (audit.dates.odd_rows; the record scan tests a CSV file's in its lines): the same
    count of invalid dates as the same export in CSV, every row dated after the as-of date (or
    holding an odd date) audited in full, and the same findings."""
    import audit.load
    from audit.canonical import build
    from audit.unit import index_patterns

    monkeypatch.setattr(audit.load, "BATCH_ROWS", batch_rows)
    last = pl.col("EPIKEY").str.slice(-1)
    wide = pl.read_csv(odd_dates, infer_schema=False).with_columns(  # and some dated after AS_OF
        pl.when(last == "9").then(pl.lit("2099-01-01")).otherwise(pl.col("OPDATE_02")).alias("OPDATE_02"),
        pl.when(last == "1").then(pl.lit(f"{AS_OF + timedelta(days=1)} 10:00")).otherwise(pl.col("EPIEND"))
        .alias("EPIEND"))
    csv, parquet = tmp_path / "dated.csv", tmp_path / "dated.parquet"
    wide.write_csv(csv)
    wide.write_parquet(parquet, row_group_size=1000)
    index = index_patterns(load_catalogue())
    by_format = {path.suffix: build(read_exports([path], index=index, as_of=AS_OF), index=index, as_of=AS_OF)
                 for path in (csv, parquet)}
    invalid = [data.files[0].invalid_dates for data in by_format.values()]
    assert invalid[0] == invalid[1] > 1000
    later = wide.filter(((last == "9") & pl.col("OPERTN_02").is_not_null()) | (last == "1"))["EPIKEY"]
    for data in by_format.values():
        assert later.len() > 1000 and later.is_in(data.episodes["episode_id"].implode()).all()
    found = [as_sets(fast_audit(path, load_catalogue(), batch_rows, monkeypatch)) for path in (csv, parquet)]
    assert found[0] == found[1]
    assert len(found[0][0]) > 200


def test_examples_equal_reference():
    """The hand-made HES examples exercise every rule (spinal V55, HES fillers, first filled slot,
    overflow sites, evidence, date windows): the fast path and the reference agree on them."""
    from tests.conftest import EXAMPLES

    path = EXAMPLES / "hes_episodes.csv"
    catalogue = load_catalogue()
    findings, statuses = as_sets(fast_audit(path, catalogue))
    expected_findings, expected_statuses = reference_audit(path, catalogue, AS_OF)
    rules = {r for _, _, r, _, _ in expected_findings}
    assert {"levels-not-second", "levels-repeated", "not-known-with-codes", "no-operation-between-codes",
            "date-in-future", "subsidiary-code-primary"} <= rules
    assert "date-uncertain" in expected_statuses.values()
    assert findings == expected_findings
    assert statuses == expected_statuses


@pytest.mark.parametrize("value", [
    "2026-11-22", "2027-01-01", " 2026-12-01", "\t2026-12-01", "\u00a02026-12-01", "2026-12-01T08:30",
    "2026-11-22 00:00:00.000", "2026-11-21X", "01/12/2026", "1/1/2030", "22/11/2026", "01/01/2099",
    "21/12/2026", "29/02/2028", "31/11/2026", "21/11/2026 10:00",
    # Instants on the as-of day that fell on the next day in England (audit.dates.parse_date).
    "2026-11-21T23:30-05:00", "2026-11-21 20:00:00.000-04:00",
])
def test_prefilter_keeps_every_date_that_may_be_after_as_of(value):
    """The prefilter orders dates by their text: every value the full audit parses as a date
    after --as-of (audit.dates.parse_date) must keep its row in the full audit."""
    from audit.dates import parse_date

    rows = pl.DataFrame({"code_1": ["W371"], "date_1": [value], "episode_end": ["2026-11-20"]})
    parsed = rows.select(parse_date(pl.col("date_1"))).item()
    assert parsed is None or parsed > AS_OF  # the values are all (or may be read as) late
    for uk in (False, True):  # Parquet's reading of dates, and a CSV file's
        assert _triaged_needs_audit(rows, uk) == [True, True]


def _triaged_needs_audit(rows: pl.DataFrame, uk: bool) -> list[bool]:
    """`needs_audit` for the one row of `rows`, as the prefilter decides it both ways: the date
    test and the comparison with the as-of date apart, and in one bounded pattern per column (the
    file's own query where no scan noted the dates: audit.canonical, `later_in_odd`)."""
    from audit.dates import any_odd_date
    from audit.layouts import date_column_names
    from audit.prefilter import triage

    bounded = any_odd_date(date_column_names(rows.columns), uk, until=AS_OF)
    return [triage(rows.lazy(), [1], (), as_of=AS_OF, uk=uk).collect()["needs_audit"].item(),
            triage(rows.lazy(), [1], (), as_of=AS_OF, odd_dates=bounded, uk=uk,
                   later_in_odd=True).collect()["needs_audit"].item()]


@pytest.mark.parametrize("value", ["2026-11-21", "2026-11-20", "2010-01-01", "1800-01-01", None,
                                   "2026-11-20 23:59", "2026-11-20T23:59:59.999", "2010-01-01 00:00:00",
                                   "2026-11-20T23:30:00Z", "2026-11-20 23:59:59.999+00:00",
                                   "21/11/2026", "20/11/2026", "31/10/2026", "29/02/2024", "01/01/2010",
                                   "01/01/1800"])
def test_prefilter_sets_aside_rows_dated_on_or_before_as_of(value):
    """A time after the date (SQL Server's and Spark's timestamps as text) leaves the date as it
    is, and an instant the day before the as-of day is at latest on it in England
    (audit.dates.parse_date). A CSV file's `dd/mm/yyyy` date is compared as the date it is, not as
    its text."""
    rows = pl.DataFrame({"code_1": ["W371"], "date_1": [value], "episode_end": ["2026-11-20"]},
                        schema={"code_1": pl.String, "date_1": pl.String, "episode_end": pl.String})
    assert _triaged_needs_audit(rows, uk=True) == [False, False]
    if value is None or "/" not in value:  # (Parquet's dates: a UK one is odd there)
        assert _triaged_needs_audit(rows, uk=False) == [False, False]


@pytest.mark.parametrize("dtype", [pl.Date, pl.Datetime("us"), pl.Datetime("ms"), pl.Datetime("ns")], ids=str)
@pytest.mark.parametrize("as_of", [AS_OF, date(1500, 1, 1), date(2300, 1, 1)], ids=str)
def test_typed_dates_are_tested_as_their_text_would_be(dtype, as_of):
    """A Parquet file's typed dates (audit.dates.TYPED_DATES) are tested as dates in the stream:
    odd (no real date as text: years outside 1-9999) and after the as-of day exactly when the same
    values cast to text, as every later stage reads them, test so. Around the as-of day, its last
    moment, the years' edges, and values polars holds but text shows as no date (nanoseconds hold
    years 1677-2262 only: as-of days outside them too)."""
    from audit.dates import any_odd_date
    from audit.prefilter import maybe_after

    days = [date(1, 1, 1), date(1, 1, 2), date(9999, 12, 31), date(1800, 1, 1), date(2024, 2, 29),
            AS_OF - timedelta(days=1), AS_OF, AS_OF + timedelta(days=1), date(2099, 1, 1)]
    values = pl.Series("date_1", days, pl.Date).append(pl.Series("date_1", [-719_163, -719_530, 2_932_897, None],
                                                                  pl.Int32).cast(pl.Date))  # (years 0, -1, 10000)
    if dtype == pl.Datetime("ns"):  # (as many of them as it holds)
        values = values.filter(values.is_between(date(1678, 1, 1), date(2262, 1, 1)) | values.is_null())
    typed = values.to_frame().with_columns(pl.col("date_1").cast(dtype))
    if dtype != pl.Date:  # a time after the date: the last moment of the day
        last_moment = (pl.col("date_1") + timedelta(days=1) - timedelta(milliseconds=1)).cast(dtype)
        typed = pl.concat([typed, typed.select(last_moment)])
    text = typed.select(pl.col("date_1").cast(pl.String))
    for frame in (typed, text):
        assert frame.schema["date_1"] == (pl.String if frame is text else dtype)
    kinds = {"date_1": dtype}
    odd = typed.select(any_odd_date(["date_1"], typed=kinds)).to_series()
    assert odd.to_list() == text.select(any_odd_date(["date_1"])).to_series().to_list()
    assert (0 < odd.sum() < odd.len() - 1) is (dtype != pl.Datetime("ns"))
    later = typed.select(maybe_after(["date_1"], as_of, typed=kinds)).to_series()
    # (The text of the as-of day with a time is kept in full, as it might be an instant: typed
    # values without a time zone are none.)
    on_the_day = text.select(pl.col("date_1").str.starts_with(f"{as_of.isoformat()} ").fill_null(False)).to_series()
    text_later = text.select(maybe_after(["date_1"], as_of)).to_series()
    assert later.to_list() == (text_later & ~on_the_day).to_list()
    assert (on_the_day.sum() > 0) is (dtype != pl.Date and as_of == AS_OF)
    if as_of == AS_OF:  # some values on or before the day, some after it
        assert 0 < later.sum() < later.len() - 1


@pytest.mark.parametrize("fields, needs, filled, no_operation", [
    (["W371", None, None], False, 1, 0),
    (["W371", "", None], False, 1, 0),  # an empty text field (Parquet) is a blank slot, like a null
    ([None, "W371", "-"], False, 2, 1),  # padding after the last code
    (["-", None, "-"], False, 2, 2),  # no operation, padded
    ([None, None, None], False, 0, 0),
    (["", "", ""], False, 0, 0),
    (["-", None, "W371"], True, 0, 0),  # a code after "no operation"
    ([None, "", "Y031"], True, 0, 0),  # a Y code is the first filled field
    (["W371\x1fW381", None, None], True, 0, 0),  # the separator inside a field
    (["W371", None, "w381"], True, 0, 0),  # not a clean spelling
])
def test_prefilter_reads_null_and_empty_fields_alike(fields, needs, filled, no_operation):
    from audit.prefilter import triage

    rows = pl.DataFrame([fields], schema={f"code_{n}": pl.String for n in (1, 2, 3)}, orient="row")
    got = triage(rows.lazy(), [1, 2, 3], ()).collect().row(0, named=True)
    assert got["needs_audit"] is needs
    if not needs:  # counted only for the rows the prefilter sets aside
        assert (got["filled"], got["no_operation"]) == (filled, no_operation)


@pytest.mark.parametrize("fields", [
    ["W371"], ["W371", "W381"], ["W371", "-"], ["-"], ["-", "-"], ["W371", " - "], ["W371", "Y031"],
    ["-", "W371"], ["W371", "-", "W381"], ["Y031", "W371"], ["Z942"], ["W371", "V552"], ["V252"],
    ["O011", "W371"], ["w371"], ["W37.1"], ["W371", "&"], ["&"], ["W3712"], ["V5"], ["W371\x1fW381"],
    ["V522", "Y032"], ["W371", "X123", "A011"],
])
def test_long_episodes_are_triaged_as_the_same_wide_rows(fields):
    """A long file's episode is set aside exactly when the same fields written wide would be,
    whatever order its rows come in, and its fields are counted alike."""
    from audit.catalogue import load_catalogue
    from audit.prefilter import long_episode_triage, long_row_triage, triage

    index = tuple(p for g in load_catalogue().auditable() for cs in g.code_sets for p in cs.index.patterns)
    wide = triage(pl.DataFrame({f"code_{n}": [v] for n, v in enumerate(fields, 1)}).lazy(),
                  list(range(1, len(fields) + 1)), index).collect()
    long = pl.DataFrame({"episode_id": ["E1"] * len(fields), "position": [str(n) for n in range(1, len(fields) + 1)],
                         "code_raw": fields}).reverse()
    rows = long_row_triage(long.lazy(), index).collect()
    episodes = long_episode_triage(rows, accepted=pl.lit(True))
    assert episodes["episode_id"].to_list() == ["E1"]
    assert episodes["needs_audit"].to_list() == wide["needs_audit"].to_list()
    if not wide["needs_audit"].item():
        counted = (rows["filled"].sum(), rows["no_operation"].sum())
        assert counted == (wide["filled"].item(), wide["no_operation"].item())


@pytest.mark.parametrize("variant", ["generated", "padded", "odd_dates", "timestamps", "uk_dates", "quoted",
                                     "quoted_rows"])
def test_the_scanned_triage_changes_nothing_but_the_work(request, monkeypatch, variant):
    """The record scan certifies most rows clean from their lines (audit.prefilter.plain_coding)
    and only the others are triaged after parsing: the same rows are set aside and counted as when
    every row is triaged, in batches of any size, however many rows the scan leaves to triage
    (the test is forced on where the scan would skip it)."""
    _assert_scanned_as_triaged(request.getfixturevalue(variant), monkeypatch, odd_dates=variant == "odd_dates")


@pytest.mark.parametrize("variant", ["generated", "padded", "quoted"])
def test_rows_the_code_list_sends_to_the_audit_are_read_again_whole(request, monkeypatch, variant):
    """With the user's OPCS-4 code list, a certified row holding a code the list lacks needs the
    audit: its line, which the scan did not keep, is read again, and the run is the one every row
    triaged in full gives (a list lacking every fifth of the export's codes: thousands of rows)."""
    path = request.getfixturevalue(variant)
    wide = pl.read_csv(path, infer_schema=False)
    found = pl.concat([wide[f"OPERTN_{n:02d}"] for n in SLOTS]).drop_nulls().unique().sort()
    shaped = found.filter(found.str.contains(r"^[A-HJ-Z][0-9]{3}$"))
    known = shaped.filter(pl.int_range(shaped.len(), eager=True) % 5 != 0)
    scanned = _assert_scanned_as_triaged(path, monkeypatch, known_codes=known)
    assert scanned.procedures.filter(~pl.col("code").is_in(known.implode())).height > 1000


def _assert_scanned_as_triaged(path, monkeypatch, known_codes=None, odd_dates=False):
    import audit.load
    import audit.records
    from audit.canonical import _narrow, build
    from audit.unit import index_patterns

    monkeypatch.setattr(audit.records, "TRIAGE_SHARE", 1.0)
    monkeypatch.setattr(audit.load, "BATCH_ROWS", 777)
    index = index_patterns(load_catalogue())
    exports = read_exports([path], index=index, as_of=AS_OF)
    flagged = exports[0].scan.to_triage.len()
    assert 0 < flagged < 20000 * (0.4 if odd_dates else 0.1)  # (padding is certified)
    for as_of in (None, AS_OF):
        # Certified rows are parsed for their id and codes only, the others from their lines.
        assert _narrow(exports[0], index, as_of)
        scanned = build(exports, index=index, known_codes=known_codes, as_of=as_of)
        triaged = build(read_exports([path]), index=index, known_codes=known_codes, as_of=as_of)
        for name in ("episodes", "procedures", "rejected", "carried"):
            assert getattr(scanned, name).equals(getattr(triaged, name)), name
        assert scanned.files == triaged.files and scanned.episode_ids.equals(triaged.episode_ids)
        assert (scanned.files[0].invalid_dates > 1000) is odd_dates
    return scanned


@pytest.mark.parametrize("ending, bom", [(b"\r\n", b""), (b"\r\n", b"\xef\xbb\xbf"), (b"\r", b"")],
                         ids=["crlf", "bom-crlf", "cr"])
def test_line_endings_and_a_bom_change_nothing_the_narrow_read_gives(generated, tmp_path, ending, bom):
    """Windows systems end an export's lines with CRLF and may start it with a byte order mark
    (some old tools end lines with CR alone): the rows the scan leaves to triage are parsed again
    from its copy of their lines (`Export.triage_rows`), which must read as the file's own."""
    path = tmp_path / "endings.csv"
    path.write_bytes(bom + generated.read_bytes().replace(b"\n", ending))
    _assert_narrow_read_as(path, generated)


def test_quoting_every_field_changes_nothing_the_narrow_read_gives(generated, quoted):
    """Quoted fields (empty ones as `""`, which the parser reads as empty text, not null) give the
    rows and counts the unquoted file gives, through the scan's narrow read."""
    _assert_narrow_read_as(quoted, generated)


def _assert_narrow_read_as(path, generated):
    from audit.canonical import _narrow, build
    from audit.unit import index_patterns

    index = index_patterns(load_catalogue())
    exports = read_exports([path], index=index, as_of=AS_OF)
    assert _narrow(exports[0], index, AS_OF) and exports[0].scan.to_triage.len() > 100
    variant = build(exports, index=index, as_of=AS_OF)
    plain = build(read_exports([generated], index=index, as_of=AS_OF), index=index, as_of=AS_OF)
    for name in ("episodes", "procedures", "rejected", "carried"):
        frame, expected = getattr(variant, name), getattr(plain, name)
        # (the generated export has no rejected rows, and carries no column: no carried rows)
        assert name in ("rejected", "carried") or frame.height > 0, name
        assert frame.drop("source_file", strict=False).equals(expected.drop("source_file", strict=False)), name
    counts = [dataclasses.replace(f, path="", sha256="", encoding="") for f in (*variant.files, *plain.files)]
    assert counts[0] == counts[1]


FIELD_VALUES = ["W371", "A011", "X123", "V522", "V552", "V252", "O011", "Y031", "Z942", "-", " - ", "", "w371",
                "W37.1", "W3712", "&", "I123", "W37"]


@pytest.mark.parametrize("quoting", ["none", "every field", "every other row"])
def test_a_row_the_scan_certifies_is_one_the_triage_sets_aside(tmp_path, monkeypatch, quoting):
    """Every row whose line matches the scan's clean-coding patterns is one `triage` sets aside,
    with the fields `scanned` counts; and most clean rows are certified, whether their fields are
    quoted or not (`""`, a quoted empty field, is parsed as empty text, an unquoted one as null)."""
    import re
    from itertools import product

    from audit import records
    from audit.prefilter import TO_TRIAGE, plain_coding, scanned, triage
    from audit.unit import index_patterns

    monkeypatch.setattr(records, "TRIAGE_SHARE", 1.0)  # most of these rows are not clean

    index = index_patterns(load_catalogue())
    rows = list(product(FIELD_VALUES, repeat=3))
    path = tmp_path / "export.csv"
    lines = [(a, str(i), b, c) for i, (a, b, c) in enumerate(rows)]
    if quoting != "none":
        lines = [tuple(f'"{v}"' for v in line) if quoting == "every field" or i % 2 else line
                 for i, line in enumerate(lines)]
    path.write_text("\n".join(",".join(row) for row in [("OPERTN_01", "ID", "OPERTN_02", "OPERTN_03"), *lines]))
    scan = records.scan_records(path, ",", 4, quotes=quoting != "none", coding=plain_coding(index, 0, [2, 3]))
    parsed = pl.read_csv(path, infer_schema=False).select(
        pl.col("OPERTN_01").alias("code_1"), pl.col("OPERTN_02").alias("code_2"), pl.col("OPERTN_03").alias("code_3"))
    exact = triage(parsed.lazy(), [1, 2, 3], index).collect()
    cheap = scanned(parsed.with_row_index("row").lazy(), [1, 2, 3],
                    pl.col("row").is_in(scan.to_triage.cast(pl.UInt32).implode())).collect()
    certified = ~cheap[TO_TRIAGE]
    assert not exact.filter(certified)["needs_audit"].any()
    assert exact.filter(certified).select("filled", "no_operation").equals(
        cheap.filter(certified).select("filled", "no_operation"))
    # Certified: no coding, or "no operation" alone; or clean codes only, none that fires a rule
    # (the triage of each code alone, after another, says which) and none from Chapter Y/Z first.
    def sets_aside(*fields):
        frame = pl.DataFrame([fields], schema=[f"code_{n}" for n in range(1, len(fields) + 1)], orient="row")
        return not triage(frame.lazy(), list(range(1, len(fields) + 1)), index).collect()["needs_audit"].item()

    shaped = {v for v in FIELD_VALUES if re.fullmatch("[A-HJ-Z][0-9]{3}", v)}
    primary = {v for v in shaped if sets_aside(v)}
    other = {v for v in shaped if sets_aside("W371", v)} | {""}
    # Padding: `-` in every slot after the last code (a `-` before a code needs the audit).
    padding = {"", "-"}
    expected = [(a in padding and b in padding and c in padding)
                or (a in primary and ((b in other and c in other | padding) or (b in padding and c in padding)))
                for a, b, c in rows]
    # (the scan's pattern alone also lets "no operation" or no code first, then codes, through)
    assert certified.to_list() == expected and sum(expected) > 40


def test_the_clean_codes_pattern_excludes_exactly_the_given_prefixes():
    import re
    from itertools import product

    from audit.prefilter import _codes_except

    codes = ["".join(c) for c in product("ABIVYZ", "0129", "0129", "0129")]
    for prefixes in [set(), {"V"}, {"V5", "A"}, {"V522", "V55", "A0", "I12", "B999"}, {"A", "B", "V", "Y", "Z"},
                     {"Y0", "Y1", "Y2"}, {""}]:
        pattern = _codes_except(prefixes)
        clean = {c for c in codes if re.fullmatch("[A-HJ-Z][0-9]{3}", c)}
        expected = {c for c in clean if not any(c.startswith(p) for p in prefixes)}
        assert {c for c in codes if pattern and re.fullmatch(pattern, c)} == expected, prefixes


@pytest.mark.parametrize("more_codes, siblings_clean", [(0, True), (3000, False)])
def test_the_clean_codes_leave_out_exact_index_codes_alone_within_the_budget(more_codes, siblings_clean):
    """Another code of an exact index code's category is clean (the scan certifies it) while the
    pattern stays within CODE_PATTERN_BUDGET; a catalogue past it leaves out whole categories."""
    import re

    from audit.codes import parse_pattern
    from audit.prefilter import CODE_PATTERN_BUDGET, _clean_codes

    letters = "ABCDEFGHJKLMNOPQRSTUVWXYZ"
    more = [f"{letters[n % 25]}{n % 1000:03d}" for n in range(more_codes)]  # H207 among them
    code, primary = _clean_codes(tuple(parse_pattern(p) for p in ["H20.5", "B28.-", *more]))
    assert not any(re.fullmatch(code, c) for c in ("H205", "B281", "V255", "V552", "O011"))
    assert not re.fullmatch(primary, "Y031")  # (Chapter Y or Z never first)
    assert bool(re.fullmatch(code, "H206")) == siblings_clean and bool(re.fullmatch(primary, "H206")) == siblings_clean
    assert (max(len(code), len(primary)) <= CODE_PATTERN_BUDGET) == siblings_clean


def test_a_small_file_is_triaged_from_its_parsed_columns(generated, monkeypatch):
    """Below `LINE_CODING_FROM` bytes the scan does not test a file's coding on its lines (its
    pattern would cost more to compile than it saves): no row is certified from its line, every
    one is triaged once parsed whole, and the run is the one the line's test gives."""
    import audit.records
    from audit.canonical import _narrow, build
    from audit.unit import index_patterns

    index = index_patterns(load_catalogue())
    size = generated.stat().st_size
    built = {}
    for threshold, tested in ((size + 1, False), (size, True)):
        monkeypatch.setattr(audit.records, "LINE_CODING_FROM", threshold)
        exports = read_exports([generated], index=index, as_of=AS_OF)
        assert (exports[0].scan.to_triage is not None) == tested
        assert _narrow(exports[0], index, AS_OF) == tested
        built[tested] = build(exports, index=index, as_of=AS_OF)
    for name in ("episodes", "procedures", "rejected", "carried"):
        assert getattr(built[False], name).equals(getattr(built[True], name)), name
