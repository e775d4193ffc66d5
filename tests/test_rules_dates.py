"""Episode dates, superseded guidance and guidance that postdates the episode."""

from datetime import date, timedelta

import polars as pl
import pytest

from tests.conftest import audit_long, findings_of, status_of

COMPLIANT_IPG319 = ["V522", "V551", "Y102", "Y534", "Z992"]


def dated(procedure_date="", episode_end="", episode_start="", admission_date="", codes_=COMPLIANT_IPG319):
    header = "| episode_id | position | code | procedure_date | episode_end | episode_start | admission_date |"
    rows = [
        f"| E1 | {n} | {c} | {procedure_date if n == 1 else ''} | {episode_end} | {episode_start} | {admission_date} |"
        for n, c in enumerate(codes_, 1)
    ]
    return "\n".join([header, *rows])


@pytest.mark.parametrize(
    "procedure_date, status",
    [
        # IPG544 replaced IPG319 in January 2016, day unknown: a window from 1 to 31 January.
        ("2015-12-31", "compliant"),  # before the window: certainly still IPG319's time
        ("2016-01-01", "date-uncertain"),  # inside the window: cannot be judged on that boundary
        ("2016-01-30", "date-uncertain"),
        ("2016-01-31", "superseded"),  # the window's last day: certainly on or after the replacement
        ("2016-02-01", "superseded"),
        ("01/02/2016", "superseded"),  # dd/mm/yyyy
        # IPG319 published 2009 (year precision): a window from 1 January to 31 December 2009.
        ("2008-12-31", "predates-guidance"),
        ("2009-01-01", "date-uncertain"),
        ("2009-12-30", "date-uncertain"),
        ("2009-12-31", "compliant"),
    ],
)
def test_ipg319_either_side_of_its_dates(tmp_path, procedure_date, status):
    assert status_of(audit_long(tmp_path, dated(procedure_date)), "E1", "IPG319") == status


def test_superseded_finding_names_the_replacement(tmp_path):
    result = audit_long(tmp_path, dated("2016-02-01"))
    assert findings_of(result) == [("superseded-guidance", "IPG319", 1, "superseded")]
    assert result.findings["expected"].to_list() == ["IPG544"]
    assert "IPG544 replaced in January 2016" in result.findings["message"].item()


@pytest.mark.parametrize(
    "dates, episode_date, source",
    [
        (dict(procedure_date="2012-01-05", episode_end="2012-02-01"), date(2012, 1, 5), "procedure_date"),
        (dict(episode_end="2012-02-01", episode_start="2012-01-20"), date(2012, 2, 1), "episode_end"),
        (dict(episode_start="2012-01-20", admission_date="2012-01-01"), date(2012, 1, 20), "episode_start"),
        (dict(admission_date="2012-01-01"), date(2012, 1, 1), "admission_date"),
        (dict(procedure_date="1800-01-01", admission_date="2012-01-01"), date(2012, 1, 1), "admission_date"),
        (dict(procedure_date="2012-02-30", episode_end="2012-03-01"), date(2012, 3, 1), "episode_end"),
    ],
)
def test_episode_date_falls_back_in_order(tmp_path, dates, episode_date, source):
    result = audit_long(tmp_path, dated(**dates))
    assert result.episodes.select("episode_date", "date_source").row(0) == (episode_date, source)


def test_undated_episode_uses_as_of_and_warns(tmp_path):
    result = audit_long(tmp_path, dated(codes_=["V401", "V552", "Y534", "Z676"]), as_of=date(2020, 5, 1))
    assert findings_of(result) == [("date-missing", "IPG366", 1, "warning")]
    assert result.episodes.select("episode_date", "date_source", "status").row(0) == (
        date(2020, 5, 1), "as-of", "compliant")


def test_undated_ipg319_judged_as_of_run_date_is_superseded(tmp_path):
    result = audit_long(tmp_path, dated(), as_of=date(2026, 11, 21))
    assert status_of(result, "E1", "IPG319") == "superseded"


def test_superseded_on_an_unverified_date_says_so(tmp_path):
    # IPG282's replacement by IPG584 is dated by inference only (catalogue: unverified).
    result = audit_long(tmp_path, dated("2018-03-01", codes_=["Q545"]))
    assert status_of(result, "E1", "IPG282") == "superseded"
    message = result.findings.filter(result.findings["rule_id"] == "superseded-guidance")["message"].item()
    assert "the replacement date is not verified" in message


def test_superseded_on_a_verified_date_does_not_hedge(tmp_path):
    result = audit_long(tmp_path, dated("2017-03-01"))
    assert "not verified" not in result.findings["message"].item()


# --- Dates as they are known (issue 10 point 7) --------------------------------------------------


@pytest.mark.parametrize(
    "procedure_date, status",
    [
        # IPG366 published "about November 2010" (catalogue: 2010-11): a window 1-30 November.
        ("2010-10-31", "predates-guidance"),
        ("2010-11-01", "date-uncertain"),
        ("2010-11-29", "date-uncertain"),
        ("2010-11-30", "compliant"),
    ],
)
def test_ipg366_either_side_of_its_publication_month(tmp_path, procedure_date, status):
    result = audit_long(tmp_path, dated(procedure_date, codes_=["V401", "V552", "Y534", "Z676"]))
    assert status_of(result, "E1", "IPG366") == status


def test_date_uncertain_is_never_an_error_or_superseded_finding(tmp_path):
    # Inside IPG544's month, with IPG319's site missing: no guidance finding at all.
    result = audit_long(tmp_path, dated("2016-01-15", codes_=["V522", "V551", "Y102", "Y534"]))
    assert findings_of(result) == []
    assert status_of(result, "E1", "IPG319") == "date-uncertain"


def test_generic_rules_still_apply_to_a_date_uncertain_episode(tmp_path):
    result = audit_long(tmp_path, dated("2016-01-15", codes_=["V522", "Y102", "Y534", "Z992"]))
    assert findings_of(result) == [("levels-not-second", None, 2, "error")]


def test_qualifier_rows_date_the_operation(tmp_path):
    # The index row has no date; its qualifier rows are dated 2016-02-10; the episode ended 2015-12-20.
    text = """
        | episode_id | position | code | procedure_date | episode_end |
        | E1         | 1        | V522 |                | 2015-12-20  |
        | E1         | 2        | V551 | 2016-02-10     | 2015-12-20  |
        | E1         | 3        | Y102 | 2016-02-10     | 2015-12-20  |
        | E1         | 4        | Y534 | 2016-02-10     | 2015-12-20  |
        | E1         | 5        | Z992 | 2016-02-10     | 2015-12-20  |
        | E2         | 1        | W371 | 2016-02-10     | 2015-12-20  |
        | E2         | 2        | V522 |                | 2015-12-20  |
        | E2         | 3        | V551 |                | 2015-12-20  |
        | E2         | 4        | Y102 |                | 2015-12-20  |
        | E2         | 5        | Y534 |                | 2015-12-20  |
        | E2         | 6        | Z992 |                | 2015-12-20  |
    """
    result = audit_long(tmp_path, text)
    assert result.episodes.select("episode_id", "episode_date", "date_source", "status").rows() == [
        ("E1", date(2016, 2, 10), "qualifier_date", "superseded"),
        # Control: another operation's date does not date V52.2; the episode end does.
        ("E2", date(2015, 12, 20), "episode_end", "compliant"),
    ]


def test_future_dated_episode_is_a_data_quality_finding(tmp_path):
    result = audit_long(tmp_path, dated("2026-12-01", codes_=["V401", "V552", "Y534"]), as_of=date(2026, 11, 21))
    assert findings_of(result) == [("date-in-future", None, 1, "warning")]
    assert status_of(result, "E1", "IPG366") == "date-uncertain"
    # Control: dated on the as-of date itself.
    result = audit_long(tmp_path, dated("2026-11-21", codes_=["V401", "V552", "Y534"]), as_of=date(2026, 11, 21))
    assert findings_of(result) == [("site-missing", "IPG366", 1, "error")]


# --- Predating episodes are not failures (issue 10 point 8) --------------------------------------


def test_future_date_finding_reads_its_position_and_date_across_the_episode(tmp_path):
    """The finding sits on the first filled slot, but its position is the first procedure dated
    after as-of and its message the episode's latest date (audit.rules.generic: windows over the
    episode; registry: "An episode cannot be dated after the run's as-of date"). rules.base
    evaluates a failing rule's message over its whole episodes in one lazy query: this pins that
    the failing-row filter is applied after those windows, not pushed below them."""
    text = """
        | episode_id | position | code | procedure_date |
        | E1         | 1        | W371 | 2026-11-01     |
        | E1         | 2        | Z943 |                |
        | E1         | 3        | W381 | 2026-12-03     |
        | E1         | 4        | W391 | 2026-12-05     |
        | E2         | 1        | W371 | 2026-11-01     |
    """
    result = audit_long(tmp_path, text, as_of=date(2026, 11, 21))
    assert findings_of(result) == [("date-in-future", None, 3, "warning")]
    assert "the episode is dated 2026-12-05" in result.findings["message"].item()


def test_predating_episode_gets_no_guidance_rule_findings(tmp_path):
    # IPG366 done 2010-10-15, before its publication, with the site missing and V55 missing.
    result = audit_long(tmp_path, dated("2010-10-15", codes_=["V401", "Y534"]))
    assert status_of(result, "E1", "IPG366") == "predates-guidance"
    # The generic V55 rule applies to every spinal operation, whatever the guidance's dates.
    assert findings_of(result) == [("levels-not-second", None, 2, "error")]


def test_predating_episode_does_not_trip_fail_on_error(tmp_path):
    result = audit_long(tmp_path, dated("2010-10-15", codes_=["V401", "V552", "Y534"]))
    assert findings_of(result) == [] and status_of(result, "E1", "IPG366") == "predates-guidance"


# --- "Superseded" says what it knows (issue 10 point 9) ------------------------------------------


def test_superseded_message_says_the_replacement_has_no_code_set(tmp_path):
    result = audit_long(tmp_path, dated("2016-02-01"))
    message = result.findings["message"].item()
    assert ("dated 2016-02-01, after IPG544 replaced IPG319; IPG544's code set is not in the catalogue, "
            "so the coding could not be checked against it") in message


def test_superseded_message_when_the_replacement_has_a_code_set(tmp_path):
    # IPG183 has no code set; IPG366 replaced it and has one: a catalogue where IPG183 is auditable.
    from audit.catalogue import load_catalogue

    path = tmp_path / "ipg183.toml"
    path.write_text("""
id = "IPG183"
title = "Non-rigid stabilisation techniques for the treatment of low back pain"
url = "https://www.nice.org.uk/guidance/ipg183"
published = "2006-06"
replaced_by = "IPG366"
replaced_on = "2010-11"
code_set_recovered = true
sources = ["test"]
[[code_sets]]
components = [{ role = "index", codes = ["V40.1"] }]
""", encoding="utf-8")
    builtin = [p for p in __import__("audit.catalogue", fromlist=["builtin_files"]).builtin_files()
               if p.name != "ipg183.toml"]
    catalogue = load_catalogue(builtin + [path], builtin=False)
    result = audit_long(tmp_path, dated("2012-01-10", codes_=["V401", "V552", "Y534", "Z676"]), catalogue=catalogue)
    message = result.findings.filter(result.findings["rule_id"] == "superseded-guidance")["message"].item()
    assert message.endswith("after IPG366 replaced IPG183: check the coding against IPG366")


@pytest.mark.parametrize(
    "dates, expected",
    [
        # Any episode, matched or not: an episode date after --as-of (no procedure dated so: no position).
        (dict(episode_end="2026-12-01"), [("date-in-future", None, None, "warning")]),
        (dict(admission_date="2026-11-22"), [("date-in-future", None, None, "warning")]),
        (dict(procedure_date="2026-11-22"), [("date-in-future", None, 1, "warning")]),
        (dict(procedure_date="22/11/2026"), [("date-in-future", None, 1, "warning")]),
        (dict(episode_end="2026-11-21", procedure_date="2026-11-20"), []),
    ],
)
def test_future_dates_on_any_episode(tmp_path, dates, expected):
    result = audit_long(tmp_path, dated(codes_=["W371", "Z943"], **dates), as_of=date(2026, 11, 21))
    assert findings_of(result) == expected


def test_future_dates_survive_the_prefilter(tmp_path):
    """A clean wide row is set aside by the prefilter unless it may be dated after --as-of."""
    from datetime import datetime, timezone

    from audit.catalogue import load_catalogue
    from audit.pipeline import AuditOptions, run_audit

    path = tmp_path / "hes.csv"
    path.write_text("EPIKEY,EPIEND,OPERTN_01,OPDATE_01,OPERTN_02\n"
                    "E1,2026-12-01,W371,2026-11-20,Z943\nE2,2026-11-20,W371,01/12/2026,Z943\n"
                    "E3,2026-11-20,W371,2026-11-20,Z943\n", encoding="utf-8")
    result = run_audit(AuditOptions(inputs=[path], as_of=date(2026, 11, 21)), load_catalogue(),
                       datetime.now(timezone.utc))
    assert result.findings.select("episode_id", "rule_id", "position").rows() == [
        ("E1", "date-in-future", None), ("E2", "date-in-future", 1)]


def _timing_by_hand(guidance, when: date, as_of: date) -> str:
    """The timing rules of audit.match.timing_expr, written out for one guidance."""
    from audit.match import DATE_UNCERTAIN, FUTURE, IN_FORCE, PREDATES, SUPERSEDED_TIMING

    published, replaced = guidance.published, guidance.replaced_on
    if when > as_of:
        return FUTURE
    if when < published.start:
        return PREDATES
    if when < published.end:
        return DATE_UNCERTAIN
    if guidance.replaced_by and replaced:
        if when >= replaced.end:
            return SUPERSEDED_TIMING
        if when >= replaced.start:
            return DATE_UNCERTAIN
    return IN_FORCE


def test_every_guidance_is_timed_by_its_own_dates():
    """Each guidance's dates reach its occurrences through a join (audit.match.guidance_dates):
    around every boundary of every built-in guidance, the timing is the one its own dates give.

    Source: replaced guidance is superseded from the new guidance's publication date, and
    "coded per superseded guidance" is decided from the lineage and the episode date
    (shared/reference/nice-coding.md section 1, marked [I]: inferred); the seeds (IPG319, IPG366)
    give each guidance its publication. A date known to a month or year is a window (audit.match)."""
    import polars as pl

    from audit.catalogue import load_catalogue
    from audit.match import GUIDANCE_DATES, guidance_dates, timing_expr

    catalogue, as_of, day = load_catalogue(), date(2026, 12, 1), timedelta(days=1)
    cases = []
    for guidance in catalogue.auditable():
        bounds = [guidance.published.start, guidance.published.end, as_of]
        if guidance.replaced_on:
            bounds += [guidance.replaced_on.start, guidance.replaced_on.end]
        cases += [(guidance.id, when) for bound in bounds for when in (bound - day, bound, bound + day)]
    frame = pl.DataFrame(cases, schema={"guidance_id": pl.String, "episode_date": pl.Date}, orient="row")
    timed = frame.join(guidance_dates(catalogue), on="guidance_id", how="left").with_columns(
        timing_expr(as_of)).drop(GUIDANCE_DATES)
    expected = [_timing_by_hand(catalogue.guidance[g], when, as_of) for g, when in cases]
    assert timed["timing"].to_list() == expected
    assert len(set(expected)) == 5  # every outcome is among the cases


FUTURE_E1 = ("the episode is dated 2026-06-02, after the run's as-of date 2026-06-01: correct the date "
             "(no guidance is judged on a date after the as-of date)")


def _future_findings(path, as_of):
    from datetime import datetime, timezone

    from audit.catalogue import load_catalogue
    from audit.pipeline import AuditOptions, run_audit

    result = run_audit(AuditOptions(inputs=[path], as_of=as_of), load_catalogue(), datetime.now(timezone.utc))
    return result.findings.select("episode_id", "rule_id", "position", "message").rows()


def test_an_instant_after_the_as_of_day_in_england_is_in_the_future(tmp_path):
    """A time with its offset from UTC is dated by its day in England (audit.dates.parse_date),
    through the record scan as through the full audit: 23:30 UTC on 1 June is 2 June in London."""
    path = tmp_path / "hes.csv"
    path.write_text("EPIKEY,EPIEND,OPERTN_01,OPDATE_01,OPERTN_02\n"
                    "E1,2026-05-31,W371,2026-06-01T23:30:00Z,Z943\n"
                    "E2,2026-05-31,W371,2026-06-01T22:30:00Z,Z943\n"
                    "E3,2026-05-31,W371,2026-06-01 23:30:00,Z943\n"
                    "E4,2026-05-31,W371,2026-05-31T23:30:00.000Z,Z943\n", encoding="utf-8")
    assert _future_findings(path, date(2026, 6, 1)) == [("E1", "date-in-future", 1, FUTURE_E1)]


@pytest.mark.parametrize("dtype", [pl.Datetime("us", "UTC"), pl.Datetime("ns", "UTC"),
                                   pl.Datetime("ms", "Europe/London"), pl.Datetime("us", "America/New_York")], ids=str)
def test_parquet_timestamps_with_a_time_zone_are_dated_in_england(tmp_path, dtype):
    """Spark's TIMESTAMP_MICROS and pandas' tz-aware times are instants: dated by their day in
    England (the same instants as England's wall time give the same findings), and are tested as
    dates, as England's wall time (audit.dates.TYPED_DATES)."""
    from datetime import datetime

    from audit.load import read_exports

    utc = [datetime(2026, 6, 1, 23, 30), datetime(2026, 6, 1, 22, 30), datetime(2026, 5, 31, 23, 30), None]
    frame = pl.DataFrame({"EPIKEY": ["E1", "E2", "E3", "E4"], "EPIEND": ["2026-05-31"] * 4,
                          "OPERTN_01": ["W371"] * 4, "OPDATE_01": utc, "OPERTN_02": ["Z943"] * 4})
    instants = frame.with_columns(pl.col("OPDATE_01").dt.replace_time_zone("UTC").dt.convert_time_zone(
        dtype.time_zone).cast(dtype))
    instants.write_parquet(tmp_path / "instants.parquet")
    assert pl.read_parquet(tmp_path / "instants.parquet").schema["OPDATE_01"] == dtype
    english = instants.with_columns(
        pl.col("OPDATE_01").dt.convert_time_zone("Europe/London").dt.replace_time_zone(None))
    english.write_parquet(tmp_path / "english.parquet")
    found = _future_findings(tmp_path / "instants.parquet", date(2026, 6, 1))
    assert found == [("E1", "date-in-future", 1, FUTURE_E1)]
    assert found == _future_findings(tmp_path / "english.parquet", date(2026, 6, 1))
    (batch,) = read_exports([tmp_path / "instants.parquet"])[0].batches()
    assert batch.schema["date_1"] == pl.Datetime(dtype.time_unit)


def _spark_schema(date_type: str) -> str:
    import json

    fields = [{"name": c, "type": date_type if c == "OPDATE_01" else "string", "nullable": True, "metadata": {}}
              for c in ("EPIKEY", "EPIEND", "OPERTN_01", "OPDATE_01", "OPERTN_02")]
    return json.dumps({"type": "struct", "fields": fields})


@pytest.mark.parametrize("spark_schema, future", [
    (_spark_schema("timestamp"), True),  # an instant, stored in UTC (Spark's INT96)
    (_spark_schema("timestamp_ntz"), False), (None, False),  # a wall time, as polars reads it
    ('{"type": "struct", "fields": [', False), ('["timestamp"]', False),  # a schema that cannot be read
])
def test_spark_timestamps_read_without_a_time_zone_are_instants(tmp_path, spark_schema, future):
    """Spark's INT96 timestamps hold UTC instants, which polars reads without a time zone: the
    file's Spark schema says which columns are so (audit.load.spark_instants). Here London's
    00:30 on 2 June, stored as 23:30 on 1 June."""
    from datetime import datetime

    from audit.load import SPARK_SCHEMA

    frame = pl.DataFrame({"EPIKEY": ["E1"], "EPIEND": ["2026-05-31"], "OPERTN_01": ["W371"],
                          "OPDATE_01": [datetime(2026, 6, 1, 23, 30)], "OPERTN_02": ["Z943"]},
                         schema_overrides={"OPDATE_01": pl.Datetime("ns")})
    frame.write_parquet(tmp_path / "spark.parquet", metadata={SPARK_SCHEMA: spark_schema} if spark_schema else None)
    found = _future_findings(tmp_path / "spark.parquet", date(2026, 6, 1))
    assert found == ([("E1", "date-in-future", 1, FUTURE_E1)] if future else [])
