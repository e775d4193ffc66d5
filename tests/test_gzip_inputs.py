"""gzip exports are decompressed as a stream to a temporary file (issue 12 point 5): the expansion
is capped, and so is the room it may take on the temporary folder's disk."""

import gzip
import json
from collections import namedtuple

from tests.conftest import run_cli

Usage = namedtuple("Usage", "total used free")


def _export(path, rows: int):
    with gzip.open(path, "wb") as handle:
        handle.write(b"EPIKEY,OPERTN_01,OPERTN_02\n")
        handle.write(b"".join(b"%d,V522,V551\n" % i for i in range(rows)))
    return path


def test_decompressing_stops_before_the_temporary_disk_fills(tmp_path, monkeypatch):
    monkeypatch.setattr("audit.load.DISK_CHECK_EVERY", 1 << 16)
    monkeypatch.setattr("audit.load.shutil.disk_usage", lambda _: Usage(10 << 30, 10 << 30, 100 << 20))
    result = run_cli("run", str(_export(tmp_path / "e.csv.gz", 20_000)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "e.csv.gz: decompressing it needs more room than" in result.stderr
    assert "set TMPDIR to a folder with more space" in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_export_that_fits_is_decompressed_and_audited(tmp_path, monkeypatch):
    monkeypatch.setattr("audit.load.DISK_CHECK_EVERY", 1 << 16)  # the check runs, and finds room
    result = run_cli("run", str(_export(tmp_path / "e.csv.gz", 20_000)), "--out", str(tmp_path / "out"),
                     "--as-of", "2026-11-21")
    assert result.exit_code == 0, result.stderr
    totals = json.loads((tmp_path / "out" / "summary.json").read_text())["totals"]
    assert totals["rows_read"] == totals["rows_audited"] == 20_000
