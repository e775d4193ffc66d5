"""The dated report archive: one report a day, an index with headline counts, retention."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

from audit.catalogue import load_catalogue
from audit.config import Settings
from audit.pipeline import audit_to_directory
from reports.archive import archive_report
from tests.conftest import AS_OF
from tests.test_report import EXAMPLE_FILES, audit_into, parse_html, rendered


def night(base, source, started: str):
    """A copy of a run's outputs as if it had started at `started`."""
    out = base / f"out-{started[:10]}"
    shutil.copytree(source, out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary["run_started"] = started
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return out


def test_each_run_is_kept_by_date_with_an_index_and_retention(tmp_path):
    source = audit_into(EXAMPLE_FILES, tmp_path / "run")
    rendered(source)
    archive = tmp_path / "archive"
    summary = json.loads((source / "summary.json").read_text(encoding="utf-8"))
    # 23:30 UTC on 30 June is 00:30 BST on 1 July: the report is filed under the UK date.
    nights = ["2026-06-29T02:00:00+00:00", "2026-06-30T23:30:00+00:00", "2026-07-02T02:00:00+00:00"]
    for started in nights:
        copy = archive_report(night(tmp_path, source, started), archive, keep=2)
        assert copy.read_bytes() == (source / "report.html").read_bytes()
    assert sorted(p.name for p in archive.iterdir()) == [
        "2026-07-01-report.html", "2026-07-01-summary.json", "2026-07-02-report.html", "2026-07-02-summary.json",
        "index.html",
    ]
    index = parse_html((archive / "index.html").read_text(encoding="utf-8"))
    rows = index.find("table", id="archive-table").find("tbody").find_all("tr")
    assert [r.find("a").attrs["href"] for r in rows] == ["2026-07-02-report.html", "2026-07-01-report.html"]
    cells = [td.words() for td in rows[0].find_all("td")]
    assert cells[0] == "2 July 2026, 03:00 BST"
    assert cells[1:] == [f"{summary['totals']['episodes_audited']:,}", f"{summary['by_status']['non-compliant']:,}",
                         f"{summary['by_status']['superseded']:,}", f"{summary['totals']['findings']:,}",
                         f"{summary['by_severity']['error']:,}", f"{summary['totals']['rows_rejected']:,}"]


def test_a_run_archives_its_report_beside_the_output_folder(tmp_path):
    out = tmp_path / "nightly" / "out"
    out.parent.mkdir()
    started = datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc)
    audit_to_directory(Settings(inputs=tuple(EXAMPLE_FILES), out=out, as_of=AS_OF), load_catalogue(), started)
    kept = tmp_path / "nightly" / "archive" / "2026-11-21-report.html"
    assert kept.read_bytes() == (out / "report.html").read_bytes()
    assert "2026-11-21-report.html" in (tmp_path / "nightly" / "archive" / "index.html").read_text(encoding="utf-8")
    elsewhere = tmp_path / "kept"
    audit_to_directory(Settings(inputs=tuple(EXAMPLE_FILES), out=out, as_of=AS_OF, archive=elsewhere),
                       load_catalogue(), started)
    assert (elsewhere / "2026-11-21-report.html").exists()
