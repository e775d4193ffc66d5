"""Shared helpers: paths, and running the pipeline in-process on small inline tables."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"
ARTIFICIAL_HES = SHARED / "data" / "artificial_hes_apc_0102.csv"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PINNED_TIME = datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc)
AS_OF = date(2026, 11, 21)


def table(text: str) -> pl.DataFrame:
    """An inline, pipe-separated table (all strings), as used in the rule tests."""
    lines = [line.strip().strip("|") for line in textwrap.dedent(text).strip().splitlines()]
    rows = [[cell.strip() for cell in line.split("|")] for line in lines if not set(line) <= {"-", "|", " "}]
    return pl.DataFrame(rows[1:], schema=rows[0], orient="row")


def write_csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def line_coding_on_small_files(monkeypatch):
    """The record scan tests a file's coding on its lines from `LINE_CODING_FROM` bytes on (24 MB);
    the tests' files are small, and go the way a large export goes (the threshold's own test sets
    it back). Subprocess runs of the command keep the real threshold."""
    from audit import records

    monkeypatch.setattr(records, "LINE_CODING_FROM", 0)


@pytest.fixture
def needs_shared():
    if not ARTIFICIAL_HES.exists():
        pytest.skip("../shared/data is not beside this checkout")
    return ARTIFICIAL_HES


def audit_long(tmp_path: Path, text: str, *, as_of: date = AS_OF, catalogue=None):
    """Run the whole pipeline over an inline long-format table (columns as in the long layout)."""
    from audit.catalogue import load_catalogue
    from audit.pipeline import AuditOptions, run_audit

    path = tmp_path / "episodes.csv"
    table(text).write_csv(path)
    options = AuditOptions(inputs=[path], as_of=as_of)
    return run_audit(options, catalogue or load_catalogue(), PINNED_TIME)


def findings_of(result, episode_id: str | None = None) -> list[tuple]:
    """(rule_id, guidance_id, position, severity) for each finding, in output order."""
    frame = result.findings
    if episode_id is not None:
        frame = frame.filter(pl.col("episode_id") == episode_id)
    return frame.select("rule_id", "guidance_id", "position", "severity").rows()


def status_of(result, episode_id: str, guidance_id: str) -> str | None:
    rows = result.episodes.filter(
        (pl.col("episode_id") == episode_id) & (pl.col("guidance_id") == guidance_id)
    )
    return rows["status"].item() if rows.height else None


def run_cli(*args: str):
    """Invoke the CLI in-process; stdout and stderr are kept apart."""
    from typer.testing import CliRunner

    from audit.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})
