"""The Spark engine's contracts that need no JVM: what it refuses, what ingest writes, the
settings, and the Arrow types partitions hand back (scale-out.md P5)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from audit import unit
from audit.catalogue import load_catalogue
from audit.config import load_settings
from audit.engines.spark import union_schema, to_union
from audit.ingest import SOURCE_ROW, ingest
from audit.load import read_exports
from tests.conftest import EXAMPLES, PINNED_TIME, AS_OF, run_cli, write_csv


def test_a_csv_export_is_refused_with_a_pointer_to_ingest(tmp_path):
    ran = run_cli("run", str(EXAMPLES / "hes_episodes.csv"), "--engine", "spark", "--out", str(tmp_path / "o"))
    assert ran.exit_code == 2
    assert "Parquet only" in ran.stderr and "nice-audit ingest" in ran.stderr
    assert "Traceback" not in ran.output


def test_no_inputs_and_unknown_engine_are_usage_errors(tmp_path):
    assert run_cli("run", "--engine", "spark", "--out", str(tmp_path)).exit_code == 2
    ran = run_cli("run", str(EXAMPLES), "--engine", "dask", "--out", str(tmp_path))
    assert ran.exit_code == 2 and "--engine must be one of local, spark" in ran.stderr


@pytest.mark.parametrize("content, problem", [("", "file is empty"), ("a,b\n1,2\n", "missing required column")])
def test_ingest_refuses_what_run_refuses(tmp_path, content, problem):
    path = tmp_path / "export.csv"
    path.write_text(content, encoding="utf-8")
    ran = run_cli("ingest", str(path), "--to", str(tmp_path / "out"))
    assert ran.exit_code == 2 and str(path) in ran.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_ingest_refuses_malformed_records_rather_than_drop_them(tmp_path):
    # A local run rejects the second row (too many fields); Parquet could not carry it.
    path = tmp_path / "export.csv"
    path.write_text("EPIKEY,OPERTN_01\n1,V522\n2,V551,SECRET-MARKER\n3,V401\n", encoding="utf-8")
    ran = run_cli("ingest", str(path), "--to", str(tmp_path / "out"))
    assert ran.exit_code == 2 and str(path) in ran.stderr and "1 malformed record(s) (first at line 3)" in ran.stderr
    assert "SECRET-MARKER" not in ran.output
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_ingest_keeps_text_row_numbers_and_the_original_file(tmp_path):
    export = tmp_path / "pas.csv"
    # cp1252 with a semicolon separator and values a type-guessing reader would change.
    export.write_bytes("EPIKEY;OPERTN_01;OPDATE_01;PROCODE3\n0101;V522;2012-03-14;R\xe9X\n0102;V401;;RTH\n".encode("cp1252"))
    manifest = ingest([export], tmp_path / "parquet")
    entry = manifest["files"][0]
    assert entry["encoding"] == "cp1252" and entry["separator"] == ";" and entry["rows"] == 2
    assert json.loads((tmp_path / "parquet" / "manifest.json").read_text()) == manifest
    frame = pl.read_parquet(tmp_path / "parquet" / entry["parquet"])
    assert frame["EPIKEY"].to_list() == ["0101", "0102"] and frame[SOURCE_ROW].to_list() == [1, 2]
    assert frame["PROCODE3"].to_list() == ["RéX", "RTH"]
    assert set(frame.schema.values()) == {pl.String, pl.Int64}


def test_spark_settings_from_the_config_file(tmp_path):
    config = write_csv(tmp_path, "nice-audit.toml", """
        engine = "spark"
        tables = ["hes.apc_2025"]
        partitions = 400
        runs_keep = 3
        spark_conf = { "spark.executor.memory" = "8g", "spark.sql.adaptive.enabled" = true }
    """)
    settings, _ = load_settings(config, {})
    assert settings.engine == "spark" and settings.tables == ("hes.apc_2025",) and settings.partitions == 400
    assert settings.runs_keep == 3
    assert settings.spark_conf == ("spark.executor.memory=8g", "spark.sql.adaptive.enabled=true")


def test_partitions_hand_back_only_types_spark_accepts(tmp_path):
    """No unsigned integers, no large lists, and exactly the declared schema (P5)."""
    import pyarrow as pa

    exports = read_exports([EXAMPLES / "hes_episodes.csv", EXAMPLES / "long_procedures.csv"])
    ctx = unit.AuditContext(load_catalogue(), AS_OF, PINNED_TIME, tuple(exports))
    schema = union_schema(ctx)
    rows = pl.concat([b for e in exports for b in e.batches()], how="diagonal")
    table = to_union(unit.audit_rows(rows, ctx), schema)
    assert table.schema == schema.arrow()
    for arrow_field in table.schema:
        assert not pa.types.is_unsigned_integer(arrow_field.type) and not pa.types.is_large_list(arrow_field.type)
    assert set(table.column("kind").to_pylist()) == {"findings", "episodes", "sequences", "counts"}
    assert "`errors` bigint" in schema.ddl  # episodes.errors is UInt32 in polars


def _runs(out, spec: dict[str, bool]) -> None:
    """Run folders under out/_runs/: run id -> complete (has summary.json)."""
    for run_id, complete in spec.items():
        folder = out / "_runs" / run_id
        folder.mkdir(parents=True)
        (folder / "findings.csv").write_text("episode_id\n", encoding="utf-8")
        if complete:
            (folder / "summary.json").write_text("{}", encoding="utf-8")


@pytest.mark.parametrize("latest, keep, deleted", [
    ("20261105T020000Z-eeeeee", 2, ["20261101T020000Z-aaaaaa", "20261102T020000Z-bbbbbb", "20261103T020000Z-cccccc"]),
    # LATEST.json names an old run (a newer one was published elsewhere, or by hand): it stays.
    ("20261101T020000Z-aaaaaa", 2, ["20261102T020000Z-bbbbbb", "20261103T020000Z-cccccc"]),
    ("20261105T020000Z-eeeeee", 7, []),
])
def test_pruning_runs_keeps_the_newest_and_the_latest(tmp_path, latest, keep, deleted):
    from audit.engines.publish import LATEST, prune_runs

    _runs(tmp_path, {"20261101T020000Z-aaaaaa": True, "20261102T020000Z-bbbbbb": True,
                     "20261102T030000Z-dead00": False,  # died before the next run: older than any kept
                     "20261103T020000Z-cccccc": True, "20261104T020000Z-dddddd": True,
                     "20261105T020000Z-eeeeee": True, "20261106T020000Z-writng": False})  # still writing
    (tmp_path / LATEST).write_text(json.dumps({"path": f"_runs/{latest}"}), encoding="utf-8")
    expected = sorted([*deleted, "20261102T030000Z-dead00"]) if keep < 5 else []
    assert prune_runs(tmp_path, keep) == expected
    left = sorted(p.name for p in (tmp_path / "_runs").iterdir())
    assert "20261106T020000Z-writng" in left and latest in left
    assert not set(left) & set(expected)
