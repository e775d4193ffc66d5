"""Stage 7: write the findings, episode statuses, rejected rows and summary into --out.

Files are written into a fresh folder beside --out (`stage`) and swapped into place only when all
of them, the report included, are complete (`publish`), so a run killed at any moment leaves the
previous outputs intact and readable.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from audit import __version__, codes
from audit.errors import UserError
from audit.history import FINDING_KEY, Changes
from audit.rules import RULES
from schemas.outputs import SEVERITIES, STATUSES

if TYPE_CHECKING:
    from audit.pipeline import AuditResult

FINDINGS_CSV = "findings.csv"
FINDINGS_PARQUET = "findings.parquet"
EPISODES_CSV = "episodes.csv"
REJECTED_CSV = "rejected.csv"
SEQUENCES_CSV = "sequences.csv"
SUMMARY_JSON = "summary.json"
CHANGES_CSV = "changes.csv"
CODE_TITLES_CSV = "code_titles.csv"
TREND_CSV = "trend.csv"


def sequences(result: AuditResult) -> pl.DataFrame:
    """The full procedure sequence of every episode with a finding or a guidance match, for the
    report's worksheet (which reads only output files)."""
    flagged = pl.concat([result.findings.select("episode_id"), result.episodes.select("episode_id")]).unique()
    return (
        result.data.procedures.join(flagged, on="episode_id", how="semi")
        .select(
            "episode_id",
            "position",
            pl.when(pl.col("code").is_not_null())
            .then(codes.display_expr(pl.col("code")))
            .otherwise(pl.col("code_raw").str.strip_chars())
            .alias("code"),
            "code_kind",
        )
        .sort("episode_id", "position")
    )


def _counts(frame: pl.DataFrame, column: str, keys) -> dict[str, int]:
    found = dict(frame.group_by(column).len().iter_rows()) if frame.height else {}
    return {key: int(found.get(key, 0)) for key in keys}


def summary(result: AuditResult) -> dict:
    data, findings, episodes = result.data, result.findings, result.episodes
    files = [
        {
            "path": f.path, "layout": f.layout, "sha256": f.sha256, "encoding": f.encoding,
            "rows_read": f.rows_read, "rows_rejected": f.rows_rejected,
            "rows_audited": f.rows_audited, "episodes_audited": f.episodes_audited,
            "invalid_dates": f.invalid_dates, "columns_present": list(f.columns_present),
        }
        for f in data.files
    ]
    kinds = _counts(data.procedures, "code_kind", codes.CODE_KINDS)
    by_guidance = {}
    for guidance_id in sorted(set(episodes["guidance_id"].to_list())):
        these = episodes.filter(pl.col("guidance_id") == guidance_id)
        by_guidance[guidance_id] = {"episodes": these.height, **_counts(these, "status", STATUSES)}
    return {
        "tool_version": __version__,
        "run_started": result.started.isoformat(timespec="seconds"),
        "as_of": result.options.as_of.isoformat(),
        "catalogue_version": result.catalogue.version,
        "catalogue_files": [str(Path(f).resolve()) for f in result.catalogue.files],  # for `report DIR`
        "guidance_in_catalogue": len(result.catalogue.guidance),
        "inputs": files,
        "totals": {
            "rows_read": sum(f["rows_read"] for f in files),
            "rows_rejected": sum(f["rows_rejected"] for f in files),
            "rows_audited": sum(f["rows_audited"] for f in files),
            "episodes_audited": data.episodes_audited,
            "procedures": kinds[codes.PROCEDURE] + sum(f.clean_procedures for f in data.files),
            "matched_pairs": episodes.height,
            "matched_episodes": episodes["episode_id"].n_unique(),
            "findings": findings.height,
        },
        "by_guidance": by_guidance,
        "by_status": _counts(episodes, "status", STATUSES),
        "by_rule": _counts(findings, "rule_id", RULES),
        "by_severity": _counts(findings, "severity", SEVERITIES),
        "rejected_by_reason": dict(sorted(_counts(data.rejected, "reason", set(data.rejected["reason"])).items())),
        "data_quality": {
            "invalid_codes": kinds[codes.INVALID],
            "not_known_codes": kinds[codes.NOT_KNOWN],
            "no_operation_markers": kinds[codes.NO_OPERATION] + sum(f.clean_no_operations for f in data.files),
            "local_fifth_characters": data.procedures["local_suffix"].is_not_null().sum(),
            "invalid_dates": sum(f["invalid_dates"] for f in files),
        },
    }


def _with_first_seen(findings: pl.DataFrame, changes: Changes | None, today: str) -> pl.DataFrame:
    """`first_seen`: from the history when there is one, else this run's date."""
    if changes is None:
        return findings.with_columns(first_seen=pl.lit(today))
    seen = changes.keys.filter(pl.col("change") != "resolved").select(*FINDING_KEY, "first_seen")
    return (
        findings.with_columns(_guidance=pl.col("guidance_id").fill_null(""), _position=pl.col("position").cast(pl.Int64))
        .join(seen.rename({"guidance_id": "_guidance", "position": "_position"}),
              on=["episode_id", "_guidance", "rule_id", "_position"], how="left", nulls_equal=True)
        .drop("_guidance", "_position")
        .with_columns(pl.col("first_seen").fill_null(today))
    )


def _code_titles(sequences: pl.DataFrame, code_list: pl.DataFrame) -> pl.DataFrame:
    """Titles, from the user's OPCS-4 code list, of the codes the report shows."""
    shown = code_list.with_columns(codes.display_expr(pl.col("code")).alias("code"))
    return shown.join(sequences.select("code").unique(), on="code", how="semi").sort("code")


def _carry(frame: pl.DataFrame, carried: pl.DataFrame) -> pl.DataFrame:
    """Add the columns the mapping asked to carry, at the end, keyed by episode."""
    if carried.width == 1:
        return frame
    clash = sorted(set(carried.columns[1:]) & set(frame.columns))
    if clash:
        raise UserError(f"carried column(s) {', '.join(clash)} would overwrite output columns: rename them")
    return frame.join(carried, on="episode_id", how="left", maintain_order="left")


def _changes_summary(changes: Changes | None) -> dict | None:
    if changes is None:
        return None
    counts = _counts(changes.keys, "change", ("new", "resolved", "still-open"))
    return {"previous_run": changes.previous_run, "previous_started": changes.previous_started, **counts}


def stage(result: AuditResult, out: Path, *, changes: Changes | None = None,
          trend: pl.DataFrame | None = None) -> tuple[Path, dict]:
    """Write every output into a fresh folder beside `out`; returns it and the summary."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    today = result.started.date().isoformat()
    findings = _carry(_with_first_seen(result.findings, changes, today), result.data.carried)
    episodes = _carry(result.episodes, result.data.carried)
    findings.write_csv(staging / FINDINGS_CSV, date_format="%Y-%m-%d")
    findings.write_parquet(staging / FINDINGS_PARQUET, statistics=False)
    episodes.write_csv(staging / EPISODES_CSV, date_format="%Y-%m-%d")
    result.data.rejected.write_csv(staging / REJECTED_CSV)
    flagged_sequences = sequences(result)
    flagged_sequences.write_csv(staging / SEQUENCES_CSV)
    if result.options.code_list is not None:
        _code_titles(flagged_sequences, result.options.code_list).write_csv(staging / CODE_TITLES_CSV)
    if changes is not None:
        changes.keys.write_csv(staging / CHANGES_CSV)
    if trend is not None:
        trend.write_csv(staging / TREND_CSV)
    content = summary(result)
    content["changes"] = _changes_summary(changes)
    text = json.dumps(content, indent=2, default=int)
    (staging / SUMMARY_JSON).write_text(text + "\n", encoding="utf-8")
    return staging, content


@contextmanager
def _lock(out: Path):
    """Serialise concurrent runs that publish into the same folder (POSIX advisory lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: runs into one folder must not overlap
        yield
        return
    with open(out.with_name(f".{out.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(staging: Path, out: Path) -> Path:
    """Replace `out` with `staging`; the old outputs stay whole until the new ones are complete."""
    out = Path(out)
    with _lock(out):
        if out.exists():
            retired = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, retired)
            os.replace(staging, out)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out)
    return out
