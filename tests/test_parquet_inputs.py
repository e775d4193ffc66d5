"""Parquet exports with column types or names polars cannot take (issue 12 point 6): each is
described as what it is, never as "corrupt or truncated", and a column the audit does not read may
be of any type. polars cannot write these files itself, so pyarrow (the spark extra) writes them."""

import decimal
import json

import polars as pl
import pytest

from tests.conftest import run_cli

pa = pytest.importorskip("pyarrow", reason="pyarrow (the spark extra) writes map and decimal256 columns")
pq = pytest.importorskip("pyarrow.parquet")

MAP = pa.map_(pa.string(), pa.int64())
DECIMAL256 = pa.decimal256(40, 0)


def _column(kind: str):
    if kind == "map":
        return pa.array([[("a", 1)]], type=MAP)
    return pa.array([decimal.Decimal("1")], type=DECIMAL256)


def _write(path, names, arrays):
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    return path


def _run(tmp_path, path):
    return run_cli("run", str(path), "--out", str(tmp_path / "out"), "--as-of", "2026-11-21")


@pytest.mark.parametrize("kind, described", [("map", "map"), ("decimal256", "decimal256 (precision 40)")])
def test_a_needed_column_of_an_unreadable_type_is_named_with_its_type(tmp_path, kind, described):
    path = _write(tmp_path / "e.parquet", ["EPIKEY", "OPERTN_01"], [pa.array(["1"]), _column(kind)])
    result = _run(tmp_path, path)
    assert result.exit_code == 2
    assert f"OPERTN_01 holds {described} values: the audit needs text, numbers or dates there" in result.stderr
    assert "corrupt" not in result.stderr


@pytest.mark.parametrize("kind", ["map", "decimal256"])
def test_a_column_the_audit_does_not_read_may_be_map_or_decimal256(tmp_path, kind):
    path = _write(tmp_path / "e.parquet", ["EPIKEY", "OPERTN_01", "EXTRA"],
                  [pa.array(["1"]), pa.array(["V522"]), _column(kind)])
    result = _run(tmp_path, path)
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["totals"]["episodes_audited"] == 1


@pytest.mark.parametrize("repeated", ["EPIKEY", "NOTES"])
def test_a_schema_naming_a_column_twice_says_so(tmp_path, repeated):
    names = ["EPIKEY", "OPERTN_01", "NOTES", repeated]
    path = _write(tmp_path / "e.parquet", names, [pa.array([v]) for v in ("1", "V522", "x", "y")])
    result = _run(tmp_path, path)
    assert result.exit_code == 2
    assert f"the Parquet schema names column '{repeated}' more than once" in result.stderr
    assert result.stderr.count("\n") == 1 and "corrupt" not in result.stderr


def test_polars_reads_what_pyarrow_wrote(tmp_path):
    # Guards the fixtures above: a file polars could not open at all would make every case pass
    # for the wrong reason.
    path = _write(tmp_path / "e.parquet", ["EPIKEY", "OPERTN_01"], [pa.array(["1"]), pa.array(["V522"])])
    assert pl.read_parquet(path).to_dicts() == [{"EPIKEY": "1", "OPERTN_01": "V522"}]
