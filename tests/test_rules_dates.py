"""Episode dates, superseded guidance and guidance that postdates the episode."""

from datetime import date

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
        ("2015-12-31", "compliant"),  # the day before IPG544's month: still IPG319's time
        ("2016-01-01", "superseded"),  # IPG544 published January 2016 (day unknown): from the 1st
        ("2016-02-01", "superseded"),
        ("01/02/2016", "superseded"),  # dd/mm/yyyy
        ("2008-12-31", "predates-guidance"),  # IPG319 published 2009 (year precision)
        ("2009-01-01", "compliant"),
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
