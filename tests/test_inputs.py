"""Input files: each failure mode is either a one-line error (exit 2) or an audited run whose
rows all add up. One fixture file per failure mode, in tests/fixtures/."""

import csv
import gzip
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.canonical import build
from audit.errors import InputError
from audit.errors import UserError
from audit.load import BOMS, read_exports
from audit.memory import parse_size
from audit.records import FIELD_LIMIT
from tests.benchmarks.generate import generate_hes
from tests.conftest import FIXTURES, run_cli


@pytest.mark.parametrize(
    "fixture, problem",
    [
        ("empty.csv", "file is empty"),
        ("no_procedure_columns.csv", "unknown layout"),
        ("long_missing_position.csv", "unknown layout"),
        ("missing_episode_id_column.csv", "missing required column EPIKEY"),
        ("duplicate_column_names.csv", "the header names a column more than once: OPERTN_01"),
        ("whitespace_only.csv", "file is empty (no header line)"),
        ("ragged_too_many_fields.csv", "malformed CSV: 1 of 1 rows have the wrong number of fields or broken "
                                       "quoting; the first is line 2 (12 fields where the header has 10)"),
        ("mostly_malformed.csv", "malformed CSV: 3 of 4 rows have the wrong number of fields or broken quoting; "
                                 "the first is line 3 (2 fields where the header has 3)"),
        ("truncated.csv.gz", "truncated or corrupt gzip file"),
        ("corrupt_deflate.csv.gz", "truncated or corrupt gzip file"),  # (a block of the reserved type)
        ("binary_garbage.csv", "binary content"),
        ("bom_only.csv", "file is empty"),
        # A headerless export: its first line is episode data, so no value from it is quoted.
        ("headerless.csv", "the first line does not look like a header (it repeats values, in columns 2, 3, 5"),
    ],
)
def test_unusable_file_is_one_line_exit_2(tmp_path, fixture, problem):
    result = run_cli("run", str(FIXTURES / fixture), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nice-audit: error: ")
    assert str(FIXTURES / fixture) in lines[0] and problem in lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path):
    result = run_cli("run", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "out"))
    assert (result.exit_code, result.stderr.strip()) == (
        2, f"nice-audit: error: {tmp_path / 'nope.csv'}: no such file or directory")


def test_forced_layout_with_missing_columns(tmp_path):
    result = run_cli("run", str(FIXTURES / "no_procedure_columns.csv"), "--layout", "hes",
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "missing required column(s) for layout hes: OPERTN_01" in result.stderr


def physical_records(path: Path) -> int:
    """The file's data records as Python's csv module counts them (blank lines are not rows):
    a count made with nothing the pipeline uses."""
    if path.suffix == ".parquet":
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    encoding = next((name for mark, name in BOMS if raw.startswith(mark)), "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    text = text.lstrip("\ufeff")
    header = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t|", key=header.count)
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            if any(field.strip() for field in row)]
    return max(len(rows) - 1, 0)


def audited(tmp_path, fixture, *extra, records: int | None = None):
    """Run the CLI on a fixture; check that every row is accounted for by three separate counts:
    rows read (the parser), records in the file (counted here, or given when Python's csv module
    would read the file differently), and rejected + audited (counted from what each stage kept)."""
    out = tmp_path / "out"
    result = run_cli("run", str(FIXTURES / fixture), "--out", str(out), "--as-of", "2026-11-21", *extra)
    summary = json.loads((out / "summary.json").read_text())
    # A file with no rows is audited and published, then flagged: exit 4, a volume alert (issue 11).
    assert result.exit_code == (4 if summary["totals"]["rows_read"] == 0 else 0), result.stderr
    totals = summary["totals"]
    expected = physical_records(FIXTURES / fixture) if records is None else records
    assert totals["rows_read"] == expected == totals["rows_rejected"] + totals["rows_audited"]
    assert pl.read_csv(out / "rejected.csv").height == totals["rows_rejected"]
    return summary, out


@pytest.mark.parametrize(
    "fixture, rows_read, rejected, episodes",
    [
        ("header_only.csv", 0, 0, 0),
        ("missing_episode_id.csv", 2, 1, 1),
        ("duplicate_episode_ids.csv", 3, 2, 1),
        ("ragged_too_few_fields.csv", 2, 1, 1),
        ("quoted_commas_and_newlines.csv", 2, 0, 2),
        ("utf8_bom.csv", 1, 0, 1),
        ("cp1252_names.csv", 1, 0, 1),
        ("crlf_line_ends.csv", 1, 0, 1),
        ("semicolon_separated.csv", 2, 0, 2),  # Excel's CSV in many locales
        ("tab_separated.tsv", 1, 0, 1),
        ("pipe_separated.txt", 1, 0, 1),
        ("extra_field_before_unread_columns.csv", 3, 1, 2),
        ("lone_cr_inside_record.csv", 3, 0, 3),
        ("cr_only_line_ends.csv", 2, 0, 2),
        ("broken_quoting.csv", 7, 2, 5),
        ("blank_lines.csv", 2, 0, 2),
        ("year_zero_date.csv", 2, 0, 2),
        ("utf16_excel_unicode_text.txt", 2, 0, 2),
        ("utf32_bom.csv", 2, 0, 2),
        ("utf8_bom_cp1252_body.csv", 1, 0, 1),
        ("rtl_override_values.csv", 1, 0, 1),
        ("markup_in_every_text_column.csv", 4, 0, 4),
        ("field_100k_characters.csv", 2, 0, 2),
    ],
)
def test_every_row_is_accounted_for(tmp_path, fixture, rows_read, rejected, episodes):
    summary, out = audited(tmp_path, fixture)
    totals = summary["totals"]
    assert (totals["rows_read"], totals["rows_rejected"], totals["episodes_audited"]) == (rows_read, rejected, episodes)


def test_an_unclosed_quote_rejects_its_own_row_only(tmp_path):
    # Python's csv module lets the quote run to the end of the file (1 record); we do not.
    summary, out = audited(tmp_path, "unclosed_quote.csv", records=4)
    rejected = pl.read_csv(out / "rejected.csv", infer_schema=False)
    assert rejected.select("source_row", "source_line").rows() == [("2", "3")]
    assert rejected["reason"].item().startswith("malformed row: broken quoting")
    assert summary["totals"]["episodes_audited"] == 3


def test_a_shifted_row_is_rejected_with_its_line_not_audited(tmp_path):
    # The reproducer: an unquoted comma in SURNAME shifts the codes one column left, and
    # the columns after OPERTN_02 are not read, so only the record scan can see it.
    summary, out = audited(tmp_path, "extra_field_before_unread_columns.csv")
    rejected = pl.read_csv(out / "rejected.csv", infer_schema=False)
    assert rejected.select("source_row", "source_line", "reason").rows() == [
        ("2", "3", "malformed row: 6 fields where the header has 5")]
    assert rejected["episode_id"].is_null().all()  # a shifted row's id cannot be trusted
    for name in ("findings.csv", "sequences.csv", "episodes.csv", "report.html"):
        assert "John" not in (out / name).read_text(), name
    assert set(pl.read_csv(out / "findings.csv", infer_schema=False)["episode_id"]) <= {"1", "3"}


@pytest.mark.parametrize("fixture", ["lone_cr_inside_record.csv", "cr_only_line_ends.csv"])
def test_carriage_returns_end_lines_and_never_merge_records(tmp_path, fixture):
    summary, out = audited(tmp_path, fixture)
    assert summary["totals"]["rows_rejected"] == 0
    assert summary["totals"]["episodes_audited"] == summary["totals"]["rows_read"]


def test_rows_and_lines_stay_numbered_through_blank_lines_and_quoted_newlines(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text('\nEPIKEY,CONSULT,OPERTN_01\n\n1,"two\nlines",W371\n\n  \n,C1,W371\n2,C2\n3,C3,W371\n')
    out = tmp_path / "out"
    assert run_cli("run", str(path), "--out", str(out)).exit_code == 0
    rejected = pl.read_csv(out / "rejected.csv", infer_schema=False)
    # Data rows count records (header and blank lines excluded); lines count the file's lines.
    assert rejected.select("source_row", "source_line", "reason").rows() == [
        ("2", "8", "no episode id"), ("3", "9", "malformed row: 2 fields where the header has 3")]
    totals = json.loads((out / "summary.json").read_text())["totals"]
    assert (totals["rows_read"], totals["rows_rejected"], totals["rows_audited"]) == (4, 2, 2)


def test_rejected_rows_name_file_row_and_reason(tmp_path):
    _, out = audited(tmp_path, "duplicate_episode_ids.csv")
    rejected = pl.read_csv(out / "rejected.csv", infer_schema=False)
    assert rejected.select("source_row", "episode_id").rows() == [("1", "100000000001"), ("2", "100000000001")]
    assert rejected["reason"].str.starts_with("episode id appears on more than one row").all()
    assert rejected["source_file"].str.ends_with("duplicate_episode_ids.csv").all()


def test_cp1252_is_read_with_a_notice(tmp_path):
    result = run_cli("run", str(FIXTURES / "cp1252_names.csv"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert "not valid UTF-8; read as cp1252" in result.stderr
    assert "José" not in result.stderr  # never echo episode values


def test_utf8_bom_does_not_hide_the_first_column(tmp_path):
    summary, _ = audited(tmp_path, "utf8_bom.csv")
    assert summary["inputs"][0]["layout"] == "hes"


def test_forced_encoding_is_honoured(tmp_path):
    summary, _ = audited(tmp_path, "cp1252_names.csv", "--encoding", "latin-1")
    assert summary["inputs"][0]["encoding"] == "latin-1"


def test_parquet_with_wrong_column_types_is_read_as_text(tmp_path):
    summary, out = audited(tmp_path, "wrong_types.parquet")
    assert summary["totals"]["episodes_audited"] == 2
    findings = pl.read_csv(out / "findings.csv", infer_schema=False)
    # 5221 (an integer where a code belongs) is kept and reported, not lost.
    assert findings.select("rule_id", "code").rows() == [("invalid-code", "5221")]


def test_a_100000_character_field_is_audited_not_echoed(tmp_path):
    summary, out = audited(tmp_path, "field_100k_characters.csv")
    assert summary["totals"]["episodes_audited"] == 2
    findings = pl.read_csv(out / "findings.csv", infer_schema=False)
    assert findings.select("episode_id", "rule_id").rows() == [("100000000002", "invalid-code")]
    assert findings["message"].item().endswith("too long for an OPCS-4 code")


def test_messy_code_spellings(tmp_path):
    _, out = audited(tmp_path, "codes_messy.csv")
    findings = pl.read_csv(out / "findings.csv", infer_schema=False)
    invalid = findings.filter(pl.col("rule_id") == "invalid-code").select("position", "code").rows()
    assert invalid == [("5", "Z99"), ("6", "I123"), ("7", "12345")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_quality"]["local_fifth_characters"] == 1  # Y5341


def test_messy_dates(tmp_path):
    summary, out = audited(tmp_path, "dates_messy.csv")
    episodes = pl.read_csv(out / "episodes.csv", infer_schema=False)
    dated = dict(episodes.select("episode_id", "episode_date").iter_rows())
    assert dated == {
        "D1": "2012-03-04", "D2": "2012-03-04",  # ISO and dd/mm/yyyy
        "D3": "2012-05-05", "D4": "2012-05-05",  # HES placeholders: fall back to episode end
        "D5": "2012-05-05", "D7": "2012-05-05",  # impossible or unreadable: fall back, and counted
        "D6": "2099-01-01",  # a future date is taken as given
    }
    assert summary["data_quality"]["invalid_dates"] == 2


def test_markup_in_every_text_column_is_kept_as_data(tmp_path):
    summary, out = audited(tmp_path, "markup_in_every_text_column.csv")
    assert summary["totals"]["rows_read"] == 4
    findings = pl.read_csv(out / "findings.csv", infer_schema=False)
    assert "<script>alert(1)</script>" in findings["episode_id"].to_list()
    report = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in report and "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "<img src=x" not in report and "{{ 7*7 }}" in report and "49" not in findings["episode_id"].to_list()


def test_nhs_number_column_is_never_copied(tmp_path):
    out = tmp_path / "out"
    result = run_cli("run", str(FIXTURES / "nhs_number_column.csv"), "--out", str(out))
    assert result.exit_code == 0
    for number in ("9434765919", "4010232137"):
        assert number not in result.stdout + result.stderr
        for path in (p for p in out.rglob("*") if p.is_file()):  # the report's data folder too
            assert number.encode() not in path.read_bytes(), path.name


def test_a_column_named_to_carry_reaches_the_findings(tmp_path):
    mapping = tmp_path / "map.toml"
    mapping.write_text('episode_id = "EPIKEY"\nprocedure_codes = ["OPERTN_*"]\ncarry = ["NHS_NUMBER"]\n')
    out = tmp_path / "out"
    result = run_cli("run", str(FIXTURES / "nhs_number_column.csv"), "--layout", "mapped", "--mapping", str(mapping),
                     "--out", str(out))
    assert result.exit_code == 0, result.stderr
    findings = pl.read_csv(out / "findings.csv", infer_schema=False)
    assert findings.select("episode_id", "rule_id", "NHS_NUMBER").rows()[0] == (
        "100000000001", "subsidiary-code-primary", "9434765919")
    episodes = pl.read_csv(out / "episodes.csv", infer_schema=False)
    assert episodes.select("episode_id", "NHS_NUMBER").rows() == [("100000000002", "4010232137")]
    assert "9434765919" not in result.stdout + result.stderr


def test_a_carried_column_may_not_replace_an_output_column(tmp_path):
    mapping = tmp_path / "map.toml"
    (tmp_path / "e.csv").write_text("EPIKEY,NHS_NUMBER,OPERTN_01,code\n1,9434765919,Y534,x\n")
    mapping.write_text('episode_id = "EPIKEY"\nprocedure_codes = ["OPERTN_*"]\ncarry = ["code"]\n')
    result = run_cli("run", str(tmp_path / "e.csv"), "--layout", "mapped", "--mapping", str(mapping),
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "carried column(s) code would overwrite output columns" in result.stderr


# --- A property: whatever the damage, every record is counted once, and only damaged ones are lost --

VALUE = st.text(alphabet='ab ,"\n\r', max_size=6)
RECORD = st.tuples(st.sampled_from(["ok", "ok", "ok", "extra", "missing", "stray-quote", "blank"]),
                   VALUE, st.sampled_from(["V522", "W371", ""]), VALUE)


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(RECORD, max_size=12), st.sampled_from(["\n", "\r\n", "\r"]))
def test_damaged_records_are_rejected_alone_and_counts_add_up(tmp_path_factory, records, line_end):
    header = "EPIKEY,CONSULT,OPERTN_01,NOTE"  # NOTE is never read: damage after it must still show
    text, expected_ok, expected_bad, count = header + line_end, [], [], 0
    for number, (kind, consult, code, note) in enumerate(records, 1):
        line = len(re.findall(r"\r\n|\r|\n", text)) + 1
        fields = [f"E{number}", _quoted(consult), code, _quoted(note)]
        if kind == "blank":
            text += " " * (number % 2) + line_end
            continue
        count += 1
        if kind == "extra":
            fields.append("x")
        elif kind == "missing":
            fields.pop()
        elif kind == "stray-quote":
            fields[3] = 'a"b'
        (expected_ok if kind == "ok" else expected_bad).append((f"E{number}", line))
        text += ",".join(fields) + line_end
    path = tmp_path_factory.mktemp("damaged") / "e.csv"
    path.write_bytes(text.encode())
    if len(expected_bad) > 0.5 * count:
        with pytest.raises(InputError, match=f"malformed CSV: {len(expected_bad)} of {count} rows"):
            read_exports([path])
        return
    data = build(read_exports([path]))
    counts = data.files[0]
    assert counts.rows_read == count == counts.rows_rejected + counts.rows_audited
    malformed = data.rejected.filter(pl.col("reason").str.starts_with("malformed row"))
    assert malformed["source_line"].to_list() == [line for _, line in expected_bad]
    assert sorted(data.episodes["episode_id"]) == sorted(i for i, _ in expected_ok)


# --- No episode value on the console, ever: planted markers ---------------------------------------

TEXT_FIXTURES = sorted(p.name for p in FIXTURES.iterdir()
                       if p.suffix in (".csv", ".tsv", ".txt") and p.name != "binary_garbage.csv")
FIRST_LINE_IS_DATA = {"headerless.csv"}
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-/:]*")


def planted(source: Path, folder: Path) -> tuple[Path, set[str]]:
    """A copy of a fixture with every value replaced by a marker (the same value, the same marker:
    repeats stay repeats), in the fixture's own encoding and line ends; the header is kept unless
    the first line is data."""
    raw = source.read_bytes()
    mark, encoding = next(((m, name) for m, name in BOMS if raw.startswith(m)), (b"", "utf-8"))
    try:
        text = raw[len(mark):].decode(encoding)
    except UnicodeDecodeError:
        encoding, text = "cp1252", raw[len(mark):].decode("cp1252")
    markers: dict[str, str] = {}

    def marker(match: re.Match) -> str:
        return markers.setdefault(match.group(), f"QZMK{len(markers):04d}")

    lines = text.splitlines(keepends=True)
    keep = 0 if source.name in FIRST_LINE_IS_DATA else 1
    body = "".join(lines[:keep]) + TOKEN.sub(marker, "".join(lines[keep:]))
    path = folder / source.name
    path.write_bytes(mark + body.encode(encoding, errors="replace"))
    return path, set(markers.values())


@pytest.mark.parametrize("fixture", TEXT_FIXTURES)
def test_no_value_from_a_hostile_file_reaches_the_console_or_a_log(tmp_path, monkeypatch, fixture):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # where an internal error's log goes
    path, markers = planted(FIXTURES / fixture, tmp_path)
    result = run_cli("run", str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code in (0, 2, 4), result.stderr  # 4: a volume alert (nothing audited)
    said = result.stdout + result.stderr
    for log in tmp_path.rglob("*.log"):
        said += log.read_text(errors="replace")
    leaked = sorted(m for m in markers if m in said)
    assert not leaked, (fixture, leaked[:5], said[-500:])


def test_an_internal_error_keeps_the_exception_message_out_of_console_and_log(tmp_path, monkeypatch):
    import audit.pipeline

    def crash(*args, **kwargs):
        # polars' panics derive from BaseException; the marker is built so no source line holds it
        raise pl.exceptions.PanicException("QZMK" + str(9999) + " quoted from an episode")

    monkeypatch.setattr(audit.pipeline, "run_audit", crash)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    result = run_cli("run", str(FIXTURES / "crlf_line_ends.csv"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 3
    assert result.stderr.startswith("nice-audit: error: internal error (PanicException)")
    log = (tmp_path / "state" / "nice-audit" / "nice-audit-error.log").read_text()
    assert "Traceback" in log and "QZMK9999" not in log + result.stdout + result.stderr


# --- One odd value never crashes the night -------------------------------------------------------

DEEP = "a = " + "[" * 5000 + "]" * 5000 + "\n"
MAPPING = 'episode_id = "EPIKEY"\nprocedure_codes = ["OPERTN_*"]\n'


@pytest.mark.parametrize(
    "files, args, problem",
    [
        ({"m.toml": DEEP}, ["--layout", "mapped", "--mapping", "m.toml"], "m.toml: not a valid TOML mapping file (nested too deeply)"),
        ({"c.toml": DEEP}, ["--config", "c.toml"], "c.toml: not valid TOML (nested too deeply)"),
        ({"g.toml": DEEP}, ["--catalogue", "g.toml"], "g.toml: not valid TOML (nested too deeply)"),
        ({"g.toml": "guidance = [1]\n"}, ["--catalogue", "g.toml"], "guidance: each entry must be a table"),
        ({"c.toml": 'layout = "evil"\n'}, ["--config", "c.toml"], "layout: must be one of hes, hes-derived, long, mapped"),
        ({"c.toml": 'encoding = "utf-7"\n'}, ["--config", "c.toml"], "encoding: must be one of auto, utf-8"),
        ({"c.toml": "as_of = 2026-01-01T10:00:00\n"}, ["--config", "c.toml"], "as_of: must be a date (yyyy-mm-dd), not a date and time"),
        ({"m.toml": MAPPING + 'carry = ["EPIKEY"]\n'}, ["--layout", "mapped", "--mapping", "m.toml"],
         "'carry' names the episode id column 'EPIKEY'"),
        ({"m.toml": MAPPING + 'carry = ["ADMIDATE", "admidate"]\n'}, ["--layout", "mapped", "--mapping", "m.toml"],
         "'carry' lists column(s) more than once: ADMIDATE"),
    ],
)
def test_a_bad_setting_file_is_one_line_exit_2(tmp_path, monkeypatch, files, args, problem):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = run_cli("run", str(FIXTURES / "crlf_line_ends.csv"), "--out", "out", *args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], lines


def test_a_mapping_carrying_episode_id_by_its_canonical_name_is_refused(tmp_path):
    (tmp_path / "e.csv").write_text("episode_id,position,code\nE1,1,V522\n")
    (tmp_path / "m.toml").write_text('shape = "long"\nepisode_id = "episode_id"\nposition = "position"\n'
                                     'code = "code"\ncarry = ["episode_id"]\n')
    result = run_cli("run", str(tmp_path / "e.csv"), "--layout", "mapped", "--mapping", str(tmp_path / "m.toml"),
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "'carry' names the episode id column 'episode_id'" in result.stderr


def test_a_run_time_past_year_9999_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "99999999999999999999")
    result = run_cli("run", str(FIXTURES / "crlf_line_ends.csv"), "--out", str(tmp_path / "out"))
    assert (result.exit_code, result.stderr.strip()) == (
        2, "nice-audit: error: SOURCE_DATE_EPOCH is not a usable time (seconds since 1970, before year 10000)")


@pytest.mark.parametrize("tamper", [
    {"totals": 5}, {"inputs": [{"rows_read": "many"}]}, {"by_guidance": {"IPG319": []}}, {"run_started": 7}, [],
])
def test_report_on_a_tampered_summary_is_one_line_exit_2(tmp_path, tamper):
    _, out = audited(tmp_path, "crlf_line_ends.csv")
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, **tamper} if isinstance(tamper, dict) else tamper))
    result = run_cli("report", str(out))
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"nice-audit: error: {out / 'summary.json'}: not a summary written by nice-audit")


def test_a_file_name_that_is_not_utf8_is_read_and_shown_escaped(tmp_path):
    name = os.fsdecode(b"export-\xff.csv")
    (tmp_path / name).write_bytes((FIXTURES / "crlf_line_ends.csv").read_bytes())
    out = tmp_path / "out"
    result = run_cli("run", str(tmp_path / name), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"][0]["path"].endswith("export-\\xff.csv")  # the byte, escaped
    assert summary["totals"]["episodes_audited"] == 1


def test_a_year_zero_date_is_an_invalid_date_not_a_crash(tmp_path):
    summary, out = audited(tmp_path, "year_zero_date.csv")
    assert summary["data_quality"]["invalid_dates"] == 5
    assert "1" in set(pl.read_csv(out / "findings.csv", infer_schema=False)["episode_id"])


@pytest.mark.parametrize("column, kind", [
    ("OPERTN_01", pl.Series([[1], [2]])), ("OPERTN_02", pl.Series([b"V5", b"\xff"])),
    ("OPDATE_01", pl.Series([1, 2]).cast(pl.Duration("ms"))),
])
def test_parquet_with_an_unreadable_column_type_says_which(tmp_path, column, kind):
    frame = pl.DataFrame({"EPIKEY": ["1", "2"], "OPERTN_01": ["V522", "W371"], "OPERTN_02": ["", ""],
                          "OPDATE_01": ["", ""]}).with_columns(kind.alias(column))
    frame.write_parquet(tmp_path / "e.parquet")
    result = run_cli("run", str(tmp_path / "e.parquet"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    expected = {"OPERTN_01": "list", "OPERTN_02": "binary", "OPDATE_01": "duration"}[column]
    assert f"{column} holds {expected} values: the audit needs text, numbers or dates there" in result.stderr


def test_parquet_columns_the_audit_does_not_read_may_be_of_any_type(tmp_path):
    pl.DataFrame({"EPIKEY": ["1"], "OPERTN_01": ["V522"], "NOTES": [[1, 2]], "RAW": [b"\x00\xff"]}).write_parquet(
        tmp_path / "e.parquet")
    out = tmp_path / "out"
    assert run_cli("run", str(tmp_path / "e.parquet"), "--out", str(out)).exit_code == 0
    assert json.loads((out / "summary.json").read_text())["totals"]["episodes_audited"] == 1


def test_right_to_left_overrides_are_shown_isolated_in_the_report(tmp_path):
    """Where a value runs on in a line of text (a card's heading and details, the list of inputs)
    it is a <bdi>, so a U+202E in it cannot reverse the text after it. A table cell is a paragraph
    of its own for the bidi rules: an override cannot reach past it."""
    rtl = tmp_path / "rtl\u202e.csv"
    rtl.write_bytes((FIXTURES / "rtl_override_values.csv").read_bytes())
    out = tmp_path / "out"
    assert run_cli("run", str(rtl), "--out", str(out), "--as-of", "2026-11-21").exit_code == 0
    html = (out / "report.html").read_text()
    card = re.search(r'<article class="card.*?</article>', html, re.S).group()
    inputs = re.search(r"<dt>Inputs</dt>.*?</dd>", html, re.S).group()
    for part, values in ((card, ["rtl\u202e.csv"]), (inputs, ["rtl\u202e.csv"])):
        shown = re.sub(r"<(?!/?bdi>)[^>]*>", "", part)  # text a reader sees: attributes are not shown
        outside = re.sub(r"<bdi>.*?</bdi>", "", shown, flags=re.S)
        for value in values:
            assert value in shown and value not in outside, (value, shown)
        for value in ("1\u202eFDP.exe", "C\u202e1"):  # wherever the card repeats them, isolated too
            assert value not in outside, (value, shown)
    # The episode id and consultant stand in a table row's own cells: each cell is a bidi paragraph.
    row = re.search(r'<tr[^>]*data-episode-id="1\u202eFDP\.exe".*?</tr>', html, re.S).group()
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    assert any("1\u202eFDP.exe" in c for c in cells) and any("C\u202e1" in c for c in cells)


# --- Bounded memory -----------------------------------------------------------------------------


@pytest.mark.slow
def test_past_the_memory_ceiling_the_run_stops_naming_the_file(tmp_path):
    """200,000 episodes: about 100 MB after the imports, 230 MB while the file is scanned and
    about 320 MB at the run's peak, so a 200 MB ceiling is passed while it is read (at 300 MB,
    as before session 15's savings, the run now sometimes fits)."""
    big = tmp_path / "big.csv"
    generate_hes(big, 200_000)
    result = subprocess.run([sys.executable, "-m", "audit", "run", str(big), "--out", str(tmp_path / "out"),
                             "--max-memory", "200M", "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"nice-audit: error: {big}: reading it needs more memory than the limit "
                                     "(200 MB; see --max-memory)")
    assert not (tmp_path / "out").exists()


def test_memory_sizes_are_read_or_refused():
    assert [parse_size(t) for t in ("8G", "500M", "2048", "1.5g", None)] == [8 << 30, 500 << 20, 2048 << 20,
                                                                             int(1.5 * (1 << 30)), None]
    with pytest.raises(UserError, match="give a size such as 8G"):
        parse_size("lots")


def test_a_gzip_bomb_is_stopped_as_it_expands(tmp_path, monkeypatch):
    monkeypatch.setattr("audit.load.MIN_EXPANSION_CAP", 1 << 20)
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb") as handle:
        handle.write(b"EPIKEY,OPERTN_01\n")
        for _ in range(64):
            handle.write(b"1" * (1 << 20))  # 64 MB of one long line, a few kB compressed
    result = run_cli("run", str(bomb), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "expands to more than 100 times its size" in result.stderr


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16"])
def test_a_field_over_the_limit_rejects_its_row_only(tmp_path, encoding):
    """In any encoding: a cp1252 or UTF-16 file is copied to UTF-8 first (audit.load._normalised),
    and its over-long lines are shortened in the copy (in UTF-16 after decoding, as a character's
    bytes may hold 0x0A)."""
    path = tmp_path / "long.csv"
    with open(path, "w", encoding=encoding) as handle:  # ("utf-16" writes its byte order mark)
        handle.write("EPIKEY,CONSULT,OPERTN_01\n1,C\u00e91,V522\n2,")
        handle.write('"' + ("x" * 6000 + "\n") * 200 + '"')  # a quoted field of 200 lines, over the limit
        handle.write(",W371\n3," + "y" * (FIELD_LIMIT + 10) + ",W371\n4,C4,W371\n")
    out = tmp_path / "out"
    result = run_cli("run", str(path), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    rejected = pl.read_csv(out / "rejected.csv", infer_schema=False)
    assert rejected.select("source_row", "reason").rows() == [
        ("2", f"a field longer than {FIELD_LIMIT:,} bytes (the limit)"),
        ("3", f"a field longer than {FIELD_LIMIT:,} bytes (the limit)")]
    totals = json.loads((out / "summary.json").read_text())["totals"]
    assert (totals["rows_read"], totals["rows_rejected"], totals["episodes_audited"]) == (4, 2, 2)


def test_a_header_of_100000_columns_is_checked_quickly(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["EPIKEY", "OPERTN_01"] + [f"X{n}" for n in range(100_000)]) + "\n1,V522" + "," * 100_000 + "\n")
    out = tmp_path / "out"
    assert run_cli("run", str(path), "--out", str(out)).exit_code == 0
    assert json.loads((out / "summary.json").read_text())["totals"]["episodes_audited"] == 1


@pytest.mark.parametrize("kind", ["csv", "gzip", "parquet", "cp1252"])
def test_summary_records_the_sha256_of_each_file_as_given(tmp_path, kind):
    """The hash is computed in a thread beside the parsing (audit.load.Digest): still the file as
    the user gave it, not a decompressed or re-encoded copy."""
    import hashlib

    text = "EPIKEY,OPERTN_01,CONSULT\n1,W371,Zoë\n2,V522,C1\n"
    path = tmp_path / {"csv": "e.csv", "gzip": "e.csv.gz", "parquet": "e.parquet", "cp1252": "e.csv"}[kind]
    if kind == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    elif kind == "parquet":
        pl.read_csv(io.StringIO(text), infer_schema=False).write_parquet(path)
    else:
        path.write_bytes(text.encode("cp1252" if kind == "cp1252" else "utf-8"))
    export = read_exports([path])[0]
    assert export.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert build([export]).files[0].sha256 == export.sha256


def test_a_file_that_vanishes_before_it_is_hashed_is_an_input_error(tmp_path, monkeypatch):
    import audit.load

    path = tmp_path / "e.csv"
    path.write_text("EPIKEY,OPERTN_01\n1,W371\n", encoding="utf-8")
    monkeypatch.setattr(audit.load, "_sha256", lambda p: (_ for _ in ()).throw(FileNotFoundError(p)))
    export = read_exports([path])[0]
    with pytest.raises(InputError, match="could not be read to the end"):
        _ = export.sha256


def test_parquet_is_read_in_slices_with_rows_numbered_across_them(tmp_path, monkeypatch):
    """Each batch of a Parquet file is its own slice (bounded memory: the batched reader decodes
    ahead without bound); rows keep their file order and numbers across slices and row groups."""
    import audit.load

    rows = 2_345
    pl.DataFrame({"EPIKEY": [str(i) for i in range(rows)], "OPERTN_01": ["W371"] * rows}).write_parquet(
        tmp_path / "e.parquet", row_group_size=500)
    monkeypatch.setattr(audit.load, "BATCH_ROWS", 300)
    export = read_exports([tmp_path / "e.parquet"])[0]
    batches = list(export.batches())
    assert [b.height for b in batches] == [300] * 7 + [245]
    whole = pl.concat(batches)
    assert whole["episode_id"].to_list() == [str(i) for i in range(rows)]
    assert whole["source_row"].to_list() == list(range(1, rows + 1))


def test_parquet_dates_reach_the_checks_as_written_with_nulls_kept(tmp_path):
    """A Parquet batch's date columns are tested over their non-null values only (audit.dates
    `odd_rows`): every value, null or blank or odd, must come through unchanged."""
    dates = ["2012-01-01", None, "", "01/02/2012", "2012-02-30", None]
    frame = pl.DataFrame({"EPIKEY": [str(i) for i in range(len(dates))], "OPERTN_01": ["W371"] * len(dates),
                          "OPDATE_01": dates, "ADMIDATE": list(reversed(dates))})
    frame.write_parquet(tmp_path / "e.parquet")
    (batch,) = read_exports([tmp_path / "e.parquet"])[0].batches()
    assert batch["date_1"].to_list() == dates
    assert batch["admission_date"].to_list() == list(reversed(dates))


def test_a_long_file_out_of_episode_order_is_audited_as_a_sorted_one(tmp_path, monkeypatch):
    """Long batches end where an episode does; an export that does not keep an episode's rows
    together still gets one episode per id (audit.canonical gathers a long file's rows)."""
    import audit.load

    header = "episode_id,position,code,episode_start\n"
    rows = [f"E{e},{p},{code},2020-01-0{e}\n" for e in range(1, 8) for p, code in ((1, "V522"), (2, "Y534"))]
    scattered = rows[0::2] + rows[1::2]  # every episode's position 1, then every position 2
    (tmp_path / "sorted.csv").write_text(header + "".join(rows), encoding="utf-8")
    (tmp_path / "scattered.csv").write_text(header + "".join(scattered), encoding="utf-8")
    monkeypatch.setattr(audit.load, "BATCH_ROWS", 3)
    batches = list(read_exports([tmp_path / "sorted.csv"])[0].batches())
    assert [b["episode_id"].unique().len() * 2 for b in batches] == [b.height for b in batches]
    built = {name: build(read_exports([tmp_path / f"{name}.csv"])) for name in ("sorted", "scattered")}
    for name, data in built.items():
        assert data.episodes["episode_id"].to_list() == [f"E{e}" for e in range(1, 8)], name
    columns = ["episode_id", "position", "code", "episode_start"]
    assert built["sorted"].procedures.select(columns).equals(built["scattered"].procedures.select(columns))


# Whole characters, and the halves of one ("é" is C3 A9): split by a chunk, or by ASCII in between
_PIECES = [b"a,b", b"\r", b"\n", b"\r\n", "é".encode(), "€".encode(), "😀".encode(), b"\xff", b"\xc3", b"\xa9", b'"',
           b"\x00"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=30), chunk=st.integers(1, 9))
@example(pieces=[b"\xc3", b"a,b", b"\xa9"], chunk=1)  # half a character, ASCII chunks, the other half: not UTF-8
def test_the_inspection_pass_finds_what_the_whole_file_holds(tmp_path_factory, monkeypatch, pieces, chunk):
    """The file's one inspection pass (UTF-8 validity, NUL, lone CR, quotes) reads it in chunks and
    skips decoding the ASCII ones: whatever the chunk size, a character or a CRLF split between
    chunks, it says what the whole file's bytes say."""
    from audit import load

    data = b"".join(pieces)
    path = tmp_path_factory.mktemp("inspect") / "f.csv"
    path.write_bytes(data)
    monkeypatch.setattr(load, "READ_CHUNK", chunk)
    try:
        data.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    found = load._inspect(path)
    assert (found.utf8, found.nul, found.quotes) == (utf8, b"\x00" in data, b'"' in data)
    assert found.lone_cr == (re.search(rb"\r(?!\n)", data) is not None)


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16"])
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_a_copied_export_is_audited_as_the_utf8_one(tmp_path, encoding, line_end):
    """A file in another encoding is copied to UTF-8 first (audit.load._normalised), keeping CR LF
    where no CR stands alone: its rows, their reasons, their lines and their values (a CR LF in a
    quoted field included) are those of the same file in UTF-8, which is read as it is."""
    lines = ["EPIKEY,CONSULT,OPERTN_01,OPERTN_02", "1,Zoë,V522,W371", "2,Renée", "3,\"two", "lines\",V522,Y031",
             "", "4,Chloé,W371,-"]
    outputs = {}
    for name, codec, end in (("utf8", "utf-8", line_end), ("copied", encoding, line_end)):
        path = tmp_path / f"{name}.csv"
        path.write_bytes(end.join(lines + [""]).encode(codec))
        out = tmp_path / f"out-{name}"
        result = run_cli("run", str(path), "--out", str(out))
        assert result.exit_code == 0, result.stderr
        outputs[name] = [pl.read_csv(out / f, infer_schema=False).drop("source_file", strict=False)
                         for f in ("findings.csv", "rejected.csv", "episodes.csv")]
    for utf8, copied in zip(outputs["utf8"], outputs["copied"]):
        assert copied.equals(utf8)
    assert outputs["copied"][1].select("source_row", "source_line").rows() == [("2", "3")]
