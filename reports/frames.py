"""Read a run's output files: the only data the report sees (summary.json and the report bundle;
the CSVs only when there is no bundle to read).

Every column is read as text (`infer_schema=False`) so ids such as `0001` or `C1234567` stay as
written; the context builder casts the few numeric columns it sorts on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from audit.errors import UserError
from audit.outputs import CHANGES_COLUMNS as OUTPUT_CHANGES_COLUMNS
from audit.outputs import (
    CHANGES_CSV,
    CODE_TITLES_CSV,
    EPISODES_CSV,
    FINDINGS_CSV,
    REJECTED_CSV,
    SEQUENCES_CSV,
    SUMMARY_JSON,
    TREND_CSV,
    csv_restored,
)
from reports.bundle import Bundle, as_written, build_bundle, read_bundle
from schemas.outputs import EPISODE_STATUSES, FINDINGS

FINDINGS_COLUMNS = tuple(FINDINGS.columns)  # the output contract, read back as text
EPISODES_COLUMNS = tuple(EPISODE_STATUSES.columns)
SEQUENCES_COLUMNS = ("episode_id", "position", "code", "code_kind")
REJECTED_COLUMNS = ("source_file", "source_row", "episode_id", "reason")
# Columns a newer run writes; older output folders lack them and read as "".
FINDINGS_OPTIONAL = ("first_seen", "episode_date", "source_row", "coder", "local_id")
EPISODES_OPTIONAL = ("coder", "local_id")
# Columns a mapping asked to carry (`carry = [...]`) are any others: they are kept, for the cards.
CARRIED_FROM = (FINDINGS_COLUMNS + FINDINGS_OPTIONAL + ("status",))
CHANGES_COLUMNS = tuple(OUTPUT_CHANGES_COLUMNS)
TREND_COLUMNS = ("run_id", "started", "guidance_id", "episodes", "compliant")
# Episodes judged (matched, less those that predate the guidance): the % compliant denominator.
# Absent from trend.csv files written before it existed; episodes is used then.
TREND_OPTIONAL = ("judged",)


class ReportError(UserError):
    """The output folder is missing a file the report needs, or a file is not what a run writes."""


@dataclass(frozen=True)
class Outputs:
    """What the report reads of one run: summary.json, the report bundle (aggregates and capped
    samples, reports.bundle) and the two small history files."""

    folder: Path
    summary: dict
    bundle: Bundle
    trend: pl.DataFrame | None  # None when the run kept no history (no trend.csv)
    code_titles: dict[str, str]  # normalised code -> title, from the run's --opcs-codes list, if any


def _read_csv(path: Path, columns: tuple[str, ...], *, required: bool,
              optional: tuple[str, ...] = (), keep_extra: bool = False) -> pl.DataFrame:
    if not path.exists():
        if required:
            raise ReportError(f"{path}: missing; is this the --out folder of a nice-audit run?")
        return pl.DataFrame(schema={c: pl.String for c in columns + optional})
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except pl.exceptions.NoDataError:
        return pl.DataFrame(schema={c: pl.String for c in columns + optional})
    except pl.exceptions.PolarsError as error:
        raise ReportError(f"{path}: cannot be read as CSV ({type(error).__name__})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    absent = [c for c in optional if c not in frame.columns]
    frame = csv_restored(frame)  # cells neutralised against spreadsheet formulas, as they were
    extra = [c for c in frame.columns if c not in columns + optional] if keep_extra else []
    return frame.with_columns(pl.lit("").alias(c) for c in absent).select(*columns, *optional, *extra)


def _read_if_present(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()) -> pl.DataFrame | None:
    return _read_csv(path, columns, required=False, optional=optional) if path.exists() else None


def _check_summary(summary, path: Path) -> None:
    """A summary.json changed by hand or by another tool is refused in one line, not a crash:
    every part the report reads must have the type nice-audit writes."""
    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def counts(value) -> bool:
        return isinstance(value, dict) and all(whole(v) for v in value.values())

    def input_file(value) -> bool:
        return isinstance(value, dict) and all(whole(value.get(k, 0)) for k in (
            "rows_read", "rows_rejected", "episodes_audited", "invalid_dates")) and all(
            isinstance(value.get(k, ""), str) for k in ("path", "layout", "sha256")) and isinstance(
            value.get("columns_present", []), list)

    if not isinstance(summary, dict):
        raise ReportError(f"{path}: not a summary written by nice-audit (not a JSON object)")
    checks = {
        **{key: counts for key in ("totals", "data_quality", "by_status", "by_rule", "by_severity")},
        **{key: lambda v: isinstance(v, str) for key in ("run_started", "as_of", "catalogue_version", "tool_version")},
        "inputs": lambda v: isinstance(v, list) and all(input_file(f) for f in v),
        "by_guidance": lambda v: isinstance(v, dict) and all(counts(c) for c in v.values()),
        "changes": lambda v: v is None or isinstance(v, dict),
    }
    wrong = [key for key, check in checks.items() if key in summary and not check(summary[key])]
    if wrong:
        raise ReportError(f"{path}: not a summary written by nice-audit ({', '.join(wrong)} of the wrong type)")


def read_summary(folder: Path) -> dict:
    summary_path = Path(folder) / SUMMARY_JSON
    if not summary_path.exists():
        raise ReportError(f"{summary_path}: missing; is this the --out folder of a nice-audit run?")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ReportError(f"{summary_path}: not valid JSON") from None
    _check_summary(summary, summary_path)
    return summary


def load_outputs(folder: Path, *, worksheet_cap: int = 200, findings_cap: int = 200,
                 written: tuple[dict, Bundle] | None = None) -> Outputs:
    """The run's summary and bundle. The bundle the run wrote is used when it holds the caps asked
    for; otherwise (an older run, a folder without one, larger caps) it is built from the CSVs.
    written: the summary and bundle a run is still writing into `folder` (audit.outputs.write
    renders the report beside its other files), taken as their files will hold them."""
    folder = Path(folder)
    if written is not None:
        summary, bundle = json.loads(json.dumps(written[0], default=int)), as_written(written[1])
        _check_summary(summary, folder / SUMMARY_JSON)
        if not bundle.covers(worksheet_cap, findings_cap):  # a bug: the run builds it at its caps
            raise RuntimeError(f"the run's bundle holds caps {bundle.worksheet_cap}/{bundle.findings_cap}, "
                               f"not {worksheet_cap}/{findings_cap}")
    else:
        summary = read_summary(folder)
        bundle = read_bundle(folder)
        if bundle is None or not bundle.covers(worksheet_cap, findings_cap):
            bundle = bundle_from_csvs(folder, summary, worksheet_cap=worksheet_cap, findings_cap=findings_cap)
    return Outputs(
        folder=folder,
        summary=summary,
        bundle=bundle,
        trend=_read_if_present(folder / TREND_CSV, TREND_COLUMNS, TREND_OPTIONAL),
        code_titles=_code_titles(folder / CODE_TITLES_CSV),
    )


def columns_present(summary: dict) -> set[str]:
    """Export columns any input file had (summary.json inputs)."""
    present = set()
    for f in summary.get("inputs", []):
        present.update(f.get("columns_present", []))
    return present


def bundle_from_csvs(folder: Path, summary: dict, *, worksheet_cap: int, findings_cap: int) -> Bundle:
    """The bundle of a run, from the output CSVs it wrote (reading every row of them)."""
    findings = _read_csv(folder / FINDINGS_CSV, FINDINGS_COLUMNS, required=True, optional=FINDINGS_OPTIONAL,
                         keep_extra=True)
    return build_bundle(
        findings,
        _read_csv(folder / EPISODES_CSV, EPISODES_COLUMNS, required=True, optional=EPISODES_OPTIONAL,
                  keep_extra=True),
        _read_csv(folder / SEQUENCES_CSV, SEQUENCES_COLUMNS, required=False),
        _read_csv(folder / REJECTED_CSV, REJECTED_COLUMNS, required=False),
        _read_if_present(folder / CHANGES_CSV, CHANGES_COLUMNS),
        columns_present=columns_present(summary),
        carried=tuple(c for c in findings.columns if c not in CARRIED_FROM),
        worksheet_cap=worksheet_cap, findings_cap=findings_cap,
    )


def _code_titles(path: Path) -> dict[str, str]:
    frame = _read_if_present(path, ("code", "title"))
    if frame is None:
        return {}
    return {code.replace(".", ""): title for code, title in frame.iter_rows() if code and title}
