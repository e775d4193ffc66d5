"""Read a run's output files: the only data the report sees.

Every column is read as text (`infer_schema=False`) so ids such as `0001` or `C1234567` stay as
written; the context builder casts the few numeric columns it sorts on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from audit.errors import UserError
from audit.outputs import EPISODES_CSV, FINDINGS_CSV, REJECTED_CSV, SEQUENCES_CSV, SUMMARY_JSON

FINDINGS_COLUMNS = (
    "episode_id", "guidance_id", "code_set", "rule_id", "severity", "position", "code", "expected",
    "message", "provider", "specialty", "consultant", "source_file",
)
EPISODES_COLUMNS = (
    "episode_id", "guidance_id", "code_set", "position", "episode_date", "date_source", "status",
    "errors", "warnings", "provider", "specialty", "consultant", "source_file", "actual_sequence",
    "expected_sequence",
)
SEQUENCES_COLUMNS = ("episode_id", "position", "code", "code_kind")
REJECTED_COLUMNS = ("source_file", "source_row", "episode_id", "reason")


class ReportError(UserError):
    """The output folder is missing a file the report needs, or a file is not what a run writes."""


@dataclass(frozen=True)
class Outputs:
    """The files of one run, as written by `audit.outputs`."""

    folder: Path
    summary: dict
    findings: pl.DataFrame
    episodes: pl.DataFrame
    sequences: pl.DataFrame  # empty when the run wrote none
    rejected: pl.DataFrame  # empty when the run wrote none


def _read_csv(path: Path, columns: tuple[str, ...], *, required: bool) -> pl.DataFrame:
    if not path.exists():
        if required:
            raise ReportError(f"{path}: missing; is this the --out folder of a nice-audit run?")
        return pl.DataFrame(schema={c: pl.String for c in columns})
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except pl.exceptions.NoDataError:
        return pl.DataFrame(schema={c: pl.String for c in columns})
    except pl.exceptions.PolarsError as error:
        raise ReportError(f"{path}: cannot be read as CSV ({type(error).__name__})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame.select(columns)


def load_outputs(folder: Path) -> Outputs:
    folder = Path(folder)
    summary_path = folder / SUMMARY_JSON
    if not summary_path.exists():
        raise ReportError(f"{summary_path}: missing; is this the --out folder of a nice-audit run?")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ReportError(f"{summary_path}: not valid JSON") from None
    return Outputs(
        folder=folder,
        summary=summary,
        findings=_read_csv(folder / FINDINGS_CSV, FINDINGS_COLUMNS, required=True),
        episodes=_read_csv(folder / EPISODES_CSV, EPISODES_COLUMNS, required=True),
        sequences=_read_csv(folder / SEQUENCES_CSV, SEQUENCES_COLUMNS, required=False),
        rejected=_read_csv(folder / REJECTED_CSV, REJECTED_COLUMNS, required=False),
    )
